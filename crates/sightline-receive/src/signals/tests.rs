//! OTLP logs and metrics through the same front and decoding steps as
//! traces: HTTP (protobuf, JSON, gzip) through `Router::oneshot`, gRPC over
//! loopback with tonic's generated clients.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::StatusCode;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::resource::v1 as pr;
use prometheus_client::registry::Registry;
use prost::Message as _;
use sightline_model::{
    ConsumeError, LogBatch, LogsConsumer, MetricBatch, MetricData, MetricsConsumer, SpanId, TraceId, Value,
};
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tower::ServiceExt as _;

use crate::Receiver;
use crate::front::{Front, Limits, Metrics};

#[derive(Default)]
struct Sink {
    logs: Mutex<Vec<LogBatch>>,
    metrics: Mutex<Vec<MetricBatch>>,
}

#[async_trait]
impl LogsConsumer for Sink {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        self.logs.lock().unwrap().push(batch);
        Ok(())
    }
}

#[async_trait]
impl MetricsConsumer for Sink {
    async fn consume_metrics(&self, batch: MetricBatch) -> Result<(), ConsumeError> {
        self.metrics.lock().unwrap().push(batch);
        Ok(())
    }
}

struct Setup {
    receiver: Receiver,
    sink: Arc<Sink>,
    registry: Registry,
}

fn setup_with(limits: Limits) -> Setup {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let sink = Arc::new(Sink::default());
    let receiver = Receiver::signals(Front::new(limits, metrics)).logs(sink.clone()).metrics(sink.clone());
    Setup { receiver, sink, registry }
}

fn setup() -> Setup {
    setup_with(Limits::default())
}

impl Setup {
    fn assert_metric(&self, line: &str) {
        crate::testing::assert_metric(&self.registry, line);
    }
    fn logs(&self) -> Vec<LogBatch> {
        self.sink.logs.lock().unwrap().clone()
    }
    fn metrics(&self) -> Vec<MetricBatch> {
        self.sink.metrics.lock().unwrap().clone()
    }
}

struct Reply {
    status: StatusCode,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

async fn post(receiver: &Receiver, path: &str, content_type: &str, gzip: bool, body: Vec<u8>) -> Reply {
    let mut request = http::Request::post(path).header("content-type", content_type);
    let body = if gzip {
        request = request.header("content-encoding", "gzip");
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    } else {
        body
    };
    let response = receiver.http_router().oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply { status: parts.status, body: axum::body::to_bytes(body, usize::MAX).await.unwrap() }
}

const PB: &str = "application/x-protobuf";
const JS: &str = "application/json";
const TRACE: [u8; 16] = [7; 16];
const SPAN: [u8; 8] = [9; 8];

fn kv(key: &str, value: &str) -> pc::KeyValue {
    pc::KeyValue {
        key: key.into(),
        value: Some(pc::AnyValue { value: Some(pc::any_value::Value::StringValue(value.into())) }),
        key_strindex: 0,
    }
}

fn resource(service: &str) -> Option<pr::Resource> {
    Some(pr::Resource { attributes: vec![kv("service.name", service)], ..Default::default() })
}

fn record(body: &str, trace_id: &[u8], span_id: &[u8]) -> pl::LogRecord {
    pl::LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(pc::AnyValue { value: Some(pc::any_value::Value::StringValue(body.into())) }),
        attributes: vec![kv("order.id", "42")],
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        ..Default::default()
    }
}

fn logs_request(records: Vec<pl::LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![pl::ResourceLogs {
            resource: resource("orders"),
            scope_logs: vec![pl::ScopeLogs { log_records: records, ..Default::default() }],
            schema_url: String::new(),
        }],
    }
}

