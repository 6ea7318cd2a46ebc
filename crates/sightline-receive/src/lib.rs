//! Sightline's receivers: the front every receiver shares ([`front`]), and
//! the OTLP receivers for traces, logs and metrics — OTLP/gRPC and
//! OTLP/HTTP (binary protobuf and JSON), as the OTLP specification defines
//! them.
//!
//! Both transports read a request through the [`front::Front`], decode it,
//! turn it into the model's unit ([`sightline_model::Batch`],
//! [`sightline_model::LogBatch`], [`sightline_model::MetricBatch`]) with
//! the mapping in [`sightline_model::otlp`] and hand it to the signal's
//! consumer ([`TracesConsumer`], [`LogsConsumer`], [`MetricsConsumer`]);
//! what differs per signal is one trait implementation (`signals`). A
//! signal without a consumer is not served (404 / `UNIMPLEMENTED`), as the
//! Collector does for a signal no pipeline takes from its receiver. The
//! reply is a success only once the consumer
//! returned `Ok`, which for the embedded store means the batch is durable:
//! an OK is a promise, so nothing is acknowledged early and a consumer
//! refusal becomes the protocol's retryable error (HTTP 429/503 with
//! `Retry-After`, gRPC `UNAVAILABLE` with a `google.rpc.RetryInfo`). Items
//! with invalid ids are dropped one by one and reported through OTLP
//! partial success; they never fail the whole request.
//!
//! # Design
//!
//! - **One front.** Body limits, gzip, content types, the in-flight byte
//!   budget, timeouts, refusal mapping and metrics live in [`front`] and
//!   serve Zipkin too; a receiver here only decodes and hands on.
//! - **Bounded memory.** Every request is charged to the shared budget as
//!   its bytes arrive, as they inflate, and — before decoding — for the
//!   memory its decoded form will take, walked from its structure
//!   ([`front::cost`]). Charges never wait: over the budget the request is
//!   refused retryably, so an overload turns into sender backoff rather
//!   than a queue of buffered bodies, and a body of a million empty spans
//!   is refused instead of decoded.
//! - **Zero-copy WAL bytes.** A protobuf request whose spans were all
//!   accepted is stored as the exact (inflated) bytes received; only JSON
//!   and partially rejected requests are re-encoded.
//! - **Never crash on input.** Decoding errors become 400 /
//!   `INVALID_ARGUMENT` with a message that says what is wrong; sizes are
//!   checked before allocation; gzip is inflated in bounded chunks.
//!
//! The binary binds the listeners and serves the routers
//! ([`Receiver::grpc_router`], [`Receiver::http_router`]).
#![deny(missing_docs)]

pub mod filelog;
pub mod front;
mod grpc;
mod http;
mod ingest;
mod json;
mod signals;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::sync::Arc;

use sightline_model::{LogsConsumer, MetricsConsumer, TracesConsumer};

use front::Front;
pub use front::{Limits as Options, Metrics};

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` exactly as the OTLP/HTTP
/// receiver does (snake_case keys and `null`s accepted, errors naming the
/// field), for other surfaces that take OTLP/JSON — the query API's
/// `POST /api/transform`. The decoded size is bounded as in the receivers,
/// against a budget of [`DECODE_JSON_BUDGET`] per call.
pub fn decode_json(
    body: &[u8],
) -> Result<opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest, String> {
    let budget = front::Budget::new(DECODE_JSON_BUDGET);
    let mut claim = budget.claim();
    json::decode_request(body, &mut claim).map_err(|f| f.message().to_owned())
}

/// What one [`decode_json`] call may hold while decoding.
pub const DECODE_JSON_BUDGET: usize = 256 << 20;

/// The OTLP receiver: a consumer per signal it serves, and the shared
/// front. Cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    traces: Option<Arc<dyn TracesConsumer>>,
    logs: Option<Arc<dyn LogsConsumer>>,
    metrics: Option<Arc<dyn MetricsConsumer>>,
    front: Front,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("front", &self.front).finish_non_exhaustive()
    }
}

impl Receiver {
    /// The name metrics and the pipeline config know this receiver by.
    pub const NAME: &'static str = "otlp";

    /// A receiver handing spans to `consumer` through `front` (shared
    /// with the other receivers: one budget for all).
    pub fn with_front(consumer: Arc<dyn TracesConsumer>, front: Front) -> Self {
        Receiver::signals(front).traces(consumer)
    }

    /// A receiver serving no signal yet; add them with
    /// [`Receiver::traces`], [`Receiver::logs`], [`Receiver::metrics`].
    pub fn signals(front: Front) -> Self {
        Receiver { traces: None, logs: None, metrics: None, front }
    }

    /// Serves traces, handing spans to `consumer`.
    pub fn traces(mut self, consumer: Arc<dyn TracesConsumer>) -> Self {
        self.traces = Some(consumer);
        self
    }

    /// Serves logs, handing log records to `consumer`.
    pub fn logs(mut self, consumer: Arc<dyn LogsConsumer>) -> Self {
        self.logs = Some(consumer);
        self
    }

    /// Serves metrics, handing them to `consumer`.
    pub fn metrics(mut self, consumer: Arc<dyn MetricsConsumer>) -> Self {
        self.metrics = Some(consumer);
        self
    }

    /// Whether any signal is served.
    pub fn serves_any(&self) -> bool {
        self.traces.is_some() || self.logs.is_some() || self.metrics.is_some()
    }

    /// A receiver with a front of its own (tests, embedding).
    pub fn new(consumer: Arc<dyn TracesConsumer>, options: Options, metrics: Arc<Metrics>) -> Self {
        Receiver::with_front(consumer, Front::new(options, metrics))
    }

    /// The front it reads requests through.
    pub fn front(&self) -> &Front {
        &self.front
    }

    /// The router serving `opentelemetry.proto.collector.{trace,logs,metrics}.v1.*/Export`
    /// over gRPC (HTTP/2) for the signals served; other methods are
    /// `UNIMPLEMENTED`.
    pub fn grpc_router(&self) -> axum::Router {
        grpc::router(self.clone())
    }

    /// The router serving `POST /v1/traces`, `/v1/logs`, `/v1/metrics` for
    /// the signals served (any other method → 405, other paths 404).
    pub fn http_router(&self) -> axum::Router {
        http::router(self.clone())
    }
}

/// Serves OTLP/gRPC on `listener` until `shutdown` resolves (plain
/// `axum::serve`, for tests and embedding; the binary serves every
/// listener through `sightline-guard`, with timeouts and TLS).
pub async fn serve_grpc(
    listener: tokio::net::TcpListener,
    receiver: Receiver,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, receiver.grpc_router()).with_graceful_shutdown(shutdown).await
}

/// Serves OTLP/HTTP on `listener` until `shutdown` resolves (see
/// [`serve_grpc`]).
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    receiver: Receiver,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, receiver.http_router()).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
