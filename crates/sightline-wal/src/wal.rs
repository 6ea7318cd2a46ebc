//! The `Wal` handle: open and recover, append, rotate, remove, close.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::thread;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::format::{LOCK_FILE, MAX_RECORD_LEN, SegmentId, segment_file_name};
use crate::metrics::{Metrics, gauge_bytes};
use crate::mirror::Mirror;
use crate::policy::FsyncPolicy;
use crate::recovery::{
    Recovered, create_segment, delete_segments, list_segments, log_skip, repair_torn_tail, scan_dir, sync_dir,
};
use crate::scan::RecoveryMode;
use crate::writer::{Command, Shared, Writer, reserved_len, try_reserve};

/// Settings chosen in code by the embedding store.
#[derive(Clone, Debug)]
pub struct Options {
    /// When appends are fsynced.
    pub fsync: FsyncPolicy,
    /// Bound on record bytes (framing included) queued to the writer and not
    /// yet acknowledged. Beyond it `append` fails fast with
    /// [`Error::Full`] so the caller can push back on its sender.
    pub max_pending_bytes: usize,
    /// How much damage recovery tolerates in the last segment.
    pub recovery: RecoveryMode,
    /// Where to report metrics; `None` keeps them unregistered.
    pub metrics: Option<Arc<Metrics>>,
    /// Where each group commit is also copied before it is acknowledged
    /// (see [`Mirror`]); `None`: the local disk only.
    pub mirror: Option<Arc<dyn Mirror>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: FsyncPolicy::Always,
            max_pending_bytes: 64 << 20,
            recovery: RecoveryMode::default(),
            metrics: None,
            mirror: None,
        }
    }
}

/// A write-ahead log in one directory. `Send + Sync`; share it behind an
/// `Arc`. Dropping it without [`Wal::close`] still writes and syncs what
/// was queued, in the background.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    tx: Sender<Command>,
    shared: Arc<Shared>,
    mirror: Option<Arc<dyn Mirror>>,
}

impl Wal {
    /// Opens (creating) `dir`, recovers its segments, truncates a torn tail
    /// of the last one, and starts appending to a NEW segment whose id is one
    /// above the largest on disk.
    ///
    /// Blocking: reads every segment into memory. It does not need a tokio
    /// runtime (the writer is a plain thread), but call it from
    /// `spawn_blocking` or at startup rather than on an async worker.
    pub fn open(dir: &Path, options: Options) -> Result<(Wal, Recovered), Error> {
        Wal::open_with_gate(dir, options, None)
    }

