//! OTLP/HTTP: `POST /v1/traces` with a binary protobuf or JSON body,
//! optionally gzip-compressed.
//!
//! Every failure is a response (the handler cannot fail): 415 for an
//! unsupported Content-Type or Content-Encoding, 413 over the size limit,
//! 400 for an undecodable body, 429/503 + `Retry-After` when refused. Error
//! bodies are a `google.rpc.Status` in the request's own encoding, as the
//! spec requires; only when the Content-Type is unknown (so there is no
//! encoding to answer in) is the body plain text.

use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::{Bytes, BytesMut};
use http::header::{ALLOW, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::Receiver;
use crate::gzip::{GunzipError, gunzip_limited};
use crate::ingest::{Outcome, Refusal};
use crate::json;
use crate::limiter::Inflight;
use crate::metrics::{Protocol, RequestOutcome};

/// The OTLP/HTTP traces path.
pub(crate) const TRACES_PATH: &str = "/v1/traces";

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

pub(crate) fn router(receiver: Receiver) -> Router {
    Router::new().route(TRACES_PATH, post(export).fallback(method_not_allowed)).with_state(receiver)
}

async fn method_not_allowed() -> Response {
    // axum adds `Allow: POST` to 405s from a method router's fallback; set it
    // here too so the header does not depend on that.
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed, supported: [POST]");
    response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

/// The body encoding named by Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// The media type, ignoring parameters (`; charset=utf-8`) and case.
    fn from_headers(headers: &HeaderMap) -> Option<Format> {
        let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let media = value.split(';').next().unwrap_or_default().trim();
        if media.eq_ignore_ascii_case(PROTOBUF) {
            Some(Format::Protobuf)
        } else if media.eq_ignore_ascii_case(JSON) {
            Some(Format::Json)
        } else {
            None
        }
    }

    fn protocol(self) -> Protocol {
        match self {
            Format::Protobuf => Protocol::HttpProtobuf,
            Format::Json => Protocol::HttpJson,
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

/// The Content-Encoding, or the unsupported value.
fn content_encoding(headers: &HeaderMap) -> Result<Encoding, String> {
    let Some(value) = headers.get(CONTENT_ENCODING) else { return Ok(Encoding::Identity) };
    let text = value.to_str().map_err(|_| format!("{value:?}"))?.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("identity") {
        Ok(Encoding::Identity)
    } else if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
        // RFC 9110 §8.4.1.3: x-gzip is equivalent to gzip.
        Ok(Encoding::Gzip)
    } else {
        Err(text.to_owned())
    }
}

/// A failed export: status, gRPC code for the Status body, message.
struct Failure {
    status: StatusCode,
    code: Code,
    message: String,
    outcome: RequestOutcome,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(status: StatusCode, code: Code, outcome: RequestOutcome, message: impl Into<String>) -> Self {
        Failure { status, code, message: message.into(), outcome, retry_after: None }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, RequestOutcome::BadRequest, message)
    }

    fn too_large(limit: usize) -> Self {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::ResourceExhausted,
            RequestOutcome::TooLarge,
            format!("request body exceeds the limit of {limit} bytes (after decompression too)"),
        )
    }

    fn refused(refusal: Refusal) -> Self {
        Failure {
            status: if refusal.overloaded {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            },
            code: Code::Unavailable,
            message: refusal.message,
            outcome: RequestOutcome::Refused,
            retry_after: Some(refusal.retry_after),
        }
    }

    fn into_response(self, format: Format) -> Response {
        let body = match format {
            Format::Json => json::status(self.code, &self.message, self.retry_after),
            Format::Protobuf => status_protobuf(self.code, &self.message, self.retry_after),
        };
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, format.content_type());
        if let Some(delay) = self.retry_after {
            // Retry-After takes whole seconds; round up, and never say 0.
            let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// A protobuf `google.rpc.Status`: a `RetryInfo` detail for refusals, a
/// `BadRequest` one for bad data (as the spec suggests).
fn status_protobuf(code: Code, message: &str, retry_after: Option<Duration>) -> Vec<u8> {
    let details = match (retry_after, code) {
        (Some(delay), _) => ErrorDetails::with_retry_info(Some(delay)),
        (None, Code::InvalidArgument) => ErrorDetails::with_bad_request_violation("body", message),
        (None, _) => {
            return tonic_types::Status {
                code: code as i32,
                message: message.to_owned(),
                details: Vec::new(),
            }
            .encode_to_vec();
        }
    };
    // tonic-types encodes the whole google.rpc.Status (code, message and
    // packed details) into the status' details bytes.
    tonic::Status::with_error_details(code, message, details).details().to_vec()
}

fn plain(status: StatusCode, message: &'static str) -> Response {
    let mut response = (status, message).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

async fn export(State(receiver): State<Receiver>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(format) = Format::from_headers(&parts.headers) else {
        receiver.shared.metrics.request(Protocol::Http, RequestOutcome::Unsupported);
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "415 unsupported media type, supported: [application/json, application/x-protobuf]",
        );
    };
    let protocol = format.protocol();
    match handle(&receiver, format, &parts.headers, body).await {
        Ok(response) => response,
        Err(failure) => {
            receiver.shared.metrics.request(protocol, failure.outcome);
            failure.into_response(format)
        }
    }
}

async fn handle(
    receiver: &Receiver,
    format: Format,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let limit = receiver.shared.options.max_http_body_bytes;
    let encoding = content_encoding(headers).map_err(|value| {
        Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument,
            RequestOutcome::Unsupported,
            format!("unsupported Content-Encoding {value:?}; supported: gzip, identity"),
        )
    })?;
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(Failure::too_large(limit));
    }

    // A declared length is charged before reading a byte, so an over-budget
    // request is refused without buffering any of it.
    let mut claim = receiver.shared.limiter.claim();
    if let Some(len) = declared
        && !claim.try_grow(usize::try_from(len).unwrap_or(usize::MAX))
    {
        return Err(Failure::refused(Refusal::inflight()));
    }
    let received = read_limited(body, limit, declared, &mut claim).await.map_err(|e| match e {
        ReadError::TooLarge => Failure::too_large(limit),
        ReadError::Refused => Failure::refused(Refusal::inflight()),
        ReadError::Body(msg) => Failure::bad_request(format!("reading request body: {msg}")),
    })?;
    let body = match encoding {
        Encoding::Identity => received,
        Encoding::Gzip => {
            let inflated = gunzip_limited(&received[..], limit, &mut claim).map_err(|e| match e {
                GunzipError::TooLarge => Failure::too_large(limit),
                GunzipError::Refused => Failure::refused(Refusal::inflight()),
                GunzipError::Corrupt(e) => Failure::bad_request(format!("invalid gzip body: {e}")),
            })?;
            // The compressed body is dropped here: keep only the inflated bytes charged.
            claim.release(claim.held().saturating_sub(inflated.len()));
            Bytes::from(inflated)
        }
    };

    let protocol = format.protocol();
    receiver.shared.metrics.request_bytes(protocol, body.len());
    let (request, raw) = match format {
        Format::Protobuf => match ExportTraceServiceRequest::decode(body.clone()) {
            Ok(request) => (request, Some(body)),
            Err(e) => return Err(Failure::bad_request(format!("invalid OTLP protobuf: {e}"))),
        },
        Format::Json => (json::decode_request(&body).map_err(Failure::bad_request)?, None),
    };
    match receiver.ingest(protocol, request, raw, claim).await {
        Outcome::Accepted { rejected, error_message } => Ok(success(format, rejected, &error_message)),
        Outcome::Refused(refusal) => {
            // ingest counted the request already.
            Ok(Failure::refused(refusal).into_response(format))
        }
    }
}

fn success(format: Format, rejected: u64, error_message: &str) -> Response {
    let body = match format {
        Format::Json => json::response(rejected, error_message),
        Format::Protobuf => ExportTraceServiceResponse {
            partial_success: (rejected > 0 || !error_message.is_empty()).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: error_message.to_owned(),
            }),
        }
        .encode_to_vec(),
    };
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, format.content_type());
    response
}

/// Why a body could not be read.
#[derive(Debug)]
enum ReadError {
    TooLarge,
    Refused,
    Body(String),
}

/// Reads a body of at most `limit` bytes, charging `claim` as frames arrive
/// so that it always covers what is buffered. A single-frame body is
/// returned without copying.
async fn read_limited<B>(
    body: B,
    limit: usize,
    declared: Option<u64>,
    claim: &mut Inflight,
) -> Result<Bytes, ReadError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = pin!(body);
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Body(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(ReadError::TooLarge);
        }
        // Charge what the claim does not cover yet (a declared length was
        // charged up front).
        if !claim.try_grow(total.saturating_sub(claim.held())) {
            return Err(ReadError::Refused);
        }
        match (&mut first, &mut rest) {
            (None, None) => first = Some(data),
            (Some(_), None) => {
                let hint =
                    declared.and_then(|d| usize::try_from(d).ok()).unwrap_or(total).clamp(total, limit);
                let mut buf = BytesMut::with_capacity(hint);
                if let Some(f) = first.take() {
                    buf.extend_from_slice(&f);
                }
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}
