//! The block set: which immutable blocks are live, the manifest that says
//! so, the blocks dropped but still read, and the pure planners that decide
//! merges and deletions.
//!
//! It owns the state that outlives the process besides the WAL, and it is
//! the seam to where blocks are kept: a [`BlockStorage`] (the local folder
//! today). It knows nothing of the head or the WAL except the one number
//! they share, the segment WAL replay starts from.

pub(crate) mod damage;
pub(crate) mod manifest;
pub(crate) mod plan;
pub(crate) mod storage;

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sightline_block::{Block, BlockMeta};
use sightline_wal::SegmentId;

use crate::Error;
use damage::Damaged;
pub use manifest::{ManifestState, decode as decode_manifest, encode as encode_manifest};
pub use storage::{BlockStorage, LocalFolder, ManifestVersion, flushed_block_id, merged_block_id};

/// Live blocks, replaced as a whole so a reader's list never changes
/// underneath it.
pub(crate) type BlockList = Arc<Vec<Arc<Block>>>;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct BlockSet {
    storage: Arc<dyn BlockStorage>,
    /// The manifest as last committed, and its version. Locked across a
    /// whole change so changes commit in order and the live list follows
    /// the manifest.
    manifest: Mutex<(ManifestState, Option<ManifestVersion>)>,
    live: RwLock<BlockList>,
    /// Blocks dropped from the manifest, deleted once no reader holds them.
    trash: Mutex<Vec<Arc<Block>>>,
    /// Blocks found damaged: listed, served where intact, never merged.
    damaged: Arc<Damaged>,
}

impl BlockSet {
    /// Loads the manifest, deletes blocks it does not list, and opens the
    /// listed ones. A listed block that is damaged or missing does not
    /// stop the start: it is reported (see [`damage`]) and left listed for
    /// `sightline repair`. A new store gets an empty manifest at once, so
    /// that blocks without a manifest always mean a lost manifest (and are
    /// not mistaken for unfinished writes and deleted). Blocking.
    pub(crate) fn open(storage: Arc<dyn BlockStorage>, damaged: Arc<Damaged>) -> Result<BlockSet, Error> {
        let (state, version) = match storage.read_manifest()? {
            Some((state, version)) => (state, Some(version)),
            None => {
                let present: Vec<String> =
                    storage.list()?.into_iter().filter(|id| !id.ends_with(".tmp")).collect();
                if !present.is_empty() {
                    return Err(Error::Corrupt {
                        path: storage.location().into(),
                        detail: format!(
                            "there is no manifest but {} blocks are present ({}…); starting would delete them. \
                             Restore manifest.json (manifest.json.prev is the one before the last change) or \
                             run `sightline repair` to rebuild it from the blocks present",
                            present.len(),
                            present.first().map_or("", String::as_str),
                        ),
                    });
                }
                let state = ManifestState::default();
                let version = storage.swap_manifest(None, &state)?;
                (state, Some(version))
            }
        };
        let listed: HashSet<&str> = state.blocks.iter().map(String::as_str).collect();
        // Blocks not in the manifest are unfinished writes or blocks whose
        // removal was interrupted: by the manifest invariant they hold
        // nothing that is not elsewhere.
        for id in storage.list()? {
            if !listed.contains(id.as_str()) {
                tracing::info!(block = %id, "removing a block not in the manifest");
                storage.delete(&id)?;
            }
        }
        let mut blocks = Vec::with_capacity(state.blocks.len());
        for id in &state.blocks {
            match storage.open(id) {
                Ok(block) => blocks.push(Arc::new(block)),
                Err(e) if e.is_corruption() || e.is_not_found() => damaged.report(id, &e),
                Err(e) => return Err(e),
            }
        }
        Ok(BlockSet {
            storage,
            manifest: Mutex::new((state, version)),
            live: RwLock::new(Arc::new(blocks)),
            trash: Mutex::new(Vec::new()),
            damaged,
        })
    }

    /// The blocks found damaged.
    pub(crate) fn damaged(&self) -> &Arc<Damaged> {
        &self.damaged
    }

    pub(crate) fn storage(&self) -> &Arc<dyn BlockStorage> {
        &self.storage
    }

    /// The live blocks now.
    pub(crate) fn list(&self) -> BlockList {
        self.live.read().clone()
    }

