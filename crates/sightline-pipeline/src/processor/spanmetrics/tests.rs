use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use sightline_model::{
    Batch, ConsumeError, KeyValue, MetricSeries, MetricsQuery, QueryError, Resource, Span, SpanId, SpanKind,
    SpanMetricsReader, Status, StatusCode, Tenant, TraceId, TracesConsumer,
};

use super::window::histogram_quantile;
use super::{Config, Dimension, DurationUnit, SpanMetrics, SpanMetricsProcessor};
use crate::processor::Clock;

/// 2023-11-14T22:13:00Z: a whole minute, in ms.
pub(crate) const T0: i64 = 1_699_999_980_000;

/// A clock tests move by hand.
#[derive(Clone)]
pub(crate) struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    pub(crate) fn at(ms: i64) -> FixedClock {
        FixedClock(Arc::new(AtomicI64::new(ms)))
    }

    pub(crate) fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    pub(crate) fn clock(&self) -> Clock {
        let now = Arc::clone(&self.0);
        Arc::new(move || UNIX_EPOCH + Duration::from_millis(now.load(Ordering::SeqCst).unsigned_abs()))
    }
}

/// Accepts (and keeps) batches, or refuses them when told.
#[derive(Default)]
pub(crate) struct Sink {
    pub(crate) batches: Mutex<Vec<Batch>>,
    pub(crate) refuse: Mutex<bool>,
}

#[async_trait]
impl TracesConsumer for Sink {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        if *self.refuse.lock() {
            return Err(ConsumeError::Overloaded {
                reason: "full".into(),
                retry_after: Duration::from_secs(1),
            });
        }
        self.batches.lock().push(batch);
        Ok(())
    }
}

pub(crate) fn resource(service: &str, extra: Vec<KeyValue>) -> Arc<Resource> {
    let mut attrs = vec![KeyValue::new("service.name", service)];
    attrs.extend(extra);
    Arc::new(Resource::new(attrs, 0, String::new()))
}

/// A span of `service` named `name`, lasting `ms` milliseconds; ids from
/// `trace` and `id`.
pub(crate) fn span(
    service: &Arc<Resource>,
    name: &str,
    kind: SpanKind,
    ms: u64,
    trace: u64,
    id: u64,
) -> Span {
    let mut t = [0u8; 16];
    t[8..].copy_from_slice(&trace.to_be_bytes());
    t[0] = 0xab;
    Span::test(TraceId::from_bytes(t).unwrap(), SpanId::from_bytes((id + 1).to_be_bytes()).unwrap(), name)
        .with_flags(1)
        .with_kind(kind)
        .with_times(1_000_000_000, 1_000_000_000 + ms * 1_000_000)
        .with_resource(service)
}

fn failed(mut s: Span) -> Span {
    s.status = Status { code: StatusCode::Error, message: "boom".into() };
    s
}

