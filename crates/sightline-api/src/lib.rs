//! Sightline's HTTP query surface: the query APIs of Jaeger (v1 JSON and
//! API v3) and of Tempo, which Jaeger UI and Grafana's Jaeger and Tempo data
//! sources speak, plus `/health`, `/ready` and `/metrics`.
//!
//! # Routes
//!
//! Jaeger v1 (`{"data","total","limit","offset","errors"}` envelope; every
//! route takes `prettyPrint`):
//!
//! | Route | Answers |
//! | --- | --- |
//! | `GET /api/services` | service names |
//! | `GET /api/services/{service}/operations` | operation names (legacy, still used by Jaeger UI) |
//! | `GET /api/operations?service=&spanKind=` | `{name, spanKind}` pairs; an unknown kind lists none |
//! | `GET /api/traces?service=&operation=&tags=&tag=&minDuration=&maxDuration=&start=&end=&limit=&traceID=` | full traces, adjusted (`limit` 100 by default) |
//! | `GET /api/traces/{traceID}?start=&end=&raw=` | one trace (hex or base64 id), adjusted unless `raw`; 404 when unknown (also for id 0). With `Accept: application/protobuf`: Tempo's `tempopb.Trace` |
//! | `POST /api/transform` | OTLP/JSON in, Jaeger UI traces out (Jaeger UI's upload) |
//! | `GET /api/dependencies?endTs=&lookback=&service=` | service call graph |
//! | `GET /api/metrics/{latencies,calls,errors}?service=&spanKind=&groupByOperation=&endTs=&lookback=&step=&ratePer=[&quantile=]` | span metrics for Jaeger UI's Monitor tab |
//! | `GET /api/metrics/minstep` | the span metrics' resolution |
//! | `POST /api/archive/{traceID}`, `GET /api/quality-metrics`, `GET /api/deep-dependencies` | 501: not served |
//!
//! Jaeger API v3 (OTLP/JSON traces; errors as `{"error":{"httpCode","message"}}`):
//!
//! | Route | Answers |
//! | --- | --- |
//! | `GET /api/v3/services` | `{services}` |
//! | `GET /api/v3/operations?service=&spanKind=` | `{operations: [{name, spanKind}]}` |
//! | `GET /api/v3/traces?query.serviceName=&query.operationName=&query.attributes=&query.startTimeMin=&query.startTimeMax=&query.durationMin=&query.durationMax=&query.searchDepth=&query.rawTraces=` | `{result: {resourceSpans}}`; both times (RFC 3339) required; snake_case spellings too |
//! | `GET /api/v3/traces/{trace_id}?startTime=&endTime=&rawTraces=` | one trace; 404 `No traces found` |
//! | `GET /api/v3/trace-summaries?query.…` | `{summaries: [{traceId, rootServiceName, rootOperationName, minStartTimeUnixNano, maxEndTimeUnixNano, spanCount, errorSpanCount, orphanSpanCount, services}]}` |
//!
//! Tempo (plain-text errors; `X-Scope-OrgID` accepted):
//!
//! | Route | Answers |
//! | --- | --- |
//! | `GET /api/echo`, `GET /api/status/buildinfo` | Grafana's connection test; the version |
//! | `GET /api/v2/traces/{traceID}?start=&end=` | `tempopb.TraceByIDResponse` as protobuf (`Accept: application/protobuf`) or JSON |
//! | `GET /api/search?q=&tags=&minDuration=&maxDuration=&limit=&spss=&start=&end=` | `{traces: [{traceID, rootServiceName, rootTraceName, startTimeUnixNano, durationMs, spanSets, serviceStats}], metrics}`; `q` is TraceQL (`sightline-traceql`), `tags` Tempo's legacy logfmt tags |
//! | `GET /api/v2/search/tags?scope=`, `GET /api/search/tags` | attribute names per scope (plus `intrinsic`), or in one list |
//! | `GET /api/v2/search/tag/{tag}/values`, `GET /api/search/tag/{tag}/values` | typed values of a TraceQL attribute or intrinsic; text values of a bare name |
//!
//! Logs (the envelope of `/api/traces` with `next` and `warnings`; times in
//! µs; see the README for the record shape):
//!
//! | Route | Answers |
//! | --- | --- |
//! | `GET /api/logs?traceID=&spanID=&service=&minSeverity=&q=&tags=&tag=&start=&end=&limit=&cursor=` | `{data: [record], total, limit, next, errors, warnings}`, newest first; `q` is a substring or `/regex/`; `limit` 100 by default, at most 1000 |
//! | `GET /api/logs/tail?` (same filters, no `limit`/`cursor`) | server-sent events: `log` (one record each), a final `dropped` for a client too slow to keep up |
//! | `GET /api/logs/services` | service names with stored records (with live peers' sharing a bucket; `sightline-warnings` names a peer that did not answer) |
//!
//! Any other `/api/…` or `/analytics/…` path is a JSON 404, never the web
//! UI's page. `GET /health`, `GET /ready` and `GET /metrics` serve
//! operations.
//!
//! `/metrics` speaks OpenMetrics (with exemplars) to clients that ask for it
//! in `Accept` — Prometheus does — and the Prometheus text format 0.0.4
//! otherwise, as the Go client library negotiates, so `curl` output passes
//! `promtool check metrics`.
//!
//! # Design
//!
//! * **This crate is the only one that knows the query APIs' JSON.**
//!   Storage is reached only through [`SpanReader`]; model types never
//!   derive `Serialize`. Separate borrowed DTOs (`dto.rs`) are filled by one
//!   converter (`jaeger.rs`), so the wire shape can follow Jaeger exactly
//!   without bending the model, and a large trace is not copied to be sent.
//!   OTLP-shaped answers (API v3, Tempo) are the model's own OTLP encoding
//!   (`sightline_model::otlp`) written as JSON by `otlp_json.rs`, in OTLP's
//!   spelling for Jaeger and protobuf's canonical one for Tempo.
//! * **Upstream is the specification.** Parameter names, defaults,
//!   validation order and error texts follow Jaeger's `query_parser.go` and
//!   `apiv3/`, and Tempo's `pkg/api`; durations are parsed by a port of Go's
//!   `time.ParseDuration`, times by Go's RFC 3339 rules; spans are rendered
//!   the way Jaeger renders OTLP spans (the Collector's OTLP → Jaeger
//!   translator followed by Jaeger's `FromDomain`) after Jaeger's adjusters
//!   (`adjust.rs`). Clients were written against that behaviour, so matching
//!   it beats improving on it. The deliberate departures: `total` counts the
//!   returned items (Jaeger leaves it 0 for traces and dependencies), an
//!   absent `start`/`end` leaves a v1 search window open rather than
//!   defaulting to the last two days, time windows on by-id routes are
//!   checked but never hide a stored trace (Grafana sends milliseconds or
//!   its dashboard range there), span metrics refuse `tag` filters and
//!   invalid steps, windows or quantiles with 400 where Jaeger would pass
//!   them on to Prometheus, and Sightline answers 501 where Jaeger serves
//!   sample data (quality metrics, deep dependencies).
//! * **Every failure is a response.** Handlers return `Result<_, ApiError>`
//!   (or its v3 and Tempo wrappers); `error.rs` alone maps error kinds to
//!   statuses and to each API's error body.
//! * **Metrics at the boundary.** One middleware times every `/api` query and
//!   counts every request by route template (never raw path) and status;
//!   handlers log nothing per request.
//! * **Composable.** [`router`] returns a plain `Router` with no fallback, so
//!   the binary can merge a UI router into it.
#![deny(missing_docs)]

