use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;

use crate::{KeyValue, Resource, Scope, SpanId, Tenant, TraceId, otlp};

/// One metric (a named stream of data points of one kind), as OTLP defines
/// it, with its resource and scope shared by `Arc` like a span's.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Name, e.g. `http.server.request.duration`.
    pub name: String,
    /// Description (Prometheus' HELP).
    pub description: String,
    /// UCUM unit, e.g. `s`, `By`, `{request}`, `1`.
    pub unit: String,
    /// Extra metadata the sender attached (OTLP `Metric.metadata`).
    pub metadata: Vec<KeyValue>,
    /// The kind and its data points.
    pub data: MetricData,
    /// The emitting entity (service).
    pub resource: Arc<Resource>,
    /// The instrumentation scope (meter).
    pub scope: Arc<Scope>,
}

impl Metric {
    /// Number of data points.
    pub fn data_points(&self) -> usize {
        match &self.data {
            MetricData::Empty => 0,
            MetricData::Gauge(p) => p.len(),
            MetricData::Sum { points, .. } => points.len(),
            MetricData::Histogram { points, .. } => points.len(),
            MetricData::ExponentialHistogram { points, .. } => points.len(),
            MetricData::Summary(p) => p.len(),
        }
    }
}

/// A metric's kind and data points.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricData {
    /// No data was set (OTLP allows it; nothing to export).
    Empty,
    /// Last values.
    Gauge(Vec<NumberPoint>),
    /// Sums over time: a counter when monotonic.
    Sum {
        /// The points.
        points: Vec<NumberPoint>,
        /// Delta or cumulative.
        temporality: Temporality,
        /// Only ever grows (a counter).
        monotonic: bool,
    },
    /// Explicit-bucket histograms.
    Histogram {
        /// The points.
        points: Vec<HistogramPoint>,
        /// Delta or cumulative.
        temporality: Temporality,
    },
    /// Base-2 exponential histograms.
    ExponentialHistogram {
        /// The points.
        points: Vec<ExponentialHistogramPoint>,
        /// Delta or cumulative.
        temporality: Temporality,
    },
    /// Precomputed quantiles (legacy, e.g. from Prometheus summaries).
    Summary(Vec<SummaryPoint>),
}

/// How a sum or histogram accumulates over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Temporality {
    /// Not set (invalid for sums and histograms, kept as received).
    Unspecified,
    /// Each point covers only the time since the previous one.
    Delta,
    /// Each point covers the time since `start_time_unix_nano`.
    Cumulative,
}

impl Temporality {
    /// From OTLP's `AggregationTemporality` number.
    pub fn from_i32(n: i32) -> Temporality {
        match n {
            1 => Temporality::Delta,
            2 => Temporality::Cumulative,
            _ => Temporality::Unspecified,
        }
    }

    /// OTLP's `AggregationTemporality` number.
    pub fn as_i32(self) -> i32 {
        match self {
            Temporality::Unspecified => 0,
            Temporality::Delta => 1,
            Temporality::Cumulative => 2,
        }
    }
}

/// A number as OTLP carries it: integer or float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
}

impl Number {
    /// As a float (integers beyond 2^53 lose precision, as in Prometheus).
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Double(d) => d,
        }
    }
}

/// `DataPointFlags.FLAG_NO_RECORDED_VALUE`: the series has no value at this
/// time (it went away); exporters mark it stale.
pub const NO_RECORDED_VALUE: u32 = 1;

/// A gauge or sum data point.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberPoint {
    /// The series' attributes.
    pub attributes: Vec<KeyValue>,
    /// Start of the interval (cumulative: since the series began), ns.
    pub start_time_unix_nano: u64,
    /// When the value was taken, ns.
    pub time_unix_nano: u64,
    /// The value; `None` when the sender set none.
    pub value: Option<Number>,
    /// Sample measurements with trace context.
    pub exemplars: Vec<Exemplar>,
    /// `DataPointFlags`.
    pub flags: u32,
}

/// An explicit-bucket histogram data point.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    /// The series' attributes.
    pub attributes: Vec<KeyValue>,
    /// Start of the interval, ns.
    pub start_time_unix_nano: u64,
    /// End of the interval, ns.
    pub time_unix_nano: u64,
    /// Number of measurements.
    pub count: u64,
    /// Their sum, when the sender recorded it.
    pub sum: Option<f64>,
    /// Per-bucket counts: `explicit_bounds.len() + 1` of them (or none).
    pub bucket_counts: Vec<u64>,
    /// Upper bounds of all buckets but the last, increasing.
    pub explicit_bounds: Vec<f64>,
    /// Sample measurements with trace context.
    pub exemplars: Vec<Exemplar>,
    /// `DataPointFlags`.
    pub flags: u32,
    /// Smallest measurement, when recorded.
    pub min: Option<f64>,
    /// Largest measurement, when recorded.
    pub max: Option<f64>,
}

