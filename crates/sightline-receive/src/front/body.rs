//! Reading request bodies within limits: media types, content encodings, a
//! size-capped and time-capped read, and bounded decompression.

use std::io::{self, Read};
use std::pin::pin;

use axum::body::HttpBody;
use bytes::{Bytes, BytesMut};
use flate2::read::{MultiGzDecoder, ZlibDecoder};
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http_body_util::BodyExt as _;
use tokio::time::Instant;

use super::{Claim, Failure};

/// The body format a Content-Type names, from the receiver's list of
/// `(media type, format)`; parameters (`; charset=utf-8`) and case are
/// ignored. A missing Content-Type is refused too: a browser can send a
/// cross-origin `no-cors` POST only with a CORS-safelisted type or none,
/// so requiring one of ours keeps web pages from writing spans.
pub(crate) fn media_type<F: Copy>(headers: &HeaderMap, formats: &[(&str, F)]) -> Result<F, Failure> {
    let unsupported = || {
        let names: Vec<&str> = formats.iter().map(|(name, _)| *name).collect();
        Failure::unsupported_media_type(&names.join(", "))
    };
    let value = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).ok_or_else(unsupported)?;
    let media = value.split(';').next().unwrap_or_default().trim();
    formats.iter().find(|(name, _)| media.eq_ignore_ascii_case(name)).map(|(_, f)| *f).ok_or_else(unsupported)
}

/// A supported content encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Not compressed.
    Identity,
    /// gzip (all members).
    Gzip,
    /// HTTP `deflate`, i.e. zlib-wrapped deflate.
    Deflate,
}

/// What `Content-Encoding` values are accepted, for messages.
pub(crate) const ENCODINGS: &str = "gzip, deflate, identity";

impl Encoding {
    /// Parses an encoding name (`gzip`, `x-gzip` — RFC 9110 §8.4.1.3 makes
    /// it gzip — `deflate`, `identity` or empty).
    pub(crate) fn parse(text: &str) -> Option<Encoding> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("identity") {
            Some(Encoding::Identity)
        } else if text.eq_ignore_ascii_case("gzip") || text.eq_ignore_ascii_case("x-gzip") {
            Some(Encoding::Gzip)
        } else if text.eq_ignore_ascii_case("deflate") {
            Some(Encoding::Deflate)
        } else {
            None
        }
    }

    /// The request's `Content-Encoding`.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Encoding, Failure> {
        let Some(value) = headers.get(CONTENT_ENCODING) else { return Ok(Encoding::Identity) };
        let text =
            value.to_str().map_err(|_| Failure::unsupported_encoding(&format!("{value:?}"), ENCODINGS))?;
        Encoding::parse(text).ok_or_else(|| Failure::unsupported_encoding(text, ENCODINGS))
    }
}

/// How a body read ended badly; the caller maps it to its protocol.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Over the limit.
    TooLarge,
    /// The deadline passed.
    Timeout,
    /// A claim could not grow.
    Budget(Failure),
    /// The transport failed mid-body.
    Transport(String),
}

/// Reads a body of at most `limit` bytes before `deadline`, charging
/// `claim` as frames arrive so that it always covers what is buffered. A
/// single-frame body is returned without copying. `check` sees the bytes
/// so far and each new frame before it is counted, and may stop the read
/// (a gRPC length prefix over the limit).
pub(crate) async fn read_limited<B>(
    body: B,
    limit: usize,
    deadline: Instant,
    claim: &mut Claim,
    mut check: impl FnMut(&[u8], &Bytes) -> Result<(), Failure>,
) -> Result<Bytes, ReadError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let mut body = pin!(body);
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(ReadError::Timeout),
            Ok(None) => break,
            Ok(Some(frame)) => frame.map_err(|e| ReadError::Transport(e.to_string()))?,
        };
        let Ok(data) = frame.into_data() else { continue };
        if data.is_empty() {
            continue;
        }
        let so_far: &[u8] = match (&first, &rest) {
            (_, Some(buf)) => buf,
            (Some(f), None) => f,
            (None, None) => &[],
        };
        check(so_far, &data).map_err(ReadError::Budget)?;
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(ReadError::TooLarge);
        }
        claim.grow(data.len()).map_err(ReadError::Budget)?;
        match (&mut first, &mut rest) {
            (None, None) => first = Some(data),
            (Some(_), None) => {
                // No reserve from a declared length: memory follows the
                // bytes that actually arrive (and are charged).
                let mut buf = BytesMut::with_capacity(total.saturating_mul(2).min(limit));
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

/// Why a body could not be inflated.
#[derive(Debug)]
pub(crate) enum InflateError {
    /// The output passed the limit.
    TooLarge,
    /// A claim could not grow.
    Budget(Failure),
    /// Not valid gzip/zlib.
    Corrupt(io::Error),
}

/// Inflate chunk size: small enough that the limit is overshot by little.
const CHUNK: usize = 64 * 1024;

/// Decodes `input` per `encoding`, failing as soon as the output would pass
/// `limit` bytes and charging the output to `claim` as it grows: a gzip
/// bomb costs at most `limit` bytes and a few kilobytes of its input, never
/// its full expansion. The input's charge is given back once inflated.
pub(crate) fn inflate_limited(
    input: Bytes,
    encoding: Encoding,
    limit: usize,
    claim: &mut Claim,
) -> Result<Bytes, InflateError> {
    let out = match encoding {
        Encoding::Identity => return Ok(input),
        Encoding::Gzip => read_to_limit(MultiGzDecoder::new(&input[..]), limit, claim)?,
        Encoding::Deflate => read_to_limit(ZlibDecoder::new(&input[..]), limit, claim)?,
    };
    claim.release(input.len());
    Ok(Bytes::from(out))
}

pub(super) fn read_to_limit(
    mut reader: impl Read,
    limit: usize,
    claim: &mut Claim,
) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(InflateError::Corrupt(e)),
        };
        if out.len().saturating_add(n) > limit {
            return Err(InflateError::TooLarge);
        }
        // Vec growth may double the allocation: charge what it reserves.
        let before = out.capacity();
        out.extend_from_slice(chunk.get(..n).unwrap_or_default());
        claim.grow(out.capacity().saturating_sub(before)).map_err(InflateError::Budget)?;
    }
}