fn counter(value: i64) -> pm::Metric {
    pm::Metric {
        name: "orders.placed".into(),
        unit: "{order}".into(),
        data: Some(pm::metric::Data::Sum(pm::Sum {
            data_points: vec![pm::NumberDataPoint {
                attributes: vec![kv("region", "eu")],
                time_unix_nano: 1_700_000_000_000_000_000,
                value: Some(pm::number_data_point::Value::AsInt(value)),
                ..Default::default()
            }],
            aggregation_temporality: 2,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn metrics_request(metrics: Vec<pm::Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![pm::ResourceMetrics {
            resource: resource("orders"),
            scope_metrics: vec![pm::ScopeMetrics { metrics, ..Default::default() }],
            schema_url: String::new(),
        }],
    }
}

// ---------------------------------------------------------------- logs

#[tokio::test]
async fn http_logs_protobuf_and_gzip_reach_the_consumer_with_their_ids() {
    let s = setup();
    let body = logs_request(vec![record("payment declined", &TRACE, &SPAN), record("retrying", &[], &[])])
        .encode_to_vec();
    for gzip in [false, true] {
        let reply = post(&s.receiver, "/v1/logs", PB, gzip, body.clone()).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(ExportLogsServiceResponse::decode(reply.body).unwrap().partial_success, None);
    }
    let batches = s.logs();
    assert_eq!(batches.len(), 2);
    // Every record accepted: the body itself is the unit's encoding.
    assert_eq!(batches[1].otlp_bytes().as_ref(), body.as_slice());
    let records = batches[0].records();
    assert_eq!(records[0].trace_id, Some(TraceId::from_bytes(TRACE).unwrap()));
    assert_eq!(records[0].span_id, Some(SpanId::from_bytes(SPAN).unwrap()));
    assert_eq!(records[0].body, Value::Str("payment declined".into()));
    assert_eq!(records[0].service_name(), "orders");
    assert_eq!(records[1].trace_id, None);
    s.assert_metric(
        r#"sightline_receive_requests_total{receiver="otlp",signal="logs",protocol="http_protobuf",outcome="ok"} 2"#,
    );
    s.assert_metric(
        r#"sightline_receive_log_records_total{receiver="otlp",protocol="http_protobuf",outcome="accepted"} 4"#,
    );
}

/// The specification's example request, and the proto3 JSON forms the
/// generated serde does not take: enum names, snake_case keys, nulls.
#[tokio::test]
async fn http_logs_json_spec_example_enum_names_snake_case_and_nulls() {
    let s = setup();
    let example = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/logs.json")).unwrap();
    let reply = post(&s.receiver, "/v1/logs", JS, false, example).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json(), serde_json::json!({}));
    let body = r#"{"resource_logs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"api"}}]},
        "scope_logs":[{"log_records":[{"severity_number":"SEVERITY_NUMBER_WARN","severityText":"WARNING",
        "traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","attributes":null,
        "body":{"kvlistValue":{"values":[{"key":"msg","value":{"stringValue":"slow"}}]}}}]}]}]}"#;
    let reply = post(&s.receiver, "/v1/logs", JS, false, body.into()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let batches = s.logs();
    let example = &batches[0].records()[0];
    assert_eq!(example.severity_number, 10);
    assert_eq!(example.trace_id.unwrap().to_string(), "5b8efff798038103d269b633813fc60c");
    assert_eq!(example.body, Value::Str("Example log record".into()));
    assert_eq!(example.attributes.len(), 6);
    let r = &batches[1].records()[0];
    assert_eq!(r.severity_number, 13, "SEVERITY_NUMBER_WARN");
    assert_eq!(r.service_name(), "api");
    assert!(matches!(&r.body, Value::Map(m) if m.len() == 1), "{:?}", r.body);
}

#[tokio::test]
async fn http_logs_wrong_length_ids_are_partial_success_in_both_encodings() {
    let s = setup();
    let body =
        logs_request(vec![record("ok", &TRACE, &SPAN), record("bad", &TRACE[..5], &SPAN)]).encode_to_vec();
    let reply = post(&s.receiver, "/v1/logs", PB, false, body).await;
    assert_eq!(reply.status, StatusCode::OK);
    let partial = ExportLogsServiceResponse::decode(reply.body).unwrap().partial_success.unwrap();
    assert_eq!(partial.rejected_log_records, 1);
    assert!(partial.error_message.contains("logRecords[1]"), "{}", partial.error_message);
    // The rejected record is not in the unit's encoding either.
    let batch = &s.logs()[0];
    assert_eq!(batch.len(), 1);
    assert_eq!(
        sightline_model::otlp::decode_logs_request(
            ExportLogsServiceRequest::decode(batch.otlp_bytes().clone()).unwrap()
        )
        .records,
        batch.records()
    );
    let json = r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"traceId":"0102","body":{"stringValue":"x"}}]}]}]}"#;
    let reply = post(&s.receiver, "/v1/logs", JS, false, json.into()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["partialSuccess"]["rejectedLogRecords"], "1");
    s.assert_metric(
        r#"sightline_receive_log_records_total{receiver="otlp",protocol="http_json",outcome="rejected"} 1"#,
    );
}

