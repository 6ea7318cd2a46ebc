//! Span metrics: request, error and duration (RED) metrics derived from
//! every span that passes, as the Collector's `spanmetrics` connector
//! derives them, served on `/metrics` and to Jaeger's Monitor tab.
//!
//! For each series — `service.name`, span name, span kind, status code and
//! the configured extra dimensions — it keeps a calls counter and a
//! duration histogram, named from the `namespace` like the Collector's
//! Prometheus exporter names them:
//!
//! ```text
//! traces_span_metrics_calls_total{service_name="shop",span_name="GET /cart",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR"} 3
//! traces_span_metrics_duration_seconds_bucket{…,le="0.1"} 2
//! ```
//!
//! Both carry exemplars (`trace_id`, `span_id` of a recent span), which
//! `/metrics` shows in the OpenMetrics format. Once `cardinality_limit`
//! series exist, spans of new series all land in one series labelled only
//! `otel_metric_overflow="true"`, as the Collector does: totals stay right,
//! memory stays bounded.
//!
//! **Time series for Jaeger's SPM API.** Besides the cumulative metrics it
//! keeps, per (service, operation, kind) and per minute, the calls, errors
//! and a latency histogram (same buckets) for `time_series_window` (2 h by
//! default), and answers [`SpanMetricsReader`] queries from them. Cost: per
//! series and minute with spans, `4 · (2 + buckets + 1)` bytes plus ~40 of
//! bookkeeping — with the 16 default buckets ~116 B, so a busy series costs
//! ~14 KiB over 2 h and the default limit of 2000 series caps it at
//! ~27 MiB. Minutes are stamped with the time the processor saw the span
//! (as a Prometheus scrape would), not the span's own clock.
//!
//! **Tenants.** Series are kept per tenant (the batch's): a tenant's SPM
//! queries read only its own windows, and on `/metrics` the series of
//! tenants other than the default one carry a `tenant` label. The
//! cardinality limit is shared.
//!
//! **Pass-through.** The batch goes downstream untouched (no re-encoding);
//! spans are counted only once downstream accepted the batch, so a refused
//! batch that the sender retries is not counted twice.

mod window;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use prometheus_client::encoding::{
    EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};
use prometheus_client::metrics::exemplar::{CounterWithExemplar, HistogramWithExemplars};
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::registry::{Registry, Unit};
use sightline_model::{
    Batch, ConsumeError, MetricSeries, MetricsQuery, QueryError, Span, SpanId, SpanKind, SpanMetricsReader,
    StatusCode, Tenant, TraceId, TracesConsumer, Value,
};

use self::window::{MINUTE_MS, Measure, Merged, Range, Window};
use super::{Clock, FastMap, Next, system_clock};
use crate::Component;

/// The Collector's default explicit buckets, in ms.
pub const DEFAULT_BUCKETS_MS: &[u64] =
    &[2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000];

/// The Collector's default namespace.
pub const DEFAULT_NAMESPACE: &str = "traces.span.metrics";

/// Default series limit: the OpenTelemetry SDKs' default cardinality limit.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// The attribute that marks the overflow series (`otel_metric_overflow` on
/// `/metrics`).
pub const OVERFLOW_LABEL: &str = "otel_metric_overflow";

/// Unit of the duration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    /// `s`: `…_duration_seconds` (the default; Prometheus' base unit).
    Seconds,
    /// `ms`: `…_duration_milliseconds`, the Collector's legacy default.
    Milliseconds,
}

impl DurationUnit {
    fn nanos(self) -> f64 {
        match self {
            DurationUnit::Seconds => 1e9,
            DurationUnit::Milliseconds => 1e6,
        }
    }
}

/// An extra dimension: an attribute looked up on the span, then on its
/// resource; without a value and without `default` the label is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dimension {
    /// Attribute key, e.g. `http.method`.
    pub name: String,
    /// Value when the attribute is missing.
    pub default: Option<String>,
}

/// Settings of a span metrics processor.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Metric name prefix; dots become underscores on `/metrics`.
    pub namespace: String,
    /// Extra dimensions.
    pub dimensions: Vec<Dimension>,
    /// Histogram unit.
    pub unit: DurationUnit,
    /// Histogram bucket upper bounds.
    pub buckets: Vec<Duration>,
    /// Series beyond this collapse into the overflow series.
    pub cardinality_limit: usize,
    /// Attach exemplars (trace and span id) to the metrics.
    pub exemplars: bool,
    /// How long the per-minute series for Jaeger's SPM API are kept.
    pub time_series_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            dimensions: Vec::new(),
            unit: DurationUnit::Seconds,
            buckets: DEFAULT_BUCKETS_MS.iter().map(|ms| Duration::from_millis(*ms)).collect(),
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            exemplars: true,
            time_series_window: Duration::from_secs(2 * 3600),
        }
    }
}

