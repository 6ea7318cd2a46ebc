//! [`LogStore`]: WAL + head + blocks behind [`LogsConsumer`] and
//! [`LogReader`].

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use parking_lot::{Mutex, RwLock};
use prost::Message as _;
use sightline_model::{
    ComponentHealth, ConsumeError, LogBatch, LogPage, LogQuery, LogReader, LogsConsumer, MemoryBudget,
    Pressure, QueryError, otlp,
};
use sightline_store::{
    BlockStorage, FooterCache, LocalFolder, ManifestState, ManifestVersion, flushed_block_id,
};
use sightline_wal::{FsyncPolicy, RecoveryMode, SegmentId, Wal};
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;

use crate::block::read::Caches;
use crate::block::{self, LogBlock};
use crate::head::{Head, HeadBatch};
use crate::metrics::Refusal;
use crate::topk::TopK;
use crate::{Error, Metrics};

/// The WAL folder inside the log store's folder.
pub(crate) const WAL_DIR: &str = "wal";

/// How the log store is set up (built in code by the binary).
#[derive(Debug, Clone)]
pub struct Options {
    /// The log store's own folder (`<data dir>/logs`): its WAL, blocks and
    /// manifest, beside the trace store's.
    pub dir: PathBuf,
    /// When WAL appends are synced before acknowledging (the trace
    /// store's `--wal-fsync`).
    pub fsync: FsyncPolicy,
    /// What WAL recovery does with damaged records.
    pub wal_recovery: RecoveryMode,
    /// Cut the head once it holds this many bytes (OTLP bytes + index).
    pub head_max_bytes: usize,
    /// Cut the head at least this often when it is not empty.
    pub head_max_age: Duration,
    /// Heads cut but not yet flushed; beyond this, appends wait up to
    /// `flush_wait` for the flusher, then are refused (retryably).
    pub max_frozen_heads: usize,
    /// How long an append waits for a flush when the head is full and
    /// every frozen slot is taken, before it is refused ([`FLUSH_WAIT`]).
    pub flush_wait: Duration,
    /// Delete blocks whose newest record is older than this (`--retention`,
    /// shared with traces).
    pub retention: Option<Duration>,
    /// Delete the oldest blocks while log blocks take more than this.
    pub max_disk_bytes: Option<u64>,
    /// Records per Parquet row group.
    pub row_group_rows: usize,
    /// How often retention runs.
    pub maintenance_interval: Duration,
    /// How often the background tasks look for work nobody woke them for
    /// (a head past its age, merges and retention due). Tests lengthen it
    /// so that only their own steps start work.
    pub tick: Duration,
    /// Whether the background task merges small blocks (tests turn it off
    /// to merge at a moment of their choosing).
    pub background_compaction: bool,
    /// Flushes wait while this many small blocks wait to be merged (the
    /// write stall of LSM stores, as the trace store's
    /// `compaction_stall_blocks`): at saturation merges cannot keep pace
    /// with flushes on two cores, and blocks would pile up without bound
    /// (every search and lookup pays per block). Ingest then settles at
    /// the rate flushes and merges together keep up with; appends wait,
    /// then are refused (`head_full`) meanwhile.
    pub compaction_stall_blocks: usize,
    /// Batches the live tail buffers for its slowest subscriber before
    /// that subscriber is dropped.
    pub tail_capacity: usize,
    /// The process memory budget: while the memory limiter reports
    /// pressure, the head is cut and flushed (its bytes leave memory);
    /// searches run at most [`MAX_QUERIES`] at once.
    pub memory: Arc<MemoryBudget>,
    /// Where metrics go (unregistered by default).
    pub metrics: Arc<Metrics>,
    /// What the log stores of all tenants share (clones of these options
    /// share it): `head_max_bytes` and the query slots.
    pub shared: Arc<Shared>,
    /// Where blocks and their manifest live; `None`: the local folder
    /// `dir` (`blocks/`, `manifest.json`). A shared storage (a bucket)
    /// makes the store follow other nodes' changes to the manifest, and
    /// merge and expire blocks only while it may (the compaction lease).
    pub storage: Option<Arc<dyn BlockStorage>>,
    /// Put before flushed blocks' ids: the node id (`<node>-`) in a
    /// shared storage, where every node's WAL numbers its segments from 1.
    pub id_prefix: String,
    /// Where open blocks keep their footers and trace id filters, what a
    /// trace lookup reads (shared by every tenant's store: clones of these
    /// options share it), bounded by
    /// [`MemoryBudget::log_block_cache_bytes`]; evicted parts are read
    /// again from the block.
    pub block_cache: Arc<FooterCache>,
    /// Where open blocks keep their body word filters, bounded by
    /// [`MemoryBudget::log_word_cache_bytes`]: apart from `block_cache`,
    /// so that body searches, which read every block's, cannot evict what
    /// trace lookups need.
    pub word_cache: Arc<FooterCache>,
}

/// What the log stores of all tenants share, as the trace stores share
/// their head budget: `head_max_bytes` is the bound of all heads together
/// (each head is cut at it divided by the stores open, never below it
/// divided by the most tenants), and [`MAX_QUERIES`] searches run at once
/// over all tenants. Without it, every new tenant would add a whole head's
/// memory and four more query slots.
#[derive(Debug)]
pub struct Shared {
    open: AtomicUsize,
    max_stores: usize,
    queries: tokio::sync::Semaphore,
}

impl Shared {
    /// For at most `max_stores` stores (`--max-tenants`).
    pub fn new(max_stores: usize) -> Shared {
        Shared {
            open: AtomicUsize::new(0),
            max_stores: max_stores.max(1),
            queries: tokio::sync::Semaphore::new(MAX_QUERIES),
        }
    }

    /// One store's share of `total` head bytes.
    fn head_share(&self, total: usize) -> usize {
        let open = self.open.load(Ordering::Relaxed).clamp(1, self.max_stores);
        total / open
    }
}

/// Searches running at once: each holds at most `limit` decoded records
/// plus one decoded head batch or one row-group batch (4096 rows).
pub const MAX_QUERIES: usize = 4;

/// How long a search waits for a slot before it is refused (503, retry).
const QUERY_WAIT: Duration = Duration::from_secs(10);

