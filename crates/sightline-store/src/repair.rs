//! Checking and repairing a data directory offline: what `sightline
//! verify` and `sightline repair` run.
//!
//! [`verify`] reads everything and changes nothing: the manifest and the
//! previous one, every block byte against its checksums (blocks written
//! before checksums are decoded whole instead), and the WAL. It may run
//! beside a live server (blocks are immutable; a block a compaction
//! removed meanwhile shows as missing).
//!
//! [`repair`] takes the data directory's lock (the server must be
//! stopped) and leaves a store that starts cleanly:
//! * a damaged or missing `manifest.json` is moved to `quarantine/` and
//!   rebuilt from the blocks present, with WAL replay starting where
//!   `manifest.json.prev` said (or at the first segment: replaying a
//!   segment twice only duplicates spans, which queries and compaction
//!   deduplicate; starting too late would lose them);
//! * a damaged block is moved to `quarantine/<id>/` after every trace that
//!   still reads back verified is copied into a new block `<id>-salvaged`
//!   (see [`sightline_block::salvage`]); the traces lost are listed in
//!   `quarantine/<id>/lost-traces.txt` and summed up in the report with the
//!   block's time range;
//! * a listed block whose folder is gone is dropped from the manifest.
//!
//! Both work on the local layout (`<data dir>/manifest.json`,
//! `<data dir>/blocks/<id>/`); nothing is ever deleted, only moved.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sightline_block::{Block, BlockMeta, Salvaged};
use sightline_wal::{RecoveryMode, SegmentId, Skipped, TornTail};

use crate::blockset::manifest::{self, MANIFEST_FILE, ManifestState, PREVIOUS_FILE};
use crate::fsutil::sync_dir;
use crate::store::{WAL_DIR, lock_dir};
use crate::{BlockOptions, Error};

/// Folder, inside the data directory, where repair moves what it sets
/// aside.
pub const QUARANTINE_DIR: &str = "quarantine";
const BLOCKS_DIR: &str = "blocks";

/// A manifest file as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestCheck {
    /// It reads and its checksum (if it has one) verifies.
    Intact(ManifestState),
    /// There is no such file.
    Missing,
    /// It cannot be used, and why.
    Damaged(String),
}

/// A block as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockState {
    /// Every byte verifies (`checksummed`), or, for a block written before
    /// blocks had checksums, every row decodes.
    Intact {
        /// Whether the block has checksums.
        checksummed: bool,
    },
    /// What is wrong.
    Damaged(String),
    /// The manifest lists it but its folder is gone.
    Missing,
}

/// One block's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockCheck {
    /// The block id (its folder name).
    pub id: String,
    /// What was found.
    pub state: BlockState,
    /// Its `meta.json`, when that verifies.
    pub meta: Option<BlockMeta>,
}

/// What was found in the WAL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WalCheck {
    /// Segment files.
    pub segments: usize,
    /// Records that verify.
    pub records: usize,
    /// Damaged stretches a start skips, by segment.
    pub skipped: Vec<(SegmentId, Skipped)>,
    /// An interrupted last write a start cuts off (normal after a crash).
    pub torn_tail: Option<(SegmentId, TornTail)>,
    /// Why the WAL could not be read at all (a start refuses it too).
    pub unreadable: Option<String>,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The data directory.
    pub data_dir: PathBuf,
    /// `manifest.json`.
    pub manifest: ManifestCheck,
    /// `manifest.json.prev`, the manifest before the last change.
    pub previous: ManifestCheck,
    /// The blocks the manifest lists (every block present when the
    /// manifest cannot be read).
    pub blocks: Vec<BlockCheck>,
    /// Block folders the manifest does not list: unfinished writes and
    /// interrupted deletions, which a start deletes.
    pub unlisted: Vec<String>,
    /// The WAL.
    pub wal: WalCheck,
}

