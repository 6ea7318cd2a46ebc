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
//! is read again from the block's source when evicted.
//!
//! # Eviction: a scan cannot flush it
//!
//! Queries read these parts in cycles: a trace lookup reads every block's
//! `trace_id` filters, a body search every log block's word filters, an
//! attribute search every block's footer, each time in the same order.
//! Least-recently-used eviction fails on a cycle bigger than the cache:
//! every entry is evicted just before its next use, so nothing ever hits
//! (the log store's word cache got 0 hits at 10M records). The policy
//! here is a small hand-written form of W-TinyLFU (Einziger et al.,
//! "TinyLFU: A Highly Efficient Cache Admission Policy"; Caffeine's):
//!
//! - A *window* of 1/[`WINDOW_SHARE`] of the bytes, least recently used
//!   first, takes every new entry unconditionally: a part used again
//!   soon (a footer read for each row group a query reads) is found.
//! - What the window pushes out is a candidate for the *main* part (the
//!   rest of the bytes, least recently used first). While there is room
//!   it goes in. Otherwise it goes in only if it was used more, recently,
//!   than each main entry that would make room for it, by a margin of two
//!   uses; if not, the candidate is dropped and the main part stays as it
//!   was. In a cycle the newcomer is often one use ahead of the resident
//!   it meets (it was just used, the resident not yet this round): the
//!   margin keeps such near-ties from replacing residents each round.
//! - Uses are counted per key (held or not: a dropped entry's count is
//!   its history), saturate at [`MAX_USES`] and are halved every
//!   [`AGING_PER_KEY`] uses per key counted, so that what was hot long
//!   ago gives way.
//!
//! So a cycle over more than the cache keeps a fixed part of it resident
//! (a share of hits about the main part over the cycle's bytes, instead
//! of none), a hot entry outlives a one-off scan, and entries of a block
//! that was dropped (a merge's inputs) leave room that the next newcomers
//! take. Below the bound nothing is evicted, as before.
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

/// The window (new entries, kept unconditionally) is this fraction of
/// the capacity; the main part is the rest.
pub(crate) const WINDOW_SHARE: usize = 8;

/// Use counts saturate here (four bits, as TinyLFU's counters).
pub(crate) const MAX_USES: u8 = 15;

/// Counts are halved after this many uses per counted key (and at least
/// [`MIN_AGING_PERIOD`]): a key used on every round of a cycle keeps a
/// count near ten, one unused for a few periods is forgotten.
pub(crate) const AGING_PER_KEY: u64 = 10;

/// The fewest uses between two halvings.
const MIN_AGING_PERIOD: u64 = 256;

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
    /// Bytes of every entry held (window and main).
    used: usize,
    /// Bytes of the entries in the window.
    window_bytes: usize,
    entries: HashMap<Key, Slot>,
    /// The window's entries, last use → key: the first is the least
    /// recently used.
    window: BTreeMap<u64, Key>,
    /// The main part's entries, the same way.
    main: BTreeMap<u64, Key>,
    /// Recent uses of keys held or recently dropped (see the module docs).
    uses: HashMap<Key, u8>,
    /// Uses counted since the counts were last halved.
    since_aging: u64,
}

#[derive(Debug)]
struct Slot {
    value: Cached,
    bytes: usize,
    tick: u64,
    in_window: bool,
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
    /// Entries dropped to stay within the capacity (newcomers the main
    /// part did not take included).
    pub evictions: u64,
}

impl State {
    /// Counts a use of `key`, halving every count once a period is over.
    fn count_use(&mut self, key: Key) {
        let n = self.uses.entry(key).or_insert(0);
        *n = n.saturating_add(1).min(MAX_USES);
        self.since_aging += 1;
        let period = (self.uses.len() as u64).saturating_mul(AGING_PER_KEY).max(MIN_AGING_PERIOD);
        if self.since_aging >= period {
            self.since_aging = 0;
            self.uses.retain(|_, n| {
                *n /= 2;
                *n > 0
            });
        }
    }

    fn uses_of(&self, key: &Key) -> u8 {
        self.uses.get(key).copied().unwrap_or(0)
    }

    /// Takes `key`'s entry out of the cache and its order.
    fn remove(&mut self, key: &Key) -> Option<Slot> {
        let slot = self.entries.remove(key)?;
        self.used -= slot.bytes;
        if slot.in_window {
            self.window.remove(&slot.tick);
            self.window_bytes -= slot.bytes;
        } else {
            self.main.remove(&slot.tick);
        }
        Some(slot)
    }

