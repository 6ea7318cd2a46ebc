use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sightline_model::{
    Batch, DependencyLink, KeyValue, ServiceGraphReader, Span, SpanKind, Status, StatusCode, Tenant,
    TracesConsumer,
};

use super::{Config, ServiceGraph, ServiceGraphProcessor};
use crate::processor::spanmetrics::tests::{FixedClock, Sink, T0, openmetrics, resource, samples, span};

fn setup(config: Config) -> (Arc<ServiceGraph>, Registry, FixedClock, Arc<Sink>, ServiceGraphProcessor) {
    let clock = FixedClock::at(T0);
    let core = Arc::new(ServiceGraph::with_clock(config, clock.clock()));
    let mut registry = Registry::default();
    core.register(&mut registry);
    let sink = Arc::new(Sink::default());
    let p = ServiceGraphProcessor::new("servicegraph", Arc::clone(&core), sink.clone());
    (core, registry, clock, sink, p)
}

/// A client span of `from` (id `id`, `client_ms` long) and the server span
/// of `to` it called, in trace `trace`.
fn pair(from: &str, to: &str, trace: u64, id: u64, client_ms: u64, server_ms: u64) -> (Span, Span) {
    pair_of(from, to, trace, id, client_ms, server_ms, SpanKind::Client, SpanKind::Server)
}

#[allow(clippy::too_many_arguments)]
fn pair_of(
    from: &str,
    to: &str,
    trace: u64,
    id: u64,
    client_ms: u64,
    server_ms: u64,
    out: SpanKind,
    inbound: SpanKind,
) -> (Span, Span) {
    let client = span(&resource(from, vec![]), "call", out, client_ms, trace, id);
    let mut server = span(&resource(to, vec![]), "handle", inbound, server_ms, trace, id + 1000);
    server.parent_span_id = Some(client.span_id);
    (client, server)
}

fn failed(mut s: Span) -> Span {
    s.status = Status { code: StatusCode::Error, message: String::new() };
    s
}

fn edge(client: &str, server: &str, connection_type: &str) -> String {
    format!("client=\"{client}\",server=\"{server}\",connection_type=\"{connection_type}\"")
}

fn value(registry: &Registry, metric: &str, labels: &str) -> Option<f64> {
    samples(&openmetrics(registry)).get(&format!("{metric}{{{labels}}}")).copied()
}

#[tokio::test]
async fn client_then_server_in_separate_batches_pair_into_one_request() {
    let (core, registry, _, sink, p) = setup(Config::default());
    let (client, server) = pair("shop", "cart", 1, 1, 30, 20);
    let batch = Batch::from_spans(vec![client]);
    let bytes = batch.otlp_bytes().clone();
    p.consume_traces(batch).await.unwrap();
    assert_eq!(core.pending(), 1);
    assert_eq!(value(&registry, "traces_service_graph_request_total", &edge("shop", "cart", "")), None);
    p.consume_traces(Batch::from_spans(vec![server])).await.unwrap();
    assert_eq!(core.pending(), 0);
    // Pass-through: the same bytes reach the next stage.
    assert_eq!(sink.batches.lock()[0].otlp_bytes(), &bytes);

    let e = edge("shop", "cart", "");
    assert_eq!(value(&registry, "traces_service_graph_request_total", &e), Some(1.0));
    assert_eq!(value(&registry, "traces_service_graph_request_failed_total", &e), None);
    assert_eq!(value(&registry, "traces_service_graph_request_client_seconds_count", &e), Some(1.0));
    assert_eq!(value(&registry, "traces_service_graph_request_client_seconds_sum", &e), Some(0.03));
    assert_eq!(value(&registry, "traces_service_graph_request_server_seconds_sum", &e), Some(0.02));
    // Collector default buckets, in seconds: 20 ms is in le=0.05, not 0.01.
    let text = openmetrics(&registry);
    let s = samples(&text);
    assert_eq!(s[&format!("traces_service_graph_request_server_seconds_bucket{{le=\"0.01\",{e}}}")], 0.0);
    assert_eq!(s[&format!("traces_service_graph_request_server_seconds_bucket{{le=\"0.05\",{e}}}")], 1.0);
}