/// The OpenMetrics text of `registry`.
pub(crate) fn openmetrics(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

/// `name{labels}` → value of every sample, exemplars left out.
pub(crate) fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let l = l.split(" # {").next().unwrap();
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn setup(config: Config) -> (Arc<SpanMetrics>, Registry, FixedClock) {
    let clock = FixedClock::at(T0);
    let core = Arc::new(SpanMetrics::with_clock(config, clock.clock()));
    let mut registry = Registry::default();
    core.register(&mut registry);
    (core, registry, clock)
}

const A_GET: &str = "service_name=\"a\",span_name=\"GET /\",span_kind=\"SPAN_KIND_SERVER\"";

#[tokio::test]
async fn calls_and_durations_equal_the_spans_fed_by_label_set() {
    let (core, registry, _) = setup(Config::default());
    let sink = Arc::new(Sink::default());
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(&core), sink.clone());
    let a = resource("a", vec![]);
    let b = resource("b", vec![]);
    let batch = Batch::from_spans(vec![
        span(&a, "GET /", SpanKind::Server, 1, 1, 1),
        span(&a, "GET /", SpanKind::Server, 3, 2, 2),
        failed(span(&a, "GET /", SpanKind::Server, 20, 3, 3)),
        span(&b, "SELECT", SpanKind::Client, 700, 3, 4),
    ]);
    let bytes = batch.otlp_bytes().clone();
    p.consume_traces(batch).await.unwrap();
    p.consume_traces(Batch::from_spans(vec![failed(span(&a, "GET /", SpanKind::Server, 2, 4, 5))]))
        .await
        .unwrap();

    // Forwarded untouched: the very same protobuf bytes.
    assert_eq!(sink.batches.lock()[0].otlp_bytes(), &bytes);

    let s = samples(&openmetrics(&registry));
    let calls: BTreeMap<&str, f64> = s
        .iter()
        .filter(|(k, _)| k.starts_with("traces_span_metrics_calls_total{"))
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    let unset = format!("traces_span_metrics_calls_total{{{A_GET},status_code=\"STATUS_CODE_UNSET\"}}");
    let error = format!("traces_span_metrics_calls_total{{{A_GET},status_code=\"STATUS_CODE_ERROR\"}}");
    let client = "traces_span_metrics_calls_total{service_name=\"b\",span_name=\"SELECT\",span_kind=\"SPAN_KIND_CLIENT\",status_code=\"STATUS_CODE_UNSET\"}";
    assert_eq!(calls, BTreeMap::from([(client, 1.0), (error.as_str(), 2.0), (unset.as_str(), 2.0)]));

    let h = |suffix: &str, status: &str| {
        s[&format!("traces_span_metrics_duration_seconds_{suffix}{A_GET},status_code=\"{status}\"}}")]
    };
    assert_eq!(h("count{", "STATUS_CODE_ERROR"), 2.0);
    assert!((h("sum{", "STATUS_CODE_ERROR") - 0.022).abs() < 1e-9);
    // 1 ms and 3 ms: one in le=0.002, both in le=0.004; the Collector's
    // default buckets, in seconds.
    assert_eq!(h("bucket{le=\"0.002\",", "STATUS_CODE_UNSET"), 1.0);
    assert_eq!(h("bucket{le=\"0.004\",", "STATUS_CODE_UNSET"), 2.0);
    assert_eq!(h("bucket{le=\"+Inf\",", "STATUS_CODE_UNSET"), 2.0);
    let bounds: Vec<&str> = s
        .keys()
        .filter(|k| k.contains("STATUS_CODE_UNSET") && k.contains(A_GET) && k.contains("_bucket{"))
        .map(|k| k.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
        .collect();
    assert_eq!(bounds.len(), 17, "{bounds:?}");
}

#[tokio::test]
async fn a_refused_batch_is_counted_only_when_retried_successfully() {
    let (core, registry, _) = setup(Config::default());
    let sink = Arc::new(Sink::default());
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(&core), sink.clone());
    let a = resource("a", vec![]);
    let batch = || Batch::from_spans(vec![span(&a, "GET /", SpanKind::Server, 1, 1, 1)]);
    *sink.refuse.lock() = true;
    assert!(matches!(p.consume_traces(batch()).await, Err(ConsumeError::Overloaded { .. })));
    let total = |r: &Registry| -> f64 {
        samples(&openmetrics(r)).iter().filter(|(k, _)| k.contains("_calls_total")).map(|(_, v)| v).sum()
    };
    assert_eq!(total(&registry), 0.0);
    *sink.refuse.lock() = false;
    p.consume_traces(batch()).await.unwrap();
    assert_eq!(total(&registry), 1.0);
}

#[tokio::test]
async fn extra_dimensions_come_from_span_then_resource_then_default() {
    let config = Config {
        dimensions: vec![
            Dimension { name: "http.method".into(), default: Some("GET".into()) },
            Dimension { name: "cloud.region".into(), default: None },
            Dimension { name: "http.status_code".into(), default: None },
        ],
        ..Config::default()
    };
    let (core, registry, _) = setup(config);
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(&core), Arc::new(Sink::default()));
    let eu = resource("a", vec![KeyValue::new("cloud.region", "eu")]);
    let plain = resource("a", vec![]);
    let mut post = span(&eu, "op", SpanKind::Server, 1, 1, 1);
    post.attributes = vec![KeyValue::new("http.method", "POST"), KeyValue::new("http.status_code", 503i64)];
    // The span's own attribute wins over the resource's.
    let mut west = span(&eu, "op", SpanKind::Server, 1, 1, 2);
    west.attributes = vec![KeyValue::new("cloud.region", "us-west")];
    let bare = span(&plain, "op", SpanKind::Server, 1, 1, 3);
    p.consume_traces(Batch::from_spans(vec![post, west, bare])).await.unwrap();

    let s = samples(&openmetrics(&registry));
    let base = "traces_span_metrics_calls_total{service_name=\"a\",span_name=\"op\",span_kind=\"SPAN_KIND_SERVER\",status_code=\"STATUS_CODE_UNSET\"";
    for labels in [
        ",http_method=\"POST\",cloud_region=\"eu\",http_status_code=\"503\"}",
        ",http_method=\"GET\",cloud_region=\"us-west\"}",
        ",http_method=\"GET\"}",
    ] {
        assert_eq!(s.get(&format!("{base}{labels}")), Some(&1.0), "{labels} in {s:#?}");
    }
}

