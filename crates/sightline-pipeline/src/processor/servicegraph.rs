//! Service graph: pairs the two halves of each request between services
//! and counts the edges, as the Collector's `servicegraph` connector (after
//! Tempo's service-graph processor) does.
//!
//! A CLIENT span and the SERVER span whose parent it is form one request;
//! so do a PRODUCER span and its CONSUMER child (`connection_type =
//! "messaging_system"`). A CLIENT span with a database attribute
//! (`db.system.name`, `db.system`, or one of `database_name_attributes`:
//! `db.name`, `db.namespace`) is a request to that database on its own
//! (`connection_type = "database"`). Halves arrive in any order and in
//! different batches, so an unpaired half waits in a store keyed by
//! (trace id, client span id) for at most `store.ttl`; the store holds at
//! most `store.max_items` halves — beyond, new halves are dropped and
//! counted. A CLIENT or PRODUCER half that times out but says what it
//! called (`peer.service`, a database or messaging system) becomes a request
//! to that virtual node (`connection_type = "virtual_node"`, as Tempo's
//! processor does: the broker or external API sends no spans); any other
//! half that times out is counted as unpaired.
//!
//! Databases and virtual nodes are named by
//! [`sightline_model::virtual_node_name`] (`peer.service`, else the system,
//! with the database name only where it says something), never by a bare
//! Redis index or an SQLite file path.
//!
//! Metrics, with the Collector's names and labels (`client`, `server`,
//! `connection_type`, plus `client_<dim>` / `server_<dim>` for configured
//! dimensions): `traces_service_graph_request_total`,
//! `traces_service_graph_request_failed_total` (either side has status
//! ERROR), `traces_service_graph_request_server_seconds` and
//! `traces_service_graph_request_client_seconds` (histograms of each
//! side's span duration), `traces_service_graph_unpaired_spans_total` and
//! `traces_service_graph_dropped_spans_total`.
//!
//! It also keeps per-minute request counts per (client, server) edge for
//! `dependencies_window` (24 h by default; 16 bytes per edge and minute
//! with traffic, at most [`MAX_GRAPH_EDGES`] edges) and answers
//! [`ServiceGraphReader`] with them.
//!
//! **Tenants.** Halves pair only within one tenant (the batch's), edges
//! and graph minutes are kept per tenant, and [`ServiceGraphReader`]
//! answers with the asking tenant's edges only; on `/metrics` the series of
//! tenants other than the default one carry a `tenant` label.
//!
//! Pass-through like span metrics: batches go downstream unchanged and are
//! paired only once downstream accepted them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use sightline_model::{
    Batch, ConsumeError, DependencyLink, QueryError, Resource, ServiceGraphReader, Span, SpanId, SpanKind,
    StatusCode, Tenant, TraceId, TracesConsumer, Value, is_database_call, virtual_node_name,
};
use tokio::task::JoinHandle;

use super::spanmetrics::prometheus_name;
use super::{Clock, FastMap, Next, system_clock};
use crate::Component;

/// The Collector's default buckets (seconds), as durations in ms.
pub const DEFAULT_BUCKETS_MS: &[u64] =
    &[2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000];

/// At most this many (client, server) edges are kept for
/// [`ServiceGraphReader`]; metrics count every edge regardless.
pub const MAX_GRAPH_EDGES: usize = 10_000;

const MINUTE_MS: i64 = 60_000;

