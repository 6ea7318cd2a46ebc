//! What a shared bucket holds, read from the bucket alone (no node need
//! run): each tenant's trace blocks and log blocks with their `meta.json`
//! figures and whether the tenant's manifest lists them. `sightline bucket
//! list` prints it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sightline_block::BlockMeta;

use crate::Bucket;
use crate::Error;

/// Which signal a block holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// A trace block, under `<tenant>/blocks/`.
    Traces,
    /// A log block, under `<tenant>/logs/blocks/`.
    Logs,
}

impl Signal {
    /// The key prefix of the tenant's blocks of this signal.
    fn root(self, tenant: &str) -> String {
        match self {
            Signal::Traces => tenant.to_owned(),
            Signal::Logs => format!("{tenant}/logs"),
        }
    }

    /// `spans` or `log records`.
    pub fn unit(self) -> &'static str {
        match self {
            Signal::Traces => "spans",
            Signal::Logs => "log records",
        }
    }
}

/// A block's `meta.json` figures, whatever its signal.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Spans or log records.
    pub items: u64,
    /// Traces (trace blocks only).
    pub traces: Option<u64>,
    /// Oldest and newest item, Unix nanoseconds.
    pub min_unix_nanos: u64,
    /// See `min_unix_nanos`.
    pub max_unix_nanos: u64,
    /// Merges it went through.
    pub compaction_level: u32,
    /// Its data file's size.
    pub size_bytes: u64,
}

/// One block found under `<tenant>/blocks/` or `<tenant>/logs/blocks/`.
#[derive(Debug, Clone)]
pub struct BlockEntry {
    /// Whose block it is.
    pub tenant: String,
    /// Trace or log block.
    pub signal: Signal,
    /// Its id (the folder name).
    pub id: String,
    /// Whether the tenant's manifest lists it (an unlisted block is an
    /// upload in progress, one a crash left, or one dropped and awaiting
    /// deletion after its grace period).
    pub listed: bool,
    /// Bytes of its objects as listed (`data.parquet` + `meta.json`).
    pub bytes: u64,
    /// Its `meta.json`'s figures, or why it could not be read.
    pub meta: Result<Summary, String>,
}

/// Every tenant's blocks, by tenant then id. Tenants are the top-level
/// prefixes holding a `manifest.json`.
pub async fn inventory(bucket: &Bucket) -> Result<Vec<BlockEntry>, Error> {
    let mut out = Vec::new();
    for tenant in bucket.list_top().await? {
        for signal in [Signal::Traces, Signal::Logs] {
            out.extend(blocks_of(bucket, &tenant, signal).await?);
        }
    }
    Ok(out)
}

/// The blocks of one signal of one tenant: none without a manifest.
async fn blocks_of(bucket: &Bucket, tenant: &str, signal: Signal) -> Result<Vec<BlockEntry>, Error> {
    let mut out = Vec::new();
    let root = signal.root(tenant);
    {
        let manifest_key = format!("{root}/manifest.json");
        let Some(manifest) = bucket.get(&manifest_key).await? else { return Ok(out) };
        let listed: BTreeSet<String> =
            serde_json::from_slice::<serde_json::Value>(&manifest.bytes).map_err(|e| Error::Corrupt {
                location: bucket.location(&manifest_key),
                detail: format!("manifest is not valid JSON: {e}"),
            })?["blocks"]
                .as_array()
                .map(|ids| ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
        let prefix = format!("{root}/blocks/");
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
                Ok(Some(object)) => summary(signal, &object.bytes, &location),
                Ok(None) => Err("no meta.json (an upload in progress or interrupted)".to_owned()),
                Err(e) => Err(e.to_string()),
            };
            out.push(BlockEntry {
                tenant: tenant.to_owned(),
                signal,
                listed: listed.contains(&id),
                id,
                bytes,
                meta,
            });
        }
    }
    Ok(out)
}

/// The figures of a `meta.json`: a trace block's `BlockMeta`, or the
/// fields of a log block's (whose type is the log store's).
fn summary(signal: Signal, bytes: &[u8], location: &str) -> Result<Summary, String> {
    match signal {
        Signal::Traces => {
            let m = BlockMeta::from_json(bytes, Path::new(location)).map_err(|e| e.to_string())?;
            Ok(Summary {
                items: m.span_count,
                traces: Some(m.trace_count),
                min_unix_nanos: m.min_start_unix_nanos,
                max_unix_nanos: m.max_start_unix_nanos,
                compaction_level: m.compaction_level,
                size_bytes: m.size_bytes,
            })
        }
        Signal::Logs => {
            let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
            let field = |name: &str| v[name].as_u64().ok_or_else(|| format!("no {name:?} in meta.json"));
            Ok(Summary {
                items: field("record_count")?,
                traces: None,
                min_unix_nanos: field("min_time_unix_nanos")?,
                max_unix_nanos: field("max_time_unix_nanos")?,
                compaction_level: u32::try_from(v["compaction_level"].as_u64().unwrap_or(0))
                    .unwrap_or(u32::MAX),
                size_bytes: field("size_bytes")?,
            })
        }
    }
}

/// What [`verify`] found in one block.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Whose block.
    pub tenant: String,
    /// Trace or log block.
    pub signal: Signal,
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
            Verified {
                tenant: b.tenant.clone(),
                signal: b.signal,
                id: b.id.clone(),
                listed: b.listed,
                outcome,
            }
        })
        .collect()
}

fn verify_one(
    bucket: &std::sync::Arc<Bucket>,
    cache: &std::sync::Arc<crate::Cache>,
    b: &BlockEntry,
    meta: &Summary,
) -> Result<(), String> {
    let dir = format!("{}/blocks/{}", b.signal.root(&b.tenant), b.id);
    let meta_key = format!("{dir}/meta.json");
    let meta_json = bucket
        .wait(bucket.get(&meta_key))
        .map_err(|e| e.to_string())?
        .ok_or("meta.json disappeared (deleted meanwhile?)")?
        .bytes;
    let cache_id = format!("{}@{}", b.tenant, b.id);
    let source = std::sync::Arc::new(crate::source::RemoteSource {
        id: cache_id.clone(),
        key: format!("{dir}/data.parquet"),
        len: meta.size_bytes,
        bucket: std::sync::Arc::clone(bucket),
        cache: std::sync::Arc::clone(cache),
    });
    let location = bucket.location(&dir);
    let damaged = match b.signal {
        Signal::Traces => sightline_block::Block::open_source(Path::new(&location), &meta_json, source)
            .and_then(|block| block.verify())
            .map_err(|e| e.to_string()),
        // Log blocks: every byte against the checksums in meta.json (the
        // log store's own checks of its columns run when a node opens it).
        Signal::Logs => {
            let mut fields: serde_json::Value =
                serde_json::from_slice(&meta_json).map_err(|e| format!("meta.json: {e}"))?;
            let sums = sightline_block::checked::decode_meta(&mut fields)
                .map_err(|e| format!("meta.json: {e}"))?
                .ok_or("meta.json has no checksums")?;
            let data = Path::new(&location).join("data.parquet");
            sightline_block::checked::VerifiedFile::scan_source(&data, source, &sums)
                .map_err(|e| e.to_string())
        }
    };
    cache.evict(&cache_id);
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
