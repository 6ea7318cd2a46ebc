//! The protocol-independent half of an export: OTLP request → model batch →
//! consumer, with the outcome both transports translate into their own
//! replies.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use sightline_model::{Batch, ConsumeError, otlp};

use crate::Receiver;
use crate::metrics::{Protocol, RequestOutcome, SpanOutcome};

/// Retry delay suggested when the in-flight budget is spent.
pub(crate) const INFLIGHT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the sender should be told.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Accepted; `rejected` invalid spans were dropped (partial success).
    Accepted { rejected: u64, error_message: String },
    /// Nothing was acknowledged: retry after a delay.
    Refused(Refusal),
}

/// A retryable refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// Over a limit (HTTP 429) rather than unavailable (HTTP 503).
    pub(crate) overloaded: bool,
    /// For the sender.
    pub(crate) message: String,
    /// When to retry.
    pub(crate) retry_after: Duration,
}

impl Refusal {
    /// The in-flight byte budget is spent.
    pub(crate) fn inflight() -> Self {
        Refusal {
            overloaded: true,
            message: "receiver is over its in-flight byte limit; retry later".to_owned(),
            retry_after: INFLIGHT_RETRY_AFTER,
        }
    }

    fn from_consume(err: &ConsumeError) -> Self {
        Refusal {
            overloaded: matches!(err, ConsumeError::Overloaded { .. }),
            message: err.to_string(),
            retry_after: err.retry_after(),
        }
    }
}

impl Receiver {
    /// Decodes `request` and hands its valid spans to the consumer.
    ///
    /// `raw` is the request's exact protobuf encoding when the transport
    /// has it (the WAL then stores it as is); it is used only when no span
    /// was rejected, since otherwise it would hold spans the batch lacks.
    /// `hold` (the request's in-flight claim) is kept until the consumer
    /// returns. The consumer runs in its own task so that a sender hanging
    /// up mid-append never cancels a write halfway.
    pub(crate) async fn ingest<H: Send + 'static>(
        &self,
        protocol: Protocol,
        request: ExportTraceServiceRequest,
        raw: Option<Bytes>,
        hold: H,
    ) -> Outcome {
        let metrics = &self.shared.metrics;
        let decoded = otlp::decode_request(request);
        metrics.spans(protocol, SpanOutcome::Rejected, decoded.rejected);
        let (rejected, error_message) = (decoded.rejected, decoded.error_message);
        let accepted = || {
            metrics
                .request(protocol, if rejected == 0 { RequestOutcome::Ok } else { RequestOutcome::Partial });
            Outcome::Accepted { rejected, error_message: error_message.clone() }
        };
        if decoded.spans.is_empty() {
            return accepted();
        }
        let batch = match raw {
            Some(raw) if rejected == 0 => Batch::new(decoded.spans, raw),
            _ => Batch::from_spans(decoded.spans),
        };
        let n = batch.len();
        metrics.batch_spans(protocol, n);
        let consumer = std::sync::Arc::clone(&self.shared.consumer);
        let task = tokio::spawn(async move {
            let result = consumer.consume_traces(batch).await;
            drop(hold);
            result
        });
        let refusal = match task.await {
            Ok(Ok(())) => {
                metrics.spans(protocol, SpanOutcome::Accepted, n as u64);
                return accepted();
            }
            Ok(Err(err)) => Refusal::from_consume(&err),
            Err(join) => {
                tracing::error!(error = %join, "traces consumer task failed");
                Refusal {
                    overloaded: false,
                    message: "traces consumer failed; retry later".to_owned(),
                    retry_after: Duration::from_secs(5),
                }
            }
        };
        metrics.spans(protocol, SpanOutcome::Refused, n as u64);
        metrics.request(protocol, RequestOutcome::Refused);
        Outcome::Refused(refusal)
    }
}
