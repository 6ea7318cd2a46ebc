//! Where blocks and their list live: the seam a remote backend (object
//! storage) plugs into, and the local folder that is the default.
//!
//! The contract follows from what object stores offer:
//! * blocks are immutable: written once under an id, read, deleted — never
//!   changed;
//! * block ids are derived from content (see [`flushed_block_id`],
//!   [`merged_block_id`]), so writing the same block twice (a retry after a
//!   crash, two nodes racing) produces the same id instead of a duplicate;
//! * the manifest is the only mutable object, replaced whole by
//!   compare-and-swap on its version (`If-Match` on an ETag); a loser
//!   re-reads and re-plans instead of overwriting.
//!
//! Methods block (file or network IO); the store calls them from the
//! blocking pool. A remote implementation stages blocks in a local folder
//! ([`BlockStorage::staging_dir`]), uploads them in `publish` (`meta.json`
//! last) and serves reads through its own cache.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sightline_block::{Block, FooterCache};
use sightline_wal::SegmentId;

use super::manifest::{self, ManifestState};
use crate::Error;
use crate::fsutil::sync_dir;

/// An opaque manifest version for compare-and-swap (a generation number
/// locally, an ETag remotely).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestVersion(pub String);

/// Blocks and the manifest that lists them.
pub trait BlockStorage: Send + Sync + fmt::Debug {
    /// Where the blocks are, for messages.
    fn location(&self) -> String;

    /// The stored manifest and its version; `None` for a new store.
    fn read_manifest(&self) -> Result<Option<(ManifestState, ManifestVersion)>, Error>;

    /// Replaces the manifest with `next` if it is still at `expected`
    /// (`None`: no manifest exists yet), durably; returns the new version.
    /// Fails with [`Error::ManifestConflict`] when someone else changed it.
    fn swap_manifest(
        &self,
        expected: Option<&ManifestVersion>,
        next: &ManifestState,
    ) -> Result<ManifestVersion, Error>;

    /// A local folder where blocks are written before [`publish`]: the
    /// block writer creates `<staging_dir>/<id>/`.
    ///
    /// [`publish`]: BlockStorage::publish
    fn staging_dir(&self) -> &Path;

    /// Makes block `id`, written under the staging folder, durable and
    /// readable by [`BlockStorage::open`]. It is not live until a manifest
    /// lists it.
    fn publish(&self, id: &str) -> Result<(), Error>;

    /// Opens a published block, keeping its footer and bloom filters in
    /// `cache` (the store's, bounded by a share of the memory budget).
    fn open(&self, id: &str, cache: &Arc<FooterCache>) -> Result<Block, Error>;

    /// Deletes a block no manifest lists any more.
    fn delete(&self, id: &str) -> Result<(), Error>;

    /// The `meta.json` bytes of a published block, for block formats other
    /// than trace blocks (log blocks), which open blocks themselves: from
    /// the staging folder locally, fetched (or kept since `publish`)
    /// remotely.
    fn read_meta(&self, id: &str) -> Result<Vec<u8>, Error> {
        self.read_file(id, "meta.json")
    }

    /// A small file `name` of a published block besides its data file
    /// (a log block's word index), read whole. `publish` uploads every
    /// file of the block's folder.
    fn read_file(&self, id: &str, name: &str) -> Result<Vec<u8>, Error> {
        let path = self.staging_dir().join(id).join(name);
        fs::read(&path).map_err(|e| Error::io(&path, e))
    }

    /// The data file of a published block of `len` bytes, read by range
    /// through the storage's cache; `None` when it is the local file
    /// `<staging_dir>/<id>/data.parquet`. For other block formats, as
    /// [`BlockStorage::read_meta`].
    fn data_source(&self, _id: &str, _len: u64) -> Option<std::sync::Arc<dyn sightline_block::BlockSource>> {
        None
    }

    /// Every block present, listed in the manifest or not (unfinished
    /// writes, interrupted deletions): for garbage collection at start.
    fn list(&self) -> Result<Vec<String>, Error>;

    /// Deletes a block that no manifest ever listed (a merge whose commit
    /// lost to another one). Unlike [`BlockStorage::delete`], nobody can
    /// be reading it.
    fn discard(&self, id: &str) -> Result<(), Error> {
        self.delete(id)
    }

    /// The manifest if it changed since version `known` (`None`: read it
    /// whatever it is); `Ok(None)` when it did not. A remote store answers
    /// this with a conditional GET (`If-None-Match`, 304), so polling is
    /// cheap.
    fn poll_manifest(
        &self,
        known: Option<&ManifestVersion>,
    ) -> Result<Option<(ManifestState, ManifestVersion)>, Error> {
        match self.read_manifest()? {
            Some((_, version)) if Some(&version) == known => Ok(None),
            read => Ok(read),
        }
    }

    /// Whether other processes write blocks and the manifest too (nodes
    /// sharing a bucket). Then a block not in the manifest may be another
    /// node's upload in progress, not garbage; a manifest conflict is
    /// re-read and the change applied again; the manifest is polled for
    /// other nodes' blocks every [`BlockStorage::poll_interval`]; and merges
    /// and retention run only while [`BlockStorage::may_compact`] says so.
    fn shared(&self) -> bool {
        false
    }