#[tokio::test]
async fn series_beyond_the_limit_collapse_into_the_overflow_series() {
    let (core, registry, _) = setup(Config { cardinality_limit: 2, ..Config::default() });
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(&core), Arc::new(Sink::default()));
    let a = resource("a", vec![]);
    let spans: Vec<Span> =
        (0..5u64).map(|i| span(&a, &format!("op{i}"), SpanKind::Server, 1, i, i)).collect();
    p.consume_traces(Batch::from_spans(spans)).await.unwrap();
    // A known series still counts as itself after the limit is reached.
    p.consume_traces(Batch::from_spans(vec![span(&a, "op0", SpanKind::Server, 1, 9, 9)])).await.unwrap();

    let s = samples(&openmetrics(&registry));
    let calls: Vec<(&String, &f64)> = s.iter().filter(|(k, _)| k.contains("_calls_total")).collect();
    assert_eq!(calls.len(), 3, "two series and the overflow: {calls:?}");
    assert_eq!(s["traces_span_metrics_calls_total{otel_metric_overflow=\"true\"}"], 3.0);
    assert_eq!(s["traces_span_metrics_duration_seconds_count{otel_metric_overflow=\"true\"}"], 3.0);
    let op0 = "traces_span_metrics_calls_total{service_name=\"a\",span_name=\"op0\",span_kind=\"SPAN_KIND_SERVER\",status_code=\"STATUS_CODE_UNSET\"}";
    assert_eq!(s[op0], 2.0);
    assert_eq!(calls.iter().map(|(_, v)| **v).sum::<f64>(), 6.0, "nothing lost");
}

#[tokio::test]
async fn exemplars_carry_trace_and_span_ids_in_openmetrics() {
    let (core, registry, clock) = setup(Config::default());
    clock.set(T0 + 1500);
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(&core), Arc::new(Sink::default()));
    let a = resource("a", vec![]);
    let s = span(&a, "GET /", SpanKind::Server, 3, 7, 41);
    let (trace, id) = (s.trace_id.to_hex(), s.span_id.to_hex());
    p.consume_traces(Batch::from_spans(vec![s])).await.unwrap();
    let text = openmetrics(&registry);
    let exemplar = format!("# {{trace_id=\"{trace}\",span_id=\"{id}\"}}");
    let calls_line = text.lines().find(|l| l.starts_with("traces_span_metrics_calls_total{")).unwrap();
    assert_eq!(
        calls_line.split_once(" # ").unwrap().1,
        format!("{{trace_id=\"{trace}\",span_id=\"{id}\"}} 1.0 1699999981.5")
    );
    let bucket_line = text.lines().find(|l| l.contains("_duration_seconds_bucket{le=\"0.004\"")).unwrap();
    assert!(bucket_line.contains(&format!("{exemplar} 0.003 1699999981.5")), "{bucket_line}");

    let (core, registry, _) = setup(Config { exemplars: false, ..Config::default() });
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(&core), Arc::new(Sink::default()));
    p.consume_traces(Batch::from_spans(vec![span(&a, "GET /", SpanKind::Server, 3, 7, 41)])).await.unwrap();
    assert!(!openmetrics(&registry).contains(" # {"));
}

#[tokio::test]
async fn namespace_and_unit_name_the_metrics() {
    let config = Config { namespace: String::new(), unit: DurationUnit::Milliseconds, ..Config::default() };
    let (core, registry, _) = setup(config);
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(&core), Arc::new(Sink::default()));
    p.consume_traces(Batch::from_spans(vec![span(&resource("a", vec![]), "x", SpanKind::Server, 3, 1, 1)]))
        .await
        .unwrap();
    let s = samples(&openmetrics(&registry));
    let tail = "service_name=\"a\",span_name=\"x\",span_kind=\"SPAN_KIND_SERVER\",status_code=\"STATUS_CODE_UNSET\"}";
    assert_eq!(s[&format!("calls_total{{{tail}")], 1.0);
    assert_eq!(s[&format!("duration_milliseconds_bucket{{le=\"4.0\",{tail}")], 1.0);
    assert_eq!(s[&format!("duration_milliseconds_sum{{{tail}")], 3.0);
}

// ------------------------------------------------------------- SPM series

fn spm_query(
    services: &[&str],
    group: bool,
    end: i64,
    lookback: i64,
    step: i64,
    rate_per: i64,
) -> MetricsQuery {
    MetricsQuery {
        tenant: Tenant::default(),
        services: services.iter().map(|s| (*s).to_owned()).collect(),
        span_kinds: vec![SpanKind::Server],
        group_by_operation: group,
        end_unix_millis: end,
        lookback_millis: lookback,
        step_millis: step,
        rate_per_millis: rate_per,
    }
}

