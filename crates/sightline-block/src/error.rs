use std::cell::RefCell;
use std::io;
use std::path::{Path, PathBuf};

use arrow_schema::ArrowError;
use parquet::errors::ParquetError;

/// Why a block could not be written or read. Every variant names the file
/// involved, so a store can log it and quarantine the block.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The Parquet library failed to encode or decode the data file.
    #[error("{}: parquet: {source}", path.display())]
    Parquet {
        /// The data file.
        path: PathBuf,
        /// The underlying error.
        source: ParquetError,
    },
    /// Building or decoding Arrow arrays failed.
    #[error("{}: arrow: {source}", path.display())]
    Arrow {
        /// The data file.
        path: PathBuf,
        /// The underlying error.
        source: ArrowError,
    },
    /// The block was written in a format version this build does not read.
    #[error("{}: unknown block format {found:?} (this build reads {})", path.display(), crate::FORMAT_VERSION)]
    UnknownFormat {
        /// The file carrying the version.
        path: PathBuf,
        /// The version found.
        found: String,
    },
    /// Bytes of the data file do not match the checksum `meta.json`
    /// recorded for them: the file changed after it was written. Nothing
    /// read from that range was decoded.
    #[error(
        "{}: checksum mismatch in bytes {start}..{end}: the block is damaged (sightline verify lists the damage, sightline repair sets the block aside)",
        path.display()
    )]
    Checksum {
        /// The data file.
        path: PathBuf,
        /// First byte of the damaged chunk.
        start: u64,
        /// One past its last byte.
        end: u64,
    },
    /// The block's files decode but contradict each other or the schema.
    #[error("{}: corrupt block: {detail}", path.display())]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The block id cannot be used as a directory name.
    #[error("invalid block id {id:?}: {why}")]
    InvalidId {
        /// The rejected id.
        id: String,
        /// Why it was rejected.
        why: &'static str,
    },
}

impl Error {
    /// Whether the block's files are damaged (as opposed to a transient IO
    /// failure, a newer format or a caller mistake): a store should
    /// quarantine such a block rather than retry.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. } | Error::Checksum { .. } | Error::Parquet { .. } | Error::Arrow { .. }
        )
    }

    /// The file the error is about.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Parquet { path, .. }
            | Error::Arrow { path, .. }
            | Error::UnknownFormat { path, .. }
            | Error::Checksum { path, .. }
            | Error::Corrupt { path, .. } => Some(path),
            Error::InvalidId { .. } => None,
        }
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Error {
        Error::Io { path: path.to_owned(), source }
    }

    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
        Error::Corrupt { path: path.to_owned(), detail: detail.into() }
    }
}

thread_local! {
    /// The first read of a data file that failed on this thread during the
    /// current [`contain`] call. Parquet hands a `ChunkReader`'s errors back
    /// as text inside its own error, so without this an object store that
    /// timed out would surface as `Error::Parquet` — damage — and the block
    /// would be set aside for good.
    static READ_FAILURE: RefCell<Option<io::Error>> = const { RefCell::new(None) };
}

/// Records that reading a data file failed in IO (called where the bytes
/// are read, below the Parquet decoder), for [`contain`] to report.
pub(crate) fn note_read_failure(source: &io::Error) {
    READ_FAILURE.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(io::Error::new(source.kind(), source.to_string()));
        }
    });
}

/// Runs `f`, turning a panic into [`Error::Corrupt`], and a decode error
/// caused by a failed read into [`Error::Io`].
///
/// The Parquet decoder is not hardened against every malformed file (a
/// damaged page index, for one, trips an arithmetic overflow). Blocks are
/// our own files, so a panic while decoding one means the file is damaged;
/// it must fail that query, not the process. Nothing `f` touches outlives
/// it, so no broken state can be observed after the unwind.
///
/// A read that failed (an unreachable object store, a timeout) is not
/// damage: retrying may succeed, so it must not be reported as corruption
/// (the store would never merge the block again).
pub(crate) fn contain<T>(path: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let outer = READ_FAILURE.with(|slot| slot.borrow_mut().take());
    let result = catch(path, f);
    let failed = READ_FAILURE.with(|slot| std::mem::replace(&mut *slot.borrow_mut(), outer));
    match (result, failed) {
        (Err(e), Some(source)) if e.is_corruption() && !matches!(e, Error::Checksum { .. }) => {
            Err(Error::Io { path: path.to_owned(), source })
        }
        (result, _) => result,
    }
}

fn catch<T>(path: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Error::corrupt(path, format!("decoder panicked: {message}")))
        }
    }
}
