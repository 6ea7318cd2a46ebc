//! `sightline verify` and `sightline repair` for a log store folder
//! (`<data dir>/logs`, and each tenant's): the manifest, every byte of
//! every listed block against its checksums, the word index, and the WAL.
//! Repair moves damaged blocks to `quarantine/` and drops them from the
//! manifest (a damaged manifest is rebuilt from the blocks that verify);
//! the records of a quarantined block are lost, and the report says which
//! time range and services they covered.

use std::fmt;
use std::path::{Path, PathBuf};

use sightline_store::{BlockStorage as _, LocalFolder, ManifestState};
use sightline_wal::RecoveryMode;

use crate::Error;
use crate::block::LogBlock;
use crate::store::WAL_DIR;

/// Bytes checked per read while verifying a block's data file.
const VERIFY_STEP: u64 = 1 << 20;
/// Where repair moves damaged blocks, inside the log store's folder.
pub const QUARANTINE_DIR: &str = "quarantine";

/// One block's check: `None` when intact, else what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogBlockCheck {
    /// The block id.
    pub id: String,
    /// What is wrong, if anything.
    pub damage: Option<String>,
    /// What it holds, when its `meta.json` reads: (records, first and last
    /// time in ns, services).
    pub holds: Option<(u64, u64, u64, Vec<String>)>,
}

/// What [`verify`] found in a log store folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerifyReport {
    /// The log store's folder.
    pub dir: PathBuf,
    /// Why the manifest does not read, if it does not.
    pub manifest_damage: Option<String>,
    /// The listed blocks (every block present when the manifest is damaged).
    pub blocks: Vec<LogBlockCheck>,
    /// WAL segments and records that verify.
    pub wal_records: usize,
    /// Damaged WAL stretches a start skips (segment, byte offset).
    pub wal_skipped: Vec<(u64, u64)>,
    /// Why the WAL cannot be read at all.
    pub wal_unreadable: Option<String>,
}

impl LogVerifyReport {
    /// Places where data is damaged. Zero means intact.
    pub fn damage_count(&self) -> usize {
        usize::from(self.manifest_damage.is_some())
            + self.blocks.iter().filter(|b| b.damage.is_some()).count()
            + self.wal_skipped.len()
            + usize::from(self.wal_unreadable.is_some())
    }
}

/// Checks the log store in `dir` without changing it.
pub fn verify(dir: &Path) -> Result<LogVerifyReport, Error> {
    let folder = LocalFolder::new(dir)?;
    let present = folder.list()?;
    let (manifest_damage, listed) = match folder.read_manifest() {
        Ok(Some((state, _))) => (None, state.blocks),
        Ok(None) => (None, present.clone()),
        Err(e) => (Some(e.to_string()), present.clone()),
    };
    let blocks = listed.iter().map(|id| check_block(&folder.staging_dir().join(id), id)).collect();
    let mut report = LogVerifyReport {
        dir: dir.to_owned(),
        manifest_damage,
        blocks,
        wal_records: 0,
        wal_skipped: Vec::new(),
        wal_unreadable: None,
    };
    let wal = dir.join(WAL_DIR);
    if wal.is_dir() {
        match sightline_wal::read_dir(&wal, RecoveryMode::SkipDamaged) {
            Ok(rec) => {
                report.wal_records = rec.record_count();
                report.wal_skipped = rec
                    .segments
                    .iter()
                    .flat_map(|s| s.skipped.iter().map(move |k| (s.id.0, k.offset)))
                    .collect();
            }
            Err(e) => report.wal_unreadable = Some(e.to_string()),
        }
    }
    Ok(report)
}

fn check_block(dir: &Path, id: &str) -> LogBlockCheck {
    let mut check = LogBlockCheck { id: id.to_owned(), damage: None, holds: None };
    if !dir.is_dir() {
        check.damage = Some("listed in the manifest but its folder is missing".to_owned());
        return check;
    }
    if let Ok((m, _)) = crate::block::read::read_meta(dir) {
        check.holds =
            Some((m.record_count, m.min_time_unix_nanos, m.max_time_unix_nanos, m.services.clone()));
    }
    let block = match LogBlock::open(dir) {
        Ok(b) => b,
        Err(e) => {
            check.damage = Some(e.to_string());
            return check;
        }
    };
    let m = block.meta();
    let mut bad = Vec::new();
    let mut at = 0;
    while at < m.size_bytes {
        let len = VERIFY_STEP.min(m.size_bytes - at);
        if let Err(e) = block.read_range(at, len as usize) {
            bad.push(e.to_string());
        }
        at += len;
    }
    if let Err(e) = block.check_words() {
        bad.push(e.to_string());
    }
    if !bad.is_empty() {
        check.damage = Some(bad.join("; "));
    }
    check
}

