//! [`EmbeddedStore`]: the wiring of WAL, head, blocks and manifest, and the
//! background tasks that cut, flush, compact and expire.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use prost::Message as _;
use sightline_block::Block;
use sightline_model::{
    Batch, ComponentHealth, ConsumeError, DependencyLink, Operation, QueryError, Span, SpanKind, SpanReader,
    TraceId, TraceQuery, TraceStore, TracesConsumer,
};
use sightline_wal::{SegmentId, Wal};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::fsutil::sync_dir;
use crate::head::{Head, dependency_links};
use crate::manifest::{Manifest, ManifestState};
use crate::{BlockOptions, Error, FsyncPolicy, Metrics};

const WAL_DIR: &str = "wal";
const BLOCKS_DIR: &str = "blocks";
const LOCK_FILE: &str = "LOCK";

/// How long an append waits for a flush when the head is full and the
/// flush queue too, before it is refused (see `Inner::wait_for_flush`).
const FLUSH_WAIT: Duration = Duration::from_millis(500);

/// How long after a memory-pressure report (`request_cut`, at most once a
/// second while over the soft limit) full-width merges wait. A 16-input
/// merge of realistic blocks holds ~30 MiB whatever the memory limit; run
/// in the middle of an overload it took a 144 MiB process to 150 MiB. The
/// write stall still forces merges when the debt gets that far.
pub(crate) const PRESSURE_HOLD: Duration = Duration::from_secs(2);

/// How the store is set up. `Options` because it is built in code by the
/// binary from its own config.
#[derive(Debug, Clone)]
pub struct Options {
    /// Root folder for WAL, blocks and manifest.
    pub data_dir: PathBuf,
    /// When WAL appends are synced before acknowledging.
    pub fsync: FsyncPolicy,
    /// How much damage WAL recovery tolerates in the newest segment.
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
    /// How blocks are written.
    pub block: BlockOptions,
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
}

impl Options {
    /// Defaults for a data directory: safe fsync, 32 MiB heads, 7-day
    /// retention.
    pub fn new(data_dir: impl Into<PathBuf>) -> Options {
        Options {
            data_dir: data_dir.into(),
            fsync: FsyncPolicy::Always,
            wal_recovery: sightline_wal::RecoveryMode::TolerateTornTail,
            head_max_bytes: 32 << 20,
            head_max_age: Duration::from_secs(120),
            max_frozen_heads: 2,
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            max_disk_bytes: None,
            block: BlockOptions::default(),
            compaction_min_blocks: 4,
            compaction_max_inputs: 16,
            compaction_max_spans: 512 << 10,
            compaction_stall_blocks: 64,
            maintenance_interval: Duration::from_secs(30),
        }
    }
}

/// A head that was cut and waits to be flushed, with the WAL segment that
/// holds exactly its records (and those of earlier, already-flushed heads).
#[derive(Debug)]
struct Frozen {
    head: Head,
    sealed: SegmentId,
}

struct Inner {
    options: Options,
    blocks_dir: PathBuf,
    wal: Wal,
    /// Shared by appends across "WAL append + head insert", exclusive for a
    /// cut (see the crate docs).
    cut_lock: tokio::sync::RwLock<()>,
    head: Mutex<Head>,
    frozen: RwLock<VecDeque<Arc<Frozen>>>,
    /// Live blocks, replaced as a whole so readers keep a consistent list.
    blocks: RwLock<Arc<Vec<Arc<Block>>>>,
    /// Serialises manifest changes; held while the block list is swapped so
    /// the two never disagree in order.
    manifest: Mutex<Manifest>,
    /// Blocks dropped from the manifest, deleted once no reader holds them.
    trash: Mutex<Vec<Arc<Block>>>,
    failure: Mutex<Option<String>>,
    /// False once shutdown begins: appends are refused from then on.
    accepting: AtomicBool,
    /// True once background tasks should stop.
    closed: AtomicBool,
    wake_cutter: Notify,
    wake_flusher: Notify,
    /// Notified whenever a frozen head has been flushed.
    flushed: Notify,
    /// Wakes the compactor: enough fresh blocks for a full-width merge.
    wake_compactor: Notify,
    /// Notified whenever a compaction has replaced its inputs.
    compacted: Notify,
    /// True while the last compaction attempt failed: flushes do not stall
    /// on a compactor that cannot make progress.
    compaction_failing: AtomicBool,
    /// Serialises retention and compaction (the maintainer and the
    /// compactor): each plans from a snapshot of the block list and
    /// assumes nobody else removes blocks meanwhile.
    maintenance_lock: tokio::sync::Mutex<()>,
    /// When the process last reported memory pressure (`request_cut`).
    pressure_at: Mutex<Option<Instant>>,
    /// Bytes of appends admitted but not yet in the head.
    incoming: AtomicUsize,
    /// Set by [`EmbeddedStore::request_cut`]: cut the head even if small.
    cut_requested: AtomicBool,
    metrics: Arc<Metrics>,
    /// Next block id; ids are taken here (flushes and compactions run
    /// concurrently) and the manifest records the high-water mark.
    next_block_seq: AtomicU64,
    /// One flush at a time: the background flusher and explicit flushes
    /// must not write the same frozen head twice.
    flush_lock: tokio::sync::Mutex<()>,
    /// Held for the store's lifetime; released at shutdown.
    lock: Mutex<Option<File>>,
}

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").field("data_dir", &self.inner.options.data_dir).finish()
    }
}

