//! Logs and metrics through the pipeline: each stage that handles them,
//! config for their pipelines, and the OTLP exporter delivering them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use parking_lot::Mutex;
use prost::Message as _;
use sightline_model::{
    ConsumeError, KeyValue, LogBatch, LogRecord, LogsConsumer, Metric, MetricBatch, MetricData,
    MetricsConsumer, Number, NumberPoint, Resource, Scope, SpanId, Temporality, TraceId, Value, otlp,
};

use crate::Component as _;
use crate::processor::{attributes, batch, memory_limiter, redaction};
use crate::tests::{batch_config, delete_attribute, metrics, tenants_of};

/// Records log and metric batches, checking at each that the bytes encode
/// exactly the decoded items (what a store's WAL relies on).
#[derive(Default)]
struct Sink {
    logs: Mutex<Vec<LogBatch>>,
    metrics: Mutex<Vec<MetricBatch>>,
}

impl Sink {
    fn records(&self) -> Vec<LogRecord> {
        self.logs.lock().iter().flat_map(|b| b.records().to_vec()).collect()
    }
}

#[async_trait]
impl LogsConsumer for Sink {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        let decoded =
            otlp::decode_logs_request(ExportLogsServiceRequest::decode(batch.otlp_bytes().clone()).unwrap());
        assert_eq!(decoded.records, batch.records(), "otlp bytes must encode exactly the records");
        self.logs.lock().push(batch);
        Ok(())
    }
}

#[async_trait]
impl MetricsConsumer for Sink {
    async fn consume_metrics(&self, batch: MetricBatch) -> Result<(), ConsumeError> {
        let decoded = otlp::decode_metrics_request(
            ExportMetricsServiceRequest::decode(batch.otlp_bytes().clone()).unwrap(),
        );
        assert_eq!(decoded.metrics, batch.metrics(), "otlp bytes must encode exactly the metrics");
        self.metrics.lock().push(batch);
        Ok(())
    }
}

fn resource(service: &str, extra: Vec<KeyValue>) -> Arc<Resource> {
    let mut attrs = vec![KeyValue::new("service.name", service)];
    attrs.extend(extra);
    Arc::new(Resource::new(attrs, 0, String::new()))
}

fn record(resource: &Arc<Resource>, body: Value, attrs: Vec<KeyValue>) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        observed_time_unix_nano: 1_700_000_000_000_000_000,
        severity_number: 9,
        severity_text: "INFO".into(),
        body,
        attributes: attrs,
        dropped_attributes_count: 0,
        flags: 1,
        trace_id: Some(TraceId::from_bytes([5; 16]).unwrap()),
        span_id: Some(SpanId::from_bytes([6; 8]).unwrap()),
        event_name: String::new(),
        resource: Arc::clone(resource),
        scope: Arc::new(Scope { name: "app".into(), ..Scope::default() }),
    }
}

fn counter(name: &str, points: &[i64]) -> Metric {
    Metric {
        name: name.into(),
        description: String::new(),
        unit: "1".into(),
        metadata: Vec::new(),
        data: MetricData::Sum {
            points: points
                .iter()
                .map(|v| NumberPoint {
                    attributes: vec![KeyValue::new("n", *v)],
                    start_time_unix_nano: 1,
                    time_unix_nano: 2,
                    value: Some(Number::Int(*v)),
                    exemplars: Vec::new(),
                    flags: 0,
                })
                .collect(),
            temporality: Temporality::Cumulative,
            monotonic: true,
        },
        resource: resource("meter-svc", vec![]),
        scope: Arc::new(Scope::default()),
    }
}

#[tokio::test]
async fn memory_limiter_refuses_logs_and_metrics_too() {
    let sink = Arc::new(Sink::default());
    let tight = memory_limiter::Config {
        check_interval: Duration::from_millis(10),
        limit_bytes: 1 << 20,
        spike_bytes: 0,
    };
    let limiter = memory_limiter::MemoryLimiter::new("ml", &tight, sink.clone(), metrics(), None);
    let r = resource("svc", vec![]);
    let err = limiter.consume_logs(LogBatch::from_records(vec![record(&r, "x".into(), vec![])])).await;
    assert!(matches!(err, Err(ConsumeError::Overloaded { .. })), "{err:?}");
    let err = limiter.consume_metrics(MetricBatch::from_metrics(vec![counter("c", &[1])])).await;
    assert!(matches!(err, Err(ConsumeError::Overloaded { .. })), "{err:?}");
    let roomy = memory_limiter::MemoryLimiter::new(
        "ml",
        &memory_limiter::Config::for_limit(64 << 30),
        sink.clone(),
        metrics(),
        None,
    );
    roomy.consume_logs(LogBatch::from_records(vec![record(&r, "x".into(), vec![])])).await.unwrap();
    roomy.consume_metrics(MetricBatch::from_metrics(vec![counter("c", &[1])])).await.unwrap();
    assert_eq!((sink.logs.lock().len(), sink.metrics.lock().len()), (1, 1));
}

