//! [`ObjectStorage`]: the store's [`BlockStorage`] in a bucket that any
//! number of nodes share.
//!
//! # Layout
//!
//! ```text
//! <prefix>/<tenant>/manifest.json              the tenant's live blocks (compare-and-swap on its ETag)
//! <prefix>/<tenant>/blocks/<id>/data.parquet   a block's spans (immutable)
//! <prefix>/<tenant>/blocks/<id>/meta.json      its summary, written last: a block without it is unfinished
//! <prefix>/<tenant>/logs/manifest.json         the tenant's live log blocks (the same, for logs)
//! <prefix>/<tenant>/logs/blocks/<id>/…         a log block: data.parquet, then meta.json
//! <prefix>/_cluster/nodes/<node>.json          heartbeats
//! <prefix>/_cluster/compactor.lease            who merges and expires blocks (see `Lease`)
//! ```
//!
//! # Consistency
//!
//! The manifest is the only object ever replaced, always by a conditional
//! PUT (`If-Match` its ETag; `If-None-Match: *` for the first), so a change
//! based on a stale read fails and is applied again to a fresh read (the
//! store's block set does that). Blocks are written under ids no other node
//! writes (they start with the node id) before the manifest lists them, and
//! never change after. A block the manifest drops stays in the bucket for
//! the grace period (`removed` in the manifest, with the time), so a query
//! on a node that has not seen the change yet still reads it; then the
//! lease holder deletes it ([`ObjectStorage::collect_garbage`]), along with
//! uploads that were never listed (a node that died between upload and
//! commit).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::PutMode;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sightline_block::{Block, BlockMeta, FooterCache};
use sightline_store::{BlockStorage, ManifestState, ManifestVersion};

use crate::Error;
use crate::bucket::{Bucket, Put};
use crate::cache::Cache;
use crate::lease::Lease;
use crate::pace::Pace;
use crate::source::RemoteSource;

const MANIFEST_FORMAT: u32 = 1;
const DATA_FILE: &str = "data.parquet";
const META_FILE: &str = "meta.json";
/// A log block's body word index (`sightline-logstore`'s `words.bloom`).
const LOG_WORDS_FILE: &str = "words.bloom";

/// The shared manifest as stored: the store's `ManifestState` for every
/// node at once.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct SharedManifest {
    /// Format version of this object.
    pub(crate) version: u32,
    /// Bumped by every change.
    pub(crate) generation: u64,
    /// Live block ids.
    pub(crate) blocks: Vec<String>,
    /// Per node: its WAL segments below this are covered by listed blocks
    /// (each node has its own WAL, numbered from 1).
    #[serde(default)]
    pub(crate) wal_replay_from: BTreeMap<String, u64>,
    /// Blocks no longer listed, deleted from the bucket once the grace
    /// period after `unix_ms` has passed.
    #[serde(default)]
    pub(crate) removed: Vec<Removed>,
}

/// A dropped block waiting out its grace period.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) id: String,
    pub(crate) unix_ms: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct ObjectStorage {
    bucket: Arc<Bucket>,
    tenant: String,
    /// The key prefix of this block set: `<tenant>` for trace blocks,
    /// `<tenant>/logs` for log blocks.
    root: String,
    /// Whether the blocks are log blocks, whose `meta.json` the log store
    /// checks itself (it is no trace block's `BlockMeta`).
    logs: bool,
    node: String,
    staging: PathBuf,
    cache: Arc<Cache>,
    /// The manifest as this node last read or wrote it, with its ETag: the
    /// base of its next change (the block set passes that ETag back).
    last: Mutex<Option<(SharedManifest, String)>>,
    /// Metadata of blocks published and not yet opened (read locally
    /// instead of fetched back).
    published: Mutex<HashMap<String, Bytes>>,
    lease: Arc<Lease>,
    /// How often the manifest is read (`pace.rs`).
    pace: Pace,
    /// The lossless mode: the WAL copies each group commit here.
    wal_mirror: bool,
}

