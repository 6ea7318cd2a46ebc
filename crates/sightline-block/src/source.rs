//! Where a block's data file is read from: the local file [`crate::write()`]
//! made (the default), or any [`BlockSource`] that serves byte ranges, such
//! as an object in a bucket read through a local cache.
//!
//! Readers never need the whole file: opening reads the footer and page
//! index, a lookup reads a bloom filter and one page per column. So a
//! remote source only has to serve ranges, and the Parquet reader asks
//! for exactly the pages it decodes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

/// Byte ranges of a block's data file, from wherever it is kept.
pub trait BlockSource: Send + Sync + std::fmt::Debug {
    /// The data file's size in bytes.
    fn len(&self) -> u64;

    /// Whether the file is empty (never, for a valid block).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `len` bytes from `offset`. Blocking (file or network IO); errors are
    /// reported to the query that asked.
    fn read_at(&self, offset: u64, len: usize) -> io::Result<Bytes>;
}

/// The data file's bytes: the local file, or a [`BlockSource`]. Reads go
/// through [`crate::integrity::VerifiedFile`], which checks them.
#[derive(Debug)]
pub(crate) enum Data {
    File(File),
    Source(Arc<dyn BlockSource>),
}

impl Data {
    /// The local file at `path`, or `source` when there is one.
    pub(crate) fn open(path: &Path, source: Option<&Arc<dyn BlockSource>>) -> io::Result<Data> {
        Ok(match source {
            None => Data::File(File::open(path)?),
            Some(s) => Data::Source(Arc::clone(s)),
        })
    }

    /// The file's size in bytes.
    pub(crate) fn len(&self) -> io::Result<u64> {
        match self {
            Data::File(f) => Ok(f.metadata()?.len()),
            Data::Source(s) => Ok(s.len()),
        }
    }

    /// Fills `buf` from `offset`.
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Data::File(f) => f.read_exact_at(buf, offset),
            Data::Source(s) => {
                let bytes = s.read_at(offset, buf.len())?;
                if bytes.len() != buf.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("wanted {} bytes at {offset}, got {}", buf.len(), bytes.len()),
                    ));
                }
                buf.copy_from_slice(&bytes);
                Ok(())
            }
        }
    }
}
