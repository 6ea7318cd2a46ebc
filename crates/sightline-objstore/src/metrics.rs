//! The object store's metrics, registered under `sightline_objstore_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a request count.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct Request {
    /// `get`, `get_range`, `head`, `poll`, `put`, `upload`, `delete`, `list`.
    pub(crate) op: &'static str,
    /// `ok`, `not_modified`, `not_found`, `conflict`, `error`; for the
    /// requests a query waits on (`get_range`, `head`) also `timeout` (no
    /// answer within the deadline) and `skipped` (not asked: the store was
    /// failing).
    pub(crate) outcome: &'static str,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) requests: Family<Request, Counter>,
    pub(crate) downloaded_bytes: Counter,
    pub(crate) uploaded_bytes: Counter,
    pub(crate) available: Gauge,
    pub(crate) cache_hits: Counter,
    pub(crate) cache_misses: Counter,
    pub(crate) cache_bytes: Gauge,
    pub(crate) lease_held: Gauge,
    pub(crate) nodes: Gauge,
    pub(crate) deleted_blocks: Counter,
    pub(crate) peer_requests: Family<crate::peers::PeerRequest, Counter>,
    pub(crate) wal_replayed_spans: Counter,
    pub(crate) wal_copies_bad: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("sightline_objstore");
        r.register(
            "requests",
            "Requests to the object store, by operation and outcome (the cost driver: S3 bills per request)",
            m.requests.clone(),
        );
        r.register("downloaded_bytes", "Bytes read from the object store", m.downloaded_bytes.clone());
        r.register("uploaded_bytes", "Bytes written to the object store", m.uploaded_bytes.clone());
        r.register(
            "available",
            "1 while the object store answers this node's requests, 0 from a failed request (timeout, \
             refused, 5xx) until one succeeds",
            m.available.clone(),
        );
        r.register("cache_hits", "Block reads served by the local block cache", m.cache_hits.clone());
        r.register(
            "cache_misses",
            "Block reads that fetched from the object store (one ranged GET each)",
            m.cache_misses.clone(),
        );
        r.register("cache_bytes", "Bytes held by the local block cache", m.cache_bytes.clone());
        r.register("lease_held", "1 while this node holds the compaction lease", m.lease_held.clone());
        r.register(
            "nodes",
            "Nodes with a recent heartbeat in the bucket, this one included",
            m.nodes.clone(),
        );
        r.register(
            "deleted_blocks",
            "Blocks deleted from the bucket after their grace period (replaced, expired or orphaned)",
            m.deleted_blocks.clone(),
        );
        r.register(
            "peer_requests",
            "Requests to live peers for their heads (a query on one node asking what only another has), by operation (traces, search, services, operations, tag_names, tag_values, log_services, log_head) and outcome (ok, timeout, error)",
            m.peer_requests.clone(),
        );
        r.register(
            "wal_replayed_spans",
            "Spans of dead nodes' WAL copies (--durability bucket) this node replayed as the lease holder",
            m.wal_replayed_spans.clone(),
        );
        r.register(
            "wal_copies_bad",
            "WAL copies (or records in them) found torn, damaged or not OTLP during a replay: skipped, not fatal",
            m.wal_copies_bad.clone(),
        );
        m
    }

    pub(crate) fn request(&self, op: &'static str, outcome: &'static str) {
        self.requests.get_or_create(&Request { op, outcome }).inc();
    }
}
