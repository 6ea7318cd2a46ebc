use std::path::{Path, PathBuf};

/// Why the object store could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--storage` is not a URL this build can open.
    #[error("invalid --storage {url:?}: {why}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong and how to fix it.
        why: String,
    },
    /// A node id or tenant that cannot be a path component in the bucket.
    #[error("invalid {what} {value:?}: {why}")]
    InvalidName {
        /// `node id` or `tenant`.
        what: &'static str,
        /// The rejected value.
        value: String,
        /// Which characters are allowed.
        why: &'static str,
    },
    /// A request to the object store failed.
    #[error("{location}: {operation} failed: {source}")]
    Request {
        /// The object (or prefix) involved, as a URL.
        location: String,
        /// What was attempted (`GET`, `PUT`, …).
        operation: &'static str,
        /// The object_store error.
        source: object_store::Error,
    },
    /// The object store did not answer a query's read in time, or is known
    /// not to be answering: the query skips what it needed.
    #[error("{location}: object store unavailable: {detail}")]
    Unavailable {
        /// The object, as a URL.
        location: String,
        /// How long was waited, or since when the store has failed.
        detail: String,
    },
    /// The store accepted a write that had to fail: it ignores conditional
    /// writes, and nodes sharing it would overwrite each other's manifest.
    #[error(
        "{location} ignores conditional writes ({detail}); Sightline needs If-None-Match / If-Match \
         on PUT (PutMode::Create / Update) to share a bucket between nodes safely. Use a store that \
         supports them (AWS S3, GCS, Azure, SeaweedFS 3.97 or later, a recent MinIO) or a local --storage"
    )]
    NoConditionalWrites {
        /// The store.
        location: String,
        /// Which check failed.
        detail: String,
    },
    /// An object in the bucket has content Sightline cannot accept.
    #[error("{location}: {detail}")]
    Corrupt {
        /// The object, as a URL.
        location: String,
        /// What is wrong.
        detail: String,
    },
    /// Replaying a dead node's WAL copy into this node's store failed (it
    /// refused the batch); the copy stays for the next round.
    #[error("{location}: replaying this WAL copy failed: {detail}")]
    Replay {
        /// The copy, as a URL.
        location: String,
        /// Why the store refused it.
        detail: String,
    },
    /// A local file or folder (cache, staging, node id) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.to_owned(), source }
    }
}

impl From<Error> for sightline_store::Error {
    fn from(e: Error) -> sightline_store::Error {
        let detail = e.to_string();
        match e {
            Error::Io { path, source } => sightline_store::Error::Io { path, source },
            Error::Corrupt { location, detail } => {
                sightline_store::Error::Corrupt { path: PathBuf::from(location), detail }
            }
            Error::Request { location, .. }
            | Error::Unavailable { location, .. }
            | Error::NoConditionalWrites { location, .. } => {
                sightline_store::Error::Storage { location, detail }
            }
            _ => sightline_store::Error::Storage { location: String::new(), detail },
        }
    }
}
