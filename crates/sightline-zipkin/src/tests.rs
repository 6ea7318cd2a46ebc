//! Receiver tests: the HTTP surface through `Router::oneshot` (no sockets)
//! with a recording consumer and exact assertions on the model spans; the
//! mapping rules table by table; and the stock Python Zipkin JSON exporter
//! against the router served on a real loopback socket.

use std::io::Write as _;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use http::{HeaderMap, Method, Request, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::registry::Registry;
use prost::Message as _;
use serde_json::json;
use sightline_model::{
    ConsumeError, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode as SpanStatus, TraceId, Value, otlp,
};
use tower::ServiceExt as _;

use crate::translate::{START_TIME_ABSENT, derived_span_id};
use sightline_receive::front::{Front, Limits, Metrics};
use sightline_receive::testing::{self, Gate, RecordingConsumer, gzip};

use crate::{Receiver, SPANS_PATH, proto};

// ---------------------------------------------------------------- fixtures

struct Setup {
    receiver: Receiver,
    consumer: Arc<RecordingConsumer>,
    registry: Registry,
}

fn setup_with(limits: Limits, consumer: RecordingConsumer) -> Setup {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let consumer = Arc::new(consumer);
    let receiver = Receiver::new(consumer.clone(), Front::new(limits, metrics));
    Setup { receiver, consumer, registry }
}

fn setup() -> Setup {
    setup_with(Limits::default(), RecordingConsumer::default())
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Setup {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.receiver.router().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Reply { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
    }

    async fn post(&self, content_type: Option<&str>, encoding: Option<&str>, body: Vec<u8>) -> Reply {
        let mut request = Request::post(SPANS_PATH);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        if let Some(enc) = encoding {
            request = request.header("content-encoding", enc);
        }
        self.send(request.body(Body::from(body)).unwrap()).await
    }

    async fn post_json(&self, body: &serde_json::Value) -> Reply {
        self.post(Some("application/json"), None, serde_json::to_vec(body).unwrap()).await
    }

    /// Posts one JSON list that must be accepted; returns the spans consumed.
    async fn accept_json(&self, body: &serde_json::Value) -> Vec<Span> {
        let before = self.consumer.spans().len();
        let reply = self.post_json(body).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        self.consumer.spans().split_off(before)
    }

    fn metrics_text(&self) -> String {
        testing::metrics_text(&self.registry)
    }

    fn assert_metric(&self, line: &str) {
        testing::assert_metric(&self.registry, line);
    }
}

fn tid(hex: &str) -> TraceId {
    hex.parse().unwrap()
}

fn sid(hex: &str) -> SpanId {
    hex.parse().unwrap()
}

fn s(key: &str, value: &str) -> KeyValue {
    KeyValue::new(key, value)
}

fn resource(attrs: &[(&str, &str)]) -> Arc<Resource> {
    Arc::new(Resource::new(attrs.iter().map(|(k, v)| s(k, v)).collect(), 0, String::new()))
}

fn scope(name: &str, version: &str) -> Arc<Scope> {
    Arc::new(Scope { name: name.into(), version: version.into(), ..Scope::default() })
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = ZlibEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A minimal valid JSON span.
fn minimal(trace: &str, id: &str) -> serde_json::Value {
    json!({"traceId": trace, "id": id, "name": "op", "timestamp": 1_000_000, "duration": 5})
}

/// Maps one JSON span (through the router) and returns it.
async fn map_one(span: serde_json::Value) -> Span {
    let setup = setup();
    let mut spans = setup.accept_json(&json!([span])).await;
    assert_eq!(spans.len(), 1);
    spans.remove(0)
}

const TRACE: &str = "5af7183fb1d4cf5f463ac35c9f6413ad";

// ------------------------------------------------------ every field, both formats

/// A server span with every Zipkin v2 field set, as JSON.
fn full_json() -> serde_json::Value {
    json!([{
        "traceId": TRACE,
        "parentId": "6b221d5bc9e6496c",
        "id": "352bff9a74ca9ad2",
        "kind": "SERVER",
        "name": "get /api",
        "timestamp": 1_556_604_172_355_737u64,
        "duration": 1431,
        "debug": true,
        "shared": false,
        "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.1", "port": 3306},
        "remoteEndpoint": {"serviceName": "frontend", "ipv6": "2001:db8::c001", "port": 63837},
        "annotations": [
            {"timestamp": 1_556_604_172_355_800u64, "value": "wr"},
            {"timestamp": 1_556_604_172_355_900u64, "value": "{\"cache.miss\": {\"key\": \"user:1\", \"size\": 12}}"}
        ],
        "tags": {
            "http.path": "/api",
            "http.method": "GET",
            "otel.scope.name": "brave",
            "otel.scope.version": "5.18",
            "host.name": "node-1",
            "w3c.tracestate": "ot=th:8",
            "otel.status_code": "ERROR",
            "otel.status_description": "boom",
            "error": "true",
            "otlp.link.0": "0af7651916cd43dd8448eb211c80319c|b7ad6b7169203331|k=v|{\"attr\":\"x\"}|2"
        }
    }])
}

/// The same span as protobuf.
fn full_protobuf() -> Vec<u8> {
    let span = proto::Span {
        trace_id: hex_bytes(TRACE),
        parent_id: hex_bytes("6b221d5bc9e6496c"),
        id: hex_bytes("352bff9a74ca9ad2"),
        kind: proto::Kind::Server as i32,
        name: "get /api".into(),
        timestamp: 1_556_604_172_355_737,
        duration: 1431,
        local_endpoint: Some(proto::Endpoint {
            service_name: "backend".into(),
            ipv4: vec![192, 168, 99, 1],
            ipv6: Vec::new(),
            port: 3306,
        }),
        remote_endpoint: Some(proto::Endpoint {
            service_name: "frontend".into(),
            ipv4: Vec::new(),
            ipv6: "2001:db8::c001".parse::<Ipv6Addr>().unwrap().octets().to_vec(),
            port: 63837,
        }),
        annotations: vec![
            proto::Annotation { timestamp: 1_556_604_172_355_800, value: "wr".into() },
            proto::Annotation {
                timestamp: 1_556_604_172_355_900,
                value: "{\"cache.miss\": {\"key\": \"user:1\", \"size\": 12}}".into(),
            },
        ],
        tags: [
            ("http.path", "/api"),
            ("http.method", "GET"),
            ("otel.scope.name", "brave"),
            ("otel.scope.version", "5.18"),
            ("host.name", "node-1"),
            ("w3c.tracestate", "ot=th:8"),
            ("otel.status_code", "ERROR"),
            ("otel.status_description", "boom"),
            ("error", "true"),
            ("otlp.link.0", "0af7651916cd43dd8448eb211c80319c|b7ad6b7169203331|k=v|{\"attr\":\"x\"}|2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        debug: true,
        shared: false,
    };
    proto::ListOfSpans { spans: vec![span] }.encode_to_vec()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

/// What both encodings of the full span must map to, field by field.
fn full_expected() -> Span {
    let start = 1_556_604_172_355_737_000;
    Span {
        trace_id: tid(TRACE),
        span_id: sid("352bff9a74ca9ad2"),
        parent_span_id: Some(sid("6b221d5bc9e6496c")),
        trace_state: "ot=th:8".into(),
        flags: 0,
        name: "get /api".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_431_000,
        attributes: vec![
            s("http.method", "GET"),
            s("http.path", "/api"),
            s("network.local.address", "192.168.99.1"),
            KeyValue::new("network.local.port", 3306i64),
            s("peer.service", "frontend"),
            s("network.peer.address", "2001:db8::c001"),
            KeyValue::new("network.peer.port", 63837i64),
        ],
        dropped_attributes_count: 0,
        events: vec![
            Event {
                time_unix_nano: 1_556_604_172_355_800_000,
                name: "wr".into(),
                attributes: vec![],
                dropped_attributes_count: 0,
            },
            Event {
                time_unix_nano: 1_556_604_172_355_900_000,
                name: "cache.miss".into(),
                attributes: vec![s("key", "user:1"), KeyValue::new("size", 12i64)],
                dropped_attributes_count: 0,
            },
        ],
        dropped_events_count: 0,
        links: vec![Link {
            trace_id: tid("0af7651916cd43dd8448eb211c80319c"),
            span_id: sid("b7ad6b7169203331"),
            trace_state: "k=v".into(),
            attributes: vec![s("attr", "x")],
            dropped_attributes_count: 2,
            flags: 0,
        }],
        dropped_links_count: 0,
        status: Status { code: SpanStatus::Error, message: "boom".into() },
        resource: resource(&[("service.name", "backend"), ("host.name", "node-1")]),
        scope: scope("brave", "5.18"),
    }
}

#[tokio::test]
async fn json_with_every_field_maps_exactly() {
    let setup = setup();
    let reply =
        setup.post(Some("application/json; charset=utf-8"), None, full_json().to_string().into()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body, "", "Zipkin answers 202 with an empty body");
    assert_eq!(setup.consumer.spans(), vec![full_expected()]);
    setup.assert_metric(
        r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http_json",outcome="ok"} 1"#,
    );
    setup.assert_metric(
        r#"sightline_receive_spans_total{receiver="zipkin",protocol="http_json",outcome="accepted"} 1"#,
    );
}

#[tokio::test]
async fn protobuf_with_every_field_maps_exactly() {
    let setup = setup();
    let reply = setup.post(Some("application/x-protobuf"), None, full_protobuf()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(setup.consumer.spans(), vec![full_expected()]);
    setup.assert_metric(
        r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http_protobuf",outcome="ok"} 1"#,
    );
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_inflated() {
    let setup = setup();
    let json = full_json().to_string().into_bytes();
    for (ct, enc, body) in [
        ("application/json", "gzip", gzip(&json)),
        ("application/json", "x-gzip", gzip(&json)),
        ("application/x-protobuf", "gzip", gzip(&full_protobuf())),
        ("application/json", "deflate", zlib(&json)),
        ("application/x-protobuf", "DEFLATE", zlib(&full_protobuf())),
    ] {
        let reply = setup.post(Some(ct), Some(enc), body).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{ct} {enc}: {}", reply.body);
    }
    assert_eq!(setup.consumer.spans(), vec![full_expected(); 5]);
}

/// A body without a Content-Type is refused: it is what a web page's
/// cross-origin `no-cors` POST sends (issue 16 D9), and Zipkin's reporters
/// all name their type. It was taken as JSON before.
#[tokio::test]
async fn no_content_type_is_415() {
    let setup = setup();
    let reply = setup.post(None, None, full_json().to_string().into()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", reply.body);
    let reply = setup.post(Some("text/plain;charset=UTF-8"), None, full_json().to_string().into()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", reply.body);
    assert!(setup.consumer.spans().is_empty());
}

/// The batch's OTLP bytes (what the WAL stores) decode to exactly its spans.
#[tokio::test]
async fn batch_otlp_bytes_decode_to_the_same_spans() {
    let setup = setup();
    let mut list = full_json().as_array().unwrap().clone();
    list.push(json!({"traceId": TRACE, "id": "0000000000000002", "localEndpoint": {"serviceName": "other"}}));
    list.push(
        json!({"traceId": TRACE, "id": "0000000000000003", "localEndpoint": {"serviceName": "backend"},
        "tags": {"host.name": "node-1", "otel.library.name": "brave", "otel.library.version": "5.18"}}),
    );
    setup.accept_json(&json!(list)).await;
    let batches = setup.consumer.batches();
    assert_eq!(batches.len(), 1);
    let request = ExportTraceServiceRequest::decode(batches[0].otlp_bytes().clone()).unwrap();
    assert_eq!(request.resource_spans.len(), 2, "one ResourceSpans per service");
    let decoded = otlp::decode_request(request);
    assert_eq!(decoded.rejected, 0);
    assert_eq!(decoded.spans, batches[0].spans());
}

// ------------------------------------------------------------------ ids

#[tokio::test]
async fn ids_are_left_padded_and_case_insensitive() {
    let span = map_one(json!({"traceId": "463AC35C9F6413AD", "id": "1", "parentId": "ABC"})).await;
    assert_eq!(span.trace_id, tid("0000000000000000463ac35c9f6413ad"));
    assert_eq!(span.span_id, sid("0000000000000001"));
    assert_eq!(span.parent_span_id, Some(sid("0000000000000abc")));

    let span = map_one(json!({"traceId": "abc", "id": "00000000000000ff"})).await;
    assert_eq!(span.trace_id, tid("00000000000000000000000000000abc"));
}

#[tokio::test]
async fn protobuf_64_bit_trace_id_is_left_padded() {
    let setup = setup();
    let span = proto::Span {
        trace_id: hex_bytes("463ac35c9f6413ad"),
        id: hex_bytes("0000000000000007"),
        ..proto::Span::default()
    };
    let reply = setup
        .post(Some("application/x-protobuf"), None, proto::ListOfSpans { spans: vec![span] }.encode_to_vec())
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let spans = setup.consumer.spans();
    assert_eq!(spans[0].trace_id, tid("0000000000000000463ac35c9f6413ad"));
    assert_eq!(spans[0].parent_span_id, None);
}

#[tokio::test]
async fn zero_or_self_parent_means_root() {
    let span =
        map_one(json!({"traceId": TRACE, "id": "00000000000000aa", "parentId": "0000000000000000"})).await;
    assert_eq!(span.parent_span_id, None);
    let span =
        map_one(json!({"traceId": TRACE, "id": "00000000000000aa", "parentId": "00000000000000aa"})).await;
    assert_eq!(span.parent_span_id, None);
    let span = map_one(json!({"traceId": TRACE, "id": "00000000000000aa", "parentId": null})).await;
    assert_eq!(span.parent_span_id, None);
}

#[tokio::test]
async fn malformed_ids_fail_the_whole_request_with_the_span_named() {
    let ok = minimal(TRACE, "0000000000000001");
    let cases = [
        (json!({"traceId": "xyz", "id": "01"}), "spans[1].traceId: \"xyz\" is not 1 to 32 hex digits"),
        (json!({"traceId": format!("{TRACE}0"), "id": "01"}), "spans[1].traceId: "),
        (json!({"traceId": "", "id": "01"}), "spans[1].traceId: empty"),
        (json!({"id": "01"}), "spans[1].traceId: missing"),
        (json!({"traceId": TRACE}), "spans[1].id: missing"),
        (json!({"traceId": TRACE, "id": "0x01"}), "spans[1].id: \"0x01\" is not 1 to 16 hex digits"),
        (json!({"traceId": TRACE, "id": "01", "parentId": "nope"}), "spans[1].parentId: "),
        (json!({"traceId": TRACE, "id": 1}), "invalid Zipkin JSON at spans[1].id: invalid type: integer"),
    ];
    for (bad, want) in cases {
        let setup = setup();
        let reply = setup.post_json(&json!([ok, bad])).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(reply.body.contains(want), "{bad}: {:?} lacks {want:?}", reply.body);
        assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
        assert!(setup.consumer.batches().is_empty(), "nothing of a bad request is consumed");
        setup.assert_metric(r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http_json",outcome="bad_request"} 1"#);
    }

    for (span, want) in [
        (
            proto::Span { trace_id: vec![1; 12], id: vec![1; 8], ..Default::default() },
            "spans[0].trace_id: must be 8 or 16 bytes, got 12",
        ),
        (
            proto::Span { trace_id: vec![1; 16], id: vec![1; 7], ..Default::default() },
            "spans[0].id: must be 8 bytes, got 7",
        ),
        (
            proto::Span {
                trace_id: vec![1; 16],
                id: vec![1; 8],
                parent_id: vec![1; 4],
                ..Default::default()
            },
            "spans[0].parent_id: must be empty or 8 bytes, got 4",
        ),
    ] {
        let setup = setup();
        let body = proto::ListOfSpans { spans: vec![span] }.encode_to_vec();
        let reply = setup.post(Some("application/x-protobuf"), None, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.body, want);
    }
}

#[tokio::test]
async fn zero_ids_skip_that_span_only() {
    let setup = setup();
    let reply = setup
        .post_json(&json!([
            minimal("00000000000000000000000000000000", "0000000000000001"),
            minimal(TRACE, "0000000000000002"),
            minimal(TRACE, "0000000000000000"),
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let spans = setup.consumer.spans();
    assert_eq!(spans.iter().map(|s| s.span_id).collect::<Vec<_>>(), vec![sid("0000000000000002")]);
    setup.assert_metric(
        r#"sightline_receive_spans_total{receiver="zipkin",protocol="http_json",outcome="rejected"} 2"#,
    );
    setup.assert_metric(
        r#"sightline_receive_spans_total{receiver="zipkin",protocol="http_json",outcome="accepted"} 1"#,
    );
    setup.assert_metric(
        r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http_json",outcome="partial"} 1"#,
    );

    // Nothing valid left: 400 with the reasons, and the consumer is not called.
    let reply = setup.post_json(&json!([minimal("0", "0000000000000001")])).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body, "1 span(s) skipped for invalid ids: spans[0]: trace id is all zeros");
    assert_eq!(setup.consumer.batches().len(), 1);
}

// ------------------------------------------------------------ shared spans

#[tokio::test]
async fn shared_server_span_gets_its_own_id_under_the_client_span() {
    let setup = setup();
    let (root, shared) = ("00000000000000a0", "00000000000000aa");
    let client = json!({"traceId": TRACE, "id": shared, "parentId": root, "kind": "CLIENT", "name": "call",
        "localEndpoint": {"serviceName": "frontend"}});
    let server = json!({"traceId": TRACE, "id": shared, "parentId": root, "kind": "SERVER", "name": "serve",
        "shared": true, "localEndpoint": {"serviceName": "backend"}});
    let server_child = json!({"traceId": TRACE, "id": "00000000000000bb", "parentId": shared, "name": "db",
        "localEndpoint": {"serviceName": "backend"}});
    let client_child = json!({"traceId": TRACE, "id": "00000000000000cc", "parentId": shared, "name": "retry",
        "localEndpoint": {"serviceName": "frontend"}});
    let spans = setup.accept_json(&json!([client, server, server_child, client_child])).await;
    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap().clone();

    let new_id = derived_span_id(&tid(TRACE), sid(shared));
    assert_ne!(new_id, sid(shared));
    assert_eq!(by_name("call").span_id, sid(shared), "the client span keeps its id");
    assert_eq!(by_name("call").parent_span_id, Some(sid(root)));
    assert_eq!(by_name("serve").span_id, new_id);
    assert_eq!(by_name("serve").parent_span_id, Some(sid(shared)), "the client span is the server's parent");
    assert_eq!(by_name("serve").kind, SpanKind::Server);
    assert_eq!(by_name("db").parent_span_id, Some(new_id), "same-service children follow the server span");
    assert_eq!(by_name("retry").parent_span_id, Some(sid(shared)), "other services' children stay");

    // A retry maps to the same ids (so the store deduplicates it).
    let again = setup.accept_json(&json!([server])).await;
    assert_eq!(again[0].span_id, new_id);
    // A child reported in a later request stays on the client span (the
    // documented limit of doing this per request).
    let late = setup.accept_json(&json!([server_child])).await;
    assert_eq!(late[0].parent_span_id, Some(sid(shared)));
}

#[test]
fn derived_ids_are_deterministic_and_distinct() {
    let a = derived_span_id(&tid(TRACE), sid("00000000000000aa"));
    assert_eq!(a, derived_span_id(&tid(TRACE), sid("00000000000000aa")));
    assert_ne!(a, derived_span_id(&tid(TRACE), sid("00000000000000ab")));
    assert_ne!(a, derived_span_id(&tid("0af7651916cd43dd8448eb211c80319c"), sid("00000000000000aa")));
}

// ------------------------------------------------------------- annotations

#[tokio::test]
async fn annotations_become_events() {
    let annotations = json!([
        {"timestamp": 2_000_001, "value": "ws"},
        {"timestamp": 2_000_002, "value": "{\"my-event\": {\"a\": [1, \"x\"], \"b\": true, \"f\": 1.5, \"k\": \"v\", \"n\": 1, \"z\": null}}"},
        {"timestamp": 2_000_003, "value": "{\"a\": 1}"},
        {"timestamp": 2_000_004, "value": "{\"a\": {}, \"b\": {}}"},
        {"timestamp": 2_000_005, "value": "retry|{\"attempt\":2}|1"},
        {"timestamp": 2_000_006, "value": "x|{\"k\":\"a|b\"}|0"},
        {"timestamp": 2_000_007, "value": "a|b|c"},
        {"value": "no time"},
        {"timestamp": 2_000_008, "value": "{not json"}
    ]);
    let span = map_one(json!({"traceId": TRACE, "id": "01", "annotations": annotations})).await;
    let ev = |t: u64, name: &str, attributes: Vec<KeyValue>, dropped: u32| Event {
        time_unix_nano: t,
        name: name.into(),
        attributes,
        dropped_attributes_count: dropped,
    };
    assert_eq!(
        span.events,
        vec![
            ev(2_000_001_000, "ws", vec![], 0),
            ev(
                2_000_002_000,
                "my-event",
                vec![
                    KeyValue::new("a", Value::Array(vec![Value::Int(1), Value::Str("x".into())])),
                    KeyValue::new("b", true),
                    KeyValue::new("f", 1.5),
                    s("k", "v"),
                    KeyValue::new("n", 1i64),
                    KeyValue::new("z", Value::Empty),
                ],
                0
            ),
            ev(2_000_003_000, "{\"a\": 1}", vec![], 0),
            ev(2_000_004_000, "{\"a\": {}, \"b\": {}}", vec![], 0),
            ev(2_000_005_000, "retry", vec![KeyValue::new("attempt", 2i64)], 1),
            ev(2_000_006_000, "x", vec![s("k", "a|b")], 0),
            ev(2_000_007_000, "a|b|c", vec![], 0),
            ev(0, "no time", vec![], 0),
            ev(2_000_008_000, "{not json", vec![], 0),
        ]
    );
}

// --------------------------------------------------- endpoints, tags, status

#[tokio::test]
async fn endpoints_become_attributes() {
    let cases = [
        // IPv4 preferred over IPv6; ports as integers.
        (
            json!({"serviceName": "a", "ipv4": "10.0.0.1", "ipv6": "::1", "port": 80}),
            json!({"serviceName": "db", "ipv4": "10.0.0.2", "port": 5432}),
            json!({}),
            vec![
                s("network.local.address", "10.0.0.1"),
                KeyValue::new("network.local.port", 80i64),
                s("peer.service", "db"),
                s("network.peer.address", "10.0.0.2"),
                KeyValue::new("network.peer.port", 5432i64),
            ],
        ),
        // IPv6 alone, in canonical form; no service name, no port.
        (
            json!({"ipv6": "2001:0db8:0000:0000:0000:0000:0000:0001"}),
            json!(null),
            json!({}),
            vec![s("network.local.address", "2001:db8::1")],
        ),
        // Invalid addresses and ports outside 1..=65535 are ignored.
        (
            json!({"serviceName": "a", "ipv4": "999.1.1.1", "port": 0}),
            json!({"ipv4": "not-an-ip", "ipv6": "1.2.3.4", "port": 70000}),
            json!({}),
            vec![],
        ),
        // An explicit tag wins over the endpoint.
        (
            json!({"serviceName": "a", "ipv4": "10.0.0.1"}),
            json!({"serviceName": "db"}),
            json!({"peer.service": "primary-db", "network.local.address": "10.9.9.9"}),
            vec![s("network.local.address", "10.9.9.9"), s("peer.service", "primary-db")],
        ),
    ];
    for (local, remote, tags, want) in cases {
        let span = map_one(json!({"traceId": TRACE, "id": "01", "timestamp": 1, "localEndpoint": local,
            "remoteEndpoint": remote, "tags": tags}))
        .await;
        assert_eq!(span.attributes, want, "local {local} remote {remote} tags {tags}");
    }
}

#[tokio::test]
async fn status_comes_from_otel_status_and_error_tags() {
    let cases: Vec<(serde_json::Value, SpanStatus, &str, Vec<KeyValue>)> = vec![
        (json!({}), SpanStatus::Unset, "", vec![]),
        (json!({"error": "true"}), SpanStatus::Error, "", vec![]),
        (json!({"error": ""}), SpanStatus::Error, "", vec![]),
        (json!({"error": "connection refused"}), SpanStatus::Error, "connection refused", vec![]),
        (json!({"error": "false"}), SpanStatus::Unset, "", vec![s("error", "false")]),
        (json!({"otel.status_code": "OK"}), SpanStatus::Ok, "", vec![]),
        (json!({"otel.status_code": "ok", "error": "x"}), SpanStatus::Ok, "", vec![s("error", "x")]),
        (
            json!({"otel.status_code": "ERROR", "error": "card declined"}),
            SpanStatus::Error,
            "card declined",
            vec![],
        ),
        (
            json!({"otel.status_code": "STATUS_CODE_ERROR", "otel.status_description": "boom"}),
            SpanStatus::Error,
            "boom",
            vec![],
        ),
        (
            json!({"otel.status_code": "Error", "otel.status_description": "d", "error": "e"}),
            SpanStatus::Error,
            "d",
            vec![],
        ),
        (json!({"otel.status_code": "STATUS_CODE_UNSET"}), SpanStatus::Unset, "", vec![]),
        (json!({"otel.status_code": "weird"}), SpanStatus::Unset, "", vec![s("otel.status_code", "weird")]),
        (
            json!({"otel.status_code": "OK", "otel.status_description": "d"}),
            SpanStatus::Ok,
            "",
            vec![s("otel.status_description", "d")],
        ),
    ];
    for (tags, code, message, attrs) in cases {
        let span = map_one(json!({"traceId": TRACE, "id": "01", "timestamp": 1, "tags": tags})).await;
        assert_eq!(span.status, Status { code, message: message.into() }, "tags {tags}");
        assert_eq!(span.attributes, attrs, "tags {tags}");
    }
}

#[tokio::test]
async fn kind_from_field_or_span_kind_tag() {
    let cases = [
        (json!("CLIENT"), json!({}), SpanKind::Client, vec![]),
        (json!("producer"), json!({}), SpanKind::Producer, vec![]),
        (json!("CONSUMER"), json!({}), SpanKind::Consumer, vec![]),
        (json!(null), json!({}), SpanKind::Unspecified, vec![]),
        (json!("INTERNAL"), json!({}), SpanKind::Unspecified, vec![]),
        (json!(null), json!({"span.kind": "internal"}), SpanKind::Internal, vec![]),
        (json!(null), json!({"span.kind": "server"}), SpanKind::Server, vec![]),
        (json!(null), json!({"span.kind": "bogus"}), SpanKind::Unspecified, vec![s("span.kind", "bogus")]),
        (json!("SERVER"), json!({"span.kind": "client"}), SpanKind::Server, vec![s("span.kind", "client")]),
    ];
    for (kind, tags, want, attrs) in cases {
        let span =
            map_one(json!({"traceId": TRACE, "id": "01", "timestamp": 1, "kind": kind, "tags": tags})).await;
        assert_eq!(span.kind, want, "kind {kind} tags {tags}");
        assert_eq!(span.attributes, attrs, "kind {kind} tags {tags}");
    }
}

#[tokio::test]
async fn tag_values_are_text_and_nulls_are_empty() {
    let span = map_one(json!({"traceId": TRACE, "id": "01", "timestamp": 1, "tags": {
        "s": "x", "i": 42, "f": 2.5, "b": false, "n": null, "otel.scope.name": "lib", "otel.scope.version": null
    }}))
    .await;
    assert_eq!(span.attributes, vec![s("b", "false"), s("f", "2.5"), s("i", "42"), s("n", ""), s("s", "x")]);
    assert_eq!(*span.scope, *scope("lib", ""));

    let setup = setup();
    let reply = setup.post_json(&json!([{"traceId": TRACE, "id": "01", "tags": {"x": {"nested": 1}}}])).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body.starts_with("invalid Zipkin JSON at spans[0].tags.x: invalid type: map"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn absent_timestamp_starts_at_the_epoch_and_is_marked() {
    let span = map_one(json!({"traceId": TRACE, "id": "01", "duration": 7})).await;
    assert_eq!((span.start_time_unix_nano, span.end_time_unix_nano), (0, 7_000));
    assert_eq!(span.attributes, vec![KeyValue::new(START_TIME_ABSENT, true)]);
}

// ------------------------------------------------------ resources and scopes

#[tokio::test]
async fn spans_are_grouped_by_service_and_scope_sharing_arcs() {
    let setup = setup();
    let span = |id: &str, service: Option<&str>, tags: serde_json::Value| {
        let mut v = json!({"traceId": TRACE, "id": id, "timestamp": 1, "tags": tags});
        if let Some(service) = service {
            v["localEndpoint"] = json!({"serviceName": service});
        }
        v
    };
    let python_like = json!({"service.name": "api", "telemetry.sdk.language": "python", "deployment.environment": "ci",
        "otel.library.name": "lib", "otel.library.version": "1", "otel.scope.name": "lib", "otel.scope.version": "1"});
    let spans = setup
        .accept_json(&json!([
            span("01", Some("api"), python_like.clone()),
            span("02", Some("worker"), json!({})),
            span("03", Some("api"), python_like.clone()),
            span("04", Some("api"), json!({"otel.scope.name": "other"})),
            span("05", None, json!({"service.name": "from-tag"})),
            span("06", None, json!({"host.name": "h"})),
        ]))
        .await;
    let ids: Vec<String> = spans.iter().map(|s| s.span_id.to_hex()[14..].to_owned()).collect();
    assert_eq!(
        ids,
        ["01", "03", "02", "04", "05", "06"],
        "grouped by resource, then scope, in first-seen order"
    );
    let (a1, a3, w2, a4, t5, u6) = (&spans[0], &spans[1], &spans[2], &spans[3], &spans[4], &spans[5]);
    assert!(Arc::ptr_eq(&a1.resource, &a3.resource) && Arc::ptr_eq(&a1.scope, &a3.scope));
    assert_eq!(
        *a1.resource,
        *resource(&[
            ("service.name", "api"),
            ("deployment.environment", "ci"),
            ("telemetry.sdk.language", "python")
        ])
    );
    assert_eq!(*a1.scope, *scope("lib", "1"));
    assert!(a1.attributes.is_empty(), "resource and scope tags are not span attributes: {:?}", a1.attributes);
    assert_eq!(*w2.resource, *resource(&[("service.name", "worker")]));
    assert_eq!(
        *a4.resource,
        *resource(&[("service.name", "api")]),
        "other resource attributes, other resource"
    );
    assert_eq!(*a4.scope, *scope("other", ""));
    assert_eq!(t5.service_name(), "from-tag");
    assert_eq!(u6.service_name(), "unknown_service");
    assert_eq!(*u6.resource, *resource(&[("host.name", "h")]));
}

// ------------------------------------------------------------ HTTP surface

#[tokio::test]
async fn empty_list_is_accepted_without_consuming() {
    let setup = setup();
    let reply = setup.post_json(&json!([])).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let reply = setup.post(Some("application/x-protobuf"), None, Vec::new()).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(setup.consumer.batches().is_empty());
}

#[tokio::test]
async fn undecodable_bodies_are_400_with_a_message() {
    let cases: [(&str, Option<&str>, Vec<u8>, &str); 6] = [
        (
            "application/json",
            None,
            b"not json".to_vec(),
            "invalid Zipkin JSON (expected a list of spans): expected ident",
        ),
        (
            "application/json",
            None,
            br#"{"traceId": "01"}"#.to_vec(),
            "invalid Zipkin JSON (expected a list of spans): invalid type: map",
        ),
        (
            "application/json",
            None,
            b"[] []".to_vec(),
            "invalid Zipkin JSON after the list of spans: trailing characters",
        ),
        (
            "application/json",
            None,
            Vec::new(),
            "invalid Zipkin JSON (expected a list of spans): EOF while parsing",
        ),
        (
            "application/x-protobuf",
            None,
            vec![0x0a, 0x05, 0x01],
            "invalid Zipkin protobuf (expected zipkin.proto3.ListOfSpans)",
        ),
        ("application/json", Some("gzip"), b"not gzip at all".to_vec(), "invalid compressed body"),
    ];
    for (ct, enc, body, want) in cases {
        let setup = setup();
        let reply = setup.post(Some(ct), enc, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{want}");
        assert!(reply.body.starts_with(want), "{:?} does not start with {want:?}", reply.body);
        assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    }
}

#[tokio::test]
async fn unsupported_content_type_or_encoding_is_415() {
    let setup = setup();
    let reply = setup.post(Some("text/plain"), None, b"[]".to_vec()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        reply.body,
        "415 unsupported media type, supported: [application/json, application/x-protobuf]"
    );
    let reply = setup.post(Some("application/x-thrift"), None, b"[]".to_vec()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = setup.post(Some("application/json"), Some("br"), b"[]".to_vec()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.body, "unsupported content encoding \"br\"; supported: gzip, deflate, identity");
    assert!(setup.consumer.batches().is_empty());
    setup.assert_metric(
        r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http",outcome="unsupported"} 2"#,
    );
    setup.assert_metric(
        r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http_json",outcome="unsupported"} 1"#,
    );
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_even_when_inflated() {
    let options = Limits { max_body_bytes: 1024, ..Limits::default() };
    let setup = setup_with(options, RecordingConsumer::default());
    let big = {
        let spans: Vec<_> = (1..=40).map(|i| minimal(TRACE, &format!("{i:016x}"))).collect();
        serde_json::to_vec(&spans).unwrap()
    };
    assert!(big.len() > 1024);
    // Declared length over the limit: refused before reading.
    let request = Request::post(SPANS_PATH)
        .header("content-type", "application/json")
        .header("content-length", big.len())
        .body(Body::from(big.clone()))
        .unwrap();
    assert_eq!(setup.send(request).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    // No declared length: refused while reading.
    assert_eq!(
        setup.post(Some("application/json"), None, big.clone()).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Small on the wire, too large inflated (a gzip bomb in miniature).
    let compressed = gzip(&big);
    assert!(compressed.len() < 1024, "{}", compressed.len());
    let reply = setup.post(Some("application/json"), Some("gzip"), compressed).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.body, "request body exceeds the limit of 1024 bytes (after decompression too)");
    let bomb = gzip(&vec![b' '; 50 << 20]);
    let reply = setup.post(Some("application/json"), Some("gzip"), bomb).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(setup.consumer.batches().is_empty());
    setup.assert_metric(
        r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http_json",outcome="too_large"} 4"#,
    );
    assert_eq!(setup.receiver.front.available(), Limits::default().max_inflight_bytes);
}

#[tokio::test]
async fn other_methods_and_v1_are_not_served() {
    let setup = setup();
    let get = Request::builder().method(Method::GET).uri(SPANS_PATH).body(Body::empty()).unwrap();
    assert_eq!(setup.send(get).await.status, StatusCode::METHOD_NOT_ALLOWED);
    let v1 = Request::post("/api/v1/spans")
        .header("content-type", "application/json")
        .body(Body::from("[]"))
        .unwrap();
    assert_eq!(setup.send(v1).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn consumer_refusals_are_429_or_503_with_retry_after() {
    let cases = [
        (
            ConsumeError::Overloaded { reason: "memory".into(), retry_after: Duration::from_millis(2500) },
            StatusCode::TOO_MANY_REQUESTS,
            "3",
            "overloaded: memory",
        ),
        (
            ConsumeError::Unavailable {
                reason: "shutting down".into(),
                retry_after: Duration::from_secs(10),
            },
            StatusCode::SERVICE_UNAVAILABLE,
            "10",
            "unavailable: shutting down",
        ),
        (
            ConsumeError::Overloaded { reason: "queue".into(), retry_after: Duration::ZERO },
            StatusCode::TOO_MANY_REQUESTS,
            "1",
            "overloaded: queue",
        ),
    ];
    for (err, status, retry_after, body) in cases {
        let setup = setup();
        setup.consumer.fail_with(err);
        let reply = setup.post_json(&full_json()).await;
        assert_eq!(reply.status, status);
        assert_eq!(reply.headers["retry-after"], retry_after);
        assert_eq!(reply.body, body);
        setup.assert_metric(
            r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http_json",outcome="refused"} 1"#,
        );
        setup.assert_metric(
            r#"sightline_receive_spans_total{receiver="zipkin",protocol="http_json",outcome="refused"} 1"#,
        );
        assert!(!setup.metrics_text().contains(r#"outcome="accepted""#));
    }
}

#[tokio::test]
async fn over_the_inflight_budget_is_429_and_the_budget_comes_back() {
    let (consumer, Gate { mut entered, release }) = RecordingConsumer::gated();
    let body = full_json().to_string().into_bytes();
    let budget = Limits::default().max_inflight_bytes;
    let setup = setup_with(Limits::default(), consumer);
    let with_length = |body: &[u8]| {
        Request::post(SPANS_PATH)
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Body::from(body.to_vec()))
            .unwrap()
    };
    let router = setup.receiver.router();
    let first = tokio::spawn(router.clone().oneshot(with_length(&body)));
    entered.recv().await.unwrap(); // the first request holds its bytes in the consumer
    let front = &setup.receiver.front;
    assert!(budget - front.available() >= body.len(), "the batch's bytes are held");
    let mut hog = front.claim();
    hog.grow(front.available() - 100).unwrap();
    let reply = setup.send(with_length(&body)).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers["retry-after"], "1");
    drop(hog);
    release.add_permits(1);
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(front.available(), budget);
    setup.assert_metric(
        r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http_json",outcome="refused"} 1"#,
    );
    setup.assert_metric(
        r#"sightline_receive_requests_total{receiver="zipkin",signal="traces",protocol="http_json",outcome="ok"} 1"#,
    );
}

/// D1: Zipkin bodies of many empty spans, JSON and protobuf, are refused
/// from their counted structure instead of decoded (a 19.5 MiB body took
/// gigabytes before).
#[tokio::test]
async fn many_empty_spans_are_refused_before_decoding() {
    let setup = setup();
    let json = format!("[{}]", vec!["{}"; 300_000].join(","));
    let reply = setup.post(Some("application/json"), None, json.into_bytes()).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.body);
    assert!(reply.body.contains("MiB of memory in flight"), "{}", reply.body);
    let protobuf = [0x0a, 0x00].repeat(300_000);
    let reply = setup.post(Some("application/x-protobuf"), None, protobuf).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.body);
    assert!(setup.consumer.batches().is_empty());
    assert_eq!(setup.receiver.front.available(), Limits::default().max_inflight_bytes);
}

// --------------------------------------------- the stock Python exporter

/// The Python interpreter of the venv `.ci/run` builds, or
/// `SIGHTLINE_PYTHON`. Panics with the fix when neither exists: this test
/// must not pass by skipping.
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SIGHTLINE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(venv.exists(), "no Python venv at {}: run .ci/run once or set SIGHTLINE_PYTHON", venv.display());
    venv
}

/// opentelemetry-exporter-zipkin-json → `serve` on a loopback socket →
/// the consumer holds the trace with correct parents, typed resource,
/// scope, attributes, event and error status; then a graceful stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_python_zipkin_json_exporter_round_trip() {
    let setup = setup();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{SPANS_PATH}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let router = setup.receiver.router();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/zipkin_json.py");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python()).arg(script).arg(url).output().expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "zipkin_json.py failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    let spans = setup.consumer.spans();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let trace_id = tid(expected["trace_id"].as_str().unwrap());
    for want in expected["spans"].as_array().unwrap() {
        let name = want["name"].as_str().unwrap();
        let span = spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no span {name}"));
        assert_eq!(span.trace_id, trace_id, "{name}");
        assert_eq!(span.span_id, sid(want["span_id"].as_str().unwrap()), "{name}");
        assert_eq!(span.parent_span_id, want["parent_span_id"].as_str().map(sid), "{name}: parent");
        assert_eq!(span.service_name(), "zipkin-checkout");
        assert!(Arc::ptr_eq(&span.resource, &spans[0].resource), "one shared resource");
        assert_eq!(*span.scope, *scope("checkout.tests", "1.0"));
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano && span.start_time_unix_nano > 0);
    }
    let resource_keys: Vec<&str> = spans[0].resource.attributes().iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        resource_keys,
        [
            "service.name",
            "deployment.environment",
            "service.instance.id",
            "telemetry.sdk.language",
            "telemetry.sdk.name",
            "telemetry.sdk.version"
        ]
    );

    let by_name = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
    let endpoint = [s("network.local.address", "192.0.2.10"), KeyValue::new("network.local.port", 8080i64)];
    let root = by_name("POST /checkout");
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.status, Status::default());
    let mut want = vec![
        s("http.request.method", "POST"),
        s("order.express", "true"),
        s("order.items", "3"),
        s("order.skus", r#"["A-1","B-2"]"#),
        s("order.total", "42.5"),
    ];
    want.extend(endpoint.clone());
    assert_eq!(root.attributes, want);
    assert_eq!(root.events.len(), 1);
    assert_eq!(root.events[0].name, "stock.reserved");
    assert_eq!(root.events[0].attributes, vec![KeyValue::new("qty", 2i64), s("sku", "A-1")]);
    assert!(root.events[0].time_unix_nano >= root.start_time_unix_nano);

    let reserve = by_name("reserve-stock");
    assert_eq!(reserve.kind, SpanKind::Unspecified, "the exporter sends internal spans without a kind");
    let mut want = vec![s("stock.warehouse", "north")];
    want.extend(endpoint.clone());
    assert_eq!(reserve.attributes, want);

    let pay = by_name("GET /payments");
    assert_eq!(pay.kind, SpanKind::Client);
    assert_eq!(pay.status, Status { code: SpanStatus::Error, message: "card declined".into() });
    assert_eq!(pay.attributes, endpoint.to_vec());

    setup.assert_metric(
        r#"sightline_receive_spans_total{receiver="zipkin",protocol="http_json",outcome="accepted"} 3"#,
    );
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
}

// ------------------------------------------------------------ fuzzing

mod fuzz {
    //! Property-based fuzzing of both Zipkin decoders (issue 16 item 6):
    //! bounded in `cargo test`, longer with `bench/fuzz.sh`
    //! (`PROPTEST_CASES`).

    use axum::body::Body;
    use http::{Request, StatusCode};
    use proptest::prelude::*;
    use prost::Message as _;
    use sightline_receive::front::cost::proto_cost;
    use tower::ServiceExt as _;

    use super::setup;
    use crate::SPANS_PATH;

    fn config(n: u32) -> ProptestConfig {
        let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
        ProptestConfig { cases, ..ProptestConfig::default() }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
    }

    /// JSON trees from Zipkin's field names.
    fn zipkin_json() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        const KEYS: &[&str] = &[
            "traceId",
            "id",
            "parentId",
            "name",
            "kind",
            "timestamp",
            "duration",
            "localEndpoint",
            "remoteEndpoint",
            "serviceName",
            "ipv4",
            "ipv6",
            "port",
            "annotations",
            "value",
            "tags",
            "debug",
            "shared",
            "otel.status_code",
            "error",
            "span.kind",
            "otel.scope.name",
            "otlp.link.0",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            "[0-9a-f]{0,33}".prop_map(Value::String),
            ".{0,10}".prop_map(Value::String),
            "(CLIENT|SERVER|PRODUCER|CONSUMER|ERROR|OK|[0-9.:]{0,12})".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6)
                    .prop_map(|m| { Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()) }),
            ]
        })
    }

    fn post(
        rt: &tokio::runtime::Runtime,
        setup: &super::Setup,
        content_type: &str,
        body: Vec<u8>,
    ) -> StatusCode {
        let request = Request::post(SPANS_PATH)
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request");
        rt.block_on(setup.receiver.router().oneshot(request)).expect("infallible").status()
    }

    const OK_OR_REFUSED: [StatusCode; 3] =
        [StatusCode::ACCEPTED, StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE];

    proptest! {
        #![proptest_config(config(96))]

        /// Any body, JSON or protobuf: a status, never a panic, and the
        /// budget comes back; the protobuf walk accepts what prost decodes.
        #[test]
        fn zipkin_bodies_get_a_status(
            json in zipkin_json(),
            noise in proptest::collection::vec(any::<u8>(), 0..300),
            flip in (any::<usize>(), 1u8..=255),
        ) {
            let rt = runtime();
            let setup = setup();
            let json_body = serde_json::to_vec(&serde_json::Value::Array(vec![json])).expect("JSON");
            for (ct, body) in [
                ("application/json", json_body.clone()),
                ("application/json", noise.clone()),
                ("application/x-protobuf", noise.clone()),
            ] {
                let status = post(&rt, &setup, ct, body);
                prop_assert!(OK_OR_REFUSED.contains(&status), "{ct}: {status}");
            }
            // A valid protobuf list, mutated.
            let list = crate::proto::ListOfSpans { spans: vec![crate::proto::Span {
                trace_id: vec![1; 16], id: vec![2; 8], name: "op".into(), ..Default::default()
            }] };
            let mut bytes = list.encode_to_vec();
            let n = bytes.len();
            bytes[flip.0 % n] ^= flip.1;
            for candidate in [noise, bytes] {
                if crate::proto::ListOfSpans::decode(candidate.as_slice()).is_ok() {
                    prop_assert!(proto_cost(&candidate, &crate::http::LIST_OF_SPANS).is_ok());
                }
                let status = post(&rt, &setup, "application/x-protobuf", candidate);
                prop_assert!(OK_OR_REFUSED.contains(&status), "{status}");
            }
            prop_assert_eq!(setup.receiver.front.available(), sightline_receive::front::Limits::default().max_inflight_bytes);
        }
    }
}