impl EmbeddedStore {
    /// Opens (creating) the data directory: locks it, loads the manifest and
    /// its blocks, replays the WAL into the head, and starts the background
    /// tasks. Must run inside a tokio runtime.
    pub async fn open(options: Options, metrics: Arc<Metrics>) -> Result<EmbeddedStore, Error> {
        let dir = options.data_dir.clone();
        let blocks_dir = dir.join(BLOCKS_DIR);
        for d in [&dir, &blocks_dir] {
            fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let lock_path = dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(Error::Locked { path: dir.clone() });
        }

        let manifest = Manifest::load(&dir)?;
        let state = manifest.state().clone();
        let opened = {
            let blocks_dir = blocks_dir.clone();
            let ids = state.blocks.clone();
            tokio::task::spawn_blocking(move || open_blocks(&blocks_dir, &ids))
                .await
                .map_err(|e| Error::io(&dir, std::io::Error::other(e)))??
        };

        let wal_options = sightline_wal::Options {
            fsync: options.fsync,
            metrics: Some(Arc::clone(&metrics.wal)),
            recovery: options.wal_recovery,
            ..sightline_wal::Options::default()
        };
        let wal_dir = dir.join(WAL_DIR);
        let (wal, recovered) = tokio::task::spawn_blocking(move || Wal::open(&wal_dir, wal_options))
            .await
            .map_err(|e| Error::io(&dir, std::io::Error::other(e)))??;
        if let Some(torn) = &recovered.torn_tail {
            tracing::warn!(?torn, "WAL had a torn tail (an interrupted write); cut it off");
        }
        let mut head = Head::default();
        let mut replayed = 0u64;
        for segment in &recovered.segments {
            if segment.id.0 < state.wal_replay_from {
                continue;
            }
            for record in &segment.records {
                let request = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                    record.clone(),
                )
                .map_err(|e| Error::Corrupt {
                    path: dir.join(WAL_DIR),
                    detail: format!(
                        "segment {} holds a record with a valid checksum that is not OTLP protobuf ({e}); \
                         it was written by an incompatible version",
                        segment.id.0
                    ),
                })?;
                let spans = sightline_model::otlp::decode_request(request).spans;
                replayed += spans.len() as u64;
                let bytes = spans.iter().map(Span::estimated_size).sum();
                head.append(spans, bytes);
            }
        }
        if state.wal_replay_from > 0 {
            wal.remove_through(SegmentId(state.wal_replay_from - 1))?;
        }
        metrics.replayed_spans.inc_by(replayed);
        if replayed > 0 {
            tracing::info!(spans = replayed, "replayed WAL into the head");
        }
        metrics.blocks.set(opened.len() as i64);

        let inner = Arc::new(Inner {
            options,
            blocks_dir,
            wal,
            cut_lock: tokio::sync::RwLock::new(()),
            head: Mutex::new(head),
            frozen: RwLock::new(VecDeque::new()),
            blocks: RwLock::new(Arc::new(opened)),
            manifest: Mutex::new(manifest),
            trash: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            accepting: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            wake_cutter: Notify::new(),
            wake_flusher: Notify::new(),
            flushed: Notify::new(),
            wake_compactor: Notify::new(),
            compacted: Notify::new(),
            compaction_failing: AtomicBool::new(false),
            maintenance_lock: tokio::sync::Mutex::new(()),
            pressure_at: Mutex::new(None),
            cut_requested: AtomicBool::new(false),
            incoming: AtomicUsize::new(0),
            metrics,
            next_block_seq: AtomicU64::new(state.next_block_seq),
            flush_lock: tokio::sync::Mutex::new(()),
            lock: Mutex::new(Some(lock)),
        });
        inner.update_gauges();
        let tasks = vec![
            tokio::spawn(Arc::clone(&inner).cutter()),
            tokio::spawn(Arc::clone(&inner).flusher()),
            tokio::spawn(Arc::clone(&inner).maintainer()),
            tokio::spawn(Arc::clone(&inner).compactor()),
        ];
        Ok(EmbeddedStore { inner, tasks: Arc::new(Mutex::new(tasks)) })
    }

    /// Cuts the head now (if not empty) and waits until every frozen head is
    /// in a block. For tests and shutdown.
    pub async fn flush(&self) -> Result<(), Error> {
        Arc::clone(&self.inner).flush_everything().await
    }

    /// Runs one round of retention and compaction now. For tests.
    pub async fn maintain(&self) -> Result<(), Error> {
        Arc::clone(&self.inner).maintain_once().await
    }

    /// Stops the tasks and releases the files without flushing the head:
    /// what a crash leaves behind, minus the torn tail the WAL tests cover.
    #[cfg(test)]
    pub(crate) async fn stop_without_flush(&self) {
        self.inner.accepting.store(false, Ordering::Release);
        self.inner.closed.store(true, Ordering::Release);
        let _ = self.inner.wal.close().await;
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        self.inner.lock.lock().take();
    }

    /// Asks for the head to be cut and flushed now if it holds at least a
    /// quarter of its size limit: what the memory limiter calls when the
    /// process is over its soft limit, so memory held by the head is
    /// released instead of refusing forever. (Cutting a tiny head would
    /// only add a flush's working set.) Full-width merges also wait while
    /// these calls keep coming (see [`PRESSURE_HOLD`]).
    pub fn request_cut(&self) {
        *self.inner.pressure_at.lock() = Some(Instant::now());
        self.inner.cut_requested.store(true, Ordering::Release);
        self.inner.wake_cutter.notify_one();
    }

    /// Keeps every flush (background or explicit) waiting while held. For
    /// tests.
    #[cfg(test)]
    pub(crate) async fn hold_flushes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.flush_lock.lock().await
    }

    /// Keeps retention and compaction waiting while held. For tests.
    #[cfg(test)]
    pub(crate) async fn hold_compactions(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.maintenance_lock.lock().await
    }

    /// Cuts the head now and returns how many heads wait to be flushed.
    /// For tests.
    #[cfg(test)]
    pub(crate) async fn cut_now(&self) -> usize {
        let _ = self.inner.cut().await;
        self.inner.frozen.read().len()
    }

    /// Number of live blocks.
    pub fn block_count(&self) -> usize {
        self.inner.blocks.read().len()
    }
}