/// The Prometheus name of an attribute key or namespace: characters other
/// than letters, digits and `_` become `_`; a leading digit gets `key_`.
pub fn prometheus_name(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    out
}

/// `SPAN_KIND_SERVER`…, as the Collector labels kinds.
pub fn span_kind_label(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "SPAN_KIND_UNSPECIFIED",
        SpanKind::Internal => "SPAN_KIND_INTERNAL",
        SpanKind::Server => "SPAN_KIND_SERVER",
        SpanKind::Client => "SPAN_KIND_CLIENT",
        SpanKind::Producer => "SPAN_KIND_PRODUCER",
        SpanKind::Consumer => "SPAN_KIND_CONSUMER",
    }
}

/// `STATUS_CODE_ERROR`…, as the Collector labels status codes.
pub fn status_code_label(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Unset => "STATUS_CODE_UNSET",
        StatusCode::Ok => "STATUS_CODE_OK",
        StatusCode::Error => "STATUS_CODE_ERROR",
    }
}

type Labels = Vec<(String, String)>;

/// Exemplar labels, hex-encoded only when `/metrics` is rendered.
#[derive(Debug, Clone, Copy)]
struct ExemplarIds {
    trace: TraceId,
    span: SpanId,
}

struct Hex<'a>(&'a [u8]);

impl EncodeLabelValue for Hex<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        for b in self.0 {
            write!(encoder, "{b:02x}")?;
        }
        Ok(())
    }
}

impl EncodeLabelSet for ExemplarIds {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("trace_id", Hex(self.trace.as_bytes())).encode(encoder.encode_label())?;
        ("span_id", Hex(self.span.as_bytes())).encode(encoder.encode_label())
    }
}

type Calls = CounterWithExemplar<ExemplarIds>;
type Durations = HistogramWithExemplars<ExemplarIds>;

/// Makes histograms with the configured buckets.
#[derive(Debug, Clone)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<Durations> for Buckets {
    fn new_metric(&self) -> Durations {
        HistogramWithExemplars::new(self.0.iter().copied())
    }
}

/// One Prometheus series and the per-minute window it feeds.
struct Series {
    calls: Calls,
    duration: Durations,
    /// `None` for the overflow series.
    window: Option<Arc<Mutex<Window>>>,
}

/// (tenant, service, operation, kind).
type WindowKey = (Tenant, String, String, SpanKind);

#[derive(Default)]
struct State {
    /// By key: service, name, kind, status and dimension values joined.
    series: FastMap<String, Arc<Series>>,
    overflow: Option<Arc<Series>>,
    windows: FastMap<WindowKey, Arc<Mutex<Window>>>,
    /// Minute index of the last prune.
    pruned_at: i64,
}

/// A span resolved to its series, waiting for downstream to accept it.
pub(crate) struct Observation {
    series: Arc<Series>,
    duration_nanos: u64,
    error: bool,
    ids: ExemplarIds,
}

/// The aggregator behind one or more processors (one per config id): the
/// Prometheus families, the SPM windows, and the [`SpanMetricsReader`].
pub struct SpanMetrics {
    config: Config,
    bounds_ms: Vec<f64>,
    calls: Family<Labels, Calls>,
    duration: Family<Labels, Durations, Buckets>,
    state: Mutex<State>,
    clock: Clock,
}

impl std::fmt::Debug for SpanMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanMetrics").field("config", &self.config).finish_non_exhaustive()
    }
}

fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

impl SpanMetrics {
    /// Creates the aggregator with the system clock. Call
    /// [`SpanMetrics::register`] to expose it on `/metrics`.
    pub fn new(config: Config) -> SpanMetrics {
        SpanMetrics::with_clock(config, system_clock())
    }

    /// Creates the aggregator reading time from `clock` (tests inject a
    /// fixed one).
    pub fn with_clock(config: Config, clock: Clock) -> SpanMetrics {
        let unit = config.unit.nanos();
        let bounds: Arc<[f64]> = config.buckets.iter().map(|d| d.as_nanos() as f64 / unit).collect();
        let bounds_ms = config.buckets.iter().map(|d| d.as_nanos() as f64 / 1e6).collect();
        SpanMetrics {
            config,
            bounds_ms,
            calls: Family::default(),
            duration: Family::new_with_constructor(Buckets(bounds)),
            state: Mutex::new(State::default()),
            clock,
        }
    }

