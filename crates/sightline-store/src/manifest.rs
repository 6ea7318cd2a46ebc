//! The manifest: which blocks are live, and where WAL replay starts.
//!
//! A block becomes visible only once it is listed here, and a WAL segment
//! may be deleted only once the manifest says replay starts after it. The
//! file is replaced atomically (temp file, fsync, rename, fsync folder), so
//! a crash leaves either the old or the new manifest, never a mix.

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
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ManifestState {
    /// Format version of this file.
    pub(crate) version: u32,
    /// Live block ids (directory names under `blocks/`).
    pub(crate) blocks: Vec<String>,
    /// WAL segments with a lower id are covered by blocks.
    pub(crate) wal_replay_from: u64,
    /// Next block sequence number (block ids are never reused).
    pub(crate) next_block_seq: u64,
}

/// The manifest file and its current content.
#[derive(Debug)]
pub(crate) struct Manifest {
    dir: PathBuf,
    state: ManifestState,
}

impl Manifest {
    /// Loads the manifest from `dir`, or starts an empty one.
    pub(crate) fn load(dir: &Path) -> Result<Manifest, Error> {
        let path = dir.join(MANIFEST_FILE);
        let state = match fs::read(&path) {
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
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ManifestState { version: MANIFEST_VERSION, ..ManifestState::default() }
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(Manifest { dir: dir.to_owned(), state })
    }

    pub(crate) fn state(&self) -> &ManifestState {
        &self.state
    }

    /// Replaces the manifest durably with `next`; on error the in-memory
    /// state is unchanged.
    pub(crate) fn commit(&mut self, next: ManifestState) -> Result<(), Error> {
        let path = self.dir.join(MANIFEST_FILE);
        let tmp = self.dir.join(format!("{MANIFEST_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| Error::Corrupt {
            path: path.clone(),
            detail: format!("cannot encode manifest: {e}"),
        })?;
        let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
        // IMPORTANT: the new content must be on disk before the rename
        // makes it the manifest.
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        // IMPORTANT: fsync the folder so the rename itself survives a crash.
        sync_dir(&self.dir)?;
        self.state = next;
        Ok(())
    }
}
