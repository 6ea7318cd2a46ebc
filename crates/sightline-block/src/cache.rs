//! The byte-bounded cache of open blocks' heavy parts: Parquet footers
//! with their page index and resource/scope tables, and `trace_id` bloom
//! filters.
//!
//! An open block keeps resident only what it needs to decide whether it
//! must be read at all (its `meta.json`, per row group the `trace_id`
//! range and where its bloom filter is). The rest grew ~2.4 B per stored
//! span with no bound (a 16-input merge's 10M spans: 24 MiB; 100M spans
//! more than the whole default memory limit), so it lives here, shared by
//! every block of a store, within a fixed share of the memory budget, and
//! is read again from the block's source when evicted. Least recently
//! used entries go first.
//!
//! A query holds the `Arc`s it took, so an entry evicted during a query
//! is freed when that query ends: the bound is exceeded by at most what
//! running queries hold.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::bloom_filter::Sbbf;
use sightline_model::{Resource, Scope};

/// A block's Parquet footer (with page index) and its tables.
#[derive(Debug)]
pub(crate) struct Footer {
    pub(crate) reader_meta: ArrowReaderMetadata,
    pub(crate) resources: Vec<Arc<Resource>>,
    pub(crate) scopes: Vec<Arc<Scope>>,
}

/// A block's `trace_id` bloom filters, one per row group.
pub(crate) type Blooms = Arc<[Option<Sbbf>]>;

/// What an entry holds.
#[derive(Debug, Clone)]
pub(crate) enum Cached {
    Footer(Arc<Footer>),
    Blooms(Blooms),
}

/// Which part of a block an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Part {
    Footer,
    Blooms,
}

type Key = (u64, Part);

/// The cache; see the module docs. Shared (`Arc`) by the blocks that
/// [`crate::Block::open_cached`] opened with it.
#[derive(Debug)]
pub struct FooterCache {
    capacity: usize,
    state: Mutex<State>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    tick: u64,
    used: usize,
    entries: HashMap<Key, Slot>,
    /// Last use → key: the first entry is the least recently used.
    order: BTreeMap<u64, Key>,
}

#[derive(Debug)]
struct Slot {
    value: Cached,
    bytes: usize,
    tick: u64,
}

/// Counters of a [`FooterCache`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Bytes the entries held now take.
    pub used_bytes: usize,
    /// Entries held now.
    pub entries: usize,
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that read the part again from the block's source.
    pub misses: u64,
    /// Entries dropped to stay within the capacity.
    pub evictions: u64,
}

impl FooterCache {
    /// A cache holding at most `capacity_bytes` (as estimated by
    /// [`crate::Block::memory`]).
    pub fn new(capacity_bytes: usize) -> FooterCache {
        FooterCache {
            capacity: capacity_bytes,
            state: Mutex::new(State::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    /// A poisoned lock still holds a consistent map: every update
    /// completes before anything that could panic.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bound, in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Current size and counters.
    pub fn stats(&self) -> CacheStats {
        let state = self.lock();
        CacheStats {
            used_bytes: state.used,
            entries: state.entries.len(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// The entry, marked as just used.
    pub(crate) fn get(&self, key: Key) -> Option<Cached> {
        let mut state = self.lock();
        state.tick += 1;
        let tick = state.tick;
        let Some(slot) = state.entries.get_mut(&key) else {
            drop(state);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let old = std::mem::replace(&mut slot.tick, tick);
        let value = slot.value.clone();
        state.order.remove(&old);
        state.order.insert(tick, key);
        drop(state);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(value)
    }

    /// The bytes the entry takes, if held (without marking it used).
    pub(crate) fn bytes_of(&self, key: Key) -> Option<usize> {
        self.lock().entries.get(&key).map(|s| s.bytes)
    }

    /// Keeps `value` (of `bytes`), evicting least recently used entries
    /// to make room. An entry bigger than the whole cache is not kept.
    pub(crate) fn insert(&self, key: Key, value: Cached, bytes: usize) {
        if bytes > self.capacity {
            return;
        }
        let mut state = self.lock();
        state.tick += 1;
        let tick = state.tick;
        if let Some(old) = state.entries.insert(key, Slot { value, bytes, tick }) {
            state.order.remove(&old.tick);
            state.used -= old.bytes;
        }
        state.order.insert(tick, key);
        state.used += bytes;
        let mut evicted = 0;
        while state.used > self.capacity {
            let Some((_, lru)) = state.order.pop_first() else { break };
            if let Some(slot) = state.entries.remove(&lru) {
                state.used -= slot.bytes;
                evicted += 1;
            }
        }
        drop(state);
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    /// Drops every entry of block `id` (the block was dropped).
    pub(crate) fn remove_block(&self, id: u64) {
        let mut state = self.lock();
        for part in [Part::Footer, Part::Blooms] {
            if let Some(slot) = state.entries.remove(&(id, part)) {
                state.order.remove(&slot.tick);
                state.used -= slot.bytes;
            }
        }
    }
}

/// A process-unique id for each opened block: its cache key.
pub(crate) fn next_block_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blooms(n: usize) -> Cached {
        Cached::Blooms(vec![None; n].into())
    }

    #[test]
    fn evicts_least_recently_used_to_its_bound() {
        let cache = FooterCache::new(100);
        cache.insert((1, Part::Blooms), blooms(1), 40);
        cache.insert((2, Part::Blooms), blooms(2), 40);
        // 1 used after 2: 2 is the one to go.
        assert!(cache.get((1, Part::Blooms)).is_some());
        cache.insert((3, Part::Blooms), blooms(3), 40);
        assert!(cache.get((2, Part::Blooms)).is_none());
        assert!(cache.get((1, Part::Blooms)).is_some());
        assert!(cache.get((3, Part::Blooms)).is_some());
        let stats = cache.stats();
        assert_eq!((stats.used_bytes, stats.entries, stats.evictions), (80, 2, 1));
        assert_eq!((stats.hits, stats.misses), (3, 1));
        // Replacing an entry charges the new size only.
        cache.insert((3, Part::Blooms), blooms(3), 10);
        assert_eq!(cache.stats().used_bytes, 50);
        // Too big for the whole cache: not kept, nothing evicted for it.
        cache.insert((4, Part::Footer), blooms(4), 101);
        assert_eq!(cache.stats().entries, 2);
        cache.insert((1, Part::Footer), blooms(1), 30);
        assert_eq!(cache.bytes_of((1, Part::Footer)), Some(30));
        cache.remove_block(1);
        assert_eq!(cache.stats().used_bytes, 10);
        assert_eq!(cache.bytes_of((1, Part::Footer)), None);
    }
}
