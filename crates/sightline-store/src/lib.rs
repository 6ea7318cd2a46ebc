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
//! Background maintenance *compacts* small blocks and applies retention.
//!
//! # Why a cut takes a lock
//!
//! Appends hold a shared lock across "WAL append + head insert"; a cut holds
//! it exclusively while it rotates the WAL and swaps the head. So every
//! record of a sealed segment is in the frozen head that segment belongs to,
//! and deleting the segment after the block is durable never loses a span.
//!
//! # Reads
//!
//! Queries take snapshots (the head's chunk list, the frozen heads, the
//! block list — all `Arc`s) under short locks and read without holding any
//! lock ingest waits on. Spans seen twice (a retried export, a head and the
//! block it became) are deduplicated by span id.
#![deny(missing_docs)]

mod error;
mod fsutil;
mod head;
mod manifest;
mod metrics;
mod store;

pub use error::Error;
pub use metrics::Metrics;
pub use sightline_block::WriteOptions as BlockOptions;
pub use sightline_wal::{FsyncPolicy, RecoveryMode as WalRecovery};
pub use store::{EmbeddedStore, Options};

#[cfg(test)]
mod tests;
