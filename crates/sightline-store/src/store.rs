//! [`EmbeddedStore`]: opens the parts and wires them together. The parts
//! each own their state: [`crate::ingest`] (WAL, heads), [`crate::blockset`]
//! (blocks, manifest), [`crate::tasks`] (background work over those two),
//! [`crate::view`] (what every read method reads).

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use sightline_model::{
    Batch, ComponentHealth, ConsumeError, DependencyLink, MemoryBudget, Operation, QueryError, Span,
    SpanKind, SpanReader, TraceHit, TraceId, TraceQuery, TraceStore, TracesConsumer,
};
use sightline_wal::{SegmentId, Wal};
use tokio::task::JoinHandle;

use crate::blockset::damage::Damaged;
use crate::blockset::plan::{CompactionPolicy, RetentionPolicy};
use crate::blockset::{BlockSet, BlockStorage, LocalFolder};
use crate::head::Head;
use crate::head::record::Interner;
use crate::ingest::Ingest;
use crate::shared::{QueryGate, Shared};
use crate::tasks::{Background, Settings, run_blocking};
use crate::view::{ResultBudget, View, internal};
use crate::{BlockOptions, Error, FsyncPolicy, Metrics};

pub(crate) const WAL_DIR: &str = "wal";
const LOCK_FILE: &str = "LOCK";

/// How the store is set up. `Options` because it is built in code by the
/// binary from its own config.
#[derive(Debug, Clone)]
pub struct Options {
    /// Root folder for WAL, blocks and manifest.
    pub data_dir: PathBuf,
    /// When WAL appends are synced before acknowledging.
    pub fsync: FsyncPolicy,
    /// What WAL recovery does with damaged records (skips them by
    /// default, keeping the valid records after them).
    pub wal_recovery: sightline_wal::RecoveryMode,
    /// Cut the head once it holds this many (estimated) bytes.
    pub head_max_bytes: usize,
    /// Cut the head at least this often when it is not empty.
    pub head_max_age: Duration,
    /// Heads cut but not yet flushed; beyond this, appends are refused
    /// (backpressure) until the flusher catches up.
    pub max_frozen_heads: usize,
    /// Delete blocks whose newest span ended longer ago than this.
    pub retention: Option<Duration>,
    /// Delete the oldest blocks while blocks take more than this many bytes.
    pub max_disk_bytes: Option<u64>,
    /// A head with at least this many spans is flushed as two blocks
    /// (each trace whole in one), encoded on two threads: encoding is a
    /// flush's cost, flushes run one at a time, and at saturation ingest
    /// waits for them. Heads of realistic spans (~31k in the default 16 MiB)
    /// stay one block; small spans (testbed, ~89k) split.
    pub flush_split_spans: usize,
    /// How blocks are written. Its zstd level is the merges' (and that of
    /// a flushed block too big to be merged): the level blocks are stored at.
    pub block: BlockOptions,
    /// zstd level of flushed blocks that compaction will merge. Their bytes
    /// live only until the merge (seconds to minutes), which re-encodes every
    /// span at `block.zstd_level`, so the stored bytes do not depend on it.
    /// Level 1 compresses flushed blocks as small as 3 does (dictionary
    /// indexes and random ids) for less CPU; the saving is small (zstd is
    /// ~2 % of server CPU at 10k spans/s, see BENCHMARKS.md).
    pub flush_zstd_level: i32,
    /// Merge once a compaction level has this many blocks.
    pub compaction_min_blocks: usize,
    /// Merge at most this many blocks at once. Each merge rewrites every
    /// span of its inputs, so a wide merge means fewer rewrites per span:
    /// with 4 inputs a span from a ~10k-span head block was rewritten three
    /// times on its way to a 512Ki-span block, with 16 twice. A merge holds
    /// one decoded batch per input (see `Block::spans`); zstd contexts are
    /// shared per thread (vendor/zstd), so inputs cost no decoder each.
    pub compaction_max_inputs: usize,
    /// Never produce a compacted block with more spans than this. A search
    /// scans its newest blocks whole (rows are in trace-id order, not time
    /// order), so smaller blocks answer "the latest N traces" sooner; a
    /// lookup by id checks every block's in-memory bloom filters, so more
    /// blocks cost it little.
    pub compaction_max_spans: u64,
    /// The newest fresh blocks, up to this many spans (at most 3 blocks),
    /// stay out of merges while fresh blocks hold more, so the newest data
    /// sits in small blocks: "the latest N traces" is answered from them
    /// without decoding a merged block of up to `compaction_max_spans`
    /// (see `CompactionPolicy::hold_spans`). 64Ki holds about two heads of
    /// realistic spans, which hold ~80 matches of the benchmark's search.
    pub compaction_hold_spans: u64,
    /// Flushes wait while this many fresh (level-0) blocks wait to be
    /// merged: the write stall of LSM stores (RocksDB's
    /// `level0_stop_writes_trigger`). Without it, sustained saturation
    /// flushed ~10 blocks a second while compaction, sharing the cores,
    /// fell further behind: 270 blocks after 30 s, block memory and RSS
    /// rising until the memory limiter refused most data. Stalling the
    /// flusher reuses the head's backpressure (a full head makes appends
    /// wait, then refuses them retryably), so ingest settles at the rate
    /// flush and compaction together sustain.
    pub compaction_stall_blocks: usize,
    /// How often retention and compaction run.
    pub maintenance_interval: Duration,
    /// Test hook, zero outside tests: how long a merge waits between
    /// writing its output (into the bucket, for an object store) and
    /// committing it to the manifest, so a test can kill a compacting node
    /// at exactly that point or let another node's commit overtake it.
    pub merge_commit_pause: Duration,
    /// The process memory budget: the store follows its pressure (cuts
    /// the head, defers merges).
    pub memory: Arc<MemoryBudget>,
    /// Where open blocks keep their Parquet footers (page index, tables)
    /// and bloom filters, bounded by
    /// [`MemoryBudget::block_cache_bytes`]; evicted parts are read again
    /// on demand. One cache for every tenant's store, so the bound holds
    /// for the process.
    pub block_cache: Arc<sightline_block::FooterCache>,
    /// How long after memory pressure was last seen full-width merges
    /// still wait: RSS hovers around the soft limit, and a merge started
    /// in a moment just below it holds ~30 MiB whatever the limit.
    pub pressure_hold: Duration,
    /// This node's id when several nodes share the block storage: the ids
    /// of the blocks it writes start with it, so two nodes never write the
    /// same block id (a head's id comes from its WAL segments, which every
    /// node numbers from 1).
    pub node_id: Option<String>,
}