    /// Registers `<namespace>_calls_total` and
    /// `<namespace>_duration_{seconds,milliseconds}` (namespace with dots
    /// as underscores; no prefix when it is empty).
    pub fn register(&self, registry: &mut Registry) {
        let ns = prometheus_name(&self.config.namespace);
        let name = |metric: &str| if ns.is_empty() { metric.to_owned() } else { format!("{ns}_{metric}") };
        registry.register(
            name("calls"),
            "Spans seen, by service, span name, kind, status code and configured dimensions",
            self.calls.clone(),
        );
        let unit = match self.config.unit {
            DurationUnit::Seconds => Unit::Seconds,
            DurationUnit::Milliseconds => Unit::Other("milliseconds".to_owned()),
        };
        registry.register_with_unit(
            name("duration"),
            "Span durations, by service, span name, kind, status code and configured dimensions",
            unit,
            self.duration.clone(),
        );
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Resolves each span of `tenant` to its series (creating series up
    /// to the limit).
    pub(crate) fn observe(&self, tenant: &Tenant, spans: &[Span]) -> Vec<Observation> {
        let mut state = self.state.lock();
        let mut key = String::with_capacity(128);
        let mut text = String::new();
        let mut out = Vec::with_capacity(spans.len());
        for span in spans {
            key.clear();
            // Tenant names never contain NUL, so keys cannot collide.
            key.push_str(tenant.as_str());
            key.push('\0');
            key.push_str(span.service_name());
            key.push('\0');
            key.push_str(&span.name);
            key.push('\0');
            key.push(char::from(b'0' + span.kind as u8));
            key.push(char::from(b'0' + span.status.code as u8));
            for dim in &self.config.dimensions {
                key.push('\0');
                text.clear();
                match dimension_value(span, dim, &mut text) {
                    Some(v) => {
                        key.push('\u{2}');
                        key.push_str(v);
                    }
                    None => key.push('\u{1}'),
                }
            }
            let series = match state.series.get(key.as_str()) {
                Some(s) => Arc::clone(s),
                None if state.series.len() >= self.config.cardinality_limit => {
                    let calls = &self.calls;
                    let duration = &self.duration;
                    Arc::clone(state.overflow.get_or_insert_with(|| {
                        let labels = vec![(OVERFLOW_LABEL.to_owned(), "true".to_owned())];
                        Arc::new(Series {
                            calls: calls.get_or_create_owned(&labels),
                            duration: duration.get_or_create_owned(&labels),
                            window: None,
                        })
                    }))
                }
                None => {
                    let series = Arc::new(self.new_series(&mut state, tenant, span));
                    state.series.insert(key.clone(), Arc::clone(&series));
                    series
                }
            };
            out.push(Observation {
                series,
                duration_nanos: span.duration_nanos(),
                error: span.status.code == StatusCode::Error,
                ids: ExemplarIds { trace: span.trace_id, span: span.span_id },
            });
        }
        out
    }

    fn new_series(&self, state: &mut State, tenant: &Tenant, span: &Span) -> Series {
        let mut labels: Labels = Vec::with_capacity(5 + self.config.dimensions.len());
        if !tenant.is_default() {
            labels.push(("tenant".to_owned(), tenant.to_string()));
        }
        labels.extend([
            ("service_name".to_owned(), span.service_name().to_owned()),
            ("span_name".to_owned(), span.name.clone()),
            ("span_kind".to_owned(), span_kind_label(span.kind).to_owned()),
            ("status_code".to_owned(), status_code_label(span.status.code).to_owned()),
        ]);
        let mut text = String::new();
        for dim in &self.config.dimensions {
            text.clear();
            if let Some(v) = dimension_value(span, dim, &mut text) {
                labels.push((prometheus_name(&dim.name), v.to_owned()));
            }
        }
        let window_key = (tenant.clone(), span.service_name().to_owned(), span.name.clone(), span.kind);
        let window = Arc::clone(state.windows.entry(window_key).or_default());
        Series {
            calls: self.calls.get_or_create_owned(&labels),
            duration: self.duration.get_or_create_owned(&labels),
            window: Some(window),
        }
    }

    /// Counts observed spans (downstream accepted them).
    pub(crate) fn record(&self, observations: Vec<Observation>) {
        let now = (self.clock)();
        let now_ms = unix_millis(now);
        let unit = self.config.unit.nanos();
        let buckets = self.bounds_ms.len() + 1;
        let timestamp = self.config.exemplars.then_some(now);
        for o in observations {
            let exemplar = self.config.exemplars.then_some(o.ids);
            o.series.calls.inc_by(1, exemplar, timestamp);
            o.series.duration.observe(o.duration_nanos as f64 / unit, exemplar, timestamp);
            if let Some(window) = &o.series.window {
                let ms = o.duration_nanos as f64 / 1e6;
                let bucket = self.bounds_ms.partition_point(|b| *b < ms);
                window.lock().record(now_ms, o.error, bucket, buckets);
            }
        }
        self.prune(now_ms);
    }

    /// Drops minutes older than the window, at most once a minute.
    fn prune(&self, now_ms: i64) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        let mut state = self.state.lock();
        if state.pruned_at == minute {
            return;
        }
        state.pruned_at = minute;
        let window_minutes = i64::try_from(self.config.time_series_window.as_secs() / 60).unwrap_or(i64::MAX);
        let oldest = minute.saturating_sub(window_minutes);
        for w in state.windows.values() {
            w.lock().prune(oldest);
        }
    }

    fn query(&self, q: &MetricsQuery, measure: Measure) -> Result<Vec<MetricSeries>, QueryError> {
        let range = Range::new(q.end_unix_millis, q.lookback_millis, q.step_millis, q.rate_per_millis)?;
        let windows: Vec<(WindowKey, Arc<Mutex<Window>>)> = {
            let state = self.state.lock();
            state
                .windows
                .iter()
                .filter(|((tenant, service, _, kind), _)| {
                    *tenant == q.tenant && q.services.contains(service) && q.span_kinds.contains(kind)
                })
                .map(|(k, w)| (k.clone(), Arc::clone(w)))
                .collect()
        };
        let mut groups: std::collections::BTreeMap<Labels, Merged> = Default::default();
        for ((_, service, operation, _), window) in windows {
            let mut labels = vec![("service_name".to_owned(), service)];
            if q.group_by_operation {
                labels.push(("operation".to_owned(), operation));
            }
            groups.entry(labels).or_default().add(&window.lock(), &range);
        }
        Ok(groups
            .into_iter()
            .filter(|(_, merged)| !merged.is_empty())
            .map(|(labels, merged)| MetricSeries {
                points: merged.points(&range, measure, &self.bounds_ms),
                labels,
            })
            .filter(|s| !s.points.is_empty())
            .collect())
    }
}

/// The dimension's value for `span`: span attribute, else resource
/// attribute, else the default. `scratch` holds non-string values' text.
fn dimension_value<'a>(span: &'a Span, dim: &'a Dimension, scratch: &'a mut String) -> Option<&'a str> {
    let found = span
        .attributes
        .iter()
        .find(|kv| kv.key == dim.name)
        .or_else(|| span.resource.attributes().iter().find(|kv| kv.key == dim.name));
    match found.map(|kv| &kv.value) {
        Some(Value::Str(s)) => Some(s.as_str()),
        Some(Value::Empty) | None => dim.default.as_deref(),
        Some(other) => {
            other.write_text(scratch);
            Some(scratch.as_str())
        }
    }
}