impl ObjectStorage {
    pub(crate) fn new(
        bucket: Arc<Bucket>,
        tenant: String,
        node: String,
        staging: PathBuf,
        cache: Arc<Cache>,
        lease: Arc<Lease>,
        pace: Pace,
    ) -> Result<ObjectStorage, Error> {
        match std::fs::remove_dir_all(&staging) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&staging, e)),
        }
        std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        Ok(ObjectStorage {
            bucket,
            root: tenant.clone(),
            logs: false,
            tenant,
            node,
            staging,
            cache,
            last: Mutex::new(None),
            published: Mutex::new(HashMap::new()),
            lease,
            pace,
            wal_mirror: false,
        })
    }

    /// The same, copying this node's WAL group commits into the bucket
    /// when `on` (the lossless mode, see `walmirror.rs`).
    pub(crate) fn with_wal_mirror(mut self, on: bool) -> ObjectStorage {
        self.wal_mirror = on;
        self
    }

    /// `node`'s WAL replay point in this tenant's manifest: its segments
    /// below it are in listed blocks (0 when it has none).
    pub(crate) async fn replay_point(&self, node: &str) -> Result<u64, Error> {
        let Some(object) = self.bucket.get(&self.manifest_key()).await? else { return Ok(0) };
        Ok(self.parse(&object.bytes)?.wal_replay_from.get(node).copied().unwrap_or(0))
    }

    /// The same storage for the tenant's log blocks, under
    /// `<tenant>/logs/`: its own manifest (so log flushes and trace flushes
    /// never contend for one) and blocks, the same bucket, cache and lease.
    pub(crate) fn for_logs(mut self) -> ObjectStorage {
        self.root = format!("{}/logs", self.tenant);
        self.logs = true;
        self
    }

    /// Whether this storage holds log blocks.
    pub fn holds_logs(&self) -> bool {
        self.logs
    }

    fn manifest_key(&self) -> String {
        format!("{}/manifest.json", self.root)
    }

    fn block_key(&self, id: &str, file: &str) -> String {
        format!("{}/blocks/{id}/{file}", self.root)
    }

    /// The block's name in the node's cache, which every tenant shares:
    /// block ids are unique only within a tenant (each tenant's WAL numbers
    /// its segments from 1, and a flushed block's id comes from them), so
    /// other tenants' blocks are cached as `<tenant>@<id>` (`@` is in no
    /// tenant name or node id). Sharing a key would serve one tenant's
    /// cached pages as another's block.
    fn cache_key(&self, id: &str) -> String {
        if self.tenant == crate::DEFAULT_TENANT { id.to_owned() } else { format!("{}@{id}", self.tenant) }
    }

    fn blocks_prefix(&self) -> String {
        format!("{}/blocks/", self.root)
    }

    /// The tenant whose prefix this is.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The local block cache.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// The bucket.
    pub fn bucket(&self) -> &Arc<Bucket> {
        &self.bucket
    }

    /// Ids of every block in the bucket (listed in the manifest or not),
    /// sorted.
    pub async fn list_blocks(&self) -> Result<Vec<String>, Error> {
        let prefix = self.blocks_prefix();
        let mut ids: Vec<String> = self
            .bucket
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|(key, _)| {
                key.strip_prefix(&prefix).and_then(|r| r.split('/').next()).map(str::to_owned)
            })
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    fn parse(&self, bytes: &[u8]) -> Result<SharedManifest, Error> {
        let doc: SharedManifest = serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
            location: self.bucket.location(&self.manifest_key()),
            detail: format!("manifest is not valid JSON: {e}"),
        })?;
        if doc.version != MANIFEST_FORMAT {
            return Err(Error::Corrupt {
                location: self.bucket.location(&self.manifest_key()),
                detail: format!(
                    "manifest format {} is not supported (expected {MANIFEST_FORMAT}); a newer Sightline wrote it",
                    doc.version
                ),
            });
        }
        Ok(doc)
    }

    /// The store's view of `doc`: this node's replay point.
    fn state(&self, doc: &SharedManifest) -> ManifestState {
        ManifestState {
            blocks: doc.blocks.clone(),
            wal_replay_from: doc.wal_replay_from.get(&self.node).copied().unwrap_or(0),
            generation: doc.generation,
            ..ManifestState::default()
        }
    }

    /// Keeps a manifest read (with its ETag) as the base of the next change.
    fn remember(
        &self,
        doc: SharedManifest,
        e_tag: Option<String>,
    ) -> Result<(ManifestState, ManifestVersion), Error> {
        let e_tag = e_tag.ok_or_else(|| Error::Corrupt {
            location: self.bucket.location(&self.manifest_key()),
            detail: "the store returned no ETag, so the manifest cannot be changed safely".into(),
        })?;
        let state = self.state(&doc);
        *self.last.lock() = Some((doc, e_tag.clone()));
        Ok((state, ManifestVersion(e_tag)))
    }

    /// One round of the lease holder's clean-up: deletes blocks dropped
    /// from the manifest more than `grace` ago and blocks never listed
    /// whose newest object is older than `grace` (uploads a crash left
    /// behind), then forgets the deleted ones in the manifest. `grace` must
    /// exceed the longest query plus the poll interval (a node may still
    /// read a block it has not seen dropped) and the longest upload.
    /// Returns how many blocks it deleted.
    pub async fn collect_garbage(&self, grace: Duration) -> Result<usize, Error> {
        let key = self.manifest_key();
        let Some(object) = self.bucket.get(&key).await? else { return Ok(0) };
        let doc = self.parse(&object.bytes)?;
        let now = unix_ms();
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        let due: Vec<String> = doc
            .removed
            .iter()
            .filter(|r| r.unix_ms.saturating_add(grace_ms) < now)
            .map(|r| r.id.clone())
            .collect();
        let known: HashSet<&str> =
            doc.blocks.iter().map(String::as_str).chain(doc.removed.iter().map(|r| r.id.as_str())).collect();
        let mut newest: BTreeMap<String, SystemTime> = BTreeMap::new();
        let prefix = self.blocks_prefix();
        for (key, meta) in self.bucket.list(&prefix).await? {
            let Some(id) = key.strip_prefix(&prefix).and_then(|rest| rest.split('/').next()) else {
                continue;
            };
            let modified: SystemTime = meta.last_modified.into();
            let slot = newest.entry(id.to_owned()).or_insert(modified);
            *slot = (*slot).max(modified);
        }
        let orphans: Vec<String> = newest
            .into_iter()
            .filter(|(id, modified)| {
                !known.contains(id.as_str()) && modified.elapsed().is_ok_and(|age| age > grace)
            })
            .map(|(id, _)| id)
            .collect();
        for id in due.iter().chain(&orphans) {
            // meta.json first: a block without it is unfinished to anyone
            // who looks, never a block with a missing data file.
            self.bucket.delete(&self.block_key(id, META_FILE)).await?;
            self.bucket.delete(&self.block_key(id, DATA_FILE)).await?;
            for name in self.extra_names() {
                self.bucket.delete(&self.block_key(id, name)).await?;
            }
            self.bucket.metrics.deleted_blocks.inc();
        }
        if !orphans.is_empty() {
            tracing::info!(blocks = ?orphans, "deleted blocks no manifest listed (unfinished uploads)");
        }
        if due.is_empty() {
            return Ok(orphans.len());
        }
        // Forget the deleted ones; a conflict leaves them for the next
        // round (deleting again is harmless).
        let mut next = doc.clone();
        let gone: HashSet<&str> = due.iter().map(String::as_str).collect();
        next.removed.retain(|r| !gone.contains(r.id.as_str()));
        next.generation += 1;
        if let Some(e_tag) = &object.e_tag {
            let bytes = Bytes::from(serde_json::to_vec_pretty(&next).unwrap_or_default());
            if let Put::Done(_) = self.bucket.put(&key, bytes, Bucket::update(e_tag)).await? {
                tracing::info!(
                    blocks = due.len(),
                    "deleted blocks replaced or expired more than the grace period ago"
                );
            }
        }
        Ok(due.len() + orphans.len())
    }
}