    /// Keeps `slot` under `key` in the window; while more than `capacity`
    /// bytes are held, moves the window's least recently used entry to
    /// the main part or drops it (see the module docs). Returns how many
    /// entries were dropped.
    fn insert(&mut self, key: Key, mut slot: Slot, capacity: usize) -> u64 {
        self.remove(&key);
        slot.in_window = true;
        self.window.insert(slot.tick, key);
        self.window_bytes += slot.bytes;
        self.used += slot.bytes;
        self.entries.insert(key, slot);
        let main_capacity = capacity - capacity / WINDOW_SHARE;
        let mut dropped = 0;
        while self.used > capacity {
            // The main part holds at most `main_capacity`, so the window
            // is not empty here.
            let Some((tick, candidate)) = self.window.pop_first() else { break };
            let Some(slot) = self.entries.get_mut(&candidate) else { continue };
            slot.in_window = false;
            self.window_bytes -= slot.bytes;
            // Held (in `used`) but in neither order while it is weighed.
            if self.make_room(candidate, main_capacity, &mut dropped) {
                self.main.insert(tick, candidate);
            } else {
                if let Some(slot) = self.entries.remove(&candidate) {
                    self.used -= slot.bytes;
                }
                dropped += 1;
            }
        }
        dropped
    }

    /// Evicts main entries, least recently used first, until the main
    /// part with `candidate` (held, in neither order) takes at most
    /// `main_capacity` bytes, if `candidate` was used more than each of
    /// them by two; `false` (nothing evicted) if not, or if they cannot
    /// make the room.
    fn make_room(&mut self, candidate: Key, main_capacity: usize, dropped: &mut u64) -> bool {
        let main_bytes = self.used - self.window_bytes;
        let Some(need) = main_bytes.checked_sub(main_capacity).filter(|n| *n > 0) else { return true };
        let uses = self.uses_of(&candidate);
        let mut victims = Vec::new();
        let mut freed = 0;
        for key in self.main.values() {
            if freed >= need {
                break;
            }
            if u16::from(self.uses_of(key)) + 2 > u16::from(uses) {
                return false;
            }
            freed += self.entries.get(key).map_or(0, |s| s.bytes);
            victims.push(*key);
        }
        if freed < need {
            return false;
        }
        for key in victims {
            self.remove(&key);
            *dropped += 1;
        }
        true
    }
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

