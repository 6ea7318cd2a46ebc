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
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
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

/// Which OTLP signal the requests carry: it picks the gRPC method, the
/// HTTP path and how a partial success counts rejected items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Signal {
    /// Spans (`TraceService/Export`, `/v1/traces`).
    Traces,
    /// Log records (`LogsService/Export`, `/v1/logs`).
    Logs,
}

impl Signal {
    /// The signal's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
        }
    }

    /// What one item of the signal is called in reports.
    pub fn item(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Logs => "records",
        }
    }

    fn grpc_path(self) -> &'static str {
        match self {
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        }
    }

    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Logs => "/v1/logs",
        }
    }

    /// Items the server rejected, read from an export response body (the
    /// signal's `partial_success`). Undecodable means none: the request
    /// was acknowledged.
    fn rejected(self, body: Bytes) -> u64 {
        let n = match self {
            Signal::Traces => ExportTraceServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| p.rejected_spans),
            Signal::Logs => ExportLogsServiceResponse::decode(body)
                .ok()
                .and_then(|r| r.partial_success)
                .map(|p| p.rejected_log_records),
        };
        n.map_or(0, |n| u64::try_from(n).unwrap_or(0))
    }
}

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
    Grpc { grpc: tonic::client::Grpc<Channel>, signal: Signal },
    Http { client: Box<HyperClient<HttpConnector, Full<Bytes>>>, uri: http::Uri, signal: Signal },
}

impl Sender {
    /// Connects to `endpoint` (`host:port`). For gRPC each sender is one
    /// HTTP/2 connection; HTTP senders share a keep-alive pool.
    pub(crate) async fn connect(
        protocol: Protocol,
        signal: Signal,
        endpoint: &str,
        pool: usize,
    ) -> Result<Sender, Error> {
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
                Ok(Sender::Grpc { grpc, signal })
            }
            Protocol::Http => {
                let uri: http::Uri = format!("http://{endpoint}{}", signal.http_path())
                    .parse()
                    .map_err(|e| Error::Endpoint(format!("{endpoint}: {e}")))?;
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                let client =
                    HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(pool).build(connector);
                Ok(Sender::Http { client: Box::new(client), uri, signal })
            }
        }
    }

    /// Sends one encoded export request of the sender's signal.
    pub(crate) async fn send(&mut self, body: Bytes) -> Answer {
        match self {
            Sender::Grpc { grpc, signal } => {
                if let Err(e) = grpc.ready().await {
                    return Answer::Retry { after: None, why: format!("gRPC connection: {e}") };
                }
                let path = PathAndQuery::from_static(signal.grpc_path());
                match grpc.unary(tonic::Request::new(body), path, RawCodec).await {
                    Ok(response) => Answer::Ok { rejected: signal.rejected(response.into_inner()) },
                    Err(status) => grpc_failure(&status),
                }
            }
            Sender::Http { client, uri, signal } => {
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
                http_answer(*signal, status, after, body)
            }
        }
    }
}

/// Reads an OTLP/HTTP reply. The spec's retryable codes are 429, 502, 503
/// and 504, with `Retry-After` honoured when present.
pub(crate) fn http_answer(
    signal: Signal,
    status: http::StatusCode,
    after: Option<Duration>,
    body: Bytes,
) -> Answer {
    match status.as_u16() {
        // An empty or odd body still means success.
        200..=299 => Answer::Ok { rejected: signal.rejected(body) },
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

/// A gRPC codec that sends already-encoded request bytes as they are and
/// hands the response back undecoded (the signal reads it): the request
/// was encoded once, when the template was built, not once per send.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
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

/// Takes the response message's bytes.
#[derive(Debug)]
pub(crate) struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
