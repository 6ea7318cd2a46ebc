//! The two OTLP transports, sending already-encoded request bodies, and the
//! reading of each protocol's answer: acknowledged (with partial success),
//! retryable (with the server's suggested delay), or failed for good.

use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::uri::PathAndQuery;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::Error;

/// Which OTLP transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`, HTTP/2).
    Grpc,
    /// OTLP/HTTP with a binary protobuf body (`POST /v1/traces`, HTTP/1.1).
    Http,
}

impl Protocol {
    /// The protocol's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }
}

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How the server answered one export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Accepted; `rejected` spans were dropped by the server (partial
    /// success).
    Ok { rejected: u64 },
    /// Refused for now: send again after the delay (the server's hint, if
    /// it gave one).
    Retry { after: Option<Duration>, why: String },
    /// Refused for good (bad data, too large, not found).
    Fail { why: String },
}

/// One connection's sender.
#[derive(Clone)]
pub(crate) enum Sender {
    Grpc(tonic::client::Grpc<Channel>),
    Http { client: Box<HyperClient<HttpConnector, Full<Bytes>>>, uri: http::Uri },
}

impl Sender {
    /// Connects to `endpoint` (`host:port`). For gRPC each sender is one
    /// HTTP/2 connection; HTTP senders share a keep-alive pool.
    pub(crate) async fn connect(protocol: Protocol, endpoint: &str, pool: usize) -> Result<Sender, Error> {
        match protocol {
            Protocol::Grpc => {
                let channel = Channel::from_shared(format!("http://{endpoint}"))
                    .map_err(|e| Error::Endpoint(format!("{endpoint}: {e}")))?
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(|e| Error::Connect(format!("OTLP/gRPC {endpoint}: {e}")))?;
                // The server may answer with up to its own limit; requests go
                // out as they are.
                let grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(64 << 20);
                Ok(Sender::Grpc(grpc))
            }
            Protocol::Http => {
                let uri: http::Uri = format!("http://{endpoint}/v1/traces")
                    .parse()
                    .map_err(|e| Error::Endpoint(format!("{endpoint}: {e}")))?;
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                let client =
                    HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(pool).build(connector);
                Ok(Sender::Http { client: Box::new(client), uri })
            }
        }
    }

    /// Sends one encoded `ExportTraceServiceRequest`.
    pub(crate) async fn send(&mut self, body: Bytes) -> Answer {
        match self {
            Sender::Grpc(grpc) => {
                if let Err(e) = grpc.ready().await {
                    return Answer::Retry { after: None, why: format!("gRPC connection: {e}") };
                }
                let path = PathAndQuery::from_static(EXPORT_PATH);
                match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
                    Ok(response) => Answer::Ok { rejected: rejected(&response.into_inner()) },
                    Err(status) => grpc_failure(&status),
                }
            }
            Sender::Http { client, uri } => {
                let request = http::Request::post(uri.clone())
                    .header(CONTENT_TYPE, "application/x-protobuf")
                    .body(Full::new(body));
                let request = match request {
                    Ok(r) => r,
                    Err(e) => return Answer::Fail { why: format!("building the request: {e}") },
                };
                let response = match client.request(request).await {
                    Ok(r) => r,
                    Err(e) => return Answer::Retry { after: None, why: format!("HTTP connection: {e}") },
                };
                let status = response.status();
                let after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = match response.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => return Answer::Retry { after: None, why: format!("reading the reply: {e}") },
                };
                http_answer(status, after, body)
            }
        }
    }
}

/// Reads an OTLP/HTTP reply. The spec's retryable codes are 429, 502, 503
/// and 504, with `Retry-After` honoured when present.
pub(crate) fn http_answer(status: http::StatusCode, after: Option<Duration>, body: Bytes) -> Answer {
    match status.as_u16() {
        200..=299 => match ExportTraceServiceResponse::decode(body) {
            Ok(r) => Answer::Ok { rejected: rejected(&r) },
            // An empty or odd body still means success.
            Err(_) => Answer::Ok { rejected: 0 },
        },
        429 | 502 | 503 | 504 => Answer::Retry { after, why: format!("HTTP {status}") },
        _ => {
            let detail = tonic_types::Status::decode(body.clone())
                .map(|s| s.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).chars().take(200).collect());
            Answer::Fail { why: format!("HTTP {status}: {detail}") }
        }
    }
}

/// Reads an OTLP/gRPC error. Retryable per the spec: CANCELLED,
/// DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, and
/// RESOURCE_EXHAUSTED only when the server sent a `RetryInfo`.
pub(crate) fn grpc_failure(status: &Status) -> Answer {
    let after = status.get_details_retry_info().and_then(|r| r.retry_delay);
    let why = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Answer::Retry { after, why },
        Code::ResourceExhausted if after.is_some() => Answer::Retry { after, why },
        _ => Answer::Fail { why },
    }
}

fn rejected(response: &ExportTraceServiceResponse) -> u64 {
    response.partial_success.as_ref().map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
}

/// A gRPC codec that sends already-encoded request bytes as they are and
/// decodes the response with prost: the request was encoded once, when the
/// template was built, not once per send.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

/// Copies the request bytes into the frame.
#[derive(Debug)]
pub(crate) struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.len());
        dst.put(item);
        Ok(())
    }
}

/// Decodes `ExportTraceServiceResponse`.
#[derive(Debug)]
pub(crate) struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| Status::internal(format!("undecodable export response: {e}")))
    }
}
