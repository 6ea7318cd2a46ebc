//! A block's data file in the bucket, read by range through the cache.

use std::sync::Arc;

use bytes::Bytes;
use sightline_block::BlockSource;

use crate::bucket::Bucket;
use crate::cache::{CHUNK, Cache};

/// See the module docs.
#[derive(Debug)]
pub(crate) struct RemoteSource {
    pub(crate) id: String,
    pub(crate) key: String,
    pub(crate) len: u64,
    pub(crate) bucket: Arc<Bucket>,
    pub(crate) cache: Arc<Cache>,
}

impl RemoteSource {
    /// Fetches the chunk-aligned range around `offset..offset + len` (one
    /// ranged GET), keeps it in the cache, and returns it with its start.
    pub(crate) fn fetch(&self, offset: u64, len: u64) -> std::io::Result<(u64, Bytes)> {
        let start = offset / CHUNK * CHUNK;
        let end = (offset + len).div_ceil(CHUNK).saturating_mul(CHUNK).min(self.len);
        let (bytes, size) =
            self.bucket.wait(self.bucket.get_range(&self.key, start..end)).map_err(std::io::Error::other)?;
        if size != self.len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is {size} bytes, its meta.json says {}",
                    self.bucket.location(&self.key),
                    self.len
                ),
            ));
        }
        self.cache.store(&self.id, self.len, start, &bytes);
        Ok((start, bytes))
    }
}

impl BlockSource for RemoteSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<Bytes> {
        if let Some(bytes) = self.cache.read(&self.id, offset, len) {
            return Ok(bytes);
        }
        let (start, bytes) = self.fetch(offset, len as u64)?;
        let from = usize::try_from(offset - start).unwrap_or(usize::MAX);
        if from.saturating_add(len) > bytes.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{}: {len} bytes at {offset} are past its end", self.bucket.location(&self.key)),
            ));
        }
        Ok(bytes.slice(from..from + len))
    }
}
