//! The local block cache: byte ranges of blocks' data files on local disk,
//! bounded by `--cache-size`, least recently used blocks evicted first.
//!
//! Each cached block is one sparse file under `<data-dir>/cache/` of the
//! block's full size; which 1 MiB chunks of it hold data is kept in memory.
//! A read whose chunks are all present is a local `pread`; a miss fetches
//! the chunk-aligned range around it with one ranged GET and keeps it. So a
//! lookup in a warm block costs no request, and in a cold one a request
//! per MiB it touches, not per Parquet page. Blocks this node wrote are
//! adopted whole after their upload: its own recent blocks never cost a
//! GET. Footers, page indexes and trace-id bloom filters stay in memory
//! with the open `Block`, as for local blocks.
//!
//! The cache starts empty at every start (it is rebuilt on demand): an
//! interrupted write can then never serve a torn chunk.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::Error;
use crate::metrics::Metrics;

/// Unit of caching and of fetching.
pub(crate) const CHUNK: u64 = 1 << 20;

/// See the module docs.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    capacity: u64,
    state: Mutex<State>,
    metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
struct State {
    blocks: HashMap<String, Entry>,
    /// Bytes of present chunks over all blocks.
    used: u64,
    /// Advances on every use; the least recent `last_use` is evicted first.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    len: u64,
    present: Vec<bool>,
    bytes: u64,
    last_use: u64,
}

impl Entry {
    fn chunks(&self, offset: u64, len: u64) -> std::ops::Range<usize> {
        let first = (offset / CHUNK) as usize;
        let end = (offset + len).min(self.len).div_ceil(CHUNK) as usize;
        first..end.max(first)
    }
}