#[tokio::test]
async fn server_first_pairs_too_and_failures_count() {
    let (core, registry, _, _, p) = setup(Config::default());
    let (c1, s1) = pair("shop", "cart", 1, 1, 30, 20);
    let (c2, s2) = pair("shop", "cart", 2, 2, 30, 20);
    let (c3, s3) = pair("shop", "cart", 3, 3, 30, 20);
    // Server halves first, in one batch; a failed server and a failed client.
    p.consume_traces(Batch::from_spans(vec![s1, failed(s2), s3])).await.unwrap();
    assert_eq!(core.pending(), 3);
    p.consume_traces(Batch::from_spans(vec![c1, c2, failed(c3)])).await.unwrap();
    assert_eq!(core.pending(), 0);
    let e = edge("shop", "cart", "");
    assert_eq!(value(&registry, "traces_service_graph_request_total", &e), Some(3.0));
    assert_eq!(value(&registry, "traces_service_graph_request_failed_total", &e), Some(2.0));
}

#[tokio::test]
async fn producer_and_consumer_pair_as_a_messaging_system() {
    let (_, registry, _, _, p) = setup(Config::default());
    let (producer, consumer) =
        pair_of("orders", "worker", 1, 1, 2, 50, SpanKind::Producer, SpanKind::Consumer);
    p.consume_traces(Batch::from_spans(vec![consumer, producer])).await.unwrap();
    let e = edge("orders", "worker", "messaging_system");
    assert_eq!(value(&registry, "traces_service_graph_request_total", &e), Some(1.0));
    assert_eq!(value(&registry, "traces_service_graph_request_server_seconds_sum", &e), Some(0.05));
}

#[tokio::test]
async fn a_client_span_naming_a_database_is_a_request_on_its_own() {
    let (core, registry, _, _, p) = setup(Config::default());
    let mut query = span(&resource("orders", vec![]), "SELECT", SpanKind::Client, 4, 1, 1);
    query.attributes = vec![KeyValue::new("db.system", "postgresql"), KeyValue::new("db.name", "orders-db")];
    p.consume_traces(Batch::from_spans(vec![query])).await.unwrap();
    assert_eq!(core.pending(), 0);
    let e = edge("orders", "postgresql/orders-db", "database");
    assert_eq!(value(&registry, "traces_service_graph_request_total", &e), Some(1.0));
    assert_eq!(value(&registry, "traces_service_graph_request_server_seconds_sum", &e), Some(0.004));
}

/// Issue 15: in the demo, Redis appeared as a node called `0` (its db
/// index) and SQLite as the database file's path.
#[tokio::test]
async fn databases_are_named_by_their_system_never_an_index_or_a_path() {
    let (core, registry, _, _, p) = setup(Config::default());
    let client = |id, attrs: Vec<KeyValue>| {
        let mut s = span(&resource("worker", vec![]), "db", SpanKind::Client, 1, 1, id);
        s.attributes = attrs;
        s
    };
    let redis = client(1, vec![KeyValue::new("db.system.name", "redis"), KeyValue::new("db.namespace", "0")]);
    let sqlite = client(
        2,
        vec![
            KeyValue::new("db.system", "sqlite"),
            KeyValue::new("db.namespace", "/tmp/sightline-demo.x/worker.db"),
        ],
    );
    let named = client(3, vec![KeyValue::new("peer.service", "cache"), KeyValue::new("db.system", "redis")]);
    p.consume_traces(Batch::from_spans(vec![redis, sqlite, named])).await.unwrap();
    assert_eq!(core.pending(), 0);
    for server in ["redis", "sqlite", "cache"] {
        let e = edge("worker", server, "database");
        assert_eq!(value(&registry, "traces_service_graph_request_total", &e), Some(1.0), "{server}");
    }
    let graph = core.edges(&Tenant::default(), T0, 60_000);
    let nodes: Vec<&str> = graph.iter().map(|l| l.child.as_str()).collect();
    assert_eq!(nodes, ["cache", "redis", "sqlite"]);
}

