//! The body word index: per row group, a split-block bloom filter of the
//! words of its bodies (`sightline_model::body_words`), in `words.bloom`
//! beside `data.parquet`. A substring search whose needle contains whole
//! words (`LogQuery::body_words`) skips row groups lacking one of them
//! without reading their bodies; a rare term then reads a few row groups
//! instead of every body of every block.
//!
//! File: `"SLWB1\0"`, u32le row groups, then per row group u32le length and
//! the filter's bitset (length 0: no filter, never skipped). `meta.json`
//! records the file's CRC32C (`words_crc32c`), checked when it is loaded.

use std::collections::HashSet;
use std::path::Path;

use parquet::bloom_filter::Sbbf;

use crate::Error;

pub(crate) const WORDS_FILE: &str = "words.bloom";
const MAGIC: &[u8; 6] = b"SLWB1\0";
/// False positives per word looked up: one row group in a hundred is read
/// for nothing per word.
const FPP: f64 = 0.01;

/// Words of the row group being written, then the finished filters.
#[derive(Default)]
pub(crate) struct WordIndexer {
    current: HashSet<String>,
    groups: Vec<Vec<u8>>,
}

impl WordIndexer {
    pub(crate) fn add(&mut self, body: &str) {
        for w in sightline_model::body_words(body) {
            if !self.current.contains(&w) {
                self.current.insert(w);
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
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&(self.groups.len() as u32).to_le_bytes());
        for g in &self.groups {
            out.extend_from_slice(&(g.len() as u32).to_le_bytes());
            out.extend_from_slice(g);
        }
        out
    }
}

/// Reads and checks `words.bloom`: one filter (or none) per row group.
pub(crate) fn load(path: &Path, crc: u32, groups: usize) -> Result<Vec<Option<Sbbf>>, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, path, crc, groups)
}

/// The filters in `bytes` (the file's content; `path` names it in errors).
pub(crate) fn parse(bytes: &[u8], path: &Path, crc: u32, groups: usize) -> Result<Vec<Option<Sbbf>>, Error> {
    if crc32c::crc32c(bytes) != crc {
        return Err(Error::corrupt(path, "checksum mismatch: the word index was damaged"));
    }
    let bad = || Error::corrupt(path, "malformed word index");
    let rest = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(bad)?;
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
    Ok(out)
}
