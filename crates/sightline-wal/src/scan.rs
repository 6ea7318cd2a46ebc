//! Parsing one segment's bytes into records, and the recovery policy that
//! decides whether damage is a torn tail (dropped) or corruption (fatal).
//!
//! Pure functions over a byte slice: no IO, never panics, so it can be fuzzed
//! directly through [`scan_segment`].

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::{Corruption, Error, ParseError};
use crate::format::{HEADER_LEN, MAGIC, MAX_RECORD_LEN, RECORD_HEADER_LEN, header, record_crc};

/// How much damage recovery tolerates. Sealed segments are always strict:
/// they were fsynced before the next segment took writes, so any damage in
/// them is corruption. The mode only changes how the last segment is read.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Default. Only a torn tail of the last segment is dropped: a short
    /// record header, a payload cut short, a bad checksum or zero bytes, with
    /// no valid record anywhere after it. Damage followed by a valid record
    /// means bytes in the middle of the log changed, and `open` refuses to
    /// start (like RocksDB's `kTolerateCorruptedTailRecords`).
    #[default]
    TolerateTornTail,
    /// The last segment is cut at its first damage even if valid records
    /// follow (RocksDB's `kPointInTimeRecovery`). An operator's escape hatch,
    /// e.g. after a power loss under a relaxed fsync policy where pages
    /// reached the disk out of order: it loses the records after the damage.
    PointInTime,
}

impl FromStr for RecoveryMode {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tolerate-torn-tail" | "torn-tail" => Ok(RecoveryMode::TolerateTornTail),
            "point-in-time" => Ok(RecoveryMode::PointInTime),
            _ => Err(ParseError {
                what: "WAL recovery mode",
                input: s.to_owned(),
                expected: "\"tolerate-torn-tail\" (default) or \"point-in-time\"",
            }),
        }
    }
}

/// What is wrong at a position in a segment. Used both for a torn tail
/// (why bytes were dropped) and for corruption (why `open` failed).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The segment does not start with the `SLWAL\0` magic.
    BadHeader,
    /// The magic is right but the format version is not one this build reads.
    UnsupportedVersion {
        /// Version found in the file.
        version: u16,
    },
    /// The file is shorter than the segment header.
    IncompleteHeader {
        /// File length in bytes.
        len: u64,
    },
    /// Everything from this position to the end of the file is zero bytes.
    ZeroFill,
    /// A record (its header or its payload) runs past the end of the file.
    TruncatedRecord {
        /// Bytes the record needs, header included.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// The stored checksum does not match the record.
    ChecksumMismatch {
        /// Masked CRC32C stored in the record header.
        stored: u32,
        /// Masked CRC32C computed over the length and payload read.
        computed: u32,
    },
    /// A length of zero, or above the maximum record size.
    InvalidLength {
        /// The length found.
        length: u32,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::BadHeader => write!(f, "segment header is not the SLWAL magic"),
            Damage::UnsupportedVersion { version } => write!(
                f,
                "segment format version {version} is not supported (this build reads version {})",
                crate::format::FORMAT_VERSION
            ),
            Damage::IncompleteHeader { len } => {
                write!(f, "file is {len} bytes, shorter than the {HEADER_LEN}-byte segment header")
            }
            Damage::ZeroFill => write!(f, "the rest of the file is zero bytes"),
            Damage::TruncatedRecord { needed, available } => {
                write!(f, "record needs {needed} bytes but only {available} remain")
            }
            Damage::ChecksumMismatch { stored, computed } => {
                write!(f, "record checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
            Damage::InvalidLength { length } => {
                write!(f, "invalid record length {length} (must be 1..={MAX_RECORD_LEN})")
            }
        }
    }
}

/// The part of the last segment that recovery dropped: what a crash cut off
/// in the middle of a write. Reported so the caller can log it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Byte offset where the valid data ends (the file is truncated here).
    pub offset: u64,
    /// Bytes dropped from `offset` to the end of the file.
    pub discarded_bytes: u64,
    /// What was found at `offset`.
    pub reason: Damage,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dropped a torn tail of {} bytes at byte {}: {}",
            self.discarded_bytes, self.offset, self.reason
        )
    }
}

/// A successful scan: record payload ranges into the scanned buffer.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub(crate) records: Vec<Range<usize>>,
    pub(crate) torn: Option<TornTail>,
}

/// Damage that recovery may not drop, at a byte offset.
#[derive(Debug)]
pub(crate) struct Fatal {
    pub(crate) offset: u64,
    pub(crate) kind: Damage,
}

/// Reads every record of a segment.
///
/// For fuzzing and tools: never panics on any input. `is_last` says whether
/// this is the newest segment, the only one allowed a torn tail. Uses the
/// default [`RecoveryMode`]. Corruption comes back as [`Error::Corruption`]
/// without a file name.
pub fn scan_segment(bytes: &[u8], is_last: bool) -> Result<(Vec<Bytes>, Option<TornTail>), Error> {
    match scan(bytes, is_last, RecoveryMode::default()) {
        Ok(scanned) => {
            let records = scanned
                .records
                .into_iter()
                .map(|r| Bytes::copy_from_slice(bytes.get(r).unwrap_or_default()))
                .collect();
            Ok((records, scanned.torn))
        }
        Err(fatal) => Err(Error::Corruption(Box::new(Corruption {
            path: None,
            segment: None,
            offset: fatal.offset,
            kind: fatal.kind,
        }))),
    }
}

