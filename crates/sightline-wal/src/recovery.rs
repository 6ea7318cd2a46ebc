//! Reading a WAL directory back, repairing a torn tail, and the file-system
//! steps (create, sync, delete) whose ordering the durability promise rests on.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Corruption, Error};
use crate::format::{FileName, HEADER_LEN, SegmentId, header, parse_file_name, segment_file_name};
use crate::scan::{RecoveryMode, Skipped, TornTail, scan};

/// Everything read back from a WAL directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Segments in id order, each with its records in append order.
    pub segments: Vec<RecoveredSegment>,
    /// What was cut off the end of the last segment, if anything. It always
    /// belongs to the last entry of `segments`.
    pub torn_tail: Option<TornTail>,
}

impl Recovered {
    /// The segment the torn tail was cut from.
    pub fn torn_segment(&self) -> Option<SegmentId> {
        self.torn_tail.as_ref()?;
        self.segments.last().map(|s| s.id)
    }

    /// Total records across all segments.
    pub fn record_count(&self) -> usize {
        self.segments.iter().map(|s| s.records.len()).sum()
    }

    /// Damaged stretches skipped across all segments.
    pub fn skipped_count(&self) -> usize {
        self.segments.iter().map(|s| s.skipped.len()).sum()
    }

    /// Bytes in damaged stretches skipped across all segments.
    pub fn skipped_bytes(&self) -> u64 {
        self.segments.iter().flat_map(|s| &s.skipped).map(|s| s.bytes).sum()
    }
}

/// One segment's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredSegment {
    /// The segment.
    pub id: SegmentId,
    /// Record payloads in append order.
    pub records: Vec<Bytes>,
    /// Damaged stretches skipped in this segment, in file order
    /// ([`RecoveryMode::SkipDamaged`] only).
    pub skipped: Vec<Skipped>,
}

/// Reads every segment in `dir` under `mode` without changing anything: a
/// torn tail is reported but not truncated, damaged stretches are reported
/// but not logged. Safe to call while a [`crate::Wal`] appends to the same
/// directory (the active segment is the last one and may show a torn tail
/// from a write in progress).
pub fn read_dir(dir: &Path, mode: RecoveryMode) -> Result<Recovered, Error> {
    scan_dir(dir, mode).map(|scan| scan.recovered)
}

/// Reads the records of one sealed segment, e.g. for a queue that consumes
/// segments in order while new records go to a later one. Damaged records
/// are skipped as [`RecoveryMode::SkipDamaged`] does, with a warning; a
/// segment that cannot be read at all (a foreign header) is an error.
pub fn read_segment(dir: &Path, id: SegmentId) -> Result<Vec<Bytes>, Error> {
    let path = dir.join(crate::format::segment_file_name(id));
    let bytes = std::fs::read(&path).map_err(|source| Error::io("read segment", &path, source))?;
    let bytes = Bytes::from(bytes);
    match crate::scan::scan(&bytes, false, RecoveryMode::SkipDamaged) {
        Ok(scanned) => {
            for skip in &scanned.skipped {
                log_skip(&path, skip);
            }
            Ok(scanned.records.into_iter().map(|r| bytes.slice(r)).collect())
        }
        Err(fatal) => Err(Error::Corruption(Box::new(crate::error::Corruption {
            path: Some(path),
            segment: Some(id),
            offset: fatal.offset,
            kind: fatal.kind,
        }))),
    }
}

/// The result of scanning a directory, with what `open` needs to repair it.
#[derive(Debug)]
pub(crate) struct DirScan {
    pub(crate) recovered: Recovered,
    /// Path of the last segment (the one a torn tail belongs to).
    pub(crate) last_path: Option<PathBuf>,
    /// Bytes in segment files once a torn tail is cut off.
    pub(crate) disk_bytes: u64,
}

/// Lists segment files in id order.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<(SegmentId, PathBuf)>, Error> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        match parse_file_name(&name) {
            FileName::Segment(id) => {
                let file_type = entry.file_type().map_err(|e| Error::io("stat", &path, e))?;
                if file_type.is_file() {
                    segments.push((id, path));
                }
            }
            FileName::Malformed => return Err(Error::InvalidFileName { path }),
            FileName::Other => {}
        }
    }
    segments.sort_unstable_by_key(|(id, _)| *id);
    Ok(segments)
}

