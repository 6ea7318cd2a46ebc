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
        matches!(self, Error::Corrupt { .. } | Error::Parquet { .. } | Error::Arrow { .. })
    }

    pub(crate) fn io(path: &Path, source: io::Error) -> Error {
        Error::Io { path: path.to_owned(), source }
    }

    pub(crate) fn corrupt(path: &Path, detail: impl Into<String>) -> Error {
        Error::Corrupt { path: path.to_owned(), detail: detail.into() }
    }
}
