//! The front every receiver shares — OTLP traces, logs and metrics, and
//! Zipkin: everything between the socket and a decoder, written once.
//!
//! A receiver's handler is three calls around its own decode function:
//!
//! 1. [`Front::read_http`] (or [`Front::read_grpc`]) checks the
//!    Content-Type against the receiver's formats, reads the body within
//!    the size limit and the body timeout, inflates gzip/deflate (the limit
//!    applying after inflation), and charges every byte to the in-flight
//!    budget as it arrives. It returns an [`Incoming`]: format, bytes, the
//!    request's [`Claim`] on the budget, and its [`Tenant`].
//! 2. The receiver decodes. Before it allocates, it charges the claim for
//!    what the decoded form will take ([`cost`]), so no body — however many
//!    empty objects it packs — takes memory past the budget.
//! 3. [`Front::hand_on`] runs the consumer in its own task (a sender that
//!    hangs up never cancels an append halfway), holding the claim until it
//!    returns, and maps a refusal to a [`Failure`].
//!
//! A [`Failure`] knows its HTTP status (400, 408, 413, 415, 429/503 +
//! `Retry-After`) and gRPC status (`UNAVAILABLE` + `RetryInfo` for
//! refusals); [`Metrics`] counts requests and items by receiver, protocol
//! and outcome.

mod body;
mod budget;
pub mod cost;
mod failure;
mod grpc;
mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::HttpBody;
use bytes::Bytes;
use http::request::Parts;
use sightline_model::{ConsumeError, Tenant};
use tokio::time::Instant;

pub use budget::Claim;
pub use failure::{Failure, FailureKind};
pub use grpc::{grpc_failure, grpc_reply, grpc_unimplemented};
pub use metrics::{ItemOutcome, Metrics, Protocol, RequestOutcome, Signal, Source};

use body::{Encoding, InflateError, ReadError, inflate_limited, media_type, read_limited};
pub(crate) use budget::Budget;

/// Limits every receiver shares, set in code by the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest body (or gRPC message) accepted, both as received and after
    /// decompression, so a gzip bomb stops early; over it → 413 /
    /// `RESOURCE_EXHAUSTED`. Default 20 MiB, OTLP's recommendation.
    pub max_body_bytes: usize,
    /// Bytes all receivers together may hold for requests being read,
    /// inflated, decoded (estimated before decoding) or consumed; over it
    /// requests are refused retryably. Default 128 MiB.
    pub max_inflight_bytes: usize,
    /// Time a request body may take to arrive, from the handler's start;
    /// over it → 408 / `DEADLINE_EXCEEDED`. Default 30 s.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 20 << 20,
            max_inflight_bytes: 128 << 20,
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The shared front: limits, in-flight budget, metrics. Cheap to clone;
/// clones share the budget.
#[derive(Clone)]
pub struct Front {
    shared: Arc<Shared>,
}

struct Shared {
    limits: Limits,
    budget: Budget,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Front").field("limits", &self.shared.limits).finish_non_exhaustive()
    }
}

/// A request body read within limits.
#[derive(Debug)]
pub struct Incoming<F> {
    /// The format its Content-Type named.
    pub format: F,
    /// The body, inflated.
    pub body: Bytes,
    /// What the request holds of the in-flight budget; grow it before
    /// decoding and keep it until the consumer is done.
    pub claim: Claim,
    /// Who the data belongs to (set by the auth layer; the default tenant
    /// when none ran).
    pub tenant: Tenant,
}

impl Front {
    /// A front with its own budget.
    pub fn new(limits: Limits, metrics: Arc<Metrics>) -> Self {
        let budget = Budget::new(limits.max_inflight_bytes);
        Front { shared: Arc::new(Shared { limits, budget, metrics }) }
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// The receivers' metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// An empty claim on the budget.
    pub fn claim(&self) -> Claim {
        self.shared.budget.claim()
    }

    /// Bytes of the budget free now.
    pub fn available(&self) -> usize {
        self.shared.budget.available()
    }

    fn update_gauge(&self) {
        let budget = &self.shared.budget;
        self.shared.metrics.set_inflight(budget.capacity().saturating_sub(budget.available()));
    }

    /// Reads an HTTP request body: Content-Type must be one of `formats`
    /// (`(media type, format)`), Content-Encoding gzip, deflate or
    /// identity; the body must arrive within the body timeout and fit the
    /// size limit on the wire and inflated.
    pub async fn read_http<F: Copy, B>(
        &self,
        parts: &Parts,
        body: B,
        formats: &[(&str, F)],
    ) -> Result<Incoming<F>, Failure>
    where
        B: HttpBody<Data = Bytes>,
        B::Error: std::fmt::Display,
    {
        let format = media_type(&parts.headers, formats)?;
        let encoding = Encoding::of(&parts.headers)?;
        let limits = &self.shared.limits;
        let deadline = Instant::now() + limits.body_timeout;
        let mut claim = self.claim();
        let received = read_limited(body, limits.max_body_bytes, deadline, &mut claim, |_, _| Ok(()))
            .await
            .map_err(|e| self.read_failure(e))?;
        let body = self.inflate(received, encoding, &mut claim)?;
        self.update_gauge();
        Ok(Incoming { format, body, claim, tenant: tenant_of(parts) })
    }

    fn read_failure(&self, e: ReadError) -> Failure {
        match e {
            ReadError::TooLarge => Failure::body_too_large(self.shared.limits.max_body_bytes),
            ReadError::Timeout => Failure::timeout(self.shared.limits.body_timeout),
            ReadError::Budget(f) => f,
            ReadError::Transport(e) => Failure::bad_request(format!("reading request body: {e}")),
        }
    }

    fn inflate(&self, body: Bytes, encoding: Encoding, claim: &mut Claim) -> Result<Bytes, Failure> {
        let limit = self.shared.limits.max_body_bytes;
        inflate_limited(body, encoding, limit, claim).map_err(|e| match e {
            InflateError::TooLarge => Failure::body_too_large(limit),
            InflateError::Budget(f) => f,
            InflateError::Corrupt(e) => Failure::bad_request(format!("invalid compressed body: {e}")),
        })
    }

    /// Runs `work` (the consumer taking a decoded batch) in its own task,
    /// so a sender hanging up mid-request never cancels an append halfway,
    /// and holds `claim` until it returns. A refusal becomes the matching
    /// retryable [`Failure`].
    pub async fn hand_on<W>(&self, claim: Claim, work: W) -> Result<(), Failure>
    where
        W: Future<Output = Result<(), ConsumeError>> + Send + 'static,
    {
        self.update_gauge();
        let task = tokio::spawn(async move {
            let result = work.await;
            drop(claim);
            result
        });
        let result = match task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Failure::consume(&err)),
            Err(join) => {
                tracing::error!(error = %join, "consumer task failed");
                Err(Failure::crashed())
            }
        };
        self.update_gauge();
        result
    }
}

/// The tenant the auth layer put in the request, or the default one.
pub fn tenant_of(parts: &Parts) -> Tenant {
    parts.extensions.get::<Tenant>().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests;