/// Settings of a service graph processor.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Histogram bucket upper bounds.
    pub buckets: Vec<Duration>,
    /// Span or resource attributes added as `client_<name>` and
    /// `server_<name>` labels.
    pub dimensions: Vec<String>,
    /// Attributes marking a CLIENT span as a database call, besides
    /// `db.system.name` and `db.system` (the node is named by
    /// [`sightline_model::virtual_node_name`], not by these values).
    pub database_name_attributes: Vec<String>,
    /// Most unpaired halves waiting at once.
    pub max_items: usize,
    /// How long a half waits for its pair.
    pub ttl: Duration,
    /// How long per-minute edge counts are kept for the dependencies view.
    pub dependencies_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            buckets: DEFAULT_BUCKETS_MS.iter().map(|ms| Duration::from_millis(*ms)).collect(),
            dimensions: Vec::new(),
            database_name_attributes: vec!["db.name".into(), "db.namespace".into()],
            // Tempo's defaults: SDK batch exporters flush every 5 s, so the
            // Collector's 2 s loses pairs whose halves come from different
            // services.
            max_items: 10_000,
            ttl: Duration::from_secs(10),
            dependencies_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// How the two sides talk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConnectionType {
    /// Client/server (label value `""`).
    Unset,
    /// Producer/consumer.
    MessagingSystem,
    /// A client span naming a database.
    Database,
    /// A client or producer span whose other side never sent a span, named
    /// by what the span says it called.
    VirtualNode,
}

impl ConnectionType {
    /// The `connection_type` label value.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionType::Unset => "",
            ConnectionType::MessagingSystem => "messaging_system",
            ConnectionType::Database => "database",
            ConnectionType::VirtualNode => "virtual_node",
        }
    }
}

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// The service of one side: a span's resource, or a database name.
#[derive(Debug, Clone)]
enum Service {
    Resource(Arc<Resource>),
    Named(String),
}

impl Service {
    fn as_str(&self) -> &str {
        match self {
            Service::Resource(r) => r.service_name(),
            Service::Named(n) => n,
        }
    }
}

/// One side of a request.
#[derive(Debug, Clone)]
struct Side {
    service: Service,
    seconds: f64,
    failed: bool,
    dims: Labels,
}

#[derive(Debug)]
struct Edge {
    tenant: Tenant,
    connection_type: ConnectionType,
    client: Option<Side>,
    server: Option<Side>,
    /// What the client side says it called, for a virtual node on expiry.
    peer: Option<String>,
    expires_at_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Client,
    Server,
}

/// A half extracted from a span, waiting for downstream to accept it.
pub(crate) struct Half {
    key: PairKey,
    role: Role,
    connection_type: ConnectionType,
    resource: Arc<Resource>,
    seconds: f64,
    failed: bool,
    /// The database a CLIENT span calls: its request is complete alone.
    database: Option<String>,
    /// What a CLIENT or PRODUCER span says it called.
    peer: Option<String>,
    dims: Labels,
}

/// (tenant, trace id, client span id): halves of different tenants never
/// pair, even with equal ids.
type PairKey = (Tenant, TraceId, SpanId);

#[derive(Default)]
struct Store {
    edges: FastMap<PairKey, Edge>,
    /// Insertion order with expiry; entries of completed edges are stale.
    expiries: VecDeque<(i64, PairKey)>,
}

/// (minute index, requests), oldest first.
type Minutes = Arc<Mutex<VecDeque<(i64, u64)>>>;

#[derive(Default)]
struct Graph {
    /// Per (tenant, client, server).
    edges: FastMap<(Tenant, String, String), Minutes>,
    pruned_at: i64,
}

/// The metrics of one label set, resolved once.
struct EdgeSeries {
    labels: Labels,
    total: Counter,
    server: Histogram,
    client: Histogram,
    /// `None` once [`MAX_GRAPH_EDGES`] edges are kept.
    minutes: Option<Minutes>,
}

/// The pairing store, metrics and graph behind one or more processors.
pub struct ServiceGraph {
    config: Config,
    request_total: Family<Labels, Counter>,
    request_failed_total: Family<Labels, Counter>,
    request_server_seconds: Family<Labels, Histogram, Buckets>,
    request_client_seconds: Family<Labels, Histogram, Buckets>,
    unpaired_spans_total: Family<Labels, Counter>,
    dropped_spans_total: Family<Labels, Counter>,
    /// By client, server, connection type and dimensions joined.
    series: Mutex<FastMap<String, Arc<EdgeSeries>>>,
    store: Mutex<Store>,
    graph: Mutex<Graph>,
    clock: Clock,
}

