use std::path::{Path, PathBuf};

/// Why the log store could not open, write or read.
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
    /// A stored file has content the store cannot accept.
    #[error("{}: {detail}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Parquet could not write or read a block.
    #[error("{}: {source}", path.display())]
    Parquet {
        /// The block file.
        path: PathBuf,
        /// Parquet's error.
        source: parquet::errors::ParquetError,
    },
    /// Arrow could not build or read a batch of rows.
    #[error("{}: {source}", path.display())]
    Arrow {
        /// The block file.
        path: PathBuf,
        /// Arrow's error.
        source: arrow_schema::ArrowError,
    },
    /// The write-ahead log failed.
    #[error("log write-ahead log: {0}")]
    Wal(#[from] sightline_wal::Error),
    /// The block storage or manifest failed.
    #[error("log blocks: {0}")]
    Storage(#[from] sightline_store::Error),
    /// A checksummed read failed (damage, IO).
    #[error("log block: {0}")]
    Block(#[from] sightline_block::Error),
    /// A blocking task panicked or was cancelled.
    #[error("a background task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.to_owned(), source }
    }

    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
        Error::Corrupt { path: path.to_owned(), detail: detail.into() }
    }
}
