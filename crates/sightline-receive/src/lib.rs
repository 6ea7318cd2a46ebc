//! The OTLP trace receivers: OTLP/gRPC and OTLP/HTTP (binary protobuf and
//! JSON), as the OTLP specification defines them.
//!
//! Both transports decode a request, turn it into a
//! [`sightline_model::Batch`] with [`sightline_model::otlp::decode_request`]
//! and hand it to a [`TracesConsumer`]. The reply is a success only once the
//! consumer returned `Ok`, which for the embedded store means the batch is
//! durable: an OK is a promise, so nothing is acknowledged early and a
//! consumer refusal becomes the protocol's retryable error (HTTP 429/503
//! with `Retry-After`, gRPC `UNAVAILABLE` with a `google.rpc.RetryInfo`).
//! Spans with invalid ids are dropped one by one and reported through OTLP
//! partial success; they never fail the whole request.
//!
//! # Design
//!
//! - **Bounded memory.** Every request body is charged, as it arrives and
//!   again as it is inflated, to one byte budget shared by both protocols
//!   ([`Options::max_inflight_bytes`]). Charges never wait: when the budget
//!   is spent the request is refused retryably before any decoding, so an
//!   overload turns into sender backoff rather than a queue of buffered
//!   bodies. For gRPC this needs the body before tonic sees it, so
//!   [`GrpcService`] wraps the generated server and buffers the (size-capped)
//!   body itself; that also lets it hand the raw protobuf bytes to the
//!   write-ahead log without re-encoding.
//! - **Zero-copy WAL bytes.** A protobuf request whose spans were all
//!   accepted is stored as the exact bytes received; only JSON, compressed
//!   gRPC and partially rejected requests are re-encoded.
//! - **Never crash on input.** Decoding errors become 400 /
//!   `INVALID_ARGUMENT` with a message that says what is wrong; sizes are
//!   checked before allocation; gzip is inflated in bounded chunks.
//! - **Graceful stop.** [`serve_grpc`] and [`serve_http`] stop accepting
//!   when their shutdown future resolves and return once in-flight requests
//!   have been answered.
//!
//! The binary binds the listeners and wires the consumer; this crate only
//! provides the services ([`Receiver::grpc_service`],
//! [`Receiver::http_router`]) and the serve functions.
#![deny(missing_docs)]

mod grpc;
mod gzip;
mod http;
mod ingest;
mod json;
mod limiter;
mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use sightline_model::TracesConsumer;

pub use grpc::GrpcService;
pub use metrics::Metrics;

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` exactly as the OTLP/HTTP
/// receiver does (snake_case keys and `null`s accepted, errors naming the
/// field), for other surfaces that take OTLP/JSON — the query API's
/// `POST /api/transform`.
pub fn decode_json(
    body: &[u8],
) -> Result<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest, String> {
    json::decode_request(body)
}

use limiter::Limiter;

/// Limits, set in code by the binary (defaults follow the OTLP spec's
/// recommendations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Largest gRPC message accepted, compressed on the wire and again after
    /// decompression; over it the call fails with `RESOURCE_EXHAUSTED`, which
    /// OTLP clients do not retry. Default 20 MiB.
    pub max_grpc_message_bytes: usize,
    /// Largest OTLP/HTTP body accepted, both as received and after
    /// decompression (so a gzip bomb stops early); over it → 413.
    /// Default 20 MiB, the spec's recommendation.
    pub max_http_body_bytes: usize,
    /// Sum of request bytes being read, inflated, decoded or consumed at
    /// once across both protocols; over it requests are refused retryably
    /// (HTTP 429 + `Retry-After`, gRPC `UNAVAILABLE` + `RetryInfo`) before
    /// decoding. Default 64 MiB.
    pub max_inflight_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_grpc_message_bytes: 20 << 20,
            max_http_body_bytes: 20 << 20,
            max_inflight_bytes: 64 << 20,
        }
    }
}

/// Why a server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The OTLP/gRPC server failed.
    #[error("OTLP/gRPC server on {addr}: {source}")]
    Grpc {
        /// The listener's address.
        addr: String,
        /// What failed.
        #[source]
        source: tonic::transport::Error,
    },
    /// The OTLP/HTTP server failed.
    #[error("OTLP/HTTP server on {addr}: {source}")]
    Http {
        /// The listener's address.
        addr: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// State shared by both receivers: consumer, limits, in-flight budget and
/// metrics. Cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    shared: Arc<Shared>,
}

struct Shared {
    consumer: Arc<dyn TracesConsumer>,
    options: Options,
    limiter: Limiter,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("options", &self.shared.options).finish_non_exhaustive()
    }
}

impl Receiver {
    /// Creates the shared state; nothing listens until the services are
    /// served.
    pub fn new(consumer: Arc<dyn TracesConsumer>, options: Options, metrics: Arc<Metrics>) -> Self {
        let limiter = Limiter::new(options.max_inflight_bytes);
        Receiver { shared: Arc::new(Shared { consumer, options, limiter, metrics }) }
    }

    /// The limits in force.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// The tonic service for `opentelemetry.proto.collector.trace.v1.TraceService/Export`
    /// (gzip accepted and sent, message size limited, in-flight budget
    /// applied). Add it to a `tonic::transport::Server`.
    pub fn grpc_service(&self) -> GrpcService {
        GrpcService::new(self.clone())
    }

    /// The axum router serving `POST /v1/traces` (any other method → 405).
    pub fn http_router(&self) -> axum::Router {
        http::router(self.clone())
    }
}

fn addr_of(listener: &tokio::net::TcpListener) -> String {
    listener.local_addr().map_or_else(|_| "unknown address".to_owned(), |a: SocketAddr| a.to_string())
}

/// Serves OTLP/gRPC on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight calls finish, and returns.
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    receiver: Receiver,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = addr_of(&listener);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(receiver.grpc_service())
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|source| Error::Grpc { addr, source })
}

/// Serves OTLP/HTTP on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish, and returns.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    receiver: Receiver,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = addr_of(&listener);
    axum::serve(listener, receiver.http_router())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Http { addr, source })
}

#[cfg(test)]
mod tests;