impl Options {
    /// Defaults for a folder, with the head bound taken from the memory
    /// budget.
    pub fn new(dir: impl Into<PathBuf>, memory: Arc<MemoryBudget>) -> Options {
        Options {
            dir: dir.into(),
            fsync: FsyncPolicy::Always,
            wal_recovery: RecoveryMode::default(),
            head_max_bytes: memory.log_head_bytes().max(1 << 20),
            head_max_age: Duration::from_secs(300),
            max_frozen_heads: 2,
            flush_wait: FLUSH_WAIT,
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            max_disk_bytes: None,
            row_group_rows: 16 << 10,
            maintenance_interval: Duration::from_secs(30),
            tick: Duration::from_secs(1),
            background_compaction: true,
            compaction_stall_blocks: COMPACT_STALL_BLOCKS,
            tail_capacity: 64,
            metrics: Arc::new(Metrics::default()),
            shared: Arc::new(Shared::new(1)),
            storage: None,
            id_prefix: String::new(),
            block_cache: Arc::new(FooterCache::new(memory.log_block_cache_bytes())),
            word_cache: Arc::new(FooterCache::new(memory.log_word_cache_bytes())),
            memory,
        }
    }

    /// The caches open blocks keep their parts in.
    pub(crate) fn caches(&self) -> Caches {
        Caches { blocks: Arc::clone(&self.block_cache), words: Arc::clone(&self.word_cache) }
    }
}

/// A head cut from ingest, waiting to become a block; it covers WAL
/// segments `first..=last`.
#[derive(Debug)]
struct Frozen {
    head: Head,
    first: SegmentId,
    last: SegmentId,
}

/// What queries read: replaced piecewise under a short write lock, cloned
/// (pointer copies) under a read lock.
#[derive(Debug)]
struct State {
    live: Head,
    /// The first WAL segment the live head's batches may be in.
    live_first: SegmentId,
    frozen: Vec<Arc<Frozen>>,
    blocks: Vec<Arc<LogBlock>>,
    /// The gauge values this store last added to the shared metrics (the
    /// stores of all tenants add up in one set of gauges).
    published: [i64; 5],
}

#[derive(Debug)]
struct Inner {
    opts: Options,
    wal: Wal,
    storage: Arc<dyn BlockStorage>,
    /// Appends hold it shared from WAL append to head insert; a cut holds
    /// it exclusively while it rotates the WAL and freezes the head, so a
    /// batch is never in a sealed segment but in the next head (where a
    /// flush would delete its segment before the batch reached a block).
    cut_lock: tokio::sync::RwLock<()>,
    state: RwLock<State>,
    manifest: Mutex<(ManifestState, Option<ManifestVersion>)>,
    wake: Notify,
    stop: AtomicBool,
    tail: broadcast::Sender<Arc<LogBatch>>,
    /// Set when background work failed: ingest then refuses (the WAL
    /// keeps what was acknowledged; a restart replays it).
    failed: Mutex<Option<String>>,
    /// Serialises flushes: the background task and
    /// [`LogStore::flush_now`] would otherwise write the same frozen head
    /// into the same block folder at once.
    flushing: tokio::sync::Mutex<()>,
    /// Notified whenever a frozen head leaves the list (appends waiting
    /// for room, [`Inner::wait_for_room`]).
    flushed: Notify,
    /// Serialises merges and retention (retention must not delete a block
    /// a merge is copying). Flushes do not wait on it: a merge of many
    /// blocks takes seconds, and ingest is refused while frozen heads
    /// wait for a flush.
    maintenance: tokio::sync::Mutex<()>,
    /// Wakes the compactor: a flush added a block.
    wake_compactor: Notify,
    /// Notified after every merge and every failed round of merges: what
    /// a stalled flush waits for.
    compacted: Notify,
    /// Whether the compactor's last round failed: flushes do not stall on
    /// merges that cannot make progress.
    compaction_failing: AtomicBool,
}

impl Inner {
    /// Where this store's live head is cut: its share of the heads' bound.
    fn head_limit(&self) -> usize {
        self.opts.shared.head_share(self.opts.head_max_bytes)
    }

    /// Whether an append may go in now: the live head is below its bound,
    /// or a frozen slot is free for the cut the append then makes.
    fn has_room(&self) -> bool {
        let st = self.state.read();
        st.frozen.len() < self.opts.max_frozen_heads || st.live.bytes < self.head_limit()
    }

    /// Marks the store failed (ingest refused until a restart) and wakes
    /// the appends waiting for a flush, which will not come.
    fn fail(&self, why: String) {
        *self.failed.lock() = Some(why);
        self.flushed.notify_waiters();
    }

    /// Waits up to `flush_wait` for [`Inner::has_room`]; `false`: still
    /// no room (or the store failed), the append is refused.
    async fn wait_for_room(&self) -> bool {
        let deadline = tokio::time::Instant::now() + self.opts.flush_wait;
        loop {
            let flushed = self.flushed.notified();
            tokio::pin!(flushed);
            // Registered before the check, so a flush ending between the
            // check and the wait still wakes this append.
            flushed.as_mut().enable();
            if self.has_room() {
                return true;
            }
            // A failed store never flushes again: no use waiting.
            if self.failed.lock().is_some() {
                return false;
            }
            if tokio::time::timeout_at(deadline, flushed).await.is_err() {
                return self.has_room();
            }
        }
    }

    /// Commits a manifest change by compare-and-swap, then makes the
    /// served blocks follow the new manifest (with `also` applied to the
    /// state in the same step), under one lock so they never disagree.
    /// `fresh` are the blocks the change lists, already open. Returns the
    /// ids that left the served list.
    ///
    /// Conflicts with other nodes' commits are retried as the trace
    /// store's are ([`sightline_store::swap_manifest`]). Blocking.
    fn change(
        &self,
        change: impl Fn(&mut ManifestState) -> Result<(), Error>,
        fresh: &[Arc<LogBlock>],
        also: impl FnOnce(&mut State),
    ) -> Result<Vec<String>, Error> {
        let mut manifest = self.manifest.lock();
        let (next, version) =
            sightline_store::swap_manifest(&*self.storage, &mut manifest, change, |state| {
                self.follow(state, &[], |_| {});
            })?;
        let removed = self.follow(&next, fresh, also);
        *manifest = (next, Some(version));
        Ok(removed)
    }

    /// Follows changes other nodes made to a shared manifest: reads it if
    /// it changed (a conditional read, cheap when it did not) and serves
    /// the blocks it lists. Blocking.
    fn refresh(&self) -> Result<(), Error> {
        let mut manifest = self.manifest.lock();
        let Some((state, version)) = self.storage.poll_manifest(manifest.1.as_ref())? else {
            return Ok(());
        };
        self.follow(&state, &[], |_| {});
        *manifest = (state, Some(version));
        Ok(())
    }

