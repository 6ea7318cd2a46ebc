//! Parsing one segment's bytes into records, and the recovery policy that
//! decides whether damage is a torn tail (cut off), a damaged stretch
//! (skipped) or corruption (fatal).
//!
//! Pure functions over a byte slice: no IO, never panics, so it can be fuzzed
//! directly through [`scan_segment`].

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::{Corruption, Error, ParseError};
use crate::format::{HEADER_LEN, MAGIC, MAX_RECORD_LEN, RECORD_HEADER_LEN, header, record_crc};
use crate::resync::Resync;

/// How recovery treats damage: bytes that do not read as a record with a
/// valid checksum.
///
/// In every mode a *torn tail* of the last segment (damage with no valid
/// record after it: what a crash in the middle of a write leaves) is cut
/// off, and a segment header of a version this build does not read stops
/// the start. The modes differ in what they do with damage that valid
/// records follow, or that sits in a sealed segment (fsynced before the
/// next segment took writes, so it has no torn tail).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum RecoveryMode {
    /// Default. A damaged stretch is skipped and reading resumes at the
    /// next offset where a whole record verifies (RocksDB's
    /// `kSkipAnyCorruptedRecords`): one flipped byte loses the one record
    /// it hit, not the rest of the segment. Each skipped stretch is
    /// reported in [`Recovered`](crate::Recovered), counted in the
    /// metrics and logged with its segment and offset. The damaged record
    /// was lost either way; refusing to start would only add an outage.
    #[default]
    SkipDamaged,
    /// Strict: only a torn tail of the last segment is dropped; any other
    /// damage makes `open` fail with [`Error::Corruption`] naming file and
    /// offset (RocksDB's `kTolerateCorruptedTailRecords`), for an operator
    /// who wants to look at the files before anything is given up.
    TolerateTornTail,
    /// The last segment is cut at its first damage even if valid records
    /// follow (RocksDB's `kPointInTimeRecovery`); damage in a sealed
    /// segment is fatal. Keeps the log a prefix of what was written, at
    /// the price of every record after the damage.
    PointInTime,
}

impl fmt::Display for RecoveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecoveryMode::SkipDamaged => "skip-damaged",
            RecoveryMode::TolerateTornTail => "tolerate-torn-tail",
            RecoveryMode::PointInTime => "point-in-time",
        })
    }
}

impl FromStr for RecoveryMode {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "skip-damaged" => Ok(RecoveryMode::SkipDamaged),
            "tolerate-torn-tail" | "torn-tail" => Ok(RecoveryMode::TolerateTornTail),
            "point-in-time" => Ok(RecoveryMode::PointInTime),
            _ => Err(ParseError {
                what: "WAL recovery mode",
                input: s.to_owned(),
                expected: "\"skip-damaged\" (default), \"tolerate-torn-tail\" or \"point-in-time\"",
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

/// A damaged stretch that [`RecoveryMode::SkipDamaged`] skipped: it held
/// at least part of one record (or garbage between records), and reading
/// resumed after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Byte offset of the damage in the segment file.
    pub offset: u64,
    /// Bytes skipped, up to the next valid record or the end of the file.
    pub bytes: u64,
    /// What was found at `offset`.
    pub reason: Damage,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skipped {} damaged bytes at byte {}: {}", self.bytes, self.offset, self.reason)
    }
}

/// One segment read back by [`scan_segment`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScannedSegment {
    /// Record payloads in append order.
    pub records: Vec<Bytes>,
    /// What was cut off the end, for the last segment.
    pub torn_tail: Option<TornTail>,
    /// Damaged stretches skipped ([`RecoveryMode::SkipDamaged`] only).
    pub skipped: Vec<Skipped>,
}

/// A successful scan: record payload ranges into the scanned buffer.
#[derive(Debug)]
pub(crate) struct Scanned {
    pub(crate) records: Vec<Range<usize>>,
    pub(crate) torn: Option<TornTail>,
    pub(crate) skipped: Vec<Skipped>,
}