/// The batch processor counts log records and metric data points, merges
/// without re-encoding, and answers every sender with the downstream
/// result.
#[tokio::test]
async fn batch_merges_log_records_and_metric_points() {
    let sink = Arc::new(Sink::default());
    let cfg = batch::Config {
        send_batch_size: 6,
        timeout: Duration::from_secs(30),
        queue_batches: 16,
        max_in_flight: 1,
    };
    let logs = Arc::new(batch::BatchProcessor::<LogBatch>::new("batch", &cfg, sink.clone(), metrics()));
    let r = resource("svc", vec![]);
    let sends = (0..3).map(|i| {
        let logs = Arc::clone(&logs);
        let r = Arc::clone(&r);
        async move {
            let records = (0..2).map(|j| record(&r, format!("line {i}.{j}").into(), vec![])).collect();
            logs.consume_logs(LogBatch::from_records(records)).await
        }
    });
    for result in futures_util::future::join_all(sends).await {
        result.unwrap();
    }
    assert_eq!(sink.logs.lock().len(), 1, "six records reach the size in one merged batch");
    assert_eq!(sink.records().len(), 6);

    let metrics_batch =
        Arc::new(batch::BatchProcessor::<MetricBatch>::new("batch", &cfg, sink.clone(), metrics()));
    // Two metrics of three points each: six data points, one send.
    let (a, b) = tokio::join!(
        metrics_batch.consume_metrics(MetricBatch::from_metrics(vec![counter("a", &[1, 2, 3])])),
        metrics_batch.consume_metrics(MetricBatch::from_metrics(vec![counter("b", &[4, 5, 6])])),
    );
    a.unwrap();
    b.unwrap();
    let batches = sink.metrics.lock().clone();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].data_points(), 6);
    logs.shutdown().await;
    metrics_batch.shutdown().await;
}

#[tokio::test]
async fn attributes_rewrite_selected_log_records() {
    let sink = Arc::new(Sink::default());
    let config = attributes::Config {
        actions: vec![
            attributes::KeyAction {
                key: Some("env".into()),
                pattern: None,
                action: attributes::Action::Upsert("prod".into()),
            },
            attributes::KeyAction {
                key: Some("user.id".into()),
                pattern: None,
                action: attributes::Action::Hash,
            },
        ],
        include: Some(attributes::Match {
            services: vec!["api".into()],
            log_bodies: vec![regex::Regex::new("^(?:login .*)$").unwrap()],
            ..attributes::Match::default()
        }),
        exclude: None,
    };
    let p = attributes::AttributesProcessor::new("attributes", config, sink.clone(), metrics());
    let api = resource("api", vec![]);
    let other = resource("worker", vec![]);
    let user = || vec![KeyValue::new("user.id", "42")];
    p.consume_logs(LogBatch::from_records(vec![
        record(&api, "login ok".into(), user()),
        record(&api, "logout".into(), user()),
        record(&other, "login ok".into(), user()),
    ]))
    .await
    .unwrap();
    let got = sink.records();
    let sha_of_42: String = {
        use sha2::Digest as _;
        sha2::Sha256::digest(b"42").iter().map(|b| format!("{b:02x}")).collect()
    };
    assert_eq!(got[0].attributes[0].value, Value::Str(sha_of_42.into()));
    assert_eq!(got[0].attributes[1], KeyValue::new("env", "prod"));
    assert_eq!(got[1].attributes, user(), "body does not match");
    assert_eq!(got[2].attributes, user(), "other service");
}