impl Options {
    /// Defaults for a data directory: safe fsync, 32 MiB heads, 7-day
    /// retention.
    pub fn new(data_dir: impl Into<PathBuf>) -> Options {
        Options {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::Always,
            wal_recovery: sightline_wal::RecoveryMode::default(),
            head_max_bytes: 32 << 20,
            head_max_age: Duration::from_secs(120),
            max_frozen_heads: 2,
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            max_disk_bytes: None,
            flush_split_spans: 64 << 10,
            block: BlockOptions::default(),
            flush_zstd_level: 1,
            compaction_min_blocks: 4,
            compaction_max_inputs: 16,
            compaction_max_spans: 512 << 10,
            compaction_hold_spans: 64 << 10,
            compaction_stall_blocks: 64,
            maintenance_interval: Duration::from_secs(30),
            merge_commit_pause: Duration::ZERO,
            memory: Arc::new(MemoryBudget::new(256 << 20)),
            block_cache: Arc::new(sightline_block::FooterCache::new(
                MemoryBudget::new(256 << 20).block_cache_bytes(),
            )),
            pressure_hold: Duration::from_secs(2),
            node_id: None,
        }
    }
}

/// How long a query that builds span results waits for a slot before it
/// is refused (503, retry): the slots bound the memory queries hold, and a
/// refusal is better than a request hanging without an answer.
const QUERY_WAIT: Duration = Duration::from_secs(10);

/// Counts a query in `queries_running` until dropped (before its slot is
/// released, so the gauge never shows more queries than slots).
struct Running<'a>(&'a Metrics);