/// Reads and scans every segment in `dir`.
pub(crate) fn scan_dir(dir: &Path, mode: RecoveryMode) -> Result<DirScan, Error> {
    let files = list_segments(dir)?;
    let mut recovered = Recovered::default();
    let mut disk_bytes = 0u64;
    let last_index = files.len().saturating_sub(1);
    for (index, (id, path)) in files.iter().enumerate() {
        let is_last = index == last_index;
        let data = Bytes::from(fs::read(path).map_err(|e| Error::io("read segment", path, e))?);
        let scanned = scan(&data, is_last, mode).map_err(|fatal| {
            Error::Corruption(Box::new(Corruption {
                path: Some(path.clone()),
                segment: Some(*id),
                offset: fatal.offset,
                kind: fatal.kind,
            }))
        })?;
        disk_bytes += match &scanned.torn {
            // A torn header is rewritten, so the file keeps a header's length.
            Some(torn) if torn.offset < HEADER_LEN as u64 => HEADER_LEN as u64,
            Some(torn) => torn.offset,
            None => data.len() as u64,
        };
        let records = scanned.records.into_iter().map(|r| data.slice(r)).collect();
        recovered.segments.push(RecoveredSegment { id: *id, records, skipped: scanned.skipped });
        if scanned.torn.is_some() {
            recovered.torn_tail = scanned.torn;
        }
    }
    Ok(DirScan { recovered, last_path: files.last().map(|(_, p)| p.clone()), disk_bytes })
}

/// The log line for a skipped stretch: one per stretch, never per record.
pub(crate) fn log_skip(path: &Path, skip: &Skipped) {
    tracing::warn!(
        segment = %path.display(),
        offset = skip.offset,
        bytes = skip.bytes,
        reason = %skip.reason,
        "WAL recovery skipped a damaged stretch; the records in it are lost, later records are kept"
    );
}

/// Cuts a torn tail off the last segment so later appends (to a new segment)
/// never sit behind garbage, and the next recovery sees a clean, sealed file.
pub(crate) fn repair_torn_tail(path: &Path, torn: &TornTail) -> Result<(), Error> {
    let mut file =
        File::options().write(true).open(path).map_err(|e| Error::io("open torn segment", path, e))?;
    if torn.offset < HEADER_LEN as u64 {
        // The crash hit while the segment was created: give it a whole header
        // so it reads as an empty segment once it is no longer the last one.
        file.set_len(0).map_err(|e| Error::io("truncate torn segment", path, e))?;
        file.write_all(&header()).map_err(|e| Error::io("rewrite segment header", path, e))?;
    } else {
        file.set_len(torn.offset).map_err(|e| Error::io("truncate torn segment", path, e))?;
    }
    // IMPORTANT: fsync the repaired segment before a newer segment is created;
    // otherwise a crash could leave the garbage in a segment that is no longer
    // the last one, where it would read as corruption.
    file.sync_all().map_err(|e| Error::io("fsync repaired segment", path, e))
}

/// Creates segment `id` in `dir` with its header, durably.
pub(crate) fn create_segment(dir: &Path, id: SegmentId) -> Result<(File, PathBuf), Error> {
    let path = dir.join(segment_file_name(id));
    // `create_new`: never reuse (and so truncate) an existing segment.
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::io("create segment", &path, e))?;
    file.write_all(&header()).map_err(|e| Error::io("write segment header", &path, e))?;
    // IMPORTANT: fsync the file so the header is on disk before any record
    // written after it is acknowledged.
    file.sync_all().map_err(|e| Error::io("fsync new segment", &path, e))?;
    // IMPORTANT: fsync the directory so the new file's name survives a crash;
    // a synced file whose directory entry is lost is lost with its records.
    sync_dir(dir)?;
    Ok((file, path))
}

/// Deletes the listed segments, then fsyncs the directory. Returns the number
/// of bytes freed.
pub(crate) fn delete_segments(dir: &Path, paths: &[PathBuf]) -> Result<u64, Error> {
    let mut freed = 0;
    for path in paths {
        let len = fs::metadata(path).map_err(|e| Error::io("stat segment", path, e))?.len();
        fs::remove_file(path).map_err(|e| Error::io("delete segment", path, e))?;
        freed += len;
    }
    if !paths.is_empty() {
        // IMPORTANT: fsync the directory so the deletions are durable; the
        // caller may discard the data these segments covered.
        sync_dir(dir)?;
    }
    Ok(freed)
}

/// Fsyncs a directory so entries created, renamed or removed in it persist.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("fsync directory", dir, e))
}
