//! A second copy of every group commit, elsewhere (an object store), made
//! before the commit is acknowledged: what makes an acknowledgement
//! survive the loss of the node's disk, not only `kill -9`.
//!
//! The WAL knows nothing of where the copy goes: the embedding store
//! passes a [`Mirror`] in [`crate::Options::mirror`]. Each copy is a
//! complete segment image (header and records, the same checksummed
//! framing as on disk), so whoever reads it back checks it with
//! [`crate::scan_segment`] and a torn or damaged copy costs only its bad
//! records.

use std::fmt;

use crate::format::{HEADER_LEN, SegmentId, header};

/// Where group commits are copied. Called on the writer thread, so
/// `put` blocks the next round while it runs: records arriving meanwhile
/// ride in the next group commit (one copy per round, not per record).
pub trait Mirror: Send + Sync + fmt::Debug {
    /// Stores `image` (a segment image holding exactly one group commit's
    /// records) as the round starting at byte `offset` of `segment`.
    /// `Ok` only once the copy is durable there; on `Err` the round's
    /// appends fail retryably.
    fn put(&self, segment: SegmentId, offset: u64, image: &[u8]) -> Result<(), String>;

    /// The segments `<= through` are covered elsewhere (in blocks): their
    /// copies may go. Must not block (start the deletion and return).
    fn remove_through(&self, through: SegmentId);
}

/// Builds the segment image of `records` (framed as the writer frames
/// them) into `out`, replacing its content.
pub(crate) fn image(out: &mut Vec<u8>, records: &[u8]) {
    out.clear();
    out.reserve(HEADER_LEN + records.len());
    out.extend_from_slice(&header());
    out.extend_from_slice(records);
}
