//! Sightline's write-ahead log: checksummed records in numbered segment files,
//! group-committed by one writer thread, recovered on open: a torn tail is
//! cut, a damaged record is skipped and the valid records after it kept.
//!
//! This crate carries the product's durability promise: the store
//! acknowledges a span batch only after [`Wal::append`] resolves, and with
//! [`FsyncPolicy::Always`] that means the record is fsynced, so an
//! acknowledged span survives `kill -9` and power loss. Payloads are opaque
//! bytes.
//!
//! # Usage
//!
//! [`Wal::open`] recovers everything on disk (returned as [`Recovered`] for the
//! caller to replay) and starts a fresh segment. [`Wal::append`] adds records;
//! [`Wal::rotate`] seals the current segment, typically when the store cuts a
//! block; once the data of the sealed segments is durable elsewhere,
//! [`Wal::remove_through`] deletes them. [`Wal::close`] flushes and stops.
//!
//! # On-disk format (version 1)
//!
//! A directory holds segment files named by zero-padded id,
//! `00000000000000000042.wal`, plus a `LOCK` file. Ids grow across restarts,
//! and every open starts a new segment, so only the newest segment can ever
//! have been written without a final sync.
//!
//! ```text
//! segment := header record*
//! header  := "SLWAL\0" version:u16le            (8 bytes, version = 1)
//! record  := len:u32le crc:u32le payload[len]   (1 <= len <= 256 MiB)
//! crc     := mask(crc32c(len bytes ++ payload))
//! mask(c) := rotr(c, 15) + 0xa282ead8            (LevelDB's mask)
//! ```
//!
//! The checksum covers the length field, so a damaged length never passes as
//! a shorter record. Empty payloads are refused, so a zero-filled region
//! (what file systems leave after a crash) never reads as a record.
//! The constants live in one module (`format.rs`).
//!
//! # Recovery policy
//!
//! Every mode drops a *torn tail* of the last segment: a header or payload
//! cut short, a checksum mismatch, zero bytes or garbage, with no valid
//! record after it — what a crash in the middle of a write leaves. Opening
//! truncates the file there (and fsyncs it) and reports the cut in
//! [`Recovered::torn_tail`]. A last segment whose header itself is torn is
//! rewritten as an empty segment.
//!
//! Damage that valid records follow, or damage in a sealed segment (fsynced
//! before the next one existed), means bytes changed on disk. With
//! [`RecoveryMode::SkipDamaged`] (the default) recovery skips the damaged
//! stretch and resumes at the next offset where a whole record verifies, so
//! one flipped byte costs the record it hit and nothing after it. Each skip
//! is reported in [`RecoveredSegment::skipped`], logged with segment file and
//! offset, and counted (`sightline_wal_recovery_skipped_total`,
//! `…_skipped_bytes_total`). The search for the next record costs
//! O(n) in the segment's size whatever the damage (see `resync.rs`).
//! [`RecoveryMode::TolerateTornTail`] refuses such damage instead:
//! `open` fails with [`Error::Corruption`] naming file, segment, byte offset
//! and a [`Damage`] kind. [`RecoveryMode::PointInTime`] cuts the last segment
//! at its first damage. A segment header of an unknown format version stops
//! the start in every mode.
//!
//! # Writer design
//!
//! One dedicated OS thread owns the active file. `append` reserves queue
//! space, sends the payload and a oneshot over a channel, and awaits the
//! oneshot. The thread takes every queued command, writes all records with a
//! single `write_all` of a reused buffer, fsyncs once, and then completes all
//! oneshots: group commit. A plain thread rather than a tokio task with
//! `spawn_blocking` per round: a blocking `fdatasync` never occupies a runtime
//! worker, there is no hop to the blocking pool on the latency path, and
//! `recv_timeout` gives the interval fsync without a timer task. It also means
//! [`Wal::open`] needs no runtime.
//!
//! Backpressure is a byte bound, not a count: [`Options::max_pending_bytes`]
//! caps what is queued and unacknowledged, and `append` fails fast with the
//! retryable [`Error::Full`] beyond it.
//!
//! If a write fails (a full disk) the segment is cut back to its last good
//! length and that round's appends get the retryable
//! [`Error::Unwritable`]; the next round tries again, so ingest resumes on
//! its own once space is free. A segment that cannot be created (no file
//! descriptor, no space) leaves the current one active. If an fsync fails,
//! or cutting a failed write back fails, the WAL is poisoned: that round's
//! appends and all later ones fail. After a failed fsync the kernel may
//! have dropped the dirty pages, so retrying could report success for lost
//! data (the 2018 "fsyncgate" lesson from PostgreSQL). Restarting recovers
//! from what is on disk.
//!
//! # Durability steps
//!
//! Creating a segment writes the header, fsyncs the file, then fsyncs the
//! directory. Rotation fsyncs the old segment before the new one takes writes
//! (under every policy). Truncating a torn tail is fsynced before the new
//! segment is created. Deletion fsyncs the directory. Each step is marked
//! `IMPORTANT:` in the code.
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

mod error;
mod format;
mod metrics;
mod mirror;
mod policy;
mod recovery;
mod resync;
mod scan;
mod wal;
mod writer;

pub use error::{Corruption, Error, ParseError};
pub use format::{FORMAT_VERSION, MAX_RECORD_LEN, SegmentId};
pub use metrics::Metrics;
pub use mirror::Mirror;
pub use policy::FsyncPolicy;
pub use recovery::{Recovered, RecoveredSegment, read_dir, read_segment};
pub use scan::{Damage, RecoveryMode, ScannedSegment, Skipped, TornTail, scan_segment};
pub use wal::{Options, Wal};

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