/// Scans a segment's bytes under `mode`.
pub(crate) fn scan(buf: &[u8], is_last: bool, mode: RecoveryMode) -> Result<Scanned, Fatal> {
    if let Some(torn) = check_header(buf, is_last)? {
        return Ok(Scanned { records: Vec::new(), torn: Some(torn) });
    }
    let mut records = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < buf.len() {
        match parse_record(buf, pos) {
            Ok(range) => {
                pos = range.end;
                records.push(range);
            }
            Err(kind) => {
                let torn = classify_damage(buf, pos, kind, is_last, mode)?;
                return Ok(Scanned { records, torn: Some(torn) });
            }
        }
    }
    Ok(Scanned { records, torn: None })
}

/// Validates the segment header. `Ok(Some(_))` means the whole last segment
/// is a torn tail: a crash while the segment was being created.
fn check_header(buf: &[u8], is_last: bool) -> Result<Option<TornTail>, Fatal> {
    let expected = header();
    let whole_file_torn = |reason| TornTail { offset: 0, discarded_bytes: buf.len() as u64, reason };
    let Some(found) = buf.get(..HEADER_LEN) else {
        let len = buf.len() as u64;
        if is_last && (expected.starts_with(buf) || all_zero(buf)) {
            return Ok(Some(whole_file_torn(Damage::IncompleteHeader { len })));
        }
        return Err(Fatal { offset: 0, kind: Damage::IncompleteHeader { len } });
    };
    if found == expected {
        return Ok(None);
    }
    if is_last && all_zero(buf) {
        return Ok(Some(whole_file_torn(Damage::ZeroFill)));
    }
    let kind = match found.split_first_chunk::<6>() {
        Some((magic, version)) if *magic == MAGIC => {
            let version = version.first_chunk::<2>().map_or(0, |v| u16::from_le_bytes(*v));
            Damage::UnsupportedVersion { version }
        }
        _ => Damage::BadHeader,
    };
    Err(Fatal { offset: 0, kind })
}

/// Parses the record at `pos`, returning its payload range.
fn parse_record(buf: &[u8], pos: usize) -> Result<Range<usize>, Damage> {
    let rest = buf.get(pos..).unwrap_or_default();
    let truncated =
        |needed: usize| Damage::TruncatedRecord { needed: needed as u64, available: rest.len() as u64 };
    let Some((len_bytes, after_len)) = rest.split_first_chunk::<4>() else {
        return Err(truncated(RECORD_HEADER_LEN));
    };
    let Some((crc_bytes, after_header)) = after_len.split_first_chunk::<4>() else {
        return Err(truncated(RECORD_HEADER_LEN));
    };
    let length = u32::from_le_bytes(*len_bytes);
    let len = length as usize;
    if len == 0 || len > MAX_RECORD_LEN {
        return Err(Damage::InvalidLength { length });
    }
    let Some(payload) = after_header.get(..len) else {
        return Err(truncated(RECORD_HEADER_LEN + len));
    };
    let stored = u32::from_le_bytes(*crc_bytes);
    let computed = record_crc(*len_bytes, payload);
    if stored != computed {
        return Err(Damage::ChecksumMismatch { stored, computed });
    }
    let start = pos + RECORD_HEADER_LEN;
    Ok(start..start + len)
}

/// Decides whether damage at `pos` is a droppable torn tail or corruption.
fn classify_damage(
    buf: &[u8],
    pos: usize,
    kind: Damage,
    is_last: bool,
    mode: RecoveryMode,
) -> Result<TornTail, Fatal> {
    let rest = buf.get(pos..).unwrap_or_default();
    let kind = if all_zero(rest) { Damage::ZeroFill } else { kind };
    let fatal = |kind| Fatal { offset: pos as u64, kind };
    if !is_last {
        return Err(fatal(kind));
    }
    if kind != Damage::ZeroFill && mode == RecoveryMode::TolerateTornTail && valid_record_after(buf, pos + 1)
    {
        return Err(fatal(kind));
    }
    Ok(TornTail { offset: pos as u64, discarded_bytes: rest.len() as u64, reason: kind })
}

/// Checksummed bytes the search for a later valid record may spend. Real torn
/// tails are one unsynced write batch; if a damaged tail is so large and
/// length-plausible that the search runs out, recovery assumes valid data may
/// follow and refuses to drop it (the safe answer).
const SEARCH_BUDGET_BYTES: usize = 1 << 30;

/// Whether any offset at or after `start` holds a complete record with a
/// valid checksum, i.e. whether the damage is followed by real data.
fn valid_record_after(buf: &[u8], start: usize) -> bool {
    let mut budget = SEARCH_BUDGET_BYTES;
    for pos in start..buf.len().saturating_sub(RECORD_HEADER_LEN) {
        match parse_record(buf, pos) {
            Ok(_) => return true,
            Err(Damage::ChecksumMismatch { .. }) => {
                let len = buf
                    .get(pos..)
                    .and_then(|r| r.first_chunk::<4>())
                    .map_or(0, |l| u32::from_le_bytes(*l) as usize);
                budget = budget.saturating_sub(len);
                if budget == 0 {
                    return true;
                }
            }
            Err(_) => {}
        }
    }
    false
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}
