//! Why a request failed, and how each protocol says so.
//!
//! One type for every receiver, so an overload means the same retry signal
//! everywhere: HTTP 429 (over a limit) or 503 (unavailable) with
//! `Retry-After`, gRPC `UNAVAILABLE` with a `google.rpc.RetryInfo`. The
//! receivers only choose the body's encoding.

use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{HeaderMap, HeaderValue, StatusCode};
use sightline_model::ConsumeError;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt as _};

use super::metrics::RequestOutcome;

/// Retry delay suggested when the in-flight budget is spent.
pub(crate) const INFLIGHT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Delay suggested when a consumer task died.
const CRASHED_RETRY_AFTER: Duration = Duration::from_secs(5);

/// What kind of failure: decides the status codes and the metric outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// Undecodable or invalid body (400, `INVALID_ARGUMENT`).
    BadRequest,
    /// Over a size limit (413, `RESOURCE_EXHAUSTED`, not retried by OTLP
    /// clients).
    TooLarge,
    /// Unsupported Content-Type (415).
    UnsupportedMediaType,
    /// Unsupported Content-Encoding or `grpc-encoding` (415,
    /// `UNIMPLEMENTED`).
    UnsupportedEncoding,
    /// The body did not arrive in time (408, `DEADLINE_EXCEEDED`).
    Timeout,
    /// Over a limit now: retry later (429, `UNAVAILABLE` + `RetryInfo`).
    Overloaded,
    /// Cannot take data now: retry later (503, `UNAVAILABLE` + `RetryInfo`).
    Unavailable,
}

/// A failed request: kind, a message for the sender, and for refusals the
/// delay to retry after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    kind: FailureKind,
    message: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into(), retry_after: None }
    }

    /// Undecodable or invalid input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Failure::new(FailureKind::BadRequest, message)
    }

    /// Over a size limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Failure::new(FailureKind::TooLarge, message)
    }

    /// A body over `limit` bytes on the wire or once inflated.
    pub fn body_too_large(limit: usize) -> Self {
        Failure::too_large(format!(
            "request body exceeds the limit of {limit} bytes (after decompression too)"
        ))
    }

    /// An unsupported Content-Type; `supported` lists the accepted ones.
    pub fn unsupported_media_type(supported: &str) -> Self {
        Failure::new(
            FailureKind::UnsupportedMediaType,
            format!("415 unsupported media type, supported: [{supported}]"),
        )
    }

    /// An unsupported content encoding.
    pub fn unsupported_encoding(value: &str, supported: &str) -> Self {
        Failure::new(
            FailureKind::UnsupportedEncoding,
            format!("unsupported content encoding {value:?}; supported: {supported}"),
        )
    }

    /// The body did not arrive within `limit`.
    pub fn timeout(limit: Duration) -> Self {
        Failure::new(
            FailureKind::Timeout,
            format!("the request body did not arrive within {}s", limit.as_secs_f64()),
        )
    }

    /// The in-flight budget is spent.
    pub fn inflight() -> Self {
        Failure {
            retry_after: Some(INFLIGHT_RETRY_AFTER),
            ..Failure::new(FailureKind::Overloaded, "receiver is over its in-flight byte limit; retry later")
        }
    }

    /// A consumer's refusal.
    pub fn consume(err: &ConsumeError) -> Self {
        let kind = match err {
            ConsumeError::Overloaded { .. } => FailureKind::Overloaded,
            _ => FailureKind::Unavailable,
        };
        Failure { retry_after: Some(err.retry_after()), ..Failure::new(kind, err.to_string()) }
    }

    /// The consumer task died (a bug; logged where it happens).
    pub(crate) fn crashed() -> Self {
        Failure {
            retry_after: Some(CRASHED_RETRY_AFTER),
            ..Failure::new(FailureKind::Unavailable, "the consumer failed; retry later")
        }
    }

    /// The kind.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The message for the sender.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For refusals, when to retry.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The HTTP status.
    pub fn http_status(&self) -> StatusCode {
        match self.kind {
            FailureKind::BadRequest => StatusCode::BAD_REQUEST,
            FailureKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            FailureKind::UnsupportedMediaType | FailureKind::UnsupportedEncoding => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            FailureKind::Timeout => StatusCode::REQUEST_TIMEOUT,
            FailureKind::Overloaded => StatusCode::TOO_MANY_REQUESTS,
            FailureKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The gRPC status code (also the `code` of an OTLP/HTTP error body).
    pub fn grpc_code(&self) -> Code {
        match self.kind {
            FailureKind::BadRequest => Code::InvalidArgument,
            // RESOURCE_EXHAUSTED without RetryInfo: OTLP clients do not retry
            // it (OUT_OF_RANGE, tonic's choice, they would retry forever).
            FailureKind::TooLarge => Code::ResourceExhausted,
            FailureKind::UnsupportedMediaType => Code::InvalidArgument,
            FailureKind::UnsupportedEncoding => Code::Unimplemented,
            FailureKind::Timeout => Code::DeadlineExceeded,
            FailureKind::Overloaded | FailureKind::Unavailable => Code::Unavailable,
        }
    }

    /// The request outcome metrics count it as.
    pub fn outcome(&self) -> RequestOutcome {
        match self.kind {
            FailureKind::BadRequest => RequestOutcome::BadRequest,
            FailureKind::TooLarge => RequestOutcome::TooLarge,
            FailureKind::UnsupportedMediaType | FailureKind::UnsupportedEncoding => {
                RequestOutcome::Unsupported
            }
            FailureKind::Timeout => RequestOutcome::Timeout,
            FailureKind::Overloaded | FailureKind::Unavailable => RequestOutcome::Refused,
        }
    }

    /// Sets `Retry-After` (whole seconds, rounded up, never 0) for refusals.
    pub fn set_retry_after(&self, headers: &mut HeaderMap) {
        if let Some(delay) = self.retry_after {
            let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            headers.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
    }

    /// The gRPC status, with a `RetryInfo` detail for refusals.
    pub fn grpc_status(&self) -> tonic::Status {
        match self.retry_after {
            Some(delay) => tonic::Status::with_error_details(
                self.grpc_code(),
                self.message.clone(),
                ErrorDetails::with_retry_info(Some(delay)),
            ),
            None => tonic::Status::new(self.grpc_code(), self.message.clone()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
