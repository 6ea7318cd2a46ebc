//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! [`GrpcService`] wraps opentelemetry-proto's generated `TraceServiceServer`
//! with a front that buffers the request body itself before tonic decodes
//! it. That is what lets the in-flight budget be charged frame by frame
//! *before* decoding (tonic would otherwise have buffered and decoded the
//! message already), rejects an oversized message from its 5-byte length
//! prefix without reading it, and keeps the raw protobuf bytes of an
//! uncompressed message for the write-ahead log.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::HttpBody;
use bytes::{Buf as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tonic::codec::CompressionEncoding;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};
use tower::ServiceExt as _;

use crate::Receiver;
use crate::ingest::{Outcome, Refusal};
use crate::limiter::Inflight;
use crate::metrics::{Protocol, RequestOutcome};

/// The gRPC method path this service answers.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// gRPC message framing: 1 compressed-flag byte + 4 length bytes.
const PREFIX: usize = 5;

/// The OTLP/gRPC trace service, ready for `tonic::transport::Server::add_service`.
#[derive(Clone)]
pub struct GrpcService {
    receiver: Receiver,
    inner: TraceServiceServer<Handler>,
}

impl std::fmt::Debug for GrpcService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcService").finish_non_exhaustive()
    }
}

impl GrpcService {
    pub(crate) fn new(receiver: Receiver) -> Self {
        let limit = receiver.shared.options.max_grpc_message_bytes;
        let inner = TraceServiceServer::new(Handler { receiver: receiver.clone() })
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(limit);
        GrpcService { receiver, inner }
    }
}

impl NamedService for GrpcService {
    const NAME: &'static str = <TraceServiceServer<Handler> as NamedService>::NAME;
}

impl<B> tower::Service<http::Request<B>> for GrpcService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The generated server is always ready and so is this front.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        if request.uri().path() != EXPORT_PATH {
            // Unknown methods: let the generated server answer UNIMPLEMENTED.
            return Box::pin(inner.oneshot(request));
        }
        let receiver = self.receiver.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let limit = receiver.shared.options.max_grpc_message_bytes;
            let mut claim = receiver.shared.limiter.claim();
            match read_message(body, limit, &mut claim).await {
                Ok(buffered) => {
                    if let Some(raw) = uncompressed_message(&buffered) {
                        parts.extensions.insert(RawMessage(raw));
                    }
                    parts.extensions.insert(Claim { _held: Arc::new(claim) });
                    let request = http::Request::from_parts(parts, Full::new(buffered));
                    let response = inner.oneshot(request).await?;
                    // Failures tonic reports before the handler runs (bad
                    // protobuf, unknown grpc-encoding, inflated size over the
                    // limit) are counted here; the handler's own (UNAVAILABLE)
                    // are counted where they happen.
                    if let Some(outcome) = early_failure(response.headers()) {
                        receiver.shared.metrics.request(Protocol::Grpc, outcome);
                    }
                    Ok(response)
                }
                Err((status, outcome)) => {
                    receiver.shared.metrics.request(Protocol::Grpc, outcome);
                    Ok(status.into_http())
                }
            }
        })
    }
}

/// The message's protobuf bytes, when the body is exactly one uncompressed
/// message (anything else is left to tonic, and re-encoded for the WAL).
fn uncompressed_message(buffered: &Bytes) -> Option<Bytes> {
    let mut prefix = buffered.get(..PREFIX)?;
    if prefix.get_u8() != 0 {
        return None;
    }
    let len = prefix.get_u32() as usize;
    (buffered.len() == PREFIX.checked_add(len)?).then(|| buffered.slice(PREFIX..))
}

/// The outcome of a call tonic failed before reaching the handler, read
/// from its trailers-only response.
fn early_failure(headers: &http::HeaderMap) -> Option<RequestOutcome> {
    let code = headers.get(Status::GRPC_STATUS)?.to_str().ok()?.parse::<i32>().ok()?;
    match Code::from_i32(code) {
        Code::Ok | Code::Unavailable => None,
        Code::ResourceExhausted | Code::OutOfRange => Some(RequestOutcome::TooLarge),
        Code::Unimplemented => Some(RequestOutcome::Unsupported),
        _ => Some(RequestOutcome::BadRequest),
    }
}