/// Counts of consecutive exponential buckets from `offset` on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExponentialBuckets {
    /// Index of the first bucket.
    pub offset: i32,
    /// Counts.
    pub bucket_counts: Vec<u64>,
}

/// A base-2 exponential histogram data point.
#[derive(Debug, Clone, PartialEq)]
pub struct ExponentialHistogramPoint {
    /// The series' attributes.
    pub attributes: Vec<KeyValue>,
    /// Start of the interval, ns.
    pub start_time_unix_nano: u64,
    /// End of the interval, ns.
    pub time_unix_nano: u64,
    /// Number of measurements.
    pub count: u64,
    /// Their sum, when recorded.
    pub sum: Option<f64>,
    /// Resolution: bucket boundaries are powers of `2^(2^-scale)`.
    pub scale: i32,
    /// Measurements within `zero_threshold` of zero.
    pub zero_count: u64,
    /// Buckets of positive measurements.
    pub positive: ExponentialBuckets,
    /// Buckets of negative measurements.
    pub negative: ExponentialBuckets,
    /// `DataPointFlags`.
    pub flags: u32,
    /// Sample measurements with trace context.
    pub exemplars: Vec<Exemplar>,
    /// Smallest measurement, when recorded.
    pub min: Option<f64>,
    /// Largest measurement, when recorded.
    pub max: Option<f64>,
    /// Width of the zero bucket.
    pub zero_threshold: f64,
}

/// A summary data point: count, sum and quantiles.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryPoint {
    /// The series' attributes.
    pub attributes: Vec<KeyValue>,
    /// Start of the interval, ns.
    pub start_time_unix_nano: u64,
    /// End of the interval, ns.
    pub time_unix_nano: u64,
    /// Number of measurements.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// `(quantile, value)` pairs, quantiles in 0–1.
    pub quantile_values: Vec<(f64, f64)>,
    /// `DataPointFlags`.
    pub flags: u32,
}

/// A measurement kept as an example, with the trace it was taken in.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    /// Attributes of the measurement not in the series' attributes.
    pub filtered_attributes: Vec<KeyValue>,
    /// When it was taken, ns.
    pub time_unix_nano: u64,
    /// The measured value (`None` if the sender set none).
    pub value: Option<Number>,
    /// The span it was taken in.
    pub span_id: Option<SpanId>,
    /// The trace it was taken in.
    pub trace_id: Option<TraceId>,
}

/// A unit of metric ingest: decoded metrics plus their OTLP protobuf
/// encoding, as [`crate::Batch`] is for spans. Invariant: `otlp` decodes
/// (with [`otlp::decode_metrics_request`]) to exactly `metrics`.
///
/// The batch names its [`Tenant`] (the default one unless the receiver set
/// another): the exporters keep each tenant's series apart (a scrape page
/// per tenant, remote write with the tenant's `X-Scope-OrgID`).
#[derive(Debug, Clone, Default)]
pub struct MetricBatch {
    metrics: Vec<Metric>,
    otlp: Bytes,
    tenant: Tenant,
}

impl MetricBatch {
    /// Pairs decoded metrics with the `ExportMetricsServiceRequest` bytes
    /// they were decoded from. The caller guarantees the invariant; use
    /// [`MetricBatch::from_metrics`] when unsure.
    pub fn new(metrics: Vec<Metric>, otlp: Bytes) -> Self {
        MetricBatch { metrics, otlp, tenant: Tenant::default() }
    }

    /// Builds a batch by encoding `metrics` as an OTLP export request.
    pub fn from_metrics(metrics: Vec<Metric>) -> Self {
        let otlp = Bytes::from(otlp::encode_metrics(&metrics).encode_to_vec());
        MetricBatch { metrics, otlp, tenant: Tenant::default() }
    }

    /// The same batch, owned by `tenant`.
    pub fn with_tenant(mut self, tenant: Tenant) -> Self {
        self.tenant = tenant;
        self
    }

    /// Who the series belong to.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The metrics.
    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// The OTLP `ExportMetricsServiceRequest` protobuf encoding.
    pub fn otlp_bytes(&self) -> &Bytes {
        &self.otlp
    }

    /// Number of data points over all metrics (what OTLP partial success
    /// and the batch processor count).
    pub fn data_points(&self) -> usize {
        self.metrics.iter().map(Metric::data_points).sum()
    }

    /// Whether the batch has no metrics.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
    }

    /// Splits the batch into its metrics and encoding.
    pub fn into_parts(self) -> (Vec<Metric>, Bytes) {
        (self.metrics, self.otlp)
    }
}