    /// Metadata of the live blocks that may be merged: all but the
    /// damaged ones (a merge of one would fail every time).
    pub(crate) fn mergeable_metas(&self) -> Vec<BlockMeta> {
        self.live
            .read()
            .iter()
            .filter(|b| !self.damaged.contains(&b.meta().id))
            .map(|b| b.meta().clone())
            .collect()
    }

    /// Metadata of every live block, damaged or not, for retention.
    pub(crate) fn metas(&self) -> Vec<BlockMeta> {
        self.live.read().iter().map(|b| b.meta().clone()).collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.live.read().len()
    }

    /// WAL segments below this are covered by blocks.
    pub(crate) fn wal_replay_from(&self) -> u64 {
        self.manifest.lock().0.wal_replay_from
    }

    /// Lists the blocks flushed from a head whose records are all in WAL
    /// segments up to `sealed`, in one manifest change: replay starts
    /// after it from now on. Blocking.
    pub(crate) fn add_flushed(&self, blocks: Vec<Arc<Block>>, sealed: SegmentId) -> Result<(), Error> {
        let ids: Vec<String> = blocks.iter().map(|b| b.meta().id.clone()).collect();
        self.change(
            |state| {
                for id in &ids {
                    if !state.blocks.contains(id) {
                        state.blocks.push(id.clone());
                    }
                }
                state.wal_replay_from = state.wal_replay_from.max(sealed.0 + 1);
            },
            |list| {
                list.retain(|b| !ids.contains(&b.meta().id));
                list.extend(blocks.iter().cloned());
            },
        )
    }

    /// Replaces merged `inputs` by their `output`. Blocking.
    pub(crate) fn replace(&self, inputs: &[String], output: Arc<Block>) -> Result<(), Error> {
        let gone: HashSet<&str> = inputs.iter().map(String::as_str).collect();
        let output_id = output.meta().id.clone();
        let removed = self.change(
            |state| {
                state.blocks.retain(|id| !gone.contains(id.as_str()));
                state.blocks.push(output_id.clone());
            },
            |list| {
                let removed: Vec<Arc<Block>> =
                    list.iter().filter(|b| gone.contains(b.meta().id.as_str())).cloned().collect();
                list.retain(|b| !gone.contains(b.meta().id.as_str()));
                list.push(Arc::clone(&output));
                removed
            },
        )?;
        self.trash.lock().extend(removed);
        Ok(())
    }

    /// Drops blocks (retention); returns how many were live. Blocking.
    pub(crate) fn remove(&self, ids: &[String]) -> Result<usize, Error> {
        self.damaged.forget(ids);
        let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let removed = self.change(
            |state| state.blocks.retain(|id| !gone.contains(id.as_str())),
            |list| {
                let removed: Vec<Arc<Block>> =
                    list.iter().filter(|b| gone.contains(b.meta().id.as_str())).cloned().collect();
                list.retain(|b| !gone.contains(b.meta().id.as_str()));
                removed
            },
        )?;
        let count = removed.len();
        self.trash.lock().extend(removed);
        Ok(count)
    }

    /// Deletes dropped blocks no query holds any more. Blocking.
    pub(crate) fn empty_trash(&self) {
        let mut trash = self.trash.lock();
        trash.retain(|b| {
            if Arc::strong_count(b) > 1 {
                return true;
            }
            if let Err(e) = self.storage.delete(&b.meta().id) {
                tracing::warn!(block = %b.meta().id, error = %e, "could not delete a dropped block");
            }
            false
        });
    }

    /// Commits a manifest change by compare-and-swap, then applies the
    /// matching change to the live list, under one lock so they never
    /// disagree.
    fn change<T>(
        &self,
        change: impl Fn(&mut ManifestState),
        apply: impl FnOnce(&mut Vec<Arc<Block>>) -> T,
    ) -> Result<T, Error> {
        let mut manifest = self.manifest.lock();
        let mut next = manifest.0.clone();
        change(&mut next);
        // The store is the only writer of its manifest today, so a
        // conflict is an error; a shared (remote) block set would re-read
        // and re-apply `change` here.
        let version = self.storage.swap_manifest(manifest.1.as_ref(), &next)?;
        *manifest = (next, Some(version));
        let mut live = self.live.write();
        let mut list = Vec::clone(&live);
        let out = apply(&mut list);
        *live = Arc::new(list);
        Ok(out)
    }
}
