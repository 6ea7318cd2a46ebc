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
pub(crate) mod swap;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use sightline_block::{Block, BlockMeta, FooterCache};
use sightline_wal::SegmentId;

use crate::Error;
use damage::Damaged;
pub use manifest::{ManifestState, decode as decode_manifest, encode as encode_manifest};
pub use storage::{BlockStorage, LocalFolder, ManifestVersion, flushed_block_id, merged_block_id};
pub use swap::{MAX_MANIFEST_CONFLICTS, swap_manifest};

/// Live blocks, replaced as a whole so a reader's list never changes
/// underneath it.
pub(crate) type BlockList = Arc<Vec<Arc<Block>>>;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct BlockSet {
    storage: Arc<dyn BlockStorage>,
    /// Where the blocks keep their footers and bloom filters.
    cache: Arc<FooterCache>,
    /// The manifest as last committed, and its version. Locked across a
    /// whole change so changes commit in order and the live list follows
    /// the manifest.
    manifest: Mutex<(ManifestState, Option<ManifestVersion>)>,
    live: RwLock<BlockList>,
    /// Blocks dropped from the manifest, deleted once no reader holds them.
    trash: Mutex<Vec<Arc<Block>>>,
    /// Blocks found damaged: listed, served where intact, never merged.
    damaged: Arc<Damaged>,
    /// A listed block failed to open: the next refresh re-reads the
    /// manifest even if it did not change.
    stale: AtomicBool,
}

impl BlockSet {
    /// Loads the manifest, deletes blocks it does not list (unless the
    /// storage is shared: there they may be another node's upload in
    /// progress), and opens the listed ones. A listed block that is
    /// damaged or missing does not stop the start: it is reported (see
    /// [`damage`]) and left listed for `sightline repair`. A new store gets
    /// an empty manifest at once, so that blocks without a manifest always
    /// mean a lost manifest (and are not mistaken for unfinished writes and
    /// deleted). Blocking.
    pub(crate) fn open(
        storage: Arc<dyn BlockStorage>,
        damaged: Arc<Damaged>,
        cache: Arc<FooterCache>,
    ) -> Result<BlockSet, Error> {
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
        if !storage.shared() {
            let listed: HashSet<&str> = state.blocks.iter().map(String::as_str).collect();
            // Blocks not in the manifest are unfinished writes or blocks
            // whose removal was interrupted: by the manifest invariant they
            // hold nothing that is not elsewhere.
            for id in storage.list()? {
                if !listed.contains(id.as_str()) {
                    tracing::info!(block = %id, "removing a block not in the manifest");
                    storage.delete(&id)?;
                }
            }
        }
        let mut blocks = Vec::with_capacity(state.blocks.len());
        for id in &state.blocks {
            match storage.open(id, &cache) {
                Ok(block) => blocks.push(Arc::new(block)),
                Err(e) if e.is_corruption() || e.is_not_found() => damaged.report(id, &e),
                Err(e) => return Err(e),
            }
        }
        Ok(BlockSet {
            storage,
            cache,
            manifest: Mutex::new((state, version)),
            live: RwLock::new(Arc::new(blocks)),
            trash: Mutex::new(Vec::new()),
            damaged,
            stale: AtomicBool::new(false),
        })
    }

    /// The blocks found damaged.
    pub(crate) fn damaged(&self) -> &Arc<Damaged> {
        &self.damaged
    }

    pub(crate) fn storage(&self) -> &Arc<dyn BlockStorage> {
        &self.storage
    }