    /// Makes the served blocks the ones `state` lists: keeps the open
    /// ones, adds the `fresh` ones, opens the others (other nodes' blocks,
    /// through the storage's cache); a block that fails to open is left
    /// out (logged; the next change or poll tries again). Returns the ids
    /// no longer served.
    fn follow(
        &self,
        state: &ManifestState,
        fresh: &[Arc<LogBlock>],
        also: impl FnOnce(&mut State),
    ) -> Vec<String> {
        let current = self.state.read().blocks.clone();
        let mut by_id: HashMap<&str, &Arc<LogBlock>> =
            current.iter().map(|b| (b.meta().id.as_str(), b)).collect();
        for block in fresh {
            by_id.insert(block.meta().id.as_str(), block);
        }
        let mut next = Vec::with_capacity(state.blocks.len());
        for id in &state.blocks {
            match by_id.get(id.as_str()) {
                Some(block) => next.push(Arc::clone(block)),
                None => match LogBlock::open_in(&self.storage, id, &self.opts.caches()) {
                    Ok(block) => next.push(Arc::new(block)),
                    Err(e) => {
                        tracing::warn!(block = %id, error = %e, "cannot open a listed log block; not served")
                    }
                },
            }
        }
        let listed: HashSet<&str> = state.blocks.iter().map(String::as_str).collect();
        let removed =
            current.iter().map(|b| b.meta().id.clone()).filter(|id| !listed.contains(id.as_str())).collect();
        let mut st = self.state.write();
        st.blocks = next;
        also(&mut st);
        st.publish(&self.opts.metrics);
        removed
    }
}

/// The durable log store. Clones are handles to the same store (the
/// per-tenant router hands them out); it stops when the last is dropped.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    _stop: Arc<StopOnDrop>,
}

/// Stops the background task when the last handle of a store goes.
#[derive(Debug)]
struct StopOnDrop(Arc<Inner>);

impl LogStore {
    /// Opens (creating) the store in `options.dir`: loads the manifest and
    /// its blocks, deletes unlisted block folders (unfinished flushes),
    /// replays the WAL into the head, and starts the background task
    /// (cut, flush, retention). Needs a tokio runtime.
    pub async fn open(options: Options) -> Result<LogStore, Error> {
        let opts = options.clone();
        let inner = tokio::task::spawn_blocking(move || open_blocking(opts))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let inner = Arc::new(inner);
        inner.opts.shared.open.fetch_add(1, Ordering::Relaxed);
        inner.state.write().publish(&inner.opts.metrics);
        let task = tokio::spawn(background(Arc::clone(&inner)));
        let stop = Arc::new(StopOnDrop(Arc::clone(&inner)));
        Ok(LogStore { inner, task: Arc::new(Mutex::new(Some(task))), _stop: stop })
    }

    /// Current health, for `/health`.
    pub fn health(&self) -> ComponentHealth {
        let st = self.inner.state.read();
        let failed = self.inner.failed.lock().clone();
        let records: usize = st.live.records + st.frozen.iter().map(|f| f.head.records).sum::<usize>();
        let stored: u64 = st.blocks.iter().map(|b| b.meta().record_count).sum();
        ComponentHealth {
            name: "logstore".to_owned(),
            healthy: failed.is_none(),
            detail: failed.unwrap_or_else(|| {
                let place = if self.inner.storage.shared() {
                    format!(" in {}", self.inner.storage.location())
                } else {
                    String::new()
                };
                format!("{} blocks{place} ({stored} records), {records} records in the head", st.blocks.len())
            }),
        }
    }

    /// Cuts the live head and flushes every frozen head now (tests, and
    /// shutdown of a store that should leave no WAL behind).
    pub async fn flush_now(&self) -> Result<(), Error> {
        cut(&self.inner, Cut::Always).await?;
        flush_all(&self.inner, false).await
    }

    /// Reads a shared manifest now if it changed (what the background task
    /// does every poll interval): other nodes' blocks are served, the ones
    /// they dropped no longer (tests).
    pub async fn refresh_now(&self) -> Result<(), Error> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.refresh()).await.map_err(|e| Error::Task(e.to_string()))?
    }

    /// Runs every merge due now. Unlike the background merges, any run of two or more small blocks
    /// is merged (tests, and benchmarks settling a store).
    pub async fn compact_now(&self) -> Result<(), Error> {
        compact(&self.inner, 2).await
    }

    /// Applies retention now.
    pub async fn apply_retention_now(&self) -> Result<(), Error> {
        apply_retention(&self.inner).await
    }

    /// Stops the background task and closes the WAL (what it holds is
    /// replayed at the next start). In a shared storage the head is
    /// flushed first (bounded by [`SHUTDOWN_FLUSH`]), so the other nodes
    /// serve its records while this one is down. Safe to call twice.
    pub async fn shutdown(&self) {
        if self.inner.storage.shared() && !self.inner.stop.load(Ordering::SeqCst) {
            match tokio::time::timeout(SHUTDOWN_FLUSH, self.flush_now()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "flushing the log head at shutdown failed; the WAL keeps it")
                }
                Err(_) => tracing::warn!("flushing the log head at shutdown timed out; the WAL keeps it"),
            }
        }
        self.inner.stop.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        if let Err(e) = self.inner.wal.close().await {
            tracing::warn!(error = %e, "closing the log WAL failed");
        }
    }

    /// Holds the merge/retention lock as a running merge does (tests).
    #[cfg(test)]
    pub(crate) async fn hold_maintenance(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.maintenance.lock().await
    }

    /// Holds the flush lock as a running flush does: frozen heads stay
    /// frozen while the guard lives (tests).
    #[cfg(test)]
    pub(crate) async fn hold_flushes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.flushing.lock().await
    }

    /// Cuts the live head without flushing it: it waits in the frozen
    /// queue for the background task (tests).
    #[cfg(test)]
    pub(crate) async fn cut_now(&self) -> Result<(), Error> {
        cut(&self.inner, Cut::Always).await
    }

    /// Wakes the background task for a round, as a full head does (tests).
    #[cfg(test)]
    pub(crate) fn wake_now(&self) {
        self.inner.wake.notify_one();
    }

    /// The store's metrics (tests).
    #[cfg(test)]
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.opts.metrics
    }

    /// Heads cut and waiting for a flush (tests).
    #[cfg(test)]
    pub(crate) fn frozen_heads(&self) -> usize {
        self.inner.state.read().frozen.len()
    }

    /// Bytes in the live head (tests).
    #[cfg(test)]
    pub(crate) fn live_bytes(&self) -> usize {
        self.inner.state.read().live.bytes
    }

    /// Compressed bytes per column over all live blocks, in column order
    /// (benchmarks: where the stored bytes go).
    pub fn column_bytes(&self) -> Vec<(String, u64)> {
        let blocks = self.inner.state.read().blocks.clone();
        let mut out: Vec<(String, u64)> = Vec::new();
        for b in blocks {
            // A footer that cannot be read again leaves its block out of
            // these (benchmark) figures.
            for (name, bytes) in b.column_bytes().unwrap_or_default() {
                match out.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, total)) => *total += bytes,
                    None => out.push((name, bytes)),
                }
            }
        }
        out
    }

    /// What the live blocks' parts take (footers, filters, resident
    /// summaries), each read if not cached (benchmarks: where an open
    /// block's memory goes; costly).
    pub fn block_memory(&self) -> Result<block::LogBlockMemory, Error> {
        let blocks = self.inner.state.read().blocks.clone();
        let mut sum = block::LogBlockMemory::default();
        for b in blocks {
            sum.add(&b.memory()?);
        }
        Ok(sum)
    }

    /// Heap bytes the live blocks hold now: their resident summaries plus
    /// the parts they have in the block cache.
    pub fn block_memory_size(&self) -> usize {
        self.inner.state.read().blocks.iter().map(|b| b.memory_size()).sum()
    }

    /// Live log blocks' metadata, oldest first (tests, benchmarks).
    pub fn blocks(&self) -> Vec<block::LogBlockMeta> {
        let st = self.inner.state.read();
        st.blocks.iter().map(|b| b.meta().clone()).collect()
    }
}