#[tokio::test]
async fn an_unanswered_producer_becomes_a_request_to_its_broker() {
    let (core, registry, clock, _, p) = setup(Config { ttl: Duration::from_secs(10), ..Config::default() });
    let mut publish = span(&resource("orders", vec![]), "publish", SpanKind::Producer, 2, 1, 1);
    publish.attributes = vec![KeyValue::new("messaging.system", "nats")];
    let (lonely, _) = pair("shop", "cart", 2, 2, 30, 20);
    p.consume_traces(Batch::from_spans(vec![publish, lonely])).await.unwrap();
    assert_eq!(core.pending(), 2);
    clock.set(T0 + 10_000);
    core.expire();
    assert_eq!(core.pending(), 0);
    let e = edge("orders", "nats", "virtual_node");
    assert_eq!(value(&registry, "traces_service_graph_request_total", &e), Some(1.0));
    let unpaired = "traces_service_graph_unpaired_spans_total";
    assert_eq!(value(&registry, unpaired, &edge("orders", "", "messaging_system")), None);
    // A client that names nothing stays unpaired.
    assert_eq!(value(&registry, unpaired, &edge("shop", "", "")), Some(1.0));
}

#[tokio::test]
async fn halves_that_wait_longer_than_the_ttl_expire_as_unpaired() {
    let (core, registry, clock, _, p) = setup(Config { ttl: Duration::from_secs(10), ..Config::default() });
    let (client, server) = pair("shop", "cart", 1, 1, 30, 20);
    p.consume_traces(Batch::from_spans(vec![client])).await.unwrap();
    clock.set(T0 + 9_999);
    core.expire();
    assert_eq!(core.pending(), 1, "still within the TTL");
    clock.set(T0 + 10_000);
    core.expire();
    assert_eq!(core.pending(), 0);
    assert_eq!(
        value(&registry, "traces_service_graph_unpaired_spans_total", &edge("shop", "", "")),
        Some(1.0)
    );
    // The late server half waits alone and expires in turn.
    p.consume_traces(Batch::from_spans(vec![server])).await.unwrap();
    assert_eq!(core.pending(), 1);
    clock.set(T0 + 25_000);
    // Expiry also runs with each batch.
    p.consume_traces(Batch::from_spans(vec![])).await.unwrap();
    assert_eq!(core.pending(), 0);
    assert_eq!(
        value(&registry, "traces_service_graph_unpaired_spans_total", &edge("", "cart", "")),
        Some(1.0)
    );
    assert_eq!(value(&registry, "traces_service_graph_request_total", &edge("shop", "cart", "")), None);
}

#[tokio::test]
async fn a_full_store_drops_new_halves_and_counts_them() {
    let (core, registry, _, _, p) = setup(Config { max_items: 1, ..Config::default() });
    let (c1, s1) = pair("shop", "cart", 1, 1, 30, 20);
    let (c2, _) = pair("shop", "cart", 2, 2, 30, 20);
    p.consume_traces(Batch::from_spans(vec![c1, c2])).await.unwrap();
    assert_eq!(core.pending(), 1);
    assert_eq!(
        value(&registry, "traces_service_graph_dropped_spans_total", &edge("shop", "", "")),
        Some(1.0)
    );
    // A half of a waiting edge still completes it.
    p.consume_traces(Batch::from_spans(vec![s1])).await.unwrap();
    assert_eq!(value(&registry, "traces_service_graph_request_total", &edge("shop", "cart", "")), Some(1.0));
}

