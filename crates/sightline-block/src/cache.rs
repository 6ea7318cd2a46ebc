//! The byte-bounded cache of open blocks' heavy parts: Parquet footers
//! with their page index and resource/scope tables, and `trace_id` bloom
//! filters. Blocks of other formats (the log store's) keep their parts
//! here too, as [`FooterCache::get_part`]/[`FooterCache::insert_part`]
//! entries under a key of their own ([`FooterCache::new_key`]); the log
//! store keeps two caches, one for what trace lookups need and one for
//! body word filters, so that searches cannot evict the former.
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

use std::any::Any;
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
    /// A part of another block format ([`FooterCache::insert_part`]).
    Other(Arc<dyn Any + Send + Sync>),
}

/// Which part of a block an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Part {
    Footer,
    Blooms,
    /// Another format's part, numbered by that format.
    Other(u8),
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
    pub fn remove_block(&self, id: u64) {
        let mut state = self.lock();
        let parts: Vec<Key> = state.entries.keys().filter(|k| k.0 == id).copied().collect();
        for key in parts {
            if let Some(slot) = state.entries.remove(&key) {
                state.order.remove(&slot.tick);
                state.used -= slot.bytes;
            }
        }
    }

    /// A process-unique key for each opened block (of any format) to
    /// keep its parts under.
    pub fn new_key() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    /// Part `part` of block `key`, marked as just used; `None` when not
    /// held (or held as another type).
    pub fn get_part<T: Any + Send + Sync>(&self, key: u64, part: u8) -> Option<Arc<T>> {
        match self.get((key, Part::Other(part)))? {
            Cached::Other(value) => value.downcast().ok(),
            Cached::Footer(_) | Cached::Blooms(_) => None,
        }
    }

    /// Keeps part `part` of block `key` (of `bytes`), as
    /// [`FooterCache::insert`] does: least recently used entries make
    /// room, one bigger than the whole cache is not kept.
    pub fn insert_part<T: Any + Send + Sync>(&self, key: u64, part: u8, value: Arc<T>, bytes: usize) {
        self.insert((key, Part::Other(part)), Cached::Other(value), bytes);
    }

    /// The bytes part `part` of block `key` takes, if held (without
    /// marking it used).
    pub fn part_bytes(&self, key: u64, part: u8) -> Option<usize> {
        self.bytes_of((key, Part::Other(part)))
    }
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

    #[test]
    fn other_formats_parts_share_the_bound_and_go_with_their_block() {
        let cache = FooterCache::new(100);
        let (a, b) = (FooterCache::new_key(), FooterCache::new_key());
        assert_ne!(a, b);
        cache.insert_part(a, 0, Arc::new(String::from("footer a")), 40);
        cache.insert_part(a, 1, Arc::new(vec![1u8, 2]), 30);
        assert_eq!(cache.get_part::<String>(a, 0).as_deref().map(String::as_str), Some("footer a"));
        // Asked as another type: not there (and not a panic).
        assert!(cache.get_part::<u32>(a, 0).is_none());
        cache.insert((b, Part::Blooms), blooms(1), 20);
        cache.insert_part(b, 0, Arc::new(String::from("footer b")), 40);
        // 90 > 100 - 40: a's part 1, the least recently used, went.
        assert_eq!(cache.part_bytes(a, 1), None);
        assert_eq!(cache.stats().used_bytes, 100);
        cache.remove_block(a);
        assert_eq!((cache.stats().used_bytes, cache.stats().entries), (60, 2));
        assert!(cache.get_part::<String>(b, 0).is_some());
    }
}
