//! Five traces the conformance table runs against. Every span has a short
//! label (its span id's last byte, as written below), so expectations read
//! as lists of labels.
//!
//! ```text
//! T1 trace a01, 1000 ms, root A                    T2 trace b002, 55 ms, root P
//!   A  GET /checkout  frontend  server  unset          P  publish      worker producer unset
//!   ├─ B  POST /pay   frontend  client  error          └─ Q  consume   worker consumer ok
//!   │  └─ C  charge   payments  server  error          R  orphan-task  worker internal error (parent missing)
//!   │     └─ D  SELECT cards  payments client ok
//!   └─ E  render      frontend  internal ok        T3 trace c003, 2 s: L lonely, no service.name,
//!                                                     kind unspecified, odd attribute types
//! T4 trace d004, 300 ms, two roots (root = M2)     T5 trace e005, 400 ms, error cascade
//!   M1 job-a ok  ├─ N1 step-1 unset                  S1 api-request server error
//!                └─ N2 step-2 error                  ├─ S2 service-call client error
//!   M2 job-b ok  └─ N3 step-3 unset                  │  └─ S3 db-query client error
//!                                                    │     └─ S4 disk-read internal ok
//!                                                    └─ S5 cache-get client unset
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use sightline_model::{
    Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId, Value,
};

const BASE: u64 = 1_700_000_000_000_000_000;
const MS: u64 = 1_000_000;

pub(crate) struct Fixture {
    pub(crate) traces: Vec<Vec<Span>>,
    labels: HashMap<SpanId, &'static str>,
}

impl Fixture {
    pub(crate) fn label(&self, span: &Span) -> &'static str {
        self.labels[&span.span_id]
    }
}

pub(crate) fn trace_id(hex: &str) -> TraceId {
    hex.parse().expect("valid trace id")
}

pub(crate) fn span_id(n: u64) -> SpanId {
    SpanId::from_bytes(n.to_be_bytes()).expect("non-zero span id")
}

fn resource(attrs: Vec<KeyValue>) -> Arc<Resource> {
    Arc::new(Resource::new(attrs, 0, String::new()))
}

fn scope(name: &str, version: &str, attributes: Vec<KeyValue>) -> Arc<Scope> {
    Arc::new(Scope { name: name.into(), version: version.into(), attributes, ..Scope::default() })
}

