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

/// Reads `<dir>/manifest.json`; `None` if there is none yet.
pub(crate) fn load(dir: &Path) -> Result<Option<ManifestState>, Error> {
    let path = dir.join(MANIFEST_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            let state: ManifestState = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: path.clone(),
                detail: format!("manifest is not valid JSON: {e}"),
            })?;
            if state.version != MANIFEST_VERSION {
                return Err(Error::Corrupt {
                    path,
                    detail: format!(
                        "manifest version {} is not supported (expected {MANIFEST_VERSION})",
                        state.version
                    ),
                });
            }
            Ok(Some(state))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Replaces `<dir>/manifest.json` durably with `next`.
pub(crate) fn store(dir: &Path, next: &ManifestState) -> Result<(), Error> {
    let path: PathBuf = dir.join(MANIFEST_FILE);
    let tmp = dir.join(format!("{MANIFEST_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(next)
        .map_err(|e| Error::Corrupt { path: path.clone(), detail: format!("cannot encode manifest: {e}") })?;
    let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
    // IMPORTANT: the new content must be on disk before the rename
    // makes it the manifest.
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    // IMPORTANT: fsync the folder so the rename itself survives a crash.
    sync_dir(dir)
}
