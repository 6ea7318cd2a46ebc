//! Router tests through `oneshot`, against a fake reader holding hand-built
//! spans. Responses are compared as whole JSON values, because clients
//! depend on every field.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use prometheus_client::registry::Registry;
use serde_json::{Value as Json, json};
use sightline_model::{
    ComponentHealth, DependencyLink, Event, KeyValue, Link, MetricPoint, MetricSeries, MetricsQuery,
    Operation, QueryError, Resource, Scope, Span, SpanId, SpanKind, SpanMetricsReader, SpanReader, Status,
    StatusCode as OtelStatus, TagFilter, TraceHit, TraceId, TraceQuery, Value,
};
use tower::ServiceExt;

use crate::duration::{DurationError, parse_go_duration};
use crate::{ApiState, Metrics, router};

// ---------------------------------------------------------------- fixtures

const T1: &str = "0af7651916cd43dd8448eb211c80319c";
const T2: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const T_OTHER: &str = "11111111111111111111111111111111";
const ROOT: &str = "00f067aa0ba902b7";
const CHILD: &str = "00f067aa0ba902b8";
const RENDER: &str = "00f067aa0ba902b9";
const START: u64 = 1_700_000_000_123_456_789;

fn tid(s: &str) -> TraceId {
    s.parse().unwrap()
}

fn sid(s: &str) -> SpanId {
    s.parse().unwrap()
}

fn frontend() -> Arc<Resource> {
    Arc::new(Resource::new(
        vec![KeyValue::new("service.name", "frontend"), KeyValue::new("host.name", "web-1")],
        0,
        String::new(),
    ))
}

fn span(trace: &str, id: &str, resource: &Arc<Resource>, scope: &Arc<Scope>) -> Span {
    Span::test(tid(trace), sid(id), "").with_times(START, START).with_resource(resource).with_scope(scope)
}

fn link(trace: &str, id: &str, attributes: Vec<KeyValue>) -> Link {
    Link {
        trace_id: tid(trace),
        span_id: sid(id),
        trace_state: String::new(),
        attributes,
        dropped_attributes_count: 0,
        flags: 0,
    }
}

/// A frontend server span with every attribute type, events and an error;
/// a backend client span with links; and a frontend span from a separate
/// but equal resource (so it must share process `p1`).
fn two_service_trace() -> Vec<Span> {
    let front = frontend();
    let back = Arc::new(Resource::new(
        vec![KeyValue::new("process.pid", 42i64), KeyValue::new("service.name", "backend")],
        0,
        String::new(),
    ));
    let http_scope =
        Arc::new(Scope { name: "io.opentelemetry.http".into(), version: "1.2.0".into(), ..Scope::default() });
    let db_scope = Arc::new(Scope { name: "db".into(), ..Scope::default() });
    let no_scope = Arc::new(Scope::default());

    let mut root = span(T1, ROOT, &front, &http_scope);
    root.trace_state = "vendor=x".into();
    root.flags = 0x301;
    root.name = "GET /checkout".into();
    root.kind = SpanKind::Server;
    root.end_time_unix_nano = START + 250_000_999;
    root.attributes = vec![
        KeyValue::new("http.method", "GET"),
        KeyValue::new("http.status_code", 500i64),
        KeyValue::new("cache.hit", false),
        KeyValue::new("ratio", 0.25),
        KeyValue { key: "payload".into(), value: Value::Bytes(vec![1, 2, 3]) },
        KeyValue::new("big", 9_007_199_254_740_993i64),
        KeyValue { key: "list".into(), value: Value::Array(vec![Value::from("a"), Value::Int(1)]) },
        KeyValue { key: "ctx".into(), value: Value::Map(vec![KeyValue::new("k", "v")]) },
        KeyValue { key: "nothing".into(), value: Value::Empty },
    ];
    root.events = vec![
        Event {
            time_unix_nano: 1_700_000_000_200_000_000,
            name: "exception".into(),
            attributes: vec![KeyValue::new("exception.type", "ValueError")],
            dropped_attributes_count: 0,
        },
        Event {
            time_unix_nano: 1_700_000_000_300_000_999,
            name: String::new(),
            attributes: vec![KeyValue::new("note", "hi")],
            dropped_attributes_count: 0,
        },
        Event {
            time_unix_nano: 1_700_000_000_400_000_000,
            name: "retry".into(),
            attributes: vec![KeyValue::new("event", "custom"), KeyValue::new("attempt", 2i64)],
            dropped_attributes_count: 0,
        },
    ];
    root.status = Status { code: OtelStatus::Error, message: "boom".into() };

    let mut child = span(T1, CHILD, &back, &db_scope);
    child.parent_span_id = Some(sid(ROOT));
    child.flags = 1;
    child.name = "SELECT orders".into();
    child.kind = SpanKind::Client;
    child.start_time_unix_nano = START + 10_000_000;
    child.end_time_unix_nano = START + 15_000_000;
    child.status = Status { code: OtelStatus::Ok, message: String::new() };
    child.links = vec![
        // A link to the parent only changes the parent reference's type.
        link(T1, ROOT, vec![KeyValue::new("opentracing.ref_type", "follows_from")]),
        link(T_OTHER, "0000000000000aaa", vec![]),
        link(T_OTHER, "0000000000000bbb", vec![KeyValue::new("opentracing.ref_type", "child_of")]),
    ];

    let mut render = span(T1, RENDER, &frontend(), &no_scope);
    render.parent_span_id = Some(sid(ROOT));
    render.name = "render".into();
    render.start_time_unix_nano = START + 20_000_000;
    render.end_time_unix_nano = START + 21_000_000;

    vec![root, child, render]
}