impl std::fmt::Debug for ServiceGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceGraph").field("config", &self.config).finish_non_exhaustive()
    }
}

fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

fn attribute_text(span: &Span, key: &str) -> Option<String> {
    let kv = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .or_else(|| span.resource.attributes().iter().find(|kv| kv.key == key))?;
    match &kv.value {
        Value::Empty => None,
        v => Some(v.to_text()),
    }
}

impl ServiceGraph {
    /// Creates the store with the system clock. Call
    /// [`ServiceGraph::register`] to expose its metrics.
    pub fn new(config: Config) -> ServiceGraph {
        ServiceGraph::with_clock(config, system_clock())
    }

    /// Creates the store reading time from `clock`.
    pub fn with_clock(config: Config, clock: Clock) -> ServiceGraph {
        let bounds: Arc<[f64]> = config.buckets.iter().map(Duration::as_secs_f64).collect();
        ServiceGraph {
            config,
            request_total: Family::default(),
            request_failed_total: Family::default(),
            request_server_seconds: Family::new_with_constructor(Buckets(Arc::clone(&bounds))),
            request_client_seconds: Family::new_with_constructor(Buckets(bounds)),
            unpaired_spans_total: Family::default(),
            dropped_spans_total: Family::default(),
            series: Mutex::new(FastMap::default()),
            store: Mutex::new(Store::default()),
            graph: Mutex::new(Graph::default()),
            clock,
        }
    }

    /// Registers the `traces_service_graph_*` metrics.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("traces_service_graph");
        r.register("request", "Requests between two services", self.request_total.clone());
        r.register(
            "request_failed",
            "Requests between two services where either side failed",
            self.request_failed_total.clone(),
        );
        r.register_with_unit(
            "request_server",
            "Request duration as seen from the server",
            Unit::Seconds,
            self.request_server_seconds.clone(),
        );
        r.register_with_unit(
            "request_client",
            "Request duration as seen from the client",
            Unit::Seconds,
            self.request_client_seconds.clone(),
        );
        r.register(
            "unpaired_spans",
            "Client or server spans whose other half did not arrive within the store TTL",
            self.unpaired_spans_total.clone(),
        );
        r.register(
            "dropped_spans",
            "Client or server spans dropped because the pairing store was full",
            self.dropped_spans_total.clone(),
        );
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Extracts the halves of requests from `tenant`'s `spans`.
    pub(crate) fn extract(&self, tenant: &Tenant, spans: &[Span]) -> Vec<Half> {
        let mut out = Vec::new();
        for span in spans {
            let (role, connection_type, key) = match span.kind {
                SpanKind::Client => (Role::Client, ConnectionType::Unset, span.span_id),
                SpanKind::Producer => (Role::Client, ConnectionType::MessagingSystem, span.span_id),
                // A server span without a parent was called from outside
                // the traced system: it can never pair.
                SpanKind::Server => match span.parent_span_id {
                    Some(parent) => (Role::Server, ConnectionType::Unset, parent),
                    None => continue,
                },
                SpanKind::Consumer => match span.parent_span_id {
                    Some(parent) => (Role::Server, ConnectionType::MessagingSystem, parent),
                    None => continue,
                },
                SpanKind::Internal | SpanKind::Unspecified => continue,
            };
            let peer = if role == Role::Client { virtual_node_name(span) } else { None };
            let database = (role == Role::Client
                && connection_type == ConnectionType::Unset
                && (is_database_call(span)
                    || self
                        .config
                        .database_name_attributes
                        .iter()
                        .any(|k| attribute_text(span, k).is_some())))
            .then(|| peer.clone())
            .flatten();
            let prefix = if role == Role::Client { "client_" } else { "server_" };
            let dims = self
                .config
                .dimensions
                .iter()
                .filter_map(|d| {
                    attribute_text(span, d).map(|v| (format!("{prefix}{}", prometheus_name(d)), v))
                })
                .collect();
            out.push(Half {
                key: (tenant.clone(), span.trace_id, key),
                role,
                connection_type,
                resource: Arc::clone(&span.resource),
                seconds: span.duration_nanos() as f64 / 1e9,
                failed: span.status.code == StatusCode::Error,
                database,
                peer,
                dims,
            });
        }
        out
    }

