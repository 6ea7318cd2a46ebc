//! Dedicated attribute columns: which span attribute keys of a block get a
//! column of their own (`attr_str_NN`, `attr_int_NN`).
//!
//! Attribute values of one key look alike (routes, status codes, user
//! ids), but in the generic `attributes` list they sit between values of
//! every other key, so neither dictionaries nor zstd see the likeness. The
//! most frequent keys of a block therefore get their own column: values
//! compress per key, a search on that key reads one small column, and its
//! dictionary and bloom filter answer "is this value here at all". The
//! choice is per block, by frequency, and is recorded in the Parquet
//! key-value metadata, so nothing about keys is hard-coded (Tempo's
//! "dedicated columns", chosen automatically).

use std::collections::{HashMap, HashSet};

use serde_json::{Value as J, json};

use crate::row::{AttrKind, Row};
use crate::schema::{INT_SLOTS, STR_SLOTS};

/// Maps keyed by attribute keys hash with foldhash: they are looked up once
/// per attribute of every span written, where SipHash (and then FNV-1a,
/// byte by byte) showed in profiles.
type KeyHasher = foldhash::fast::RandomState;
type KeyIndex = HashMap<String, u8, KeyHasher>;

/// Spans [`Dedicated::choose`] looks at, at most: enough to rank keys used
/// by more than a few per mille of spans, which is what gets a column; more
/// made `choose` 6 % of server CPU at 10k realistic spans/s.
pub(crate) const CHOOSE_SAMPLE: usize = 4_096;

/// Keys at most this many per span are deduplicated by a linear scan;
/// beyond, by a hash set.
const LINEAR_KEYS: usize = 16;

/// The distinct keys of one span. Most spans have about ten attributes,
/// where comparing against those seen beats hashing; but a linear scan
/// alone made a span of n attributes cost n²/2 comparisons (12,500
/// attributes took 0.2 s to flush, 50,000 took 3 s, two of 100,000 stalled
/// ingest for 28 s), so past [`LINEAR_KEYS`] a hash set takes over.
#[derive(Debug)]
pub(crate) struct Distinct<K> {
    small: Vec<K>,
    large: HashSet<K, KeyHasher>,
}

impl<K> Default for Distinct<K> {
    fn default() -> Self {
        Distinct { small: Vec::new(), large: HashSet::default() }
    }
}

impl<K: Copy + Eq + std::hash::Hash> Distinct<K> {
    pub(crate) fn clear(&mut self) {
        self.small.clear();
        self.large.clear();
    }

    /// Whether `key` was not seen since the last [`Distinct::clear`].
    pub(crate) fn insert(&mut self, key: K) -> bool {
        if self.small.len() < LINEAR_KEYS {
            if self.small.contains(&key) {
                return false;
            }
            self.small.push(key);
            return true;
        }
        if self.large.is_empty() {
            self.large.extend(self.small.iter().copied());
        }
        self.large.insert(key)
    }
}

/// The keys with a dedicated column, each with how many spans used it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dedicated {
    /// `attr_str_NN` holds string values of `str_keys[NN]`.
    pub(crate) str_keys: Vec<(String, u64)>,
    /// `attr_int_NN` holds integer values of `int_keys[NN]`.
    pub(crate) int_keys: Vec<(String, u64)>,
    str_index: KeyIndex,
    int_index: KeyIndex,
}

impl Dedicated {
    fn new(mut str_keys: Vec<(String, u64)>, mut int_keys: Vec<(String, u64)>) -> Dedicated {
        for keys in [&mut str_keys, &mut int_keys] {
            keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        }
        str_keys.truncate(STR_SLOTS);
        int_keys.truncate(INT_SLOTS);
        let index = |keys: &[(String, u64)]| {
            keys.iter().enumerate().map(|(i, (k, _))| (k.clone(), i as u8)).collect()
        };
        Dedicated { str_index: index(&str_keys), int_index: index(&int_keys), str_keys, int_keys }
    }

    /// The most frequent string and integer keys among `spans` (each span
    /// counted once per key). Big blocks are sampled evenly (every n-th
    /// span, up to [`CHOOSE_SAMPLE`] spans): the ranking of frequent keys is
    /// the same, and the counts recorded in the block are the real ones
    /// (see [`Dedicated::with_counts`]).
    pub(crate) fn choose<R: Row>(spans: &[R]) -> Dedicated {
        let mut strs: HashMap<&str, u64, KeyHasher> = HashMap::default();
        let mut ints: HashMap<&str, u64, KeyHasher> = HashMap::default();
        let mut seen: Distinct<&str> = Distinct::default();
        let step = spans.len().div_ceil(CHOOSE_SAMPLE).max(1);
        for span in spans.iter().step_by(step) {
            seen.clear();
            for (key, kind) in span.attribute_kinds() {
                let counts = match kind {
                    AttrKind::Str => &mut strs,
                    AttrKind::Int => &mut ints,
                    AttrKind::Other => continue,
                };
                if seen.insert(key) {
                    *counts.entry(key).or_default() += 1;
                }
            }
        }
        let owned =
            |m: HashMap<&str, u64, KeyHasher>| m.into_iter().map(|(k, n)| (k.to_owned(), n)).collect();
        Dedicated::new(owned(strs), owned(ints))
    }

