//! What a shared bucket holds, read from the bucket alone (no node need
//! run): each tenant's blocks with their `meta.json` figures and whether
//! the tenant's manifest lists them. `sightline bucket list` prints it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sightline_block::BlockMeta;

use crate::Bucket;
use crate::Error;

/// One block found under `<tenant>/blocks/`.
#[derive(Debug, Clone)]
pub struct BlockEntry {
    /// Whose block it is.
    pub tenant: String,
    /// Its id (the folder name).
    pub id: String,
    /// Whether the tenant's manifest lists it (an unlisted block is an
    /// upload in progress, one a crash left, or one dropped and awaiting
    /// deletion after its grace period).
    pub listed: bool,
    /// Bytes of its objects as listed (`data.parquet` + `meta.json`).
    pub bytes: u64,
    /// Its `meta.json`, or why it could not be read.
    pub meta: Result<BlockMeta, String>,
}

/// Every tenant's blocks, by tenant then id. Tenants are the top-level
/// prefixes holding a `manifest.json`.
pub async fn inventory(bucket: &Bucket) -> Result<Vec<BlockEntry>, Error> {
    let mut out = Vec::new();
    for tenant in bucket.list_top().await? {
        let manifest_key = format!("{tenant}/manifest.json");
        let Some(manifest) = bucket.get(&manifest_key).await? else { continue };
        let listed: BTreeSet<String> =
            serde_json::from_slice::<serde_json::Value>(&manifest.bytes).map_err(|e| Error::Corrupt {
                location: bucket.location(&manifest_key),
                detail: format!("manifest is not valid JSON: {e}"),
            })?["blocks"]
                .as_array()
                .map(|ids| ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
        let prefix = format!("{tenant}/blocks/");
        let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
        for (key, meta) in bucket.list(&prefix).await? {
            if let Some(id) = key.strip_prefix(&prefix).and_then(|r| r.split('/').next()) {
                *sizes.entry(id.to_owned()).or_default() += meta.size;
            }
        }
        for (id, bytes) in sizes {
            let key = format!("{prefix}{id}/meta.json");
            let location = bucket.location(&key);
            let meta = match bucket.get(&key).await {
                Ok(Some(object)) => {
                    BlockMeta::from_json(&object.bytes, Path::new(&location)).map_err(|e| e.to_string())
                }
                Ok(None) => Err("no meta.json (an upload in progress or interrupted)".to_owned()),
                Err(e) => Err(e.to_string()),
            };
            out.push(BlockEntry { tenant: tenant.clone(), listed: listed.contains(&id), id, bytes, meta });
        }
    }
    Ok(out)
}

/// What [`verify`] found in one block.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Whose block.
    pub tenant: String,
    /// Its id.
    pub id: String,
    /// Whether the manifest lists it.
    pub listed: bool,
    /// `Ok` when every byte matches its checksum; else what is wrong
    /// (damaged byte ranges, an unreadable `meta.json`, a failed read).
    pub outcome: Result<(), String>,
}

/// Checks every byte of every block of `blocks` (from [`inventory`])
/// against the checksums in its `meta.json`, through the same verified
/// reader queries use; reads go through `cache` (1 MiB ranged GETs).
/// Blocking: call it outside the bucket's runtime.
pub fn verify(
    bucket: &std::sync::Arc<Bucket>,
    cache: &std::sync::Arc<crate::Cache>,
    blocks: &[BlockEntry],
) -> Vec<Verified> {
    blocks
        .iter()
        .map(|b| {
            let outcome = match &b.meta {
                Err(why) => Err(format!("meta.json: {why}")),
                Ok(meta) => verify_one(bucket, cache, b, meta),
            };
            Verified { tenant: b.tenant.clone(), id: b.id.clone(), listed: b.listed, outcome }
        })
        .collect()
}

fn verify_one(
    bucket: &std::sync::Arc<Bucket>,
    cache: &std::sync::Arc<crate::Cache>,
    b: &BlockEntry,
    meta: &BlockMeta,
) -> Result<(), String> {
    let dir = format!("{}/blocks/{}", b.tenant, b.id);
    let meta_key = format!("{dir}/meta.json");
    let meta_json = bucket
        .wait(bucket.get(&meta_key))
        .map_err(|e| e.to_string())?
        .ok_or("meta.json disappeared (deleted meanwhile?)")?
        .bytes;
    let source = crate::source::RemoteSource {
        id: format!("{}@{}", b.tenant, b.id),
        key: format!("{dir}/data.parquet"),
        len: meta.size_bytes,
        bucket: std::sync::Arc::clone(bucket),
        cache: std::sync::Arc::clone(cache),
    };
    let location = bucket.location(&dir);
    let block =
        sightline_block::Block::open_source(Path::new(&location), &meta_json, std::sync::Arc::new(source))
            .map_err(|e| e.to_string())?;
    let damaged = block.verify().map_err(|e| e.to_string());
    cache.evict(&format!("{}@{}", b.tenant, b.id));
    match damaged? {
        d if d.is_empty() => Ok(()),
        d => Err(format!(
            "{} damaged chunk(s) of data.parquet, first at bytes {}..{}",
            d.len(),
            d[0].start,
            d[0].end
        )),
    }
}