    /// The entry, marked as just used; a use of `key` is counted either way.
    pub(crate) fn get(&self, key: Key) -> Option<Cached> {
        let mut state = self.lock();
        state.count_use(key);
        state.tick += 1;
        let tick = state.tick;
        let State { entries, window, main, .. } = &mut *state;
        let Some(slot) = entries.get_mut(&key) else {
            drop(state);
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let old = std::mem::replace(&mut slot.tick, tick);
        let order = if slot.in_window { window } else { main };
        order.remove(&old);
        order.insert(tick, key);
        let value = slot.value.clone();
        drop(state);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(value)
    }

    /// The bytes the entry takes, if held (without marking it used).
    pub(crate) fn bytes_of(&self, key: Key) -> Option<usize> {
        self.lock().entries.get(&key).map(|s| s.bytes)
    }

    /// Keeps `value` (of `bytes`) in the window, which may push its oldest
    /// entries out to the main part or drop them (see the module docs). An
    /// entry bigger than the whole cache is not kept.
    pub(crate) fn insert(&self, key: Key, value: Cached, bytes: usize) {
        if bytes > self.capacity {
            return;
        }
        let mut state = self.lock();
        state.tick += 1;
        let tick = state.tick;
        let evicted = state.insert(key, Slot { value, bytes, tick, in_window: true }, self.capacity);
        drop(state);
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }

    /// Drops every entry of block `id` (the block was dropped), and its
    /// use counts.
    pub fn remove_block(&self, id: u64) {
        let mut state = self.lock();
        let parts: Vec<Key> = state.entries.keys().filter(|k| k.0 == id).copied().collect();
        for key in parts {
            state.remove(&key);
        }
        state.uses.retain(|k, _| k.0 != id);
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
    /// [`FooterCache::insert`] does; one bigger than the whole cache is
    /// not kept.
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

    /// Reads `key` as a block does: from the cache, or read again (as
    /// `bytes`) and kept. `true` on a hit. Checks the bound after.
    fn read(cache: &FooterCache, key: u64, bytes: usize) -> bool {
        let key = (key, Part::Blooms);
        let hit = cache.get(key).is_some();
        if !hit {
            cache.insert(key, blooms(1), bytes);
        }
        check(cache);
        hit
    }

    /// The bound holds and the byte counts and orders agree with the entries.
    fn check(cache: &FooterCache) {
        let state = cache.lock();
        assert!(state.used <= cache.capacity(), "{} B held, bound {}", state.used, cache.capacity());
        assert_eq!(state.used, state.entries.values().map(|s| s.bytes).sum::<usize>());
        let window: usize = state.entries.values().filter(|s| s.in_window).map(|s| s.bytes).sum();
        assert_eq!(state.window_bytes, window);
        let main = state.used - window;
        assert!(main <= cache.capacity() - cache.capacity() / WINDOW_SHARE, "main part {main} B");
        assert_eq!(state.window.len() + state.main.len(), state.entries.len());
        for (order, in_window) in [(&state.window, true), (&state.main, false)] {
            for (tick, key) in order {
                let slot = &state.entries[key];
                assert_eq!((slot.tick, slot.in_window), (*tick, in_window), "{key:?}");
            }
        }
    }

    #[test]
    fn keeps_what_fits_then_only_newcomers_used_more_than_what_they_displace() {
        let cache = FooterCache::new(100);
        cache.insert((1, Part::Blooms), blooms(1), 40);
        cache.insert((2, Part::Blooms), blooms(2), 40);
        assert!(cache.get((1, Part::Blooms)).is_some());
        // Full: 3, never used before, does not displace 2 (no more used).
        cache.insert((3, Part::Blooms), blooms(3), 40);
        check(&cache);
        assert_eq!(cache.bytes_of((3, Part::Blooms)), None);
        assert_eq!(cache.stats().evictions, 1);
        // Missed twice more (three uses against 2's none): it does, and
        // 2, the least recently used, goes.
        assert!(cache.get((3, Part::Blooms)).is_none());
        assert!(cache.get((3, Part::Blooms)).is_none());
        cache.insert((3, Part::Blooms), blooms(3), 40);
        check(&cache);
        assert!(cache.get((2, Part::Blooms)).is_none());
        assert!(cache.get((1, Part::Blooms)).is_some());
        assert!(cache.get((3, Part::Blooms)).is_some());
        let stats = cache.stats();
        assert_eq!((stats.used_bytes, stats.entries, stats.evictions), (80, 2, 2));
        assert_eq!((stats.hits, stats.misses), (3, 3));
        // Replacing an entry charges the new size only.
        cache.insert((3, Part::Blooms), blooms(3), 10);
        assert_eq!(cache.stats().used_bytes, 50);
        // Too big for the whole cache: not kept, nothing evicted for it.
        cache.insert((4, Part::Footer), blooms(4), 101);
        assert_eq!(cache.stats().entries, 2);
        cache.insert((1, Part::Footer), blooms(1), 30);
        assert_eq!(cache.bytes_of((1, Part::Footer)), Some(30));
        cache.remove_block(1);
        check(&cache);
        assert_eq!(cache.stats().used_bytes, 10);
        assert_eq!(cache.bytes_of((1, Part::Footer)), None);
        assert!(cache.lock().uses.keys().all(|k| k.0 != 1), "a dropped block's counts stay");
    }

    /// Every round reads the same keys in the same order, more of them
    /// than the cache holds (as body searches read every block's word
    /// filters): least-recently-used eviction drops each just before its
    /// next read and never hits; here most of the cache stays resident.
    #[test]
    fn a_cyclic_scan_bigger_than_the_cache_keeps_a_share_resident() {
        // Each round in the same order, or starting further on each time.
        for (held, cycle, step) in
            [(10, 11, 0), (10, 20, 0), (10, 40, 0), (10, 11, 3), (10, 20, 3), (10, 40, 7)]
        {
            let cache = FooterCache::new(held * 100);
            let mut hits = 0;
            for round in 0..40 {
                for i in 0..cycle {
                    let hit = read(&cache, (i + round * step) % cycle, 100);
                    hits += usize::from(hit && round >= 10);
                }
            }
            let per_round = hits as f64 / 30.0;
            assert!(per_round >= held as f64 * 0.6, "{held} held, cycle {cycle}: {per_round} hits per round");
        }
    }

    /// Entries of unequal sizes (as blocks of several merge levels have):
    /// the bound holds and the cycle still hits.
    #[test]
    fn a_cyclic_scan_over_unequal_entries_hits_within_the_bound() {
        let sizes: Vec<usize> = (0..17).map(|i| 100 + (i * 7919) % 900).collect();
        let total: usize = sizes.iter().sum();
        let cache = FooterCache::new(total / 4);
        let mut hit_bytes = 0;
        for round in 0..40 {
            for (key, bytes) in sizes.iter().enumerate() {
                if read(&cache, key as u64, *bytes) && round >= 10 {
                    hit_bytes += bytes;
                }
            }
        }
        let share = hit_bytes as f64 / 30.0 / total as f64;
        assert!(share >= 0.1, "{share:.2} of each round's bytes hit");
    }

    /// A part used often (a trace lookup's filters) is still held after a
    /// one-off read of many others (a search over old blocks), which
    /// least-recently-used eviction would have dropped it for.
    #[test]
    fn hot_entries_outlive_a_one_off_scan() {
        let cache = FooterCache::new(1000);
        for _ in 0..4 {
            for key in 0..6 {
                read(&cache, key, 100);
            }
        }
        for key in 100..160 {
            read(&cache, key, 100);
        }
        for key in 0..6 {
            assert!(read(&cache, key, 100), "hot entry {key} went");
        }
        assert!(cache.stats().evictions > 0);
    }

    /// A part kept is found by the next read even when the main part is
    /// full of parts used more (a footer read once for each row group a
    /// query reads): the window takes every newcomer.
    #[test]
    fn a_newcomer_is_found_again_right_after_it_is_kept() {
        let cache = FooterCache::new(1600);
        for _ in 0..5 {
            for key in 0..16 {
                read(&cache, key, 100);
            }
        }
        for key in 100..110 {
            assert!(!read(&cache, key, 100));
            assert!(read(&cache, key, 100), "{key} was not kept");
            assert!(read(&cache, key, 100));
        }
    }

    /// Entries of a dropped block (a merge's inputs) leave room in the
    /// main part that the next newcomers take, however little they were
    /// used.
    #[test]
    fn newcomers_take_the_room_a_dropped_block_leaves() {
        let cache = FooterCache::new(1000);
        for _ in 0..5 {
            for key in 0..20 {
                read(&cache, key, 100);
            }
        }
        let in_main = |key: u64| cache.lock().entries.get(&(key, Part::Blooms)).is_some_and(|s| !s.in_window);
        let held: Vec<u64> = (0..20).filter(|k| in_main(*k)).collect();
        assert_eq!(held.len(), 8);
        // Full: a newcomer passes through the window and is dropped.
        for key in 50..55 {
            read(&cache, key, 100);
        }
        assert!((50..53).all(|k| cache.bytes_of((k, Part::Blooms)).is_none()));
        for key in &held[..3] {
            cache.remove_block(*key);
        }
        check(&cache);
        // The window's entries, oldest first, take it as the newcomers
        // push them out: the two the scan left there, then the first.
        for key in 60..65 {
            read(&cache, key, 100);
        }
        assert!([53, 54, 60].into_iter().all(in_main), "the room went unused");
        assert_eq!((0..100).filter(|k| in_main(*k)).count(), 8);
    }

    /// Random reads, sizes (some past the window, some past the cache)
    /// and dropped blocks: the bound and the bookkeeping always hold, and
    /// a value taken outlives its eviction.
    #[test]
    fn the_byte_bound_holds_under_random_use() {
        let cache = FooterCache::new(5000);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut taken = Vec::new();
        for i in 0..20_000 {
            // Skewed: low keys far more often.
            let spread = next(200) + 1;
            let key = next(spread);
            let bytes = match next(20) {
                0 => 5001,
                1..=3 => 700 + next(2000) as usize,
                _ => 1 + next(400) as usize,
            };
            if next(50) == 0 {
                cache.remove_block(key);
                check(&cache);
            } else if let Some(value) = cache.get((key, Part::Blooms)) {
                if i % 1000 == 0 {
                    taken.push(value);
                }
            } else {
                cache.insert((key, Part::Blooms), blooms(1), bytes);
            }
            check(&cache);
        }
        let stats = cache.stats();
        assert!(stats.hits > 0 && stats.evictions > 0, "{stats:?}");
        assert!(taken.iter().all(|v| matches!(v, Cached::Blooms(b) if b.len() == 1)));
        assert!(cache.lock().uses.len() <= 201);
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
        assert_eq!(cache.stats().used_bytes, 90);
        // Used more than a's part 1, which goes to make room.
        for _ in 0..2 {
            assert!(cache.get_part::<String>(b, 0).is_none());
        }
        cache.insert_part(b, 0, Arc::new(String::from("footer b")), 40);
        check(&cache);
        assert_eq!(cache.part_bytes(a, 1), None);
        assert_eq!(cache.get_part::<String>(b, 0).as_deref().map(String::as_str), Some("footer b"));
        cache.remove_block(a);
        check(&cache);
        let b_bytes: usize =
            [cache.part_bytes(b, 0), cache.bytes_of((b, Part::Blooms))].into_iter().flatten().sum();
        assert_eq!(cache.stats().used_bytes, b_bytes);
        assert_eq!(cache.part_bytes(a, 0), None);
    }
}