/// A secret in a log line is the commonest leak: text bodies are masked,
/// structured bodies lose secret keys, attributes and resources are
/// redacted, clean batches pass through untouched (same bytes).
#[tokio::test]
async fn redaction_masks_log_bodies_attributes_and_resources() {
    let sink = Arc::new(Sink::default());
    let p = redaction::RedactionProcessor::new(
        "redaction",
        redaction::Config::default(),
        sink.clone(),
        metrics(),
    );
    let r = resource("api", vec![KeyValue::new("deploy.token", "sk_live_51H")]);
    let clean = LogBatch::from_records(vec![record(&resource("api", vec![]), "all good".into(), vec![])]);
    let clean_bytes = clean.otlp_bytes().clone();
    p.consume_logs(clean).await.unwrap();
    assert_eq!(sink.logs.lock()[0].otlp_bytes(), &clean_bytes, "a clean batch is not re-encoded");

    let structured = Value::Map(vec![
        KeyValue::new("msg", "charged card 4111 1111 1111 1111"),
        KeyValue::new("password", "hunter2"),
    ]);
    p.consume_logs(LogBatch::from_records(vec![
        record(
            &r,
            "login alice@example.com with Authorization: Bearer abc.def.ghi".into(),
            vec![
                KeyValue::new("http.request.header.authorization", "Bearer abc"),
                KeyValue::new("route", "/login"),
            ],
        ),
        record(&r, structured, vec![]),
    ]))
    .await
    .unwrap();
    let got = sink.records();
    assert_eq!(got[1].body, Value::Str("login **** with Authorization: ****".into()));
    assert_eq!(got[1].attributes, vec![KeyValue::new("route", "/login")]);
    assert_eq!(got[2].body, Value::Map(vec![KeyValue::new("msg", "charged card ****")]));
    assert_eq!(got[1].resource.attributes(), &[KeyValue::new("service.name", "api")]);
    assert!(Arc::ptr_eq(&got[1].resource, &got[2].resource), "records keep sharing their redacted resource");
}

// ----------------------------------------------------------------- config

fn parse(text: &str) -> Result<crate::config::PipelineConfig, Vec<String>> {
    let ctx = crate::config::Context { data_dir: "/tmp/sl".into(), memory_limit: 256 << 20, max_tenants: 64 };
    crate::config::parse(&toml::from_str(text).unwrap(), &ctx)
        .map_err(|problems| problems.iter().map(ToString::to_string).collect())
}

#[test]
fn logs_and_metrics_pipelines_parse_and_misfits_are_reported() {
    let c = parse(
        r#"
        [processors."attributes/logs"]
        actions = [{ key = "env", value = "prod", action = "upsert" }]
        include = { log_severity_texts = ["ERROR"] }
        [processors.batch]
        [exporters.otlp]
        endpoint = "http://127.0.0.1:4317"
        [exporters.debug]
        [service.pipelines.traces]
        receivers = ["otlp"]
        exporters = ["store"]
        [service.pipelines.logs]
        receivers = ["otlp"]
        processors = ["memory_limiter", "attributes/logs", "redaction", "batch"]
        exporters = ["otlp", "debug"]
        [service.pipelines.metrics]
        receivers = ["otlp"]
        processors = ["memory_limiter", "batch"]
        exporters = ["otlp"]
    "#,
    );
    // Everything here fits, the otlp receiver in every signal.
    assert_eq!(c.err().unwrap_or_default(), Vec::<String>::new());

    let got = parse(
        r#"
        [processors."attributes/spans"]
        actions = [{ key = "env", value = "prod", action = "upsert" }]
        include = { span_names = ["GET .*"] }
        [service.pipelines.traces]
        receivers = ["otlp"]
        processors = ["attributes/spans"]
        exporters = ["store"]
        [service.pipelines.logs]
        receivers = ["otlp"]
        processors = ["attributes/spans", "spanmetrics"]
        exporters = ["debug", "store"]
        [service.pipelines.metrics]
        receivers = ["otlp"]
        processors = ["redaction"]
        exporters = ["debug", "store"]
    "#,
    )
    .unwrap_err();
    assert_eq!(
        got,
        vec![
            "service.pipelines.logs.processors[0]: processor \"attributes/spans\" does not fit logs: its include/exclude span_names cannot select logs; use another attributes processor here",
            "service.pipelines.logs.processors[1]: processor \"spanmetrics\" does not handle logs; it handles traces",
            "service.pipelines.logs.exporters[0]: unknown exporter \"debug\"; define it under [exporters.\"debug\"] or use one of: prometheus, store",
            "service.pipelines.metrics.processors[0]: processor \"redaction\" does not handle metrics; it handles traces, logs",
            "service.pipelines.metrics.exporters[0]: unknown exporter \"debug\"; define it under [exporters.\"debug\"] or use one of: prometheus, store",
            "service.pipelines.metrics.exporters[1]: exporter \"store\" does not handle metrics; it handles traces, logs",
        ]
    );
}