#[tokio::test]
async fn refused_batches_are_not_paired_and_roots_and_internals_are_ignored() {
    let (core, registry, _, sink, p) = setup(Config::default());
    let (client, server) = pair("shop", "cart", 1, 1, 30, 20);
    *sink.refuse.lock() = true;
    assert!(p.consume_traces(Batch::from_spans(vec![client.clone(), server.clone()])).await.is_err());
    assert_eq!(core.pending(), 0);
    *sink.refuse.lock() = false;
    let root = span(&resource("shop", vec![]), "GET /", SpanKind::Server, 1, 5, 5);
    let internal = span(&resource("shop", vec![]), "work", SpanKind::Internal, 1, 5, 6);
    p.consume_traces(Batch::from_spans(vec![root, internal])).await.unwrap();
    assert_eq!(core.pending(), 0);
    p.consume_traces(Batch::from_spans(vec![client, server])).await.unwrap();
    assert_eq!(value(&registry, "traces_service_graph_request_total", &edge("shop", "cart", "")), Some(1.0));
}

#[tokio::test]
async fn dimensions_label_each_side() {
    let config = Config { dimensions: vec!["http.method".into(), "region".into()], ..Config::default() };
    let (_, registry, _, _, p) = setup(config);
    let (mut client, mut server) = pair("shop", "cart", 1, 1, 30, 20);
    client.attributes = vec![KeyValue::new("http.method", "POST")];
    server.resource = resource("cart", vec![KeyValue::new("region", "eu")]);
    p.consume_traces(Batch::from_spans(vec![client, server])).await.unwrap();
    let labels = format!("{},client_http_method=\"POST\",server_region=\"eu\"", edge("shop", "cart", ""));
    assert_eq!(value(&registry, "traces_service_graph_request_total", &labels), Some(1.0));
}

#[tokio::test]
async fn the_graph_counts_requests_per_edge_over_a_window() {
    let (core, _, clock, _, p) = setup(Config::default());
    for i in 0..3 {
        let (c, s) = pair("shop", "cart", i, i, 30, 20);
        p.consume_traces(Batch::from_spans(vec![c, s])).await.unwrap();
    }
    clock.set(T0 + 5 * 60_000);
    let (c, s) = pair("cart", "db", 9, 9, 3, 2);
    p.consume_traces(Batch::from_spans(vec![c, s])).await.unwrap();
    let link = |parent: &str, child: &str, call_count| DependencyLink {
        parent: parent.into(),
        child: child.into(),
        call_count,
    };
    assert_eq!(
        core.edges(&Tenant::default(), T0 + 5 * 60_000, 10 * 60_000),
        vec![link("cart", "db", 1), link("shop", "cart", 3)]
    );
    assert_eq!(core.edges(&Tenant::default(), T0 + 5 * 60_000, 60_000), vec![link("cart", "db", 1)]);
    assert_eq!(core.edges(&Tenant::default(), T0 - 60_000, 60_000), vec![]);
    // The reader contract takes ns.
    let ns = |ms: i64| u64::try_from(ms).unwrap() * 1_000_000;
    assert_eq!(
        core.dependencies(&Tenant::default(), ns(T0 + 60_000), ns(120_000)).await.unwrap(),
        vec![link("shop", "cart", 3)]
    );
    // Beyond the window, edges are forgotten.
    let (core, _, clock, _, p) =
        setup(Config { dependencies_window: Duration::from_secs(600), ..Config::default() });
    let (c, s) = pair("shop", "cart", 1, 1, 30, 20);
    p.consume_traces(Batch::from_spans(vec![c, s])).await.unwrap();
    clock.set(T0 + 20 * 60_000);
    let (c, s) = pair("a", "b", 2, 2, 30, 20);
    p.consume_traces(Batch::from_spans(vec![c, s])).await.unwrap();
    assert_eq!(core.edges(&Tenant::default(), T0 + 20 * 60_000, 24 * 3_600_000), vec![link("a", "b", 1)]);
}