    /// The union of the inputs' choices, ranked by their summed use: what
    /// compaction writes.
    pub(crate) fn merge<'a>(inputs: impl IntoIterator<Item = &'a Dedicated>) -> Dedicated {
        let mut strs: HashMap<String, u64> = HashMap::new();
        let mut ints: HashMap<String, u64> = HashMap::new();
        for d in inputs {
            for (k, n) in &d.str_keys {
                *strs.entry(k.clone()).or_default() += n;
            }
            for (k, n) in &d.int_keys {
                *ints.entry(k.clone()).or_default() += n;
            }
        }
        Dedicated::new(strs.into_iter().collect(), ints.into_iter().collect())
    }

    /// A copy with the given use counts (what was actually written).
    pub(crate) fn with_counts(&self, str_counts: &[u64], int_counts: &[u64]) -> Dedicated {
        let recount = |keys: &[(String, u64)], counts: &[u64]| {
            keys.iter().zip(counts).map(|((k, _), n)| (k.clone(), *n)).collect::<Vec<_>>()
        };
        // Keep slot order: `new` would re-sort by count.
        Dedicated {
            str_keys: recount(&self.str_keys, str_counts),
            int_keys: recount(&self.int_keys, int_counts),
            str_index: self.str_index.clone(),
            int_index: self.int_index.clone(),
        }
    }

    pub(crate) fn str_slot(&self, key: &str) -> Option<u8> {
        self.str_index.get(key).copied()
    }

    pub(crate) fn int_slot(&self, key: &str) -> Option<u8> {
        self.int_index.get(key).copied()
    }

    /// The Parquet key-value metadata value.
    pub(crate) fn to_json(&self) -> String {
        let list = |keys: &[(String, u64)]| -> J {
            J::Array(keys.iter().map(|(k, n)| json!({ "key": k, "spans": n })).collect())
        };
        json!({ "str": list(&self.str_keys), "int": list(&self.int_keys) }).to_string()
    }

    /// Parses [`Dedicated::to_json`].
    pub(crate) fn from_json(text: &str) -> Result<Dedicated, String> {
        let j: J = serde_json::from_str(text).map_err(|e| format!("dedicated attributes: {e}"))?;
        let list = |name: &str, max: usize| -> Result<Vec<(String, u64)>, String> {
            let items = j
                .get(name)
                .and_then(J::as_array)
                .ok_or_else(|| format!("dedicated attributes: no {name:?}"))?;
            if items.len() > max {
                return Err(format!("dedicated attributes: {} {name} keys, at most {max}", items.len()));
            }
            items
                .iter()
                .map(|item| {
                    let key = item.get("key").and_then(J::as_str);
                    let spans = item.get("spans").and_then(J::as_u64);
                    match (key, spans) {
                        (Some(k), Some(n)) => Ok((k.to_owned(), n)),
                        _ => Err(format!("dedicated attributes: bad entry {item}")),
                    }
                })
                .collect()
        };
        let str_keys = list("str", STR_SLOTS)?;
        let int_keys = list("int", INT_SLOTS)?;
        let index = |keys: &[(String, u64)]| {
            keys.iter().enumerate().map(|(i, (k, _))| (k.clone(), i as u8)).collect()
        };
        Ok(Dedicated { str_index: index(&str_keys), int_index: index(&int_keys), str_keys, int_keys })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::hash::{Hash, Hasher};

    use super::Distinct;

    thread_local! {
        static COMPARISONS: Cell<usize> = const { Cell::new(0) };
    }

    /// A key that counts how often it is compared.
    #[derive(Clone, Copy, Debug)]
    struct Counted(u32);

    impl PartialEq for Counted {
        fn eq(&self, other: &Self) -> bool {
            COMPARISONS.with(|c| c.set(c.get() + 1));
            self.0 == other.0
        }
    }
    impl Eq for Counted {}
    impl Hash for Counted {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }

    /// Deduplicating the keys of a span with n attributes costs O(n)
    /// comparisons, not n²/2: 100,000 distinct keys (a span D7 found
    /// stalling ingest) take a few hundred thousand at most.
    #[test]
    fn distinct_keys_cost_linear_comparisons() {
        let n = 100_000u32;
        let mut seen = Distinct::default();
        COMPARISONS.with(|c| c.set(0));
        for k in 0..n {
            assert!(seen.insert(Counted(k)));
        }
        // Every key again, then fresh: repeats are found, new ones kept.
        for k in 0..n {
            assert!(!seen.insert(Counted(k)));
        }
        assert!(seen.insert(Counted(n)));
        let comparisons = COMPARISONS.with(Cell::get);
        assert!(comparisons < 8 * n as usize, "{comparisons} comparisons for {n} keys");
        seen.clear();
        assert!(seen.insert(Counted(1)), "clear forgets");
    }
}
