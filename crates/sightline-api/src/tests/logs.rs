//! The logs API against the real log store (records written through its
//! `LogsConsumer`), served on a real socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use prometheus_client::registry::Registry;
use serde_json::{Value as Json, json};
use sightline_logstore::{LogStore, Options};
use sightline_model::{
    KeyValue, LogBatch, LogReader, LogRecord, LogsConsumer, MemoryBudget, Resource, Scope, SpanId,
    SpanReader, TraceId, Value,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::Fake;
use crate::{ApiState, Metrics, router};

/// 2025-01-01T00:00:00Z, in ns.
const T0: u64 = 1_735_689_600_000_000_000;
const SEC: u64 = 1_000_000_000;

struct Server {
    addr: SocketAddr,
    store: Arc<LogStore>,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path(), Arc::new(MemoryBudget::new(256 << 20)));
    opts.retention = None;
    let store = Arc::new(LogStore::open(opts).await.unwrap());
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let state = ApiState {
        readers: Arc::new(Arc::new(Fake::default()) as Arc<dyn SpanReader>),
        health: Arc::new(Vec::new),
        ready: Arc::new(AtomicBool::new(true)),
        registry: Arc::new(registry),
        metrics,
        span_metrics: None,
        service_graph: None,
        logs: Some(Arc::new(Arc::clone(&store) as Arc<dyn LogReader>)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    Server { addr, store, _dir: dir }
}

/// One plain HTTP/1.1 GET; the status and the JSON body.
async fn get(addr: SocketAddr, path: &str) -> (u16, Json) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

fn q(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn record(service: &str, i: u64, severity: i32, body: &str, trace: Option<u8>) -> LogRecord {
    LogRecord {
        observed_time_unix_nano: T0 + i * SEC + 1000,
        severity_number: severity,
        severity_text: ["INFO", "WARN", "ERROR"][usize::from(severity >= 13) + usize::from(severity >= 17)]
            .into(),
        attributes: vec![KeyValue { key: "order.id".into(), value: Value::Int(i as i64) }],
        trace_id: trace.map(|n| TraceId::from_bytes([n; 16]).unwrap()),
        span_id: trace.map(|n| SpanId::from_bytes([n; 8]).unwrap()),
        resource: Arc::new(Resource::new(
            vec![KeyValue { key: "service.name".into(), value: Value::Str(service.into()) }],
            0,
            String::new(),
        )),
        scope: Arc::new(Scope { name: "orders.log".into(), ..Scope::default() }),
        ..LogRecord::info(T0 + i * SEC, body)
    }
}

/// 30 records, one a second: `gateway` and `orders` alternating, every
/// fifth an error mentioning a timeout, traces 1–3.
async fn fill(store: &LogStore) {
    let records: Vec<LogRecord> = (0..30u64)
        .map(|i| {
            let service = if i % 2 == 0 { "gateway" } else { "orders" };
            let (sev, body) = if i % 5 == 0 {
                (17, format!("order {i} failed: timeout"))
            } else {
                (9, format!("order {i} ok"))
            };
            record(service, i, sev, &body, Some((i % 3 + 1) as u8))
        })
        .collect();
    for chunk in records.chunks(4) {
        store.consume_logs(LogBatch::from_records(chunk.to_vec())).await.unwrap();
    }
}

fn bodies(reply: &Json) -> Vec<&str> {
    reply["data"].as_array().unwrap().iter().map(|r| r["body"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn search_filters_pages_and_shapes_records() {
    let s = server().await;
    fill(&s.store).await;
    // Half in a block, half in the head: one answer.
    s.store.flush_now().await.unwrap();
    let late: Vec<LogRecord> =
        (30..34u64).map(|i| record("orders", i, 13, &format!("late {i}"), None)).collect();
    s.store.consume_logs(LogBatch::from_records(late)).await.unwrap();

    let (status, reply) = get(s.addr, "/api/logs?limit=1").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply,
        json!({
            "data": [{
                "timestamp": (T0 + 33 * SEC) / 1000,
                "observedTimestamp": (T0 + 33 * SEC + 1000) / 1000,
                "severityText": "WARN",
                "severityNumber": 13,
                "body": "late 33",
                "traceID": null,
                "spanID": null,
                "service": "orders",
                "attributes": {"order.id": 33},
                "resource": {"service.name": "orders"},
                "scope": {"name": "orders.log", "version": ""},
                "eventName": ""
            }],
            "total": 1,
            "limit": 1,
            "next": reply["next"].clone(),
            "errors": null,
            "warnings": null
        })
    );
    assert!(reply["next"].is_string());

    let trace2 = "02".repeat(16);
    let (_, reply) = get(s.addr, &format!("/api/logs?traceID={trace2}")).await;
    assert_eq!(
        bodies(&reply),
        [
            "order 28 ok",
            "order 25 failed: timeout",
            "order 22 ok",
            "order 19 ok",
            "order 16 ok",
            "order 13 ok",
            "order 10 failed: timeout",
            "order 7 ok",
            "order 4 ok",
            "order 1 ok"
        ]
    );
    assert_eq!(reply["data"][0]["traceID"], trace2);
    assert_eq!(reply["data"][0]["spanID"], "02".repeat(8));

    let (_, reply) = get(s.addr, &format!("/api/logs?traceID={trace2}&spanID={}", "02".repeat(8))).await;
    assert_eq!(reply["total"], 10);

    let (_, reply) = get(s.addr, "/api/logs?service=gateway&minSeverity=error").await;
    assert_eq!(
        bodies(&reply),
        ["order 20 failed: timeout", "order 10 failed: timeout", "order 0 failed: timeout"]
    );
    let (_, reply) = get(s.addr, "/api/logs?service=orders&minSeverity=13").await;
    assert_eq!(
        bodies(&reply),
        [
            "late 33",
            "late 32",
            "late 31",
            "late 30",
            "order 25 failed: timeout",
            "order 15 failed: timeout",
            "order 5 failed: timeout"
        ]
    );

    let (_, reply) = get(s.addr, &format!("/api/logs?q={}", q("order 2"))).await;
    assert_eq!(reply["total"], 11, "order 2 and 20–29");
    let (_, reply) = get(s.addr, &format!("/api/logs?q={}", q(r"/^order 1\d ok$/"))).await;
    assert_eq!(
        bodies(&reply),
        [
            "order 19 ok",
            "order 18 ok",
            "order 17 ok",
            "order 16 ok",
            "order 14 ok",
            "order 13 ok",
            "order 12 ok",
            "order 11 ok"
        ]
    );

    let (_, reply) = get(s.addr, &format!("/api/logs?tags={}", q(r#"{"order.id":"7"}"#))).await;
    assert_eq!(bodies(&reply), ["order 7 ok"]);

    let start = (T0 + 3 * SEC) / 1000;
    let end = (T0 + 5 * SEC) / 1000;
    let (_, reply) = get(s.addr, &format!("/api/logs?start={start}&end={end}")).await;
    assert_eq!(bodies(&reply), ["order 5 failed: timeout", "order 4 ok", "order 3 ok"]);

    // Pages of 4 through all 34, each record once, newest first.
    let mut seen = Vec::new();
    let mut path = "/api/logs?limit=4".to_owned();
    loop {
        let (status, reply) = get(s.addr, &path).await;
        assert_eq!(status, 200);
        seen.extend(reply["data"].as_array().unwrap().iter().map(|r| r["timestamp"].as_u64().unwrap()));
        match reply["next"].as_str() {
            Some(cursor) => path = format!("/api/logs?limit=4&cursor={cursor}"),
            None => break,
        }
    }
    let want: Vec<u64> = (0..34u64).rev().map(|i| (T0 + i * SEC) / 1000).collect();
    assert_eq!(seen, want);

    let (_, reply) = get(s.addr, "/api/logs?limit=100000").await;
    assert_eq!(reply["limit"], 1000, "limit is capped");

    let (status, reply) = get(s.addr, "/api/logs/services").await;
    assert_eq!(status, 200);
    assert_eq!(reply["data"], json!(["gateway", "orders"]));
    s.store.shutdown().await;
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_message() {
    let s = server().await;
    for (path, needle) in [
        ("/api/logs?traceID=xyz", "traceID"),
        ("/api/logs?spanID=xyz", "spanID"),
        ("/api/logs?spanID=00112233445566778899", "spanID"),
        ("/api/logs?minSeverity=loud", "minSeverity"),
        ("/api/logs?minSeverity=99", "minSeverity"),
        ("/api/logs?q=%2F(%2F", "invalid regular expression"),
        ("/api/logs?limit=-1", "limit"),
        ("/api/logs?limit=ten", "limit"),
        ("/api/logs?cursor=nope", "cursor"),
        ("/api/logs?start=20&end=10", "'end' must not be before 'start'"),
        ("/api/logs?start=-5", "start"),
        ("/api/logs?tags=%7Bbad", "tags"),
        ("/api/logs/tail?minSeverity=loud", "minSeverity"),
    ] {
        let (status, reply) = get(s.addr, path).await;
        assert_eq!(status, 400, "{path}: {reply}");
        let msg = reply["errors"][0]["msg"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
    }
    s.store.shutdown().await;
}

#[tokio::test]
async fn the_tail_streams_matching_records_as_server_sent_events() {
    let s = server().await;
    let mut conn = TcpStream::connect(s.addr).await.unwrap();
    let request = "GET /api/logs/tail?service=orders&minSeverity=warn HTTP/1.1\r\nHost: test\r\n\r\n";
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // Headers first: the subscription exists once they are sent.
    while !seen.contains("\r\n\r\n") {
        let n = conn.read(&mut buf).await.unwrap();
        seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert!(seen.contains("content-type: text/event-stream"), "{seen}");
    let batch = vec![
        record("orders", 1, 17, "boom", None),
        record("orders", 2, 9, "fine", None),
        record("gateway", 3, 17, "elsewhere", None),
        record("orders", 4, 13, "careful", None),
    ];
    s.store.consume_logs(LogBatch::from_records(batch)).await.unwrap();
    while seen.matches("event: log").count() < 2 {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "stream ended: {seen}");
        seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    let data: Vec<Json> = seen
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let got: Vec<&str> = data.iter().map(|d| d["body"].as_str().unwrap()).collect();
    assert_eq!(got, ["boom", "careful"]);
    s.store.shutdown().await;
}
