//! Sightline's HTTP query surface: the Jaeger query API that Jaeger UI and
//! Grafana's Jaeger data source speak, plus `/health`, `/ready` and
//! `/metrics`.
//!
//! # Routes
//!
//! | Route | Answers |
//! | --- | --- |
//! | `GET /api/services` | service names |
//! | `GET /api/services/{service}/operations` | operation names (legacy, still used by Jaeger UI) |
//! | `GET /api/operations?service=&spanKind=` | `{name, spanKind}` pairs |
//! | `GET /api/traces?service=&operation=&tags=&tag=&minDuration=&maxDuration=&start=&end=&limit=&traceID=` | full traces |
//! | `GET /api/traces/{traceID}` | one trace, 404 when unknown |
//! | `GET /api/dependencies?endTs=&lookback=` | service call graph |
//! | `GET /api/metrics/{latencies,calls,errors}?service=&spanKind=&groupByOperation=&endTs=&lookback=&step=&ratePer=[&quantile=]` | span metrics for Jaeger UI's Monitor tab |
//! | `GET /api/metrics/minstep` | the span metrics' resolution |
//! | `GET /health`, `GET /ready`, `GET /metrics` | operations |
//!
//! `/metrics` speaks OpenMetrics (with exemplars) to clients that ask for it
//! in `Accept` — Prometheus does — and the Prometheus text format 0.0.4
//! otherwise, as the Go client library negotiates, so `curl` output passes
//! `promtool check metrics`.
//!
//! # Design
//!
//! * **This crate is the only one that knows Jaeger's JSON.** Storage is
//!   reached only through [`SpanReader`]; model types never derive
//!   `Serialize`. Separate borrowed DTOs (`dto.rs`) are filled by one
//!   converter (`jaeger.rs`), so the wire shape can follow Jaeger exactly
//!   without bending the model, and a large trace is not copied to be sent.
//! * **Jaeger is the specification.** Parameter names, defaults, validation
//!   order and error texts follow Jaeger's `query_parser.go`; durations are
//!   parsed by a port of Go's `time.ParseDuration`; spans are rendered the
//!   way Jaeger renders OTLP spans (the Collector's OTLP → Jaeger translator
//!   followed by Jaeger's `FromDomain`). Clients were written against that
//!   behaviour, so matching it beats improving on it. The deliberate
//!   departures: `total` counts the returned items (Jaeger leaves it 0 for
//!   traces and dependencies), `limit` defaults to 20 (what Jaeger UI sends),
//!   an absent `start`/`end` leaves the window open rather than
//!   defaulting to the last two days, and span metrics refuse `tag` filters
//!   and invalid steps, windows or quantiles with 400 where Jaeger would
//!   pass them on to Prometheus.
//! * **Every failure is a response.** Handlers return `Result<_, ApiError>`;
//!   [`ApiError`] alone maps error kinds to statuses and to Jaeger's
//!   `{"data":null,…,"errors":[{"code","msg"}]}` envelope.
//! * **Metrics at the boundary.** One middleware times every `/api` query and
//!   counts every request by route template (never raw path) and status;
//!   handlers log nothing per request.
//! * **Composable.** [`router`] returns a plain `Router` with no fallback, so
//!   the binary can merge a UI router into it.
#![deny(missing_docs)]

mod dto;
mod duration;
mod error;
mod exposition;
mod jaeger;
mod metrics;
mod ops;
mod params;
mod query;
mod spm;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::routing::get;
use prometheus_client::registry::Registry;
use sightline_model::{ComponentHealth, SpanMetricsReader, SpanReader};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;

pub use error::ApiError;
pub use metrics::Metrics;

/// Everything the handlers need, shared by all requests.
#[derive(Clone)]
pub struct ApiState {
    /// Where traces are read from.
    pub reader: Arc<dyn SpanReader>,
    /// Current health of each component (the binary supplies the store's
    /// and receivers' checks); called on every `/health` request.
    pub health: Arc<dyn Fn() -> Vec<ComponentHealth> + Send + Sync>,
    /// Set by the binary once all listeners serve; `/ready` reports it.
    pub ready: Arc<AtomicBool>,
    /// Rendered by `/metrics`. The binary registers every crate's metrics
    /// before building the router, since a registry is only mutable before
    /// it is shared.
    pub registry: Arc<Registry>,
    /// This crate's own metrics, registered in `registry`.
    pub metrics: Arc<Metrics>,
    /// Span metrics for `/api/metrics/*`; `None` answers 501 ("metrics
    /// querying is currently disabled"), as Jaeger without a metrics store.
    pub span_metrics: Option<Arc<dyn SpanMetricsReader>>,
    /// Service-graph edges, merged into `/api/dependencies` (per edge the
    /// larger of the stored-span count and the live graph's count: both
    /// count the same calls, so summing would double them).
    pub service_graph: Option<Arc<dyn sightline_model::ServiceGraphReader>>,
}

/// Builds the router serving every route in the crate docs.
pub fn router(state: ApiState) -> Router {
    let metrics = Arc::clone(&state.metrics);
    Router::new()
        .route("/api/services", get(query::services))
        .route("/api/services/{service}/operations", get(query::service_operations))
        .route("/api/operations", get(query::operations))
        .route("/api/traces", get(query::find_traces))
        .route("/api/traces/{traceID}", get(query::trace_by_id))
        .route("/api/dependencies", get(query::dependencies))
        .route("/api/metrics/latencies", get(spm::latencies))
        .route("/api/metrics/calls", get(spm::calls))
        .route("/api/metrics/errors", get(spm::errors))
        .route("/api/metrics/minstep", get(spm::min_step))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track))
        // gzip when the client accepts it, as Jaeger's query service does: a
        // 10k-span trace is 4.6 MB of JSON, 313 KB gzipped. The fastest level
        // adds ~5 ms on that trace, which matters on loopback.
        .layer(CompressionLayer::new().gzip(true).quality(CompressionLevel::Fastest))
        .with_state(state)
}

#[cfg(test)]
mod tests;