fn two_service_trace_json() -> Json {
    json!({
        "traceID": T1,
        "spans": [
            {
                "traceID": T1,
                "spanID": ROOT,
                "flags": 1,
                "operationName": "GET /checkout",
                "references": [],
                "startTime": 1_700_000_000_123_456u64,
                "duration": 250_000,
                "tags": [
                    {"key": "otel.scope.name", "type": "string", "value": "io.opentelemetry.http"},
                    {"key": "otel.scope.version", "type": "string", "value": "1.2.0"},
                    {"key": "http.method", "type": "string", "value": "GET"},
                    {"key": "http.status_code", "type": "int64", "value": 500},
                    {"key": "cache.hit", "type": "bool", "value": false},
                    {"key": "ratio", "type": "float64", "value": 0.25},
                    {"key": "payload", "type": "binary", "value": "AQID"},
                    {"key": "big", "type": "int64", "value": "9007199254740993"},
                    {"key": "list", "type": "string", "value": "[\"a\",1]"},
                    {"key": "ctx", "type": "string", "value": "{\"k\":\"v\"}"},
                    {"key": "nothing", "type": "string", "value": ""},
                    {"key": "span.kind", "type": "string", "value": "server"},
                    {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                    {"key": "error", "type": "bool", "value": true},
                    {"key": "otel.status_description", "type": "string", "value": "boom"},
                    {"key": "w3c.tracestate", "type": "string", "value": "vendor=x"}
                ],
                "logs": [
                    {
                        "timestamp": 1_700_000_000_200_000u64,
                        "fields": [
                            {"key": "event", "type": "string", "value": "exception"},
                            {"key": "exception.type", "type": "string", "value": "ValueError"}
                        ]
                    },
                    {
                        "timestamp": 1_700_000_000_300_000u64,
                        "fields": [{"key": "note", "type": "string", "value": "hi"}]
                    },
                    {
                        "timestamp": 1_700_000_000_400_000u64,
                        "fields": [
                            {"key": "event", "type": "string", "value": "custom"},
                            {"key": "attempt", "type": "int64", "value": 2}
                        ]
                    }
                ],
                "processID": "p1",
                "warnings": null
            },
            {
                "traceID": T1,
                "spanID": CHILD,
                "flags": 1,
                "operationName": "SELECT orders",
                "references": [
                    {"refType": "FOLLOWS_FROM", "traceID": T1, "spanID": ROOT},
                    {"refType": "FOLLOWS_FROM", "traceID": T_OTHER, "spanID": "0000000000000aaa"},
                    {"refType": "CHILD_OF", "traceID": T_OTHER, "spanID": "0000000000000bbb"}
                ],
                "startTime": 1_700_000_000_133_456u64,
                "duration": 5_000,
                "tags": [
                    {"key": "otel.scope.name", "type": "string", "value": "db"},
                    {"key": "span.kind", "type": "string", "value": "client"},
                    {"key": "otel.status_code", "type": "string", "value": "OK"}
                ],
                "logs": [],
                "processID": "p2",
                "warnings": null
            },
            {
                "traceID": T1,
                "spanID": RENDER,
                "operationName": "render",
                "references": [{"refType": "CHILD_OF", "traceID": T1, "spanID": ROOT}],
                "startTime": 1_700_000_000_143_456u64,
                "duration": 1_000,
                "tags": [],
                "logs": [],
                "processID": "p1",
                "warnings": null
            }
        ],
        "processes": {
            "p1": {
                "serviceName": "frontend",
                "tags": [{"key": "host.name", "type": "string", "value": "web-1"}]
            },
            "p2": {
                "serviceName": "backend",
                "tags": [{"key": "process.pid", "type": "int64", "value": 42}]
            }
        },
        "warnings": null
    })
}

/// A one-span trace, for search results.
fn small_trace(trace: &str) -> Vec<Span> {
    let mut s = span(trace, ROOT, &frontend(), &Arc::new(Scope::default()));
    s.name = "GET /".into();
    s.end_time_unix_nano = START + 1_000;
    vec![s]
}

// ------------------------------------------------------------- fake reader

#[derive(Default)]
struct Fake {
    traces: Vec<Vec<Span>>,
    services: Vec<String>,
    operations: Vec<Operation>,
    links: Vec<DependencyLink>,
    fail: Option<QueryError>,
    last_query: Mutex<Option<TraceQuery>>,
    last_operations: Mutex<Option<(String, Option<SpanKind>)>>,
    last_dependencies: Mutex<Option<(u64, u64)>>,
    /// Traces built with their spans (by `trace` and `find_traces`): what
    /// a store reads from its blocks.
    traces_read: AtomicUsize,
    /// Most traces one `find_traces` returns, as a store's per-query
    /// result budget cuts a search (ids are not cut).
    find_cap: Option<usize>,
}

impl Fake {
    fn check(&self) -> Result<(), QueryError> {
        self.fail.clone().map_or(Ok(()), Err)
    }
}

#[async_trait]
impl SpanReader for Fake {
    async fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, QueryError> {
        self.check()?;
        let found = self.traces.iter().find(|t| t.first().is_some_and(|s| s.trace_id == id)).cloned();
        self.traces_read.fetch_add(usize::from(found.is_some()), Ordering::Relaxed);
        Ok(found)
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Vec<Span>>, QueryError> {
        self.check()?;
        *self.last_query.lock().unwrap() = Some(query.clone());
        let take = query.limit.min(self.find_cap.unwrap_or(usize::MAX));
        let found: Vec<Vec<Span>> = self.traces.iter().take(take).cloned().collect();
        self.traces_read.fetch_add(found.len(), Ordering::Relaxed);
        Ok(found)
    }

    /// The ids `find_traces` would return, without reading the traces.
    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceHit>, QueryError> {
        self.check()?;
        *self.last_query.lock().unwrap() = Some(query.clone());
        Ok(self.traces.iter().take(query.limit).filter_map(|t| TraceHit::of(t, query)).collect())
    }

    async fn services(&self) -> Result<Vec<String>, QueryError> {
        self.check()?;
        Ok(self.services.clone())
    }

    async fn operations(&self, service: &str, kind: Option<SpanKind>) -> Result<Vec<Operation>, QueryError> {
        self.check()?;
        *self.last_operations.lock().unwrap() = Some((service.to_owned(), kind));
        Ok(self.operations.iter().filter(|op| kind.is_none_or(|k| op.kind == k)).cloned().collect())
    }

    async fn dependencies(&self, end: u64, lookback: u64) -> Result<Vec<DependencyLink>, QueryError> {
        self.check()?;
        *self.last_dependencies.lock().unwrap() = Some((end, lookback));
        Ok(self.links.clone())
    }
}

// ----------------------------------------------------------------- harness

struct Harness {
    app: Router,
    reader: Arc<Fake>,
    ready: Arc<AtomicBool>,
}

fn harness_with(fake: Fake, health: Vec<ComponentHealth>) -> Harness {
    harness_full(fake, health, None, None)
}

fn harness_full(
    fake: Fake,
    health: Vec<ComponentHealth>,
    span_metrics: Option<Arc<dyn SpanMetricsReader>>,
    service_graph: Option<Arc<dyn sightline_model::ServiceGraphReader>>,
) -> Harness {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let reader = Arc::new(fake);
    let ready = Arc::new(AtomicBool::new(false));
    let state = ApiState {
        readers: Arc::new(Arc::clone(&reader) as Arc<dyn SpanReader>),
        health: Arc::new(move || health.clone()),
        ready: Arc::clone(&ready),
        registry: Arc::new(registry),
        metrics,
        span_metrics,
        service_graph,
        logs: None,
    };
    Harness { app: router(state), reader, ready }
}

fn harness(fake: Fake) -> Harness {
    harness_with(fake, Vec::new())
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Json {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// Sends `request` to `app` and collects the reply.
async fn send_to(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, content_type, body }
}

impl Harness {
    async fn get(&self, uri: &str) -> Reply {
        self.get_accepting(uri, None).await
    }

    async fn get_accepting(&self, uri: &str, accept: Option<&str>) -> Reply {
        let mut request = Request::get(uri);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// Sends any request; the body is collected.
    async fn send(&self, request: Request<Body>) -> Reply {
        send_to(&self.app, request).await
    }

    fn last_query(&self) -> TraceQuery {
        self.reader.last_query.lock().unwrap().clone().expect("find_traces was called")
    }
}

/// Percent-encodes a query value.
fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn envelope(data: Json, total: usize) -> Json {
    json!({"data": data, "total": total, "limit": 0, "offset": 0, "errors": null})
}

fn error_envelope(code: u16, msg: &str) -> Json {
    json!({"data": null, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": code, "msg": msg}]})
}

fn tag(key: &str, value: &str) -> TagFilter {
    TagFilter { key: key.into(), value: value.into() }
}

// ------------------------------------------------------------------- tests

#[tokio::test]
async fn services_are_listed_in_the_envelope() {
    let h = harness(Fake { services: vec!["svc-a".into(), "svc-b".into()], ..Fake::default() });
    let r = h.get("/api/services").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(r.text(), r#"{"data":["svc-a","svc-b"],"total":2,"limit":0,"offset":0,"errors":null}"#);
}

fn operations_fixture() -> Fake {
    let op = |name: &str, kind| Operation { name: name.into(), kind };
    Fake {
        operations: vec![
            op("GET /checkout", SpanKind::Client),
            op("GET /checkout", SpanKind::Server),
            op("background", SpanKind::Unspecified),
            op("render", SpanKind::Internal),
        ],
        ..Fake::default()
    }
}

#[tokio::test]
async fn legacy_operations_are_unique_names_of_every_kind() {
    let h = harness(operations_fixture());
    let r = h.get("/api/services/my%20svc/operations").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), envelope(json!(["GET /checkout", "background", "render"]), 3));
    assert_eq!(*h.reader.last_operations.lock().unwrap(), Some(("my svc".to_owned(), None)));
}

#[tokio::test]
async fn operations_carry_span_kinds_and_filter_by_kind() {
    let h = harness(operations_fixture());
    let r = h.get("/api/operations?service=frontend").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        envelope(
            json!([
                {"name": "GET /checkout", "spanKind": "client"},
                {"name": "GET /checkout", "spanKind": "server"},
                {"name": "background", "spanKind": ""},
                {"name": "render", "spanKind": "internal"}
            ]),
            4
        )
    );
    assert_eq!(*h.reader.last_operations.lock().unwrap(), Some(("frontend".to_owned(), None)));

    let r = h.get("/api/operations?service=frontend&spanKind=server").await;
    assert_eq!(r.json(), envelope(json!([{"name": "GET /checkout", "spanKind": "server"}]), 1));
    assert_eq!(
        *h.reader.last_operations.lock().unwrap(),
        Some(("frontend".to_owned(), Some(SpanKind::Server)))
    );

    // An empty spanKind means every kind, as in Jaeger.
    let r = h.get("/api/operations?service=frontend&spanKind=").await;
    assert_eq!(r.json()["total"], json!(4));
}

#[tokio::test]
async fn trace_by_id_renders_the_jaeger_json() {
    let h = harness(Fake { traces: vec![two_service_trace()], ..Fake::default() });
    let r = h.get(&format!("/api/traces/{T1}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), envelope(json!([two_service_trace_json()]), 1));
    // Upper case and missing leading zeros are accepted, as in Jaeger.
    let r = h.get(&format!("/api/traces/{}", T1.trim_start_matches('0').to_uppercase())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["data"][0]["traceID"], json!(T1));
}

#[tokio::test]
async fn responses_are_gzipped_when_the_client_accepts_it() {
    use std::io::Read as _;
    let h = harness(Fake { traces: vec![two_service_trace()], ..Fake::default() });
    let uri = format!("/api/traces/{T1}");
    let plain = h.app.clone().oneshot(Request::get(&uri).body(Body::empty()).unwrap()).await.unwrap();
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none(), "gzip without Accept-Encoding");
    let plain = plain.into_body().collect().await.unwrap().to_bytes();

    let request = Request::get(&uri).header(header::ACCEPT_ENCODING, "gzip").body(Body::empty()).unwrap();
    let gzipped = h.app.clone().oneshot(request).await.unwrap();
    assert_eq!(gzipped.status(), StatusCode::OK);
    assert_eq!(gzipped.headers().get(header::CONTENT_ENCODING).unwrap(), "gzip");
    let body = gzipped.into_body().collect().await.unwrap().to_bytes();
    assert!(body.len() < plain.len(), "{} compressed vs {} plain", body.len(), plain.len());
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut unzipped).unwrap();
    assert_eq!(unzipped, plain);
}

#[tokio::test]
async fn unknown_trace_is_a_404_with_jaegers_exact_body() {
    let h = harness(Fake::default());
    let r = h.get(&format!("/api/traces/{T1}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        r.text(),
        r#"{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}"#
    );
}

#[tokio::test]
async fn search_parameters_become_a_trace_query() {
    let h = harness(Fake { traces: vec![small_trace(T1), small_trace(T2)], ..Fake::default() });
    let uri = format!(
        "/api/traces?service=frontend&operation={}&tags={}&tag=db.system:postgres&tag={}\
         &minDuration=1m30s&maxDuration=1.5h&start=1700000000000000&end=1700000060000000\
         &lookback=1h&limit=5",
        enc("GET /checkout"),
        enc(r#"{"http.status_code":"500","error":"true","db.system":"mysql"}"#),
        enc("url:http://x:80/"),
    );
    let r = h.get(&uri).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        h.last_query(),
        TraceQuery {
            service: Some("frontend".into()),
            operation: Some("GET /checkout".into()),
            // `tag` values first, then `tags` (sorted by key); a later value
            // for the same key replaces the earlier one in place.
            tags: vec![
                tag("db.system", "mysql"),
                tag("url", "http://x:80/"),
                tag("error", "true"),
                tag("http.status_code", "500"),
            ],
            min_duration_nanos: Some(90_000_000_000),
            max_duration_nanos: Some(5_400_000_000_000),
            start_min_unix_nanos: Some(1_700_000_000_000_000_000),
            start_max_unix_nanos: Some(1_700_000_060_000_000_000),
            limit: 5,
        }
    );
    let body = r.json();
    assert_eq!(body["total"], json!(2));
    assert_eq!(body["errors"], json!(null));
    assert_eq!(body["data"][0]["traceID"], json!(T1));
    assert_eq!(body["data"][1]["traceID"], json!(T2));
}

#[tokio::test]
async fn search_defaults_and_micro_sign_durations() {
    let h = harness(Fake::default());
    let r = h.get(&format!("/api/traces?service=s&minDuration={}&maxDuration=0", enc("10µs"))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), envelope(json!([]), 0));
    assert_eq!(
        h.last_query(),
        TraceQuery {
            service: Some("s".into()),
            min_duration_nanos: Some(10_000),
            // Zero means "no bound", as in Jaeger.
            max_duration_nanos: None,
            limit: 100,
            ..TraceQuery::default()
        }
    );
    // Empty values count as absent; limit=0 means the default.
    h.get("/api/traces?service=s&operation=&limit=0&minDuration=10us").await;
    assert_eq!(
        h.last_query(),
        TraceQuery {
            service: Some("s".into()),
            min_duration_nanos: Some(10_000),
            limit: 100,
            ..TraceQuery::default()
        }
    );
}

#[tokio::test]
async fn search_by_trace_ids_skips_unknown_ones() {
    let h = harness(Fake { traces: vec![small_trace(T1)], ..Fake::default() });
    let r = h.get(&format!("/api/traces?traceID={T2}&traceID={T1}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["total"], json!(1));
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    assert_eq!(body["data"][0]["traceID"], json!(T1));
    // Jaeger reports each missing id, without a code.
    assert_eq!(body["errors"], json!([{"msg": "trace not found", "traceID": T2}]));
    assert!(h.reader.last_query.lock().unwrap().is_none(), "ids bypass the search");
}

#[tokio::test]
async fn bad_parameters_are_400s_naming_the_problem() {
    let h = harness(Fake::default());
    let cases: Vec<(String, &str)> = vec![
        ("/api/traces".into(), "parameter 'service' is required"),
        ("/api/traces?service=&operation=x".into(), "parameter 'service' is required"),
        (
            "/api/traces?service=s&limit=abc".into(),
            "unable to parse param 'limit': invalid digit found in string: \"abc\"",
        ),
        (
            "/api/traces?service=s&limit=-1".into(),
            "unable to parse param 'limit': must not be negative, got -1",
        ),
        (
            "/api/traces?service=s&minDuration=abc".into(),
            "unable to parse param 'minDuration': time: invalid duration \"abc\"",
        ),
        (
            "/api/traces?service=s&maxDuration=10".into(),
            "unable to parse param 'maxDuration': time: missing unit in duration \"10\"",
        ),
        (
            "/api/traces?service=s&minDuration=1d".into(),
            "unable to parse param 'minDuration': time: unknown unit \"d\" in duration \"1d\"",
        ),
        (
            "/api/traces?service=s&minDuration=-1s".into(),
            "unable to parse param 'minDuration': negative duration \"-1s\"",
        ),
        (
            "/api/traces?service=s&minDuration=2s&maxDuration=1s".into(),
            "'maxDuration' should be greater than 'minDuration'",
        ),
        (
            "/api/traces?service=s&start=x".into(),
            "unable to parse param 'start': invalid digit found in string: \"x\"",
        ),
        ("/api/traces?service=s&end=-5".into(), "unable to parse param 'end': must not be negative, got -5"),
        (
            "/api/traces?service=s&end=9223372036854775807".into(),
            "unable to parse param 'end': 9223372036854775807µs is out of range",
        ),
        (
            format!("/api/traces?service=s&tags={}", enc(r#"{"a":1}"#)),
            "malformed 'tags' parameter, cannot unmarshal JSON: invalid type: integer `1`, expected a string at line 1 column 6",
        ),
        (
            "/api/traces?service=s&tags=nope".into(),
            "malformed 'tags' parameter, cannot unmarshal JSON: expected ident at line 1 column 2",
        ),
        (
            "/api/traces?service=s&tag=novalue".into(),
            "malformed 'tag' parameter, expecting key:value, received: novalue",
        ),
        ("/api/traces?traceID=zz".into(), "cannot parse traceID param: trace id is not hex: \"zz\""),
        ("/api/traces/zz".into(), "cannot parse traceID: trace id is not hex: \"zz\""),
        (
            format!("/api/traces/{}", "a".repeat(33)),
            "cannot parse traceID: TraceID cannot be longer than 32 hex characters: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ),
        ("/api/operations".into(), "parameter 'service' is required"),
        (
            "/api/dependencies?endTs=abc".into(),
            "unable to parse param 'endTs': invalid digit found in string: \"abc\"",
        ),
        (
            "/api/dependencies?lookback=-1".into(),
            "unable to parse param 'lookback': must not be negative, got -1",
        ),
    ];
    for (uri, msg) in cases {
        let r = h.get(&uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(r.json(), error_envelope(400, msg), "{uri}");
    }
}

#[tokio::test]
async fn reader_errors_map_to_statuses() {
    let cases = [
        (QueryError::Invalid("bad regex".into()), StatusCode::BAD_REQUEST, "bad regex"),
        (
            QueryError::Unavailable("store failed".into()),
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable: store failed",
        ),
        (
            QueryError::Internal("corrupt block".into()),
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error: corrupt block",
        ),
    ];
    for (error, status, msg) in cases {
        let h = harness(Fake { fail: Some(error), ..Fake::default() });
        for uri in ["/api/services", "/api/traces?service=s", &format!("/api/traces/{T1}")] {
            let r = h.get(uri).await;
            assert_eq!(r.status, status, "{uri}");
            assert_eq!(r.json(), error_envelope(status.as_u16(), msg), "{uri}");
        }
    }
}

#[tokio::test]
async fn dependencies_merge_the_service_graph_without_double_counting() {
    struct Graph(Vec<DependencyLink>);
    #[async_trait::async_trait]
    impl sightline_model::ServiceGraphReader for Graph {
        async fn dependencies(
            &self,
            _tenant: &sightline_model::Tenant,
            _end: u64,
            _lookback: u64,
        ) -> Result<Vec<DependencyLink>, QueryError> {
            Ok(self.0.clone())
        }
    }
    let dep = |parent: &str, child: &str, call_count| DependencyLink {
        parent: parent.into(),
        child: child.into(),
        call_count,
    };
    let graph = Graph(vec![dep("a", "b", 7), dep("b", "c", 1), dep("b", "postgres", 4)]);
    let h = harness_full(
        Fake { links: vec![dep("a", "b", 5), dep("b", "c", 2)], ..Fake::default() },
        Vec::new(),
        None,
        Some(Arc::new(graph)),
    );
    let r = h.get("/api/dependencies?endTs=1700000000000").await;
    assert_eq!(
        r.json(),
        envelope(
            json!([
                {"parent": "a", "child": "b", "callCount": 7},
                {"parent": "b", "child": "c", "callCount": 2},
                {"parent": "b", "child": "postgres", "callCount": 4}
            ]),
            3
        )
    );
}

#[tokio::test]
async fn dependencies_are_summed_and_filtered() {
    let dep = |parent: &str, child: &str, call_count| DependencyLink {
        parent: parent.into(),
        child: child.into(),
        call_count,
    };
    let h = harness(Fake {
        links: vec![dep("a", "b", 3), dep("b", "c", 1), dep("a", "b", 2)],
        ..Fake::default()
    });
    let r = h.get("/api/dependencies?endTs=1700000000000&lookback=3600000").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        envelope(
            json!([
                {"parent": "a", "child": "b", "callCount": 5},
                {"parent": "b", "child": "c", "callCount": 1}
            ]),
            2
        )
    );
    assert_eq!(
        *h.reader.last_dependencies.lock().unwrap(),
        Some((1_700_000_000_000_000_000, 3_600_000_000_000))
    );

    let r = h.get("/api/dependencies?endTs=1700000000000&service=c").await;
    assert_eq!(r.json(), envelope(json!([{"parent": "b", "child": "c", "callCount": 1}]), 1));
    let (end, lookback) = h.reader.last_dependencies.lock().unwrap().unwrap();
    assert_eq!((end, lookback), (1_700_000_000_000_000_000, 86_400_000_000_000));

    // Without endTs the window ends now (after this test was written).
    h.get("/api/dependencies").await;
    let (end, _) = h.reader.last_dependencies.lock().unwrap().unwrap();
    assert!(end > 1_750_000_000_000_000_000, "{end}");
}

#[tokio::test]
async fn health_lists_every_check() {
    let check = |name: &str, healthy, detail: &str| ComponentHealth {
        name: name.into(),
        healthy,
        detail: detail.into(),
    };
    let cases = [
        (true, "3 blocks, head 120 spans", StatusCode::OK, "ok"),
        (false, "wal: disk full", StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    ];
    for (healthy, detail, code, status) in cases {
        let h = harness_with(
            Fake::default(),
            vec![check("store", healthy, detail), check("otlp_grpc", true, "listening")],
        );
        let r = h.get("/health").await;
        assert_eq!(r.status, code);
        assert_eq!(
            r.json(),
            json!({"status": status, "checks": [
                {"name": "store", "status": status, "detail": detail},
                {"name": "otlp_grpc", "status": "ok", "detail": "listening"}
            ]})
        );
    }
}

#[tokio::test]
async fn ready_follows_the_flag() {
    let h = harness(Fake::default());
    let r = h.get("/ready").await;
    assert_eq!((r.status, r.text()), (StatusCode::SERVICE_UNAVAILABLE, "not ready"));
    h.ready.store(true, Ordering::Release);
    let r = h.get("/ready").await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, "ready"));
}

#[tokio::test]
async fn metrics_count_queries_by_route_template() {
    let h = harness(Fake { services: vec!["a".into()], ..Fake::default() });
    h.get("/api/services").await;
    h.get("/api/services").await;
    h.get(&format!("/api/traces/{T1}")).await;
    h.get("/nope").await;
    // What Prometheus sends when scraping.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let r = h.get_accepting("/metrics", Some(accept)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let text = r.text();
    for line in [
        "# TYPE sightline_api_query_duration_seconds histogram",
        "sightline_api_query_duration_seconds_count{endpoint=\"/api/services\"} 2",
        "sightline_api_query_duration_seconds_count{endpoint=\"/api/traces/{traceID}\"} 1",
        "sightline_api_requests_total{endpoint=\"/api/services\",status=\"200\"} 2",
        "sightline_api_requests_total{endpoint=\"/api/traces/{traceID}\",status=\"404\"} 1",
        "sightline_api_requests_total{endpoint=\"unmatched\",status=\"404\"} 1",
        "# EOF",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    // Only /api routes are timed; raw trace ids never become labels.
    assert!(!text.contains("duration_seconds_count{endpoint=\"unmatched\"}"), "{text}");
    assert!(!text.contains("duration_seconds_count{endpoint=\"/metrics\"}"), "{text}");
    assert!(!text.contains(T1), "{text}");
}

#[test]
fn go_durations_parse_like_go() {
    let ok: &[(&str, i64)] = &[
        ("0", 0),
        ("-0", 0),
        ("+5s", 5_000_000_000),
        ("1.5s", 1_500_000_000),
        (".5s", 500_000_000),
        ("1.s", 1_000_000_000),
        ("100ms", 100_000_000),
        ("10us", 10_000),
        ("10\u{b5}s", 10_000),
        ("10\u{3bc}s", 10_000),
        ("3ns", 3),
        ("1m30s", 90_000_000_000),
        ("1h", 3_600_000_000_000),
        ("1h2m3.5s", 3_723_500_000_000),
        ("-1.5h", -5_400_000_000_000),
        ("1.0000000001s", 1_000_000_000),
        ("0.0000000001s", 0),
        ("9223372036854775807ns", i64::MAX),
        ("-9223372036854775808ns", i64::MIN),
        ("2562047h", 2_562_047 * 3_600_000_000_000),
    ];
    for &(input, nanos) in ok {
        assert_eq!(parse_go_duration(input), Ok(nanos), "{input}");
    }
    let invalid = |s: &str| DurationError::Invalid { input: s.into() };
    let errors: &[(&str, DurationError)] = &[
        ("", invalid("")),
        ("-", invalid("-")),
        ("s", invalid("s")),
        (".", invalid(".")),
        ("1s.", invalid("1s.")),
        ("9223372036854775808ns", invalid("9223372036854775808ns")),
        ("2562048h", invalid("2562048h")),
        ("99999999999999999999s", invalid("99999999999999999999s")),
        ("10", DurationError::MissingUnit { input: "10".into() }),
        ("1.5", DurationError::MissingUnit { input: "1.5".into() }),
        ("1s2", DurationError::MissingUnit { input: "1s2".into() }),
        ("1d", DurationError::UnknownUnit { unit: "d".into(), input: "1d".into() }),
        ("1sm", DurationError::UnknownUnit { unit: "sm".into(), input: "1sm".into() }),
        ("1 s", DurationError::UnknownUnit { unit: " s".into(), input: "1 s".into() }),
    ];
    for (input, error) in errors {
        assert_eq!(parse_go_duration(input).as_ref(), Err(error), "{input}");
    }
    assert_eq!(
        DurationError::UnknownUnit { unit: "d".into(), input: "1d".into() }.to_string(),
        "time: unknown unit \"d\" in duration \"1d\""
    );
}

// ------------------------------------------------------- /metrics formats

#[tokio::test]
async fn metrics_without_accept_are_prometheus_text() {
    let h = harness(Fake::default());
    h.get("/api/services").await;
    for accept in [None, Some("text/plain"), Some("application/openmetrics-text;q=0, text/plain")] {
        let r = h.get_accepting("/metrics", accept).await;
        assert_eq!(r.content_type, "text/plain; version=0.0.4; charset=utf-8", "{accept:?}");
        let text = r.text();
        for line in [
            "# HELP sightline_api_requests_total HTTP requests to the query API, by route and status.",
            "# TYPE sightline_api_requests_total counter",
            "sightline_api_requests_total{endpoint=\"/api/services\",status=\"200\"} 1",
            "# TYPE sightline_api_query_duration_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
    }
}

#[test]
fn openmetrics_rewrites_as_prometheus_text() {
    let om = concat!(
        "# HELP calls Calls.\n",
        "# TYPE calls counter\n",
        "calls_total{span_name=\"a # {b} \\\" #\"} 3 # {trace_id=\"0af7\",span_id=\"00f0\"} 1 1700000000.5\n",
        "# HELP d_seconds Durations.\n",
        "# TYPE d_seconds histogram\n",
        "# UNIT d_seconds seconds\n",
        "d_seconds_sum 0.5\n",
        "d_seconds_bucket{le=\"+Inf\"} 3 # {trace_id=\"0af7\"} 0.2\n",
        "# HELP build Build.\n",
        "# TYPE build info\n",
        "build_info{version=\"1\"} 1\n",
        "# HELP u Unknown.\n",
        "# TYPE u unknown\n",
        "u 1\n",
        "# EOF\n",
    );
    let expected = concat!(
        "# HELP calls_total Calls.\n",
        "# TYPE calls_total counter\n",
        "calls_total{span_name=\"a # {b} \\\" #\"} 3\n",
        "# HELP d_seconds Durations.\n",
        "# TYPE d_seconds histogram\n",
        "d_seconds_sum 0.5\n",
        "d_seconds_bucket{le=\"+Inf\"} 3\n",
        "# HELP build_info Build.\n",
        "# TYPE build_info gauge\n",
        "build_info{version=\"1\"} 1\n",
        "# HELP u Unknown.\n",
        "# TYPE u untyped\n",
        "u 1\n",
    );
    assert_eq!(crate::exposition::to_prometheus_text(om), expected);
}

// ------------------------------------------------------------ span metrics

/// Answers every query with fixed series and remembers what it was asked.
#[derive(Default)]
struct FakeMetrics {
    series: Vec<MetricSeries>,
    fail: Option<QueryError>,
    asked: Mutex<Vec<(String, MetricsQuery, Option<f64>)>>,
}

impl FakeMetrics {
    fn answer(
        &self,
        what: &str,
        query: &MetricsQuery,
        quantile: Option<f64>,
    ) -> Result<Vec<MetricSeries>, QueryError> {
        self.asked.lock().unwrap().push((what.to_owned(), query.clone(), quantile));
        match &self.fail {
            Some(e) => Err(e.clone()),
            None => Ok(self.series.clone()),
        }
    }

    fn asked(&self) -> Vec<(String, MetricsQuery, Option<f64>)> {
        self.asked.lock().unwrap().clone()
    }
}

#[async_trait]
impl SpanMetricsReader for FakeMetrics {
    async fn call_rates(&self, query: &MetricsQuery) -> Result<Vec<MetricSeries>, QueryError> {
        self.answer("calls", query, None)
    }

    async fn error_rates(&self, query: &MetricsQuery) -> Result<Vec<MetricSeries>, QueryError> {
        self.answer("errors", query, None)
    }

    async fn latencies(&self, query: &MetricsQuery, quantile: f64) -> Result<Vec<MetricSeries>, QueryError> {
        self.answer("latencies", query, Some(quantile))
    }

    fn min_step(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }
}

/// 2023-11-14T22:13:20Z in ms.
const T0_MS: i64 = 1_700_000_000_000;

fn spm_harness(fake: FakeMetrics) -> (Harness, Arc<FakeMetrics>) {
    let fake = Arc::new(fake);
    (
        harness_full(
            Fake::default(),
            Vec::new(),
            Some(Arc::clone(&fake) as Arc<dyn SpanMetricsReader>),
            None,
        ),
        fake,
    )
}

fn series(labels: &[(&str, &str)], points: &[(i64, f64)]) -> MetricSeries {
    MetricSeries {
        labels: labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        points: points.iter().map(|&(t, value)| MetricPoint { timestamp_unix_millis: t, value }).collect(),
    }
}

fn query(end: i64) -> MetricsQuery {
    MetricsQuery {
        tenant: sightline_model::Tenant::default(),
        services: vec!["frontend".into()],
        span_kinds: vec![SpanKind::Server],
        group_by_operation: false,
        end_unix_millis: end,
        lookback_millis: 3_600_000,
        step_millis: 5_000,
        rate_per_millis: 600_000,
    }
}

#[tokio::test]
async fn call_rates_answer_jaegers_metric_family() {
    let (h, fake) = spm_harness(FakeMetrics {
        series: vec![series(&[("service_name", "frontend")], &[(T0_MS, 0.5), (T0_MS + 60_123, 2.0)])],
        ..FakeMetrics::default()
    });
    let r = h
        .get(&format!(
            "/api/metrics/calls?service=frontend&endTs={}&lookback=120000&step=60000&ratePer=600000",
            T0_MS + 60_123
        ))
        .await;
    assert_eq!((r.status, r.content_type.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(
        r.text(),
        concat!(
            r#"{"name":"service_call_rate","type":"GAUGE","help":"calls/sec, grouped by service","metrics":["#,
            r#"{"labels":[{"name":"service_name","value":"frontend"}],"metricPoints":["#,
            r#"{"gaugeValue":{"doubleValue":0.5},"timestamp":"2023-11-14T22:13:20Z"},"#,
            r#"{"gaugeValue":{"doubleValue":2},"timestamp":"2023-11-14T22:14:20.123Z"}]}]}"#
        )
    );
    let mut want = query(T0_MS + 60_123);
    want.lookback_millis = 120_000;
    want.step_millis = 60_000;
    assert_eq!(fake.asked(), vec![("calls".to_owned(), want, None)]);
}

#[tokio::test]
async fn error_rates_by_operation_rename_the_family_and_take_every_kind_asked() {
    let (h, fake) = spm_harness(FakeMetrics {
        series: vec![series(&[("service_name", "frontend"), ("operation", "GET /")], &[(T0_MS, 0.25)])],
        ..FakeMetrics::default()
    });
    let r = h
        .get(&format!(
            "/api/metrics/errors?service=frontend&service=backend&groupByOperation=true&spanKind=client&spanKind=server&endTs={T0_MS}"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({
            "name": "service_operation_error_rate",
            "type": "GAUGE",
            "help": "error rate, computed as a fraction of errors/sec over calls/sec, grouped by service & operation",
            "metrics": [{
                "labels": [{"name": "service_name", "value": "frontend"}, {"name": "operation", "value": "GET /"}],
                "metricPoints": [{"gaugeValue": {"doubleValue": 0.25}, "timestamp": "2023-11-14T22:13:20Z"}]
            }]
        })
    );
    let mut want = query(T0_MS);
    want.services.push("backend".into());
    want.group_by_operation = true;
    want.span_kinds = vec![SpanKind::Client, SpanKind::Server];
    assert_eq!(fake.asked(), vec![("errors".to_owned(), want, None)]);
}

#[tokio::test]
async fn latencies_name_the_quantile_and_an_empty_answer_keeps_its_lists() {
    let (h, fake) = spm_harness(FakeMetrics::default());
    let r = h.get(&format!("/api/metrics/latencies?service=frontend&quantile=0.95&endTs={T0_MS}")).await;
    assert_eq!(
        r.text(),
        r#"{"name":"service_latencies","type":"GAUGE","help":"0.95th quantile latency, grouped by service","metrics":[]}"#
    );
    assert_eq!(fake.asked(), vec![("latencies".to_owned(), query(T0_MS), Some(0.95))]);
    let r = h
        .get(&format!(
            "/api/metrics/latencies?service=frontend&quantile=0.5&groupByOperation=1&endTs={T0_MS}"
        ))
        .await;
    assert_eq!(r.json()["name"], "service_operation_latencies");
    assert_eq!(r.json()["help"], "0.50th quantile latency, grouped by service & operation");
}

#[tokio::test]
async fn metrics_defaults_follow_jaeger() {
    let (h, fake) = spm_harness(FakeMetrics::default());
    let before =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let r = h.get("/api/metrics/calls?service=&endTs=&lookback=&groupByOperation=").await;
    let after =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    assert_eq!(r.status, StatusCode::OK);
    let (_, q, _) = fake.asked().pop().unwrap();
    assert!((before..=after).contains(&q.end_unix_millis), "endTs defaults to now: {q:?}");
    let mut want = query(q.end_unix_millis);
    // `service=` is a service named "" in Jaeger, not a missing one.
    want.services = vec![String::new()];
    assert_eq!(q, want);
}

#[tokio::test]
async fn minstep_answers_milliseconds_in_the_envelope() {
    let (h, _) = spm_harness(FakeMetrics::default());
    let r = h.get("/api/metrics/minstep").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), r#"{"data":60000,"total":0,"limit":0,"offset":0,"errors":null}"#);
}

#[tokio::test]
async fn metrics_parameter_errors_are_400_in_jaegers_words() {
    let (h, fake) = spm_harness(FakeMetrics::default());
    let cases = [
        ("/api/metrics/calls", "unable to parse param 'service': please provide at least one service name"),
        (
            "/api/metrics/latencies?service=a",
            "unable to parse param 'quantile': strconv.ParseFloat: parsing \"\": invalid syntax",
        ),
        // The quantile is checked before everything else.
        (
            "/api/metrics/latencies?quantile=p95",
            "unable to parse param 'quantile': strconv.ParseFloat: parsing \"p95\": invalid syntax",
        ),
        (
            "/api/metrics/latencies?service=a&quantile=1e999",
            "unable to parse param 'quantile': strconv.ParseFloat: parsing \"1e999\": value out of range",
        ),
        (
            "/api/metrics/errors?service=a&groupByOperation=maybe",
            "unable to parse param 'groupByOperation': strconv.ParseBool: parsing \"maybe\": invalid syntax",
        ),
        (
            "/api/metrics/calls?service=a&spanKind=server&spanKind=Serv",
            "unable to parse param 'spanKind': unsupported span kind: 'Serv'",
        ),
        (
            "/api/metrics/calls?service=a&spanKind=",
            "unable to parse param 'spanKind': unsupported span kind: ''",
        ),
        (
            "/api/metrics/calls?service=a&endTs=now",
            "unable to parse param 'endTs': strconv.ParseInt: parsing \"now\": invalid syntax",
        ),
        (
            "/api/metrics/calls?service=a&lookback=1.5",
            "unable to parse param 'lookback': strconv.ParseInt: parsing \"1.5\": invalid syntax",
        ),
        (
            "/api/metrics/calls?service=a&step=99999999999999999999",
            "unable to parse param 'step': strconv.ParseInt: parsing \"99999999999999999999\": value out of range",
        ),
        (
            "/api/metrics/calls?service=a&ratePer=1m",
            "unable to parse param 'ratePer': strconv.ParseInt: parsing \"1m\": invalid syntax",
        ),
        ("/api/metrics/calls?service=a&tag=x", "malformed 'tag' parameter, expecting key:value, received: x"),
        (
            "/api/metrics/calls?service=a&tag=http.method:GET",
            "span metrics cannot be filtered by tags; remove 'tag'/'tags' or add the attribute as a spanmetrics dimension",
        ),
    ];
    for (uri, msg) in cases {
        let r = h.get(uri).await;
        assert_eq!((r.status, r.json()), (StatusCode::BAD_REQUEST, error_envelope(400, msg)), "{uri}");
    }
    assert!(fake.asked().is_empty(), "no bad request reaches the reader");
}

#[tokio::test]
async fn reader_refusals_map_to_statuses() {
    let (h, _) = spm_harness(FakeMetrics {
        fail: Some(QueryError::Invalid(
            "zero or negative query resolution step widths are not accepted".into(),
        )),
        ..FakeMetrics::default()
    });
    let r = h.get("/api/metrics/calls?service=a&step=0").await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::BAD_REQUEST,
            error_envelope(400, "zero or negative query resolution step widths are not accepted")
        )
    );
    let (h, _) = spm_harness(FakeMetrics {
        fail: Some(QueryError::Unavailable("busy".into())),
        ..FakeMetrics::default()
    });
    let r = h.get("/api/metrics/errors?service=a").await;
    assert_eq!(
        (r.status, r.json()),
        (StatusCode::SERVICE_UNAVAILABLE, error_envelope(503, "unavailable: busy"))
    );
}

#[tokio::test]
async fn without_span_metrics_the_routes_answer_501_as_jaeger_does() {
    let h = harness(Fake::default());
    let disabled = error_envelope(501, "metrics querying is currently disabled");
    for uri in [
        "/api/metrics/calls?service=a",
        "/api/metrics/errors?service=a",
        "/api/metrics/latencies?service=a&quantile=0.95",
        "/api/metrics/minstep",
    ] {
        let r = h.get(uri).await;
        assert_eq!((r.status, r.json()), (StatusCode::NOT_IMPLEMENTED, disabled.clone()), "{uri}");
    }
    // Parameters are still checked first.
    let r = h.get("/api/metrics/latencies?service=a").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[test]
fn timestamps_are_written_as_protobuf_json() {
    use crate::spm::rfc3339_millis;
    assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339_millis(T0_MS + 123), "2023-11-14T22:13:20.123Z");
    assert_eq!(rfc3339_millis(1_709_164_800_000), "2024-02-29T00:00:00Z");
    assert_eq!(rfc3339_millis(951_868_799_999), "2000-02-29T23:59:59.999Z");
    assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
    assert_eq!(rfc3339_millis(253_402_300_799_000), "9999-12-31T23:59:59Z");
}

mod internal;
mod jaeger_v1;
mod logs;
mod tempo;
mod v3;

// ----------------------------------------------------------------- tenants

/// Every data route reads the reader of the tenant in the request's
/// extensions (the auth layer puts it there), and the span-metrics and
/// service-graph readers are asked for that tenant.
#[tokio::test]
async fn each_request_reads_only_its_tenants_data() {
    use sightline_model::{MetricSeries, MetricsQuery, Tenant, TenantReaders};

    struct ByTenant(Vec<(Tenant, Arc<dyn SpanReader>)>);
    #[async_trait]
    impl TenantReaders for ByTenant {
        async fn reader(&self, tenant: &Tenant) -> Result<Arc<dyn SpanReader>, QueryError> {
            Ok(self.0.iter().find(|(t, _)| t == tenant).map_or_else(
                || Arc::new(sightline_model::EmptyReader) as Arc<dyn SpanReader>,
                |(_, r)| Arc::clone(r),
            ))
        }
    }
    /// Answers with the tenant it was asked for.
    struct Echo;
    #[async_trait]
    impl sightline_model::ServiceGraphReader for Echo {
        async fn dependencies(
            &self,
            tenant: &Tenant,
            _: u64,
            _: u64,
        ) -> Result<Vec<DependencyLink>, QueryError> {
            Ok(vec![DependencyLink { parent: tenant.to_string(), child: "x".into(), call_count: 1 }])
        }
    }
    #[async_trait]
    impl SpanMetricsReader for Echo {
        async fn call_rates(&self, q: &MetricsQuery) -> Result<Vec<MetricSeries>, QueryError> {
            Ok(vec![MetricSeries {
                labels: vec![("tenant".into(), q.tenant.to_string())],
                points: Vec::new(),
            }])
        }
        async fn error_rates(&self, q: &MetricsQuery) -> Result<Vec<MetricSeries>, QueryError> {
            self.call_rates(q).await
        }
        async fn latencies(&self, q: &MetricsQuery, _: f64) -> Result<Vec<MetricSeries>, QueryError> {
            self.call_rates(q).await
        }
        fn min_step(&self) -> std::time::Duration {
            std::time::Duration::from_secs(60)
        }
    }
    let acme = Tenant::new("acme").unwrap();
    let fake = |service: &str| {
        Arc::new(Fake { services: vec![service.to_owned()], ..Fake::default() }) as Arc<dyn SpanReader>
    };
    let mut registry = Registry::default();
    let app = router(ApiState {
        readers: Arc::new(ByTenant(vec![
            (Tenant::default(), fake("default-svc")),
            (acme.clone(), fake("acme-svc")),
        ])),
        health: Arc::new(Vec::new),
        ready: Arc::new(AtomicBool::new(true)),
        metrics: Arc::new(Metrics::new(&mut registry)),
        registry: Arc::new(registry),
        span_metrics: Some(Arc::new(Echo)),
        service_graph: Some(Arc::new(Echo)),
        logs: None,
    });
    let get = |uri: &str, tenant: Option<&Tenant>| {
        let mut request = Request::get(uri).body(Body::empty()).unwrap();
        if let Some(t) = tenant {
            request.extensions_mut().insert(t.clone());
        }
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<Json>(&body).unwrap()
        }
    };
    assert_eq!(get("/api/services", None).await["data"], json!(["default-svc"]));
    assert_eq!(get("/api/services", Some(&acme)).await["data"], json!(["acme-svc"]));
    assert_eq!(get("/api/v3/services", Some(&acme)).await["services"], json!(["acme-svc"]));
    let other = Tenant::new("nobody").unwrap();
    assert_eq!(get("/api/services", Some(&other)).await["data"], json!([]));
    let deps = get("/api/dependencies?endTs=1700000000000", Some(&acme)).await;
    assert_eq!(deps["data"][0]["parent"], "acme");
    let calls = get("/api/metrics/calls?service=s&endTs=1700000000000", Some(&acme)).await;
    assert_eq!(calls["metrics"][0]["labels"][0]["value"], "acme", "{calls}");
}
