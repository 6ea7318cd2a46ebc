//! Reading request bodies within limits: the in-flight byte budget, a
//! size-capped body read, and bounded decompression.

use std::io::{self, Read};
use std::pin::pin;
use std::sync::Arc;

use axum::body::HttpBody;
use bytes::{Bytes, BytesMut};
use flate2::read::{MultiGzDecoder, ZlibDecoder};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The in-flight byte budget: a semaphore whose permits are bytes, taken
/// with `try_acquire` (never waiting) so that an overload turns into
/// retryable refusals instead of queued bodies.
#[derive(Debug)]
pub(crate) struct Budget {
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

impl Budget {
    /// A budget of `bytes` (clamped to what a semaphore can count).
    pub(crate) fn new(bytes: usize) -> Self {
        let capacity = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Budget { semaphore: Arc::new(Semaphore::new(capacity)), capacity }
    }

    /// An empty claim, grown as a request's bytes arrive.
    pub(crate) fn claim(&self) -> Claim {
        Claim { semaphore: Arc::clone(&self.semaphore), capacity: self.capacity, permit: None }
    }

    /// Bytes free now (for tests).
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// The bytes one request holds; given back when dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Claim {
    /// Bytes held.
    pub(crate) fn held(&self) -> usize {
        self.permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Takes `bytes` more without waiting; false when the budget is spent.
    /// A request never holds more than the whole budget, so one larger than
    /// the budget still gets through when it is alone.
    pub(crate) fn try_grow(&mut self, bytes: usize) -> bool {
        let want = bytes.min(self.capacity.saturating_sub(self.held()));
        if want == 0 {
            return true;
        }
        let Ok(want) = u32::try_from(want) else { return false };
        match Arc::clone(&self.semaphore).try_acquire_many_owned(want) {
            Ok(more) => {
                match &mut self.permit {
                    Some(permit) => permit.merge(more),
                    None => self.permit = Some(more),
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Gives back up to `bytes`.
    pub(crate) fn release(&mut self, bytes: usize) {
        if let Some(permit) = &mut self.permit {
            let n = bytes.min(permit.num_permits());
            drop(permit.split(n));
        }
    }
}

/// Why a body could not be read or inflated.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Over the size limit.
    TooLarge,
    /// The in-flight budget is spent.
    Refused,
    /// The transport failed mid-body.
    Read(String),
    /// Not valid gzip/zlib.
    Corrupt(io::Error),
}

/// Reads a body of at most `limit` bytes, charging `claim` as frames arrive
/// so that it always covers what is buffered. A single-frame body is
/// returned without copying.
pub(crate) async fn read_limited<B>(
    body: B,
    limit: usize,
    declared: Option<usize>,
    claim: &mut Claim,
) -> Result<Bytes, BodyError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = pin!(body);
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(BodyError::TooLarge);
        }
        if !claim.try_grow(total.saturating_sub(claim.held())) {
            return Err(BodyError::Refused);
        }
        match (&mut first, &mut rest) {
            (None, None) => first = Some(data),
            (Some(_), None) => {
                let mut buf = BytesMut::with_capacity(declared.unwrap_or(total).clamp(total, limit));
                if let Some(f) = first.take() {
                    buf.extend_from_slice(&f);
                }
                buf.extend_from_slice(&data);
                rest = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

/// A supported `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Not compressed.
    Identity,
    /// gzip (all members).
    Gzip,
    /// HTTP `deflate`, i.e. zlib-wrapped deflate.
    Deflate,
}

impl Encoding {
    /// Parses a `Content-Encoding` value; `Err` carries an unsupported one.
    pub(crate) fn parse(value: Option<&str>) -> Result<Encoding, String> {
        let Some(text) = value.map(str::trim) else { return Ok(Encoding::Identity) };
        if text.is_empty() || text.eq_ignore_ascii_case("identity") {
            Ok(Encoding::Identity)
        } else if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
            Ok(Encoding::Gzip)
        } else if text.eq_ignore_ascii_case("deflate") {
            Ok(Encoding::Deflate)
        } else {
            Err(text.to_owned())
        }
    }
}

/// Inflate chunk size: small enough that the limit is overshot by little.
const CHUNK: usize = 64 * 1024;

/// Decodes `input` per `encoding`, failing as soon as the output would pass
/// `limit` bytes, and charging the output to `claim`.
pub(crate) fn inflate_limited(
    input: &[u8],
    encoding: Encoding,
    limit: usize,
    claim: &mut Claim,
) -> Result<Vec<u8>, BodyError> {
    match encoding {
        Encoding::Identity => Ok(input.to_vec()),
        Encoding::Gzip => read_to_limit(MultiGzDecoder::new(input), limit, claim),
        Encoding::Deflate => read_to_limit(ZlibDecoder::new(input), limit, claim),
    }
}

fn read_to_limit(mut reader: impl Read, limit: usize, claim: &mut Claim) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BodyError::Corrupt(e)),
        };
        if out.len().saturating_add(n) > limit {
            return Err(BodyError::TooLarge);
        }
        if !claim.try_grow(n) {
            return Err(BodyError::Refused);
        }
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}