fn open_blocks(blocks_dir: &Path, ids: &[String]) -> Result<Vec<Arc<Block>>, Error> {
    let listed: HashSet<&str> = ids.iter().map(String::as_str).collect();
    // Folders not in the manifest are unfinished writes or blocks whose
    // removal was interrupted: by the manifest invariant they hold nothing
    // that is not elsewhere.
    if let Ok(entries) = fs::read_dir(blocks_dir) {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !listed.contains(name.as_str()) {
                tracing::info!(block = %name, "removing a block folder not in the manifest");
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        sync_dir(blocks_dir)?;
    }
    ids.iter().map(|id| Ok(Arc::new(Block::open(&blocks_dir.join(id))?))).collect()
}

/// Waits until `done()` holds or `deadline` passes, re-checking whenever
/// `notify` fires; returns `done()`.
async fn wait_until(notify: &Notify, deadline: tokio::time::Instant, done: impl Fn() -> bool) -> bool {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        // Registered before the check, so a notification in between is not
        // missed.
        notified.as_mut().enable();
        if done() {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return done();
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn internal(e: impl std::fmt::Display) -> QueryError {
    QueryError::Internal(e.to_string())
}

impl Inner {
    fn fail(&self, why: String) {
        tracing::error!(error = %why, "store failed; refusing writes");
        self.failure.lock().get_or_insert(why);
    }

    fn update_gauges(&self) {
        let (spans, bytes) = {
            let head = self.head.lock();
            (head.len(), head.bytes())
        };
        self.metrics.head_spans.set(spans as i64);
        self.metrics.head_bytes.set(bytes as i64);
        self.metrics.frozen_heads.set(self.frozen.read().len() as i64);
        let blocks = self.blocks.read().clone();
        self.metrics.blocks.set(blocks.len() as i64);
        self.metrics.block_bytes.set(blocks.iter().map(|b| b.meta().size_bytes).sum::<u64>() as i64);
        self.metrics.block_spans.set(blocks.iter().map(|b| b.meta().span_count).sum::<u64>() as i64);
        self.metrics.block_memory.set(blocks.iter().map(|b| b.memory_size()).sum::<usize>() as i64);
        self.metrics.compaction_debt.set(self.compaction_debt() as i64);
    }

    /// Whether the head is full and no more heads may wait to be flushed.
    fn flush_behind(&self) -> bool {
        self.frozen.read().len() >= self.options.max_frozen_heads
            && self.head.lock().bytes() + self.incoming.load(Ordering::Acquire) >= self.options.head_max_bytes
    }

    /// Waits up to [`FLUSH_WAIT`] for a flush to make room. A flush that is
    /// about to finish should not cost every sender a whole retry delay:
    /// measured, a 1 s `Retry-After` per refused request left the server
    /// idle most of the time at saturation. Memory stays bounded: a waiting
    /// append still holds its request's share of the receiver's in-flight
    /// budget, so new requests are refused there instead.
    async fn wait_for_flush(&self) -> bool {
        let deadline = tokio::time::Instant::now() + FLUSH_WAIT;
        wait_until(&self.flushed, deadline, || !self.flush_behind()).await
    }

    fn refuse(&self, reason: &str) -> ConsumeError {
        self.metrics.refused.get_or_create(&vec![("reason".to_owned(), reason.to_owned())]).inc();
        ConsumeError::Overloaded { reason: reason.to_owned(), retry_after: Duration::from_secs(1) }
    }

    async fn append(&self, batch: Batch) -> Result<(), ConsumeError> {
        if let Some(why) = self.failure.lock().clone() {
            return Err(ConsumeError::Unavailable { reason: why, retry_after: Duration::from_secs(5) });
        }
        if !self.accepting.load(Ordering::Acquire) {
            return Err(ConsumeError::Unavailable {
                reason: "shutting down".into(),
                retry_after: Duration::from_secs(5),
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        let bytes: usize = batch.spans().iter().map(Span::estimated_size).sum();
        if self.flush_behind() && !self.wait_for_flush().await {
            return Err(self.refuse("flush_behind"));
        }
        // Counted as head memory from admission on, so concurrent appends
        // cannot all pass the check above and overshoot the head's bound.
        let _incoming = Incoming::add(&self.incoming, bytes);
        let (spans, otlp) = batch.into_parts();
        let count = spans.len() as u64;
        let guard = self.cut_lock.read().await;
        match self.wal.append(otlp).await {
            Ok(_) => {}
            Err(sightline_wal::Error::Full { .. }) => return Err(self.refuse("wal_queue_full")),
            Err(sightline_wal::Error::Closed) => {
                return Err(ConsumeError::Unavailable {
                    reason: "shutting down".into(),
                    retry_after: Duration::from_secs(5),
                });
            }
            Err(e) => {
                self.fail(format!("write-ahead log failed: {e}"));
                return Err(ConsumeError::Unavailable {
                    reason: format!("write-ahead log failed: {e}"),
                    retry_after: Duration::from_secs(5),
                });
            }
        }
        let head_bytes = {
            let mut head = self.head.lock();
            head.append(spans, bytes);
            head.bytes()
        };
        drop(guard);
        self.metrics.spans_appended.inc_by(count);
        self.metrics.head_bytes.set(head_bytes as i64);
        if head_bytes >= self.options.head_max_bytes {
            self.wake_cutter.notify_one();
        }
        Ok(())
    }

    /// Freezes the head and rotates the WAL, unless the head is empty or the
    /// flusher is behind (then appends get refused once the head is full).
    async fn cut(&self) -> Result<(), Error> {
        if self.frozen.read().len() >= self.options.max_frozen_heads {
            return Ok(());
        }
        let _guard = self.cut_lock.write().await;
        if self.head.lock().is_empty() {
            return Ok(());
        }
        let sealed = self.wal.rotate().await?;
        let head = std::mem::take(&mut *self.head.lock());
        self.frozen.write().push_back(Arc::new(Frozen { head, sealed }));
        self.update_gauges();
        self.wake_flusher.notify_one();
        Ok(())
    }

    async fn cutter(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.wake_cutter.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            let requested = self.cut_requested.swap(false, Ordering::AcqRel);
            let due = {
                let head = self.head.lock();
                !head.is_empty()
                    && ((requested && head.bytes() >= self.options.head_max_bytes / 4)
                        || head.bytes() >= self.options.head_max_bytes
                        || head.created().elapsed() >= self.options.head_max_age)
            };
            if due && let Err(e) = self.cut().await {
                self.fail(format!("cutting the head failed: {e}"));
            }
        }
    }

    async fn flusher(self: Arc<Self>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = self.wake_flusher.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            match self.flush_all().await {
                Ok(()) => backoff = Duration::from_secs(1),
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?backoff, "flushing a head into a block failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            if self.closed.load(Ordering::Acquire) && self.frozen.read().is_empty() {
                return;
            }
        }
    }

    /// Cuts and flushes until the live head is empty too. A cut is skipped
    /// while the flush queue is full, so one cut + flush can leave the live
    /// head behind (with one queued head allowed, it did at every shutdown
    /// that found a flush running); the second round catches it. Bounded:
    /// each round either empties the head or flushes the queue that blocked
    /// the cut.
    async fn flush_everything(self: Arc<Self>) -> Result<(), Error> {
        for _ in 0..3 {
            self.cut().await?;
            self.flush_all().await?;
            if self.head.lock().is_empty() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Flushes frozen heads oldest first until none is left.
    async fn flush_all(self: &Arc<Self>) -> Result<(), Error> {
        let _one_at_a_time = self.flush_lock.lock().await;
        loop {
            if self.frozen.read().is_empty() {
                return Ok(());
            }
            self.wait_for_compaction().await;
            let Some(frozen) = self.frozen.read().front().cloned() else { return Ok(()) };
            let started = Instant::now();
            let result = self.flush_one(&frozen).await;
            let outcome = if result.is_ok() { "ok" } else { "error" };
            self.metrics.flushes.get_or_create(&Metrics::outcome(outcome)).inc();
            result?;
            self.metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        }
    }

    async fn flush_one(self: &Arc<Self>, frozen: &Arc<Frozen>) -> Result<(), Error> {
        let seq = self.next_block_seq.fetch_add(1, Ordering::AcqRel);
        let id = format!("{seq:010}");
        // The writer reads the frozen head's spans in place: no copy.
        let snapshot = frozen.head.snapshot();
        let blocks_dir = self.blocks_dir.clone();
        let options = self.options.block.clone();
        let block = run_blocking(&self.blocks_dir, move || {
            // A folder with this id can only be a leftover of a failed
            // attempt: ids are taken from the manifest, which it isn't in.
            let _ = fs::remove_dir_all(blocks_dir.join(&id));
            let spans: Vec<&Span> = snapshot.spans().collect();
            sightline_block::write(&blocks_dir, &id, spans, &options)?;
            Ok(Arc::new(Block::open(&blocks_dir.join(&id))?))
        })
        .await?;
        let sealed = frozen.sealed;
        let inner = Arc::clone(self);
        let id = block.meta().id.clone();
        run_blocking(&self.blocks_dir, move || {
            inner.change_manifest(
                |state| {
                    state.blocks.push(id);
                    state.next_block_seq = state.next_block_seq.max(seq + 1);
                    state.wal_replay_from = state.wal_replay_from.max(sealed.0 + 1);
                },
                |blocks| blocks.push(block),
            )
        })
        .await?;
        {
            let mut list = self.frozen.write();
            if list.front().is_some_and(|f| Arc::ptr_eq(f, frozen)) {
                list.pop_front();
            }
        }
        // Room for another frozen head: cut the live one now if it is full
        // (rather than at the cutter's next tick), and let waiting appends in.
        self.wake_cutter.notify_one();
        self.flushed.notify_waiters();
        self.wal.remove_through(sealed)?;
        self.update_gauges();
        if self.compaction_debt() >= self.options.compaction_max_inputs {
            self.wake_compactor.notify_one();
        }
        Ok(())
    }

    /// Whether memory pressure was reported within [`PRESSURE_HOLD`].
    fn under_pressure(&self) -> bool {
        self.pressure_at.lock().is_some_and(|t| t.elapsed() < PRESSURE_HOLD)
    }

    /// Fresh blocks waiting to be merged: level-0 blocks small enough that
    /// two of them fit one merge. A block too big to merge is not debt, or
    /// a large `head_max_bytes` would stall flushes for good.
    fn compaction_debt(&self) -> usize {
        let max = self.options.compaction_max_spans;
        self.blocks
            .read()
            .iter()
            .filter(|b| b.meta().compaction_level == 0 && b.meta().span_count.saturating_mul(2) <= max)
            .count()
    }

    /// The write stall (see [`Options::compaction_stall_blocks`]): waits
    /// while compaction is that far behind. Not while shutting down (the
    /// last flush must not wait for merges) nor while compaction fails.
    async fn wait_for_compaction(&self) {
        let no_stall = || {
            !self.accepting.load(Ordering::Acquire)
                || self.closed.load(Ordering::Acquire)
                || self.compaction_failing.load(Ordering::Acquire)
                || self.compaction_debt() < self.options.compaction_stall_blocks
        };
        if no_stall() {
            return;
        }
        let since = Instant::now();
        tracing::debug!(debt = self.compaction_debt(), "flush waits for compaction to catch up");
        loop {
            self.wake_compactor.notify_one();
            // A second at a time: shutdown and compaction failures notify
            // nothing, so they are noticed by re-checking.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            if wait_until(&self.compacted, deadline, no_stall).await {
                break;
            }
        }
        self.metrics.flush_stall_seconds.inc_by(since.elapsed().as_secs_f64());
    }

    /// Commits a manifest change durably, then applies the matching change
    /// to the live block list, under one lock so they never disagree.
    /// Blocking (it fsyncs): call it through [`run_blocking`].
    fn change_manifest(
        &self,
        change: impl FnOnce(&mut ManifestState),
        apply: impl FnOnce(&mut Vec<Arc<Block>>),
    ) -> Result<(), Error> {
        let mut manifest = self.manifest.lock();
        let mut next = manifest.state().clone();
        change(&mut next);
        manifest.commit(next)?;
        let mut blocks = self.blocks.write();
        let mut list = Vec::clone(&blocks);
        apply(&mut list);
        *blocks = Arc::new(list);
        Ok(())
    }

    async fn maintainer(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.options.maintenance_interval).await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            if let Err(e) = Arc::clone(&self).maintain_once().await {
                tracing::error!(error = %e, "block maintenance failed; will retry");
            }
        }
    }

    async fn maintain_once(self: Arc<Self>) -> Result<(), Error> {
        {
            let _one = self.maintenance_lock.lock().await;
            self.apply_retention().await?;
        }
        // Every compaction due now, not one per round: after a burst of
        // ingest, hundreds of small blocks would otherwise take hours of
        // rounds to merge, and every query pays per block.
        self.compact_while(false).await?;
        self.empty_trash();
        self.update_gauges();
        Ok(())
    }

    /// Merges as soon as a flush leaves enough fresh blocks for a
    /// full-width merge, rather than at the maintainer's next round (30 s
    /// by default): compaction keeps pace with ingest instead of facing
    /// hundreds of blocks at once. Partial merges of stragglers stay with
    /// the maintainer.
    async fn compactor(self: Arc<Self>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            self.wake_compactor.notified().await;
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            match self.compact_while(true).await {
                Ok(()) => backoff = Duration::from_secs(1),
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?backoff, "compaction failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    self.wake_compactor.notify_one();
                }
            }
            self.empty_trash();
            self.update_gauges();
        }
    }

    /// Runs merges until none is due (`full_only`: until no full-width
    /// merge is), one at a time under the maintenance lock. Records
    /// whether compaction works, for the write stall.
    async fn compact_while(self: &Arc<Self>, full_only: bool) -> Result<(), Error> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Ok(());
            }
            // Stalled flushes take any merge that lowers the debt; short of
            // that, merges wait out memory pressure.
            let stalled = self.compaction_debt() >= self.options.compaction_stall_blocks;
            if full_only && !stalled && self.under_pressure() {
                return Ok(());
            }
            let full_only = full_only && !stalled;
            let merged = {
                let _one = self.maintenance_lock.lock().await;
                self.compact_once(full_only).await
            };
            self.compaction_failing.store(merged.is_err(), Ordering::Release);
            if !merged? {
                return Ok(());
            }
        }
    }

    async fn apply_retention(self: &Arc<Self>) -> Result<(), Error> {
        let blocks = self.blocks.read().clone();
        let mut doomed: HashSet<String> = HashSet::new();
        if let Some(retention) = self.options.retention {
            let cutoff = now_nanos().saturating_sub(retention.as_nanos() as u64);
            doomed.extend(
                blocks.iter().filter(|b| b.meta().max_end_unix_nanos < cutoff).map(|b| b.meta().id.clone()),
            );
        }
        if let Some(max) = self.options.max_disk_bytes {
            let mut by_age: Vec<&Arc<Block>> =
                blocks.iter().filter(|b| !doomed.contains(&b.meta().id)).collect();
            by_age.sort_by_key(|b| b.meta().max_start_unix_nanos);
            let mut total: u64 = by_age.iter().map(|b| b.meta().size_bytes).sum();
            for b in by_age {
                if total <= max {
                    break;
                }
                total -= b.meta().size_bytes;
                doomed.insert(b.meta().id.clone());
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        let count = doomed.len() as u64;
        // Only this task removes blocks, so the snapshot names them all.
        let removed: Vec<Arc<Block>> =
            blocks.iter().filter(|b| doomed.contains(&b.meta().id)).cloned().collect();
        let inner = Arc::clone(self);
        run_blocking(&self.blocks_dir, move || {
            inner.change_manifest(
                |state| state.blocks.retain(|id| !doomed.contains(id)),
                |list| list.retain(|b| !doomed.contains(&b.meta().id)),
            )
        })
        .await?;
        self.trash.lock().extend(removed);
        self.metrics.retention_deleted_blocks.inc_by(count);
        tracing::info!(blocks = count, "retention deleted blocks");
        Ok(())
    }

    /// Merges the oldest blocks of the lowest level that has enough of them;
    /// false when no level has. With `full_only`, only a full-width merge
    /// counts: `compaction_max_inputs` blocks, or over half of
    /// `compaction_max_spans` (merging fewer rewrites spans more often).
    async fn compact_once(self: &Arc<Self>, full_only: bool) -> Result<bool, Error> {
        let blocks = self.blocks.read().clone();
        let mut by_level: HashMap<u32, Vec<Arc<Block>>> = HashMap::new();
        for b in blocks.iter() {
            by_level.entry(b.meta().compaction_level).or_default().push(Arc::clone(b));
        }
        let mut levels: Vec<u32> = by_level.keys().copied().collect();
        levels.sort_unstable();
        for level in levels {
            let Some(mut candidates) = by_level.remove(&level) else { continue };
            candidates.sort_by_key(|b| b.meta().min_start_unix_nanos);
            let mut inputs: Vec<Arc<Block>> = Vec::new();
            let mut spans = 0u64;
            for b in candidates {
                if spans + b.meta().span_count > self.options.compaction_max_spans {
                    continue;
                }
                spans += b.meta().span_count;
                inputs.push(b);
                if inputs.len() >= self.options.compaction_max_inputs.max(2) {
                    break;
                }
            }
            let full = inputs.len() >= self.options.compaction_max_inputs.max(2)
                || spans.saturating_mul(2) > self.options.compaction_max_spans;
            if inputs.len() < self.options.compaction_min_blocks.max(2) || (full_only && !full) {
                continue;
            }
            self.compact(inputs).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn compact(self: &Arc<Self>, inputs: Vec<Arc<Block>>) -> Result<(), Error> {
        let seq = self.next_block_seq.fetch_add(1, Ordering::AcqRel);
        let id = format!("{seq:010}");
        let blocks_dir = self.blocks_dir.clone();
        let options = self.options.block.clone();
        let sources = inputs.clone();
        let result = run_blocking(&self.blocks_dir, move || {
            let _ = fs::remove_dir_all(blocks_dir.join(&id));
            let refs: Vec<&Block> = sources.iter().map(|b| b.as_ref()).collect();
            sightline_block::compact(&blocks_dir, &id, &refs, &options)?;
            Ok(Arc::new(Block::open(&blocks_dir.join(&id))?))
        })
        .await;
        let block = match result {
            Ok(b) => b,
            Err(e) => {
                self.metrics.compactions.get_or_create(&Metrics::outcome("error")).inc();
                return Err(e);
            }
        };
        let input_ids: HashSet<String> = inputs.iter().map(|b| b.meta().id.clone()).collect();
        let inner = Arc::clone(self);
        let output = Arc::clone(&block);
        let output_id = block.meta().id.clone();
        run_blocking(&self.blocks_dir, move || {
            inner.change_manifest(
                |state| {
                    state.blocks.retain(|id| !input_ids.contains(id));
                    state.blocks.push(output_id);
                    state.next_block_seq = state.next_block_seq.max(seq + 1);
                },
                |list| {
                    list.retain(|b| !input_ids.contains(&b.meta().id));
                    list.push(output);
                },
            )
        })
        .await?;
        self.metrics.compactions.get_or_create(&Metrics::outcome("ok")).inc();
        tracing::info!(inputs = inputs.len(), output = %block.meta().id, spans = block.meta().span_count, "compacted blocks");
        self.trash.lock().extend(inputs);
        self.compacted.notify_waiters();
        Ok(())
    }

    /// Deletes dropped blocks no query holds any more.
    fn empty_trash(&self) {
        let mut trash = self.trash.lock();
        trash.retain(|b| {
            if Arc::strong_count(b) > 1 {
                return true;
            }
            if let Err(e) = fs::remove_dir_all(b.dir()) {
                tracing::warn!(block = %b.meta().id, error = %e, "could not delete a dropped block");
            }
            false
        });
        let _ = sync_dir(&self.blocks_dir);
    }

    fn block_list(&self) -> Arc<Vec<Arc<Block>>> {
        self.blocks.read().clone()
    }

    fn frozen_list(&self) -> Vec<Arc<Frozen>> {
        self.frozen.read().iter().cloned().collect()
    }

    /// Several traces at once, each block read once for all of them.
    async fn traces(&self, ids: &[TraceId]) -> Result<HashMap<TraceId, Vec<Span>>, QueryError> {
        let mut out: HashMap<TraceId, Vec<Span>> = HashMap::with_capacity(ids.len());
        {
            let head = self.head.lock();
            for id in ids {
                out.entry(*id).or_default().extend(head.trace(*id));
            }
        }
        for f in self.frozen_list() {
            for id in ids {
                out.entry(*id).or_default().extend(f.head.trace(*id));
            }
        }
        let blocks = self.block_list();
        let wanted = ids.to_vec();
        let from_blocks =
            tokio::task::spawn_blocking(move || read_traces(&blocks, &wanted)).await.map_err(internal)??;
        for span in from_blocks {
            out.entry(span.trace_id).or_default().push(span);
        }
        for spans in out.values_mut() {
            let mut seen = HashSet::with_capacity(spans.len());
            spans.retain(|s| seen.insert(s.span_id));
            spans.sort_by_key(|s| s.start_time_unix_nano);
        }
        Ok(out)
    }

    async fn trace(&self, id: TraceId) -> Result<Vec<Span>, QueryError> {
        let mut spans = self.head.lock().trace(id);
        for f in self.frozen_list() {
            spans.extend(f.head.trace(id));
        }
        let blocks = self.block_list();
        let from_blocks =
            tokio::task::spawn_blocking(move || read_traces(&blocks, &[id])).await.map_err(internal)??;
        spans.extend(from_blocks);
        let mut seen = HashSet::with_capacity(spans.len());
        spans.retain(|s| seen.insert(s.span_id));
        spans.sort_by_key(|s| s.start_time_unix_nano);
        Ok(spans)
    }
}

/// The spans of traces `ids` in `blocks`. With several blocks the second
/// half is read on another thread: a lookup's latency is the sum of its
/// per-block reads (file open, bloom filter, one page per column), and the
/// machine has more than one core.
fn read_traces(blocks: &[Arc<Block>], ids: &[TraceId]) -> Result<Vec<Span>, QueryError> {
    let read = |part: &[Arc<Block>]| -> Result<Vec<Span>, QueryError> {
        let mut spans = Vec::new();
        for b in part {
            spans.extend(b.traces(ids).map_err(internal)?);
        }
        Ok(spans)
    };
    if blocks.len() < 2 {
        return read(blocks);
    }
    let (first, second) = blocks.split_at(blocks.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| read(second));
        let mut spans = read(first)?;
        // A panic in the other thread is reported like any failed read.
        let rest = other.join().map_err(|_| internal("reading a block panicked"))??;
        spans.extend(rest);
        Ok(spans)
    })
}

/// An admitted append's bytes in `Inner::incoming`, released on drop
/// (whether the append succeeded or not).
struct Incoming<'a> {
    counter: &'a AtomicUsize,
    bytes: usize,
}