mod adjust;
mod dto;
mod duration;
mod error;
mod exposition;
mod ids;
pub mod internal;
mod jaeger;
mod logs;
mod metrics;
mod ops;
mod otlp_json;
mod params;
mod query;
mod render;
mod scope;
mod spm;
mod summary;
mod tempo;
mod timestamp;
mod v3;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use prometheus_client::registry::Registry;
use sightline_model::{ComponentHealth, SpanMetricsReader, TenantReaders};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;

pub use error::ApiError;
pub use metrics::Metrics;
pub use scope::WARNINGS_HEADER;

/// Everything the handlers need, shared by all requests.
#[derive(Clone)]
pub struct ApiState {
    /// Where traces are read from: each request reads the reader of its
    /// tenant (from the request's extensions, set by the auth layer), so
    /// answers never mix tenants. An `Arc<dyn SpanReader>` serves one
    /// reader to every tenant.
    pub readers: Arc<dyn TenantReaders>,
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
    /// Span metrics for `/api/metrics/*`, asked for the request's tenant's
    /// series; `None` answers 501 ("metrics querying is currently
    /// disabled"), as Jaeger without a metrics store.
    pub span_metrics: Option<Arc<dyn SpanMetricsReader>>,
    /// Service-graph edges of the request's tenant, merged into
    /// `/api/dependencies` (per edge the larger of the stored-span count and the live graph's count: both
    /// count the same calls, so summing would double them).
    pub service_graph: Option<Arc<dyn sightline_model::ServiceGraphReader>>,
    /// The log store of each tenant for `/api/logs*` (each request reads
    /// its tenant's; an `Arc<dyn LogReader>` serves one store to every
    /// tenant); `None` answers 501 ("log storage is not enabled").
    pub logs: Option<Arc<dyn sightline_model::LogTenantReaders>>,
}