impl<'a> Running<'a> {
    fn start(metrics: &'a Metrics) -> Running<'a> {
        metrics.queries_running.inc();
        Running(metrics)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.queries_running.dec();
    }
}

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    queries: Arc<QueryGate>,
    ingest: Arc<Ingest>,
    blocks: Arc<BlockSet>,
    background: Arc<Background>,
    data_dir: PathBuf,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// Held for the store's lifetime; released at shutdown.
    lock: Arc<Mutex<Option<File>>>,
    shared: Shared,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("data_dir", &self.data_dir).finish()
    }
}

impl EmbeddedStore {
    /// Opens (creating) the data directory with blocks in its `blocks/`
    /// folder: locks it, loads the manifest and its blocks, replays the WAL
    /// into the head, and starts the background tasks. Must run inside a
    /// tokio runtime.
    pub async fn open(options: Options, metrics: Arc<Metrics>) -> Result<EmbeddedStore, Error> {
        let dir = options.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = lock_dir(&dir)?;
        let storage = {
            let dir = dir.clone();
            run_blocking(move || Ok(Arc::new(LocalFolder::new(&dir)?) as Arc<dyn BlockStorage>)).await?
        };
        let shared = Shared::new(&options, 1, Arc::clone(&metrics));
        Self::open_with(options, storage, lock, shared, metrics).await
    }

    /// Opens the data directory for the WAL (locked, as by
    /// [`EmbeddedStore::open`]) with blocks and manifest kept in `storage`
    /// (an object store shared with other nodes, say).
    pub async fn open_on(
        options: Options,
        storage: Arc<dyn BlockStorage>,
        metrics: Arc<Metrics>,
    ) -> Result<EmbeddedStore, Error> {
        let shared = Shared::new(&options, 1, Arc::clone(&metrics));
        Self::open_shared(options, storage, shared, metrics).await
    }

    /// Like [`EmbeddedStore::open_on`], one of several stores in the
    /// process (one per tenant) sharing the head bytes and query slots of
    /// `shared`.
    pub async fn open_shared(
        options: Options,
        storage: Arc<dyn BlockStorage>,
        shared: Shared,
        metrics: Arc<Metrics>,
    ) -> Result<EmbeddedStore, Error> {
        let dir = options.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = lock_dir(&dir)?;
        Self::open_with(options, storage, lock, shared, metrics).await
    }

