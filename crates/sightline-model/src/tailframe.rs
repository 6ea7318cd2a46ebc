//! The frames of a node's live log tail as its peers read it
//! (`/internal/logs/tail`): one long HTTP answer, a frame per batch of
//! records, with keep-alive frames in quiet times so a reader can tell a
//! quiet peer from a dead one (no frame within a few keep-alive intervals).
//!
//! A frame is one kind byte, a 4-byte big-endian length and that many
//! bytes: records are an OTLP `ExportLogsServiceRequest` in protobuf (the
//! encoding every receiver decodes); the end frame says why the node
//! stopped sending (the reader fell behind its tail buffer), and the
//! answer ends after it.

use prost::Message as _;

use crate::LogRecord;

/// The largest frame a reader accepts: far above a batch the store's
/// ingest limits let through, so only a broken peer sends one.
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// How long a node sending a tail stays silent at most: it sends a
/// keep-alive frame after this long without records.
pub const TAIL_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(5);
const HEADER: usize = 5;
const RECORDS: u8 = b'L';
const KEEPALIVE: u8 = b'K';
const END: u8 = b'E';

/// One frame of a live tail.
#[derive(Debug, Clone, PartialEq)]
pub enum TailFrame {
    /// Records the node acknowledged that match the tail's query.
    Records(Vec<LogRecord>),
    /// Nothing new: the node is alive.
    KeepAlive,
    /// The node stopped sending, and why.
    End(String),
}

impl TailFrame {
    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload) = match self {
            TailFrame::Records(records) => (RECORDS, crate::otlp::encode_logs(records).encode_to_vec()),
            TailFrame::KeepAlive => (KEEPALIVE, Vec::new()),
            TailFrame::End(why) => (END, why.as_bytes().to_vec()),
        };
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.push(kind);
        // A batch over 4 GiB never reaches a tail: ingest refuses it.
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

/// A frame that cannot be read: the peer is broken or not a Sightline
/// node.
#[derive(Debug, thiserror::Error)]
pub enum TailFrameError {
    /// An unknown kind byte.
    #[error("unknown tail frame kind {0:#04x}")]
    Kind(u8),
    /// A frame longer than [`MAX_FRAME_BYTES`].
    #[error("tail frame of {0} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    TooLarge(usize),
    /// Records that do not decode.
    #[error("undecodable tail records: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Reads frames from the chunks of an answer as they arrive.
#[derive(Debug, Default)]
pub struct TailFrameReader {
    buffer: Vec<u8>,
}

impl TailFrameReader {
    /// Adds a chunk of the answer.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// The next whole frame, `None` until one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<TailFrame>, TailFrameError> {
        let Some(header) = self.buffer.get(..HEADER) else { return Ok(None) };
        let kind = header[0];
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(TailFrameError::TooLarge(len));
        }
        if self.buffer.len() < HEADER + len {
            return Ok(None);
        }
        let frame = {
            let payload = &self.buffer[HEADER..HEADER + len];
            match kind {
                RECORDS => TailFrame::Records(crate::otlp::decode_logs_bytes(payload)?.records),
                KEEPALIVE => TailFrame::KeepAlive,
                END => TailFrame::End(String::from_utf8_lossy(payload).into_owned()),
                other => return Err(TailFrameError::Kind(other)),
            }
        };
        self.buffer.drain(..HEADER + len);
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(body: &str) -> LogRecord {
        LogRecord { observed_time_unix_nano: 8, ..LogRecord::info(7, body) }
    }

    /// Frames split at any byte come back whole and in order.
    #[test]
    fn frames_read_back_across_any_chunking() {
        let frames = [
            TailFrame::Records(vec![record("one"), record("two")]),
            TailFrame::KeepAlive,
            TailFrame::End("too slow".into()),
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(TailFrame::encode).collect();
        for step in [1, 3, 7, bytes.len()] {
            let mut reader = TailFrameReader::default();
            let mut back = Vec::new();
            for chunk in bytes.chunks(step) {
                reader.push(chunk);
                while let Some(frame) = reader.next_frame().unwrap() {
                    back.push(frame);
                }
            }
            assert_eq!(back, frames, "chunks of {step}");
        }
    }

    #[test]
    fn broken_frames_are_errors() {
        let mut reader = TailFrameReader::default();
        reader.push(&[b'?', 0, 0, 0, 0]);
        assert!(matches!(reader.next_frame(), Err(TailFrameError::Kind(b'?'))));
        let mut reader = TailFrameReader::default();
        reader.push(&[RECORDS, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(reader.next_frame(), Err(TailFrameError::TooLarge(_))));
    }
}