impl<'a> Incoming<'a> {
    fn add(counter: &'a AtomicUsize, bytes: usize) -> Incoming<'a> {
        counter.fetch_add(bytes, Ordering::AcqRel);
        Incoming { counter, bytes }
    }
}

impl Drop for Incoming<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Runs blocking block IO off the async workers.
async fn run_blocking<T: Send + 'static>(
    dir: &Path,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::io(dir, std::io::Error::other(e)))?
}

#[async_trait]
impl TracesConsumer for EmbeddedStore {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.inner.append(batch).await
    }
}

#[async_trait]
impl SpanReader for EmbeddedStore {
    async fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, QueryError> {
        let spans = self.inner.trace(id).await?;
        Ok((!spans.is_empty()).then_some(spans))
    }

    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Vec<Span>>, QueryError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let inner = &self.inner;
        let mut hits: HashMap<TraceId, u64> = HashMap::new();
        let head = inner.head.lock().snapshot();
        head.search(query, &mut hits);
        for f in inner.frozen_list() {
            f.head.snapshot().search(query, &mut hits);
        }
        let blocks = inner.block_list();
        let q = query.clone();
        let hits = tokio::task::spawn_blocking(move || search_blocks(&blocks, &q, hits))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        let mut ranked: Vec<(TraceId, u64)> = hits.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(query.limit);
        let ids: Vec<TraceId> = ranked.iter().map(|(id, _)| *id).collect();
        let mut found = inner.traces(&ids).await?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).filter(|spans| !spans.is_empty()).collect())
    }

    async fn services(&self) -> Result<Vec<String>, QueryError> {
        let mut out = BTreeSet::new();
        self.inner.head.lock().services(&mut out);
        for f in self.inner.frozen_list() {
            f.head.services(&mut out);
        }
        for b in self.inner.block_list().iter() {
            for (service, _, _) in &b.meta().operations {
                if !out.contains(service) {
                    out.insert(service.clone());
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    async fn operations(&self, service: &str, kind: Option<SpanKind>) -> Result<Vec<Operation>, QueryError> {
        let mut out = BTreeSet::new();
        self.inner.head.lock().operations(service, kind, &mut out);
        for f in self.inner.frozen_list() {
            f.head.operations(service, kind, &mut out);
        }
        for b in self.inner.block_list().iter() {
            for (s, name, k) in &b.meta().operations {
                let k = SpanKind::from_i32(i32::from(*k));
                if s == service && kind.is_none_or(|want| want == k) {
                    out.insert(Operation { name: name.clone(), kind: k });
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    async fn dependencies(
        &self,
        end_unix_nanos: u64,
        lookback_nanos: u64,
    ) -> Result<Vec<DependencyLink>, QueryError> {
        let from = end_unix_nanos.saturating_sub(lookback_nanos);
        let mut counts: HashMap<(String, String), u64> = HashMap::new();
        self.inner.head.lock().snapshot().dependencies(from, end_unix_nanos, &mut counts);
        for f in self.inner.frozen_list() {
            f.head.snapshot().dependencies(from, end_unix_nanos, &mut counts);
        }
        // Blocks keep per-block counts: a block counts whole when its time
        // range overlaps the window.
        for b in self.inner.block_list().iter() {
            let m = b.meta();
            if m.max_start_unix_nanos >= from && m.min_start_unix_nanos <= end_unix_nanos {
                for (parent, child, calls) in &m.dependencies {
                    *counts.entry((parent.clone(), child.clone())).or_insert(0) += calls;
                }
            }
        }
        Ok(dependency_links(counts))
    }
}

/// Adds block matches to `hits`, newest blocks first, skipping blocks that
/// cannot change the top `limit`.
fn search_blocks(
    blocks: &[Arc<Block>],
    query: &TraceQuery,
    mut hits: HashMap<TraceId, u64>,
) -> Result<HashMap<TraceId, u64>, sightline_block::Error> {
    let mut order: Vec<&Arc<Block>> = blocks
        .iter()
        .filter(|b| {
            let m = b.meta();
            query.start_min_unix_nanos.is_none_or(|min| m.max_start_unix_nanos >= min)
                && query.start_max_unix_nanos.is_none_or(|max| m.min_start_unix_nanos <= max)
                && query.service.as_deref().is_none_or(|s| {
                    m.operations.iter().any(|(svc, name, _)| {
                        svc == s && query.operation.as_deref().is_none_or(|op| op == name)
                    })
                })
        })
        .collect();
    order.sort_by_key(|b| std::cmp::Reverse(b.meta().max_start_unix_nanos));
    for b in order {
        if hits.len() >= query.limit {
            let mut starts: Vec<u64> = hits.values().copied().collect();
            starts.sort_unstable_by(|a, b| b.cmp(a));
            let kth = starts.get(query.limit - 1).copied().unwrap_or(0);
            if b.meta().max_start_unix_nanos < kth {
                continue;
            }
        }
        for (id, start) in b.search(query)? {
            let latest = hits.entry(id).or_insert(0);
            *latest = (*latest).max(start);
        }
    }
    Ok(hits)
}

#[async_trait]
impl TraceStore for EmbeddedStore {
    fn health(&self) -> ComponentHealth {
        let failure = self.inner.failure.lock().clone();
        let head = self.inner.head.lock().len();
        let blocks = self.inner.blocks.read().len();
        let frozen = self.inner.frozen.read().len();
        match failure {
            Some(why) => ComponentHealth { name: "store".into(), healthy: false, detail: why },
            None => ComponentHealth {
                name: "store".into(),
                healthy: true,
                detail: format!("{head} spans in head, {frozen} heads flushing, {blocks} blocks"),
            },
        }
    }

    async fn shutdown(&self) {
        if !self.inner.accepting.swap(false, Ordering::AcqRel) {
            return;
        }
        // The cut waits for in-flight appends (they hold the cut lock), then
        // the head is flushed so the next start has no WAL to replay. If the
        // flush fails the WAL still has everything.
        let flushed = Arc::clone(&self.inner).flush_everything().await;
        if let Err(e) = flushed {
            tracing::warn!(error = %e, "final flush failed; the WAL will be replayed at next start");
        }
        self.inner.closed.store(true, Ordering::Release);
        if let Err(e) = self.inner.wal.close().await {
            tracing::warn!(error = %e, "closing the WAL failed");
        }
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().drain(..).collect();
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        self.inner.empty_trash();
        self.inner.lock.lock().take();
    }
}