/// Throughput of span metrics and the service graph on the ingest path;
/// not a test (nothing asserted on time). Run:
/// `cargo test --release -p sightline-pipeline --lib -- --ignored --nocapture metrics_processors_throughput`
#[tokio::test]
#[ignore = "benchmark: prints ns/span"]
async fn metrics_processors_throughput() {
    use crate::processor::spanmetrics::{SpanMetrics, SpanMetricsProcessor};
    // 1000-span batches: 20 services × 25 operations, client/server pairs.
    let batches = || -> Vec<Batch> {
        (0..200u64)
            .map(|b| {
                let spans = (0..500u64)
                    .flat_map(|i| {
                        let n = b * 500 + i;
                        let (mut c, mut s) =
                            pair(&format!("svc{}", n % 20), &format!("svc{}", (n + 1) % 20), n, n, 5, 3);
                        c.name = format!("op{}", n % 25);
                        s.name = format!("op{}", n % 25);
                        [c, s]
                    })
                    .collect();
                Batch::from_spans(spans)
            })
            .collect()
    };
    let run = async |name: &str, stage: Arc<dyn TracesConsumer>| {
        let batches = batches();
        let spans: usize = batches.iter().map(Batch::len).sum();
        let start = std::time::Instant::now();
        for b in batches {
            stage.consume_traces(b).await.unwrap();
        }
        let ns = start.elapsed().as_nanos() as f64 / spans as f64;
        println!("{name}: {ns:.0} ns/span ({spans} spans, batches of 1000)");
    };
    let span_metrics = || {
        let sm = Arc::new(SpanMetrics::new(crate::processor::spanmetrics::Config::default()));
        sm.register(&mut Registry::default());
        sm
    };
    let graph = || Arc::new(ServiceGraph::new(Config::default()));
    run("forward only (batch drop)", Arc::new(NullSink)).await;
    run("spanmetrics", Arc::new(SpanMetricsProcessor::new("sm", span_metrics(), Arc::new(NullSink)))).await;
    run("servicegraph", Arc::new(ServiceGraphProcessor::new("sg", graph(), Arc::new(NullSink)))).await;
    let both = SpanMetricsProcessor::new(
        "sm",
        span_metrics(),
        Arc::new(ServiceGraphProcessor::new("sg", graph(), Arc::new(NullSink))),
    );
    run("spanmetrics + servicegraph", Arc::new(both)).await;
}

struct NullSink;

#[async_trait::async_trait]
impl TracesConsumer for NullSink {
    async fn consume_traces(&self, _: Batch) -> Result<(), sightline_model::ConsumeError> {
        Ok(())
    }
}

/// Halves of different tenants never pair (even with the same ids), and
/// each tenant's dependencies list only its own edges.
#[tokio::test]
async fn tenants_pair_and_list_only_their_own_requests() {
    let (core, registry, _, _, p) = setup(Config::default());
    let acme = Tenant::new("acme").unwrap();
    let (client, server) = pair("shop", "cart", 1, 1, 30, 20);
    // The default tenant's client and acme's server have matching ids.
    p.consume_traces(Batch::from_spans(vec![client.clone()])).await.unwrap();
    p.consume_traces(Batch::from_spans(vec![server.clone()]).with_tenant(acme.clone())).await.unwrap();
    assert_eq!(core.pending(), 2, "no cross-tenant pairing");
    p.consume_traces(Batch::from_spans(vec![client]).with_tenant(acme.clone())).await.unwrap();
    assert_eq!(core.pending(), 1);

    let link = DependencyLink { parent: "shop".into(), child: "cart".into(), call_count: 1 };
    let ns = |ms: i64| u64::try_from(ms).unwrap() * 1_000_000;
    assert_eq!(core.dependencies(&acme, ns(T0), ns(60_000)).await.unwrap(), vec![link]);
    assert_eq!(core.dependencies(&Tenant::default(), ns(T0), ns(60_000)).await.unwrap(), vec![]);
    let labelled = format!("tenant=\"acme\",{}", edge("shop", "cart", ""));
    assert_eq!(value(&registry, "traces_service_graph_request_total", &labelled), Some(1.0));
    assert_eq!(value(&registry, "traces_service_graph_request_total", &edge("shop", "cart", "")), None);
}
