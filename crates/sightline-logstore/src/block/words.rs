//! The body word index: per row group, a split-block bloom filter of the
//! words of its bodies (`sightline_model::body_words`), in `words.bloom`
//! beside `data.parquet`. A substring search whose needle contains whole
//! words (`LogQuery::body_words`) skips row groups lacking one of them
//! without reading their bodies; a rare term then reads a few row groups
//! instead of every body of every block.
//!
//! Since `SLWB2` the filters also hold every word's grams
//! (`sightline_model::word_grams`, runs of six characters inside longer
//! words): a needle searched alone, an id that may be part of a longer
//! word, has no whole word but its grams are in every word containing it
//! (`LogQuery::body_grams`), so a search for a rare id reads the few row
//! groups holding its grams instead of every body (the "full scan").
//!
//! File: `"SLWB2\0"` (or `"SLWB1\0"`: words only, written before grams;
//! searches then use only its words), u32le row groups, then per row
//! group u32le length and the filter's bitset (length 0: no filter, never
//! skipped). `meta.json` records the file's CRC32C (`words_crc32c`),
//! checked when it is loaded.

use std::collections::HashSet;
use std::path::Path;

use parquet::bloom_filter::Sbbf;

use crate::Error;

pub(crate) const WORDS_FILE: &str = "words.bloom";
/// Words and grams (written now).
const MAGIC: &[u8; 6] = b"SLWB2\0";
/// Words only (read).
const MAGIC_V1: &[u8; 6] = b"SLWB1\0";
/// False positives per word looked up: one row group in a hundred is read
/// for nothing per word.
const FPP: f64 = 0.01;

/// Words of the row group being written, then the finished filters.
#[derive(Default)]
pub(crate) struct WordIndexer {
    current: HashSet<String, foldhash::fast::RandomState>,
    groups: Vec<Vec<u8>>,
    /// The word being lowercased (reused: a body's words repeat across
    /// rows, and only new ones are allocated).
    word: String,
    /// Whether grams are indexed (tests write `SLWB1` indexes without).
    words_only: bool,
}

impl WordIndexer {
    /// An indexer of the `SLWB1` layout: whole words only (tests of
    /// blocks written before grams).
    #[cfg(test)]
    pub(crate) fn words_only() -> WordIndexer {
        WordIndexer { words_only: true, ..WordIndexer::default() }
    }

    /// Adds the words (`sightline_model::body_words`) and their grams.
    pub(crate) fn add(&mut self, body: &str) {
        for w in body.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if w.len() < sightline_model::MIN_WORD_CHARS
                || w.chars().count() < sightline_model::MIN_WORD_CHARS
            {
                continue;
            }
            self.word.clear();
            self.word.push_str(w);
            self.word.make_ascii_lowercase();
            if self.current.contains(self.word.as_str()) {
                // Its grams were added with it.
                continue;
            }
            self.current.insert(self.word.clone());
            if self.words_only {
                continue;
            }
            for g in sightline_model::word_grams(&self.word) {
                if !self.current.contains(g) {
                    self.current.insert(g.to_owned());
                }
            }
        }
    }

    /// Ends the current row group.
    pub(crate) fn finish_group(&mut self) {
        let words = std::mem::take(&mut self.current);
        let mut bitset = Vec::new();
        if !words.is_empty()
            && let Ok(mut bloom) = Sbbf::new_with_ndv_fpp(words.len() as u64, FPP)
        {
            for w in &words {
                bloom.insert(w.as_str());
            }
            // NOTE: writing to a Vec cannot fail.
            let _ = bloom.write_bitset(&mut bitset);
        }
        self.groups.push(bitset);
    }

    /// The file's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = if self.words_only { MAGIC_V1 } else { MAGIC }.to_vec();
        out.extend_from_slice(&(self.groups.len() as u32).to_le_bytes());
        for g in &self.groups {
            out.extend_from_slice(&(g.len() as u32).to_le_bytes());
            out.extend_from_slice(g);
        }
        out
    }
}

/// A loaded word index.
#[derive(Debug)]
pub(crate) struct Words {
    /// One filter (or none) per row group.
    pub(crate) groups: Vec<Option<Sbbf>>,
    /// Whether the filters hold grams too (`SLWB2`).
    pub(crate) grams: bool,
}

/// Reads and checks `words.bloom`.
pub(crate) fn load(path: &Path, crc: u32, groups: usize) -> Result<Words, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, path, crc, groups)
}

/// The filters in `bytes` (the file's content; `path` names it in errors).
pub(crate) fn parse(bytes: &[u8], path: &Path, crc: u32, groups: usize) -> Result<Words, Error> {
    if crc32c::crc32c(bytes) != crc {
        return Err(Error::corrupt(path, "checksum mismatch: the word index was damaged"));
    }
    let bad = || Error::corrupt(path, "malformed word index");
    let (grams, rest) = match bytes.strip_prefix(MAGIC.as_slice()) {
        Some(rest) => (true, rest),
        None => (false, bytes.strip_prefix(MAGIC_V1.as_slice()).ok_or_else(bad)?),
    };
    let (count, mut rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    if u32::from_le_bytes(*count) as usize != groups {
        return Err(Error::corrupt(path, "word index does not match the row groups"));
    }
    let mut out = Vec::with_capacity(groups);
    for _ in 0..groups {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
        let len = u32::from_le_bytes(*len) as usize;
        let (bitset, tail) = tail.split_at_checked(len).ok_or_else(bad)?;
        out.push((len > 0).then(|| Sbbf::new(bitset)));
        rest = tail;
    }
    Ok(Words { groups: out, grams })
}
