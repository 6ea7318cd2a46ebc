//! OpenTelemetry for a Rust service in one call: traces, metrics and logs
//! (`tracing` events, with their span's ids) over OTLP (gRPC or HTTP, TLS,
//! gzip), Prometheus `/metrics`, trace-correlated JSON logs, and spans for
//! axum, reqwest, Redis, SQL, NATS and RabbitMQ.
//!
//! Why this crate: the OpenTelemetry SDK gives the parts (providers,
//! exporters, propagators) but every service re-does the same wiring, reads
//! the same environment variables, and hand-writes the same span attributes.
//! This crate is that wiring, once, on top of `opentelemetry`,
//! `opentelemetry_sdk`, `opentelemetry-otlp`, `tracing` and
//! `tracing-opentelemetry`. It re-implements none of them: every span is an
//! SDK span and every export is the SDK's exporter.
//!
//! # Example: a service
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use sightline_sdk::{Options, http_server::HttpServerLayer};
//!
//! // Reads TELEMETRY_ENABLED, OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_*...
//! let telemetry = sightline_sdk::init(Options::new("orders"))?;
//! let app = Router::new()
//!     .route("/orders/{id}", get(|| async { "ok" }))
//!     .merge(sightline_sdk::http_server::metrics_router(&telemetry))
//!     .layer(HttpServerLayer::new(&telemetry));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! // dropping `telemetry` flushes and shuts down the exporters
//! # Ok(()) }
//! ```
//!
//! # Configuration (environment, overridden by [`Options`] set in code)
//!
//! | variable | meaning |
//! |---|---|
//! | `TELEMETRY_ENABLED`, `OTEL_SDK_DISABLED` | either one off makes every helper a pass-through |
//! | `OTLP_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` | collector base URL; none set → console exporter |
//! | `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT` | per-signal URL, used as given |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc`, `http/protobuf` (default), `http/json` |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION` | request headers, timeout (ms), `gzip` / `none` |
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE`, `_CLIENT_CERTIFICATE`, `_CLIENT_KEY` | TLS: extra CA, client pair (rustls, ring, platform roots) |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage`, `b3`, `b3multi`, `jaeger`, `none` |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | resource (plus detected host, process, instance id) |
//! | `SERVICE_VERSION` (or `BFF_VERSION`), `ENVIRONMENT` | `service.version`, `deployment.environment` |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_*` |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | batch span processor |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | OTLP metrics push interval (ms) |
//! | `METRICS_PREFIX`, `LOG_FORMAT` | generic family prefix; `json` / `json-extended` / `text` |
//! | `TELEMETRY_STRICT` | `true`: a telemetry problem fails [`init`] instead of disabling its signal |
//!
//! # Design decisions
//!
//! - **A handle, not globals.** [`init`] installs the global tracer
//!   provider, propagator and `tracing` subscriber for code that uses them,
//!   but every helper here takes a [`Telemetry`] handle and uses *its*
//!   tracer and propagator. So tests run in parallel, each with its own
//!   in-memory exporter, and a disabled handle costs one branch.
//! - **OpenTelemetry context is the source of truth.** Helpers attach the
//!   span's [`opentelemetry::Context`] while the wrapped future is polled,
//!   and `tracing-opentelemetry` attaches a `tracing` span's context when it
//!   is entered, so spans from either API nest, and log lines find the
//!   current trace.
//! - **Metrics are recorded twice, on purpose:** to a Prometheus registry
//!   (pull, `/metrics`, the names the seed dashboards use such as
//!   `http_requests_total{method,endpoint,status}`) and to OTel instruments
//!   exported over OTLP (the semantic-convention names such as
//!   `http.server.request.duration`).
//! - **Carriers cover the wire, not the client.** Propagation works through
//!   `http::HeaderMap`, NATS headers, an AMQP field table (the
//!   `amq-protocol-types` type that lapin re-exports, so no AMQP client is
//!   compiled) and Kafka record headers (a plain list, no Kafka client: none
//!   can be run in this project's CI, so the carrier is unit-tested only).
//! - **Telemetry never stops the service.** A bad setting or an exporter
//!   that cannot be built is logged as an error and turns its signal off
//!   (strict mode makes it fatal); failed exports are rate-limited
//!   warnings with the reason; `init` logs where each signal goes.
//! - **TLS without aws-lc-rs.** rustls with the ring provider for both
//!   transports; OTLP/HTTP goes through hyper on a thread of its own
//!   rather than reqwest, whose rustls without a provider would make
//!   every default reqwest client in the user's build panic.
//! - **This crate never depends on the Sightline server's crates** (it is
//!   published from `libs/`).
//!
//! # Modules
//!
//! - [`http_server`] (feature `axum`): server spans and metrics layer,
//!   `/metrics`, [`health`] checks, [`public_metrics`] ingestion.
//! - [`http_client`] (feature `reqwest`): client spans, header injection.
//! - [`redis`] (feature `redis`), [`sql`]: database client spans.
//! - [`messaging`], [`nats`] (feature `nats`), [`rabbitmq`] (feature
//!   `lapin`), [`propagation`] carriers, [`baggage`]: producer/consumer
//!   spans and a FastStream-like baggage API (live inside handlers).
//! - [`bff`]: seed 001's `bff_*` metric families and helpers.
//! - [`redact`]: secret query parameters out of recorded URLs.
//! - [`spans`]: manual spans, exceptions, background tasks.
//! - [`logs`]: the JSON log layer (seed 002's shape) with `trace_id` and
//!   `span_id`, and WARN+ events as span events.
#![deny(missing_docs)]

mod config;
mod console;
mod error;
mod export;
mod exposition;
mod init;
mod metrics;
mod propagators;
mod resource;
mod transport;

pub mod baggage;
pub mod bff;
#[cfg(feature = "axum")]
pub mod health;
#[cfg(feature = "reqwest")]
pub mod http_client;
#[cfg(feature = "axum")]
pub mod http_server;
pub mod logs;
pub mod messaging;
#[cfg(feature = "nats")]
pub mod nats;
pub mod propagation;
#[cfg(feature = "axum")]
pub mod public_metrics;
#[cfg(feature = "lapin")]
pub mod rabbitmq;
pub mod redact;
#[cfg(feature = "redis")]
pub mod redis;
pub mod spans;
pub mod sql;

pub use config::{
    Compression, ExporterKind, Options, OtlpTarget, PropagatorKind, Protocol, SamplerConfig, Settings, Tls,
};
pub use console::ConsoleExporter;
pub use error::Error;
pub use init::{Guard, Telemetry, init, init_with_env};
pub use metrics::Metrics;
pub use propagators::{B3Encoding, B3Propagator, JaegerPropagator};

/// Re-exported so users name the same versions this crate was built with.
pub use opentelemetry;
/// Re-exported so users name the same versions this crate was built with.
pub use opentelemetry_sdk;

#[cfg(test)]
mod tests;
