//! The crate's error type. Corruption carries file, segment and offset, and
//! its message tells the operator what to do; IO errors name the operation
//! and the path.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::format::SegmentId;
use crate::scan::Damage;

/// Everything the WAL can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A segment is damaged in a way recovery must not drop silently.
    #[error(transparent)]
    Corruption(Box<Corruption>),
    /// A file in the WAL directory ends in `.wal` but is not a segment name.
    #[error(
        "{}: name ends in .wal but is not a WAL segment name (20 digits + .wal); \
         move it out of the WAL directory or rename it",
        path.display()
    )]
    InvalidFileName {
        /// The offending file.
        path: PathBuf,
    },
    /// A file system operation failed.
    #[error("WAL: {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "read segment".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Another process (or another `Wal` in this one) holds the directory.
    #[error(
        "WAL directory {} is locked by another Sightline process or WAL instance",
        path.display()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// An earlier write or fsync failed. After a failed fsync the state of the
    /// page cache is unknown, so the WAL accepts nothing more; restarting
    /// recovers from what is actually on disk.
    #[error(
        "WAL stopped accepting writes after {op} failed on {}: {source}; \
         restart to recover from the files on disk",
        path.display()
    )]
    Poisoned {
        /// The operation that failed first.
        op: &'static str,
        /// The file it failed on.
        path: PathBuf,
        /// The first failure, shared by every error reported after it.
        #[source]
        source: Arc<io::Error>,
    },
    /// A write failed (e.g. the disk is full, or no file descriptor was
    /// free for a new segment) and was undone: the segment is back at its
    /// last good length and the appends of that round were not
    /// acknowledged. Retryable: once space or descriptors are free the
    /// next append succeeds, without a restart.
    #[error("WAL could not {op} {}: {source}; nothing of it was acknowledged, retry later", path.display())]
    Unwritable {
        /// What failed, e.g. "write segment".
        op: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The failure.
        #[source]
        source: Arc<io::Error>,
    },
    /// More bytes are queued to the writer than `Options::max_pending_bytes`.
    /// Retryable: the caller should push back on its sender.
    #[error("WAL writer queue is full ({pending} bytes pending, limit {limit}); retry later")]
    Full {
        /// Bytes queued when the append was refused.
        pending: usize,
        /// The configured bound.
        limit: usize,
    },
    /// The WAL was closed.
    #[error("WAL is closed")]
    Closed,
    /// Empty payloads are refused so a zeroed region never looks like a record.
    #[error("empty WAL records are not allowed")]
    EmptyPayload,
    /// The payload is larger than the format allows.
    #[error("WAL record of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// `MAX_RECORD_LEN`.
        max: usize,
    },
}

impl Error {
    /// Whether the files on disk are damaged and need an operator's decision.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption(_) | Error::InvalidFileName { .. })
    }

    /// Whether the same append may succeed later (the queue was full, or
    /// a write failed and was undone).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Full { .. } | Error::Unwritable { .. })
    }

    /// The corruption details, if this is [`Error::Corruption`].
    pub fn corruption(&self) -> Option<&Corruption> {
        match self {
            Error::Corruption(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }
}

/// Where a segment is damaged and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The segment file; `None` when bytes were scanned without a file.
    pub path: Option<PathBuf>,
    /// The segment id; `None` when bytes were scanned without a file.
    pub segment: Option<SegmentId>,
    /// Byte offset of the damage within the file.
    pub offset: u64,
    /// What is wrong.
    pub kind: Damage,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.segment) {
            (Some(path), Some(id)) => write!(
                f,
                "WAL segment {id} ({}) is corrupt at byte {}: {}. ",
                path.display(),
                self.offset,
                self.kind
            )?,
            _ => write!(f, "WAL data is corrupt at byte {}: {}. ", self.offset, self.kind)?,
        }
        write!(
            f,
            "Refusing to start rather than silently lose acknowledged data: start with \
             --wal-recovery skip-damaged to skip only the damaged records (the default), or move \
             the file out of the WAL directory (keep a copy) to start without its records"
        )
    }
}

impl std::error::Error for Corruption {}

/// A configuration string that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: expected {expected}")]
pub struct ParseError {
    pub(crate) what: &'static str,
    pub(crate) input: String,
    pub(crate) expected: &'static str,
}
