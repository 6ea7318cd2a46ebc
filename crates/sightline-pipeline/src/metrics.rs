//! Pipeline metrics, one set shared by all components and labelled by
//! component id.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub(crate) type Labels = Vec<(String, String)>;

/// Metrics under `sightline_pipeline_`.
#[derive(Debug)]
pub struct Metrics {
    pub(crate) refused: Family<Labels, Counter>,
    pub(crate) memory_bytes: Gauge,
    pub(crate) sampled: Family<Labels, Counter>,
    pub(crate) redacted: Family<Labels, Counter>,
    pub(crate) batch_spans: Histogram,
    pub(crate) exported: Family<Labels, Counter>,
    pub(crate) exported_log_records: Family<Labels, Counter>,
    pub(crate) exported_metric_points: Family<Labels, Counter>,
    pub(crate) metric_points_dropped: Family<Labels, Counter>,
    pub(crate) queue_bytes: Family<Labels, Gauge>,
    pub(crate) queue_records: Family<Labels, Gauge>,
    pub(crate) tail_pending_traces: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            refused: Family::default(),
            memory_bytes: Gauge::default(),
            sampled: Family::default(),
            redacted: Family::default(),
            batch_spans: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            exported: Family::default(),
            exported_log_records: Family::default(),
            exported_metric_points: Family::default(),
            metric_points_dropped: Family::default(),
            queue_bytes: Family::default(),
            queue_records: Family::default(),
            tail_pending_traces: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("sightline_pipeline");
        r.register(
            "refused",
            "Batches refused with a retryable error, by component and reason",
            m.refused.clone(),
        );
        r.register(
            "memory_bytes",
            "Resident memory the memory limiter last measured",
            m.memory_bytes.clone(),
        );
        r.register(
            "sampled_spans",
            "Spans kept or dropped by samplers, by component and decision",
            m.sampled.clone(),
        );
        r.register(
            "redacted",
            "Attribute keys deleted and values masked, by component and kind",
            m.redacted.clone(),
        );
        r.register("batch_spans", "Spans per batch sent by the batch processor", m.batch_spans.clone());
        r.register(
            "exported_spans",
            "Spans handed to exporters, by exporter and outcome",
            m.exported.clone(),
        );
        r.register(
            "exported_log_records",
            "Log records handed to exporters, by exporter and outcome",
            m.exported_log_records.clone(),
        );
        r.register(
            "exported_metric_points",
            "Metric data points handed to exporters, by exporter and outcome",
            m.exported_metric_points.clone(),
        );
        r.register(
            "metric_points_dropped",
            "Metric data points a Prometheus exporter cannot express, by exporter and reason",
            m.metric_points_dropped.clone(),
        );
        r.register("queue_bytes", "Bytes waiting in an exporter's persistent queue", m.queue_bytes.clone());
        r.register(
            "queue_records",
            "Batches waiting in an exporter's persistent queue",
            m.queue_records.clone(),
        );
        r.register(
            "tail_pending_traces",
            "Traces the tail sampler holds awaiting a decision",
            m.tail_pending_traces.clone(),
        );
        m
    }
}

impl Metrics {
    /// Items handed to exporters, for one signal's items.
    pub(crate) fn exported(&self, signal: crate::Signal) -> &Family<Labels, Counter> {
        match signal {
            crate::Signal::Traces => &self.exported,
            crate::Signal::Logs => &self.exported_log_records,
            crate::Signal::Metrics => &self.exported_metric_points,
        }
    }
}

pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}