    async fn open_with(
        options: Options,
        storage: Arc<dyn BlockStorage>,
        lock: File,
        shared: Shared,
        metrics: Arc<Metrics>,
    ) -> Result<EmbeddedStore, Error> {
        let dir = options.data_dir.clone();
        let damaged = Arc::new(Damaged::new(&metrics));
        let mirror = storage.wal_mirror();
        let cache = Arc::clone(&options.block_cache);
        let blocks = Arc::new(run_blocking(move || BlockSet::open(storage, damaged, cache)).await?);
        let replay_from = blocks.wal_replay_from();

        let wal_options = sightline_wal::Options {
            fsync: options.fsync,
            metrics: Some(Arc::clone(&metrics.wal)),
            recovery: options.wal_recovery,
            mirror,
            ..sightline_wal::Options::default()
        };
        let wal_dir = dir.join(WAL_DIR);
        let (wal, recovered) = run_blocking(move || Ok(Wal::open(&wal_dir, wal_options)?)).await?;
        if let Some(torn) = &recovered.torn_tail {
            tracing::warn!(?torn, "WAL had a torn tail (an interrupted write); cut it off");
        }
        if recovered.skipped_count() > 0 {
            // Each stretch was logged with its segment and offset.
            tracing::error!(
                stretches = recovered.skipped_count(),
                bytes = recovered.skipped_bytes(),
                "WAL recovery skipped damaged records; the spans in them are lost, every valid record was replayed"
            );
        }
        let mut head = Head::default();
        let interner = parking_lot::Mutex::new(Interner::default());
        let mut replayed = 0u64;
        for segment in &recovered.segments {
            if segment.id.0 < replay_from {
                continue;
            }
            for record in &segment.records {
                let indexed = Head::index(record, &interner).map_err(|e| Error::Corrupt {
                    path: dir.join(WAL_DIR),
                    detail: format!(
                        "segment {} holds a record with a valid checksum that is not OTLP protobuf ({e}); \
                         it was written by an incompatible version",
                        segment.id.0
                    ),
                })?;
                replayed += indexed.len() as u64;
                head.push(indexed);
            }
        }
        if replay_from > 0 {
            wal.remove_through(SegmentId(replay_from - 1))?;
        }
        metrics.replayed_spans.inc_by(replayed);
        if replayed > 0 {
            tracing::info!(spans = replayed, "replayed WAL into the head");
        }
        // The live head holds the records of every segment from the replay
        // point on, up to the new active one.
        let head_first = SegmentId(replay_from.clamp(1, wal.active_segment().0));
        let ingest = Arc::new(Ingest::new(
            wal,
            head,
            interner.into_inner(),
            head_first,
            Arc::clone(&shared.heads),
            options.max_frozen_heads,
            Arc::clone(&metrics),
        ));
        let settings = Settings {
            head_max: Arc::clone(&shared.heads),
            head_max_age: options.head_max_age,
            flush_split_spans: options.flush_split_spans,
            block: options.block.clone(),
            flush_zstd_level: options.flush_zstd_level,
            compaction: CompactionPolicy {
                min_inputs: options.compaction_min_blocks,
                max_inputs: options.compaction_max_inputs,
                max_spans: options.compaction_max_spans,
                remerge_max_spans: options.compaction_max_spans / 16,
                hold_spans: options.compaction_hold_spans,
            },
            stall_blocks: options.compaction_stall_blocks,
            retention: RetentionPolicy { max_age: options.retention, max_bytes: options.max_disk_bytes },
            maintenance_interval: options.maintenance_interval,
            pressure_hold: options.pressure_hold,
            id_prefix: options.node_id.as_ref().map(|n| format!("{n}-")).unwrap_or_default(),
            merge_commit_pause: options.merge_commit_pause,
        };
        let queries = Arc::clone(&shared.queries);
        shared.heads.join();
        let background = Arc::new(Background::new(
            Arc::clone(&ingest),
            Arc::clone(&blocks),
            settings,
            metrics,
            Arc::clone(&options.memory),
        ));
        background.update_gauges();
        let tasks = background.spawn();
        Ok(EmbeddedStore {
            queries,
            ingest,
            blocks,
            background,
            data_dir: dir,
            tasks: Arc::new(Mutex::new(tasks)),
            lock: Arc::new(Mutex::new(Some(lock))),
            shared,
        })
    }

    /// Cuts the head now (if not empty) and waits until every frozen head is
    /// in a block. For tests and shutdown.
    pub async fn flush(&self) -> Result<(), Error> {
        self.background.flush_everything().await
    }

    /// Runs one round of retention and compaction now. For tests.
    pub async fn maintain(&self) -> Result<(), Error> {
        self.background.maintain_once().await
    }

    /// Follows other nodes' changes to a shared block storage now (a
    /// background task does it every poll interval); returns whether the
    /// manifest changed. For tests and tools.
    pub async fn refresh_blocks(&self) -> Result<bool, Error> {
        let blocks = Arc::clone(&self.blocks);
        let changed = run_blocking(move || blocks.refresh()).await?;
        self.background.empty_trash().await;
        self.background.update_gauges();
        Ok(changed)
    }

    /// The head bytes this store shares with the other tenants' stores.
    pub fn shared_heads(&self) -> &Arc<crate::HeadShare> {
        self.shared.heads()
    }

    /// Number of live blocks.
    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// A read view: the snapshot every read method works on.
    fn view(&self) -> View {
        View::take(&self.ingest, &self.blocks)
    }

