//! Against a real S3 server (SeaweedFS, started per test on free ports):
//! - self-test: a store that ignores conditional writes is refused
//! - two nodes: each sees the other's flushed blocks
//! - a merge race: of two nodes merging the same blocks exactly one commits
//! - the lease: taken once, passed on when its holder stops renewing
//! - clean-up: dropped and orphaned blocks deleted after the grace period

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use prometheus_client::registry::Registry;
use sightline_model::{
    Batch, KeyValue, Resource, Scope, Span, SpanId, SpanKind, SpanReader, TraceId, TracesConsumer,
};
use sightline_store::EmbeddedStore;

use crate::testing::SeaweedFs;
use crate::{Error, Lease, Metrics, Options, Remote};

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

pub(crate) fn tid(node: u8, n: u32) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = 0xa0 | node;
    b[12..].copy_from_slice(&n.to_be_bytes());
    TraceId::from_bytes(b).unwrap()
}

/// A three-span trace from `service`.
pub(crate) fn trace(id: TraceId, service: &str, start: u64) -> Vec<Span> {
    let resource = Arc::new(Resource::new(vec![KeyValue::new("service.name", service)], 0, String::new()));
    let scope = Arc::new(Scope { name: "objstore-test".into(), ..Scope::default() });
    (0..3u8)
        .map(|i| {
            let span_id =
                SpanId::from_bytes([id.as_bytes()[0], 0, 0, 0, id.as_bytes()[15], 0, 0, i + 1]).unwrap();
            Span::test(id, span_id, &format!("op-{i}"))
                .with_flags(1)
                .with_kind(SpanKind::Server)
                .with_times(start + u64::from(i), start + 1_000_000)
                .with_attributes(vec![KeyValue::new("i", i64::from(i))])
                .with_resource(&resource)
                .with_scope(&scope)
        })
        .collect()
}

/// One node: its remote, its store, its registry.
struct Node {
    remote: Remote,
    store: EmbeddedStore,
    registry: Registry,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn open(s3: &SeaweedFs, prefix: &str, id: &str, poll: Duration) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut registry = Registry::default();
        let metrics = Arc::new(Metrics::new(&mut registry));
        let mut options = Options::new(s3.url(prefix), id, dir.path());
        options.config = s3.config();
        options.poll_interval = poll;
        let remote = Remote::open(options, metrics).await.unwrap();
        let mut store_options = sightline_store::Options::new(dir.path());
        store_options.node_id = Some(id.to_owned());
        store_options.head_max_age = Duration::from_secs(3600);
        store_options.maintenance_interval = Duration::from_secs(3600);
        let store_metrics = Arc::new(sightline_store::Metrics::new(&mut registry));
        let store = EmbeddedStore::open_on(store_options, remote.storage(), store_metrics).await.unwrap();
        Node { remote, store, registry, _dir: dir }
    }

    /// Ingests traces `ns` of this node and flushes them into one block.
    async fn flush_traces(&self, node: u8, ns: std::ops::Range<u32>) {
        for n in ns {
            self.store.consume_traces(Batch::from_spans(trace(tid(node, n), "svc", now()))).await.unwrap();
        }
        self.store.flush().await.unwrap();
    }

    /// Stops the store's tasks (their blocking reads must not outlive the
    /// test's runtime) and gives up the lease.
    async fn close(self) {
        use sightline_model::TraceStore as _;
        self.store.shutdown().await;
        self.remote.shutdown().await;
    }

    /// A counter's value in this node's registry (0 when absent).
    fn counter(&self, name_and_labels: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text.lines().find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok()).unwrap_or(0.0)
    }
}

/// Waits until `done` holds, checking every 50 ms, for at most 30 s.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a [`PutHook`] does to a PUT before it reaches the real store:
/// rewrite its options, or refuse it.
type OnPut = dyn Fn(&Path, PutOptions) -> object_store::Result<PutOptions> + Send + Sync;

/// An object store that passes every call through to a real one, except
/// that each PUT goes through `on_put` first: the faults these tests inject
/// (a store that ignores conditions, a 409 on one file) are all on writes.
struct PutHook {
    name: &'static str,
    inner: Arc<dyn ObjectStore>,
    on_put: Box<OnPut>,
}