impl ObjectStorage {
    /// Block `id`'s `meta.json`: kept since this node published it, else
    /// fetched.
    fn meta_bytes(&self, id: &str) -> Result<Bytes, Error> {
        if let Some(bytes) = self.published.lock().remove(id) {
            return Ok(bytes);
        }
        let key = self.block_key(id, META_FILE);
        let object = self.bucket.wait(self.bucket.get(&key))?.ok_or_else(|| Error::Corrupt {
            location: self.bucket.location(&key),
            detail: "the manifest lists this block but its meta.json is missing".into(),
        })?;
        Ok(object.bytes)
    }

    /// Files a block may have besides its data file and `meta.json`,
    /// deleted with it: a log block's word index.
    fn extra_names(&self) -> &'static [&'static str] {
        if self.logs { &[LOG_WORDS_FILE] } else { &[] }
    }

    /// Block `id`'s data file (`len` bytes), by range through the cache.
    fn source(&self, id: &str, len: u64) -> Arc<dyn sightline_block::BlockSource> {
        Arc::new(RemoteSource {
            id: self.cache_key(id),
            key: self.block_key(id, DATA_FILE),
            len,
            bucket: Arc::clone(&self.bucket),
            cache: Arc::clone(&self.cache),
        })
    }
}

/// Files of the block folder `dir` other than its data file and
/// `meta.json`, by name.
fn extra_files(dir: &Path) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != DATA_FILE && name != META_FILE && entry.file_type().is_ok_and(|t| t.is_file()) {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl BlockStorage for ObjectStorage {
    fn location(&self) -> String {
        self.bucket.location(&self.root)
    }

    fn read_manifest(&self) -> Result<Option<(ManifestState, ManifestVersion)>, sightline_store::Error> {
        let Some(object) = self.bucket.wait(self.bucket.get(&self.manifest_key()))? else {
            *self.last.lock() = None;
            return Ok(None);
        };
        let doc = self.parse(&object.bytes)?;
        Ok(Some(self.remember(doc, object.e_tag)?))
    }

    fn poll_manifest(
        &self,
        known: Option<&ManifestVersion>,
    ) -> Result<Option<(ManifestState, ManifestVersion)>, sightline_store::Error> {
        let known = known.map(|v| v.0.as_str());
        let read = self.bucket.wait(self.bucket.get_if_changed(&self.manifest_key(), known))?;
        self.pace.read(read.is_some(), Instant::now());
        let Some(object) = read else { return Ok(None) };
        let doc = self.parse(&object.bytes)?;
        Ok(Some(self.remember(doc, object.e_tag)?))
    }

    fn swap_manifest(
        &self,
        expected: Option<&ManifestVersion>,
        next: &ManifestState,
    ) -> Result<ManifestVersion, sightline_store::Error> {
        let mut last = self.last.lock();
        let conflict = |found: Option<String>| sightline_store::Error::ManifestConflict {
            location: self.bucket.location(&self.manifest_key()),
            expected: expected.map(|v| v.0.clone()),
            found,
        };
        let base = match (last.as_ref(), expected) {
            (Some((doc, e_tag)), Some(v)) if *e_tag == v.0 => doc.clone(),
            (_, None) => SharedManifest { version: MANIFEST_FORMAT, ..SharedManifest::default() },
            (found, Some(_)) => return Err(conflict(found.map(|(_, e)| e.clone()))),
        };
        let mut doc = base.clone();
        let listed: HashSet<&str> = next.blocks.iter().map(String::as_str).collect();
        let now = unix_ms();
        doc.removed.extend(
            base.blocks
                .iter()
                .filter(|id| !listed.contains(id.as_str()))
                .map(|id| Removed { id: id.clone(), unix_ms: now }),
        );
        doc.blocks = next.blocks.clone();
        doc.wal_replay_from.insert(self.node.clone(), next.wal_replay_from);
        doc.generation += 1;
        let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| sightline_store::Error::Storage {
            location: self.location(),
            detail: format!("cannot encode the manifest: {e}"),
        })?;
        let mode = expected.map_or(PutMode::Create, |v| Bucket::update(&v.0));
        match self.bucket.wait(self.bucket.put(&self.manifest_key(), Bytes::from(bytes), mode))? {
            Put::Done(Some(e_tag)) => {
                *last = Some((doc, e_tag.clone()));
                // This node is writing: others may be too.
                self.pace.read(true, Instant::now());
                Ok(ManifestVersion(e_tag))
            }
            Put::Done(None) => Err(sightline_store::Error::Storage {
                location: self.bucket.location(&self.manifest_key()),
                detail: "the store returned no ETag for a manifest write".into(),
            }),
            Put::Lost => {
                *last = None;
                Err(conflict(None))
            }
        }
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    fn publish(&self, id: &str) -> Result<(), sightline_store::Error> {
        let dir = self.staging.join(id);
        let data = dir.join(DATA_FILE);
        let meta_path = dir.join(META_FILE);
        let meta_bytes = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        let meta_bytes = Bytes::from(meta_bytes);
        // A block that does not validate is not uploaded (log blocks were
        // checked by the log store, which opened them before publishing).
        if !self.logs {
            BlockMeta::from_json(&meta_bytes, &meta_path)?;
        }
        // IMPORTANT: meta.json last: a block is complete once it is there.
        self.bucket.wait(self.bucket.upload(&self.block_key(id, DATA_FILE), &data))?;
        // Other files of the block (a log block's word index) before it too.
        for name in extra_files(&dir)? {
            self.bucket.wait(self.bucket.upload(&self.block_key(id, &name), &dir.join(&name)))?;
        }
        let meta_key = self.block_key(id, META_FILE);
        let written = self.bucket.wait(self.bucket.put(&meta_key, meta_bytes.clone(), PutMode::Overwrite))?;
        // An unconditional PUT can still be refused with 409 Conflict (S3:
        // a concurrent conditional write, an aborted operation), which
        // object_store reports as "already exists". Taking that for written
        // would let the manifest list a block without its meta.json: every
        // node would take it for damaged. The flush fails and is retried.
        if written == Put::Lost {
            return Err(sightline_store::Error::Storage {
                location: self.bucket.location(&meta_key),
                detail: "the store refused to write meta.json (409 Conflict); the flush is retried".into(),
            });
        }
        // This node's own blocks are read from the file it wrote.
        self.cache.adopt(&self.cache_key(id), &data)?;
        let _ = std::fs::remove_dir_all(&dir);
        self.published.lock().insert(id.to_owned(), meta_bytes);
        Ok(())
    }

    fn open(&self, id: &str, cache: &Arc<FooterCache>) -> Result<Block, sightline_store::Error> {
        let location = PathBuf::from(self.bucket.location(&format!("{}/blocks/{id}", self.root)));
        let meta_json = self.meta_bytes(id)?;
        let meta = BlockMeta::from_json(&meta_json, &location.join(META_FILE))?;
        let source = self.source(id, meta.size_bytes);
        Ok(Block::open_source_cached(&location, &meta_json, source, cache)?)
    }

    fn read_meta(&self, id: &str) -> Result<Vec<u8>, sightline_store::Error> {
        Ok(self.meta_bytes(id)?.to_vec())
    }

    fn read_file(&self, id: &str, name: &str) -> Result<Vec<u8>, sightline_store::Error> {
        if name == META_FILE {
            return Ok(self.meta_bytes(id)?.to_vec());
        }
        let key = self.block_key(id, name);
        let object = self.bucket.wait(self.bucket.get(&key))?.ok_or_else(|| Error::Corrupt {
            location: self.bucket.location(&key),
            detail: format!("the manifest lists this block but its {name} is missing"),
        })?;
        Ok(object.bytes.to_vec())
    }

    fn data_source(&self, id: &str, len: u64) -> Option<Arc<dyn sightline_block::BlockSource>> {
        Some(self.source(id, len))
    }

    fn delete(&self, id: &str) -> Result<(), sightline_store::Error> {
        // No query here reads it any more; other nodes may, until the
        // grace period has passed and the lease holder deletes it.
        self.cache.evict(&self.cache_key(id));
        Ok(())
    }

    fn discard(&self, id: &str) -> Result<(), sightline_store::Error> {
        self.cache.evict(&self.cache_key(id));
        self.bucket.wait(self.bucket.delete(&self.block_key(id, META_FILE)))?;
        self.bucket.wait(self.bucket.delete(&self.block_key(id, DATA_FILE)))?;
        for name in self.extra_names() {
            self.bucket.wait(self.bucket.delete(&self.block_key(id, name)))?;
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<String>, sightline_store::Error> {
        Ok(self.bucket.wait(self.list_blocks())?)
    }

    fn shared(&self) -> bool {
        true
    }

    fn poll_interval(&self) -> Duration {
        self.pace.poll_interval()
    }

    fn poll_due(&self) -> bool {
        self.pace.due(Instant::now())
    }

    fn wal_mirror(&self) -> Option<Arc<dyn sightline_wal::Mirror>> {
        self.wal_mirror.then(|| {
            Arc::new(crate::walmirror::WalMirror::new(Arc::clone(&self.bucket), &self.tenant, &self.node))
                as Arc<dyn sightline_wal::Mirror>
        })
    }

    fn may_compact(&self) -> bool {
        self.lease.held()
    }
}
