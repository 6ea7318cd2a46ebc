//! Unary gRPC calls, served without tonic's server.
//!
//! A unary request is one length-prefixed message, so the front reads it
//! like any other body — charged to the in-flight budget frame by frame,
//! refused from its 5-byte prefix when it announces more than the limit,
//! inflated by the same bounded gzip as HTTP — and hands the receiver the
//! exact message bytes (which the write-ahead log can then store as they
//! are, compressed or not on the wire). Decoding is the receiver's, so a
//! malformed message is `INVALID_ARGUMENT`, not tonic's `INTERNAL`. The
//! reply is one message and a `grpc-status: 0` trailer; failures are
//! trailers-only responses.

use axum::body::{Body, HttpBody};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut as _, Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, Full};
use tokio::time::Instant;

use super::body::{Encoding, read_limited};
use super::{Failure, FailureKind, Front, Incoming, tenant_of};

/// gRPC message framing: 1 compressed-flag byte + 4 length bytes.
const PREFIX: usize = 5;

/// `grpc-encoding` values accepted.
const GRPC_ENCODINGS: &str = "gzip,deflate,identity";

fn too_large(len: usize, limit: usize) -> Failure {
    Failure::too_large(format!("received message larger than max ({len} vs. {limit} bytes)"))
}

impl Front {
    /// Reads a unary gRPC request: `application/grpc` content type, one
    /// message within the size limit (compressed on the wire and inflated)
    /// and the body timeout.
    pub async fn read_grpc<B>(&self, parts: &Parts, body: B) -> Result<Incoming<()>, Failure>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let grpc = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| {
            ct.get(..16).is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
                && matches!(ct.as_bytes().get(16), None | Some(b'+' | b';'))
        });
        if !grpc {
            return Err(Failure::unsupported_media_type("application/grpc"));
        }
        // gRPC is HTTP/2 only; refusing HTTP/1.1 also keeps a web page (which
        // speaks HTTP/1.1 to a plain-text origin) from posting here.
        if parts.version != http::Version::HTTP_2 {
            return Err(Failure::bad_request("gRPC needs HTTP/2"));
        }
        let encoding = match parts.headers.get("grpc-encoding") {
            None => Encoding::Identity,
            Some(v) => v
                .to_str()
                .ok()
                .and_then(Encoding::parse)
                .ok_or_else(|| Failure::unsupported_encoding(&format!("{v:?}"), GRPC_ENCODINGS))?,
        };
        let limits = self.limits();
        let limit = limits.max_body_bytes;
        let deadline = Instant::now() + limits.body_timeout;
        let mut claim = self.claim();
        let received =
            read_limited(body, limit.saturating_add(PREFIX), deadline, &mut claim, |so_far, data| {
                if so_far.len() >= PREFIX {
                    return Ok(());
                }
                let head: Vec<u8> = so_far.iter().chain(data.iter()).take(PREFIX).copied().collect();
                match head.get(1..PREFIX) {
                    Some(&[a, b, c, d]) => {
                        let len = u32::from_be_bytes([a, b, c, d]) as usize;
                        if len > limit { Err(too_large(len, limit)) } else { Ok(()) }
                    }
                    _ => Ok(()),
                }
            })
            .await
            .map_err(|e| match e {
                super::body::ReadError::TooLarge => Failure::body_too_large(limit),
                super::body::ReadError::Timeout => Failure::timeout(limits.body_timeout),
                super::body::ReadError::Budget(f) => f,
                super::body::ReadError::Transport(e) => Failure::bad_request(format!("reading request: {e}")),
            })?;
        let Some(&[flag, a, b, c, d]) = received.get(..PREFIX) else {
            return Err(Failure::bad_request("missing request message"));
        };
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        let have = received.len() - PREFIX;
        if have < len {
            return Err(Failure::bad_request(format!("request message truncated: {have} of {len} bytes")));
        }
        if have > len {
            return Err(Failure::bad_request("more than one request message in a unary call"));
        }
        let message = received.slice(PREFIX..);
        let body = match (flag, encoding) {
            (0, _) => message,
            (1, Encoding::Identity) => {
                return Err(Failure::bad_request("compressed message without a grpc-encoding"));
            }
            (1, encoding) => self.inflate(message, encoding, &mut claim)?,
            (other, _) => return Err(Failure::bad_request(format!("invalid compressed flag {other}"))),
        };
        self.update_gauge();
        Ok(Incoming { format: (), body, claim, tenant: tenant_of(parts) })
    }
}

/// A successful unary reply: `message`, then `grpc-status: 0`.
pub fn grpc_reply(message: &impl prost::Message) -> Response {
    let len = message.encoded_len();
    let mut frame = BytesMut::with_capacity(PREFIX + len);
    frame.put_u8(0);
    frame.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Encoding into a buffer with room for it cannot fail.
    let _ = message.encode(&mut frame);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(frame.freeze()).with_trailers(std::future::ready(Some(Ok(trailers))));
    let mut response = Response::new(Body::new(body));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// A failed call: a trailers-only response with the status (and a
/// `RetryInfo` for refusals). A request that is not gRPC at all gets
/// HTTP 415, as the gRPC spec says.
pub fn grpc_failure(failure: &Failure) -> Response {
    if failure.kind() == FailureKind::UnsupportedMediaType {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, failure.message().to_owned()).into_response();
    }
    let mut response = failure.grpc_status().into_http::<Body>();
    if failure.kind() == FailureKind::UnsupportedEncoding {
        response.headers_mut().insert("grpc-accept-encoding", HeaderValue::from_static(GRPC_ENCODINGS));
    }
    response
}

/// `UNIMPLEMENTED` for a method this server does not serve.
pub fn grpc_unimplemented(path: &str) -> Response {
    tonic::Status::unimplemented(format!("unknown method {path}")).into_http::<Body>()
}