/// Largest OTLP/JSON body `POST /api/transform` takes: a trace file a user
/// uploads to Jaeger UI, which can be far beyond axum's 2 MB default.
const MAX_TRANSFORM_BYTES: usize = 64 * 1024 * 1024;

/// Builds the router serving every route in the crate docs.
pub fn router(state: ApiState) -> Router {
    let metrics = Arc::clone(&state.metrics);
    Router::new()
        .route("/api/services", get(query::services))
        .route("/api/services/{service}/operations", get(query::service_operations))
        .route("/api/operations", get(query::operations))
        .route("/api/traces", get(query::find_traces))
        .route("/api/traces/{traceID}", get(query::trace_by_id))
        .route("/api/transform", post(query::transform).layer(DefaultBodyLimit::max(MAX_TRANSFORM_BYTES)))
        .route("/api/archive/{traceID}", post(query::archive))
        .route("/api/quality-metrics", get(query::not_implemented))
        .route("/api/deep-dependencies", get(query::not_implemented))
        .route("/api/dependencies", get(query::dependencies))
        .route("/api/metrics/latencies", get(spm::latencies))
        .route("/api/metrics/calls", get(spm::calls))
        .route("/api/metrics/errors", get(spm::errors))
        .route("/api/metrics/minstep", get(spm::min_step))
        .route("/api/v3/services", get(v3::services))
        .route("/api/v3/operations", get(v3::operations))
        .route("/api/v3/traces", get(v3::find_traces))
        .route("/api/v3/traces/{trace_id}", get(v3::trace))
        .route("/api/v3/trace-summaries", get(v3::trace_summaries))
        .route("/api/logs", get(logs::search))
        .route("/api/logs/tail", get(logs::tail))
        .route("/api/logs/services", get(logs::services))
        .route("/api/echo", get(tempo::echo))
        .route("/api/status/buildinfo", get(tempo::buildinfo))
        .route("/api/v2/traces/{traceID}", get(tempo::trace_v2))
        .route("/api/search", get(tempo::search))
        .route("/api/search/tags", get(tempo::tags_v1))
        .route("/api/v2/search/tags", get(tempo::tags_v2))
        .route("/api/search/tag/{tag}/values", get(tempo::tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tempo::tag_values_v2))
        .route("/api", any(query::unknown_route))
        .route("/api/{*rest}", any(query::unknown_route))
        .route("/analytics", any(query::unknown_route))
        .route("/analytics/{*rest}", any(query::unknown_route))
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .layer(axum::middleware::from_fn(scope::warn_partial))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::track))
        // gzip when the client accepts it, as Jaeger's query service does: a
        // 10k-span trace is 4.6 MB of JSON, 313 KB gzipped. The fastest level
        // adds ~5 ms on that trace, which matters on loopback.
        .layer(CompressionLayer::new().gzip(true).quality(CompressionLevel::Fastest))
        .with_state(state)
}

#[cfg(test)]
mod tests;