    /// The cache the blocks keep their footers and bloom filters in.
    pub(crate) fn cache(&self) -> &Arc<FooterCache> {
        &self.cache
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
                Ok(())
            },
            &blocks,
        )?;
        Ok(())
    }

    /// Replaces merged `inputs` by their `output`, only if every input is
    /// still listed: otherwise another node merged or expired some of them
    /// first and the output would duplicate spans ([`Error::Superseded`]).
    /// Blocking.
    pub(crate) fn replace(&self, inputs: &[String], output: Arc<Block>) -> Result<(), Error> {
        let gone: HashSet<&str> = inputs.iter().map(String::as_str).collect();
        let output_id = output.meta().id.clone();
        self.change(
            |state| {
                // Already listed: an earlier attempt of this commit went
                // through although its reply was lost (a retried request
                // then fails its precondition). Not a lost race.
                if state.blocks.contains(&output_id) {
                    return Ok(());
                }
                let missing: Vec<String> =
                    inputs.iter().filter(|id| !state.blocks.contains(id)).cloned().collect();
                if !missing.is_empty() {
                    return Err(Error::Superseded { location: self.storage.location(), gone: missing });
                }
                state.blocks.retain(|id| !gone.contains(id.as_str()));
                state.blocks.push(output_id.clone());
                Ok(())
            },
            std::slice::from_ref(&output),
        )?;
        Ok(())
    }

    /// Drops blocks (retention); returns how many were live. Blocking.
    pub(crate) fn remove(&self, ids: &[String]) -> Result<usize, Error> {
        self.damaged.forget(ids);
        let gone: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let removed = self.change(
            |state| {
                state.blocks.retain(|id| !gone.contains(id.as_str()));
                Ok(())
            },
            &[],
        )?;
        Ok(removed.iter().filter(|id| gone.contains(id.as_str())).count())
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

    /// Follows changes other nodes made to a shared manifest: reads it if
    /// it changed (a conditional read, cheap when it did not) and opens the
    /// blocks it lists that are new here. Returns whether it changed.
    /// Blocking.
    pub(crate) fn refresh(&self) -> Result<bool, Error> {
        let mut manifest = self.manifest.lock();
        // After a block failed to open, read the manifest whole again even
        // if its version did not change.
        let known = if self.stale.load(Ordering::Acquire) { None } else { manifest.1.clone() };
        let Some((state, version)) = self.storage.poll_manifest(known.as_ref())? else {
            return Ok(false);
        };
        self.follow(&state, &[]);
        *manifest = (state, Some(version));
        Ok(true)
    }

    /// Commits a manifest change by compare-and-swap, then makes the live
    /// list follow the new manifest, under one lock so they never disagree.
    /// `fresh` are the blocks the change lists, already open. Returns the ids
    /// that left the live list.
    ///
    /// In a shared store a conflict means another node committed first: the
    /// manifest is read again and `change` applied to it again (it may
    /// refuse, as a merge whose inputs are gone does).
    fn change(
        &self,
        change: impl Fn(&mut ManifestState) -> Result<(), Error>,
        fresh: &[Arc<Block>],
    ) -> Result<Vec<String>, Error> {
        let mut manifest = self.manifest.lock();
        let (next, version) = swap_manifest(&*self.storage, &mut manifest, change, |state| {
            self.follow(state, &[]);
        })?;
        let removed = self.follow(&next, fresh);
        *manifest = (next, Some(version));
        Ok(removed)
    }

    /// Makes the live list the blocks `state` lists: keeps the open ones,
    /// adds the `fresh` ones, opens the others (blocks other nodes wrote), and moves
    /// the ones no longer listed to the trash. A block that fails to open
    /// is left out and the manifest marked stale, so the next refresh tries
    /// again. Returns the ids that left the live list.
    fn follow(&self, state: &ManifestState, fresh: &[Arc<Block>]) -> Vec<String> {
        let current = self.list();
        let mut by_id: HashMap<&str, &Arc<Block>> =
            current.iter().map(|b| (b.meta().id.as_str(), b)).collect();
        for block in fresh {
            by_id.insert(block.meta().id.as_str(), block);
        }
        let mut stale = false;
        let mut next = Vec::with_capacity(state.blocks.len());
        for id in &state.blocks {
            match by_id.get(id.as_str()) {
                Some(block) => next.push(Arc::clone(block)),
                None => match self.storage.open(id, &self.cache) {
                    Ok(block) => next.push(Arc::new(block)),
                    // Damage does not heal by retrying: reported once,
                    // left listed for `sightline repair`.
                    Err(e) if e.is_corruption() => self.damaged.report(id, &e),
                    Err(e) => {
                        tracing::warn!(block = %id, error = %e, "cannot open a listed block; will retry");
                        stale = true;
                    }
                },
            }
        }
        self.stale.store(stale, Ordering::Release);
        let listed: HashSet<&str> = state.blocks.iter().map(String::as_str).collect();
        let removed: Vec<Arc<Block>> =
            current.iter().filter(|b| !listed.contains(b.meta().id.as_str())).cloned().collect();
        let ids = removed.iter().map(|b| b.meta().id.clone()).collect();
        *self.live.write() = Arc::new(next);
        self.trash.lock().extend(removed);
        ids
    }
}
