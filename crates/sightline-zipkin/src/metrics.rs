//! The receiver's metrics, counted once per request at the stage boundary
//! (never per span in a log).

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The body format a request declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// A JSON list of spans.
    Json,
    /// A protobuf `ListOfSpans`.
    Protobuf,
    /// Neither (refused as unsupported).
    Unknown,
}

impl EncodeLabelValue for Format {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Format::Json => "json",
            Format::Protobuf => "protobuf",
            Format::Unknown => "unknown",
        })
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RequestOutcome {
    /// Every span accepted (or an empty list).
    Ok,
    /// Some spans rejected for invalid ids, the rest accepted.
    Partial,
    /// Undecodable body, malformed id, or nothing valid.
    BadRequest,
    /// Body over the size limit.
    TooLarge,
    /// Unsupported Content-Type or Content-Encoding.
    Unsupported,
    /// Refused retryably: in-flight budget spent or the consumer refused.
    Refused,
}

impl EncodeLabelValue for RequestOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::Partial => "partial",
            RequestOutcome::BadRequest => "bad_request",
            RequestOutcome::TooLarge => "too_large",
            RequestOutcome::Unsupported => "unsupported",
            RequestOutcome::Refused => "refused",
        })
    }
}

/// What happened to decoded spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SpanOutcome {
    /// Acknowledged by the consumer.
    Accepted,
    /// Skipped for an all-zero trace or span id.
    Rejected,
    /// Refused by the consumer (the sender may retry them).
    Refused,
}

impl EncodeLabelValue for SpanOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            SpanOutcome::Accepted => "accepted",
            SpanOutcome::Rejected => "rejected",
            SpanOutcome::Refused => "refused",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    format: Format,
    outcome: RequestOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SpanLabels {
    outcome: SpanOutcome,
}

/// Zipkin receiver metrics, registered as `sightline_zipkin_requests_total`
/// `{format, outcome}` and `sightline_zipkin_spans_total{outcome}`.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    spans: Family<SpanLabels, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Metrics { requests: Family::default(), spans: Family::default() };
        let r = registry.sub_registry_with_prefix("sightline_zipkin");
        r.register("requests", "Zipkin span POSTs, by body format and outcome", m.requests.clone());
        r.register("spans", "Zipkin spans decoded, by outcome", m.spans.clone());
        m
    }

    pub(crate) fn request(&self, format: Format, outcome: RequestOutcome) {
        self.requests.get_or_create(&RequestLabels { format, outcome }).inc();
    }

    pub(crate) fn spans(&self, outcome: SpanOutcome, n: u64) {
        if n > 0 {
            self.spans.get_or_create(&SpanLabels { outcome }).inc_by(n);
        }
    }
}
