//! Deterministic span generation: the two attribute profiles and the trace
//! shapes, producing OTLP export requests.
//!
//! Request `k` of a run is generated from its own generator seeded with
//! `(seed, k)`, so requests can be built on any thread in any order and
//! still be the same for the same seed.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// Which attributes spans carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// The OpenTelemetry Collector testbed's span: name, ids, kind and two
    /// integer attributes (about 150 B per span as OTLP protobuf).
    Testbed,
    /// A microservice workload: about 11 attributes (http.*, db.*, a few
    /// high-cardinality ids), 1–2 events, about 5 % error spans, 8 services
    /// with several operations each (300–500 B per span).
    Realistic,
}

impl Profile {
    /// The profile's name as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Testbed => "testbed",
            Profile::Realistic => "realistic",
        }
    }
}

/// The shape of generated traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Spans per trace (the last trace of a request may be cut shorter so the
    /// request holds exactly the asked number of spans).
    pub spans_per_trace: usize,
    /// Levels below the root, at most.
    pub depth: usize,
    /// Children per span, at most.
    pub fanout: usize,
}

impl Shape {
    /// The default shape of a profile: single-span traces for `testbed` (as
    /// the Collector testbed sends them), 12 spans, 3 levels deep with up to
    /// 3 children each for `realistic`.
    pub fn default_for(profile: Profile) -> Shape {
        match profile {
            Profile::Testbed => Shape { spans_per_trace: 1, depth: 0, fanout: 0 },
            Profile::Realistic => Shape { spans_per_trace: 12, depth: 3, fanout: 3 },
        }
    }

    /// Parent position of each span of a full trace, breadth first: span 0
    /// is the root and every parent comes before its children, so any prefix
    /// of the list is a tree too. Shorter than `spans_per_trace` when depth
    /// and fan-out cannot hold that many spans.
    pub(crate) fn parents(&self) -> Vec<Option<usize>> {
        let want = self.spans_per_trace.max(1);
        let mut parents = vec![None];
        let mut level = vec![0usize];
        let mut depth = 0;
        while parents.len() < want && depth < self.depth && self.fanout > 0 {
            let mut next = Vec::new();
            for &p in &level {
                for _ in 0..self.fanout {
                    if parents.len() >= want {
                        break;
                    }
                    next.push(parents.len());
                    parents.push(Some(p));
                }
            }
            level = next;
            depth += 1;
        }
        parents
    }
}

/// SplitMix64: tiny, fast, and the same on every platform and version, so
/// a seed names one data set for good.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator for item `k` of the stream named by `seed`.
    pub(crate) fn for_item(seed: u64, k: u64) -> Rng {
        let mut mix = Rng(seed ^ k.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        Rng(mix.next_u64())
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

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // NOTE: callers pass non-empty constant tables.
        &items[self.below(items.len() as u64) as usize]
    }

    /// A non-zero id of `N` random bytes.
    pub(crate) fn id<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let bytes = self.next_u64().to_be_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        out[N - 1] |= 1;
        out
    }

    /// Roughly log-normal between `min` and `max`, skewed low.
    fn duration(&mut self, min: u64, max: u64) -> u64 {
        let u = self.unit();
        let range = (max as f64 / min as f64).ln();
        (min as f64 * (range * u * u).exp()) as u64
    }
}

fn s(v: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::StringValue(v.into())) })
}

fn i(v: i64) -> Option<AnyValue> {
    Some(AnyValue { value: Some(any_value::Value::IntValue(v)) })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue { key: key.to_owned(), value, key_strindex: 0 }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Web,
    Backend,
    Database,
}

/// The realistic profile's services: name, role, services it calls,
/// operations.
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

/// The service of every realistic root span.
pub const ROOT_SERVICE: &str = SERVICES[0].0;

/// Pods (resources) per realistic service.
const PODS: usize = 3;

/// Distinct user ids of the realistic profile: each appears in a handful
/// of traces per million spans, a typical high-cardinality search key.
pub(crate) const USERS: u64 = 200_000;

/// The key the query benchmark searches by equality.
pub const USER_KEY: &str = "app.user.id";

