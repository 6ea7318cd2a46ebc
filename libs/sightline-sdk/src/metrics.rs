//! The metrics every helper records: a Prometheus registry (rendered by
//! `/metrics`, seed names) and OTel instruments (exported over OTLP,
//! semantic-convention names).

use std::sync::{Arc, Mutex};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter as OtelCounter, Histogram as OtelHistogram, Meter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    endpoint: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    host: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabels {
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbLabels {
    system: String,
    operation: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DbOpLabels {
    system: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MsgLabels {
    system: String,
    operation: String,
    destination: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MsgOpLabels {
    system: String,
    operation: String,
    destination: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    task_type: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskTypeLabels {
    task_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    event: String,
}

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

/// Label pairs of a family whose labels are given at run time.
pub(crate) type Labels = Vec<(&'static str, String)>;
/// An exemplar's labels: `trace_id`.
pub(crate) type Exemplar = Vec<(&'static str, String)>;
/// A histogram whose buckets remember the trace of their last observation.
pub(crate) type ExemplarHistogram = HistogramWithExemplars<Exemplar>;

const SECONDS_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS)
}

pub(crate) fn exemplar_histogram() -> ExemplarHistogram {
    HistogramWithExemplars::new(SECONDS_BUCKETS.into_iter())
}

/// The current span's trace id as an exemplar, if it is sampled (an
/// exemplar should point at a trace the backend has).
pub(crate) fn current_exemplar() -> Option<Exemplar> {
    use opentelemetry::trace::TraceContextExt as _;
    let cx = opentelemetry::Context::current();
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| vec![("trace_id", sc.trace_id().to_string())])
}

fn hist<L: Clone + std::hash::Hash + Eq>() -> Hist<L> {
    Family::new_with_constructor(seconds_histogram as fn() -> Histogram)
}

struct Otel {
    server: OtelHistogram<f64>,
    client: OtelHistogram<f64>,
    db: OtelHistogram<f64>,
    messaging: OtelHistogram<f64>,
    tasks: OtelHistogram<f64>,
    public: OtelCounter<u64>,
}

struct Inner {
    registry: Mutex<Registry>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, ExemplarHistogram, fn() -> ExemplarHistogram>,
    client_requests: Family<ClientLabels, Counter>,
    client_duration: Hist<HostLabels>,
    db_ops: Family<DbLabels, Counter>,
    db_duration: Hist<DbOpLabels>,
    msg_ops: Family<MsgLabels, Counter>,
    msg_duration: Hist<MsgOpLabels>,
    tasks: Family<TaskLabels, Counter>,
    task_duration: Hist<TaskTypeLabels>,
    public: Family<EventLabels, Counter>,
    otel: Option<Otel>,
    meter: Meter,
}

/// The db series of one (system, operation), resolved once.
#[derive(Debug)]
pub(crate) struct DbSeries {
    ok: Counter,
    err: Counter,
    duration: Histogram,
    otel: Option<OtelHistogram<f64>>,
    ok_attrs: Vec<KeyValue>,
    err_attrs: Vec<KeyValue>,
}

impl DbSeries {
    pub(crate) fn record(&self, ok: bool, secs: f64) {
        if ok { &self.ok } else { &self.err }.inc();
        self.duration.observe(secs);
        if let Some(h) = &self.otel {
            h.record(secs, if ok { &self.ok_attrs } else { &self.err_attrs });
        }
    }
}

/// The shared metrics of one [`crate::Telemetry`]. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("otel", &self.inner.otel.is_some()).finish_non_exhaustive()
    }
}

fn status_str(ok: bool) -> String {
    if ok { "ok" } else { "error" }.to_owned()
}

impl Metrics {
    /// A registry with the built-in families; OTel instruments on `meter`
    /// if given. `prefix` goes before the generic families' names except
    /// the HTTP ones (`http_requests_total` is what every HTTP dashboard,
    /// seed 001's included, queries).
    pub(crate) fn new(meter: Option<Meter>, prefix: &str) -> Metrics {
        let mut registry = Registry::default();
        let p = |name: &str| format!("{prefix}{name}");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests served, by method, route template and status",
            http_requests.clone(),
        );
        let http_duration: Family<RouteLabels, ExemplarHistogram, fn() -> ExemplarHistogram> =
            Family::new_with_constructor(exemplar_histogram as fn() -> ExemplarHistogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency in seconds, by method and route template",
            http_duration.clone(),
        );
        let client_requests = Family::<ClientLabels, Counter>::default();
        registry.register(
            "http_client_requests",
            "Outbound HTTP requests, by host and status (error: no response)",
            client_requests.clone(),
        );
        let client_duration = hist::<HostLabels>();
        registry.register(
            "http_client_request_duration_seconds",
            "Outbound HTTP latency in seconds, by host",
            client_duration.clone(),
        );
        let db_ops = Family::<DbLabels, Counter>::default();
        registry.register(
            p("db_operations"),
            "Database and cache operations, by system, operation and status",
            db_ops.clone(),
        );
        let db_duration = hist::<DbOpLabels>();
        registry.register(
            p("db_operation_duration_seconds"),
            "Database and cache latency in seconds",
            db_duration.clone(),
        );
        let msg_ops = Family::<MsgLabels, Counter>::default();
        registry.register(
            p("messaging_operations"),
            "Messages published or processed, by system, operation, destination and status",
            msg_ops.clone(),
        );
        let msg_duration = hist::<MsgOpLabels>();
        registry.register(
            p("messaging_operation_duration_seconds"),
            "Publish / process latency in seconds",
            msg_duration.clone(),
        );
        let tasks = Family::<TaskLabels, Counter>::default();
        registry.register(
            p("background_tasks"),
            "Background task runs, by task type and status",
            tasks.clone(),
        );
        let task_duration = hist::<TaskTypeLabels>();
        registry.register(
            p("background_task_duration_seconds"),
            "Background task duration in seconds, by task type",
            task_duration.clone(),
        );
        let public = Family::<EventLabels, Counter>::default();
        registry.register(
            p("public_metrics"),
            "Client (browser) metric events accepted by POST /api/v1/metrics",
            public.clone(),
        );

        let otel = meter.as_ref().map(|meter| {
            let h = |name: &'static str, desc: &'static str| {
                meter.f64_histogram(name).with_unit("s").with_description(desc).build()
            };
            Otel {
                server: h("http.server.request.duration", "Duration of HTTP server requests"),
                client: h("http.client.request.duration", "Duration of HTTP client requests"),
                db: h("db.client.operation.duration", "Duration of database client operations"),
                messaging: h("messaging.client.operation.duration", "Duration of messaging operations"),
                tasks: h("background.task.duration", "Duration of background tasks"),
                public: meter
                    .u64_counter("public.metrics")
                    .with_description("Client metric events accepted")
                    .build(),
            }
        });
        let meter = meter.unwrap_or_else(|| {
            use opentelemetry::metrics::MeterProvider as _;
            opentelemetry::metrics::noop::NoopMeterProvider::new().meter(crate::init::SCOPE)
        });
        Metrics {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                http_requests,
                http_duration,
                client_requests,
                client_duration,
                db_ops,
                db_duration,
                msg_ops,
                msg_duration,
                tasks,
                task_duration,
                public,
                otel,
                meter,
            }),
        }
    }

    /// The OTel meter (OTLP-exported) for custom instruments; a no-op
    /// meter when telemetry is disabled or spans go to the console.
    pub fn meter(&self) -> &Meter {
        &self.inner.meter
    }

    /// Registers a custom Prometheus metric (rendered by `/metrics`).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        if let Ok(mut r) = self.inner.registry.lock() {
            r.register(name, help, metric);
        }
    }

    /// The Prometheus text format 0.0.4 of every metric (what `curl`,
    /// `promtool` and older scrapers read: no exemplars).
    pub fn render_text(&self) -> String {
        crate::exposition::to_text(&self.render())
    }

    /// The OpenMetrics exposition of every metric (with exemplars).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.inner.registry.lock() {
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        }
        out
    }

    /// One served HTTP request.
    pub fn record_http_server(&self, method: &str, route: &str, status: u16, secs: f64) {
        let i = &self.inner;
        i.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                endpoint: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        i.http_duration
            .get_or_create(&RouteLabels { method: method.to_owned(), endpoint: route.to_owned() })
            .observe(secs, current_exemplar(), None);
        if let Some(o) = &i.otel {
            o.server.record(
                secs,
                &[
                    KeyValue::new("http.request.method", method.to_owned()),
                    KeyValue::new("http.route", route.to_owned()),
                    KeyValue::new("http.response.status_code", i64::from(status)),
                ],
            );
        }
    }

    /// One outbound HTTP request; `status` is `None` when no response came.
    pub fn record_http_client(&self, method: &str, host: &str, status: Option<u16>, secs: f64) {
        let i = &self.inner;
        let status_label = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        i.client_requests.get_or_create(&ClientLabels { host: host.to_owned(), status: status_label }).inc();
        i.client_duration.get_or_create(&HostLabels { host: host.to_owned() }).observe(secs);
        if let Some(o) = &i.otel {
            let mut attrs = vec![
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("server.address", host.to_owned()),
            ];
            match status {
                Some(s) => attrs.push(KeyValue::new("http.response.status_code", i64::from(s))),
                None => attrs.push(KeyValue::new("error.type", "transport")),
            }
            o.client.record(secs, &attrs);
        }
    }

    /// One database / cache operation.
    pub fn record_db(&self, system: &str, operation: &str, ok: bool, secs: f64) {
        let i = &self.inner;
        i.db_ops
            .get_or_create(&DbLabels {
                system: system.to_owned(),
                operation: operation.to_owned(),
                status: status_str(ok),
            })
            .inc();
        i.db_duration
            .get_or_create(&DbOpLabels { system: system.to_owned(), operation: operation.to_owned() })
            .observe(secs);
        if let Some(o) = &i.otel {
            let mut attrs = vec![
                KeyValue::new("db.system.name", system.to_owned()),
                KeyValue::new("db.operation.name", operation.to_owned()),
            ];
            if !ok {
                attrs.push(KeyValue::new("error.type", "error"));
            }
            o.db.record(secs, &attrs);
        }
    }

    /// Pre-resolved series for one (system, operation): recording through
    /// them is a few atomic operations, no label lookup.
    pub(crate) fn db_series(&self, system: &str, operation: &str) -> DbSeries {
        let i = &self.inner;
        let labels = |status: &str| DbLabels {
            system: system.to_owned(),
            operation: operation.to_owned(),
            status: status.to_owned(),
        };
        let base = vec![
            KeyValue::new("db.system.name", system.to_owned()),
            KeyValue::new("db.operation.name", operation.to_owned()),
        ];
        let mut err_attrs = base.clone();
        err_attrs.push(KeyValue::new("error.type", "error"));
        // One statement each: a family's read guard must be gone before
        // the next get_or_create, which may take the write lock.
        let ok = i.db_ops.get_or_create(&labels("ok")).clone();
        let err = i.db_ops.get_or_create(&labels("error")).clone();
        let duration = i
            .db_duration
            .get_or_create(&DbOpLabels { system: system.to_owned(), operation: operation.to_owned() })
            .clone();
        DbSeries { ok, err, duration, otel: i.otel.as_ref().map(|o| o.db.clone()), ok_attrs: base, err_attrs }
    }

    /// One publish or process.
    pub fn record_message(&self, system: &str, operation: &str, destination: &str, ok: bool, secs: f64) {
        let i = &self.inner;
        i.msg_ops
            .get_or_create(&MsgLabels {
                system: system.to_owned(),
                operation: operation.to_owned(),
                destination: destination.to_owned(),
                status: status_str(ok),
            })
            .inc();
        i.msg_duration
            .get_or_create(&MsgOpLabels {
                system: system.to_owned(),
                operation: operation.to_owned(),
                destination: destination.to_owned(),
            })
            .observe(secs);
        if let Some(o) = &i.otel {
            let mut attrs = vec![
                KeyValue::new("messaging.system", system.to_owned()),
                KeyValue::new("messaging.operation.name", operation.to_owned()),
                KeyValue::new("messaging.destination.name", destination.to_owned()),
            ];
            if !ok {
                attrs.push(KeyValue::new("error.type", "error"));
            }
            o.messaging.record(secs, &attrs);
        }
    }

    /// One background task run.
    pub fn record_task(&self, task_type: &str, ok: bool, secs: f64) {
        let i = &self.inner;
        i.tasks.get_or_create(&TaskLabels { task_type: task_type.to_owned(), status: status_str(ok) }).inc();
        i.task_duration.get_or_create(&TaskTypeLabels { task_type: task_type.to_owned() }).observe(secs);
        if let Some(o) = &i.otel {
            o.tasks.record(
                secs,
                &[
                    KeyValue::new("task.type", task_type.to_owned()),
                    KeyValue::new("task.status", status_str(ok)),
                ],
            );
        }
    }

    /// One accepted client metric event.
    pub fn record_public_event(&self, event: &str) {
        self.inner.public.get_or_create(&EventLabels { event: event.to_owned() }).inc();
        if let Some(o) = &self.inner.otel {
            o.public.add(1, &[KeyValue::new("event", event.to_owned())]);
        }
    }
}
