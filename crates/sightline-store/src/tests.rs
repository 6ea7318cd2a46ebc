use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use sightline_model::{
    Batch, ConsumeError, DependencyLink, KeyValue, MemoryBudget, Operation, Pressure, Resource, Scope, Span,
    SpanId, SpanKind, SpanReader, Status, StatusCode, TagFilter, TraceHit, TraceId, TraceQuery, TraceStore,
    TracesConsumer,
};

use crate::{EmbeddedStore, Error, Options};

mod integrity;
mod service_name;
mod tenants;

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn tid(n: u32) -> TraceId {
    let mut b = [0u8; 16];
    b[12..].copy_from_slice(&n.to_be_bytes());
    // Spread over the id space, as random ids are (a big head's flush
    // splits traces by their first byte).
    b[0] = (n as u8).wrapping_mul(97) | 1;
    TraceId::from_bytes(b).unwrap()
}

fn sid(n: u32) -> SpanId {
    let mut b = [0u8; 8];
    b[4..].copy_from_slice(&n.to_be_bytes());
    b[0] = 0xcd;
    SpanId::from_bytes(b).unwrap()
}

struct Gen {
    resources: Vec<Arc<Resource>>,
    scope: Arc<Scope>,
}

impl Gen {
    fn new() -> Gen {
        let resource =
            |name: &str| Arc::new(Resource::new(vec![KeyValue::new("service.name", name)], 0, String::new()));
        Gen {
            resources: vec![resource("frontend"), resource("backend")],
            scope: Arc::new(Scope { name: "test".into(), ..Scope::default() }),
        }
    }

    /// Trace `n` as [`ingest`] writes it for `start`.
    fn ingested(&self, n: u32, start: u64) -> Vec<Span> {
        self.trace(n, start + u64::from(n) * 1000)
    }

    /// A two-span trace: frontend server span → backend server span.
    fn trace(&self, n: u32, start: u64) -> Vec<Span> {
        let status = if n.is_multiple_of(5) {
            Status { code: StatusCode::Error, message: "boom".into() }
        } else {
            Status::default()
        };
        let span = |id: u32, parent: Option<u32>, service: usize, name: &str, dur: u64| {
            Span::test(tid(n), sid(id), name)
                .with_parent(parent.map(sid))
                .with_flags(1)
                .with_kind(SpanKind::Server)
                .with_times(start, start + dur)
                .with_attributes(vec![KeyValue::new("n", i64::from(n))])
                .with_status(status.clone())
                .with_resource(&self.resources[service])
                .with_scope(&self.scope)
        };
        vec![span(n * 10, None, 0, "GET /", 5_000_000), span(n * 10 + 1, Some(n * 10), 1, "load", 3_000_000)]
    }
}

fn options(dir: &std::path::Path) -> Options {
    let mut o = Options::new(dir);
    o.maintenance_interval = Duration::from_secs(3600);
    o.head_max_age = Duration::from_secs(3600);
    o.block.row_group_spans = 64;
    o
}

async fn open(o: Options) -> EmbeddedStore {
    EmbeddedStore::open(o, Arc::new(crate::Metrics::new(&mut Registry::default()))).await.unwrap()
}

async fn ingest(store: &EmbeddedStore, spans_gen: &Gen, traces: std::ops::Range<u32>, start: u64) {
    for n in traces {
        store.consume_traces(Batch::from_spans(spans_gen.ingested(n, start))).await.unwrap();
    }
}

/// Ingests each range of traces and flushes it: one block per range.
async fn ingest_blocks(
    store: &EmbeddedStore,
    spans_gen: &Gen,
    blocks: impl IntoIterator<Item = std::ops::Range<u32>>,
    start: u64,
) {
    for traces in blocks {
        ingest(store, spans_gen, traces, start).await;
        store.flush().await.unwrap();
    }
}

fn query() -> TraceQuery {
    TraceQuery { limit: 1000, ..TraceQuery::default() }
}