impl VerifyReport {
    /// Places where data is damaged or missing. Zero means intact.
    pub fn damage_count(&self) -> usize {
        let manifest = match &self.manifest {
            ManifestCheck::Damaged(_) => 1,
            // No manifest is damage only when there are blocks it lost.
            ManifestCheck::Missing => usize::from(!self.blocks.is_empty()),
            ManifestCheck::Intact(_) => 0,
        };
        let blocks = self.blocks.iter().filter(|b| !matches!(b.state, BlockState::Intact { .. })).count();
        manifest + blocks + self.wal.skipped.len() + usize::from(self.wal.unreadable.is_some())
    }
}

/// Checks the data directory without changing it. Fails only when it
/// cannot look (the directory is unreadable); damage is in the report.
pub fn verify(data_dir: &Path) -> Result<VerifyReport, Error> {
    fs::read_dir(data_dir).map_err(|e| Error::io(data_dir, e))?;
    let manifest = check_manifest(&data_dir.join(MANIFEST_FILE))?;
    let previous = check_manifest(&data_dir.join(PREVIOUS_FILE))?;
    let present = present_blocks(&data_dir.join(BLOCKS_DIR))?;
    let listed: Vec<String> = match &manifest {
        ManifestCheck::Intact(state) => state.blocks.clone(),
        _ => present.clone(),
    };
    let unlisted = present.iter().filter(|id| !listed.contains(id)).cloned().collect();
    let blocks = listed.iter().map(|id| check_block(&data_dir.join(BLOCKS_DIR), id)).collect();
    Ok(VerifyReport {
        data_dir: data_dir.to_owned(),
        manifest,
        previous,
        blocks,
        unlisted,
        wal: check_wal(data_dir),
    })
}

fn check_manifest(path: &Path) -> Result<ManifestCheck, Error> {
    Ok(match manifest::read_file(path)? {
        None => ManifestCheck::Missing,
        Some(Ok(state)) => ManifestCheck::Intact(state),
        Some(Err(why)) => ManifestCheck::Damaged(why),
    })
}