/// What [`repair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRepairReport {
    /// The log store's folder.
    pub dir: PathBuf,
    /// Blocks moved to `quarantine/`, with what they held (lost).
    pub quarantined: Vec<LogBlockCheck>,
    /// Whether the manifest was rewritten.
    pub manifest_rewritten: bool,
}

/// Moves damaged blocks of the log store in `dir` to `quarantine/` and
/// drops them from the manifest; a damaged manifest is rebuilt from the
/// blocks that verify. Run only while no server uses the folder (the
/// binary holds the data directory's lock).
pub fn repair(dir: &Path) -> Result<LogRepairReport, Error> {
    let found = verify(dir)?;
    let folder = LocalFolder::new(dir)?;
    let mut report =
        LogRepairReport { dir: dir.to_owned(), quarantined: Vec::new(), manifest_rewritten: false };
    let (mut state, version) = match folder.read_manifest() {
        Ok(Some((state, version))) => (state, Some(version)),
        Ok(None) => (ManifestState::default(), None),
        // Rebuilt below from the blocks that verify; WAL replay from its
        // start (records already in blocks are deduplicated by searches).
        Err(_) => (ManifestState::default(), None),
    };
    let quarantine = dir.join(QUARANTINE_DIR);
    for check in found.blocks.iter().filter(|b| b.damage.is_some()) {
        let from = folder.staging_dir().join(&check.id);
        if from.is_dir() {
            std::fs::create_dir_all(&quarantine).map_err(|e| Error::io(&quarantine, e))?;
            let to = quarantine.join(&check.id);
            std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
        }
        report.quarantined.push(check.clone());
    }
    let intact: Vec<String> =
        found.blocks.iter().filter(|b| b.damage.is_none()).map(|b| b.id.clone()).collect();
    if found.manifest_damage.is_some() || state.blocks.iter().any(|id| !intact.contains(id)) {
        state.blocks = intact;
        folder.swap_manifest(version.as_ref(), &state)?;
        report.manifest_rewritten = true;
    }
    Ok(report)
}

fn time(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

fn describe(b: &LogBlockCheck) -> String {
    match &b.holds {
        Some((records, min, max, services)) => format!(
            "{records} records of {} from {} to {} (Unix seconds)",
            services.join(", "),
            time(*min),
            time(*max)
        ),
        None => "contents unknown (meta.json unreadable)".to_owned(),
    }
}

impl fmt::Display for LogVerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "logs ({}):", self.dir.display())?;
        match &self.manifest_damage {
            Some(why) => writeln!(f, "  manifest: DAMAGED: {why}")?,
            None => writeln!(f, "  manifest: ok")?,
        }
        let intact = self.blocks.iter().filter(|b| b.damage.is_none()).count();
        writeln!(f, "  blocks: {intact} of {} intact", self.blocks.len())?;
        for b in self.blocks.iter().filter(|b| b.damage.is_some()) {
            writeln!(
                f,
                "  block {}: DAMAGED: {} — {}",
                b.id,
                b.damage.as_deref().unwrap_or(""),
                describe(b)
            )?;
        }
        match &self.wal_unreadable {
            Some(why) => write!(f, "  wal: UNREADABLE: {why}"),
            None if self.wal_skipped.is_empty() => write!(f, "  wal: {} records ok", self.wal_records),
            None => {
                let at: Vec<String> =
                    self.wal_skipped.iter().map(|(s, o)| format!("segment {s} offset {o}")).collect();
                write!(
                    f,
                    "  wal: {} records ok; DAMAGED (skipped at start): {}",
                    self.wal_records,
                    at.join(", ")
                )
            }
        }
    }
}

impl fmt::Display for LogRepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "logs ({}):", self.dir.display())?;
        for b in &self.quarantined {
            writeln!(f, "  block {} moved to {QUARANTINE_DIR}/: lost {}", b.id, describe(b))?;
        }
        if self.manifest_rewritten {
            write!(f, "  manifest rewritten")
        } else if self.quarantined.is_empty() {
            write!(f, "  nothing to repair")
        } else {
            write!(f, "  manifest unchanged")
        }
    }
}
