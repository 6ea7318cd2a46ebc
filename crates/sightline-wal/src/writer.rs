//! The writer thread: the only code that writes segment files.
//!
//! It takes the first queued command, drains everything else queued behind it
//! (up to a batch cap), writes all records with one `write_all` of a reused
//! buffer, fsyncs once when the policy says so, and only then completes the
//! appenders' oneshots. That is group commit: records arriving during an
//! fsync ride in the next round together.

use std::fs::File;
use std::io::{Seek as _, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use std::{io, thread};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::format::{HEADER_LEN, RECORD_HEADER_LEN, SegmentId, encode_record};
use crate::metrics::{Metrics, gauge_bytes};
use crate::policy::FsyncPolicy;
use crate::recovery::create_segment;

/// Bytes of records written per round at most. Bounds the latency of the
/// first record in a round and the size the reused buffer grows to.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// A request to the writer thread.
pub(crate) enum Command {
    Append { payload: Bytes, reservation: Reservation, ack: oneshot::Sender<Result<SegmentId, Error>> },
    Rotate { ack: oneshot::Sender<Result<SegmentId, Error>> },
    Close { ack: oneshot::Sender<Result<(), Error>> },
}

/// State shared by the `Wal` handle and the writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) closed: AtomicBool,
    pub(crate) poison: OnceLock<Poison>,
    pub(crate) pending: Arc<AtomicUsize>,
    pub(crate) max_pending: usize,
    /// The segment appends currently go to; everything below it is sealed.
    pub(crate) active: AtomicU64,
    pub(crate) metrics: Arc<Metrics>,
}

/// The first write or fsync failure.
#[derive(Clone, Debug)]
pub(crate) struct Poison {
    op: &'static str,
    path: PathBuf,
    source: Arc<io::Error>,
}

impl Shared {
    pub(crate) fn poisoned(&self) -> Option<Error> {
        self.poison.get().map(|p| Error::Poisoned {
            op: p.op,
            path: p.path.clone(),
            source: Arc::clone(&p.source),
        })
    }

    /// Why the writer no longer answers: it failed, or it was closed.
    pub(crate) fn stopped(&self) -> Error {
        self.poisoned().unwrap_or(Error::Closed)
    }

    fn poison(&self, op: &'static str, path: &std::path::Path, source: io::Error) {
        let first = self.poison.set(Poison { op, path: path.to_owned(), source: Arc::new(source) });
        if first.is_ok()
            && let Some(Error::Poisoned { source, .. }) = self.poisoned()
        {
            tracing::error!(op, path = %path.display(), error = %source, "WAL poisoned");
        }
    }
}

/// Bytes an append holds in the writer queue; released when dropped, which
/// happens just before its acknowledgement (or when a dropped command is
/// discarded after `close`).
#[derive(Debug)]
pub(crate) struct Reservation {
    counter: Arc<AtomicUsize>,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.counter.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Reserves `bytes` of queue space under `limit`.
///
/// An empty queue admits any record, so a record larger than the bound is
/// delayed, never refused forever. Otherwise the total must stay within the
/// bound; on refusal returns the bytes pending.
pub(crate) fn try_reserve(
    counter: &Arc<AtomicUsize>,
    bytes: usize,
    limit: usize,
) -> Result<Reservation, usize> {
    let mut current = counter.load(Ordering::Acquire);
    loop {
        let total = current.saturating_add(bytes);
        if current != 0 && total > limit {
            return Err(current);
        }
        match counter.compare_exchange_weak(current, total, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                return Ok(Reservation { counter: Arc::clone(counter), bytes });
            }
            Err(now) => current = now,
        }
    }
}

/// Queue bytes one append accounts for.
pub(crate) fn reserved_len(payload: &Bytes) -> usize {
    payload.len() + RECORD_HEADER_LEN
}

type AppendAck = (oneshot::Sender<Result<SegmentId, Error>>, Reservation);

/// Owns the active segment file.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rx: Receiver<Command>,
    pub(crate) policy: FsyncPolicy,
    pub(crate) dir: PathBuf,
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// The segment's length: every byte below it was written whole.
    pub(crate) len: u64,
    pub(crate) segment: SegmentId,
    /// Held until the writer exits, so a reopen waits for the last sync.
    pub(crate) _lock: File,
    /// Test hook: when set, each round waits for a token after taking its
    /// first command, so tests can pile up commands deterministically.
    pub(crate) gate: Option<Receiver<()>>,
    /// Where each round is copied before it is acknowledged.
    pub(crate) mirror: Option<Arc<dyn crate::mirror::Mirror>>,
    /// The reused buffer a round's mirror copy is built in.
    pub(crate) image: Vec<u8>,
}

/// Per-round state of the running writer.
struct Round {
    buf: Vec<u8>,
    waiters: Vec<AppendAck>,
    /// Written but not yet fsynced.
    dirty: bool,
    unsynced_records: u64,
    last_sync: Instant,
}

