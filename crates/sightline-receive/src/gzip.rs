//! Bounded gzip decompression for OTLP/HTTP bodies.
//!
//! The body is inflated in small chunks, each charged to the request's
//! in-flight claim, and inflation stops as soon as the output passes the
//! size limit: a gzip bomb costs at most `limit` bytes of memory and a few
//! kilobytes of its input, never its full expansion.

use std::io::{self, Read};

use flate2::read::MultiGzDecoder;

use crate::limiter::Inflight;

/// Why a body could not be inflated.
#[derive(Debug)]
pub(crate) enum GunzipError {
    /// The output passed the limit.
    TooLarge,
    /// The in-flight budget is spent.
    Refused,
    /// Not valid gzip.
    Corrupt(io::Error),
}

/// Inflate chunk size: small enough that the limit is overshot by little.
const CHUNK: usize = 64 * 1024;

/// Inflates `input` (all gzip members, as `Content-Encoding: gzip` allows),
/// failing once the output would exceed `limit` bytes.
pub(crate) fn gunzip_limited<R: Read>(
    input: R,
    limit: usize,
    claim: &mut Inflight,
) -> Result<Vec<u8>, GunzipError> {
    let mut decoder = MultiGzDecoder::new(input);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match decoder.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(GunzipError::Corrupt(e)),
        };
        if out.len().saturating_add(n) > limit {
            return Err(GunzipError::TooLarge);
        }
        if !claim.try_grow(n) {
            return Err(GunzipError::Refused);
        }
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}
