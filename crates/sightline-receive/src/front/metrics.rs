//! Every receiver's metrics, counted once per request at the stage
//! boundary (never per span in a log), labelled by receiver (`otlp`,
//! `zipkin`) and protocol.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The wire protocol a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// gRPC.
    Grpc,
    /// HTTP with a binary protobuf body.
    HttpProtobuf,
    /// HTTP with a JSON body.
    HttpJson,
    /// HTTP whose Content-Type is neither (refused as unsupported).
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
pub enum RequestOutcome {
    /// Every item accepted (or an empty request).
    Ok,
    /// Some items rejected, the rest accepted.
    Partial,
    /// Undecodable body.
    BadRequest,
    /// Body over a size limit.
    TooLarge,
    /// Unsupported content type or encoding.
    Unsupported,
    /// The body did not arrive in time.
    Timeout,
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
            RequestOutcome::Timeout => "timeout",
            RequestOutcome::Refused => "refused",
        })
    }
}

/// What happened to decoded items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemOutcome {
    /// Acknowledged by the consumer.
    Accepted,
    /// Rejected as invalid (partial success).
    Rejected,
    /// Decoded but refused by the consumer (the sender retries them).
    Refused,
}

impl EncodeLabelValue for ItemOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            ItemOutcome::Accepted => "accepted",
            ItemOutcome::Rejected => "rejected",
            ItemOutcome::Refused => "refused",
        })
    }
}

/// Where a request came in: receiver name and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Source {
    /// The receiver, as named in the pipeline config (`otlp`, `zipkin`).
    pub receiver: &'static str,
    /// The protocol.
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    receiver: &'static str,
    protocol: Protocol,
    outcome: RequestOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ItemLabels {
    receiver: &'static str,
    protocol: Protocol,
    outcome: ItemOutcome,
}

type HistogramFamily = Family<Source, Histogram, fn() -> Histogram>;

/// Receiver metrics, registered under `sightline_receive_`.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    spans: Family<ItemLabels, Counter>,
    request_bytes: HistogramFamily,
    batch_spans: HistogramFamily,
    inflight_bytes: Gauge,
}

fn bytes_histogram() -> Histogram {
    // 256 B … 64 MiB.
    Histogram::new(exponential_buckets(256.0, 4.0, 10))
}

fn items_histogram() -> Histogram {
    // 1 … 32768 items.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Metrics {
            requests: Family::default(),
            spans: Family::default(),
            request_bytes: Family::new_with_constructor(bytes_histogram),
            batch_spans: Family::new_with_constructor(items_histogram),
            inflight_bytes: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("sightline_receive");
        r.register("requests", "Export requests, by receiver, protocol and outcome", m.requests.clone());
        r.register("spans", "Spans received, by receiver, protocol and outcome", m.spans.clone());
        r.register(
            "request_bytes",
            "Size of export request bodies after decompression",
            m.request_bytes.clone(),
        );
        r.register("batch_spans", "Spans per batch handed to the consumer", m.batch_spans.clone());
        r.register(
            "inflight_bytes",
            "Bytes the receivers hold for requests being read, decoded or consumed (the in-flight budget in use, \
             updated per request)",
            m.inflight_bytes.clone(),
        );
        m
    }

    /// Counts one request.
    pub fn request(&self, source: Source, outcome: RequestOutcome) {
        self.requests
            .get_or_create(&RequestLabels { receiver: source.receiver, protocol: source.protocol, outcome })
            .inc();
    }

    /// Counts `n` spans.
    pub fn spans(&self, source: Source, outcome: ItemOutcome, n: u64) {
        if n > 0 {
            self.spans
                .get_or_create(&ItemLabels { receiver: source.receiver, protocol: source.protocol, outcome })
                .inc_by(n);
        }
    }

    /// Records a request body's size after decompression.
    pub fn request_bytes(&self, source: Source, bytes: usize) {
        self.request_bytes.get_or_create(&source).observe(bytes as f64);
    }

    /// Records the spans in one batch handed on.
    pub fn batch_spans(&self, source: Source, spans: usize) {
        self.batch_spans.get_or_create(&source).observe(spans as f64);
    }

    pub(crate) fn set_inflight(&self, bytes: usize) {
        self.inflight_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