    /// Pairs halves (downstream accepted them), emitting completed edges,
    /// then expires halves that waited too long.
    pub(crate) fn record(&self, halves: Vec<Half>) {
        let now_ms = unix_millis((self.clock)());
        let mut completed = Vec::new();
        let mut dropped = Vec::new();
        {
            let mut store = self.store.lock();
            for half in halves {
                let side = Side {
                    service: Service::Resource(half.resource),
                    seconds: half.seconds,
                    failed: half.failed,
                    dims: half.dims,
                };
                if let Some(db) = half.database {
                    // A database call has no server span: it is complete.
                    let server = Side {
                        service: Service::Named(db),
                        seconds: side.seconds,
                        failed: false,
                        dims: Vec::new(),
                    };
                    completed.push((half.key.0, ConnectionType::Database, side, server));
                    continue;
                }
                let ttl_ms = i64::try_from(self.config.ttl.as_millis()).unwrap_or(i64::MAX);
                let is_new = !store.edges.contains_key(&half.key);
                if is_new && store.edges.len() >= self.config.max_items {
                    dropped.push((half.key.0, half.role, half.connection_type, side));
                    continue;
                }
                let edge = store.edges.entry(half.key.clone()).or_insert_with(|| Edge {
                    tenant: half.key.0.clone(),
                    connection_type: half.connection_type,
                    client: None,
                    server: None,
                    peer: None,
                    expires_at_ms: now_ms.saturating_add(ttl_ms),
                });
                edge.connection_type = half.connection_type;
                match half.role {
                    Role::Client => {
                        edge.client = Some(side);
                        edge.peer = half.peer;
                    }
                    Role::Server => edge.server = Some(side),
                }
                if is_new {
                    let expires = edge.expires_at_ms;
                    store.expiries.push_back((expires, half.key.clone()));
                }
                let done =
                    store.edges.get(&half.key).is_some_and(|e| e.client.is_some() && e.server.is_some());
                if done
                    && let Some(Edge { tenant, connection_type, client: Some(c), server: Some(s), .. }) =
                        store.edges.remove(&half.key)
                {
                    completed.push((tenant, connection_type, c, s));
                }
            }
        }
        for (tenant, role, connection_type, side) in dropped {
            let (client, server) = match role {
                Role::Client => (side.service.as_str(), ""),
                Role::Server => ("", side.service.as_str()),
            };
            self.dropped_spans_total
                .get_or_create(&edge_labels(&tenant, client, server, connection_type, &[]))
                .inc();
        }
        for (tenant, connection_type, client, server) in completed {
            self.complete(now_ms, &tenant, connection_type, &client, &server);
        }
        self.expire_at(now_ms);
    }

    fn complete(
        &self,
        now_ms: i64,
        tenant: &Tenant,
        connection_type: ConnectionType,
        client: &Side,
        server: &Side,
    ) {
        let series = self.edge_series(tenant, connection_type, client, server);
        series.total.inc();
        if client.failed || server.failed {
            self.request_failed_total.get_or_create(&series.labels).inc();
        }
        series.server.observe(server.seconds);
        series.client.observe(client.seconds);
        let minute = now_ms.div_euclid(MINUTE_MS);
        if let Some(minutes) = &series.minutes {
            let mut minutes = minutes.lock();
            match minutes.back_mut() {
                // A clock stepping back counts into the newest minute.
                Some((at, n)) if *at >= minute => *n += 1,
                _ => minutes.push_back((minute, 1)),
            }
        }
        self.prune_graph(minute);
    }