/// Damage that recovery may not drop, at a byte offset.
#[derive(Debug)]
pub(crate) struct Fatal {
    pub(crate) offset: u64,
    pub(crate) kind: Damage,
}

/// Reads every record of a segment under `mode`.
///
/// For fuzzing and tools: never panics on any input, and its work is
/// O(n) in the input length whatever the damage. `is_last` says
/// whether this is the newest segment, the only one allowed a torn tail.
/// Corruption comes back as [`Error::Corruption`] without a file name.
pub fn scan_segment(bytes: &[u8], is_last: bool, mode: RecoveryMode) -> Result<ScannedSegment, Error> {
    match scan(bytes, is_last, mode) {
        Ok(scanned) => {
            let records = scanned
                .records
                .into_iter()
                .map(|r| Bytes::copy_from_slice(bytes.get(r).unwrap_or_default()))
                .collect();
            Ok(ScannedSegment { records, torn_tail: scanned.torn, skipped: scanned.skipped })
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
    let mut resync = Resync::new(buf);
    let mut records = Vec::new();
    let mut skipped = Vec::new();
    let mut pos = match check_header(buf, is_last) {
        Ok(None) => HEADER_LEN,
        Ok(Some(torn)) => return Ok(Scanned { records, torn: Some(torn), skipped }),
        Err(fatal) if mode == RecoveryMode::SkipDamaged => match skip_header(buf, &fatal, &mut resync) {
            Some(skip) => {
                let next = skip.bytes as usize;
                skipped.push(skip);
                next
            }
            None => return Err(fatal),
        },
        Err(fatal) => return Err(fatal),
    };
    while pos < buf.len() {
        let kind = match parse_record(buf, pos) {
            Ok(range) => {
                pos = range.end;
                records.push(range);
                continue;
            }
            Err(kind) => kind,
        };
        let rest = buf.get(pos..).unwrap_or_default();
        let kind = if all_zero(rest) { Damage::ZeroFill } else { kind };
        // Zero bytes to the end hold no record; anything else is searched.
        let mut next = || if kind == Damage::ZeroFill { None } else { resync.next_record(pos + 1) };
        let torn =
            |kind: Damage| TornTail { offset: pos as u64, discarded_bytes: rest.len() as u64, reason: kind };
        match mode {
            RecoveryMode::SkipDamaged => match next() {
                Some(next) => {
                    skipped.push(Skipped { offset: pos as u64, bytes: (next - pos) as u64, reason: kind });
                    pos = next;
                }
                None if is_last => return Ok(Scanned { records, torn: Some(torn(kind)), skipped }),
                None => {
                    skipped.push(Skipped { offset: pos as u64, bytes: rest.len() as u64, reason: kind });
                    break;
                }
            },
            RecoveryMode::TolerateTornTail if is_last && next().is_none() => {
                return Ok(Scanned { records, torn: Some(torn(kind)), skipped });
            }
            RecoveryMode::PointInTime if is_last => {
                return Ok(Scanned { records, torn: Some(torn(kind)), skipped });
            }
            _ => return Err(Fatal { offset: pos as u64, kind }),
        }
    }
    Ok(Scanned { records, torn: None, skipped })
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

/// In [`RecoveryMode::SkipDamaged`], what to skip when the header is
/// damaged: up to the first valid record, or the whole file when it is
/// too short or zero bytes (it holds no record). A version this build does
/// not know is never skipped (its records may look different), nor a file
/// with a foreign header and no record of ours in it.
fn skip_header(buf: &[u8], fatal: &Fatal, resync: &mut Resync<'_>) -> Option<Skipped> {
    if matches!(fatal.kind, Damage::UnsupportedVersion { .. }) {
        return None;
    }
    let to = match resync.next_record(HEADER_LEN) {
        Some(next) => next,
        None if buf.len() < HEADER_LEN || all_zero(buf) => buf.len(),
        None => return None,
    };
    Some(Skipped { offset: 0, bytes: to as u64, reason: fatal.kind.clone() })
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

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}