fn kv(key: &str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

struct Builder {
    trace: TraceId,
    spans: Vec<Span>,
    labels: Vec<(SpanId, &'static str)>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        label: &'static str,
        id: u64,
        parent: Option<u64>,
        name: &str,
        kind: SpanKind,
        start_ms: u64,
        duration_ms: u64,
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
    ) -> &mut Span {
        self.labels.push((span_id(id), label));
        self.spans.push(
            Span::test(self.trace, span_id(id), name)
                .with_parent(parent.map(span_id))
                .with_flags(1)
                .with_kind(kind)
                .with_times(BASE + start_ms * MS, BASE + (start_ms + duration_ms) * MS)
                .with_resource(resource)
                .with_scope(scope),
        );
        self.spans.last_mut().expect("just pushed")
    }
}

fn status(code: StatusCode, message: &str) -> Status {
    Status { code, message: message.into() }
}

fn event(at_ms: u64, name: &str, attributes: Vec<KeyValue>) -> Event {
    Event { time_unix_nano: BASE + at_ms * MS, name: name.into(), attributes, dropped_attributes_count: 0 }
}

pub(crate) fn fixture() -> Fixture {
    let mut traces = Vec::new();
    let mut labels = HashMap::new();
    let mut finish = |b: Builder| {
        labels.extend(b.labels);
        traces.push(b.spans);
    };
    use SpanKind::*;

    // T1: a checkout across two services.
    let front = resource(vec![
        kv("service.name", "frontend"),
        kv("deployment.environment", "production"),
        kv("host.cpus", 4i64),
    ]);
    let pay = resource(vec![kv("service.name", "payments"), kv("deployment.environment", "production")]);
    let http = scope("http-lib", "1.2.0", vec![kv("lang", "rust")]);
    let grpc = scope("grpc", "1.60.0", vec![]);
    let sql = scope("sqlx", "0.8", vec![]);
    let t2 = trace_id("0000000000000000000000000000b002");
    let mut b =
        Builder { trace: trace_id("00000000000000000000000000000a01"), spans: vec![], labels: vec![] };
    let a = b.span("A", 0xa1, None, "GET /checkout", Server, 0, 1000, &front, &http);
    a.attributes = vec![
        kv("http.method", "GET"),
        kv("http.status_code", 200i64),
        kv("ratio", 0.5),
        kv("cached", false),
        kv("tags", Value::Array(vec![Value::from("a"), Value::from("b")])),
        kv("codes", Value::Array(vec![Value::Int(200), Value::Int(404)])),
    ];
    let s = b.span("B", 0xb1, Some(0xa1), "POST /pay", Client, 100, 300, &front, &http);
    s.status = status(StatusCode::Error, "card declined");
    s.attributes =
        vec![kv("http.method", "POST"), kv("http.status_code", 502i64), kv("attribute with space", "x")];
    s.events = vec![
        event(150, "exception", vec![kv("exception.message", "declined"), kv("exception.escaped", true)]),
        event(300, "retry", vec![kv("attempt", 2i64)]),
    ];
    let s = b.span("C", 0xc1, Some(0xb1), "charge", Server, 120, 250, &pay, &grpc);
    s.status = status(StatusCode::Error, "");
    s.attributes = vec![kv("http.status_code", 500i64)];
    s.links = vec![Link {
        trace_id: t2,
        span_id: span_id(0x21),
        trace_state: String::new(),
        attributes: vec![kv("kind", "follows")],
        dropped_attributes_count: 0,
        flags: 0,
    }];
    let s = b.span("D", 0xd1, Some(0xc1), "SELECT cards", Client, 130, 40, &pay, &sql);
    s.status = status(StatusCode::Ok, "");
    s.attributes = vec![kv("db.system", "postgresql"), kv("db.rows", 3i64)];
    let s = b.span("E", 0xe1, Some(0xa1), "render", Internal, 500, 50, &front, &http);
    s.status = status(StatusCode::Ok, "");
    s.attributes = vec![kv("template", "cart.html")];
    finish(b);

    // T2: messaging, and a span whose parent never arrived.
    let worker = resource(vec![kv("service.name", "worker"), kv("deployment.environment", "staging")]);
    let nats = scope("nats-lib", "0.3", vec![]);
    let mut b = Builder { trace: t2, spans: vec![], labels: vec![] };
    let s = b.span("P", 0x21, None, "publish", Producer, 2000, 10, &worker, &nats);
    s.attributes = vec![kv("messaging.system", "nats")];
    let s = b.span("Q", 0x22, Some(0x21), "consume", Consumer, 2020, 20, &worker, &nats);
    s.status = status(StatusCode::Ok, "");
    s.attributes = vec![kv("messaging.system", "nats")];
    s.events = vec![event(2025, "received", vec![])];
    let s = b.span("R", 0x23, Some(0xfff), "orphan-task", Internal, 2050, 5, &worker, &nats);
    s.status = status(StatusCode::Error, "timeout");
    s.attributes = vec![kv("retry", true), kv("http.status_code", 503i64)];
    finish(b);

    // T3: one span, no service name, every odd attribute type.
    let anonymous = resource(vec![kv("host.name", "h1")]);
    let none = scope("", "", vec![]);
    let mut b =
        Builder { trace: trace_id("0000000000000000000000000000c003"), spans: vec![], labels: vec![] };
    let s = b.span("L", 0x31, None, "lonely", Unspecified, 5000, 2000, &anonymous, &none);
    s.attributes = vec![
        kv("http.status_code", 200.0),
        kv("floats", Value::Array(vec![Value::Double(1.5), Value::Double(2.5)])),
        kv("flags", Value::Array(vec![Value::Bool(true), Value::Bool(false)])),
        kv("blob", Value::Bytes(vec![1, 2, 3])),
        kv("nested", Value::Map(vec![kv("k", "v")])),
        kv("mixed", Value::Array(vec![Value::Int(1), Value::from("a")])),
        kv("empty", Value::Empty),
    ];
    finish(b);

    // T4: two roots.
    let cron = resource(vec![kv("service.name", "cron")]);
    let mut b =
        Builder { trace: trace_id("0000000000000000000000000000d004"), spans: vec![], labels: vec![] };
    b.span("M1", 0x41, None, "job-a", Internal, 10_000, 100, &cron, &none).status =
        status(StatusCode::Ok, "");
    b.span("M2", 0x42, None, "job-b", Internal, 10_200, 100, &cron, &none).status =
        status(StatusCode::Ok, "");
    b.span("N1", 0x43, Some(0x41), "step-1", Internal, 10_010, 30, &cron, &none).attributes =
        vec![kv("step", 1i64)];
    let s = b.span("N2", 0x44, Some(0x41), "step-2", Internal, 10_050, 30, &cron, &none);
    s.status = status(StatusCode::Error, "");
    s.attributes = vec![kv("step", 2i64)];
    b.span("N3", 0x45, Some(0x42), "step-3", Internal, 10_210, 30, &cron, &none).attributes =
        vec![kv("step", 3i64)];
    finish(b);

    // T5: errors cascading down one branch.
    let api = resource(vec![kv("service.name", "api")]);
    let mut b =
        Builder { trace: trace_id("0000000000000000000000000000e005"), spans: vec![], labels: vec![] };
    b.span("S1", 0x51, None, "api-request", Server, 20_000, 400, &api, &none).status =
        status(StatusCode::Error, "");
    b.span("S2", 0x52, Some(0x51), "service-call", Client, 20_010, 300, &api, &none).status =
        status(StatusCode::Error, "");
    b.span("S3", 0x53, Some(0x52), "db-query", Client, 20_020, 200, &api, &none).status =
        status(StatusCode::Error, "");
    b.span("S4", 0x54, Some(0x53), "disk-read", Internal, 20_030, 100, &api, &none).status =
        status(StatusCode::Ok, "");
    b.span("S5", 0x55, Some(0x51), "cache-get", Client, 20_350, 10, &api, &none);
    finish(b);

    Fixture { traces, labels }
}