#[tokio::test]
async fn http_bad_logs_and_metrics_bodies_are_400_with_a_message() {
    let s = setup();
    for path in ["/v1/logs", "/v1/metrics"] {
        let reply = post(&s.receiver, path, PB, false, vec![0xff, 0xff, 0xff]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        let status = tonic_types::Status::decode(reply.body).unwrap();
        assert!(status.message.starts_with("invalid OTLP protobuf"), "{}", status.message);
        let reply = post(&s.receiver, path, JS, false, b"{\"resourceLogs\":[".to_vec()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(reply.json()["message"].as_str().unwrap().starts_with("invalid JSON"), "{path}");
    }
    let reply = post(
        &s.receiver,
        "/v1/logs",
        JS,
        false,
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"severityNumber":"LOUD"}]}]}]}"#.to_vec(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("severityNumber"), "{message}");
    s.assert_metric(r#"sightline_receive_requests_total{receiver="otlp",signal="metrics",protocol="http_json",outcome="bad_request"} 1"#);
    assert!(s.logs().is_empty() && s.metrics().is_empty());
}

/// D1 for logs: a body of many empty records is refused from its walked
/// decoded size, before prost allocates them.
#[tokio::test]
async fn http_logs_of_many_empty_records_are_refused_before_decoding() {
    let s = setup();
    let mut scope = Vec::new();
    for _ in 0..500_000 {
        // field 2 (log_records), length 0
        scope.extend_from_slice(&[0x12, 0x00]);
    }
    let mut body = Vec::new();
    let resource = [&[0x12][..], &prost_len(scope.len()), &scope].concat();
    body.extend_from_slice(&[0x0a]);
    body.extend_from_slice(&prost_len(resource.len()));
    body.extend_from_slice(&resource);
    assert_eq!(
        ExportLogsServiceRequest::decode(body.as_slice()).unwrap().resource_logs[0].scope_logs[0]
            .log_records
            .len(),
        500_000
    );
    let reply = post(&s.receiver, "/v1/logs", PB, false, body).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(s.logs().is_empty());
    assert_eq!(s.receiver.front().available(), Limits::default().max_inflight_bytes);
}

fn prost_len(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(n as u64, &mut out);
    out
}

/// Packed varint buckets decode to eight bytes per wire byte: the walk
/// charges for that growth.
#[test]
fn exponential_histogram_buckets_are_charged_for_their_decoded_size() {
    let buckets = vec![0u64; 1_000_000];
    let request = metrics_request(vec![pm::Metric {
        name: "latency".into(),
        data: Some(pm::metric::Data::ExponentialHistogram(pm::ExponentialHistogram {
            data_points: vec![pm::ExponentialHistogramDataPoint {
                positive: Some(pm::exponential_histogram_data_point::Buckets {
                    offset: 0,
                    bucket_counts: buckets,
                }),
                ..Default::default()
            }],
            aggregation_temporality: 1,
        })),
        ..Default::default()
    }]);
    let body = request.encode_to_vec();
    let cost = crate::front::cost::proto_cost(&body, <super::Metrics as super::OtlpSignal>::COST).unwrap();
    assert!(cost >= 8 * 1_000_000, "{cost} for {} body bytes", body.len());
}

// ---------------------------------------------------------------- metrics