    pub(crate) fn open_with_gate(
        dir: &Path,
        options: Options,
        gate: Option<Receiver<()>>,
    ) -> Result<(Wal, Recovered), Error> {
        create_dir(dir)?;
        let lock = lock_dir(dir)?;
        let scan = scan_dir(dir, options.recovery)?;
        let metrics = options.metrics.unwrap_or_default();
        for segment in &scan.recovered.segments {
            let path = dir.join(segment_file_name(segment.id));
            for skip in &segment.skipped {
                log_skip(&path, skip);
                metrics.skipped.inc();
                metrics.skipped_bytes.inc_by(skip.bytes);
            }
        }
        if let (Some(torn), Some(path)) = (&scan.recovered.torn_tail, &scan.last_path) {
            tracing::warn!(
                segment = %path.display(),
                offset = torn.offset,
                discarded_bytes = torn.discarded_bytes,
                reason = %torn.reason,
                "WAL recovery dropped a torn tail"
            );
            repair_torn_tail(path, torn)?;
        }
        let recovered = scan.recovered;
        let active = recovered.segments.last().map_or(SegmentId(1), |s| s.id.next());
        let (file, path) = create_segment(dir, active)?;

        metrics.segments.set(gauge_bytes(recovered.segments.len() as u64 + 1));
        metrics.disk_bytes.set(gauge_bytes(scan.disk_bytes + crate::format::HEADER_LEN as u64));
        let shared = Arc::new(Shared {
            closed: AtomicBool::new(false),
            poison: OnceLock::new(),
            pending: Arc::new(AtomicUsize::new(0)),
            max_pending: options.max_pending_bytes,
            active: AtomicU64::new(active.0),
            metrics,
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            shared: Arc::clone(&shared),
            rx,
            policy: options.fsync,
            dir: dir.to_owned(),
            file,
            path,
            len: crate::format::HEADER_LEN as u64,
            segment: active,
            _lock: lock,
            gate,
            mirror: options.mirror.clone(),
            image: Vec::new(),
        };
        thread::Builder::new()
            .name("sightline-wal".into())
            .spawn(move || writer.run())
            .map_err(|e| Error::io("spawn writer thread", dir, e))?;
        let wal = Wal { dir: dir.to_owned(), tx, shared, mirror: options.mirror };
        Ok((wal, recovered))
    }

    /// Appends one record and resolves when it is durable per the fsync
    /// policy, with the segment it went into.
    ///
    /// Fails fast with [`Error::Full`] when the writer queue is over its
    /// bound. If the future is dropped after the record was queued, the record
    /// may still be written: cancellation does not unsend it.
    pub async fn append(&self, payload: Bytes) -> Result<SegmentId, Error> {
        if payload.is_empty() {
            return Err(Error::EmptyPayload);
        }
        if payload.len() > MAX_RECORD_LEN {
            return Err(Error::TooLarge { len: payload.len(), max: MAX_RECORD_LEN });
        }
        self.check_open()?;
        let limit = self.shared.max_pending;
        let reservation = try_reserve(&self.shared.pending, reserved_len(&payload), limit)
            .map_err(|pending| Error::Full { pending, limit })?;
        let (ack, done) = oneshot::channel();
        let cmd = Command::Append { payload, reservation, ack };
        if self.tx.send(cmd).is_err() {
            return Err(self.shared.stopped());
        }
        done.await.unwrap_or_else(|_| Err(self.shared.stopped()))
    }

    /// Seals the current segment once everything appended before this call
    /// is written and synced (whatever the fsync policy), and starts a new
    /// one. Returns the sealed segment's id.
    pub async fn rotate(&self) -> Result<SegmentId, Error> {
        self.check_open()?;
        let (ack, done) = oneshot::channel();
        if self.tx.send(Command::Rotate { ack }).is_err() {
            return Err(self.shared.stopped());
        }
        done.await.unwrap_or_else(|_| Err(self.shared.stopped()))
    }

    /// Deletes every sealed segment with id `<= through`, never the active
    /// one, then fsyncs the directory. Blocking file-system calls.
    pub fn remove_through(&self, through: SegmentId) -> Result<(), Error> {
        let active = self.active_segment();
        let doomed: Vec<PathBuf> = list_segments(&self.dir)?
            .into_iter()
            .filter(|(id, _)| *id <= through && *id < active)
            .map(|(_, path)| path)
            .collect();
        let freed = delete_segments(&self.dir, &doomed)?;
        let m = &self.shared.metrics;
        m.segments.dec_by(gauge_bytes(doomed.len() as u64));
        m.disk_bytes.dec_by(gauge_bytes(freed));
        if let Some(mirror) = &self.mirror {
            mirror.remove_through(through.min(SegmentId(active.0.saturating_sub(1))));
        }
        Ok(())
    }

    /// Writes and syncs everything queued before this call, stops the writer
    /// and releases the directory. Later appends fail with [`Error::Closed`].
    /// Idempotent; reports the failure if the WAL was poisoned.
    pub async fn close(&self) -> Result<(), Error> {
        self.shared.closed.store(true, Ordering::Release);
        let (ack, done) = oneshot::channel();
        let stopped = || match self.shared.poisoned() {
            Some(err) => Err(err),
            None => Ok(()),
        };
        if self.tx.send(Command::Close { ack }).is_err() {
            return stopped();
        }
        // A dropped acknowledgement means an earlier `close` stopped the
        // writer; it did so only after its final sync.
        done.await.unwrap_or_else(|_| stopped())
    }

    /// The segment appends currently go to.
    pub fn active_segment(&self) -> SegmentId {
        SegmentId(self.shared.active.load(Ordering::Acquire))
    }

    /// Record bytes queued to the writer and not yet acknowledged.
    pub fn pending_bytes(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// The metrics this WAL reports to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn check_open(&self) -> Result<(), Error> {
        if let Some(err) = self.shared.poisoned() {
            return Err(err);
        }
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }
}

/// Creates the WAL directory if missing, durably.
fn create_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        // IMPORTANT: fsync the parent so the new directory's entry persists.
        sync_dir(parent)?;
    }
    Ok(())
}

/// Takes the directory's exclusive lock, held for the writer's lifetime.
fn lock_dir(dir: &Path) -> Result<File, Error> {
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}
