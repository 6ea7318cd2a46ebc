//! The background work: cutting the head, flushing frozen heads into
//! blocks, merging blocks, and retention. It depends only on [`Ingest`]
//! and the [`BlockSet`]; what to merge and delete comes from the pure
//! planners.
//!
//! Backpressure, in order: a full head with a full flush queue makes
//! appends wait, then refuses them retryably; the flusher waits while
//! `compaction_stall_blocks` fresh blocks await merging (the LSM write
//! stall), so sustained overload settles at the rate flush and compaction
//! keep up with instead of piling up blocks; merges wait while the memory
//! limiter reports pressure, unless flushes are stalled on them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use sightline_block::Block;
use sightline_model::{MemoryBudget, Pressure};
use tokio::sync::{Notify, watch};

use crate::blockset::plan::{CompactionPolicy, RetentionPolicy, Width};
use crate::blockset::{BlockSet, flushed_block_id, merged_block_id};
use crate::ingest::{Frozen, Ingest};
use crate::{BlockOptions, Error, Metrics};

/// The longest pause between attempts of a failing flush: short enough
/// that ingest resumes soon after an object store outage ends (a flush
/// attempt against a store that is down is cheap: it fails on connect),
/// long enough not to flood the log.
const FLUSH_RETRY_MAX: Duration = Duration::from_secs(10);

/// The knobs background work runs by (from `crate::Options`).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The head's bound: this store's share of the process's head bytes.
    pub(crate) head_max: Arc<crate::shared::HeadShare>,
    pub(crate) head_max_age: Duration,
    pub(crate) flush_split_spans: usize,
    pub(crate) block: BlockOptions,
    pub(crate) flush_zstd_level: i32,
    pub(crate) compaction: CompactionPolicy,
    pub(crate) stall_blocks: usize,
    pub(crate) retention: RetentionPolicy,
    pub(crate) maintenance_interval: Duration,
    pub(crate) pressure_hold: Duration,
    /// Prefix of the block ids this process writes (`<node>-`), so nodes
    /// sharing a bucket never write the same id; empty for a local store.
    pub(crate) id_prefix: String,
    /// See [`crate::Options::merge_commit_pause`].
    pub(crate) merge_commit_pause: Duration,
}

/// State of the background tasks; see the module docs.
#[derive(Debug)]
pub(crate) struct Background {
    pub(crate) ingest: Arc<Ingest>,
    pub(crate) blocks: Arc<BlockSet>,
    settings: Settings,
    metrics: Arc<Metrics>,
    /// True once the tasks should stop.
    closed: AtomicBool,
    /// Wakes the compactor: enough fresh blocks for a full-width merge.
    wake_compactor: Notify,
    /// Notified whenever a compaction has replaced its inputs.
    compacted: Notify,
    /// True while the last compaction attempt failed: flushes do not stall
    /// on a compactor that cannot make progress.
    compaction_failing: AtomicBool,
    /// Serialises retention and compaction: each plans from a snapshot of
    /// the block list and assumes nobody else removes blocks meanwhile.
    maintenance_lock: tokio::sync::Mutex<()>,
    /// One flush at a time: the background flusher and explicit flushes
    /// must not write the same frozen head twice.
    flush_lock: tokio::sync::Mutex<()>,
    /// The memory budget, whose pressure the memory limiter publishes.
    memory: Arc<MemoryBudget>,
    /// The pressure last observed, and when it last fell back to normal.
    pressure: Mutex<(Pressure, Option<Instant>)>,
}

impl Background {
    pub(crate) fn new(
        ingest: Arc<Ingest>,
        blocks: Arc<BlockSet>,
        settings: Settings,
        metrics: Arc<Metrics>,
        memory: Arc<MemoryBudget>,
    ) -> Background {
        Background {
            ingest,
            blocks,
            settings,
            metrics,
            closed: AtomicBool::new(false),
            wake_compactor: Notify::new(),
            compacted: Notify::new(),
            compaction_failing: AtomicBool::new(false),
            maintenance_lock: tokio::sync::Mutex::new(()),
            flush_lock: tokio::sync::Mutex::new(()),
            memory,
            pressure: Mutex::new((Pressure::Normal, None)),
        }
    }