#[tokio::test]
async fn http_metrics_protobuf_json_and_spec_example() {
    let s = setup();
    let body = metrics_request(vec![counter(5)]).encode_to_vec();
    let reply = post(&s.receiver, "/v1/metrics", PB, true, body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ExportMetricsServiceResponse::decode(reply.body).unwrap().partial_success, None);
    let example = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/metrics.json")).unwrap();
    let reply = post(&s.receiver, "/v1/metrics", JS, false, example).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let json = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"q","sum":{"aggregation_temporality":"AGGREGATION_TEMPORALITY_DELTA","isMonotonic":true,"dataPoints":[{"asInt":"3","attributes":null}]}}]}]}]}"#;
    let reply = post(&s.receiver, "/v1/metrics", JS, false, json.into()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let batches = s.metrics();
    assert_eq!(batches[0].otlp_bytes().as_ref(), body.as_slice());
    let names: Vec<&str> = batches[1].metrics().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["my.counter", "my.gauge", "my.histogram", "my.exponential.histogram"]);
    assert!(matches!(
        &batches[2].metrics()[0].data,
        MetricData::Sum { temporality: sightline_model::Temporality::Delta, monotonic: true, points } if points.len() == 1
    ));
    s.assert_metric(r#"sightline_receive_metric_points_total{receiver="otlp",protocol="http_protobuf",outcome="accepted"} 1"#);
}

#[tokio::test]
async fn http_metrics_bad_histogram_is_partial_success() {
    let s = setup();
    let bad = pm::Metric {
        name: "h".into(),
        data: Some(pm::metric::Data::Histogram(pm::Histogram {
            data_points: vec![pm::HistogramDataPoint {
                count: 3,
                bucket_counts: vec![1, 2, 0, 0],
                explicit_bounds: vec![1.0],
                ..Default::default()
            }],
            aggregation_temporality: 2,
        })),
        ..Default::default()
    };
    let reply =
        post(&s.receiver, "/v1/metrics", PB, false, metrics_request(vec![counter(1), bad]).encode_to_vec())
            .await;
    assert_eq!(reply.status, StatusCode::OK);
    let partial = ExportMetricsServiceResponse::decode(reply.body).unwrap().partial_success.unwrap();
    assert_eq!(partial.rejected_data_points, 1, "{}", partial.error_message);
    assert_eq!(s.metrics()[0].data_points(), 1);
}

// ---------------------------------------------------------------- routing