/// Service and operation the query benchmark's service/operation/duration
/// search uses, with its minimum duration (a few percent of those spans
/// are slower).
pub const SEARCH_SERVICE: &str = "checkout";
/// See [`SEARCH_SERVICE`].
pub const SEARCH_OPERATION: &str = "PlaceOrder";
/// See [`SEARCH_SERVICE`].
pub const SEARCH_MIN_DURATION: &str = "200ms";

/// Builds export requests.
#[derive(Debug, Clone)]
pub struct Generator {
    profile: Profile,
    parents: Vec<Option<usize>>,
    seed: u64,
}

/// One generated span and the resource/scope it belongs to.
struct Item {
    resource: usize,
    scope: usize,
    span: Span,
}

/// Scopes of the realistic profile.
const SCOPES: [&str; 3] =
    ["io.opentelemetry.http", "io.opentelemetry.jdbc", "io.opentelemetry.instrumentation"];

/// What the query benchmark needs to know about one generated trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSample {
    /// The trace id as generated (before any per-request id mask).
    pub trace_id: [u8; 16],
    /// The trace's `app.user.id` (realistic profile), else empty.
    pub user: String,
}

impl Generator {
    /// A generator for a profile, trace shape and seed.
    pub fn new(profile: Profile, shape: Shape, seed: u64) -> Generator {
        Generator { profile, parents: shape.parents(), seed }
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Request `k` of the stream: exactly `spans` spans of whole traces
    /// (the last one possibly cut short), starting around `base_nanos`.
    pub fn request(
        &self,
        k: u64,
        spans: usize,
        base_nanos: u64,
    ) -> (ExportTraceServiceRequest, Vec<TraceSample>) {
        let mut rng = Rng::for_item(self.seed, k);
        let mut items: Vec<Item> = Vec::with_capacity(spans);
        let mut samples = Vec::new();
        let mut t = 0u64;
        while items.len() < spans {
            let take = (spans - items.len()).min(self.parents.len());
            let start = base_nanos + t;
            let sample = match self.profile {
                Profile::Testbed => self.testbed_trace(&mut rng, k, take, start, &mut items),
                Profile::Realistic => self.realistic_trace(&mut rng, take, start, &mut items),
            };
            samples.push(sample);
            // Traces start a few microseconds apart, as from a busy system.
            t += 1_000 + rng.below(20_000);
        }
        (group(self.profile, items), samples)
    }

    fn testbed_trace(
        &self,
        rng: &mut Rng,
        k: u64,
        take: usize,
        start: u64,
        items: &mut Vec<Item>,
    ) -> TraceSample {
        let trace_id: [u8; 16] = rng.id();
        let mut ids: Vec<[u8; 8]> = Vec::with_capacity(take);
        for (n, parent) in self.parents.iter().take(take).enumerate() {
            let span_id: [u8; 8] = rng.id();
            ids.push(span_id);
            let seq = items.len() as i64;
            items.push(Item {
                resource: 0,
                scope: 0,
                span: Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    parent_span_id: parent.and_then(|p| ids.get(p)).map(|p| p.to_vec()).unwrap_or_default(),
                    name: "load-generator-span".to_owned(),
                    kind: SpanKind::Client as i32,
                    start_time_unix_nano: start + n as u64 * 1_000,
                    end_time_unix_nano: start + n as u64 * 1_000 + 1_000_000,
                    attributes: vec![
                        kv("load_generator.span_seq_num", i(seq)),
                        kv("load_generator.trace_seq_num", i(k as i64)),
                    ],
                    ..Span::default()
                },
            });
        }
        TraceSample { trace_id, user: String::new() }
    }

