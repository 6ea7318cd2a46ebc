//! Deterministic span generators for tests: a "realistic" microservice
//! workload for size and search tests, and hand-built spans covering every
//! field.

use std::sync::Arc;

use sightline_model::{
    Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId, Value,
};

/// A span with trace id `[t; 16]`, span id `[s; 8]`, no parent, named
/// "op", internal, flags 0 and nothing else: hand-made fixtures set only
/// the fields they test.
pub(crate) fn plain_span(
    t: u8,
    s: u8,
    start: u64,
    end: u64,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Span {
    Span {
        trace_id: TraceId::from_bytes([t; 16]).unwrap(),
        span_id: SpanId::from_bytes([s; 8]).unwrap(),
        parent_span_id: None,
        trace_state: String::new(),
        flags: 0,
        name: "op".into(),
        kind: SpanKind::Internal,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: vec![],
        dropped_attributes_count: 0,
        events: vec![],
        dropped_events_count: 0,
        links: vec![],
        dropped_links_count: 0,
        status: Status::default(),
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    }
}

/// SplitMix64: tiny, deterministic, good enough for test data.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub(crate) fn trace_id(&mut self) -> TraceId {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next_u64().to_be_bytes());
        b[8..].copy_from_slice(&self.next_u64().to_be_bytes());
        b[15] |= 1;
        TraceId::from_bytes(b).unwrap()
    }

    pub(crate) fn span_id(&mut self) -> SpanId {
        SpanId::from_bytes((self.next_u64() | 1).to_be_bytes()).unwrap()
    }

    /// Roughly log-normal: a duration between `min` and `max` ns,
    /// skewed toward the low end.
    fn duration(&mut self, min: u64, max: u64) -> u64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let span = (max as f64 / min as f64).ln();
        (min as f64 * (span * u * u).exp()) as u64
    }
}

pub(crate) fn kv(key: &str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Web,
    Backend,
    Database,
}

struct Service {
    name: &'static str,
    role: Role,
    calls: &'static [usize],
    resources: Vec<Arc<Resource>>,
    http_scope: Arc<Scope>,
    db_scope: Arc<Scope>,
    internal_scope: Arc<Scope>,
    operations: &'static [&'static str],
}

const SERVICES: [(&str, Role, &[usize], &[&str]); 8] = [
    ("frontend", Role::Web, &[1, 2, 3], &["GET /", "GET /product/{id}", "POST /cart", "POST /checkout"]),
    ("cart", Role::Backend, &[6], &["GetCart", "AddItem", "EmptyCart"]),
    ("checkout", Role::Backend, &[1, 4, 5, 7], &["PlaceOrder", "PrepareOrder"]),
    ("product-catalog", Role::Backend, &[7], &["GetProduct", "ListProducts", "SearchProducts"]),
    ("payment", Role::Backend, &[7], &["Charge", "Refund"]),
    ("shipping", Role::Backend, &[], &["GetQuote", "ShipOrder"]),
    ("redis", Role::Database, &[], &["HGET", "HSET", "EXPIRE"]),
    ("postgres", Role::Database, &[], &["SELECT orders", "INSERT orders", "SELECT products", "UPDATE stock"]),
];

fn services() -> Vec<Service> {
    SERVICES
        .iter()
        .map(|(name, role, calls, operations)| {
            let resources = (0..3)
                .map(|pod| {
                    Arc::new(Resource::new(
                        vec![
                            kv("service.name", *name),
                            kv("service.version", "1.42.0"),
                            kv("service.namespace", "shop"),
                            kv("deployment.environment", "production"),
                            kv("host.name", format!("node-{}", (name.len() + pod) % 5)),
                            kv("k8s.namespace.name", "shop"),
                            kv("k8s.pod.name", format!("{name}-7d9f8b6c5-{pod:05}")),
                            kv("telemetry.sdk.name", "opentelemetry"),
                            kv("telemetry.sdk.language", "java"),
                            kv("telemetry.sdk.version", "1.38.0"),
                        ],
                        0,
                        "https://opentelemetry.io/schemas/1.24.0".to_owned(),
                    ))
                })
                .collect();
            let scope = |n: &str| {
                Arc::new(Scope { name: n.to_owned(), version: "2.1.0".to_owned(), ..Scope::default() })
            };
            Service {
                name,
                role: *role,
                calls,
                resources,
                http_scope: scope("io.opentelemetry.http"),
                db_scope: scope("io.opentelemetry.jdbc"),
                internal_scope: scope("io.opentelemetry.instrumentation"),
                operations,
            }
        })
        .collect()
}