impl Drop for StopOnDrop {
    /// Stops the background task, which releases the WAL (and its folder
    /// lock) once it ends: dropping without [`LogStore::shutdown`] is what
    /// a crash looks like to the data, which the WAL keeps.
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

fn open_blocking(opts: Options) -> Result<Inner, Error> {
    std::fs::create_dir_all(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
    let storage: Arc<dyn BlockStorage> = match &opts.storage {
        Some(storage) => Arc::clone(storage),
        None => Arc::new(LocalFolder::new(&opts.dir)?),
    };
    let (manifest, version) = match storage.read_manifest()? {
        Some((m, v)) => (m, Some(v)),
        None => (ManifestState::default(), None),
    };
    let mut blocks = Vec::new();
    for id in &manifest.blocks {
        match LogBlock::open_in(&storage, id, &opts.caches()) {
            Ok(b) => blocks.push(Arc::new(b)),
            // A damaged block is not served; the rest are.
            Err(e) => tracing::error!(block = %id, error = %e, "log block unreadable; not served"),
        }
    }
    // In a shared storage an unlisted block may be another node's upload
    // in progress: the lease holder collects the leftovers after a grace
    // period instead.
    if !storage.shared() {
        for id in storage.list()? {
            if !manifest.blocks.contains(&id) {
                tracing::info!(block = %id, "deleting a log block no manifest lists (an unfinished flush)");
                storage.delete(&id)?;
            }
        }
    }
    let wal_dir = opts.dir.join(WAL_DIR);
    let (wal, recovered) = Wal::open(
        &wal_dir,
        sightline_wal::Options {
            fsync: opts.fsync,
            max_pending_bytes: (opts.head_max_bytes * 2).max(64 << 20),
            recovery: opts.wal_recovery,
            metrics: Some(Arc::clone(&opts.metrics.wal)),
            mirror: None,
        },
    )?;
    let mut live = Head::default();
    let mut live_first = wal.active_segment();
    for segment in recovered.segments.iter().filter(|s| s.id.0 >= manifest.wal_replay_from) {
        live_first = live_first.min(segment.id);
        for payload in &segment.records {
            let records = match ExportLogsServiceRequest::decode(payload.clone()) {
                Ok(req) => otlp::decode_logs_request(req).records,
                Err(e) => {
                    tracing::error!(segment = segment.id.0, error = %e, "log WAL record does not decode; skipped");
                    continue;
                }
            };
            live.push(HeadBatch::new(payload.clone(), &records));
        }
    }
    if !live.is_empty() {
        tracing::info!(records = live.records, "log WAL replayed");
    }
    let (tail, _) = broadcast::channel(opts.tail_capacity.max(1));
    Ok(Inner {
        opts,
        wal,
        storage,
        cut_lock: tokio::sync::RwLock::new(()),
        state: RwLock::new(State { live, live_first, frozen: Vec::new(), blocks, published: [0; 5] }),
        manifest: Mutex::new((manifest, version)),
        wake: Notify::new(),
        stop: AtomicBool::new(false),
        tail,
        failed: Mutex::new(None),
        flushing: tokio::sync::Mutex::new(()),
        flushed: Notify::new(),
        maintenance: tokio::sync::Mutex::new(()),
        wake_compactor: Notify::new(),
        compacted: Notify::new(),
        compaction_failing: AtomicBool::new(false),
    })
}

const RETRY: Duration = Duration::from_secs(1);

/// How long an append waits for a flush when the head is full and every
/// frozen slot is taken, before it is refused (as the trace store's
/// appends do; the default of [`Options::flush_wait`]). Refusing at once sent each sender away for its whole
/// retry delay: 72 refusals in a 20 s run at 8 senders were 72 of its 160
/// sender-seconds idle while a flush was about to end. A waiting append
/// holds its request's share of the receivers' in-flight budget, so
/// memory stays bounded: new requests are refused there instead.
pub const FLUSH_WAIT: Duration = Duration::from_millis(500);

/// How long a shutdown waits for the head's flush into a shared storage.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(30);

#[async_trait]
impl LogsConsumer for LogStore {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        let records = batch.len() as u64;
        let m = &self.inner.opts.metrics;
        match self.consume(batch).await {
            Ok(()) => {
                m.records_appended.inc_by(records);
                Ok(())
            }
            Err((reason, e)) => {
                m.refuse(reason);
                Err(e)
            }
        }
    }
}

impl LogStore {
    /// Appends `batch`; a refusal says why (for the metric's label).
    async fn consume(&self, batch: LogBatch) -> Result<(), (Refusal, ConsumeError)> {
        let inner = &self.inner;
        let unavailable = |reason: Refusal, why: String| {
            (reason, ConsumeError::Unavailable { reason: why, retry_after: RETRY })
        };
        if let Some(why) = inner.failed.lock().clone() {
            return Err(unavailable(Refusal::failed, format!("log store failed: {why}")));
        }
        if inner.stop.load(Ordering::SeqCst) {
            return Err(unavailable(Refusal::shutting_down, "log store is shutting down".into()));
        }
        if batch.is_empty() {
            return Ok(());
        }
        if !inner.wait_for_room().await {
            // The store may have failed during the wait: that is the
            // reason, not a full head (and not worth a quick retry).
            if let Some(why) = inner.failed.lock().clone() {
                return Err(unavailable(Refusal::failed, format!("log store failed: {why}")));
            }
            return Err((
                Refusal::head_full,
                ConsumeError::Overloaded {
                    reason: "log store head is full and flushes are behind".into(),
                    retry_after: RETRY,
                },
            ));
        }
        // Indexing outside every lock.
        let indexed = HeadBatch::new(batch.otlp_bytes().clone(), batch.records());
        let guard = inner.cut_lock.read().await;
        inner.wal.append(batch.otlp_bytes().clone()).await.map_err(|e| {
            if e.is_retryable() {
                (
                    Refusal::wal,
                    ConsumeError::Overloaded { reason: format!("log WAL: {e}"), retry_after: RETRY },
                )
            } else {
                unavailable(Refusal::wal, format!("log WAL: {e}"))
            }
        })?;
        let full = {
            let mut st = inner.state.write();
            st.live.push(indexed);
            st.publish(&inner.opts.metrics);
            st.live.bytes >= inner.head_limit()
        };
        drop(guard);
        if full {
            // Cut here rather than in the background task, which may be
            // busy flushing: the head would grow past its bound meanwhile
            // (it did: 80k records in a 4 MiB head, 700 MB RSS over a
            // million records). With every frozen slot taken the cut
            // waits, and the next appends are refused until a flush ends.
            if let Err(e) = cut(inner, Cut::IfFull).await {
                tracing::error!(error = %e, "cutting the log head failed");
                inner.fail(e.to_string());
            }
            inner.wake.notify_one();
        }
        if inner.tail.receiver_count() > 0 {
            let _ = inner.tail.send(Arc::new(batch));
        }
        Ok(())
    }
}

impl LogStore {
    /// Like [`LogReader::find_logs`] over the heads only (what this node
    /// acknowledged and has not flushed yet): what a node sharing a bucket
    /// serves its peers, who read the blocks themselves.
    pub async fn find_head_logs(&self, query: &LogQuery) -> Result<LogPage, QueryError> {
        self.search(query, true).await
    }

