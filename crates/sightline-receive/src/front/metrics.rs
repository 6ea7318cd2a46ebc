//! Every receiver's metrics, counted once per request at the stage
//! boundary (never per item in a log), labelled by receiver (`otlp`,
//! `zipkin`), signal and protocol. Items have one counter per signal,
//! named as the Collector names them: spans, log records, metric points.

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

/// The kind of telemetry a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Log records.
    Logs,
    /// Metrics (counted in data points).
    Metrics,
}

impl Signal {
    /// The label value: `traces`, `logs`, `metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
}

impl EncodeLabelValue for Signal {
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

/// Where a request came in: receiver name, signal and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Source {
    /// The receiver, as named in the pipeline config (`otlp`, `zipkin`).
    pub receiver: &'static str,
    /// What the request carries.
    pub signal: Signal,
    /// The protocol.
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    receiver: &'static str,
    signal: Signal,
    protocol: Protocol,
    outcome: RequestOutcome,
}

/// The labels of per-signal families (the name says the signal).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Where {
    receiver: &'static str,
    protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ItemLabels {
    receiver: &'static str,
    protocol: Protocol,
    outcome: ItemOutcome,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// One signal's item counter and batch-size histogram.
#[derive(Debug)]
struct Items {
    counter: Family<ItemLabels, Counter>,
    batch: HistogramFamily<Where>,
}

impl Items {
    fn new() -> Items {
        Items { counter: Family::default(), batch: Family::new_with_constructor(items_histogram) }
    }
}

/// Receiver metrics, registered under `sightline_receive_`.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    spans: Items,
    log_records: Items,
    metric_points: Items,
    request_bytes: HistogramFamily<Source>,
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
            spans: Items::new(),
            log_records: Items::new(),
            metric_points: Items::new(),
            request_bytes: Family::new_with_constructor(bytes_histogram),
            inflight_bytes: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("sightline_receive");
        r.register(
            "requests",
            "Export requests, by receiver, signal, protocol and outcome",
            m.requests.clone(),
        );
        for (items, name, what) in [
            (&m.spans, "spans", "Spans"),
            (&m.log_records, "log_records", "Log records"),
            (&m.metric_points, "metric_points", "Metric data points"),
        ] {
            r.register(
                name,
                format!("{what} received, by receiver, protocol and outcome"),
                items.counter.clone(),
            );
            r.register(
                format!("batch_{name}"),
                format!("{what} per batch handed to the consumer"),
                items.batch.clone(),
            );
        }
        r.register(
            "request_bytes",
            "Size of export request bodies after decompression",
            m.request_bytes.clone(),
        );
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
            .get_or_create(&RequestLabels {
                receiver: source.receiver,
                signal: source.signal,
                protocol: source.protocol,
                outcome,
            })
            .inc();
    }

    fn items_of(&self, signal: Signal) -> &Items {
        match signal {
            Signal::Traces => &self.spans,
            Signal::Logs => &self.log_records,
            Signal::Metrics => &self.metric_points,
        }
    }

    /// Counts `n` items of the source's signal (spans, log records, data
    /// points).
    pub fn items(&self, source: Source, outcome: ItemOutcome, n: u64) {
        if n > 0 {
            self.items_of(source.signal)
                .counter
                .get_or_create(&ItemLabels { receiver: source.receiver, protocol: source.protocol, outcome })
                .inc_by(n);
        }
    }

    /// Records a request body's size after decompression.
    pub fn request_bytes(&self, source: Source, bytes: usize) {
        self.request_bytes.get_or_create(&source).observe(bytes as f64);
    }

    /// Records the items in one batch handed on.
    pub fn batch_items(&self, source: Source, items: usize) {
        self.items_of(source.signal)
            .batch
            .get_or_create(&Where { receiver: source.receiver, protocol: source.protocol })
            .observe(items as f64);
    }

    pub(crate) fn set_inflight(&self, bytes: usize) {
        self.inflight_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