#[async_trait]
impl SpanMetricsReader for SpanMetrics {
    async fn call_rates(&self, query: &MetricsQuery) -> Result<Vec<MetricSeries>, QueryError> {
        self.query(query, Measure::CallRate)
    }

    async fn error_rates(&self, query: &MetricsQuery) -> Result<Vec<MetricSeries>, QueryError> {
        self.query(query, Measure::ErrorRate)
    }

    async fn latencies(&self, query: &MetricsQuery, quantile: f64) -> Result<Vec<MetricSeries>, QueryError> {
        if !(0.0..=1.0).contains(&quantile) {
            return Err(QueryError::Invalid(format!("quantile must be between 0 and 1, got {quantile}")));
        }
        self.query(query, Measure::Latency(quantile))
    }

    fn min_step(&self) -> Duration {
        Duration::from_millis(MINUTE_MS.unsigned_abs())
    }
}

/// The processor: counts every span, forwards every batch unchanged.
pub struct SpanMetricsProcessor {
    id: String,
    core: Arc<SpanMetrics>,
    next: Next,
}

impl SpanMetricsProcessor {
    /// Wraps `next`, counting into `core` (shared by processors with the
    /// same id).
    pub fn new(id: &str, core: Arc<SpanMetrics>, next: Next) -> SpanMetricsProcessor {
        SpanMetricsProcessor { id: id.to_owned(), core, next }
    }
}

#[async_trait]
impl TracesConsumer for SpanMetricsProcessor {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        let observations = self.core.observe(batch.tenant(), batch.spans());
        self.next.consume_traces(batch).await?;
        self.core.record(observations);
        Ok(())
    }
}

#[async_trait]
impl Component for SpanMetricsProcessor {
    fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
pub(crate) mod tests;