    fn realistic_trace(&self, rng: &mut Rng, take: usize, start: u64, items: &mut Vec<Item>) -> TraceSample {
        let trace_id: [u8; 16] = rng.id();
        let user = format!("user-{:06}", rng.below(USERS));
        let request_id = format!("{:016x}", rng.next_u64());
        // Each span: (service, span id, start, end).
        let mut placed: Vec<(usize, [u8; 8], u64, u64)> = Vec::with_capacity(take);
        let error_trace = rng.chance(0.05);
        for (n, parent) in self.parents.iter().take(take).enumerate() {
            let (service, span_start, budget) = match parent.and_then(|p| placed.get(p)) {
                None => (0usize, start, rng.duration(2_000_000, 900_000_000)),
                Some(&(psvc, _, pstart, pend)) => {
                    let calls = SERVICES[psvc].2;
                    let svc = if calls.is_empty() { psvc } else { *rng.pick(calls) };
                    let room = pend.saturating_sub(pstart).max(2_000);
                    let offset = rng.below(room / 2);
                    (svc, pstart + offset, room - offset)
                }
            };
            let duration = (budget / 2 + rng.below(budget / 2 + 1)).max(1_000);
            let span_id: [u8; 8] = rng.id();
            placed.push((service, span_id, span_start, span_start + duration));
            let parent_id = parent.and_then(|p| placed.get(p)).map(|p| p.1.to_vec()).unwrap_or_default();
            // Errors: the root of an error trace and its deepest spans.
            let error = error_trace && (n == 0 || n + 1 == take);
            let (name, kind, scope, attributes) =
                realistic_attributes(rng, service, parent.is_none(), error, &user, &request_id);
            let mut events = Vec::with_capacity(3);
            let event_count = if rng.chance(0.3) { 2 } else { 1 };
            for e in 0..event_count {
                let at = span_start + duration / (event_count + 1) * (e + 1);
                events.push(Event {
                    time_unix_nano: at,
                    name: "message".to_owned(),
                    attributes: vec![kv("message.type", s(if e == 0 { "RECEIVED" } else { "SENT" }))],
                    dropped_attributes_count: 0,
                });
            }
            if error {
                events.push(Event {
                    time_unix_nano: span_start + duration - 1_000,
                    name: "exception".to_owned(),
                    attributes: vec![
                        kv("exception.type", s("java.lang.IllegalStateException")),
                        kv("exception.message", s(format!("order {} rejected", rng.below(1_000_000)))),
                    ],
                    dropped_attributes_count: 0,
                });
            }
            items.push(Item {
                resource: service * PODS + rng.below(PODS as u64) as usize,
                scope,
                span: Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    parent_span_id: parent_id,
                    flags: 0x101,
                    name,
                    kind: kind as i32,
                    start_time_unix_nano: span_start,
                    end_time_unix_nano: span_start + duration,
                    attributes,
                    events,
                    status: error.then(|| Status {
                        message: "order rejected".to_owned(),
                        code: StatusCode::Error as i32,
                    }),
                    ..Span::default()
                },
            });
        }
        TraceSample { trace_id, user }
    }
}

/// Name, kind, scope and attributes of one realistic span.
fn realistic_attributes(
    rng: &mut Rng,
    service: usize,
    root: bool,
    error: bool,
    user: &str,
    request_id: &str,
) -> (String, SpanKind, usize, Vec<KeyValue>) {
    let (svc, role, _, operations) = SERVICES[service];
    let op = *rng.pick(operations);
    let status = if error { 500 } else { *rng.pick(&[200i64, 200, 200, 200, 201, 304, 404]) };
    match role {
        Role::Database => {
            let mut words = op.split(' ');
            let verb = words.next().unwrap_or("SELECT");
            let table = words.next().unwrap_or("orders");
            let system = if svc == "redis" { "redis" } else { "postgresql" };
            let attributes = vec![
                kv("db.system", s(system)),
                kv("db.name", s("shop")),
                kv("db.operation", s(verb)),
                kv("db.sql.table", s(table)),
                kv("db.statement", s(format!("{verb} {table} WHERE id = ?"))),
                kv("server.address", s(svc)),
                kv("server.port", i(if svc == "redis" { 6379 } else { 5432 })),
                kv("db.rows_affected", i(rng.below(20) as i64)),
                kv("thread.name", s(format!("pool-1-thread-{}", rng.below(16)))),
                kv("app.request.id", s(request_id)),
                kv(USER_KEY, s(user)),
            ];
            (op.to_owned(), SpanKind::Client, 1, attributes)
        }
        Role::Web | Role::Backend => {
            let kind = if root || rng.chance(0.7) { SpanKind::Server } else { SpanKind::Internal };
            let attributes = if kind == SpanKind::Server {
                vec![
                    kv("http.request.method", s(*rng.pick(&["GET", "GET", "GET", "POST", "PUT"]))),
                    kv("http.route", s(format!("/api/{svc}/{{id}}"))),
                    kv("http.response.status_code", i(status)),
                    kv("url.path", s(format!("/api/{svc}/{}", rng.below(10_000_000)))),
                    kv("url.scheme", s("http")),
                    kv("server.address", s(svc)),
                    kv("server.port", i(8080)),
                    kv("client.address", s(format!("10.0.{}.{}", rng.below(4), rng.below(250)))),
                    kv(
                        "user_agent.original",
                        s(*rng.pick(&["okhttp/4.12.0", "Go-http-client/1.1", "curl/8.5.0"])),
                    ),
                    kv("app.request.id", s(request_id)),
                    kv(USER_KEY, s(user)),
                ]
            } else {
                vec![
                    kv("code.function", s(op)),
                    kv("code.namespace", s(format!("shop.{svc}.Service"))),
                    kv("code.lineno", i(40 + rng.below(400) as i64)),
                    kv("thread.name", s(format!("worker-{}", rng.below(8)))),
                    kv(
                        "app.cache.hit",
                        Some(AnyValue { value: Some(any_value::Value::BoolValue(rng.chance(0.8))) }),
                    ),
                    kv("app.items", i(rng.below(12) as i64)),
                    kv("app.request.id", s(request_id)),
                    kv(USER_KEY, s(user)),
                ]
            };
            (op.to_owned(), kind, if kind == SpanKind::Server { 0 } else { 2 }, attributes)
        }
    }
}