    async fn search(&self, query: &LogQuery, heads_only: bool) -> Result<LogPage, QueryError> {
        let _slot = tokio::time::timeout(QUERY_WAIT, self.inner.opts.shared.queries.acquire())
            .await
            .map_err(|_| {
                self.inner.opts.metrics.searches_refused.inc();
                QueryError::Unavailable("too many log searches at once; retry".into())
            })?
            .map_err(|_| QueryError::Unavailable("log store is shutting down".into()))?;
        let (live, frozen, blocks) = {
            let st = self.inner.state.read();
            let blocks = if heads_only { Vec::new() } else { st.blocks.clone() };
            (st.live.batches.clone(), st.frozen.clone(), blocks)
        };
        let query = query.clone();
        self.inner.opts.metrics.searches.inc();
        let metrics = Arc::clone(&self.inner.opts.metrics);
        tokio::task::spawn_blocking(move || {
            let mut top = TopK::new(query.effective_limit());
            let mut warnings = Vec::new();
            // Newest data first, so the floor rises early and older
            // blocks are skipped whole.
            for b in live.iter().rev() {
                b.search(&query, &mut top);
            }
            for f in frozen.iter().rev() {
                for b in f.head.batches.iter().rev() {
                    b.search(&query, &mut top);
                }
            }
            // Every candidate row group of every block, newest first, so a
            // search stops as soon as `limit` newer records are held.
            let mut groups: Vec<(u64, usize, usize)> = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                match b.candidates(&query, &top) {
                    Ok(found) => groups.extend(found.into_iter().map(|(rg, max)| (max, i, rg))),
                    Err(e) => warn(&mut warnings, b, &e),
                }
            }
            groups.sort_by_key(|g| std::cmp::Reverse(g.0));
            crate::scan::search_groups(&blocks, &groups, &query, &mut top, &metrics, &mut warnings);
            top.into_page(warnings)
        })
        .await
        .map_err(|e| QueryError::Internal(e.to_string()))
    }
}

#[async_trait]
impl LogReader for LogStore {
    async fn find_logs(&self, query: &LogQuery) -> Result<LogPage, QueryError> {
        self.search(query, false).await
    }

