//! The receivers' own metrics, counted once per request at the stage
//! boundary (never per span in a log).

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The wire protocol a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with a binary protobuf body.
    HttpProtobuf,
    /// OTLP/HTTP with a JSON body.
    HttpJson,
    /// OTLP/HTTP whose Content-Type is neither (refused as unsupported).
    Http,
}

impl Protocol {
    fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http_protobuf",
            Protocol::HttpJson => "http_json",
            Protocol::Http => "http",
        }
    }
}

impl EncodeLabelValue for Protocol {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RequestOutcome {
    /// Every span accepted (or an empty request).
    Ok,
    /// Some spans rejected, the rest accepted.
    Partial,
    /// Undecodable body.
    BadRequest,
    /// Body over the size limit.
    TooLarge,
    /// Unsupported content type or encoding.
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

/// What happened to spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SpanOutcome {
    /// Acknowledged by the consumer.
    Accepted,
    /// Rejected as invalid (partial success).
    Rejected,
    /// Decoded but refused by the consumer (the sender retries them).
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
    protocol: Protocol,
    outcome: RequestOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SpanLabels {
    protocol: Protocol,
    outcome: SpanOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: Protocol,
}

type HistogramFamily = Family<ProtocolLabels, Histogram, fn() -> Histogram>;

/// Receiver metrics, registered under `sightline_receive_`.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    spans: Family<SpanLabels, Counter>,
    request_bytes: HistogramFamily,
    batch_spans: HistogramFamily,
}

fn bytes_histogram() -> Histogram {
    // 256 B … 64 MiB.
    Histogram::new(exponential_buckets(256.0, 4.0, 10))
}

fn spans_histogram() -> Histogram {
    // 1 … 32768 spans.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Metrics {
            requests: Family::default(),
            spans: Family::default(),
            request_bytes: Family::new_with_constructor(bytes_histogram),
            batch_spans: Family::new_with_constructor(spans_histogram),
        };
        let r = registry.sub_registry_with_prefix("sightline_receive");
        r.register("requests", "Export requests, by protocol and outcome", m.requests.clone());
        r.register("spans", "Spans received, by protocol and outcome", m.spans.clone());
        r.register(
            "request_bytes",
            "Size of export request bodies after decompression",
            m.request_bytes.clone(),
        );
        r.register("batch_spans", "Spans per batch handed to the consumer", m.batch_spans.clone());
        m
    }

    pub(crate) fn request(&self, protocol: Protocol, outcome: RequestOutcome) {
        self.requests.get_or_create(&RequestLabels { protocol, outcome }).inc();
    }

    pub(crate) fn spans(&self, protocol: Protocol, outcome: SpanOutcome, n: u64) {
        if n > 0 {
            self.spans.get_or_create(&SpanLabels { protocol, outcome }).inc_by(n);
        }
    }

    pub(crate) fn request_bytes(&self, protocol: Protocol, bytes: usize) {
        self.request_bytes.get_or_create(&ProtocolLabels { protocol }).observe(bytes as f64);
    }

    pub(crate) fn batch_spans(&self, protocol: Protocol, spans: usize) {
        self.batch_spans.get_or_create(&ProtocolLabels { protocol }).observe(spans as f64);
    }
}