fn round(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// Points with values rounded to 6 decimals; compare with [`pts`].
fn points(series: &MetricSeries) -> Vec<(i64, f64)> {
    series.points.iter().map(|p| (p.timestamp_unix_millis, round(p.value))).collect()
}

fn pts(expected: &[(i64, f64)]) -> Vec<(i64, f64)> {
    expected.iter().map(|&(t, v)| (t, round(v))).collect()
}

fn labels(series: &MetricSeries) -> Vec<(&str, &str)> {
    series.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Minute 0: service a, op A: 4 × 3 ms and 4 × 30 ms (2 failed); op B: one
/// 1 ms span; a client span (not a server kind). Minute 1: op A 6 × 70 ms
/// (1 failed). Service b: one span.
async fn feed_two_minutes(core: &Arc<SpanMetrics>, clock: &FixedClock) {
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(core), Arc::new(Sink::default()));
    let a = resource("a", vec![]);
    let b = resource("b", vec![]);
    let mut first: Vec<Span> = Vec::new();
    for i in 0..4 {
        first.push(span(&a, "A", SpanKind::Server, 3, i, i));
        let slow = span(&a, "A", SpanKind::Server, 30, i, 10 + i);
        first.push(if i < 2 { failed(slow) } else { slow });
    }
    first.push(span(&a, "B", SpanKind::Server, 1, 20, 20));
    first.push(span(&a, "A", SpanKind::Client, 1, 21, 21));
    first.push(span(&b, "A", SpanKind::Server, 1, 22, 22));
    clock.set(T0 + 10_000);
    p.consume_traces(Batch::from_spans(first)).await.unwrap();
    let second: Vec<Span> = (0..6u64)
        .map(|i| {
            let s = span(&a, "A", SpanKind::Server, 70, 30 + i, 30 + i);
            if i == 0 { failed(s) } else { s }
        })
        .collect();
    clock.set(T0 + 60_000 + 59_999);
    p.consume_traces(Batch::from_spans(second)).await.unwrap();
}

#[tokio::test]
async fn time_series_answer_calls_errors_and_latency_quantiles() {
    let (core, _, clock) = setup(Config::default());
    feed_two_minutes(&core, &clock).await;
    // Points at T0, T0+1m, T0+2m, each over the 2 minutes before it.
    let q = spm_query(&["a"], false, T0 + 120_000, 120_000, 60_000, 120_000);

    let calls = core.call_rates(&q).await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(labels(&calls[0]), vec![("service_name", "a")]);
    assert_eq!(
        points(&calls[0]),
        pts(&[(T0, 0.0), (T0 + 60_000, 9.0 / 120.0), (T0 + 120_000, 15.0 / 120.0)])
    );

    let errors = core.error_rates(&q).await.unwrap();
    assert_eq!(points(&errors[0]), pts(&[(T0, 0.0), (T0 + 60_000, 2.0 / 9.0), (T0 + 120_000, 3.0 / 15.0)]));

    // Minute 0 of op A + B: le=2 1, le=4 4, le=50 4 → p50 is rank 4.5 in
    // (2, 4]: 2 + 2 · 3.5/4. With minute 1 (le=100 6), p50 is rank 7.5 in
    // (10, 50]: 10 + 40 · 2.5/4, and p90 rank 13.5 in (50, 100]:
    // 50 + 50 · 4.5/6.
    let p50 = core.latencies(&q, 0.5).await.unwrap();
    assert_eq!(points(&p50[0]), vec![(T0 + 60_000, 3.75), (T0 + 120_000, 35.0)]);
    let p90 = core.latencies(&q, 0.9).await.unwrap();
    assert_eq!(points(&p90[0])[1], (T0 + 120_000, 87.5));

    // Grouped by operation, and several services.
    let q = spm_query(&["a", "b"], true, T0 + 120_000, 120_000, 60_000, 120_000);
    let calls = core.call_rates(&q).await.unwrap();
    type Got<'a> = Vec<(Vec<(&'a str, &'a str)>, Vec<(i64, f64)>)>;
    let got: Got<'_> = calls.iter().map(|s| (labels(s), points(s))).collect();
    assert_eq!(
        got,
        vec![
            (
                vec![("service_name", "a"), ("operation", "A")],
                pts(&[(T0, 0.0), (T0 + 60_000, 8.0 / 120.0), (T0 + 120_000, 14.0 / 120.0)])
            ),
            (
                vec![("service_name", "a"), ("operation", "B")],
                pts(&[(T0, 0.0), (T0 + 60_000, 1.0 / 120.0), (T0 + 120_000, 1.0 / 120.0)])
            ),
            (
                vec![("service_name", "b"), ("operation", "A")],
                pts(&[(T0, 0.0), (T0 + 60_000, 1.0 / 120.0), (T0 + 120_000, 1.0 / 120.0)])
            ),
        ]
    );

    // Client spans only when asked for.
    let mut q = spm_query(&["a"], true, T0 + 60_000, 0, 60_000, 60_000);
    q.span_kinds = vec![SpanKind::Client];
    let calls = core.call_rates(&q).await.unwrap();
    assert_eq!(
        calls.iter().map(|s| (labels(s), points(s))).collect::<Vec<_>>(),
        vec![(vec![("service_name", "a"), ("operation", "A")], pts(&[(T0 + 60_000, 1.0 / 60.0)]))]
    );

    // A service without spans has no series.
    assert!(
        core.call_rates(&spm_query(&["nobody"], false, T0 + 120_000, 120_000, 60_000, 120_000))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn time_series_forget_minutes_beyond_the_window() {
    let (core, _, clock) =
        setup(Config { time_series_window: Duration::from_secs(600), ..Config::default() });
    feed_two_minutes(&core, &clock).await;
    let q = spm_query(&["a"], false, T0 + 120_000, 120_000, 60_000, 120_000);
    assert_eq!(core.call_rates(&q).await.unwrap().len(), 1);
    // 20 minutes later a new span triggers the prune.
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(&core), Arc::new(Sink::default()));
    clock.set(T0 + 20 * 60_000);
    p.consume_traces(Batch::from_spans(vec![span(&resource("b", vec![]), "A", SpanKind::Server, 1, 1, 1)]))
        .await
        .unwrap();
    assert!(core.call_rates(&q).await.unwrap().is_empty(), "service a's minutes are gone");
}

#[tokio::test]
async fn bad_ranges_are_invalid_queries() {
    let (core, _, _) = setup(Config::default());
    let bad = [
        spm_query(&["a"], false, T0, 60_000, 0, 60_000),
        spm_query(&["a"], false, T0, 60_000, 1000, 0),
        spm_query(&["a"], false, T0, -1, 1000, 60_000),
        spm_query(&["a"], false, T0, 11_000_000, 1000, 60_000),
    ];
    for q in bad {
        assert!(matches!(core.call_rates(&q).await, Err(QueryError::Invalid(_))), "{q:?}");
    }
    let q = spm_query(&["a"], false, T0, 10_999_000, 1000, 60_000);
    assert!(core.call_rates(&q).await.is_ok());
    assert!(matches!(core.latencies(&q, 1.5).await, Err(QueryError::Invalid(_))));
    assert_eq!(core.min_step(), Duration::from_secs(60));
}

#[test]
fn histogram_quantile_interpolates_like_prometheus() {
    let bounds = [1.0, 2.0, 4.0];
    // 10 in (0,1], 10 in (1,2], 0 in (2,4], 5 above.
    let counts = [10, 10, 0, 5];
    assert_eq!(histogram_quantile(0.25, &bounds, &counts), 0.625);
    assert_eq!(histogram_quantile(0.5, &bounds, &counts), 1.25);
    assert_eq!(histogram_quantile(0.8, &bounds, &counts), 2.0);
    // The +Inf bucket answers the highest finite bound.
    assert_eq!(histogram_quantile(0.99, &bounds, &counts), 4.0);
    assert!(histogram_quantile(0.5, &bounds, &[0, 0, 0, 0]).is_nan());
}

// --------------------------------------------------------------- promtool

/// Answers no trace queries; `/metrics` is all this test reads.
struct NoTraces;

#[async_trait]
impl sightline_model::SpanReader for NoTraces {
    async fn trace(&self, _: TraceId) -> Result<Option<Vec<Span>>, QueryError> {
        Ok(None)
    }
    async fn find_traces(&self, _: &sightline_model::TraceQuery) -> Result<Vec<Vec<Span>>, QueryError> {
        Ok(Vec::new())
    }
    async fn services(&self) -> Result<Vec<String>, QueryError> {
        Ok(Vec::new())
    }
    async fn operations(
        &self,
        _: &str,
        _: Option<SpanKind>,
    ) -> Result<Vec<sightline_model::Operation>, QueryError> {
        Ok(Vec::new())
    }
    async fn dependencies(&self, _: u64, _: u64) -> Result<Vec<sightline_model::DependencyLink>, QueryError> {
        Ok(Vec::new())
    }
}

/// Spans through span metrics and the service graph, then `/metrics` as
/// `curl` and `promtool` see it (Prometheus text) must pass `promtool
/// check metrics`, and as Prometheus sees it (OpenMetrics) carry exemplars.
#[tokio::test]
async fn metrics_endpoint_passes_promtool_check_metrics() {
    use crate::processor::servicegraph::{ServiceGraph, ServiceGraphProcessor};

    let mut registry = Registry::default();
    let api_metrics = Arc::new(sightline_api::Metrics::new(&mut registry));
    let _pipeline_metrics = crate::Metrics::new(&mut registry);
    let config = Config {
        cardinality_limit: 6,
        dimensions: vec![Dimension { name: "http.method".into(), default: Some("GET".into()) }],
        ..Config::default()
    };
    let core = Arc::new(SpanMetrics::new(config));
    core.register(&mut registry);
    let graph = Arc::new(ServiceGraph::new(crate::processor::servicegraph::Config::default()));
    graph.register(&mut registry);
    let sink = Arc::new(Sink::default());
    let chain = SpanMetricsProcessor::new(
        "spanmetrics",
        Arc::clone(&core),
        Arc::new(ServiceGraphProcessor::new("servicegraph", Arc::clone(&graph), sink)),
    );

    // Awkward label values: quotes, backslashes, newlines, ` # `, unicode.
    let shop = resource("shop \"eu\" \\ #1", vec![]);
    let cart = resource("cart\nv2 — ünï", vec![]);
    let mut spans = Vec::new();
    for i in 0..20u64 {
        let mut client = span(&shop, &format!("GET /item/{} # x", i % 8), SpanKind::Client, 5 + i, i, i);
        let mut server = span(&cart, "handle", SpanKind::Server, 3 + i, i, 100 + i);
        server.parent_span_id = Some(client.span_id);
        if i % 3 == 0 {
            server = failed(server);
        }
        client.attributes = vec![KeyValue::new("http.method", "POST")];
        spans.push(client);
        spans.push(server);
    }
    spans.push(span(&shop, "orphan", SpanKind::Producer, 1, 99, 99));
    chain.consume_traces(Batch::from_spans(spans)).await.unwrap();

    let app = sightline_api::router(sightline_api::ApiState {
        readers: Arc::new(Arc::new(NoTraces) as Arc<dyn sightline_model::SpanReader>),
        health: Arc::new(Vec::new),
        ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        registry: Arc::new(registry),
        metrics: api_metrics,
        span_metrics: Some(Arc::clone(&core) as Arc<dyn SpanMetricsReader>),
        service_graph: None,
        logs: None,
    });
    let get = |accept: Option<&'static str>| {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let app = app.clone();
        async move {
            let mut request = http::Request::get("/metrics");
            if let Some(accept) = accept {
                request = request.header(http::header::ACCEPT, accept);
            }
            let body = http_body_util::Empty::<bytes::Bytes>::new();
            let response = app.oneshot(request.body(body).unwrap()).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8(body.to_vec()).unwrap()
        }
    };
    let text = get(None).await;
    assert!(text.contains("traces_span_metrics_calls_total{otel_metric_overflow=\"true\"}"), "{text}");
    assert!(text.contains("traces_service_graph_request_total{"), "{text}");
    promtool_check_metrics(&text);

    let openmetrics = get(Some("application/openmetrics-text; version=1.0.0")).await;
    assert!(openmetrics.contains(" # {trace_id=\"ab"), "{openmetrics}");
    assert!(openmetrics.ends_with("# EOF\n"));
}

/// Pipes `text` to `promtool check metrics`; fails when promtool is
/// missing (CI installs it) or reports a problem.
pub(crate) fn promtool_check_metrics(text: &str) {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => panic!(
            "cannot run promtool ({e}); install it with `apt-get install -y --no-install-recommends prometheus` (.ci/run does)"
        ),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{}{}\n--- input ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

// ------------------------------------------------------- config and build

fn parse(text: &str) -> Result<crate::config::PipelineConfig, Vec<String>> {
    let ctx = crate::config::Context { data_dir: "/tmp/sl".into(), memory_limit: 256 << 20, max_tenants: 64 };
    crate::config::parse(&toml::from_str(text).unwrap(), &ctx)
        .map_err(|problems| problems.iter().map(ToString::to_string).collect())
}

#[test]
fn span_metrics_and_service_graph_settings_parse() {
    let c = parse(
        r#"
        [processors.spanmetrics]
        namespace = "spans"
        dimensions = [{ name = "http.method", default = "GET" }, { name = "cloud.region" }]
        aggregation_cardinality_limit = 50
        time_series_window = "30m"
        histogram = { unit = "ms", explicit = { buckets = ["5ms", "50ms", "1s"] } }
        exemplars = { enabled = false }
        [processors.servicegraph]
        latency_histogram_buckets = ["10ms", "1s"]
        dimensions = ["http.method"]
        database_name_attributes = ["db.namespace"]
        dependencies_window = "1h"
        store = { ttl = "3s", max_items = 100 }
    "#,
    )
    .unwrap();
    match c.processors.get("spanmetrics").and_then(|p| p.settings::<Config>()) {
        Some(s) => assert_eq!(
            s,
            &Config {
                namespace: "spans".into(),
                dimensions: vec![
                    Dimension { name: "http.method".into(), default: Some("GET".into()) },
                    Dimension { name: "cloud.region".into(), default: None },
                ],
                unit: DurationUnit::Milliseconds,
                buckets: vec![Duration::from_millis(5), Duration::from_millis(50), Duration::from_secs(1)],
                cardinality_limit: 50,
                exemplars: false,
                time_series_window: Duration::from_secs(1800),
            }
        ),
        _ => panic!("spanmetrics missing"),
    }
    match c
        .processors
        .get("servicegraph")
        .and_then(|p| p.settings::<crate::processor::servicegraph::Config>())
    {
        Some(g) => assert_eq!(
            g,
            &crate::processor::servicegraph::Config {
                buckets: vec![Duration::from_millis(10), Duration::from_secs(1)],
                dimensions: vec!["http.method".into()],
                database_name_attributes: vec!["db.namespace".into()],
                max_items: 100,
                ttl: Duration::from_secs(3),
                dependencies_window: Duration::from_secs(3600),
            }
        ),
        _ => panic!("servicegraph missing"),
    }
    // Unset, both are in the default pipeline with the defaults.
    let c = parse("").unwrap();
    assert!(c.processors.get("spanmetrics").and_then(|p| p.settings::<Config>()) == Some(&Config::default()));
}

#[test]
fn span_metrics_and_service_graph_problems_name_the_key_and_the_fix() {
    let got = parse(
        r#"
        [processors.spanmetrics]
        namespace = "9lives"
        dimensions = [{ name = "service.name" }, { name = "a.b" }, { name = "a_b" }, { default = "x" }]
        aggregation_cardinality_limit = 0
        time_series_window = "30s"
        histogram = { unit = "us", exponential = { max_size = 10 }, explicit = { buckets = ["1s", "5ms"] } }
        [processors."servicegraph/two"]
        store = { ttl = "0s", max_itemz = 3 }
        latency_histogram_buckets = ["fast"]
        [service.pipelines.traces]
        receivers = ["otlp"]
        processors = ["spanmetrics", "servicegraph", "servicegraph/two"]
        exporters = ["store"]
    "#,
    )
    .unwrap_err();
    let expected = vec![
        "processors.servicegraph/two.latency_histogram_buckets[0]: invalid duration \"fast\": expected a positive duration like \"2ms\" or \"1s\"",
        "processors.servicegraph/two.store.ttl: must be positive, e.g. \"10s\"",
        "processors.servicegraph/two.store.max_itemz: unknown setting; did you mean \"max_items\"?",
        "processors.spanmetrics.namespace: use letters, digits, `_` and `.` (not first a digit), e.g. \"traces.span.metrics\"",
        "processors.spanmetrics.dimensions[0].name: duplicate dimension \"service.name\" (label service_name); each dimension must give a new label",
        "processors.spanmetrics.dimensions[2].name: duplicate dimension \"a_b\" (label a_b); each dimension must give a new label",
        "processors.spanmetrics.dimensions[3].name: required: the attribute key, e.g. \"http.method\"",
        "processors.spanmetrics.aggregation_cardinality_limit: expected a positive integer, found integer 0",
        "processors.spanmetrics.time_series_window: must be at least \"1m\": the series have one point per minute",
        "processors.spanmetrics.histogram.unit: unknown type \"us\" (did you mean \"ms\"?); known: s, ms",
        "processors.spanmetrics.histogram.exponential: exponential histograms are not supported; use explicit buckets",
        "processors.spanmetrics.histogram.explicit.buckets: bucket bounds must be in increasing order without repeats",
        "service.pipelines.traces.processors[2]: servicegraph/two and servicegraph would both publish traces_service_graph_*; use one servicegraph processor in every pipeline",
    ];
    assert_eq!(got, expected);

    // Two span metrics processors need two namespaces.
    let two = r#"
        [processors."spanmetrics/two"]
        namespace = "NS"
        [service.pipelines.traces]
        receivers = ["otlp"]
        processors = ["spanmetrics", "spanmetrics/two"]
        exporters = ["store"]
    "#;
    assert!(parse(two).is_ok());
    assert_eq!(
        parse(&two.replace("\"NS\"", "\"traces_span.metrics\"")).unwrap_err(),
        vec![
            "service.pipelines.traces.processors[1]: spanmetrics/two and spanmetrics would both publish traces_span_metrics_calls_total; give one a different namespace"
        ]
    );
}

#[tokio::test]
async fn build_shares_one_aggregator_per_id_and_exposes_the_readers() {
    let config = parse(
        r#"
        [service.pipelines.traces]
        receivers = ["otlp"]
        processors = ["memory_limiter", "spanmetrics", "servicegraph"]
        exporters = ["store"]
        [service.pipelines."traces/zipkin"]
        receivers = ["zipkin"]
        processors = ["spanmetrics", "servicegraph"]
        exporters = ["store"]
    "#,
    )
    .unwrap();
    let store = Arc::new(Sink::default());
    let mut registry = Registry::default();
    let exporters = crate::Exporters { store: Some(store.clone()), ..Default::default() };
    let built = crate::build(&config, exporters, Arc::new(crate::Metrics::default()), &mut registry).unwrap();
    let a = resource("a", vec![]);
    for receiver in ["otlp", "zipkin"] {
        let entry = built.receivers[receiver].traces.as_ref().expect("a traces entry");
        let client = span(&resource("front", vec![]), "call", SpanKind::Client, 9, 1, 7);
        let mut server = span(&a, "GET /", SpanKind::Server, 3, 1, 1);
        server.parent_span_id = Some(client.span_id);
        entry.consume_traces(Batch::from_spans(vec![server, client])).await.unwrap();
    }
    assert_eq!(store.batches.lock().len(), 2);
    let text = openmetrics(&registry);
    assert_eq!(text.matches("# TYPE traces_span_metrics_calls counter").count(), 1, "{text}");
    assert_eq!(text.matches("# TYPE traces_service_graph_request counter").count(), 1, "{text}");
    let s = samples(&text);
    assert_eq!(
        s[&format!("traces_span_metrics_calls_total{{{A_GET},status_code=\"STATUS_CODE_UNSET\"}}")],
        2.0
    );
    assert_eq!(
        s["traces_service_graph_request_total{client=\"front\",server=\"a\",connection_type=\"\"}"],
        2.0
    );

    let reader = built.span_metrics.clone().expect("span metrics reader");
    let now = super::unix_millis(std::time::SystemTime::now());
    let q = spm_query(&["a"], false, now + 60_000, 0, 60_000, 600_000);
    let series = reader.call_rates(&q).await.unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(points(&series[0]), pts(&[(now + 60_000, 2.0 / 600.0)]));
    assert!(built.service_graph.is_some());
    built.shutdown().await;
}

/// One tenant's SPM queries read only its own spans; on `/metrics` a
/// tenant other than the default one is a `tenant` label.
#[tokio::test]
async fn each_tenants_metrics_are_its_own() {
    let (core, registry, _) = setup(Config::default());
    let p = SpanMetricsProcessor::new("spanmetrics", Arc::clone(&core), Arc::new(Sink::default()));
    let a = resource("a", vec![]);
    let acme = Tenant::new("acme").unwrap();
    let spans = |n: u64| (0..n).map(|i| span(&a, "GET /", SpanKind::Server, 5, i, i)).collect::<Vec<_>>();
    p.consume_traces(Batch::from_spans(spans(3))).await.unwrap();
    p.consume_traces(Batch::from_spans(spans(5)).with_tenant(acme.clone())).await.unwrap();

    let mut q = spm_query(&["a"], false, T0 + 60_000, 60_000, 60_000, 60_000);
    let total =
        |series: Vec<MetricSeries>| series.iter().flat_map(|s| s.points.iter()).map(|p| p.value).sum::<f64>();
    assert_eq!(total(core.call_rates(&q).await.unwrap()) * 60.0, 3.0);
    q.tenant = acme;
    assert_eq!(total(core.call_rates(&q).await.unwrap()) * 60.0, 5.0);
    q.tenant = Tenant::new("nobody").unwrap();
    assert!(core.call_rates(&q).await.unwrap().is_empty());

    let text = samples(&openmetrics(&registry));
    let calls = |labels: &str| text.get(&format!("traces_span_metrics_calls_total{{{labels}}}")).copied();
    assert_eq!(calls(&format!("{A_GET},status_code=\"STATUS_CODE_UNSET\"")), Some(3.0));
    assert_eq!(calls(&format!("tenant=\"acme\",{A_GET},status_code=\"STATUS_CODE_UNSET\"")), Some(5.0));
}
