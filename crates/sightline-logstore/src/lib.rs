//! The durable log store: a write-ahead log, an in-memory head and
//! immutable Parquet blocks, behind [`sightline_model::LogsConsumer`] and
//! [`sightline_model::LogReader`].
//!
//! # Why a crate beside the trace store
//!
//! Logs have their own record shape, sort order (service + time, not trace
//! id) and queries (newest first, body text), so their head, block format
//! and search are separate code with their own reason to change. What the
//! two stores share is reused, not forked: the WAL crate (its own folder),
//! the block checksums (`sightline_block::checked`), the manifest and the
//! [`sightline_store::BlockStorage`] seam with content-derived block ids,
//! and the retention settings.
//!
//! # Data flow
//!
//! `consume_logs` appends the batch's OTLP bytes to the WAL (synced per the
//! fsync policy) and only then indexes it in the head and returns `Ok`.
//! When the head is big or old enough it is *cut* (the WAL rotates, the
//! head freezes); the background task *flushes* it into a block sorted by
//! service and time, lists it in the manifest and deletes the WAL segments
//! it covers. Retention deletes blocks by age and total size. Searches
//! read one snapshot of heads and blocks without holding locks ingest
//! waits on, newest data first, keeping the best `limit` records.
//!
//! On disk, under `<data dir>/logs/`: `wal/`, `blocks/<id>/{data.parquet,
//! meta.json}`, `manifest.json` (see `docs/log-block-format.md`).
//!
//! # Tenants
//!
//! Each tenant has its own log store: the default tenant's in
//! `<data dir>/logs/`, the others' in `<data dir>/tenants/<tenant>/logs/`.
//! [`LogOpener`] opens them for `sightline_store::Tenants`, the router the
//! trace stores use; all of them share one head budget and the query
//! slots ([`Shared`]).
#![deny(missing_docs)]

mod block;
mod check;
mod error;
mod head;
mod metrics;
mod scan;
mod store;
mod tenants;
mod topk;

pub use block::{FORMAT_V1, FORMAT_V2, FORMAT_VERSION, LogBlockMemory, LogBlockMeta};
pub use check::{LogBlockCheck, LogRepairReport, LogVerifyReport, QUARANTINE_DIR, repair, verify};
pub use error::Error;
pub use metrics::Metrics;
pub use sightline_block::{CacheStats as BlockCacheStats, FooterCache};
pub use store::{FLUSH_WAIT, LogStore, MAX_QUERIES, Options, Shared};
pub use tenants::{LOGS_DIR, LogHeadReaders, LogOpener};

#[cfg(test)]
mod tests;