    /// How often a shared store looks for other nodes' changes.
    fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(5)
    }

    /// Whether the background poller's tick (every
    /// [`BlockStorage::poll_interval`]) should read the manifest now: a
    /// bucket paces its polls while nothing changes, since each is a
    /// billed request. Explicit refreshes read regardless.
    fn poll_due(&self) -> bool {
        true
    }

    /// Whether this process should merge and expire blocks now (in a
    /// shared store: it holds the compaction lease). Correctness never
    /// depends on it: a merge commits only while all its inputs are still
    /// listed, so of two nodes merging the same blocks one commit fails.
    fn may_compact(&self) -> bool {
        true
    }

    /// Where the store's WAL copies each group commit before acknowledging
    /// it, so acknowledged spans survive the loss of this node's disk (a
    /// shared store in its lossless mode); `None`: the local WAL only.
    /// Called once, from inside the runtime, when the store opens.
    fn wal_mirror(&self) -> Option<Arc<dyn sightline_wal::Mirror>> {
        None
    }
}

/// The id of the block flushed from the head that WAL segments `first..=last`
/// held: the same head always gets the same id.
pub fn flushed_block_id(first: SegmentId, last: SegmentId) -> String {
    format!("w{:016x}-{:016x}", first.0, last.0)
}

/// The id of the block merged from `inputs` at `level`: a stable hash of
/// the sorted input ids (FNV-1a, fixed across builds and machines).
pub fn merged_block_id(level: u32, inputs: &[&str]) -> String {
    let mut sorted: Vec<&str> = inputs.to_vec();
    sorted.sort_unstable();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for id in sorted {
        for b in id.bytes().chain([0]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("c{level:02}-{hash:016x}")
}

/// Blocks as folders under `<data dir>/blocks`, the manifest as
/// `<data dir>/manifest.json`. One process owns the data directory (its
/// lock file), so the compare-and-swap checks the generation this process
/// last wrote.
#[derive(Debug)]
pub struct LocalFolder {
    root: PathBuf,
    blocks: PathBuf,
    generation: parking_lot::Mutex<Option<u64>>,
}

impl LocalFolder {
    /// Blocks under `<root>/blocks`, created if missing.
    pub fn new(root: &Path) -> Result<LocalFolder, Error> {
        let blocks = root.join("blocks");
        fs::create_dir_all(&blocks).map_err(|e| Error::io(&blocks, e))?;
        Ok(LocalFolder { root: root.to_owned(), blocks, generation: parking_lot::Mutex::new(None) })
    }
}

impl BlockStorage for LocalFolder {
    fn location(&self) -> String {
        self.blocks.display().to_string()
    }

    fn read_manifest(&self) -> Result<Option<(ManifestState, ManifestVersion)>, Error> {
        let state = manifest::load(&self.root)?;
        *self.generation.lock() = state.as_ref().map(|s| s.generation);
        Ok(state.map(|s| {
            let version = ManifestVersion(s.generation.to_string());
            (s, version)
        }))
    }

    fn swap_manifest(
        &self,
        expected: Option<&ManifestVersion>,
        next: &ManifestState,
    ) -> Result<ManifestVersion, Error> {
        let mut current = self.generation.lock();
        let stored = current.map(|g| ManifestVersion(g.to_string()));
        if stored.as_ref() != expected {
            return Err(Error::ManifestConflict {
                location: self.location(),
                expected: expected.map(|v| v.0.clone()),
                found: stored.map(|v| v.0),
            });
        }
        let mut next = next.clone();
        next.generation = current.map_or(1, |g| g + 1);
        manifest::store(&self.root, &next)?;
        *current = Some(next.generation);
        Ok(ManifestVersion(next.generation.to_string()))
    }

    fn staging_dir(&self) -> &Path {
        &self.blocks
    }

    fn publish(&self, _id: &str) -> Result<(), Error> {
        // The block writer already published the folder durably (temp
        // folder, fsync, rename, fsync parent) into its final place.
        Ok(())
    }

    fn open(&self, id: &str, cache: &Arc<FooterCache>) -> Result<Block, Error> {
        Ok(Block::open_cached(&self.blocks.join(id), cache)?)
    }

    fn delete(&self, id: &str) -> Result<(), Error> {
        let dir = self.blocks.join(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&dir, e)),
        }
        sync_dir(&self.blocks)
    }

    fn list(&self) -> Result<Vec<String>, Error> {
        let entries = fs::read_dir(&self.blocks).map_err(|e| Error::io(&self.blocks, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.blocks, e))?;
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_are_derived_from_content() {
        assert_eq!(flushed_block_id(SegmentId(3), SegmentId(10)), "w0000000000000003-000000000000000a");
        let a = merged_block_id(1, &["x", "y", "z"]);
        assert_eq!(a, merged_block_id(1, &["z", "x", "y"]), "input order does not matter");
        assert_ne!(a, merged_block_id(1, &["x", "yz"]), "ids are separated, not concatenated");
        assert_ne!(a, merged_block_id(2, &["x", "y", "z"]));
        assert!(a.starts_with("c01-") && a.len() == 20, "{a}");
    }

    #[test]
    fn the_manifest_is_swapped_only_from_the_version_read() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalFolder::new(dir.path()).unwrap();
        assert_eq!(storage.read_manifest().unwrap(), None);
        let first = ManifestState { blocks: vec!["a".into()], ..ManifestState::default() };
        let v1 = storage.swap_manifest(None, &first).unwrap();
        let conflict = storage.swap_manifest(None, &first).unwrap_err();
        assert!(matches!(conflict, Error::ManifestConflict { .. }), "{conflict}");
        let second = ManifestState { blocks: vec!["b".into()], ..ManifestState::default() };
        let v2 = storage.swap_manifest(Some(&v1), &second).unwrap();
        assert!(storage.swap_manifest(Some(&v1), &second).is_err(), "a stale version loses");
        let (read, version) = storage.read_manifest().unwrap().unwrap();
        assert_eq!((read.blocks, version), (vec!["b".to_owned()], v2));
    }
}
