//! The embedded trace store: a write-ahead log, an in-memory head, and
//! immutable Parquet blocks, behind the [`sightline_model::TraceStore`]
//! contract.
//!
//! # Data flow
//!
//! `consume_traces` appends the batch's OTLP bytes to the WAL (group
//! commit, synced per [`FsyncPolicy`]) and only then adds its spans to the
//! head and returns `Ok` — the acknowledgement promise. When the head is
//! big or old enough it is *cut*: the WAL rotates, the head freezes and a
//! background task *flushes* it into a block, lists the block in the
//! manifest, and only then deletes the WAL segments the block covers.
//! Background work *compacts* small blocks and applies retention.
//!
//! # Who owns what
//!
//! * `ingest`: the WAL, the cut lock, the live head and the frozen heads
//!   (see there for why a cut takes a lock);
//! * `blockset`: the manifest, the live block list, dropped blocks, and the
//!   pure planners deciding merges and deletions; blocks are kept by a
//!   [`BlockStorage`] ([`LocalFolder`] by default), the seam for remote
//!   storage;
//! * `tasks`: cutting, flushing, merging and retention, depending only on
//!   the two above;
//! * `view`: one snapshot of heads and blocks per query, read without
//!   locks. Spans seen twice (a retried export, a head and the block it
//!   became) are deduplicated by span id;
//! * `tenants`: one store per tenant behind one consumer ([`Tenants`]),
//!   sharing the head bytes and query slots (`shared`).
#![deny(missing_docs)]

mod blockset;
mod error;
mod fsutil;
mod head;
mod ingest;
mod metrics;
mod repair;
mod shared;
mod store;
mod tasks;
mod tenants;
mod view;
mod wait;

pub use blockset::plan::{CompactionPolicy, RetentionPolicy, Width};
pub use blockset::{
    BlockStorage, LocalFolder, MAX_MANIFEST_CONFLICTS, ManifestState, ManifestVersion, decode_manifest,
    encode_manifest, flushed_block_id, merged_block_id, swap_manifest,
};
pub use error::Error;
pub use metrics::{Metrics, register_block_cache, register_cache_as};
pub use repair::{
    BlockCheck, BlockState, ManifestCheck, QUARANTINE_DIR, Quarantined, RepairReport, VerifyReport, WalCheck,
    repair, verify,
};
pub use shared::{HeadShare, Shared};
pub use sightline_block::WriteOptions as BlockOptions;
pub use sightline_block::{CacheStats as FooterCacheStats, FooterCache};
pub use sightline_wal::{FsyncPolicy, RecoveryMode as WalRecovery};
pub use store::{EmbeddedStore, HeadReader, Options};
pub use tenants::{
    HeadReaders, LocalBlocks, StoreOpener, TENANTS_DIR, TenantBlocks, TenantOpener, TenantStore, Tenants,
    tenant_dir, tenant_folders,
};

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