impl PutHook {
    fn new(
        name: &'static str,
        inner: Arc<dyn ObjectStore>,
        on_put: impl Fn(&Path, PutOptions) -> object_store::Result<PutOptions> + Send + Sync + 'static,
    ) -> Self {
        Self { name, inner, on_put: Box::new(on_put) }
    }
}

impl std::fmt::Debug for PutHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({:?})", self.name, self.inner)
    }
}

impl std::fmt::Display for PutHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name, self.inner)
    }
}

#[async_trait]
impl ObjectStore for PutHook {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let opts = (self.on_put)(location, opts)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// An object store that drops the preconditions of every write, as
/// SeaweedFS up to 3.96 and some S3 look-alikes do.
fn ignores_conditions(inner: Arc<dyn ObjectStore>) -> PutHook {
    PutHook::new("IgnoresConditions", inner, |_, opts| Ok(PutOptions { mode: PutMode::Overwrite, ..opts }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_ignores_conditional_writes_is_refused_at_start() {
    let s3 = SeaweedFs::start();
    let dir = tempfile::tempdir().unwrap();
    let options = || Options::new(s3.url("selftest"), "n1", dir.path());
    let ignoring = Arc::new(ignores_conditions(s3.store()));
    let err = Remote::open_store(ignoring, "selftest", options(), Arc::default()).await.unwrap_err();
    assert!(matches!(err, Error::NoConditionalWrites { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("If-None-Match: * replaced an existing object"), "{message}");
    assert!(message.contains("s3://sightline/selftest"), "{message}");
    // The same store with its conditions intact passes.
    Remote::open_store(s3.store(), "selftest", options(), Arc::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_bucket_see_each_others_blocks() {
    let s3 = SeaweedFs::start();
    let poll = Duration::from_millis(200);
    let a = Node::open(&s3, "two", "node-a", poll).await;
    let b = Node::open(&s3, "two", "node-b", poll).await;
    a.flush_traces(1, 0..20).await;
    b.flush_traces(2, 0..20).await;
    for (name, node) in [("a", &a), ("b", &b)] {
        eventually(&format!("{name} sees both blocks"), async || node.store.block_count() == 2).await;
        for id in [tid(1, 7), tid(2, 7), tid(1, 19), tid(2, 0)] {
            let spans = node.store.trace(id).await.unwrap().unwrap_or_default();
            assert_eq!(spans.len(), 3, "node {name}, trace {id}");
        }
    }
    // Block ids carry the writer's node id: no two nodes write one id.
    let ids = a.remote.object_storage().list_blocks().await.unwrap();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids[0].starts_with("node-a-w") && ids[1].starts_with("node-b-w"), "{ids:?}");
    // The writer read its own block from its cache; the other node fetched.
    assert!(b.counter("sightline_objstore_cache_misses_total") >= 1.0);
    // Nothing changed since: a poll is a conditional GET answered 304.
    let not_modified = "sightline_objstore_requests_total{op=\"poll\",outcome=\"not_modified\"}";
    let before = a.counter(not_modified);
    assert!(!a.store.refresh_blocks().await.unwrap());
    assert!(a.counter(not_modified) > before);
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_nodes_merging_the_same_blocks_exactly_one_commits() {
    let s3 = SeaweedFs::start();
    // No background polling: each node's view is refreshed by hand, so
    // both plan the same merge from the same list.
    let poll = Duration::from_secs(3600);
    let a = Node::open(&s3, "race", "node-a", poll).await;
    let b = Node::open(&s3, "race", "node-b", poll).await;
    for round in 0..2u32 {
        a.flush_traces(1, round * 10..round * 10 + 10).await;
        b.flush_traces(2, round * 10..round * 10 + 10).await;
    }
    a.store.refresh_blocks().await.unwrap();
    b.store.refresh_blocks().await.unwrap();
    assert_eq!((a.store.block_count(), b.store.block_count()), (4, 4));

    let (ra, rb) = tokio::join!(a.store.maintain(), b.store.maintain());
    ra.unwrap();
    rb.unwrap();
    let outcome = |o: &str| {
        let label = format!("sightline_store_compactions_total{{outcome=\"{o}\"}}");
        a.counter(&label) + b.counter(&label)
    };
    assert_eq!((outcome("ok"), outcome("superseded")), (1.0, 1.0), "one merge commits, the other is dropped");

    a.store.refresh_blocks().await.unwrap();
    b.store.refresh_blocks().await.unwrap();
    assert_eq!((a.store.block_count(), b.store.block_count()), (1, 1));
    // Nothing lost, nothing twice.
    for node in [&a, &b] {
        let ids: Vec<TraceId> = (0..20).flat_map(|n| [tid(1, n), tid(2, n)]).collect();
        let traces = node.store.traces(&ids).await.unwrap();
        assert_eq!(traces.len(), 40);
        assert!(traces.iter().all(|t| t.len() == 3), "every trace whole, no span twice");
    }
    // The losing output was deleted; the winner's inputs wait out their
    // grace period in the bucket.
    let listed = a.remote.object_storage().list_blocks().await.unwrap();
    assert_eq!(listed.len(), 5, "4 dropped inputs + 1 merged block: {listed:?}");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_passes_on_when_its_holder_stops_renewing() {
    let s3 = SeaweedFs::start();
    let ttl = Duration::from_millis(1500);
    let bucket = |node: &str| {
        let metrics = Arc::new(Metrics::default());
        Arc::new(crate::Bucket::new(s3.store(), "lease", format!("{}/{node}", s3.url("lease")), metrics))
    };
    let a = Lease::new(bucket("a"), "node-a".into(), ttl);
    let b = Lease::new(bucket("b"), "node-b".into(), ttl);
    // Both try at once: exactly one wins.
    let (ta, tb) = tokio::join!(a.tick(), b.tick());
    let (ta, tb) = (ta.unwrap(), tb.unwrap());
    assert!(ta != tb, "exactly one holder: a {ta}, b {tb}");
    let (holder, other) = if ta { (&a, &b) } else { (&b, &a) };
    assert!(holder.tick().await.unwrap(), "the holder renews");
    assert!(!other.tick().await.unwrap());
    assert_eq!(other.holder(), holder.holder());
    // The holder stops renewing (killed, stuck): after the TTL the other
    // node takes over, and the old holder's renewal fails.
    eventually("the lease expires and passes on", async || other.tick().await.unwrap()).await;
    assert!(other.held());
    assert!(!holder.tick().await.unwrap(), "a stale holder cannot renew");
    assert!(!holder.held());
    // Released at shutdown: free at once.
    other.release().await;
    assert!(holder.tick().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_orphaned_blocks_are_deleted_after_the_grace_period() {
    let s3 = SeaweedFs::start();
    let node = Node::open(&s3, "gc", "node-a", Duration::from_secs(3600)).await;
    for round in 0..4u32 {
        node.flush_traces(1, round * 5..round * 5 + 5).await;
    }
    node.store.maintain().await.unwrap();
    assert_eq!(node.store.block_count(), 1);
    // An upload a crash left behind: a block no manifest lists.
    let storage = node.remote.object_storage();
    storage
        .bucket()
        .put("single-tenant/blocks/orphan/data.parquet", "x".into(), PutMode::Overwrite)
        .await
        .unwrap();
    assert_eq!(storage.list_blocks().await.unwrap().len(), 6);
    // Within the grace period nothing goes.
    assert_eq!(storage.collect_garbage(Duration::from_secs(3600)).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(storage.collect_garbage(Duration::from_secs(1)).await.unwrap(), 5);
    assert_eq!(storage.list_blocks().await.unwrap().len(), 1);
    // The live block still reads.
    assert_eq!(node.store.trace(tid(1, 12)).await.unwrap().map(|t| t.len()), Some(3));
    node.close().await;
}

/// A store that accepts connections and never answers (a listener nobody
/// accepts on: the kernel completes the handshakes): a query's read gives
/// up on its own instead of retrying for minutes (object_store's default),
/// the bucket reports itself degraded, and the next read fails at once
/// without a request.
#[tokio::test(flavor = "multi_thread")]
async fn a_query_read_gives_up_on_a_silent_store_and_the_next_fails_at_once() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config: Vec<(String, String)> = [
        ("aws_endpoint", format!("http://{}", silent.local_addr().unwrap())),
        ("aws_access_key_id", "k".to_owned()),
        ("aws_secret_access_key", "s".to_owned()),
        ("aws_region", "us-east-1".to_owned()),
        ("aws_allow_http", "true".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (reads, _) = crate::connect_with("s3://b/p", &config, &crate::Policy::QUERY).unwrap();
    let metrics = Arc::new(Metrics::default());
    let bucket = crate::Bucket::new(Arc::clone(&reads), "p", "s3://b/p".into(), Arc::clone(&metrics))
        .with_reads(reads);
    assert!(bucket.degraded().is_none());

    let first = bucket.get_range("t/blocks/x/data.parquet", 0..10).await.unwrap_err();
    assert!(matches!(first, Error::Request { .. } | Error::Unavailable { .. }), "{first}");
    let why = bucket.degraded().expect("degraded after a read without an answer");
    assert!(why.contains("degraded"), "{why}");

    let second = bucket.get_range("t/blocks/x/data.parquet", 0..10).await.unwrap_err();
    assert!(matches!(&second, Error::Unavailable { detail, .. } if detail.contains("not asked")), "{second}");
    let count =
        |outcome| metrics.requests.get_or_create(&crate::metrics::Request { op: "get_range", outcome }).get();
    assert_eq!(count("skipped"), 1);
    assert_eq!(count("error") + count("timeout"), 1);
    assert_eq!(metrics.available.get(), 0);
}

/// A flush whose `meta.json` upload is refused with 409 fails (and is
/// retried) instead of listing a block without its meta.json, which every
/// node would then take for damaged; once the store accepts it, the block
/// is listed and another node reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflict_on_meta_json_fails_the_flush_rather_than_listing_half_a_block() {
    let s3 = SeaweedFs::start();
    let dir = tempfile::tempdir().unwrap();
    // Answers 409 Conflict (object_store: "already exists") to every PUT
    // of a `meta.json` while armed, as S3 may for a write racing another or
    // an aborted operation.
    let armed = Arc::new(AtomicBool::new(true));
    let conflict = Arc::clone(&armed);
    let store = Arc::new(PutHook::new("ConflictOnMeta", s3.store(), move |location, opts| {
        if conflict.load(Ordering::Relaxed) && location.as_ref().ends_with("meta.json") {
            return Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "409 Conflict (injected)".into(),
            });
        }
        Ok(opts)
    }));
    let mut options = Options::new(s3.url("conflict"), "node-a", dir.path());
    options.poll_interval = Duration::from_millis(200);
    let remote =
        Remote::open_store(Arc::clone(&store) as Arc<dyn ObjectStore>, "conflict", options, Arc::default())
            .await
            .unwrap();
    let mut store_options = sightline_store::Options::new(dir.path());
    store_options.node_id = Some("node-a".to_owned());
    store_options.head_max_age = Duration::from_secs(3600);
    let metrics = Arc::new(sightline_store::Metrics::new(&mut Registry::default()));
    let a = EmbeddedStore::open_on(store_options, remote.storage(), metrics).await.unwrap();
    a.consume_traces(Batch::from_spans(trace(tid(1, 1), "svc", now()))).await.unwrap();
    let err = a.flush().await.unwrap_err();
    assert!(err.to_string().contains("meta.json"), "{err}");

    armed.store(false, Ordering::Relaxed);
    a.flush().await.unwrap();
    let b = Node::open(&s3, "conflict", "node-b", Duration::from_millis(200)).await;
    assert_eq!(b.store.trace(tid(1, 1)).await.unwrap().map(|t| t.len()), Some(3));
    assert_eq!(b.counter("sightline_store_damaged_blocks"), 0.0);
    use sightline_model::TraceStore as _;
    a.shutdown().await;
    remote.shutdown().await;
    b.close().await;
}