/// The ids `find_traces` returns, checked against `find_trace_ids` (the
/// same traces in the same order, each with its latest matching start).
async fn found(store: &EmbeddedStore, q: &TraceQuery) -> Vec<TraceId> {
    let traces = store.find_traces(q).await.unwrap();
    let want: Vec<TraceHit> = traces.iter().filter_map(|t| TraceHit::of(t, q)).collect();
    assert_eq!(store.find_trace_ids(q).await.unwrap(), want, "{q:?}");
    want.iter().map(|h| h.trace_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_blocks_and_restart_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    let store = open(options(dir.path())).await;
    ingest(&store, &spans_gen, 1..11, t0).await;

    let check = async |store: EmbeddedStore| {
        let t3 = store.trace(tid(3)).await.unwrap().expect("trace 3");
        assert_eq!(t3, spans_gen.trace(3, t0 + 3000));
        assert_eq!(store.trace(tid(99)).await.unwrap(), None);
        assert_eq!(store.services().await.unwrap(), vec!["backend".to_string(), "frontend".to_string()]);
        assert_eq!(
            store.operations("backend", None).await.unwrap(),
            vec![Operation { name: "load".into(), kind: SpanKind::Server }]
        );
        assert_eq!(store.operations("backend", Some(SpanKind::Client)).await.unwrap(), vec![]);
        let errors =
            TraceQuery { tags: vec![TagFilter { key: "error".into(), value: "true".into() }], ..query() };
        assert_eq!(found(&store, &errors).await, vec![tid(10), tid(5)], "most recent first");
        let slow_backend = TraceQuery {
            service: Some("backend".into()),
            min_duration_nanos: Some(3_000_000),
            limit: 3,
            ..query()
        };
        assert_eq!(found(&store, &slow_backend).await, vec![tid(10), tid(9), tid(8)]);
        assert_eq!(
            store.dependencies(t0 + 3_600_000_000_000, 7_200_000_000_000).await.unwrap(),
            vec![DependencyLink { parent: "frontend".into(), child: "backend".into(), call_count: 10 }]
        );
        store
    };

    let store = check(store).await;
    store.flush().await.unwrap();
    assert_eq!(store.block_count(), 1);
    let store = check(store).await;
    store.shutdown().await;
    drop(store);

    let store = check(open(options(dir.path())).await).await;
    assert_eq!(store.block_count(), 1, "no duplicate block or replay after a clean restart");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_replay_restores_what_was_not_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    {
        let store = open(options(dir.path())).await;
        ingest(&store, &spans_gen, 1..4, t0).await;
        store.flush().await.unwrap();
        ingest(&store, &spans_gen, 4..7, t0).await;
        store.stop_without_flush().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let store = open(options(dir.path())).await;
    assert_eq!(store.block_count(), 1);
    for n in 1..7 {
        assert_eq!(store.trace(tid(n)).await.unwrap(), Some(spans_gen.ingested(n, t0)), "trace {n}");
    }
    assert_eq!(found(&store, &query()).await.len(), 6);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batches_are_deduplicated_across_head_and_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    let store = open(options(dir.path())).await;
    ingest(&store, &spans_gen, 1..3, t0).await;
    store.flush().await.unwrap();
    ingest(&store, &spans_gen, 1..3, t0).await;
    ingest(&store, &spans_gen, 1..3, t0).await;
    assert_eq!(store.trace(tid(1)).await.unwrap().unwrap().len(), 2);
    assert_eq!(found(&store, &query()).await, vec![tid(2), tid(1)]);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_head_that_cannot_be_cut_refuses_with_backpressure() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let mut o = options(dir.path());
    o.head_max_bytes = 4096;
    o.max_frozen_heads = 0;
    let store = open(o).await;
    let mut refused = None;
    for n in 1..100 {
        if let Err(e) = store.consume_traces(Batch::from_spans(spans_gen.trace(n, now()))).await {
            refused = Some((n, e));
            break;
        }
    }
    let (n, e) = refused.expect("the head limit must refuse at some point");
    assert!(n > 1, "the first batches fit");
    assert!(matches!(e, ConsumeError::Overloaded { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Duration::from_secs(1));
    // Refused data was not stored.
    assert_eq!(store.trace(tid(n)).await.unwrap(), None);
    store.shutdown().await;
    let after = store.consume_traces(Batch::from_spans(spans_gen.trace(500, now()))).await;
    assert!(matches!(after, Err(ConsumeError::Unavailable { .. })), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_age_and_by_size_deletes_whole_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let day = 86_400_000_000_000u64;
    let mut o = options(dir.path());
    o.compaction_min_blocks = 100;
    let store = open(o.clone()).await;
    ingest(&store, &spans_gen, 1..3, now() - 10 * day).await;
    store.flush().await.unwrap();
    for batch in 0..3u32 {
        ingest(
            &store,
            &spans_gen,
            10 + batch * 10..15 + batch * 10,
            now() - u64::from(3 - batch) * 60_000_000_000,
        )
        .await;
        store.flush().await.unwrap();
    }
    assert_eq!(store.block_count(), 4);
    store.maintain().await.unwrap();
    assert_eq!(store.block_count(), 3, "the 10-day-old block is past the 7-day retention");
    assert_eq!(store.trace(tid(1)).await.unwrap(), None);
    assert!(store.trace(tid(10)).await.unwrap().is_some());
    store.shutdown().await;
    drop(store);

    let sizes: Vec<u64> = std::fs::read_dir(dir.path().join("blocks"))
        .unwrap()
        .map(|e| std::fs::metadata(e.unwrap().path().join("data.parquet")).unwrap().len())
        .collect();
    assert_eq!(sizes.len(), 3, "the expired block's folder is gone");
    o.max_disk_bytes = Some(sizes.iter().max().unwrap() + 1);
    let store = open(o).await;
    store.maintain().await.unwrap();
    assert_eq!(store.block_count(), 1, "only the newest block fits the size cap");
    assert_eq!(store.trace(tid(10)).await.unwrap(), None);
    assert!(store.trace(tid(30)).await.unwrap().is_some());
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_small_blocks_without_losing_or_duplicating() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    let store = open(options(dir.path())).await;
    // Each round overlaps the next by one trace.
    ingest_blocks(&store, &spans_gen, (0..4u32).map(|round| round * 5..round * 5 + 6), t0).await;
    assert_eq!(store.block_count(), 4);
    store.maintain().await.unwrap();
    assert_eq!(store.block_count(), 1);
    for n in 0..21 {
        assert_eq!(store.trace(tid(n)).await.unwrap(), Some(spans_gen.ingested(n, t0)), "trace {n}");
    }
    store.shutdown().await;
    let folders = std::fs::read_dir(dir.path().join("blocks")).unwrap().count();
    assert_eq!(folders, 1, "compacted inputs are deleted");
    let store = open(options(dir.path())).await;
    assert_eq!(found(&store, &query()).await.len(), 21);
    store.shutdown().await;
}

/// A store whose footer cache holds about one block's footer answers
/// every lookup and search as one that keeps them all, and its block
/// memory gauge stays within the cache's bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_behind_a_small_footer_cache_answer_the_same_within_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    // One block's footer, to size the cache by.
    let probe = tempfile::tempdir().unwrap();
    let store = open(options(probe.path())).await;
    ingest(&store, &spans_gen, 0..5, t0).await;
    store.flush().await.unwrap();
    store.shutdown().await;
    drop(store);
    let only = std::fs::read_dir(probe.path().join("blocks")).unwrap().next().unwrap().unwrap().path();
    let footer = sightline_block::Block::open(&only).unwrap().memory_size();

    let mut o = options(dir.path());
    o.compaction_min_blocks = 1000;
    let cache = Arc::new(sightline_block::FooterCache::new(footer * 3 / 2));
    o.block_cache = Arc::clone(&cache);
    let metrics = Arc::new(crate::Metrics::new(&mut Registry::default()));
    let store = EmbeddedStore::open(o, Arc::clone(&metrics)).await.unwrap();
    ingest_blocks(&store, &spans_gen, (0..6u32).map(|b| b * 5..b * 5 + 5), t0).await;
    assert_eq!(store.block_count(), 6);
    for round in 0..2 {
        for n in 0..30 {
            assert_eq!(store.trace(tid(n)).await.unwrap(), Some(spans_gen.ingested(n, t0)), "round {round}");
        }
        assert_eq!(store.trace(tid(99)).await.unwrap(), None);
        assert_eq!(found(&store, &query()).await.len(), 30);
        let errors =
            TraceQuery { tags: vec![TagFilter { key: "error".into(), value: "true".into() }], ..query() };
        assert_eq!(found(&store, &errors).await, vec![tid(25), tid(20), tid(15), tid(10), tid(5), tid(0)]);
    }
    let stats = cache.stats();
    assert!(stats.used_bytes <= cache.capacity(), "{stats:?}");
    assert!(stats.evictions > 0 && stats.misses > 0, "nothing was evicted and read again: {stats:?}");
    // The scrape shows the same figures.
    let mut registry = Registry::default();
    crate::register_block_cache(&mut registry, Arc::clone(&cache));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let stats = cache.stats();
    for line in [
        format!("sightline_store_block_cache_bytes {}", stats.used_bytes),
        format!("sightline_store_block_cache_capacity_bytes {}", cache.capacity()),
        format!("sightline_store_block_cache_entries {}", stats.entries),
        format!("sightline_store_block_cache_hits_total {}", stats.hits),
        format!("sightline_store_block_cache_misses_total {}", stats.misses),
        format!("sightline_store_block_cache_evictions_total {}", stats.evictions),
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
    store.refresh_blocks().await.unwrap();
    let gauge = usize::try_from(metrics.block_memory.get()).unwrap();
    // The resident part of six tiny blocks is a few hundred bytes each.
    assert!(gauge <= cache.capacity() + 6 * 4096, "gauge {gauge} B, cache {stats:?}");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_is_used_by_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(options(dir.path())).await;
    let second =
        EmbeddedStore::open(options(dir.path()), Arc::new(crate::Metrics::new(&mut Registry::default())))
            .await;
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    store.shutdown().await;
}

/// Shutdown flushes the live head even when it finds the flush queue full
/// (a cut is skipped then): the next start replays nothing from the WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_the_live_head_behind_a_queued_one() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    let mut o = options(dir.path());
    o.max_frozen_heads = 1;
    let store = open(o.clone()).await;
    // Hold the flusher back so the queued head stays queued.
    let flushing = store.hold_flushes().await;
    ingest(&store, &spans_gen, 1..6, t0).await;
    assert_eq!(store.cut_now().await, 1);
    ingest(&store, &spans_gen, 6..11, t0).await;
    let stopping = tokio::spawn({
        let store = store.clone();
        async move { store.shutdown().await }
    });
    // Let shutdown reach its cut (skipped: the queue is full) before the
    // flusher may run; either order must end with everything in blocks.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(flushing);
    stopping.await.unwrap();

    let metrics = Arc::new(crate::Metrics::new(&mut Registry::default()));
    let store = EmbeddedStore::open(o, Arc::clone(&metrics)).await.unwrap();
    assert_eq!(metrics.replayed_spans.get(), 0, "the live head was left to the WAL");
    assert_eq!(metrics.block_spans.get(), 20);
    for n in 1..11 {
        assert!(store.trace(tid(n)).await.unwrap().is_some(), "trace {n}");
    }
    store.shutdown().await;
}

/// A flush that leaves a full-width merge's worth of fresh blocks starts
/// the merge; it does not wait for the maintenance round (an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_start_compaction_without_waiting_for_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    let mut o = options(dir.path());
    o.compaction_max_inputs = 4;
    let store = open(o).await;
    ingest_blocks(&store, &spans_gen, (0..4u32).map(|round| round * 5..round * 5 + 5), t0).await;
    let merged = wait_until(|| store.block_count() == 1).await;
    assert!(merged, "still {} blocks", store.block_count());
    assert_eq!(found(&store, &query()).await.len(), 20);
    store.shutdown().await;
}

/// Under memory pressure (published by the memory limiter) a due
/// full-width merge waits: it would add its working set to a process
/// already over its soft limit. Once the pressure has passed, it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_wait_out_memory_pressure() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    let memory = Arc::new(MemoryBudget::new(256 << 20));
    let mut o = options(dir.path());
    o.compaction_max_inputs = 4;
    o.memory = Arc::clone(&memory);
    o.pressure_hold = Duration::ZERO;
    let metrics = Arc::new(crate::Metrics::new(&mut Registry::default()));
    let store = EmbeddedStore::open(o, Arc::clone(&metrics)).await.unwrap();
    memory.set_pressure(Pressure::Soft);
    ingest_blocks(&store, &spans_gen, (0..4u32).map(|round| round * 5..round * 5 + 5), t0).await;
    // The fourth flush wakes the compactor, which finds the merge due and
    // defers it.
    assert!(wait_until(|| metrics.compactions_deferred.get() >= 1).await, "the merge was never considered");
    assert_eq!(store.block_count(), 4, "merged under memory pressure");
    memory.set_pressure(Pressure::Normal);
    let merged = wait_until(|| store.block_count() == 1).await;
    assert!(merged, "still {} blocks", store.block_count());
    assert_eq!(found(&store, &query()).await.len(), 20);
    store.shutdown().await;
}

/// The write stall: while `compaction_stall_blocks` fresh blocks wait to
/// be merged, the next flush waits (its spans stay readable from the
/// frozen head); once compaction catches up, it goes ahead. Shutdown does
/// not wait for compaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_wait_while_compaction_is_behind() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    let mut o = options(dir.path());
    o.compaction_min_blocks = 2;
    o.compaction_max_inputs = 8;
    o.compaction_stall_blocks = 2;
    let metrics = Arc::new(crate::Metrics::new(&mut Registry::default()));
    let store = EmbeddedStore::open(o.clone(), Arc::clone(&metrics)).await.unwrap();

    let held = store.hold_compactions().await;
    ingest_blocks(&store, &spans_gen, (0..2u32).map(|round| round * 5..round * 5 + 5), t0).await;
    assert_eq!(store.block_count(), 2);
    ingest(&store, &spans_gen, 10..15, t0).await;
    let flushing = tokio::spawn({
        let store = store.clone();
        async move { store.flush().await }
    });
    assert!(wait_until(|| metrics.flush_stalled.get() == 1).await, "the flush did not stall");
    assert!(!flushing.is_finished(), "the flush went ahead of compaction");
    assert_eq!(store.block_count(), 2);
    assert_eq!(found(&store, &query()).await.len(), 15, "waiting spans are readable");

    drop(held);
    // The stalled flush wakes the compactor, which merges the two blocks
    // although that is not a full-width merge.
    tokio::time::timeout(Duration::from_secs(20), flushing).await.unwrap().unwrap().unwrap();
    assert_eq!(store.block_count(), 2, "two merged into one, plus the new block");
    assert_eq!(metrics.flush_stalled.get(), 0);
    assert!(metrics.flush_stall_seconds.get() > 0.0);
    assert_eq!(found(&store, &query()).await.len(), 15);

    // Debt again, and compaction held: shutdown still flushes and ends.
    let held = store.hold_compactions().await;
    ingest(&store, &spans_gen, 15..20, t0).await;
    store.flush().await.unwrap();
    ingest(&store, &spans_gen, 20..25, t0).await;
    tokio::time::timeout(Duration::from_secs(20), store.shutdown()).await.unwrap();
    drop(held);
    let store = open(o).await;
    assert_eq!(found(&store, &query()).await.len(), 25);
    store.shutdown().await;
}

/// Polls `done` for up to 20 s: background work has no completion signal
/// a test can await.
async fn wait_until(done: impl Fn() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

/// D4: a search's `limit` is capped at `TraceQuery::MAX_LIMIT`, its results
/// at one query's share of the memory budget, and only as many queries
/// build results at once as the budget has slots for, however many come in
/// parallel (20 parallel `limit=100000` queries took a 256 MiB server to
/// 1 GiB). Before: every query returned every matching trace, all at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_queries_are_capped_and_bounded_by_the_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    // 8 MiB: 128 KiB per query, 512 KiB for all, so 4 slots.
    let memory = Arc::new(MemoryBudget::new(8 << 20));
    let mut o = options(dir.path());
    o.memory = Arc::clone(&memory);
    o.fsync = crate::FsyncPolicy::Never;
    let metrics = Arc::new(crate::Metrics::new(&mut Registry::default()));
    let store = EmbeddedStore::open(o, Arc::clone(&metrics)).await.unwrap();
    ingest(&store, &spans_gen, 0..350, t0).await;
    store.flush().await.unwrap();
    ingest(&store, &spans_gen, 350..700, t0).await;

    let each = memory.query_bytes_each();
    let wide = TraceQuery { limit: 100_000, ..TraceQuery::default() };
    let peak = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let watcher = tokio::spawn({
        let (metrics, peak) = (Arc::clone(&metrics), Arc::clone(&peak));
        async move {
            loop {
                peak.fetch_max(metrics.queries_running.get(), std::sync::atomic::Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });
    let queries: Vec<_> = (0..20)
        .map(|_| {
            let (store, wide) = (store.clone(), wide.clone());
            tokio::spawn(async move { store.find_traces(&wide).await.unwrap() })
        })
        .collect();
    for q in queries {
        let traces = q.await.unwrap();
        assert!(!traces.is_empty() && traces.len() <= TraceQuery::MAX_LIMIT, "{} traces", traces.len());
        let bytes: usize = traces.iter().flatten().map(Span::estimated_size).sum();
        assert!(bytes <= each, "{bytes} B of results over the {each} B budget");
        // Most recent first, whole traces.
        assert_eq!(traces[0][0].trace_id, tid(699));
        assert!(traces.iter().all(|t| t.len() == 2));
    }
    watcher.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!((1..=4).contains(&peak), "{peak} queries built results at once");
    assert!(metrics.query_results_truncated.get() >= 20);

    // With room for all of them, the limit itself caps the result.
    let roomy = Arc::new(MemoryBudget::new(1 << 30));
    store.shutdown().await;
    drop(store);
    let mut o = options(dir.path());
    o.memory = roomy;
    o.fsync = crate::FsyncPolicy::Never;
    let store = open(o).await;
    ingest(&store, &spans_gen, 700..1100, t0).await;
    assert_eq!(store.find_traces(&wide).await.unwrap().len(), TraceQuery::MAX_LIMIT);
    assert_eq!(store.traces(&[tid(5), tid(99_999), tid(5), tid(6)]).await.unwrap().len(), 2);
    store.shutdown().await;
}

/// A big head is flushed as two blocks written in parallel, each trace
/// whole in one of them, listed in the manifest together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_heads_flush_into_two_blocks_with_whole_traces() {
    let dir = tempfile::tempdir().unwrap();
    let spans_gen = Gen::new();
    let t0 = now();
    let mut o = options(dir.path());
    o.flush_split_spans = 10;
    let store = open(o.clone()).await;
    ingest(&store, &spans_gen, 0..40, t0).await;
    store.flush().await.unwrap();
    assert_eq!(store.block_count(), 2);
    let sizes = store.block_spans();
    assert!(sizes.iter().all(|n| *n > 0) && sizes.iter().sum::<u64>() == 80, "{sizes:?}");
    for n in 0..40 {
        assert_eq!(store.trace(tid(n)).await.unwrap().map(|t| t.len()), Some(2), "trace {n}");
    }
    store.shutdown().await;
    let store = open(o).await;
    assert_eq!(store.block_count(), 2);
    assert_eq!(found(&store, &query()).await.len(), 40);
    store.shutdown().await;
}