/// Groups spans into `ResourceSpans`/`ScopeSpans` in first-seen order, the
/// way SDK batches look.
fn group(profile: Profile, items: Vec<Item>) -> ExportTraceServiceRequest {
    let mut out: Vec<(usize, ResourceSpans)> = Vec::new();
    for item in items {
        let pos = match out.iter().position(|(r, _)| *r == item.resource) {
            Some(p) => p,
            None => {
                out.push((
                    item.resource,
                    ResourceSpans {
                        resource: Some(resource(profile, item.resource)),
                        scope_spans: Vec::new(),
                        schema_url: "https://opentelemetry.io/schemas/1.24.0".to_owned(),
                    },
                ));
                out.len() - 1
            }
        };
        let Some((_, rs)) = out.get_mut(pos) else { continue };
        let scope_name = match profile {
            Profile::Testbed => "load-generator",
            Profile::Realistic => SCOPES[item.scope % SCOPES.len()],
        };
        let ss = match rs
            .scope_spans
            .iter()
            .position(|ss| ss.scope.as_ref().is_some_and(|s| s.name == scope_name))
        {
            Some(p) => &mut rs.scope_spans[p],
            None => {
                rs.scope_spans.push(ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: scope_name.to_owned(),
                        version: "2.1.0".to_owned(),
                        ..InstrumentationScope::default()
                    }),
                    spans: Vec::new(),
                    schema_url: String::new(),
                });
                let last = rs.scope_spans.len() - 1;
                &mut rs.scope_spans[last]
            }
        };
        ss.spans.push(item.span);
    }
    ExportTraceServiceRequest { resource_spans: out.into_iter().map(|(_, rs)| rs).collect() }
}

fn resource(profile: Profile, index: usize) -> Resource {
    let attributes = match profile {
        Profile::Testbed => vec![kv("service.name", s("load-generator"))],
        Profile::Realistic => {
            let service = SERVICES[(index / PODS) % SERVICES.len()].0;
            let pod = index % PODS;
            vec![
                kv("service.name", s(service)),
                kv("service.version", s("1.42.0")),
                kv("service.namespace", s("shop")),
                kv("deployment.environment", s("production")),
                kv("host.name", s(format!("node-{}", (service.len() + pod) % 5))),
                kv("k8s.pod.name", s(format!("{service}-7d9f8b6c5-{pod:05}"))),
                kv("telemetry.sdk.name", s("opentelemetry")),
                kv("telemetry.sdk.language", s("java")),
                kv("telemetry.sdk.version", s("1.38.0")),
            ]
        }
    };
    Resource { attributes, dropped_attributes_count: 0, entity_refs: Vec::new() }
}