impl Writer {
    /// Runs until `close` or until every `Wal` handle is dropped.
    pub(crate) fn run(self) {
        let guard = PanicGuard(Arc::clone(&self.shared));
        let mut state = Running {
            w: self,
            round: Round {
                buf: Vec::new(),
                waiters: Vec::new(),
                dirty: false,
                unsynced_records: 0,
                last_sync: Instant::now(),
            },
        };
        let close_ack = state.serve();
        let result = state.finish();
        // Release the file and the lock before acknowledging `close`, so the
        // caller can reopen the directory as soon as `close` resolves.
        drop(state);
        drop(guard);
        if let Some(ack) = close_ack {
            let _ = ack.send(result);
        }
    }
}

struct Running {
    w: Writer,
    round: Round,
}

impl Running {
    /// Serves commands; returns the `close` acknowledgement, if one came.
    fn serve(&mut self) -> Option<oneshot::Sender<Result<(), Error>>> {
        loop {
            let first = match self.sync_deadline() {
                Some(timeout) => match self.w.rx.recv_timeout(timeout) {
                    Ok(cmd) => cmd,
                    Err(RecvTimeoutError::Timeout) => {
                        self.sync_if_dirty();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return None,
                },
                None => match self.w.rx.recv() {
                    Ok(cmd) => cmd,
                    Err(_) => return None,
                },
            };
            if let Some(gate) = &self.w.gate {
                let _ = gate.recv();
            }
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append { payload, reservation, ack } => self.push(&payload, reservation, ack),
                    Command::Rotate { ack } => {
                        let _ = ack.send(self.rotate());
                    }
                    // Commands queued behind `close` are dropped with the
                    // receiver; their appenders see `Error::Closed`.
                    Command::Close { ack } => return Some(ack),
                }
                if self.round.buf.len() < MAX_BATCH_BYTES {
                    next = self.w.rx.try_recv().ok();
                }
            }
            self.commit(self.w.policy == FsyncPolicy::Always);
            if let FsyncPolicy::Interval(every) = self.w.policy
                && self.round.last_sync.elapsed() >= every
            {
                self.sync_if_dirty();
            }
        }
    }

    /// How long to wait for a command before the interval fsync is due.
    fn sync_deadline(&self) -> Option<Duration> {
        match self.w.policy {
            FsyncPolicy::Interval(every) if self.round.dirty => {
                Some(every.saturating_sub(self.round.last_sync.elapsed()))
            }
            _ => None,
        }
    }

    fn push(
        &mut self,
        payload: &[u8],
        reservation: Reservation,
        ack: oneshot::Sender<Result<SegmentId, Error>>,
    ) {
        if let Some(err) = self.w.shared.poisoned() {
            drop(reservation);
            let _ = ack.send(Err(err));
            return;
        }
        encode_record(&mut self.round.buf, payload);
        self.round.waiters.push((ack, reservation));
    }

    /// Writes the buffered records, fsyncs if `sync`, then acknowledges them.
    /// Never reports success for a record whose write or fsync failed.
    fn commit(&mut self, sync: bool) {
        let result = self.write_and_sync(sync);
        let segment = self.w.segment;
        for (ack, reservation) in self.round.waiters.drain(..) {
            drop(reservation);
            let _ = ack.send(match &result {
                Ok(()) => Ok(segment),
                Err(Some(Error::Unwritable { op, path, source })) => {
                    Err(Error::Unwritable { op, path: path.clone(), source: Arc::clone(source) })
                }
                Err(_) => Err(self.w.shared.stopped()),
            });
        }
        if self.round.buf.capacity() > 2 * MAX_BATCH_BYTES {
            self.round.buf = Vec::new();
        }
    }

    /// `Err(Some(e))`: the round's write failed and was undone (retryable);
    /// `Err(None)`: the WAL is poisoned.
    fn write_and_sync(&mut self, sync: bool) -> Result<(), Option<Error>> {
        if self.w.shared.poison.get().is_some() {
            self.round.buf.clear();
            return Err(None);
        }
        let mut mirror_from = None;
        if !self.round.buf.is_empty() {
            let written = self.w.file.write_all(&self.round.buf);
            let len = self.round.buf.len() as u64;
            let records = self.round.waiters.len() as u64;
            if self.w.mirror.is_some() {
                crate::mirror::image(&mut self.w.image, &self.round.buf);
                mirror_from = Some(self.w.len);
            }
            self.round.buf.clear();
            if let Err(e) = written {
                return Err(self.undo_write(e));
            }
            self.w.len += len;
            let m = &self.w.shared.metrics;
            m.appended_bytes.inc_by(len);
            m.records.inc_by(records);
            m.disk_bytes.inc_by(gauge_bytes(len));
            self.round.dirty = true;
            self.round.unsynced_records += records;
        }
        if sync && self.round.dirty {
            self.sync().map_err(|()| None)?;
        }
        if let (Some(offset), Some(mirror)) = (mirror_from, &self.w.mirror) {
            // After the local write, so a failed copy leaves records that
            // are only unacknowledged (a retry may store them twice; the
            // query path dedupes span ids), never acknowledged ones that
            // are only remote.
            let copied = mirror.put(self.w.segment, offset, &self.w.image);
            if self.w.image.capacity() > 2 * MAX_BATCH_BYTES {
                self.w.image = Vec::new();
            }
            if let Err(why) = copied {
                self.w.shared.metrics.write_failures.inc();
                return Err(Some(Error::Unwritable {
                    op: "copy the group commit to the WAL mirror",
                    path: self.w.path.clone(),
                    source: Arc::new(io::Error::other(why)),
                }));
            }
        }
        Ok(())
    }

    /// A write failed (ENOSPC, EIO on write): cut the segment back to its
    /// last good length so no partial record stays in it, and report the
    /// round as not written. Records written before are untouched (their
    /// bytes were accepted by the kernel; a failed *fsync* poisons, never
    /// this). If the cut itself fails, the segment's tail is unknown:
    /// poison.
    fn undo_write(&mut self, e: io::Error) -> Option<Error> {
        let good = self.w.len;
        let restored = self
            .w
            .file
            .set_len(good)
            .and_then(|()| self.w.file.seek(std::io::SeekFrom::Start(good)).map(drop));
        match restored {
            Ok(()) => {
                tracing::warn!(path = %self.w.path.display(), error = %e, "WAL write failed; undone, appends refused until it succeeds");
                self.w.shared.metrics.write_failures.inc();
                Some(Error::Unwritable {
                    op: "write segment",
                    path: self.w.path.clone(),
                    source: Arc::new(e),
                })
            }
            Err(cut) => {
                tracing::error!(path = %self.w.path.display(), error = %cut, "cannot cut a failed WAL write back");
                self.w.shared.poison("write segment", &self.w.path, e);
                None
            }
        }
    }

    fn sync(&mut self) -> Result<(), ()> {
        let started = Instant::now();
        // fdatasync: the file length is covered, other metadata is not needed.
        if let Err(e) = self.w.file.sync_data() {
            // Never retry: after a failed fsync the kernel may have dropped
            // the dirty pages, and a second fsync would report success.
            self.w.shared.poison("fsync segment", &self.w.path, e);
            return Err(());
        }
        let m = &self.w.shared.metrics;
        m.fsyncs.inc();
        m.fsync_seconds.observe(started.elapsed().as_secs_f64());
        m.group_commit_records.observe(self.round.unsynced_records as f64);
        self.round.dirty = false;
        self.round.unsynced_records = 0;
        self.round.last_sync = Instant::now();
        Ok(())
    }

    fn sync_if_dirty(&mut self) {
        if self.round.dirty && self.w.shared.poison.get().is_none() {
            let _ = self.sync();
        }
    }

    /// Seals the active segment (everything before is written and synced,
    /// whatever the policy) and makes a new one active.
    fn rotate(&mut self) -> Result<SegmentId, Error> {
        self.commit(true);
        if let Some(err) = self.w.shared.poisoned() {
            return Err(err);
        }
        if self.round.dirty {
            // The commit's write failed and was undone: rotate later.
            return Err(Error::Unwritable {
                op: "rotate segment",
                path: self.w.path.clone(),
                source: Arc::new(io::Error::other("the last write failed")),
            });
        }
        let sealed = self.w.segment;
        let next = sealed.next();
        // The old segment was synced by the commit above, so it is complete on
        // disk before the new one takes writes.
        match create_segment(&self.w.dir, next) {
            Ok((file, path)) => {
                self.w.file = file;
                self.w.path = path;
                self.w.len = HEADER_LEN as u64;
                self.w.segment = next;
                self.w.shared.active.store(next.0, Ordering::Release);
                let m = &self.w.shared.metrics;
                m.segments.inc();
                m.disk_bytes.inc_by(HEADER_LEN as i64);
                Ok(sealed)
            }
            // No new segment (no descriptor free, disk full): the old
            // one stays active and takes writes; a later rotation tries
            // again. A half-made file is removed so the retry can create it.
            Err(Error::Io { op, path, source }) => {
                let _ = std::fs::remove_file(&path);
                tracing::warn!(path = %path.display(), error = %source, "cannot create a WAL segment; the current one stays active");
                self.w.shared.metrics.write_failures.inc();
                Err(Error::Unwritable { op, path, source: Arc::new(source) })
            }
            Err(other) => Err(other),
        }
    }

    /// Writes and syncs whatever is left; the result of `close`.
    fn finish(&mut self) -> Result<(), Error> {
        self.commit(true);
        self.w.shared.closed.store(true, Ordering::Release);
        match self.w.shared.poisoned() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// Marks the WAL failed if the writer thread panics, so appends report an
/// error instead of `Closed` and nothing runs on in an unknown state.
struct PanicGuard(Arc<Shared>);

impl Drop for PanicGuard {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.poison(
                "run writer thread",
                std::path::Path::new("<writer>"),
                io::Error::other("WAL writer thread panicked"),
            );
        }
    }
}