    /// Runs `read` on a fresh view on the blocking pool: reads decode
    /// blocks and scan heads, which is CPU work the async workers should
    /// not do.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&View) -> Result<T, QueryError> + Send + 'static,
    ) -> Result<T, QueryError> {
        let view = self.view();
        tokio::task::spawn_blocking(move || read(&view)).await.map_err(internal)?
    }

    /// Like [`EmbeddedStore::read`], for reads that build span results:
    /// they wait for one of the budget's query slots (see
    /// [`QUERY_WAIT`]) and build at most `query_bytes_each` of spans.
    async fn read_spans(
        &self,
        read: impl FnOnce(&View, &mut ResultBudget) -> Result<Vec<Vec<Span>>, QueryError> + Send + 'static,
    ) -> Result<Vec<Vec<Span>>, QueryError> {
        self.read_spans_in(Self::view, read).await
    }

    /// [`EmbeddedStore::read_spans`] on the view `take` makes (taken once
    /// a query slot is free, so it is as fresh as can be).
    async fn read_spans_in(
        &self,
        take: fn(&EmbeddedStore) -> View,
        read: impl FnOnce(&View, &mut ResultBudget) -> Result<Vec<Vec<Span>>, QueryError> + Send + 'static,
    ) -> Result<Vec<Vec<Span>>, QueryError> {
        let gate = &self.queries;
        let Ok(Ok(permit)) = tokio::time::timeout(QUERY_WAIT, Arc::clone(&gate.slots).acquire_owned()).await
        else {
            gate.metrics.queries_refused.inc();
            return Err(QueryError::Unavailable(format!(
                "{} queries are building results already; retry shortly",
                gate.running()
            )));
        };
        let (each, metrics) = (gate.each, Arc::clone(&gate.metrics));
        let view = take(self);
        // The slot moves into the blocking work: it is held while the work
        // runs, even if the caller gives up waiting for it.
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            let _running = Running::start(&metrics);
            let mut budget = ResultBudget::new(each);
            let traces = read(&view, &mut budget)?;
            if budget.truncated {
                metrics.query_results_truncated.inc();
                tracing::warn!(
                    traces = traces.len(),
                    budget_bytes = each,
                    "a query's results were cut to its memory budget"
                );
            }
            Ok(traces)
        })
        .await
        .map_err(internal)?
    }

    /// Stops the tasks and releases the files without flushing the head:
    /// what a crash leaves behind, minus the torn tail the WAL tests cover.
    #[cfg(test)]
    pub(crate) async fn stop_without_flush(&self) {
        self.ingest.stop_accepting();
        self.background.close();
        let _ = self.ingest.wal().close().await;
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        self.lock.lock().take();
    }

    #[cfg(test)]
    pub(crate) async fn hold_flushes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.background.hold_flushes().await
    }

    #[cfg(test)]
    pub(crate) async fn hold_compactions(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.background.hold_compactions().await
    }

    /// Estimated bytes of the live head. For tests.
    #[cfg(test)]
    pub(crate) fn head_bytes(&self) -> usize {
        self.ingest.head_state().1
    }

    /// Span counts of the live blocks. For tests.
    #[cfg(test)]
    pub(crate) fn block_spans(&self) -> Vec<u64> {
        self.blocks.list().iter().map(|b| b.meta().span_count).collect()
    }

    /// Cuts the head now and returns how many heads wait to be flushed.
    /// For tests.
    #[cfg(test)]
    pub(crate) async fn cut_now(&self) -> usize {
        let _ = self.ingest.cut().await;
        self.ingest.frozen_count()
    }
}

/// Takes the data directory's lock file, held until shutdown.
pub(crate) fn lock_dir(dir: &std::path::Path) -> Result<File, Error> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    if lock.try_lock().is_err() {
        return Err(Error::Locked { path: dir.to_owned() });
    }
    Ok(lock)
}

#[async_trait]
impl TracesConsumer for EmbeddedStore {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.ingest.append(batch).await
    }
}

#[async_trait]
impl SpanReader for EmbeddedStore {
    async fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, QueryError> {
        let found = self.read_spans(move |view, budget| view.traces_within(&[id], budget)).await?;
        Ok(found.into_iter().next())
    }

