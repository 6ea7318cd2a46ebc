//! The newest `k` matching records across heads and blocks: a min-heap on
//! the sort key, so a search holds at most `k` decoded records whatever it
//! scans, and sources can stop once nothing left can beat the worst kept.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use sightline_model::{LogCursor, LogPage, LogRecord};

/// The sort key: newest first, ties by fingerprint.
pub(crate) type Key = (u64, u64);

struct Entry {
    key: Key,
    record: LogRecord,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// The best `k` records seen so far, each key once (a record in both a
/// frozen head and the block it became, or sent twice, counts once).
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Entry>>,
    keys: HashSet<Key>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> TopK {
        TopK { k: k.max(1), heap: BinaryHeap::new(), keys: HashSet::new() }
    }

    /// The worst key kept, once `k` are kept: anything not above it is out.
    pub(crate) fn floor(&self) -> Option<Key> {
        (self.heap.len() >= self.k).then(|| self.heap.peek().map(|e| e.0.key)).flatten()
    }

    /// Whether a record with `key` would be kept (before decoding it).
    pub(crate) fn accepts(&self, key: Key) -> bool {
        self.floor().is_none_or(|f| key > f) && !self.keys.contains(&key)
    }

    pub(crate) fn push(&mut self, key: Key, record: LogRecord) {
        if !self.accepts(key) {
            return;
        }
        self.keys.insert(key);
        self.heap.push(Reverse(Entry { key, record }));
        if self.heap.len() > self.k
            && let Some(Reverse(out)) = self.heap.pop()
        {
            self.keys.remove(&out.key);
        }
    }

    /// Adds everything `other` kept (the parts of one search run in
    /// parallel).
    pub(crate) fn absorb(&mut self, other: TopK) {
        for Reverse(e) in other.heap {
            self.push(e.key, e.record);
        }
    }

    /// The page: newest first, with a cursor when it is full (there may be
    /// more).
    pub(crate) fn into_page(self, warnings: Vec<String>) -> LogPage {
        let full = self.heap.len() >= self.k;
        let mut entries: Vec<Entry> = self.heap.into_iter().map(|r| r.0).collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.key));
        let next = if full {
            entries.last().map(|e| LogCursor { time_unix_nanos: e.key.0, fingerprint: e.key.1 })
        } else {
            None
        };
        LogPage { records: entries.into_iter().map(|e| e.record).collect(), next, warnings }
    }
}