impl Cache {
    /// An empty cache in `dir` (wiped: see the module docs) holding at most
    /// `capacity` bytes.
    pub fn open(dir: &Path, capacity: u64, metrics: Arc<Metrics>) -> Result<Cache, Error> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dir, e)),
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        Ok(Cache { dir: dir.to_owned(), capacity, state: Mutex::new(State::default()), metrics })
    }

    fn file(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.parquet"))
    }

    /// Whether every chunk of block `id` is here.
    #[cfg(test)]
    pub(crate) fn has_whole(&self, id: &str) -> bool {
        self.state.lock().blocks.get(id).is_some_and(|e| e.bytes == e.len)
    }

    /// Bytes `offset..offset + len` of block `id`, if all are here.
    pub(crate) fn read(&self, id: &str, offset: u64, len: usize) -> Option<Bytes> {
        {
            let mut state = self.state.lock();
            state.clock += 1;
            let clock = state.clock;
            let entry = state.blocks.get_mut(id)?;
            let range = entry.chunks(offset, len as u64);
            if !entry.present.get(range)?.iter().all(|p| *p) {
                return None;
            }
            entry.last_use = clock;
        }
        let mut buf = vec![0u8; len];
        // An eviction between the check and the read removes the file: a
        // miss, not an error.
        let file = File::open(self.file(id)).ok()?;
        file.read_exact_at(&mut buf, offset).ok()?;
        self.metrics.cache_hits.inc();
        Some(Bytes::from(buf))
    }

    /// Keeps `bytes`, fetched from `offset` (chunk-aligned) of block `id`
    /// whose data file is `len` bytes. Best effort: a failure to write only
    /// means the next read fetches again.
    pub(crate) fn store(&self, id: &str, len: u64, offset: u64, bytes: &[u8]) {
        self.metrics.cache_misses.inc();
        if !offset.is_multiple_of(CHUNK) || len > self.capacity {
            return;
        }
        let path = self.file(id);
        let mut state = self.state.lock();
        state.clock += 1;
        let clock = state.clock;
        let fresh = !state.blocks.contains_key(id);
        let written = (|| -> std::io::Result<()> {
            let file = OpenOptions::new().create(true).write(true).truncate(false).open(&path)?;
            if fresh {
                file.set_len(len)?;
            }
            file.write_all_at(bytes, offset)
        })();
        if let Err(e) = written {
            tracing::debug!(block = id, error = %e, "could not cache a block range");
            return;
        }
        let entry = state.blocks.entry(id.to_owned()).or_insert_with(|| Entry {
            len,
            present: vec![false; len.div_ceil(CHUNK) as usize],
            bytes: 0,
            last_use: clock,
        });
        entry.last_use = clock;
        // Only whole chunks count: the last one of the file may be short.
        let mut added = 0;
        let end = offset + bytes.len() as u64;
        for chunk in entry.chunks(offset, bytes.len() as u64) {
            let chunk_end = ((chunk as u64 + 1) * CHUNK).min(len);
            if chunk_end <= end
                && let Some(p) = entry.present.get_mut(chunk)
                && !*p
            {
                *p = true;
                added += chunk_end - chunk as u64 * CHUNK;
            }
        }
        entry.bytes += added;
        state.used += added;
        self.evict_beyond_capacity(&mut state, id);
    }

    /// Takes a complete local data file of block `id` (just uploaded) into
    /// the cache, by rename.
    pub(crate) fn adopt(&self, id: &str, file: &Path) -> Result<(), Error> {
        let len = std::fs::metadata(file).map_err(|e| Error::io(file, e))?.len();
        if len > self.capacity {
            return Ok(());
        }
        let path = self.file(id);
        let mut state = self.state.lock();
        std::fs::rename(file, &path).map_err(|e| Error::io(&path, e))?;
        state.clock += 1;
        let clock = state.clock;
        let old = state.blocks.insert(
            id.to_owned(),
            Entry { len, present: vec![true; len.div_ceil(CHUNK) as usize], bytes: len, last_use: clock },
        );
        state.used = state.used - old.map_or(0, |e| e.bytes) + len;
        self.evict_beyond_capacity(&mut state, id);
        Ok(())
    }

    /// Forgets block `id` (deleted, or no longer listed).
    pub(crate) fn evict(&self, id: &str) {
        let mut state = self.state.lock();
        if let Some(entry) = state.blocks.remove(id) {
            state.used -= entry.bytes;
            let _ = std::fs::remove_file(self.file(id));
        }
        self.metrics.cache_bytes.set(state.used as i64);
    }

    /// Bytes cached now, and the bound.
    pub fn usage(&self) -> (u64, u64) {
        (self.state.lock().used, self.capacity)
    }

    /// Evicts least recently used blocks (never `keep`) until the cache
    /// fits its capacity.
    fn evict_beyond_capacity(&self, state: &mut State, keep: &str) {
        while state.used > self.capacity {
            let Some(victim) = state
                .blocks
                .iter()
                .filter(|(id, _)| id.as_str() != keep)
                .min_by_key(|(_, e)| e.last_use)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            if let Some(entry) = state.blocks.remove(&victim) {
                state.used -= entry.bytes;
                let _ = std::fs::remove_file(self.file(&victim));
            }
        }
        self.metrics.cache_bytes.set(state.used as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: u64) -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache"), capacity, Arc::default()).unwrap();
        (dir, cache)
    }

    #[test]
    fn a_range_is_served_once_all_its_chunks_are_here() {
        let (_dir, cache) = cache(10 * CHUNK);
        let len = 2 * CHUNK + 10;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert_eq!(cache.read("b", 5, 10), None);
        cache.store("b", len, 0, &data[..CHUNK as usize]);
        assert_eq!(cache.read("b", 5, 10).unwrap(), &data[5..15]);
        assert_eq!(cache.read("b", CHUNK - 5, 10), None, "spans a missing chunk");
        // The short last chunk counts once the file's end is fetched.
        cache.store("b", len, CHUNK, &data[CHUNK as usize..]);
        assert_eq!(cache.read("b", CHUNK - 5, 10).unwrap(), &data[CHUNK as usize - 5..CHUNK as usize + 5]);
        assert_eq!(cache.read("b", len - 10, 10).unwrap(), &data[len as usize - 10..]);
        assert!(cache.has_whole("b"));
        assert_eq!(cache.usage().0, len);
    }

    #[test]
    fn the_least_recently_used_block_goes_first() {
        let (_dir, cache) = cache(2 * CHUNK);
        let chunk = vec![7u8; CHUNK as usize];
        cache.store("a", CHUNK, 0, &chunk);
        cache.store("b", CHUNK, 0, &chunk);
        assert!(cache.read("a", 0, 1).is_some(), "a is now more recent than b");
        cache.store("c", CHUNK, 0, &chunk);
        assert!(cache.read("b", 0, 1).is_none(), "b was evicted");
        assert!(cache.read("a", 0, 1).is_some() && cache.read("c", 0, 1).is_some());
        assert_eq!(cache.usage().0, 2 * CHUNK);
        cache.evict("a");
        assert_eq!(cache.usage().0, CHUNK);
    }

    #[test]
    fn adopted_files_are_whole_and_count() {
        let (dir, cache) = cache(10 * CHUNK);
        let file = dir.path().join("data.parquet");
        std::fs::write(&file, b"0123456789").unwrap();
        cache.adopt("x", &file).unwrap();
        assert!(!file.exists(), "moved, not copied");
        assert_eq!(cache.read("x", 2, 3).unwrap(), &b"234"[..]);
        assert_eq!(cache.usage().0, 10);
    }
}