    /// The metrics of an edge's label set, created on first use.
    fn edge_series(
        &self,
        tenant: &Tenant,
        connection_type: ConnectionType,
        client: &Side,
        server: &Side,
    ) -> Arc<EdgeSeries> {
        let mut key = String::with_capacity(64);
        // Tenant names never contain NUL, so keys cannot collide.
        key.push_str(tenant.as_str());
        key.push('\0');
        key.push_str(client.service.as_str());
        key.push('\0');
        key.push_str(server.service.as_str());
        key.push('\0');
        key.push_str(connection_type.label());
        for (k, v) in client.dims.iter().chain(server.dims.iter()) {
            key.push('\0');
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
        let mut all = self.series.lock();
        if let Some(series) = all.get(key.as_str()) {
            return Arc::clone(series);
        }
        let dims: Labels = client.dims.iter().chain(server.dims.iter()).cloned().collect();
        let labels =
            edge_labels(tenant, client.service.as_str(), server.service.as_str(), connection_type, &dims);
        let minutes = {
            let mut graph = self.graph.lock();
            let edge =
                (tenant.clone(), client.service.as_str().to_owned(), server.service.as_str().to_owned());
            if graph.edges.len() < MAX_GRAPH_EDGES || graph.edges.contains_key(&edge) {
                Some(Arc::clone(graph.edges.entry(edge).or_default()))
            } else {
                None
            }
        };
        let series = Arc::new(EdgeSeries {
            total: self.request_total.get_or_create_owned(&labels),
            server: self.request_server_seconds.get_or_create_owned(&labels),
            client: self.request_client_seconds.get_or_create_owned(&labels),
            labels,
            minutes,
        });
        all.insert(key, Arc::clone(&series));
        series
    }

    /// Drops graph minutes older than the window, at most once a minute.
    fn prune_graph(&self, minute: i64) {
        let mut graph = self.graph.lock();
        if graph.pruned_at == minute {
            return;
        }
        graph.pruned_at = minute;
        let window = i64::try_from(self.config.dependencies_window.as_secs() / 60).unwrap_or(i64::MAX);
        let oldest = minute.saturating_sub(window);
        for minutes in graph.edges.values() {
            let mut minutes = minutes.lock();
            while minutes.front().is_some_and(|(at, _)| *at < oldest) {
                minutes.pop_front();
            }
        }
    }

    /// Expires halves whose TTL passed by the clock's now.
    pub fn expire(&self) {
        self.expire_at(unix_millis((self.clock)()));
    }

    fn expire_at(&self, now_ms: i64) {
        let mut expired = Vec::new();
        {
            let mut store = self.store.lock();
            while store.expiries.front().is_some_and(|(at, _)| *at <= now_ms) {
                let Some((at, key)) = store.expiries.pop_front() else { break };
                // Completed edges left stale entries; a key inserted again
                // after completing has a later expiry.
                if store.edges.get(&key).is_some_and(|e| e.expires_at_ms == at)
                    && let Some(edge) = store.edges.remove(&key)
                {
                    expired.push(edge);
                }
            }
        }
        for mut edge in expired {
            if let (Some(client), None, Some(peer)) = (&edge.client, &edge.server, edge.peer.take()) {
                // The called side sends no spans: a broker, an external API.
                let server = Side {
                    service: Service::Named(peer),
                    seconds: client.seconds,
                    failed: false,
                    dims: Vec::new(),
                };
                self.complete(now_ms, &edge.tenant, ConnectionType::VirtualNode, client, &server);
                continue;
            }
            let client = edge.client.as_ref().map_or("", |s| s.service.as_str());
            let server = edge.server.as_ref().map_or("", |s| s.service.as_str());
            self.unpaired_spans_total
                .get_or_create(&edge_labels(&edge.tenant, client, server, edge.connection_type, &[]))
                .inc();
        }
    }

    /// Halves waiting for their pair.
    pub fn pending(&self) -> usize {
        self.store.lock().edges.len()
    }

    /// Requests per (client, server) of `tenant` completed in the minutes
    /// starting in `[end - lookback, end]` (ms since the epoch), sorted.
    pub fn edges(&self, tenant: &Tenant, end_unix_millis: i64, lookback_millis: i64) -> Vec<DependencyLink> {
        let first = end_unix_millis.saturating_sub(lookback_millis).div_euclid(MINUTE_MS);
        let last = end_unix_millis.div_euclid(MINUTE_MS);
        let graph = self.graph.lock();
        let mut out: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for ((_, client, server), minutes) in graph.edges.iter().filter(|((t, _, _), _)| t == tenant) {
            let n: u64 =
                minutes.lock().iter().filter(|(at, _)| *at >= first && *at <= last).map(|(_, n)| n).sum();
            if n > 0 {
                *out.entry((client.as_str(), server.as_str())).or_default() += n;
            }
        }
        out.into_iter()
            .map(|((parent, child), call_count)| DependencyLink {
                parent: parent.to_owned(),
                child: child.to_owned(),
                call_count,
            })
            .collect()
    }
}

/// The labels of an edge's series; a tenant other than the default one
/// is a `tenant` label first.
fn edge_labels(
    tenant: &Tenant,
    client: &str,
    server: &str,
    connection_type: ConnectionType,
    dims: &[(String, String)],
) -> Labels {
    let mut labels = Vec::with_capacity(4 + dims.len());
    if !tenant.is_default() {
        labels.push(("tenant".to_owned(), tenant.to_string()));
    }
    labels.extend([
        ("client".to_owned(), client.to_owned()),
        ("server".to_owned(), server.to_owned()),
        ("connection_type".to_owned(), connection_type.label().to_owned()),
    ]);
    labels.extend(dims.iter().cloned());
    labels
}

#[async_trait]
impl ServiceGraphReader for ServiceGraph {
    async fn dependencies(
        &self,
        tenant: &Tenant,
        end_unix_nanos: u64,
        lookback_nanos: u64,
    ) -> Result<Vec<DependencyLink>, QueryError> {
        let ms = |ns: u64| i64::try_from(ns / 1_000_000).unwrap_or(i64::MAX);
        Ok(self.edges(tenant, ms(end_unix_nanos), ms(lookback_nanos)))
    }
}

/// The processor: pairs request halves, forwards every batch unchanged.
pub struct ServiceGraphProcessor {
    id: String,
    core: Arc<ServiceGraph>,
    next: Next,
    expiry: Option<JoinHandle<()>>,
}

impl ServiceGraphProcessor {
    /// Wraps `next`, pairing into `core`. Inside a tokio runtime it also
    /// expires waiting halves every second, so unpaired spans are counted
    /// even when no new batch arrives.
    pub fn new(id: &str, core: Arc<ServiceGraph>, next: Next) -> ServiceGraphProcessor {
        let expiry = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let core = Arc::clone(&core);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    core.expire();
                }
            })
        });
        ServiceGraphProcessor { id: id.to_owned(), core, next, expiry }
    }
}

impl Drop for ServiceGraphProcessor {
    fn drop(&mut self) {
        if let Some(task) = &self.expiry {
            task.abort();
        }
    }
}

#[async_trait]
impl TracesConsumer for ServiceGraphProcessor {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        let halves = self.core.extract(batch.tenant(), batch.spans());
        self.next.consume_traces(batch).await?;
        self.core.record(halves);
        Ok(())
    }
}

#[async_trait]
impl Component for ServiceGraphProcessor {
    fn id(&self) -> &str {
        &self.id
    }

    async fn shutdown(&self) {
        if let Some(task) = &self.expiry {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