    async fn log_services(&self) -> Result<Vec<String>, QueryError> {
        let st = self.inner.state.read();
        let mut out: Vec<String> = Vec::new();
        let heads = std::iter::once(&st.live).chain(st.frozen.iter().map(|f| &f.head));
        for head in heads {
            for b in &head.batches {
                out.extend(b.services().iter().cloned());
            }
        }
        for b in &st.blocks {
            out.extend(b.meta().services.iter().cloned());
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn subscribe_logs(&self) -> broadcast::Receiver<Arc<LogBatch>> {
        self.inner.tail.subscribe()
    }
}

impl State {
    /// Moves the gauges by this store's change since it last published
    /// (after every change of the state): the gauges are the sum over
    /// every tenant's store.
    fn publish(&mut self, m: &Metrics) {
        let heads = std::iter::once(&self.live).chain(self.frozen.iter().map(|f| &f.head));
        let (records, bytes) = heads.fold((0, 0), |(r, b), h| (r + h.records, b + h.bytes));
        let now = [
            records as i64,
            bytes as i64,
            self.blocks.len() as i64,
            self.blocks.iter().map(|b| b.meta().size_bytes as i64).sum(),
            self.blocks.iter().map(|b| b.meta().record_count as i64).sum(),
        ];
        let gauges = [&m.head_records, &m.head_bytes, &m.blocks, &m.block_bytes, &m.block_records];
        for ((gauge, new), old) in gauges.into_iter().zip(now).zip(self.published) {
            gauge.inc_by(new - old);
        }
        self.published = now;
    }
}

pub(crate) fn warn(warnings: &mut Vec<String>, block: &LogBlock, e: &Error) {
    tracing::error!(block = %block.meta().id, error = %e, "log block read failed; skipped");
    warnings.push(format!("log block {} skipped: {e}", block.meta().id));
}

/// Cuts the live head when it is big or old enough and flushes frozen
/// heads; merges and retention run in a task of their own,
/// [`compactor`], woken by every flush. Before, this loop scheduled merges
/// only once no frozen head was left, which at saturation (ingest freezes
/// a head about as fast as one is flushed) was never: no merge in a
/// minute while ~10 blocks a second were flushed. Nor does a long merge
/// hold up a flush; flushes wait for merges only in the write stall
/// ([`Options::compaction_stall_blocks`]).
async fn background(inner: Arc<Inner>) {
    let mut last_poll = Instant::now();
    let shared = inner.storage.shared();
    let compactor = tokio::spawn(compactor(Arc::clone(&inner)));
    loop {
        tokio::select! {
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(inner.opts.tick) => {}
        }
        if inner.stop.load(Ordering::SeqCst) {
            inner.stop_compactor();
            let _ = compactor.await;
            return;
        }
        let due = {
            let st = inner.state.read();
            st.live.bytes >= inner.head_limit()
                || st.live.since.is_some_and(|t| t.elapsed() >= inner.opts.head_max_age)
                || (inner.opts.memory.pressure() != Pressure::Normal && st.live.bytes > 0)
        };
        let mut result = Ok(());
        if shared && last_poll.elapsed() >= inner.storage.poll_interval() && inner.storage.poll_due() {
            last_poll = Instant::now();
            let worker = Arc::clone(&inner);
            match tokio::task::spawn_blocking(move || worker.refresh()).await {
                Ok(Ok(())) => {}
                // Other nodes' blocks show up at the next poll.
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "reading the shared log manifest failed; will retry")
                }
                Err(e) => result = Err(Error::Task(e.to_string())),
            }
        }
        if result.is_ok() && due {
            result = cut(&inner, Cut::Always).await;
        }
        if result.is_ok() {
            result = flush_all(&inner, true).await;
        }
        // A shared store's failures are the bucket's (down, slow, a lost
        // race past the retries): the WAL keeps the frozen heads and the
        // next round tries again; appends are refused once the frozen
        // heads are full.
        if shared && let Err(e) = &result {
            tracing::warn!(error = %e, "log store background work failed; will retry");
            continue;
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "log store background work failed; ingest refused until restart");
            inner.fail(e.to_string());
            inner.stop_compactor();
            let _ = compactor.await;
            return;
        }
    }
}

/// Merges blocks as soon as a flush leaves enough of them, and applies
/// retention on its interval, beside [`background`]'s flushes. In a
/// shared storage only the lease holder merges and expires.
async fn compactor(inner: Arc<Inner>) {
    let mut last_maintenance = Instant::now();
    let shared = inner.storage.shared();
    loop {
        tokio::select! {
            () = inner.wake_compactor.notified() => {}
            () = tokio::time::sleep(inner.opts.tick) => {}
        }
        if inner.stop.load(Ordering::SeqCst) || inner.failed.lock().is_some() {
            return;
        }
        if !inner.storage.may_compact() {
            continue;
        }
        let retain = last_maintenance.elapsed() >= inner.opts.maintenance_interval;
        if retain {
            last_maintenance = Instant::now();
        }
        let mut result = Ok(());
        if inner.opts.background_compaction {
            result = compact_while_due(&inner).await;
        }
        if result.is_ok() && retain {
            result = apply_retention(&inner).await;
        }
        inner.compaction_failing.store(result.is_err(), Ordering::SeqCst);
        inner.compacted.notify_waiters();
        if shared && let Err(e) = &result {
            tracing::warn!(error = %e, "log store merge or retention failed; will retry");
            continue;
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "log store merge or retention failed; ingest refused until restart");
            inner.fail(e.to_string());
            inner.compacted.notify_waiters();
            return;
        }
    }
}

impl Inner {
    /// Ends the compactor at its next wake-up (the store stops or failed).
    fn stop_compactor(&self) {
        self.wake_compactor.notify_one();
    }

    /// Blocks waiting to be merged: those [`plan_compaction`] considers.
    fn small_blocks(&self) -> usize {
        self.state.read().blocks.iter().filter(|b| is_small(b.meta())).count()
    }

    /// Whether a background flush waits for merges now (see
    /// [`Options::compaction_stall_blocks`]): only while merges can make
    /// progress (they run here, they work, a merge is possible) and the
    /// store is not stopping.
    fn stalled(&self) -> bool {
        if self.stop.load(Ordering::SeqCst)
            || self.failed.lock().is_some()
            || !self.opts.background_compaction
            || self.compaction_failing.load(Ordering::SeqCst)
            || !self.storage.may_compact()
            || self.small_blocks() < self.opts.compaction_stall_blocks
        {
            return false;
        }
        let metas: Vec<block::LogBlockMeta> =
            self.state.read().blocks.iter().map(|b| b.meta().clone()).collect();
        plan_compaction(&metas, 2).is_some()
    }

    /// The write stall: waits while [`Inner::stalled`], waking the
    /// compactor, and counts the time.
    async fn wait_for_compaction(&self) {
        if !self.stalled() {
            return;
        }
        let since = Instant::now();
        let m = &self.opts.metrics;
        m.flush_stalled.set(1);
        tracing::debug!(blocks = self.small_blocks(), "log flush waits for merges to catch up");
        loop {
            let merged = self.compacted.notified();
            tokio::pin!(merged);
            // Registered before the check, so a merge ending between the
            // check and the wait still wakes this flush.
            merged.as_mut().enable();
            if !self.stalled() {
                break;
            }
            self.wake_compactor.notify_one();
            // A second at a time: shutdown notifies nothing here.
            let _ = tokio::time::timeout(Duration::from_secs(1), merged).await;
        }
        m.flush_stalled.set(0);
        m.flush_stall_seconds.inc_by(since.elapsed().as_secs_f64());
    }
}

/// When [`cut`] cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Whenever the head holds anything.
    Always,
    /// Only if the head is (still) full and a frozen slot is free: what
    /// appends ask for, several of which may ask at once.
    IfFull,
}

/// Rotates the WAL and freezes the live head (nothing when it is empty).
async fn cut(inner: &Inner, when: Cut) -> Result<(), Error> {
    let _guard = inner.cut_lock.write().await;
    {
        let st = inner.state.read();
        let due = match when {
            Cut::Always => true,
            Cut::IfFull => {
                st.live.bytes >= inner.head_limit() && st.frozen.len() < inner.opts.max_frozen_heads
            }
        };
        if st.live.is_empty() || !due {
            return Ok(());
        }
    }
    let sealed = inner.wal.rotate().await?;
    let next = inner.wal.active_segment();
    let mut st = inner.state.write();
    let head = std::mem::take(&mut st.live);
    let first = st.live_first;
    st.frozen.push(Arc::new(Frozen { head, first, last: sealed }));
    st.live_first = next;
    st.publish(&inner.opts.metrics);
    Ok(())
}