/// The exact protobuf bytes of an uncompressed request message.
#[derive(Clone)]
struct RawMessage(Bytes);

/// The request's in-flight claim, held until the consumer returns.
#[derive(Clone)]
struct Claim {
    _held: Arc<Inflight>,
}

/// The UNAVAILABLE + RetryInfo status OTLP clients treat as "back off".
fn refused_status(refusal: &Refusal) -> Status {
    Status::with_error_details(
        Code::Unavailable,
        refusal.message.clone(),
        ErrorDetails::with_retry_info(Some(refusal.retry_after)),
    )
}

fn too_large(len: usize, limit: usize) -> (Status, RequestOutcome) {
    // RESOURCE_EXHAUSTED without RetryInfo: OTLP clients do not retry it
    // (tonic itself would say OUT_OF_RANGE, which they would retry forever).
    let status =
        Status::resource_exhausted(format!("received message larger than max ({len} vs. {limit} bytes)"));
    (status, RequestOutcome::TooLarge)
}

/// Buffers one length-prefixed gRPC message, charging `claim` per frame and
/// refusing, from the prefix alone, a message over `limit` bytes.
async fn read_message<B>(
    body: B,
    limit: usize,
    claim: &mut Inflight,
) -> Result<Bytes, (Status, RequestOutcome)>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<tonic::codegen::StdError>,
{
    let mut body = pin!(body);
    let mut buf = BytesMut::new();
    let mut prefix_checked = false;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let e: tonic::codegen::StdError = e.into();
            (Status::cancelled(format!("reading request: {e}")), RequestOutcome::BadRequest)
        })?;
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        if !prefix_checked {
            let head: Vec<u8> = buf.iter().chain(data.iter()).take(PREFIX).copied().collect();
            if let Some(mut len_bytes) = head.get(1..PREFIX) {
                let len = len_bytes.get_u32() as usize;
                if len > limit {
                    return Err(too_large(len, limit));
                }
                // No reserve: memory follows the bytes that actually arrive
                // (and are charged), not what a stalled sender announces.
                prefix_checked = true;
            }
        }
        let total = buf.len().saturating_add(data.len());
        if total > limit.saturating_add(PREFIX) {
            // More than one maximal message: not a unary OTLP request.
            return Err(too_large(total - PREFIX, limit));
        }
        if !claim.try_grow(data.len()) {
            return Err((refused_status(&Refusal::inflight()), RequestOutcome::Refused));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

/// The generated trait's implementation: decode → consume → reply.
struct Handler {
    receiver: Receiver,
}

#[tonic::async_trait]
impl TraceService for Handler {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
        let receiver = &self.receiver;
        let metrics = &receiver.shared.metrics;
        let wire = request.extensions().get::<Claim>().cloned();
        let raw = request.extensions().get::<RawMessage>().map(|r| r.0.clone());
        let message = request.into_inner();
        // Compressed (or front-less) requests carry no raw bytes: encode once
        // for the WAL, charging the budget for the decoded size first.
        let mut extra = receiver.shared.limiter.claim();
        let (size, raw) = match raw {
            Some(raw) => (raw.len(), raw),
            None => {
                let size = message.encoded_len();
                if !extra.try_grow(size) {
                    metrics.request(Protocol::Grpc, RequestOutcome::Refused);
                    return Err(refused_status(&Refusal::inflight()));
                }
                (size, Bytes::from(message.encode_to_vec()))
            }
        };
        metrics.request_bytes(Protocol::Grpc, size);
        match receiver.ingest(Protocol::Grpc, message, Some(raw), (wire, extra)).await {
            Outcome::Accepted { rejected, error_message } => {
                let partial_success =
                    (rejected > 0 || !error_message.is_empty()).then(|| ExportTracePartialSuccess {
                        rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
                        error_message,
                    });
                Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success }))
            }
            Outcome::Refused(refusal) => Err(refused_status(&refusal)),
        }
    }
}