const STACK: &str = "java.lang.IllegalStateException: order rejected\n\tat shop.checkout.Service.place(Service.java:142)\n\tat shop.checkout.Handler.handle(Handler.java:77)\n\tat io.grpc.ServerImpl.run(ServerImpl.java:310)";

struct TraceGen<'a> {
    rng: &'a mut Rng,
    services: &'a [Service],
    trace_id: TraceId,
    user: u64,
    request_id: String,
    spans: Vec<Span>,
}

impl TraceGen<'_> {
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        service: usize,
        pod: usize,
        parent: Option<SpanId>,
        name: String,
        kind: SpanKind,
        start: u64,
        duration: u64,
        error: bool,
    ) -> SpanId {
        let svc = &self.services[service];
        let span_id = self.rng.span_id();
        let mut attributes = Vec::with_capacity(12);
        let status_code = if error { 500 } else { *self.rng.pick(&[200, 200, 200, 200, 201, 304, 404]) };
        let scope;
        if svc.role == Role::Database {
            {
                scope = Arc::clone(&svc.db_scope);
                let table = name.split(' ').nth(1).unwrap_or("orders");
                attributes.extend([
                    kv("db.system", if svc.name == "redis" { "redis" } else { "postgresql" }),
                    kv("db.name", "shop"),
                    kv("db.operation", name.split(' ').next().unwrap_or("SELECT")),
                    kv("db.sql.table", table),
                    kv(
                        "db.statement",
                        format!(
                            "{} FROM {table} WHERE id = ? AND tenant = ?",
                            name.split(' ').next().unwrap_or("")
                        ),
                    ),
                    kv("server.address", format!("{}.shop.svc.cluster.local", svc.name)),
                    kv("server.port", if svc.name == "redis" { 6379i64 } else { 5432 }),
                    kv("db.rows_affected", self.rng.below(20) as i64),
                    kv("thread.id", 20 + self.rng.below(16) as i64),
                    kv("thread.name", format!("pool-1-thread-{}", self.rng.below(16))),
                    kv("app.request.id", self.request_id.clone()),
                ]);
            }
        } else if matches!(kind, SpanKind::Server | SpanKind::Client) {
            {
                scope = Arc::clone(&svc.http_scope);
                let order = self.rng.below(10_000_000);
                attributes.extend([
                    kv("http.request.method", *self.rng.pick(&["GET", "GET", "GET", "POST", "PUT"])),
                    kv("http.route", format!("/api/{}/{{id}}", svc.name)),
                    kv("http.response.status_code", status_code as i64),
                    kv("url.path", format!("/api/{}/{order}", svc.name)),
                    kv("url.scheme", "http"),
                    kv("server.address", format!("{}.shop.svc.cluster.local", svc.name)),
                    kv("server.port", 8080i64),
                    kv("network.protocol.version", "1.1"),
                    kv("client.address", format!("10.0.{}.{}", self.rng.below(4), self.rng.below(250))),
                    kv("user.id", format!("user-{}", self.user)),
                    kv("app.request.id", self.request_id.clone()),
                ]);
                if kind == SpanKind::Server && self.rng.chance(0.5) {
                    attributes.push(kv(
                        "user_agent.original",
                        *self.rng.pick(&[
                            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0",
                            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Safari/604.1",
                            "okhttp/4.12.0",
                        ]),
                    ));
                }
            }
        } else {
            {
                scope = Arc::clone(&svc.internal_scope);
                attributes.extend([
                    kv("code.namespace", format!("shop.{}.Service", svc.name)),
                    kv("code.function", name.clone()),
                    kv("code.lineno", 40 + self.rng.below(400) as i64),
                    kv("thread.id", 20 + self.rng.below(16) as i64),
                    kv("thread.name", format!("pool-1-thread-{}", self.rng.below(16))),
                    kv("app.request.id", self.request_id.clone()),
                    kv("app.user.id", format!("user-{}", self.user)),
                    kv("app.cache.hit", self.rng.chance(0.7)),
                    kv("app.items", self.rng.below(8) as i64),
                    kv("app.ratio", (self.rng.below(1000) as f64) / 1000.0),
                    kv("app.region", *self.rng.pick(&["eu-west-1", "us-east-1"])),
                ]);
            }
        }
        let mut events = Vec::new();
        let n_events = 1 + self.rng.below(2);
        for e in 0..n_events {
            let offset = duration / 4 * (e + 1);
            events.push(Event {
                time_unix_nano: start + offset,
                name: (*self.rng.pick(&["cache.lookup", "message", "retry.scheduled"])).to_owned(),
                attributes: vec![
                    kv("message.type", *self.rng.pick(&["SENT", "RECEIVED"])),
                    kv("message.id", (e + 1) as i64),
                ],
                dropped_attributes_count: 0,
            });
        }
        if error {
            events.push(Event {
                time_unix_nano: start + duration - duration / 10,
                name: "exception".to_owned(),
                attributes: vec![
                    kv("exception.type", "java.lang.IllegalStateException"),
                    kv("exception.message", format!("order {} rejected", self.rng.below(1_000_000))),
                    kv("exception.stacktrace", STACK),
                ],
                dropped_attributes_count: 0,
            });
        }
        self.spans.push(Span {
            trace_id: self.trace_id,
            span_id,
            parent_span_id: parent,
            trace_state: String::new(),
            flags: 0x301,
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: start + duration,
            attributes,
            dropped_attributes_count: 0,
            events,
            dropped_events_count: 0,
            links: Vec::new(),
            dropped_links_count: 0,
            status: if error {
                Status { code: StatusCode::Error, message: "order rejected".to_owned() }
            } else {
                Status::default()
            },
            resource: Arc::clone(&svc.resources[pod]),
            scope,
        });
        span_id
    }

    /// A server span in `service` plus its subtree.
    fn serve(&mut self, service: usize, parent: Option<SpanId>, start: u64, duration: u64, depth: u32) {
        let pod = self.rng.below(3) as usize;
        let svc_ops = self.services[service].operations;
        let name = (*self.rng.pick(svc_ops)).to_owned();
        let error = self.rng.chance(0.05);
        let role = self.services[service].role;
        let kind = if role == Role::Database { SpanKind::Client } else { SpanKind::Server };
        let id = self.span(service, pod, parent, name.clone(), kind, start, duration, error);
        if role == Role::Database {
            return;
        }
        if self.rng.chance(0.5) {
            let d = duration / 5;
            self.span(
                service,
                pod,
                Some(id),
                format!("{name}.validate"),
                SpanKind::Internal,
                start + d / 2,
                d,
                false,
            );
        }
        let calls = self.services[service].calls;
        if depth >= 4 || calls.is_empty() {
            return;
        }
        let n = 1 + self.rng.below(calls.len() as u64) as usize;
        for c in 0..n {
            let callee = *self.rng.pick(calls);
            let slot = duration / (n as u64 + 1);
            let cstart = start + slot * c as u64 + slot / 4;
            let cdur = slot / 2 + self.rng.below(slot / 2 + 1);
            if self.services[callee].role == Role::Database {
                self.serve(callee, Some(id), cstart, cdur, depth + 1);
            } else {
                let client = self.span(
                    service,
                    pod,
                    Some(id),
                    format!("{} {}", "POST", self.services[callee].name),
                    SpanKind::Client,
                    cstart,
                    cdur,
                    false,
                );
                let net = cdur / 20;
                self.serve(callee, Some(client), cstart + net, cdur - 2 * net, depth + 1);
            }
        }
    }
}