/// Flushes frozen heads, oldest first: block written and published, the
/// manifest lists it (and moves WAL replay past its segments), the head is
/// swapped for the block, then its WAL segments are deleted. `stall`: each
/// flush waits first while merges are too far behind (the background
/// flushes; not [`LogStore::flush_now`]).
async fn flush_all(inner: &Arc<Inner>, stall: bool) -> Result<(), Error> {
    let _serial = inner.flushing.lock().await;
    loop {
        if stall && !inner.state.read().frozen.is_empty() {
            inner.wait_for_compaction().await;
        }
        let Some(frozen) = inner.state.read().frozen.first().cloned() else { return Ok(()) };
        let worker = Arc::clone(inner);
        let job = Arc::clone(&frozen);
        tokio::task::spawn_blocking(move || flush_one(&worker, &job))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
    }
}

fn flush_one(inner: &Inner, frozen: &Arc<Frozen>) -> Result<(), Error> {
    let requests: Vec<&[u8]> = frozen.head.batches.iter().map(|b| b.otlp()).collect();
    // The same head always gets the same ids (a re-flush after a crash
    // replaces its own upload); the node prefix keeps nodes apart.
    let base = format!("{}l{}", inner.opts.id_prefix, flushed_block_id(frozen.first, frozen.last));
    let ids: Vec<String> = match frozen.head.records {
        0 => Vec::new(),
        n if n >= FLUSH_SPLIT_RECORDS => (0..2).map(|p| format!("{base}-{p}")).collect(),
        _ => vec![base],
    };
    let written =
        block::write_requests(inner.storage.staging_dir(), &ids, &requests, inner.opts.row_group_rows)?;
    let mut fresh: Vec<Arc<LogBlock>> = Vec::with_capacity(written.len());
    for meta in &written {
        inner.storage.publish(&meta.id)?;
        fresh.push(Arc::new(LogBlock::open_in(&inner.storage, &meta.id, &inner.opts.caches())?));
    }
    // The blocks are listed and the head dropped in one step, so a search
    // sees the records once.
    inner.change(
        |next| {
            for block in &fresh {
                let id = &block.meta().id;
                if !next.blocks.contains(id) {
                    next.blocks.push(id.clone());
                }
            }
            next.wal_replay_from = next.wal_replay_from.max(frozen.last.0 + 1);
            Ok(())
        },
        &fresh,
        |st| st.frozen.retain(|f| !Arc::ptr_eq(f, frozen)),
    )?;
    inner.flushed.notify_waiters();
    inner.wake_compactor.notify_one();
    inner.opts.metrics.flushes.inc();
    inner.wal.remove_through(frozen.last)?;
    for b in &fresh {
        let m = b.meta();
        tracing::debug!(block = %m.id, records = m.record_count, bytes = m.size_bytes, "log block flushed");
    }
    Ok(())
}

/// A frozen head of at least this many records is flushed as two blocks
/// written on two threads (each a run of the head's rows in block order),
/// as the trace store splits its big heads: a flush is mostly encoding,
/// one flush runs at a time, and at saturation ingest waits for it.
/// Smaller heads make one block: halves of a small head would only make
/// more blocks to merge. The default budget's 8 MiB head (~26 k records)
/// is not split: with merges running at saturation the second core is
/// busy merging anyway, and blocks of ~13 k records needed two merges
/// each to reach a full block (16 → 208 k records, then with more) where
/// ~26 k blocks need one ([`COMPACT_MAX_INPUTS`]).
const FLUSH_SPLIT_RECORDS: usize = 64 << 10;

/// Blocks merged at once, at most; and the fewest merged while together
/// they make a block smaller than half [`COMPACT_MAX_RECORDS`] (which
/// would be merged again). Flushed blocks are small (a 256 MiB budget
/// gives an 8 MiB head of ~26 k records), and merging them four at a time
/// rewrote a record three times on its way to a full block (15 k → 60 k →
/// 240 k → 1 M), most of a record's ingest CPU; sixteen at a time (of
/// ~13 k blocks) about twice; up to 32 at a time, ~20 of the default
/// head's blocks make a full block in one merge. A merge holds a decoded
/// batch per input.
pub(crate) const COMPACT_MIN_INPUTS: usize = 32;
const COMPACT_MAX_INPUTS: usize = 32;
/// The default of [`Options::compaction_stall_blocks`]: four full merges'
/// worth (128; the trace store stalls at 64 of its blocks).
const COMPACT_STALL_BLOCKS: usize = 4 * COMPACT_MIN_INPUTS;
/// A merge never produces a block with more records than this: a search
/// skips whole blocks by time range, which works best when blocks are not
/// huge; 1 Mi records are ~50 MiB of blocks.
pub(crate) const COMPACT_MAX_RECORDS: u64 = 1 << 20;

/// The next merge: the oldest run of blocks (by newest record) below the
/// size limit, together within [`COMPACT_MAX_RECORDS`]: at least
/// `min_inputs` of them ([`COMPACT_MIN_INPUTS`] in the background), or at
/// least two that make a block no merge rewrites. Pure, for tests.
pub(crate) fn plan_compaction(blocks: &[block::LogBlockMeta], min_inputs: usize) -> Option<Vec<String>> {
    let mut small: Vec<&block::LogBlockMeta> = blocks.iter().filter(|b| is_small(b)).collect();
    small.sort_by(|a, b| a.max_time_unix_nanos.cmp(&b.max_time_unix_nanos).then(a.id.cmp(&b.id)));
    let mut picked = Vec::new();
    let mut total = 0u64;
    for b in small {
        if picked.len() == COMPACT_MAX_INPUTS || total + b.record_count > COMPACT_MAX_RECORDS {
            break;
        }
        total += b.record_count;
        picked.push(b.id.clone());
    }
    let full = picked.len() >= 2 && total >= COMPACT_MAX_RECORDS / 2;
    (picked.len() >= min_inputs.max(2) || full).then_some(picked)
}

/// Whether a block is small enough to be merged again: what
/// [`plan_compaction`] takes and the write stall counts.
fn is_small(meta: &block::LogBlockMeta) -> bool {
    meta.record_count < COMPACT_MAX_RECORDS / 2
}