/// Complete block folders under `blocks/`, sorted.
fn present_blocks(blocks: &Path) -> Result<Vec<String>, Error> {
    let entries = match fs::read_dir(blocks) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(blocks, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(blocks, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".tmp") && entry.path().is_dir() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn check_block(blocks: &Path, id: &str) -> BlockCheck {
    let dir = blocks.join(id);
    let (state, meta) = match Block::open(&dir) {
        Err(_) if !dir.exists() => (BlockState::Missing, None),
        Err(e) => (BlockState::Damaged(e.to_string()), None),
        Ok(block) => {
            let meta = Some(block.meta().clone());
            let state = match block.verify() {
                Ok(ranges) if ranges.is_empty() => BlockState::Intact { checksummed: block.is_checksummed() },
                Ok(ranges) => {
                    let list: Vec<String> =
                        ranges.iter().map(|r| format!("{}..{}", r.start, r.end)).collect();
                    BlockState::Damaged(format!(
                        "checksum mismatch in data.parquet bytes {}",
                        list.join(", ")
                    ))
                }
                Err(e) => BlockState::Damaged(e.to_string()),
            };
            (state, meta)
        }
    };
    BlockCheck { id: id.to_owned(), state, meta }
}

fn check_wal(data_dir: &Path) -> WalCheck {
    let dir = data_dir.join(WAL_DIR);
    if !dir.is_dir() {
        return WalCheck::default();
    }
    match sightline_wal::read_dir(&dir, RecoveryMode::SkipDamaged) {
        Ok(rec) => WalCheck {
            segments: rec.segments.len(),
            records: rec.record_count(),
            skipped: rec
                .segments
                .iter()
                .flat_map(|s| s.skipped.iter().map(move |k| (s.id, k.clone())))
                .collect(),
            torn_tail: rec.torn_segment().zip(rec.torn_tail.clone()),
            unreadable: None,
        },
        Err(e) => WalCheck { unreadable: Some(e.to_string()), ..WalCheck::default() },
    }
}

/// A block repair set aside, and what was lost with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The block id.
    pub id: String,
    /// Where it was moved.
    pub moved_to: PathBuf,
    /// Why.
    pub why: String,
    /// Its `meta.json`, when that verified: the block's time range and
    /// counts.
    pub meta: Option<BlockMeta>,
    /// What salvage saved and lost; `None` when nothing could be read (a
    /// damaged footer or `meta.json`): then every trace of the block is
    /// lost.
    pub salvaged: Option<Salvaged>,
    /// The new block holding what was saved, if any.
    pub salvaged_id: Option<String>,
    /// Lost traces whose ids could not be read (their `trace_id` pages are
    /// damaged): the block's trace count less those saved and those
    /// listed. 0 when `meta.json` is unreadable (then unknown).
    pub unknown_lost: u64,
    /// The file listing the lost trace ids, if any.
    pub lost_list: Option<PathBuf>,
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Why the manifest was rebuilt from the blocks present, if it was.
    pub manifest_rebuilt: Option<String>,
    /// Where the unusable manifest was moved.
    pub manifest_moved_to: Option<PathBuf>,
    /// Damaged blocks set aside.
    pub quarantined: Vec<Quarantined>,
    /// Listed blocks whose folders were gone, dropped from the manifest.
    pub dropped_missing: Vec<String>,
    /// Blocks the new manifest lists.
    pub kept: Vec<String>,
    /// Whether a new manifest was written.
    pub changed: bool,
    /// Where WAL replay starts in the new manifest.
    pub wal_replay_from: u64,
}

/// Repairs the data directory (see the module docs). Holds its lock, so
/// it refuses to run beside a server.
pub fn repair(data_dir: &Path) -> Result<RepairReport, Error> {
    let _lock = lock_dir(data_dir)?;
    let blocks_dir = data_dir.join(BLOCKS_DIR);
    let quarantine = data_dir.join(QUARANTINE_DIR);
    let present = present_blocks(&blocks_dir)?;
    let manifest_path = data_dir.join(MANIFEST_FILE);

    let mut report = RepairReport {
        data_dir: data_dir.to_owned(),
        manifest_rebuilt: None,
        manifest_moved_to: None,
        quarantined: Vec::new(),
        dropped_missing: Vec::new(),
        kept: Vec::new(),
        changed: false,
        wal_replay_from: 0,
    };
    let (mut state, candidates) = match check_manifest(&manifest_path)? {
        ManifestCheck::Intact(state) => {
            let listed = state.blocks.clone();
            (state, listed)
        }
        ManifestCheck::Missing if present.is_empty() => {
            report.changed = false;
            return Ok(report);
        }
        found => {
            let why = match found {
                ManifestCheck::Damaged(why) => format!("manifest.json is damaged: {why}"),
                _ => "manifest.json is missing".to_owned(),
            };
            // Move the bad manifest away first: writing the new one then
            // leaves manifest.json.prev (the last good one) as it is.
            if manifest_path.exists() {
                let to = free_name(&quarantine, MANIFEST_FILE)?;
                move_into(&manifest_path, &to)?;
                report.manifest_moved_to = Some(to);
            }
            let previous = match check_manifest(&data_dir.join(PREVIOUS_FILE))? {
                ManifestCheck::Intact(prev) => prev,
                _ => ManifestState::default(),
            };
            report.manifest_rebuilt = Some(why);
            report.changed = true;
            let state = ManifestState { blocks: Vec::new(), ..previous };
            (state, present.clone())
        }
    };

    let mut kept = Vec::with_capacity(candidates.len());
    for id in &candidates {
        let check = check_block(&blocks_dir, id);
        match check.state {
            BlockState::Intact { .. } => kept.push(id.clone()),
            BlockState::Missing => {
                report.dropped_missing.push(id.clone());
                report.changed = true;
            }
            BlockState::Damaged(why) => {
                let q = quarantine_block(&blocks_dir, &quarantine, id, why, check.meta)?;
                if let Some(saved) = &q.salvaged_id {
                    kept.push(saved.clone());
                }
                report.quarantined.push(q);
                report.changed = true;
            }
        }
    }
    if report.changed {
        state.blocks = kept.clone();
        state.generation += 1;
        manifest::store(data_dir, &state)?;
    }
    report.kept = kept;
    report.wal_replay_from = state.wal_replay_from;
    Ok(report)
}

/// Salvages what reads from block `id`, moves it into quarantine and
/// writes the list of lost traces there.
fn quarantine_block(
    blocks_dir: &Path,
    quarantine: &Path,
    id: &str,
    why: String,
    meta: Option<BlockMeta>,
) -> Result<Quarantined, Error> {
    let salvaged_id = format!("{id}-salvaged");
    // A leftover of an interrupted repair: not listed, so not live.
    let _ = fs::remove_dir_all(blocks_dir.join(&salvaged_id));
    let salvaged = match Block::open(&blocks_dir.join(id)) {
        Ok(block) => {
            let options =
                BlockOptions { compaction_level: block.meta().compaction_level, ..BlockOptions::default() };
            Some(sightline_block::salvage(&block, blocks_dir, &salvaged_id, &options)?)
        }
        Err(_) => None,
    };
    let moved_to = free_name(quarantine, id)?;
    move_into(&blocks_dir.join(id), &moved_to)?;
    let lost_list = match &salvaged {
        Some(s) if !s.lost.is_empty() || !s.unreadable.is_empty() => {
            let path = moved_to.join("lost-traces.txt");
            write_lost_list(&path, id, s)?;
            Some(path)
        }
        _ => None,
    };
    let saved_traces = salvaged.as_ref().and_then(|s| s.block.as_ref()).map_or(0, |m| m.trace_count);
    let listed = salvaged.as_ref().map_or(0, |s| s.lost.len() as u64);
    let unknown_lost = match (&meta, &salvaged) {
        (Some(m), Some(s)) if !s.unreadable.is_empty() => m.trace_count.saturating_sub(saved_traces + listed),
        _ => 0,
    };
    let salvaged_id = salvaged.as_ref().and_then(|s| s.block.as_ref()).map(|_| salvaged_id);
    Ok(Quarantined { id: id.to_owned(), moved_to, why, meta, salvaged, salvaged_id, unknown_lost, lost_list })
}

fn write_lost_list(path: &Path, id: &str, s: &Salvaged) -> Result<(), Error> {
    let mut text = format!(
        "# Traces of block {id} with spans that could not be read (one trace id per line).\n\
         # Spans of these traces in other blocks are not affected.\n"
    );
    for u in &s.unreadable {
        let range = u.trace_ids.map_or("unknown".to_owned(), |(lo, hi)| format!("{lo}..={hi}"));
        text.push_str(&format!(
            "# row group {}: the trace ids of its {} spans could not be read; trace id range {range}\n",
            u.row_group, u.rows
        ));
    }
    for t in &s.lost {
        text.push_str(&format!("{t}\n"));
    }
    let mut file = fs::File::create(path).map_err(|e| Error::io(path, e))?;
    file.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// `<dir>/<name>`, or `<name>.2`, `.3`… if taken; creates `dir`.
fn free_name(dir: &Path, name: &str) -> Result<PathBuf, Error> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut candidate = dir.join(name);
    let mut n = 1;
    while candidate.exists() {
        n += 1;
        candidate = dir.join(format!("{name}.{n}"));
    }
    Ok(candidate)
}

/// Renames `from` to `to`, durably (both folders fsynced).
fn move_into(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(|e| Error::io(to, e))?;
    // IMPORTANT: both folders, so the move survives a crash as a move.
    if let Some(parent) = to.parent() {
        sync_dir(parent)?;
    }
    if let Some(parent) = from.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn describe_manifest(check: &ManifestCheck) -> String {
    match check {
        ManifestCheck::Intact(s) => format!(
            "intact ({} blocks, WAL replay from segment {}, generation {})",
            s.blocks.len(),
            s.wal_replay_from,
            s.generation
        ),
        ManifestCheck::Missing => "missing".to_owned(),
        ManifestCheck::Damaged(why) => format!("DAMAGED: {why}"),
    }
}

fn time_range(meta: &BlockMeta) -> String {
    format!(
        "{} spans in {} traces starting {}..={} ns since the Unix epoch",
        meta.span_count, meta.trace_count, meta.min_start_unix_nanos, meta.max_start_unix_nanos
    )
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data directory {}", self.data_dir.display())?;
        writeln!(f, "manifest.json: {}", describe_manifest(&self.manifest))?;
        writeln!(f, "manifest.json.prev: {}", describe_manifest(&self.previous))?;
        if matches!(self.manifest, ManifestCheck::Missing) && !self.blocks.is_empty() {
            writeln!(
                f,
                "  no manifest but {} blocks present: a start refuses; `sightline repair` rebuilds it",
                self.blocks.len()
            )?;
        }
        for b in &self.blocks {
            let state = match &b.state {
                BlockState::Intact { checksummed: true } => "intact".to_owned(),
                BlockState::Intact { checksummed: false } => {
                    "intact (no checksums: written before blocks had them; every row decoded)".to_owned()
                }
                BlockState::Missing => "MISSING (listed, folder gone)".to_owned(),
                BlockState::Damaged(why) => format!("DAMAGED: {why}"),
            };
            writeln!(f, "block {}: {state}", b.id)?;
        }
        if !self.unlisted.is_empty() {
            writeln!(
                f,
                "{} block folders not in the manifest (unfinished writes or interrupted deletions; a start deletes them): {}",
                self.unlisted.len(),
                self.unlisted.join(", ")
            )?;
        }
        let w = &self.wal;
        match &w.unreadable {
            Some(why) => writeln!(f, "WAL: UNREADABLE: {why}")?,
            None => writeln!(f, "WAL: {} segments, {} records that verify", w.segments, w.records)?,
        }
        for (segment, skip) in &w.skipped {
            writeln!(
                f,
                "  segment {segment}: DAMAGED: {skip} (a start skips it, keeping the records after it)"
            )?;
        }
        if let Some((segment, torn)) = &w.torn_tail {
            writeln!(f, "  segment {segment}: {torn} (an interrupted write; a start cuts it off)")?;
        }
        match self.damage_count() {
            0 => write!(f, "no damage found"),
            n => write!(
                f,
                "damage found in {n} place(s): `sightline repair` sets damaged blocks aside and rebuilds the manifest"
            ),
        }
    }
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data directory {}", self.data_dir.display())?;
        if let Some(why) = &self.manifest_rebuilt {
            writeln!(f, "manifest rebuilt from the blocks present ({why})")?;
            if let Some(to) = &self.manifest_moved_to {
                writeln!(f, "  the old manifest was moved to {}", to.display())?;
            }
            writeln!(
                f,
                "  WAL replay starts at segment {} (from manifest.json.prev, or the first segment): \
                 spans replayed twice and blocks a compaction had replaced are deduplicated by queries and the next compaction",
                self.wal_replay_from
            )?;
        }
        for q in &self.quarantined {
            writeln!(f, "block {} set aside in {}: {}", q.id, q.moved_to.display(), q.why)?;
            let range = q
                .meta
                .as_ref()
                .map_or("its contents are unknown (meta.json unreadable)".to_owned(), time_range);
            match (&q.salvaged, &q.salvaged_id) {
                (None, _) => {
                    writeln!(f, "  nothing could be read (damaged footer or meta.json): lost all {range}")?
                }
                (Some(s), saved) => {
                    let saved = saved
                        .as_deref()
                        .map_or("nothing saved".to_owned(), |id| format!("saved into block {id}"));
                    writeln!(f, "  {saved}; lost {} traces listed by id", s.lost.len())?;
                    for u in &s.unreadable {
                        let ids = u.trace_ids.map_or("unknown".to_owned(), |(lo, hi)| format!("{lo}..={hi}"));
                        writeln!(
                            f,
                            "  and the {} spans of row group {} whose trace ids are unreadable (ids in {ids})",
                            u.rows, u.row_group
                        )?;
                    }
                    if q.unknown_lost > 0 {
                        writeln!(f, "  {} more traces lost whose ids could not be read", q.unknown_lost)?;
                    }
                    if let Some(list) = &q.lost_list {
                        writeln!(f, "  lost trace ids: {}", list.display())?;
                    }
                    writeln!(f, "  the block held {range}")?;
                }
            }
        }
        for id in &self.dropped_missing {
            writeln!(
                f,
                "block {id}: listed but its folder is gone; dropped from the manifest (its traces are lost)"
            )?;
        }
        if self.changed {
            write!(f, "new manifest written: {} blocks", self.kept.len())
        } else {
            write!(f, "nothing to repair")
        }
    }
}