    /// Starts the four tasks, and a fifth that follows other nodes'
    /// changes when the block storage is shared.
    pub(crate) fn spawn(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = vec![
            tokio::spawn(Arc::clone(self).cutter()),
            tokio::spawn(Arc::clone(self).flusher()),
            tokio::spawn(Arc::clone(self).maintainer()),
            tokio::spawn(Arc::clone(self).compactor()),
        ];
        if self.blocks.storage().shared() {
            tasks.push(tokio::spawn(Arc::clone(self).poller()));
        }
        tasks
    }

    /// Whether merges and retention are this process's job now (see
    /// `BlockStorage::may_compact`).
    fn may_compact(&self) -> bool {
        self.blocks.storage().may_compact()
    }

    /// Follows the blocks other nodes list in a shared manifest: their
    /// flushes become visible to this node's queries here, and the
    /// compactor learns of merges due.
    async fn poller(self: Arc<Self>) {
        let interval = self.blocks.storage().poll_interval();
        let mut allowed = self.may_compact();
        loop {
            tokio::time::sleep(interval).await;
            if self.is_closed() {
                return;
            }
            // This node just took over compaction (the holder died or let
            // go): merges that were due on the old holder are due here now,
            // not at the next flush or maintenance round.
            let now_allowed = self.may_compact();
            if now_allowed && !allowed && self.compaction_debt() >= self.settings.compaction.max_inputs {
                self.wake_compactor.notify_one();
            }
            allowed = now_allowed;
            if !self.blocks.storage().poll_due() {
                continue;
            }
            let blocks = Arc::clone(&self.blocks);
            match run_blocking(move || blocks.refresh()).await {
                Ok(false) => {}
                Ok(true) => {
                    self.empty_trash().await;
                    self.update_gauges();
                    if self.compaction_debt() >= self.settings.compaction.max_inputs {
                        self.wake_compactor.notify_one();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the shared manifest failed; will retry"),
            }
        }
    }

    /// Tells the tasks to stop at their next wake-up.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn update_gauges(&self) {
        let (spans, bytes, _) = self.ingest.head_state();
        self.ingest.gauges.head_spans.set(spans as i64);
        self.ingest.gauges.head_bytes.set(bytes as i64);
        self.ingest.gauges.frozen_heads.set(self.ingest.frozen_count() as i64);
        let blocks = self.blocks.list();
        self.ingest.gauges.blocks.set(blocks.len() as i64);
        self.ingest.gauges.block_bytes.set(blocks.iter().map(|b| b.meta().size_bytes).sum::<u64>() as i64);
        self.ingest.gauges.block_spans.set(blocks.iter().map(|b| b.meta().span_count).sum::<u64>() as i64);
        self.ingest.gauges.block_memory.set(blocks.iter().map(|b| b.memory_size()).sum::<usize>() as i64);
        self.ingest.gauges.compaction_debt.set(self.compaction_debt() as i64);
    }

    /// The pressure now, noting when it fell back to normal.
    fn pressure_now(&self) -> Pressure {
        let now = self.memory.pressure();
        let mut last = self.pressure.lock();
        if now == Pressure::Normal && last.0 > Pressure::Normal {
            last.1 = Some(Instant::now());
        }
        last.0 = now;
        now
    }

    /// Whether the process is under memory pressure, or was within
    /// `pressure_hold`: a merge holds ~30 MiB whatever the memory limit,
    /// and one started in the middle of an overload took a 144 MiB process
    /// to 150 MiB.
    fn under_pressure(&self) -> bool {
        self.pressure_now() > Pressure::Normal
            || self.pressure.lock().1.is_some_and(|t| t.elapsed() < self.settings.pressure_hold)
    }

    /// Cuts the head when it is full or old, or, while the process is
    /// under memory pressure, once it holds a quarter of its size (cutting
    /// a tiny head would only add a flush's working set).
    async fn cutter(self: Arc<Self>) {
        let mut pressure = self.memory.subscribe();
        loop {
            tokio::select! {
                _ = self.ingest.wake_cutter.notified() => {}
                _ = changed(&mut pressure) => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if self.is_closed() {
                return;
            }
            let pressure = self.pressure_now() > Pressure::Normal;
            let (spans, bytes, created) = self.ingest.head_state();
            let max = self.settings.head_max.per_store();
            let due = spans > 0
                && ((pressure && bytes >= max / 4)
                    || bytes >= max
                    || created.elapsed() >= self.settings.head_max_age);
            match if due { self.ingest.cut().await } else { Ok(false) } {
                Ok(_) => {}
                // No new WAL segment for now (no descriptor or space free):
                // the head stays live and the next tick tries again.
                Err(Error::Wal(e)) if e.is_retryable() => {
                    tracing::warn!(error = %e, "cannot cut the head yet; retrying");
                }
                Err(e) => self.ingest.fail(format!("cutting the head failed: {e}")),
            }
        }
    }

    /// Flushes cut heads, retrying a failed flush after 1, 2, 4, 8, then
    /// every [`FLUSH_RETRY_MAX`] seconds for as long as it fails (the WAL
    /// keeps the data meanwhile).
    async fn flusher(self: Arc<Self>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            tokio::select! {
                _ = self.ingest.wake_flusher.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            match self.flush_all().await {
                Ok(()) => backoff = Duration::from_secs(1),
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?backoff, "flushing a head into a block failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(FLUSH_RETRY_MAX);
                }
            }
            if self.is_closed() && self.ingest.frozen_count() == 0 {
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
    pub(crate) async fn flush_everything(&self) -> Result<(), Error> {
        for _ in 0..3 {
            self.ingest.cut().await?;
            self.flush_all().await?;
            if self.ingest.head_state().0 == 0 {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Flushes frozen heads oldest first until none is left.
    async fn flush_all(&self) -> Result<(), Error> {
        let _one_at_a_time = self.flush_lock.lock().await;
        loop {
            if self.ingest.frozen_count() == 0 {
                return Ok(());
            }
            self.wait_for_compaction().await;
            let Some(frozen) = self.ingest.oldest_frozen() else { return Ok(()) };
            let started = Instant::now();
            let result = self.flush_one(&frozen).await;
            let outcome = if result.is_ok() { "ok" } else { "error" };
            self.metrics.flushes.get_or_create(&Metrics::outcome(outcome)).inc();
            result?;
            self.metrics.flush_seconds.observe(started.elapsed().as_secs_f64());
        }
    }

    async fn flush_one(&self, frozen: &Arc<Frozen>) -> Result<(), Error> {
        let id = format!("{}{}", self.settings.id_prefix, flushed_block_id(frozen.first, frozen.sealed));
        let snapshot = frozen.head.clone();
        let storage = Arc::clone(self.blocks.storage());
        let cache = Arc::clone(self.blocks.cache());
        // A big head is written as two blocks (each trace whole in one) on
        // two threads: encoding is the flush's cost, one flush runs at a
        // time, and at saturation it is what ingest waits for.
        let parts = if snapshot.len() >= self.settings.flush_split_spans { 2 } else { 1 };
        let s = &self.settings;
        let options =
            flush_options(&s.block, s.flush_zstd_level, &s.compaction, snapshot.len().div_ceil(parts));
        let flushed = run_blocking(move || {
            let dir = storage.staging_dir().to_owned();
            let spans = snapshot.otlp_spans(parts);
            let ids: Vec<String> =
                if parts == 1 { vec![id] } else { (0..parts).map(|p| format!("{id}-{p}")).collect() };
            let write =
                |id: &String, spans: Vec<sightline_block::OtlpSpan<'_>>| -> Result<Arc<Block>, Error> {
                    // A block with this id can only be a leftover of a failed
                    // attempt: the same head always gets the same ids, and they
                    // are not in the manifest yet.
                    let _ = std::fs::remove_dir_all(dir.join(id));
                    // Encoded straight from the batches' protobuf bytes.
                    sightline_block::write_otlp(&dir, id, spans, &options)?;
                    storage.publish(id)?;
                    Ok(Arc::new(storage.open(id, &cache)?))
                };
            // An empty part (a head of a few traces) makes no block.
            let mut parts = ids.iter().zip(spans).filter(|(_, spans)| !spans.is_empty());
            let Some((first_id, first_spans)) = parts.next() else { return Ok(Vec::new()) };
            std::thread::scope(|scope| {
                let others: Vec<_> = parts.map(|(id, spans)| scope.spawn(|| write(id, spans))).collect();
                let mut blocks = vec![write(first_id, first_spans)?];
                for other in others {
                    blocks
                        .push(other.join().map_err(|_| Error::Task("a block writer panicked".to_owned()))??);
                }
                Ok(blocks)
            })
        })
        .await?;
        let sealed = frozen.sealed;
        let blocks = Arc::clone(&self.blocks);
        run_blocking(move || blocks.add_flushed(flushed, sealed)).await?;
        self.ingest.release(frozen);
        self.ingest.wal().remove_through(sealed)?;
        self.update_gauges();
        if self.compaction_debt() >= self.settings.compaction.max_inputs {
            self.wake_compactor.notify_one();
        }
        Ok(())
    }

    fn compaction_debt(&self) -> usize {
        self.settings.compaction.debt(&self.blocks.mergeable_metas())
    }

    /// The write stall (see `Options::compaction_stall_blocks`): waits
    /// while compaction is that far behind. Not while shutting down (the
    /// last flush must not wait for merges) nor while compaction fails.
    async fn wait_for_compaction(&self) {
        let no_stall = || {
            !self.ingest.is_accepting()
                || self.is_closed()
                || self.compaction_failing.load(Ordering::Acquire)
                || self.compaction_debt() < self.settings.stall_blocks
        };
        if no_stall() {
            return;
        }
        let since = Instant::now();
        self.ingest.gauges.flush_stalled.set(1);
        tracing::debug!(debt = self.compaction_debt(), "flush waits for compaction to catch up");
        loop {
            self.wake_compactor.notify_one();
            // A second at a time: shutdown and compaction failures notify
            // nothing, so they are noticed by re-checking.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            if crate::wait::until(&self.compacted, deadline, no_stall).await {
                break;
            }
        }
        self.ingest.gauges.flush_stalled.set(0);
        self.metrics.flush_stall_seconds.inc_by(since.elapsed().as_secs_f64());
    }

    async fn maintainer(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.settings.maintenance_interval).await;
            if self.is_closed() {
                return;
            }
            if !self.may_compact() {
                continue;
            }
            if let Err(e) = self.maintain_once().await {
                tracing::error!(error = %e, "block maintenance failed; will retry");
            }
        }
    }

    /// One round of retention and every merge due now.
    pub(crate) async fn maintain_once(&self) -> Result<(), Error> {
        {
            let _one = self.maintenance_lock.lock().await;
            self.apply_retention().await?;
        }
        // Every compaction due now, not one per round: after a burst of
        // ingest, hundreds of small blocks would otherwise take hours of
        // rounds to merge, and every query pays per block.
        self.compact_while(Width::Any).await?;
        self.empty_trash().await;
        self.update_gauges();
        Ok(())
    }

    pub(crate) async fn empty_trash(&self) {
        let blocks = Arc::clone(&self.blocks);
        let _ = tokio::task::spawn_blocking(move || blocks.empty_trash()).await;
    }

    /// Merges as soon as a flush leaves enough fresh blocks for a
    /// full-width merge, rather than at the maintainer's next round (30 s
    /// by default): compaction keeps pace with ingest instead of facing
    /// hundreds of blocks at once. Partial merges of stragglers stay with
    /// the maintainer.
    async fn compactor(self: Arc<Self>) {
        let mut backoff = Duration::from_secs(1);
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut pressure = self.memory.subscribe();
        loop {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.wake_compactor.notified() => {}
                _ = changed(&mut pressure) => {}
                // Merges deferred under pressure: look again once the hold
                // has passed, if nothing else woke the compactor first.
                _ = retry => {}
            }
            retry_at = None;
            if self.is_closed() {
                return;
            }
            if !self.may_compact() {
                continue;
            }
            match self.compact_while(Width::Full).await {
                Ok(Merges::Done) => backoff = Duration::from_secs(1),
                Ok(Merges::Deferred) => {
                    retry_at = Some(tokio::time::Instant::now() + self.settings.pressure_hold);
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in = ?backoff, "compaction failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    self.wake_compactor.notify_one();
                }
            }
            self.empty_trash().await;
            self.update_gauges();
        }
    }

    /// Runs merges until none is due (`Width::Full`: until no full-width
    /// merge is), one at a time under the maintenance lock. Records
    /// whether compaction works, for the write stall.
    async fn compact_while(&self, width: Width) -> Result<Merges, Error> {
        loop {
            if self.is_closed() {
                return Ok(Merges::Done);
            }
            // Stalled flushes take any merge that lowers the debt; short of
            // that, full-width merges wait out memory pressure.
            let stalled = self.compaction_debt() >= self.settings.stall_blocks;
            if width == Width::Full && !stalled && self.under_pressure() {
                if self.settings.compaction.plan(&self.blocks.mergeable_metas(), Width::Full).is_some() {
                    self.metrics.compactions_deferred.inc();
                    return Ok(Merges::Deferred);
                }
                return Ok(Merges::Done);
            }
            let width = if stalled { Width::Any } else { width };
            let merged = {
                let _one = self.maintenance_lock.lock().await;
                self.compact_once(width).await
            };
            self.compaction_failing.store(merged.is_err(), Ordering::Release);
            if !merged? {
                return Ok(Merges::Done);
            }
        }
    }

    /// Runs the merge the planner picks; false when none is due.
    async fn compact_once(&self, width: Width) -> Result<bool, Error> {
        let blocks = self.blocks.list();
        let metas = self.blocks.mergeable_metas();
        let Some(ids) = self.settings.compaction.plan(&metas, width) else { return Ok(false) };
        let inputs: Vec<Arc<Block>> =
            ids.iter().filter_map(|id| blocks.iter().find(|b| &b.meta().id == id).cloned()).collect();
        self.compact(inputs).await?;
        Ok(true)
    }

    async fn compact(&self, inputs: Vec<Arc<Block>>) -> Result<(), Error> {
        let level = inputs.iter().map(|b| b.meta().compaction_level).max().unwrap_or(0) + 1;
        let input_ids: Vec<String> = inputs.iter().map(|b| b.meta().id.clone()).collect();
        let id = format!(
            "{}{}",
            self.settings.id_prefix,
            merged_block_id(level, &input_ids.iter().map(String::as_str).collect::<Vec<_>>())
        );
        let storage = Arc::clone(self.blocks.storage());
        let cache = Arc::clone(self.blocks.cache());
        let options = self.settings.block.clone();
        let sources = inputs.clone();
        let result = run_blocking(move || {
            let dir = storage.staging_dir().to_owned();
            let _ = std::fs::remove_dir_all(dir.join(&id));
            let refs: Vec<&Block> = sources.iter().map(|b| b.as_ref()).collect();
            sightline_block::compact(&dir, &id, &refs, &options)?;
            storage.publish(&id)?;
            Ok(Arc::new(storage.open(&id, &cache)?))
        })
        .await;
        let block = match result {
            Ok(b) => b,
            Err(e) => {
                self.metrics.compactions.get_or_create(&Metrics::outcome("error")).inc();
                // A damaged input is set aside, so the next plan merges
                // the others instead of failing on it forever.
                for input in inputs.iter().filter(|b| damaged_by(b, &e)) {
                    self.blocks.damaged().report(&input.meta().id, &e);
                }
                return Err(e);
            }
        };
        if !self.settings.merge_commit_pause.is_zero() {
            tracing::warn!(
                output = %block.meta().id,
                pause = ?self.settings.merge_commit_pause,
                "test hook: merge output written, pausing before its commit"
            );
            tokio::time::sleep(self.settings.merge_commit_pause).await;
        }
        let blocks = Arc::clone(&self.blocks);
        let output = Arc::clone(&block);
        let ids = input_ids.clone();
        match run_blocking(move || blocks.replace(&ids, output)).await {
            Ok(()) => {}
            Err(Error::Superseded { gone, .. }) => {
                // Another node merged or expired some inputs first: this
                // output would duplicate their spans. Nobody lists it.
                self.metrics.compactions.get_or_create(&Metrics::outcome("superseded")).inc();
                tracing::info!(output = %block.meta().id, ?gone, "a merge lost to another node's; dropped");
                let storage = Arc::clone(self.blocks.storage());
                let id = block.meta().id.clone();
                drop(block);
                if let Err(e) = run_blocking(move || storage.discard(&id)).await {
                    tracing::warn!(error = %e, "could not delete a dropped merge output");
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.metrics.compactions.get_or_create(&Metrics::outcome("ok")).inc();
        tracing::info!(inputs = inputs.len(), output = %block.meta().id, spans = block.meta().span_count, "compacted blocks");
        drop(inputs);
        self.compacted.notify_waiters();
        Ok(())
    }

    async fn apply_retention(&self) -> Result<(), Error> {
        let doomed = self.settings.retention.plan(&self.blocks.metas(), now_nanos());
        if doomed.is_empty() {
            return Ok(());
        }
        let blocks = Arc::clone(&self.blocks);
        let count = run_blocking(move || blocks.remove(&doomed)).await?;
        self.metrics.retention_deleted_blocks.inc_by(count as u64);
        tracing::info!(blocks = count, "retention deleted blocks");
        Ok(())
    }

    /// Keeps every flush (background or explicit) waiting while held. For
    /// tests.
    #[cfg(test)]
    pub(crate) async fn hold_flushes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.flush_lock.lock().await
    }

    /// Keeps retention and compaction waiting while held. For tests.
    #[cfg(test)]
    pub(crate) async fn hold_compactions(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.maintenance_lock.lock().await
    }
}

/// How a flushed block of about `spans` spans is written: at the cheap
/// flush zstd level when compaction will merge it (and re-encode it at the
/// merge level), at the merge level when it is too big to be merged, since
/// its bytes are then the stored ones.
fn flush_options(
    block: &BlockOptions,
    flush_level: i32,
    policy: &CompactionPolicy,
    spans: usize,
) -> BlockOptions {
    // The planner's own test of a fresh block it will merge (`debt`).
    let merged_later = (spans as u64).saturating_mul(2) <= policy.max_spans;
    BlockOptions { zstd_level: if merged_later { flush_level } else { block.zstd_level }, ..block.clone() }
}

/// Whether `error` is damage found in `block`'s files.
pub(crate) fn damaged_by(block: &Block, error: &Error) -> bool {
    match error {
        Error::Block(e) if e.is_corruption() => e.path().is_some_and(|p| p.starts_with(block.dir())),
        _ => false,
    }
}

/// Resolves when the pressure changes (never, once the budget is gone).
async fn changed(rx: &mut watch::Receiver<Pressure>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
    rx.borrow_and_update();
}

/// How a round of merging ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merges {
    /// Nothing (more) is due.
    Done,
    /// A merge is due but waits out memory pressure.
    Deferred,
}

/// Runs blocking block IO off the async workers.
pub(crate) async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Task(e.to_string()))?
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flushes_use_the_cheap_level_only_for_blocks_compaction_rewrites() {
        let block = BlockOptions { zstd_level: 3, ..BlockOptions::default() };
        let policy = CompactionPolicy {
            min_inputs: 4,
            max_inputs: 16,
            max_spans: 1000,
            remerge_max_spans: 100,
            hold_spans: 0,
        };
        let level = |spans| flush_options(&block, 1, &policy, spans).zstd_level;
        assert_eq!(level(31), 1);
        assert_eq!(level(500), 1);
        // Too big to be merged: written once, at the stored level.
        assert_eq!(level(501), 3);
        assert_eq!(flush_options(&block, 1, &policy, 10).row_group_spans, block.row_group_spans);
    }
}