/// The background's merges: full ones ([`COMPACT_MIN_INPUTS`]) until none
/// is due, while memory is not short (a merge holds a batch per input);
/// in the write stall any merge of two or more, whatever the memory.
async fn compact_while_due(inner: &Arc<Inner>) -> Result<(), Error> {
    let _serial = inner.maintenance.lock().await;
    loop {
        let stalled = inner.stalled();
        if !stalled && inner.opts.memory.pressure() != Pressure::Normal {
            return Ok(());
        }
        let min_inputs = if stalled { 2 } else { COMPACT_MIN_INPUTS };
        if !compact_one(inner, min_inputs).await? {
            return Ok(());
        }
    }
}

/// Runs merges until none is due: the merged block is written, the
/// manifest swaps it for its inputs, then the inputs are deleted (searches
/// still reading them keep their open files).
async fn compact(inner: &Arc<Inner>, min_inputs: usize) -> Result<(), Error> {
    let _serial = inner.maintenance.lock().await;
    while compact_one(inner, min_inputs).await? {}
    Ok(())
}

/// The next merge of at least `min_inputs` blocks, if one is due; false
/// when none is. The caller holds the maintenance lock.
async fn compact_one(inner: &Arc<Inner>, min_inputs: usize) -> Result<bool, Error> {
    {
        let blocks: Vec<Arc<LogBlock>> = inner.state.read().blocks.clone();
        let metas: Vec<block::LogBlockMeta> = blocks.iter().map(|b| b.meta().clone()).collect();
        let Some(ids) = plan_compaction(&metas, min_inputs) else { return Ok(false) };
        let inputs: Vec<Arc<LogBlock>> = blocks.into_iter().filter(|b| ids.contains(&b.meta().id)).collect();
        let worker = Arc::clone(inner);
        tokio::task::spawn_blocking(move || merge_blocks(&worker, &inputs))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
    }
    inner.compacted.notify_waiters();
    Ok(true)
}

fn merge_blocks(inner: &Inner, inputs: &[Arc<LogBlock>]) -> Result<(), Error> {
    let ids: Vec<&str> = inputs.iter().map(|b| b.meta().id.as_str()).collect();
    let level = inputs.iter().map(|b| b.meta().compaction_level).max().unwrap_or(0) + 1;
    // Prefixed like flushed blocks: two nodes merging the same inputs
    // write different objects, so the loser's discard never deletes the
    // winner's block.
    let id = format!("{}l{}", inner.opts.id_prefix, sightline_store::merged_block_id(level, &ids));
    let meta = block::merge(inner.storage.staging_dir(), &id, inputs, inner.opts.row_group_rows, level)?;
    inner.storage.publish(&id)?;
    let merged = Arc::new(LogBlock::open_in(&inner.storage, &id, &inner.opts.caches())?);
    let doomed: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    let committed = inner.change(
        |next| {
            // Listed already: an earlier attempt of this commit went
            // through though its reply was lost.
            if next.blocks.contains(&id) {
                return Ok(());
            }
            // Only while every input is still listed: otherwise another
            // node merged or expired some of them first (a stale lease
            // holder), and the output would list records twice or again.
            let gone: Vec<String> = doomed.iter().filter(|d| !next.blocks.contains(d)).cloned().collect();
            if !gone.is_empty() {
                return Err(Error::Storage(sightline_store::Error::Superseded {
                    location: inner.storage.location(),
                    gone,
                }));
            }
            next.blocks.retain(|b| !doomed.contains(b));
            next.blocks.push(id.clone());
            Ok(())
        },
        std::slice::from_ref(&merged),
        |_| {},
    );
    match committed {
        Ok(removed) => {
            for old in &removed {
                inner.storage.delete(old)?;
            }
        }
        Err(Error::Storage(e @ sightline_store::Error::Superseded { .. })) => {
            tracing::info!(block = %id, error = %e, "log merge lost to another node's change; discarded");
            inner.storage.discard(&id)?;
            return Ok(());
        }
        Err(e) => return Err(e),
    }
    inner.opts.metrics.compactions.inc();
    tracing::debug!(block = %id, inputs = doomed.len(), records = meta.record_count, "log blocks merged");
    Ok(())
}

/// Deletes blocks past the age limit, then the oldest while log blocks
/// exceed the byte limit.
async fn apply_retention(inner: &Arc<Inner>) -> Result<(), Error> {
    let _serial = inner.maintenance.lock().await;
    let metas: Vec<block::LogBlockMeta> =
        inner.state.read().blocks.iter().map(|b| b.meta().clone()).collect();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let doomed = plan_retention(&metas, inner.opts.retention, inner.opts.max_disk_bytes, now);
    if doomed.is_empty() {
        return Ok(());
    }
    let worker = Arc::clone(inner);
    tokio::task::spawn_blocking(move || {
        let removed = worker.change(
            |next| {
                next.blocks.retain(|id| !doomed.contains(id));
                Ok(())
            },
            &[],
            |_| {},
        )?;
        worker.opts.metrics.retention_deleted_blocks.inc_by(removed.len() as u64);
        for id in &removed {
            worker.storage.delete(id)?;
        }
        tracing::info!(blocks = removed.len(), "log retention deleted blocks");
        Ok(())
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
}

/// The blocks to delete: every block whose newest record is older than
/// `max_age`, then the oldest of the rest (by newest record) until the
/// remainder fits `max_bytes`. Pure, for tests.
pub(crate) fn plan_retention(
    blocks: &[block::LogBlockMeta],
    max_age: Option<Duration>,
    max_bytes: Option<u64>,
    now_unix_nanos: u64,
) -> Vec<String> {
    let mut doomed: Vec<String> = Vec::new();
    if let Some(age) = max_age {
        let cutoff = now_unix_nanos.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX));
        doomed.extend(blocks.iter().filter(|b| b.max_time_unix_nanos < cutoff).map(|b| b.id.clone()));
    }
    if let Some(max) = max_bytes {
        let mut rest: Vec<&block::LogBlockMeta> = blocks.iter().filter(|b| !doomed.contains(&b.id)).collect();
        rest.sort_by(|a, b| a.max_time_unix_nanos.cmp(&b.max_time_unix_nanos).then(a.id.cmp(&b.id)));
        let mut total: u64 = rest.iter().map(|b| b.size_bytes).sum();
        for b in rest {
            if total <= max {
                break;
            }
            total -= b.size_bytes;
            doomed.push(b.id.clone());
        }
    }
    doomed
}
