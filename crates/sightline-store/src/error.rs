use std::path::{Path, PathBuf};

/// Why the store could not open, write or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A store file has content the store cannot accept.
    #[error("{}: {detail}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong and what to do about it.
        detail: String,
    },
    /// The write-ahead log failed.
    #[error("write-ahead log: {0}")]
    Wal(#[from] sightline_wal::Error),
    /// A block could not be written or read.
    #[error("block: {0}")]
    Block(#[from] sightline_block::Error),
    /// The manifest changed since it was read: another writer got there
    /// first. Re-read it and plan again.
    #[error("{location}: the manifest changed underneath (expected version {expected:?}, found {found:?})")]
    ManifestConflict {
        /// Where the blocks are.
        location: String,
        /// The version the change was based on.
        expected: Option<String>,
        /// The version found.
        found: Option<String>,
    },
    /// A merge's inputs are no longer all live: another node merged or
    /// expired some of them first. The merge is dropped, not retried.
    #[error("{location}: blocks {gone:?} were merged or deleted by someone else first")]
    Superseded {
        /// Where the blocks are.
        location: String,
        /// The inputs no longer listed.
        gone: Vec<String>,
    },
    /// The block storage (an object store) failed.
    #[error("{location}: {detail}")]
    Storage {
        /// The store and object involved.
        location: String,
        /// What failed.
        detail: String,
    },
    /// A blocking task (block IO) panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(String),
    /// Another process holds the data directory.
    #[error(
        "{} is in use by another sightline process (lock file held); stop it or choose another --data-dir",
        path.display()
    )]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.to_owned(), source }
    }

    /// Whether a file that should exist does not (a block folder moved
    /// away, say).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            Error::Block(sightline_block::Error::Io { source, .. }) => {
                source.kind() == std::io::ErrorKind::NotFound
            }
            _ => false,
        }
    }

    /// Whether stored data is damaged (as opposed to a transient failure).
    pub fn is_corruption(&self) -> bool {
        match self {
            Error::Corrupt { .. } => true,
            Error::Wal(e) => e.is_corruption(),
            Error::Block(e) => e.is_corruption(),
            _ => false,
        }
    }
}
