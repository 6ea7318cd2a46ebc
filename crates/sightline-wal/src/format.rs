//! The on-disk format in one place: file names, the segment header, record
//! framing and the checksum. Everything that decides how bytes look on disk
//! lives here so a format change touches one file and bumps one constant.

use std::fmt;

/// Magic bytes that open every segment file.
pub(crate) const MAGIC: [u8; 6] = *b"SLWAL\0";

/// Version of the segment format written by this build, stored after
/// the magic. Readers reject any other version rather than guess.
pub const FORMAT_VERSION: u16 = 1;

/// Segment header length: magic plus the little-endian format version.
pub(crate) const HEADER_LEN: usize = MAGIC.len() + 2;

/// Record header length: `u32` payload length plus `u32` masked CRC32C.
pub(crate) const RECORD_HEADER_LEN: usize = 8;

/// Largest payload accepted by `append` and by recovery. A length above this
/// in a file is corruption, not a record: real batches are far smaller, and
/// the bound keeps a flipped length bit from looking plausible.
pub const MAX_RECORD_LEN: usize = 256 << 20;

/// Extension of segment files; only names ending in it are segments.
pub(crate) const SEGMENT_EXT: &str = ".wal";

/// Digits in a segment file name: `u64::MAX` has 20, so names sort by id.
const ID_WIDTH: usize = 20;

/// Lock file that keeps two processes from appending to one directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Identifies a segment. Ids only grow, also across restarts (a new segment
/// gets the largest id on disk plus one), so they order segments in time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u64);

impl SegmentId {
    /// The id after this one.
    pub(crate) fn next(self) -> SegmentId {
        SegmentId(self.0.saturating_add(1))
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The segment header this build writes.
pub(crate) fn header() -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    let (magic, version) = h.split_at_mut(MAGIC.len());
    magic.copy_from_slice(&MAGIC);
    version.copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// File name of a segment, e.g. `00000000000000000042.wal`.
pub(crate) fn segment_file_name(id: SegmentId) -> String {
    format!("{:0width$}{SEGMENT_EXT}", id.0, width = ID_WIDTH)
}

/// What a directory entry's name says about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileName {
    /// A well-formed segment name.
    Segment(SegmentId),
    /// Ends in `.wal` but is not a segment name: refuse to guess.
    Malformed,
    /// Something else (`LOCK`, a file moved aside as `….wal.bad`): ignored.
    Other,
}

/// Classifies a directory entry name.
pub(crate) fn parse_file_name(name: &str) -> FileName {
    let Some(stem) = name.strip_suffix(SEGMENT_EXT) else {
        return FileName::Other;
    };
    if stem.len() != ID_WIDTH || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return FileName::Malformed;
    }
    match stem.parse() {
        Ok(id) => FileName::Segment(SegmentId(id)),
        Err(_) => FileName::Malformed,
    }
}

/// Appends one framed record to `buf`.
///
/// The caller guarantees `0 < payload.len() <= MAX_RECORD_LEN`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    // MAX_RECORD_LEN fits in u32; the caller checked the bound.
    let len = (payload.len() as u32).to_le_bytes();
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&record_crc(len, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Masked CRC32C over the length field and the payload.
///
/// Covering the length means a flipped length bit cannot pass as a shorter,
/// valid record. The mask (LevelDB's) keeps the CRC of a payload that itself
/// embeds CRCs from being trivially related to them.
pub(crate) fn record_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    mask(crc32c::crc32c_append(crc32c::crc32c(&len), payload))
}

/// LevelDB's CRC mask (see [`record_crc`]).
pub(crate) fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}
