//! The manifest: which blocks are live, and where WAL replay starts.
//!
//! A block becomes visible only once it is listed here, and a WAL segment
//! may be deleted only once the manifest says replay starts after it.
//! Every change replaces the whole manifest by compare-and-swap on its
//! version (see [`crate::BlockStorage::swap_manifest`]); the local file is
//! replaced atomically (temp file, fsync, rename, fsync folder), so a crash
//! leaves either the old or the new manifest, never a mix.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::fsutil::sync_dir;

/// File name of the manifest inside the data directory.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";
const MANIFEST_VERSION: u32 = 1;

/// The manifest's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestState {
    /// Format version of this file.
    pub version: u32,
    /// Live block ids (directory names under `blocks/`).
    pub blocks: Vec<String>,
    /// WAL segments with a lower id are covered by blocks.
    pub wal_replay_from: u64,
    /// Sequence numbers handed out as block ids before ids were derived
    /// from content; kept so older manifests read back unchanged.
    #[serde(default)]
    pub next_block_seq: u64,
    /// Bumped by every change: the version compare-and-swap checks.
    #[serde(default)]
    pub generation: u64,
}

impl Default for ManifestState {
    fn default() -> Self {
        ManifestState {
            version: MANIFEST_VERSION,
            blocks: Vec::new(),
            wal_replay_from: 0,
            next_block_seq: 0,
            generation: 0,
        }
    }
}

/// The key of the manifest's own checksum: the CRC32C of its canonical
/// JSON without this key (see `sightline_block::json_checksum`).
const CHECKSUM_KEY: &str = "checksum";

/// The manifest's bytes as stored: pretty JSON with its own checksum, so a
/// flipped digit in `wal_replay_from` or a letter in a block id is found
/// (either would make a start delete WAL segments or a block) instead of
/// being obeyed. For every backend: a remote one stores the same bytes.
pub fn encode(state: &ManifestState) -> Result<Vec<u8>, String> {
    let mut value = serde_json::to_value(state).map_err(|e| e.to_string())?;
    let crc = sightline_block::json_checksum(&value);
    value.as_object_mut().ok_or("manifest is not an object")?.insert(CHECKSUM_KEY.to_owned(), crc.into());
    serde_json::to_vec_pretty(&value).map_err(|e| e.to_string())
}

/// Parses and checks stored manifest bytes (see [`encode`]). A manifest
/// written before manifests had a checksum is accepted as it is.
pub fn decode(bytes: &[u8]) -> Result<ManifestState, String> {
    let mut value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("manifest is not valid JSON: {e}"))?;
    let obj = value.as_object_mut().ok_or("manifest is not a JSON object")?;
    if let Some(recorded) = obj.remove(CHECKSUM_KEY) {
        let recorded =
            recorded.as_u64().and_then(|v| u32::try_from(v).ok()).ok_or("checksum is not a u32")?;
        let computed = sightline_block::json_checksum(&value);
        if recorded != computed {
            return Err(format!(
                "manifest checksum mismatch (recorded {recorded:#010x}, computed {computed:#010x}): the file was damaged"
            ));
        }
    }
    if let Some(key) = value.as_object().and_then(|o| o.keys().find(|k| !FIELDS.contains(&k.as_str()))) {
        return Err(format!("manifest has an unknown key {key:?}"));
    }
    let state: ManifestState = serde_json::from_value(value).map_err(|e| format!("manifest: {e}"))?;
    if state.version != MANIFEST_VERSION {
        return Err(format!(
            "manifest version {} is not supported (expected {MANIFEST_VERSION})",
            state.version
        ));
    }
    Ok(state)
}

/// Keys of [`ManifestState`], for the unknown-key check.
const FIELDS: [&str; 5] = ["version", "blocks", "wal_replay_from", "next_block_seq", "generation"];

/// File name of the previous manifest, kept by every change.
pub(crate) const PREVIOUS_FILE: &str = "manifest.json.prev";

/// Reads `<dir>/manifest.json`; `None` if there is none yet. A damaged one
/// is an error that says how to get out (`sightline repair`).
pub(crate) fn load(dir: &Path) -> Result<Option<ManifestState>, Error> {
    let path = dir.join(MANIFEST_FILE);
    match fs::read(&path) {
        Ok(bytes) => decode(&bytes).map(Some).map_err(|detail| Error::Corrupt {
            path: path.clone(),
            detail: format!(
                "{detail}; `sightline repair --data-dir {}` rebuilds it from the blocks present \
                 (the previous manifest is in {PREVIOUS_FILE})",
                dir.display()
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Reads a manifest file for inspection (verify, repair): the state, or
/// why it cannot be used; `None` when the file does not exist.
pub(crate) fn read_file(path: &Path) -> Result<Option<Result<ManifestState, String>>, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(decode(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Replaces `<dir>/manifest.json` durably with `next`, keeping the one it
/// replaces as `manifest.json.prev`.
pub(crate) fn store(dir: &Path, next: &ManifestState) -> Result<(), Error> {
    let path: PathBuf = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    let bytes = encode(next)
        .map_err(|e| Error::Corrupt { path: path.clone(), detail: format!("cannot encode manifest: {e}") })?;
    let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
    // IMPORTANT: the new content must be on disk before the rename
    // makes it the manifest.
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    keep_previous(dir, &path)?;
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    // IMPORTANT: fsync the folder so the renames themselves survive a crash.
    sync_dir(dir)
}

/// Makes `manifest.json.prev` a second name of the current manifest (a
/// hard link, swapped in by rename), so there is a manifest at every
/// instant of a change and the one before it survives the next rename.
fn keep_previous(dir: &Path, current: &Path) -> Result<(), Error> {
    let prev = dir.join(PREVIOUS_FILE);
    let staged = dir.join(format!("{PREVIOUS_FILE}.tmp"));
    let _ = fs::remove_file(&staged);
    match fs::hard_link(current, &staged) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        // A file system without hard links: a copy (synced) does as well.
        Err(_) => {
            fs::copy(current, &staged).map_err(|e| Error::io(&staged, e))?;
            File::open(&staged).and_then(|f| f.sync_all()).map_err(|e| Error::io(&staged, e))?;
        }
    }
    fs::rename(&staged, &prev).map_err(|e| Error::io(&prev, e))
}