/// `traces` realistic traces (≈ 10–25 spans each) starting within a
/// five-minute window after `base_nanos`.
pub(crate) fn realistic(traces: usize, seed: u64, base_nanos: u64) -> Vec<Span> {
    let services = services();
    let mut rng = Rng::new(seed);
    let mut spans = Vec::new();
    for _ in 0..traces {
        let trace_id = rng.trace_id();
        let start = base_nanos + rng.below(300_000_000_000);
        let duration = rng.duration(2_000_000, 800_000_000);
        let user = rng.below(50_000);
        let request_id = format!("{:016x}", rng.next_u64());
        let mut g =
            TraceGen { rng: &mut rng, services: &services, trace_id, user, request_id, spans: Vec::new() };
        g.serve(0, None, start, duration, 0);
        spans.extend(g.spans);
    }
    spans
}

/// Hand-built spans exercising every field and value type, in three
/// traces; no NaN (it is not equal to itself), see `nan_round_trip`.
pub(crate) fn every_field() -> Vec<Span> {
    let resource = Arc::new(Resource::new(
        vec![
            kv("service.name", "api"),
            kv("host.name", "h1"),
            KeyValue::new(
                "nested",
                Value::Map(vec![kv("a", 1i64), kv("b", Value::Array(vec![Value::Empty]))]),
            ),
        ],
        3,
        "https://schema/1".to_owned(),
    ));
    let bare = Arc::new(Resource::new(vec![kv("host.name", "h2")], 0, String::new()));
    let scope = Arc::new(Scope {
        name: "lib".to_owned(),
        version: "1.0".to_owned(),
        attributes: vec![kv("scope.attr", true), KeyValue::new("scope.bytes", Value::Bytes(vec![0, 255]))],
        dropped_attributes_count: 2,
        schema_url: "https://schema/scope".to_owned(),
    });
    let empty_scope = Arc::new(Scope::default());
    let t1 = TraceId::from_bytes([0x11; 16]).unwrap();
    let t2 = TraceId::from_bytes([0x22; 16]).unwrap();
    let t3 = TraceId::from_bytes([0xf0; 16]).unwrap();
    let sid = |n: u8| SpanId::from_bytes([0, 0, 0, 0, 0, 0, 1, n]).unwrap();
    let all_values = vec![
        kv("str", "text ✓ ünïcode"),
        kv("", "empty key"),
        kv("empty.str", ""),
        kv("bool.t", true),
        kv("bool.f", false),
        kv("int.min", i64::MIN),
        kv("int.max", i64::MAX),
        kv("int.zero", 0i64),
        kv("double", 1.5f64),
        kv("double.neg_zero", -0.0f64),
        kv("double.inf", f64::INFINITY),
        kv("double.neg_inf", f64::NEG_INFINITY),
        kv("double.tiny", 5e-324f64),
        kv("double.third", 1.0f64 / 3.0),
        KeyValue::new("bytes", Value::Bytes(vec![0, 1, 2, 254, 255])),
        KeyValue::new("bytes.empty", Value::Bytes(Vec::new())),
        KeyValue::new("empty", Value::Empty),
        KeyValue::new(
            "array",
            Value::Array(vec![
                Value::Str("a".into()),
                Value::Int(-7),
                Value::Double(-0.0),
                Value::Double(f64::INFINITY),
                Value::Double(0.1),
                Value::Bool(true),
                Value::Bytes(vec![9, 8]),
                Value::Empty,
                Value::Array(vec![]),
                Value::Map(vec![kv("k", "v")]),
            ]),
        ),
        KeyValue::new(
            "map",
            Value::Map(vec![
                kv("x", 1i64),
                kv("x", 2i64), // duplicate keys keep their order
                KeyValue::new(
                    "deep",
                    Value::Map(vec![KeyValue::new("arr", Value::Array(vec![Value::Int(i64::MAX)]))]),
                ),
            ]),
        ),
        KeyValue::new("map.empty", Value::Map(vec![])),
        KeyValue::new("array.empty", Value::Array(vec![])),
    ];
    let base = 1_700_000_000_000_000_000u64;
    let span = |trace: TraceId, id: SpanId, parent: Option<SpanId>, start: u64| {
        Span::test(trace, id, "op")
            .with_parent(parent)
            .with_flags(1)
            .with_kind(SpanKind::Server)
            .with_times(start, start.wrapping_add(1_000))
            .with_attributes(vec![kv("i", 1i64)])
            .with_resource(&resource)
            .with_scope(&scope)
    };
    let mut spans = Vec::new();
    // Trace 1: a root with every value type, events and links; a child
    // whose parent is in the block; a child whose parent is not; a child
    // that starts before its parent (negative parent distance).
    let mut root = span(t1, sid(1), None, base + 100);
    root.trace_state = "vendor=a,other=b".to_owned();
    root.flags = 0x301;
    root.name = "GET /root".to_owned();
    root.attributes = all_values.clone();
    root.dropped_attributes_count = 4;
    root.events = vec![
        Event {
            time_unix_nano: base + 150,
            name: "exception".to_owned(),
            attributes: all_values.clone(),
            dropped_attributes_count: 1,
        },
        Event {
            time_unix_nano: base + 50,
            name: "before start".to_owned(),
            attributes: vec![],
            dropped_attributes_count: 0,
        },
        Event { time_unix_nano: 0, name: String::new(), attributes: vec![], dropped_attributes_count: 0 },
    ];
    root.dropped_events_count = 5;
    root.links = vec![
        Link {
            trace_id: t2,
            span_id: sid(9),
            trace_state: "ts=1".to_owned(),
            attributes: vec![
                kv("link.attr", 3i64),
                KeyValue::new("link.arr", Value::Array(vec![Value::Bool(false)])),
            ],
            dropped_attributes_count: 6,
            flags: 0x100,
        },
        Link {
            trace_id: t1,
            span_id: sid(2),
            trace_state: String::new(),
            attributes: vec![],
            dropped_attributes_count: 0,
            flags: 0,
        },
    ];
    root.dropped_links_count = 7;
    root.status = Status { code: StatusCode::Error, message: "boom".to_owned() };
    spans.push(root);
    let mut child = span(t1, sid(2), Some(sid(1)), base + 200);
    child.kind = SpanKind::Client;
    child.status = Status { code: StatusCode::Ok, message: String::new() };
    spans.push(child);
    let mut orphan = span(t1, sid(3), Some(sid(200)), base + 300);
    orphan.kind = SpanKind::Consumer;
    orphan.resource = Arc::clone(&bare);
    orphan.scope = Arc::clone(&empty_scope);
    spans.push(orphan);
    let mut early = span(t1, sid(4), Some(sid(2)), base + 10);
    early.kind = SpanKind::Internal;
    early.end_time_unix_nano = base + 5; // ends before it starts
    spans.push(early);
    let mut self_parent = span(t1, sid(5), Some(sid(5)), base + 400);
    self_parent.kind = SpanKind::Producer;
    spans.push(self_parent);
    // Trace 2: a lone root of unspecified kind, zero times, times past the
    // i64 range.
    let mut t2_root = span(t2, sid(1), None, 0);
    t2_root.kind = SpanKind::Unspecified;
    t2_root.end_time_unix_nano = 0;
    t2_root.resource = Arc::clone(&bare);
    spans.push(t2_root);
    let mut far = span(t2, sid(2), Some(sid(1)), u64::MAX - 10);
    far.end_time_unix_nano = u64::MAX;
    spans.push(far);
    // Trace 3: a fresh resource `Arc` equal in content to `resource` (must
    // be deduplicated) and a longer chain.
    let copy = Arc::new((*resource).clone());
    for i in 0..6u8 {
        let mut s =
            span(t3, sid(10 + i), if i == 0 { None } else { Some(sid(9 + i)) }, base + 1_000 * u64::from(i));
        s.resource = Arc::clone(&copy);
        s.name = format!("step {i}");
        spans.push(s);
    }
    spans
}
