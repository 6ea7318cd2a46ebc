//! Ingest: the WAL, the live head, the heads cut and waiting to be flushed,
//! and the admission control in front of them.
//!
//! Appends hold the cut lock shared across "WAL append + head insert"; a
//! cut holds it exclusively while it rotates the WAL and swaps the head.
//! So every record of a sealed segment is in the frozen head that segment
//! belongs to, and deleting the segment once that head is in a block never
//! loses a span.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use sightline_model::{Batch, ConsumeError};
use sightline_wal::{SegmentId, Wal};
use tokio::sync::Notify;

use crate::head::record::Interner;
use crate::head::{Head, HeadSnapshot};
use crate::metrics::Gauges;
use crate::shared::HeadShare;
use crate::{Error, Metrics};

/// How long an append waits for a flush when the head is full and the
/// flush queue too, before it is refused. A flush that is about to finish
/// should not cost every sender a whole retry delay: measured, a 1 s
/// `Retry-After` per refused request left the server idle most of the time
/// at saturation. Memory stays bounded: a waiting append still holds its
/// request's share of the receiver's in-flight budget, so new requests are
/// refused there instead.
const FLUSH_WAIT: Duration = Duration::from_millis(500);

/// A head that was cut and waits to be flushed, with the WAL segments that
/// hold exactly its records.
#[derive(Debug)]
pub(crate) struct Frozen {
    pub(crate) head: HeadSnapshot,
    /// First segment with records of this head.
    pub(crate) first: SegmentId,
    /// The segment sealed by the cut: the last one with its records.
    pub(crate) sealed: SegmentId,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Ingest {
    wal: Wal,
    /// Shared by appends across "WAL append + head insert", exclusive for a
    /// cut.
    cut_lock: tokio::sync::RwLock<()>,
    head: Mutex<Head>,
    /// Resources, scopes and names the live head's records share; reset
    /// at each cut so it never outgrows one head.
    interner: Mutex<Interner>,
    /// First WAL segment with records in the live head.
    head_first: AtomicU64,
    frozen: RwLock<VecDeque<Arc<Frozen>>>,
    /// Bytes of appends admitted but not yet in the head.
    incoming: AtomicUsize,
    /// False once shutdown begins: appends are refused from then on.
    accepting: AtomicBool,
    failure: Mutex<Option<String>>,
    /// The last WAL write that failed and was undone (disk full), until an
    /// append succeeds again: the store refuses writes meanwhile, and its
    /// health says so (`/ready` follows), without needing a restart.
    write_trouble: Mutex<Option<String>>,
    /// Notified whenever a frozen head leaves the queue.
    pub(crate) flushed: Notify,
    /// Wakes the cutter: the head is full, or the queue has room again.
    pub(crate) wake_cutter: Notify,
    /// Wakes the flusher: a head was cut.
    pub(crate) wake_flusher: Notify,
    head_max: Arc<HeadShare>,
    max_frozen_heads: usize,
    metrics: Arc<Metrics>,
    /// This store's part of the gauges every tenant's store adds to.
    pub(crate) gauges: Gauges,
}

impl Ingest {
    /// Ingest over an open WAL and the head replayed from it, whose records
    /// start at segment `head_first`.
    pub(crate) fn new(
        wal: Wal,
        head: Head,
        interner: Interner,
        head_first: SegmentId,
        head_max: Arc<HeadShare>,
        max_frozen_heads: usize,
        metrics: Arc<Metrics>,
    ) -> Ingest {
        Ingest {
            wal,
            cut_lock: tokio::sync::RwLock::new(()),
            head: Mutex::new(head),
            interner: Mutex::new(interner),
            head_first: AtomicU64::new(head_first.0),
            frozen: RwLock::new(VecDeque::new()),
            incoming: AtomicUsize::new(0),
            accepting: AtomicBool::new(true),
            failure: Mutex::new(None),
            write_trouble: Mutex::new(None),
            flushed: Notify::new(),
            wake_cutter: Notify::new(),
            wake_flusher: Notify::new(),
            head_max,
            max_frozen_heads,
            gauges: Gauges::new(&metrics),
            metrics,
        }
    }

    pub(crate) fn wal(&self) -> &Wal {
        &self.wal
    }

    /// Marks the store failed: appends are refused from now on.
    pub(crate) fn fail(&self, why: String) {
        tracing::error!(error = %why, "store failed; refusing writes");
        self.failure.lock().get_or_insert(why);
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().clone()
    }

    /// Why writes are refused for now (a WAL write failed and was undone),
    /// until an append succeeds.
    pub(crate) fn write_trouble(&self) -> Option<String> {
        self.write_trouble.lock().clone()
    }

