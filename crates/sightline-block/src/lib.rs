//! Immutable, compressed, columnar trace blocks stored as Apache Parquet.
//!
//! The store keeps recent spans in memory and periodically cuts them into
//! blocks with [`write()`]; queries read blocks through [`Block`];
//! [`compact`] merges small blocks into bigger ones. A block is a directory
//! `<id>/` holding `data.parquet` (one row per span) and `meta.json`
//! ([`BlockMeta`]). It never changes after [`write()`] returns.
//!
//! # Why Parquet, and why this schema
//!
//! Users must be able to read blocks with other tools (pyarrow, duckdb), so
//! the format is plain Parquet with a schema documented column by column in
//! `docs/block-format.md`. Inside that constraint the schema is shaped by
//! the two hot queries:
//!
//! * **Trace by id.** Rows are sorted by `(trace_id, start_time)`, so a
//!   trace is one contiguous run of rows. Row-group min/max statistics and a
//!   bloom filter on `trace_id` pick the row group, the page index picks the
//!   page, and a [`parquet::arrow::arrow_reader::RowSelection`] decodes only
//!   that page of every column.
//! * **Search.** Cheap scalar columns (`resource_index`, `name`,
//!   `start_time`, `duration_nanos`) are read first; attribute lists are
//!   decoded only for rows that pass, and bloom filters on attribute values
//!   skip row groups that cannot hold a searched value.
//!
//! Storage size is the other target (≈40 bytes per realistic span; the
//! `size_per_realistic_span` test prints where the bytes go):
//! * resources and scopes are stored once per block, in tables in the
//!   Parquet key-value metadata, and referenced by index;
//! * the most frequent span attribute keys of a block get dedicated columns
//!   (values of one key compress together, and a search on that key reads
//!   one column), with a small per-span layout string keeping the exact
//!   attribute order; the rest stay in a generic typed list;
//! * the parent is a small row distance instead of 8 random bytes;
//! * nanosecond times use BYTE_STREAM_SPLIT, which beat delta encoding on
//!   measured data;
//! * low-cardinality strings are dictionary-encoded and everything is zstd
//!   compressed.
//!
//! A damaged file yields a typed [`Error`] ([`Error::is_corruption`]), never
//! a panic: the page index is validated at open, and a panic inside the
//! Parquet decoder is contained and reported as [`Error::Corrupt`].
//!
//! # Durability
//!
//! [`write()`] writes into `<id>.tmp/`, fsyncs each file and the directory,
//! renames it to `<id>/`, and fsyncs the parent: a crash leaves either no
//! block or a complete one (plus possibly a `.tmp` directory to delete).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod cache;
mod columns;
mod compact;
mod copy;
mod dedicated;
mod error;
mod integrity;
mod json;
mod meta;
mod otlp;
mod read;
mod readbuf;
mod row;
mod salvage;
mod schema;
mod search;
mod source;
mod traces;
mod write;

pub use cache::{CacheStats, FooterCache};
pub use compact::compact;
pub use error::Error;
pub(crate) use error::contain;
pub use integrity::{Mismatch, json_checksum};

/// The block checksums, for other block formats stored beside trace
/// blocks (the log store's): a [`checked::ChecksumWriter`] computes chunk
/// CRCs as a file streams out, [`checked::encode_meta`] /
/// [`checked::decode_meta`] put them (and a self-check) into a `meta.json`,
/// and every read through [`checked::VerifiedFile`] is checked before it is
/// decoded, exactly as for trace blocks.
pub mod checked {
    pub use crate::integrity::{
        CHUNK_BYTES, ChecksumWriter, Checksums, DamageSlot, VerifiedFile, VerifiedRead, decode_meta,
        encode_meta,
    };
}
pub use meta::BlockMeta;
pub use otlp::{OtlpSpan, SpanKey, write_otlp};
pub use read::{Block, BlockMemory, SpanChunks};
pub use salvage::{Salvaged, UnreadableRows, salvage};
pub use source::BlockSource;
pub use write::write;

/// Format version written into the Parquet key-value metadata
/// (`sightline.format`) and `meta.json`; readers reject any other value
/// with [`Error::UnknownFormat`].
pub const FORMAT_VERSION: &str = "sl1";

/// How to write a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Spans per Parquet row group. Smaller groups prune better and bound
    /// the dictionary pages a trace lookup decodes; bigger groups compress
    /// better and need fewer footer entries. The default, 32 768, keeps a
    /// realistic row group around 1 MiB compressed (see the docs).
    pub row_group_spans: usize,
    /// zstd level (1–22). 3 is fast enough for head cuts; compaction can
    /// afford more.
    pub zstd_level: i32,
    /// Recorded in [`BlockMeta::compaction_level`]; [`compact`] overrides it
    /// with `max(inputs) + 1`.
    pub compaction_level: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { row_group_spans: 32_768, zstd_level: 3, compaction_level: 0 }
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
