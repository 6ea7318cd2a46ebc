//! Where a block's data file is read from: the local file [`crate::write()`]
//! made (the default), or any [`BlockSource`] that serves byte ranges, such
//! as an object in a bucket read through a local cache.
//!
//! Readers never need the whole file: opening reads the footer and page
//! index, a lookup reads a bloom filter and one page per column. So a
//! remote source only has to serve ranges, and the Parquet reader asks
//! for exactly the pages it decodes.

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use parquet::file::reader::{ChunkReader, Length};

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

/// How much a sequential read from a [`BlockSource`] asks for at a time.
/// Parquet reads sequentially only the 8-byte footer marker here: every
/// page is fetched by its exact range through the page index.
const SEQUENTIAL_READ: usize = 64 << 10;

/// The data file as Parquet's reader sees it.
#[derive(Debug)]
pub(crate) enum Data {
    File(File),
    Source(Arc<dyn BlockSource>),
}

impl Length for Data {
    fn len(&self) -> u64 {
        match self {
            Data::File(f) => Length::len(f),
            Data::Source(s) => s.len(),
        }
    }
}

impl ChunkReader for Data {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        match self {
            Data::File(f) => Ok(Box::new(f.get_read(start)?)),
            Data::Source(s) => Ok(Box::new(SourceRead { source: Arc::clone(s), pos: start })),
        }
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        match self {
            Data::File(f) => f.get_bytes(start, length),
            Data::Source(s) => {
                let bytes = s
                    .read_at(start, length)
                    .map_err(|e| parquet::errors::ParquetError::External(e.into()))?;
                if bytes.len() != length {
                    return Err(parquet::errors::ParquetError::EOF(format!(
                        "wanted {length} bytes at {start}, got {}",
                        bytes.len()
                    )));
                }
                Ok(bytes)
            }
        }
    }
}

/// A sequential reader over a [`BlockSource`], from a position to the end.
struct SourceRead {
    source: Arc<dyn BlockSource>,
    pos: u64,
}

impl Read for SourceRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.source.len().saturating_sub(self.pos);
        let want = buf.len().min(SEQUENTIAL_READ).min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let bytes = self.source.read_at(self.pos, want)?;
        let n = bytes.len().min(want);
        buf[..n].copy_from_slice(&bytes[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}