/// A signal no pipeline takes is not served: 404 over HTTP,
/// `UNIMPLEMENTED` over gRPC — as the Collector answers.
#[tokio::test]
async fn signals_without_a_consumer_are_not_served() {
    let s = setup();
    let reply = post(&s.receiver, "/v1/traces", PB, false, Vec::new()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let server = serve_grpc(&s.receiver).await;
    let mut traces = TraceServiceClient::connect(format!("http://{}", server.0)).await.unwrap();
    let err = traces
        .export(opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    server.1.abort();
}

async fn serve_grpc(receiver: &Receiver) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = receiver.grpc_router();
    (addr, tokio::spawn(async move { axum::serve(listener, router).await.unwrap() }))
}

#[tokio::test]
async fn grpc_logs_and_metrics_with_gzip_and_partial_success() {
    let s = setup();
    let (addr, task) = serve_grpc(&s.receiver).await;
    let mut logs = LogsServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let reply = logs.export(logs_request(vec![record("a", &TRACE, &SPAN)])).await.unwrap().into_inner();
    assert_eq!(reply.partial_success, None);
    let reply = logs.export(logs_request(vec![record("b", &TRACE, &SPAN[..3])])).await.unwrap().into_inner();
    assert_eq!(reply.partial_success.unwrap().rejected_log_records, 1);
    let mut metrics = MetricsServiceClient::connect(format!("http://{addr}")).await.unwrap();
    let reply = metrics.export(metrics_request(vec![counter(7)])).await.unwrap().into_inner();
    assert_eq!(reply.partial_success, None);
    let err = metrics.export(ExportMetricsServiceRequest::default()).await;
    assert!(err.is_ok(), "an empty request is a success");
    task.abort();
    assert_eq!(s.logs().len(), 1);
    assert_eq!(s.logs()[0].records()[0].body, Value::Str("a".into()));
    assert_eq!(s.metrics().len(), 1);
    s.assert_metric(r#"sightline_receive_requests_total{receiver="otlp",signal="logs",protocol="grpc",outcome="partial"} 1"#);
    s.assert_metric(
        r#"sightline_receive_metric_points_total{receiver="otlp",protocol="grpc",outcome="accepted"} 1"#,
    );
}

/// Enum names work for traces too (`kind`, `status.code`).
#[tokio::test]
async fn http_traces_json_enum_names() {
    #[derive(Default)]
    struct Spans(Mutex<Vec<sightline_model::Batch>>);
    #[async_trait]
    impl sightline_model::TracesConsumer for Spans {
        async fn consume_traces(&self, batch: sightline_model::Batch) -> Result<(), ConsumeError> {
            self.0.lock().unwrap().push(batch);
            Ok(())
        }
    }
    let spans = Arc::new(Spans::default());
    let metrics = Arc::new(Metrics::new(&mut Registry::default()));
    let receiver = Receiver::signals(Front::new(Limits::default(), metrics)).traces(spans.clone());
    let body = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10",
        "spanId":"0102030405060708","name":"op","kind":"SPAN_KIND_SERVER","status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#;
    let reply = post(&receiver, "/v1/traces", JS, false, body.into()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let span = spans.0.lock().unwrap()[0].spans()[0].clone();
    assert_eq!(span.kind, sightline_model::SpanKind::Server);
    assert_eq!(span.status.code, sightline_model::StatusCode::Error);
}

// ------------------------------------------------------------ fuzzing

use proptest::prelude::*;

/// A logs and a metrics request with every kind of point, as bytes.
fn seeds() -> [Vec<u8>; 2] {
    let example = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/metrics.json")).unwrap();
    let metrics: ExportMetricsServiceRequest =
        crate::json::decode_request(&example, &mut crate::front::Budget::new(64 << 20).claim()).unwrap();
    [
        logs_request(vec![record("a", &TRACE, &SPAN), record("b", &[], &[])]).encode_to_vec(),
        metrics.encode_to_vec(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// Mutated and arbitrary protobuf on /v1/logs and /v1/metrics: a
    /// status (200, 400, 413), never a panic; the decoded-size walk accepts
    /// whatever prost decodes; the budget is whole again afterwards.
    #[test]
    fn logs_and_metrics_protobuf_bodies_get_a_status_and_the_walk_agrees_with_prost(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        noise in proptest::collection::vec(any::<u8>(), 0..200),
        pick in 0u8..2,
        metrics in any::<bool>(),
    ) {
        let mut body = if pick == 0 { seeds()[usize::from(metrics)].clone() } else { noise };
        if !body.is_empty() {
            for (at, byte) in &flips {
                let i = at.index(body.len());
                body[i] = *byte;
            }
        }
        let cost = if metrics {
            ExportMetricsServiceRequest::decode(body.as_slice())
                .is_ok()
                .then(|| crate::front::cost::proto_cost(&body, <super::Metrics as super::OtlpSignal>::COST))
        } else {
            ExportLogsServiceRequest::decode(body.as_slice())
                .is_ok()
                .then(|| crate::front::cost::proto_cost(&body, <super::Logs as super::OtlpSignal>::COST))
        };
        if let Some(cost) = cost {
            prop_assert!(cost.is_ok(), "the walk refused a body prost decodes: {cost:?}");
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let s = setup();
        let path = if metrics { "/v1/metrics" } else { "/v1/logs" };
        let reply = rt.block_on(post(&s.receiver, path, PB, false, body));
        prop_assert!(
            [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE].contains(&reply.status),
            "{}", reply.status
        );
        prop_assert_eq!(s.receiver.front().available(), Limits::default().max_inflight_bytes);
    }
}