    pub(crate) fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::Acquire)
    }

    /// Refuses appends from now on; false if that was already so.
    pub(crate) fn stop_accepting(&self) -> bool {
        self.accepting.swap(false, Ordering::AcqRel)
    }

    /// `(spans, estimated bytes, created)` of the live head.
    pub(crate) fn head_state(&self) -> (usize, usize, Instant) {
        let head = self.head.lock();
        (head.len(), head.bytes(), head.created())
    }

    /// A snapshot of the live head.
    pub(crate) fn head_snapshot(&self) -> HeadSnapshot {
        self.head.lock().snapshot()
    }

    /// The frozen heads, oldest first.
    pub(crate) fn frozen(&self) -> Vec<Arc<Frozen>> {
        self.frozen.read().iter().cloned().collect()
    }

    pub(crate) fn frozen_count(&self) -> usize {
        self.frozen.read().len()
    }

    pub(crate) fn oldest_frozen(&self) -> Option<Arc<Frozen>> {
        self.frozen.read().front().cloned()
    }

    /// Removes a flushed head from the queue (it is in a block now) and
    /// lets waiting appends and the cutter know there is room.
    pub(crate) fn release(&self, frozen: &Arc<Frozen>) {
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
        self.gauges.frozen_heads.set(self.frozen_count() as i64);
    }

    /// Whether the head is full and no more heads may wait to be flushed.
    fn flush_behind(&self) -> bool {
        self.frozen.read().len() >= self.max_frozen_heads
            && self.head.lock().bytes() + self.incoming.load(Ordering::Acquire) >= self.head_max.per_store()
    }

    /// Waits up to [`FLUSH_WAIT`] for a flush to make room.
    async fn wait_for_flush(&self) -> bool {
        let deadline = tokio::time::Instant::now() + FLUSH_WAIT;
        crate::wait::until(&self.flushed, deadline, || !self.flush_behind()).await
    }

    fn refuse(&self, reason: &str) -> ConsumeError {
        self.metrics.refused.get_or_create(&vec![("reason".to_owned(), reason.to_owned())]).inc();
        ConsumeError::Overloaded { reason: reason.to_owned(), retry_after: Duration::from_secs(1) }
    }

    /// Appends a batch: WAL first (durable per the fsync policy), then the
    /// head. `Ok` is the acknowledgement promise.
    pub(crate) async fn append(&self, batch: Batch) -> Result<(), ConsumeError> {
        if let Some(why) = self.failure() {
            return Err(ConsumeError::Unavailable { reason: why, retry_after: Duration::from_secs(5) });
        }
        if !self.is_accepting() {
            return Err(shutting_down());
        }
        if batch.is_empty() {
            return Ok(());
        }
        // The head keeps the encoding, not decoded spans (if a stage
        // decoded them): let them go before waiting on anything.
        let count = batch.len() as u64;
        let otlp = batch.into_otlp();
        let bytes = Head::charge(count as usize, otlp.len());
        if self.flush_behind() && !self.wait_for_flush().await {
            return Err(self.refuse("flush_behind"));
        }
        // Counted as head memory from admission on, so concurrent appends
        // cannot all pass the check above and overshoot the head's bound.
        let _incoming = Incoming::add(&self.incoming, bytes);
        let record = match Head::index(&otlp, &self.interner) {
            Ok(record) => record,
            Err(e) => {
                // The receivers decoded these bytes, so this is a bug, not
                // bad input; refuse the batch rather than log what cannot
                // be read back.
                tracing::error!(error = %e, "a batch the receiver decoded could not be indexed; refused");
                return Err(ConsumeError::Unavailable {
                    reason: format!("the store could not index the batch: {e}"),
                    retry_after: Duration::from_secs(5),
                });
            }
        };
        let guard = self.cut_lock.read().await;
        match self.wal.append(otlp).await {
            Ok(_) => {
                if self.write_trouble.lock().take().is_some() {
                    tracing::info!("WAL writes succeed again; accepting data");
                }
            }
            Err(sightline_wal::Error::Full { .. }) => return Err(self.refuse("wal_queue_full")),
            Err(e @ sightline_wal::Error::Unwritable { .. }) => {
                let why = format!("write-ahead log cannot write, refusing data until it can: {e}");
                *self.write_trouble.lock() = Some(why.clone());
                self.metrics
                    .refused
                    .get_or_create(&vec![("reason".to_owned(), "wal_unwritable".to_owned())])
                    .inc();
                return Err(ConsumeError::Unavailable { reason: why, retry_after: Duration::from_secs(5) });
            }
            Err(sightline_wal::Error::Closed) => return Err(shutting_down()),
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
            head.push(record);
            head.bytes()
        };
        drop(guard);
        self.metrics.spans_appended.inc_by(count);
        self.gauges.head_bytes.set(head_bytes as i64);
        if head_bytes >= self.head_max.per_store() {
            self.wake_cutter.notify_one();
        }
        Ok(())
    }

    /// Freezes the head and rotates the WAL, unless the head is empty or
    /// the flush queue is full (then appends get refused once the head is
    /// full). Returns whether it cut.
    pub(crate) async fn cut(&self) -> Result<bool, Error> {
        if self.frozen.read().len() >= self.max_frozen_heads {
            return Ok(false);
        }
        let _guard = self.cut_lock.write().await;
        if self.head.lock().is_empty() {
            return Ok(false);
        }
        let sealed = self.wal.rotate().await?;
        let first = SegmentId(self.head_first.swap(sealed.0 + 1, Ordering::AcqRel));
        {
            // The frozen list is locked before the head is taken: a reader
            // that finds the live head empty then waits for the frozen list
            // and finds the spans there, never in neither.
            let mut frozen = self.frozen.write();
            let head = std::mem::take(&mut *self.head.lock());
            frozen.push_back(Arc::new(Frozen { head: head.snapshot(), first, sealed }));
        }
        *self.interner.lock() = Interner::default();
        self.gauges.frozen_heads.set(self.frozen_count() as i64);
        self.gauges.head_spans.set(0);
        self.gauges.head_bytes.set(0);
        self.wake_flusher.notify_one();
        Ok(true)
    }
}

fn shutting_down() -> ConsumeError {
    ConsumeError::Unavailable { reason: "shutting down".into(), retry_after: Duration::from_secs(5) }
}

/// An admitted append's bytes in `Ingest::incoming`, released on drop
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