// ------------------------------------------------------- the OTLP exporter

/// An OTLP logs + metrics target over gRPC and HTTP that records what it
/// receives.
#[derive(Default, Clone)]
struct Target {
    logs: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl LogsService for Target {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.logs.lock().push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Target {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.metrics.lock().push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

impl Target {
    async fn serve(&self, http: bool) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        if http {
            let (logs, metrics) = (Arc::clone(&self.logs), Arc::clone(&self.metrics));
            let app = axum::Router::new()
                .route(
                    "/v1/logs",
                    axum::routing::post(move |body: axum::body::Bytes| async move {
                        logs.lock().push(ExportLogsServiceRequest::decode(body).unwrap());
                        ""
                    }),
                )
                .route(
                    "/v1/metrics",
                    axum::routing::post(move |body: axum::body::Bytes| async move {
                        metrics.lock().push(ExportMetricsServiceRequest::decode(body).unwrap());
                        ""
                    }),
                );
            tokio::spawn(async move { axum::serve(listener, app).await });
        } else {
            let incoming = futures_util::stream::unfold(listener, |l| async move {
                Some((l.accept().await.map(|(s, _)| s), l))
            });
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(LogsServiceServer::new(self.clone()))
                    .add_service(MetricsServiceServer::new(self.clone()))
                    .serve_with_incoming(incoming),
            );
        }
        addr
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporter_forwards_logs_and_metrics_over_grpc_and_http() {
    use crate::exporter::otlp::{Config, OtlpExporter, Protocol};
    for (protocol, http) in [(Protocol::Grpc, false), (Protocol::HttpProtobuf, true)] {
        let target = Target::default();
        let addr = target.serve(http).await;
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            endpoint: format!("http://{addr}"),
            protocol,
            timeout: Duration::from_secs(2),
            headers: vec![],
            queue_dir: dir.path().to_owned(),
            queue_max_bytes: 1 << 20,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            tenant_header: "X-Scope-OrgID".into(),
            max_tenants: 64,
        };
        let m = metrics();
        let logs =
            OtlpExporter::for_signal("otlp", config.clone(), crate::Signal::Logs, Arc::clone(&m)).unwrap();
        let mets = OtlpExporter::for_signal("otlp", config, crate::Signal::Metrics, Arc::clone(&m)).unwrap();
        let r = resource("api", vec![]);
        let records = vec![record(&r, "hello".into(), vec![]), record(&r, "world".into(), vec![])];
        logs.consume_logs(LogBatch::from_records(records.clone())).await.unwrap();
        mets.consume_metrics(MetricBatch::from_metrics(vec![counter("requests", &[3, 4])])).await.unwrap();
        // A logs exporter refuses other signals instead of queueing them.
        assert!(logs.consume_metrics(MetricBatch::from_metrics(vec![counter("x", &[1])])).await.is_err());
        for _ in 0..200 {
            if !target.logs.lock().is_empty() && !target.metrics.lock().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let got_logs = target.logs.lock().clone();
        assert_eq!(got_logs.len(), 1, "{protocol:?}");
        assert_eq!(otlp::decode_logs_request(got_logs[0].clone()).records, records, "{protocol:?}");
        let got_metrics = target.metrics.lock().clone();
        assert_eq!(got_metrics.len(), 1, "{protocol:?}");
        let decoded = otlp::decode_metrics_request(got_metrics[0].clone());
        assert_eq!(decoded.metrics[0].name, "requests");
        assert!(dir.path().join("logs").is_dir() && dir.path().join("metrics").is_dir());
        logs.shutdown().await;
        mets.shutdown().await;
    }
}

#[test]
fn prometheus_exporters_parse_with_collector_keys_and_report_problems() {
    let text = r#"
        [exporters.prometheusremotewrite]
        endpoint = "http://127.0.0.1:9090/api/v1/write"
        namespace = "app"
        external_labels = { cluster = "eu1" }
        resource_to_telemetry_conversion = { enabled = true }
        target_info = { enabled = false }
        headers = { "X-Scope-OrgID" = "tenant-a" }
        [exporters.prometheus]
        endpoint = "127.0.0.1:9464"
        const_labels = { region = "west" }
        metric_expiration = "10m"
    "#;
    let c = parse(text).unwrap();
    let rw = c.exporters["prometheusremotewrite"]
        .settings::<crate::exporter::prometheus::RemoteWriteConfig>()
        .unwrap();
    assert_eq!(rw.translation.namespace, "app");
    assert_eq!(rw.translation.extra_labels, vec![("cluster".to_string(), "eu1".to_string())]);
    assert!(rw.translation.resource_to_labels && !rw.translation.target_info);
    assert_eq!(rw.queue_dir, std::path::PathBuf::from("/tmp/sl/queues/prometheusremotewrite"));
    assert_eq!(rw.headers, vec![("X-Scope-OrgID".to_string(), "tenant-a".to_string())]);
    let scrape = c.exporters["prometheus"].settings::<crate::exporter::prometheus::ScrapeConfig>().unwrap();
    assert_eq!(scrape.endpoint.unwrap().port(), 9464);
    assert_eq!(scrape.metric_expiration, Duration::from_secs(600));

    let got = parse(
        r#"
        [exporters.prometheusremotewrite]
        namespace = "9lives"
        external_labels = { "__name__" = "x" }
        [exporters."prometheusremotewrite/tls"]
        endpoint = "https://mimir:443/api/v1/push"
        [exporters.prometheus]
        endpoint = "localhost"
    "#,
    )
    .unwrap_err();
    assert_eq!(
        got,
        vec![
            "exporters.prometheus.endpoint: invalid address \"localhost\": expected host:port, e.g. \"127.0.0.1:9411\"",
            "exporters.prometheusremotewrite.endpoint: required: the remote-write URL, e.g. \"http://127.0.0.1:9090/api/v1/write\"",
            "exporters.prometheusremotewrite.namespace: use ASCII letters, digits and `_` (not first a digit)",
            "exporters.prometheusremotewrite.external_labels.__name__: a label name: ASCII letters, digits and `_`, not first a digit, not starting with `__`",
            "exporters.prometheusremotewrite/tls.endpoint: https is not supported here yet; use http://",
        ]
    );
}

/// Log batches keep their tenant through the processors that rebuild them
/// (attributes, redaction) and the batch processor never merges two
/// tenants' records: losing it would file a tenant's logs under the
/// default tenant's store.
#[tokio::test]
async fn log_batches_keep_their_tenant_through_the_processors() {
    use sightline_model::Tenant;
    let acme = Tenant::new("acme").unwrap();
    let tenants = |sink: &Sink| tenants_of(&sink.logs.lock());
    let r = resource("api", vec![]);
    let secret = || vec![KeyValue::new("password", "hunter2"), KeyValue::new("tmp.x", "y")];
    let one = || LogBatch::from_records(vec![record(&r, "login with password=hunter2".into(), secret())]);

    let sink = Arc::new(Sink::default());
    let p = redaction::RedactionProcessor::new(
        "redaction",
        redaction::Config::default(),
        sink.clone(),
        metrics(),
    );
    p.consume_logs(one().with_tenant(acme.clone())).await.unwrap();
    assert_eq!(tenants(&sink), vec![("acme".to_owned(), 1)]);

    let sink = Arc::new(Sink::default());
    let p = attributes::AttributesProcessor::new(
        "attributes",
        delete_attribute("tmp.x"),
        sink.clone(),
        metrics(),
    );
    p.consume_logs(one().with_tenant(acme.clone())).await.unwrap();
    assert_eq!(tenants(&sink), vec![("acme".to_owned(), 1)]);

    let sink = Arc::new(Sink::default());
    let cfg = batch_config(4, Duration::from_millis(50));
    let b = Arc::new(batch::BatchProcessor::<LogBatch>::new("batch", &cfg, sink.clone(), metrics()));
    let sends = (0..4).map(|i| {
        let b = Arc::clone(&b);
        let batch = if i % 2 == 0 { one().with_tenant(acme.clone()) } else { one() };
        async move { b.consume_logs(batch).await }
    });
    assert!(futures_util::future::join_all(sends).await.iter().all(Result::is_ok));
    assert_eq!(tenants(&sink), vec![("acme".to_owned(), 2), ("single-tenant".to_owned(), 2)]);
}