    async fn traces(&self, ids: &[TraceId]) -> Result<Vec<Vec<Span>>, QueryError> {
        let mut unique = Vec::with_capacity(ids.len());
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        for id in ids {
            if seen.insert(*id) {
                unique.push(*id);
            }
        }
        self.read_spans(move |view, budget| view.traces_within(&unique, budget)).await
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Vec<Span>>, QueryError> {
        let query = query.clone();
        self.read_spans(move |view, budget| view.find_traces(&query, budget)).await
    }

    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceHit>, QueryError> {
        let query = query.clone();
        self.read(move |view| view.find_trace_ids(&query)).await
    }

    async fn services(&self) -> Result<Vec<String>, QueryError> {
        Ok(self.view().services())
    }

    async fn operations(&self, service: &str, kind: Option<SpanKind>) -> Result<Vec<Operation>, QueryError> {
        Ok(self.view().operations(service, kind))
    }

    async fn dependencies(
        &self,
        end_unix_nanos: u64,
        lookback_nanos: u64,
    ) -> Result<Vec<DependencyLink>, QueryError> {
        self.read(move |view| Ok(view.dependencies(end_unix_nanos, lookback_nanos))).await
    }
}

/// The heads of an [`EmbeddedStore`] only: spans this node received that
/// are not yet in a block the manifest lists. Other nodes sharing the
/// bucket read the blocks themselves and ask a live peer for just this
/// (`/internal/head/*`), so they see its spans before it flushes.
#[derive(Clone)]
pub struct HeadReader(pub EmbeddedStore);

impl HeadReader {
    fn view(store: &EmbeddedStore) -> View {
        store.view().heads_only()
    }
}

#[async_trait]
impl SpanReader for HeadReader {
    async fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, QueryError> {
        let found =
            self.0.read_spans_in(Self::view, move |view, budget| view.traces_within(&[id], budget)).await?;
        Ok(found.into_iter().next())
    }

    async fn traces(&self, ids: &[TraceId]) -> Result<Vec<Vec<Span>>, QueryError> {
        let mut seen = std::collections::HashSet::with_capacity(ids.len());
        let unique: Vec<TraceId> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
        self.0.read_spans_in(Self::view, move |view, budget| view.traces_within(&unique, budget)).await
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Vec<Span>>, QueryError> {
        let query = query.clone();
        self.0.read_spans_in(Self::view, move |view, budget| view.find_traces(&query, budget)).await
    }

    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceHit>, QueryError> {
        let (view, query) = (Self::view(&self.0), query.clone());
        tokio::task::spawn_blocking(move || view.find_trace_ids(&query)).await.map_err(internal)?
    }

    async fn services(&self) -> Result<Vec<String>, QueryError> {
        Ok(Self::view(&self.0).services())
    }

    async fn operations(&self, service: &str, kind: Option<SpanKind>) -> Result<Vec<Operation>, QueryError> {
        Ok(Self::view(&self.0).operations(service, kind))
    }

    async fn dependencies(
        &self,
        end_unix_nanos: u64,
        lookback_nanos: u64,
    ) -> Result<Vec<DependencyLink>, QueryError> {
        Ok(Self::view(&self.0).dependencies(end_unix_nanos, lookback_nanos))
    }
}

#[async_trait]
impl TraceStore for EmbeddedStore {
    fn health(&self) -> ComponentHealth {
        let failure = self.ingest.failure().or_else(|| self.ingest.write_trouble());
        let head = self.ingest.head_state().0;
        let blocks = self.blocks.len();
        let frozen = self.ingest.frozen_count();
        let damaged = self.blocks.damaged().list();
        // Damaged blocks leave the store serving (the rest of the data is
        // intact), so they are a note here, not a failed check.
        let damage = match damaged.first() {
            None => String::new(),
            Some((id, _)) => format!(
                "; {} damaged blocks ({id}{}): run sightline verify",
                damaged.len(),
                if damaged.len() > 1 { ", …" } else { "" }
            ),
        };
        match failure {
            Some(why) => ComponentHealth { name: "store".into(), healthy: false, detail: why },
            None => ComponentHealth {
                name: "store".into(),
                healthy: true,
                detail: format!("{head} spans in head, {frozen} heads flushing, {blocks} blocks{damage}"),
            },
        }
    }

    async fn shutdown(&self) {
        if !self.ingest.stop_accepting() {
            return;
        }
        // The cut waits for in-flight appends (they hold the cut lock), then
        // the head is flushed so the next start has no WAL to replay. If the
        // flush fails the WAL still has everything.
        if let Err(e) = self.background.flush_everything().await {
            tracing::warn!(error = %e, "final flush failed; the WAL will be replayed at next start");
        }
        self.background.close();
        if let Err(e) = self.ingest.wal().close().await {
            tracing::warn!(error = %e, "closing the WAL failed");
        }
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        self.background.empty_trash().await;
        self.lock.lock().take();
        self.shared.heads.leave();
    }
}
