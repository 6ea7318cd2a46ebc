//! Log blocks: one Parquet file of records plus `meta.json`, written once
//! from a frozen head and read by searches. The schema and the reasons for
//! its sort order are in `docs/log-block-format.md`.
//!
//! Rows are sorted by `(service, time, fingerprint)` (the fingerprint is
//! not stored since `sl-logs2`: searches recompute it for the records
//! they keep): a search for one
//! service's recent records reads the row groups whose `service` and
//! `time` min/max cover it; a search by trace id (records of one trace are
//! spread across services and time) asks each row group's `trace_id`
//! bloom filter, kept in the store's block cache (`read.rs`). Every byte read
//! is checked against the block's checksums first
//! (`sightline_block::checked`), as for trace blocks.

mod merge;
mod numbers;
pub(crate) mod read;
mod schema;
mod template;
mod wire;
mod words;
mod write;

pub(crate) use merge::merge;
pub(crate) use read::LogBlock;
pub use read::LogBlockMemory;
pub use schema::{FORMAT_V1, FORMAT_V2, FORMAT_VERSION, LogBlockMeta};
pub(crate) use write::write_requests;
#[cfg(test)]
pub(crate) use write::{write, write_v1, write_v2, write_words_v1};

/// The data file inside a block folder.
pub(crate) const DATA_FILE: &str = "data.parquet";
/// The metadata file inside a block folder.
pub(crate) const META_FILE: &str = "meta.json";
