//! Debug exporter: prints spans, log records or metrics to the log, like
//! the Collector's `debug` exporter. For trying pipelines out, not for
//! production volumes.

use async_trait::async_trait;
use sightline_model::{
    Batch, ConsumeError, LogBatch, LogsConsumer, MetricBatch, MetricsConsumer, TracesConsumer,
};

use crate::Component;

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// One line per batch: span and trace counts, record counts, metric
    /// and data point counts.
    Basic,
    /// One line per span (ids, service, name, duration, status), per log
    /// record (time, severity, service, ids, body) or per metric (name,
    /// kind, points).
    Detailed,
}

/// The exporter.
pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
}

impl DebugExporter {
    /// Builds the exporter.
    pub fn new(id: &str, verbosity: Verbosity) -> DebugExporter {
        DebugExporter { id: id.to_owned(), verbosity }
    }
}

#[async_trait]
impl TracesConsumer for DebugExporter {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        match self.verbosity {
            Verbosity::Basic => {
                let traces: std::collections::HashSet<_> = batch.spans().iter().map(|s| s.trace_id).collect();
                tracing::info!(exporter = %self.id, spans = batch.len(), traces = traces.len(), "debug exporter");
            }
            Verbosity::Detailed => {
                for s in batch.spans() {
                    tracing::info!(
                        exporter = %self.id,
                        trace_id = %s.trace_id,
                        span_id = %s.span_id,
                        parent = %s.parent_span_id.map(|p| p.to_string()).unwrap_or_default(),
                        service = s.service_name(),
                        name = %s.name,
                        duration_us = s.duration_nanos() / 1000,
                        status = ?s.status.code,
                        attributes = s.attributes.len(),
                        "span"
                    );
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl LogsConsumer for DebugExporter {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        match self.verbosity {
            Verbosity::Basic => tracing::info!(exporter = %self.id, records = batch.len(), "debug exporter"),
            Verbosity::Detailed => {
                for r in batch.records() {
                    tracing::info!(
                        exporter = %self.id,
                        time_unix_nano = r.time_unix_nano,
                        severity = r.severity_number,
                        severity_text = %r.severity_text,
                        service = r.service_name(),
                        trace_id = %r.trace_id.map(|t| t.to_string()).unwrap_or_default(),
                        span_id = %r.span_id.map(|s| s.to_string()).unwrap_or_default(),
                        body = %r.body.to_text(),
                        attributes = r.attributes.len(),
                        "log record"
                    );
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MetricsConsumer for DebugExporter {
    async fn consume_metrics(&self, batch: MetricBatch) -> Result<(), ConsumeError> {
        match self.verbosity {
            Verbosity::Basic => tracing::info!(
                exporter = %self.id,
                metrics = batch.metrics().len(),
                data_points = batch.data_points(),
                "debug exporter"
            ),
            Verbosity::Detailed => {
                for m in batch.metrics() {
                    tracing::info!(
                        exporter = %self.id,
                        name = %m.name,
                        unit = %m.unit,
                        service = m.resource.service_name(),
                        kind = kind(&m.data),
                        data_points = m.data_points(),
                        "metric"
                    );
                }
            }
        }
        Ok(())
    }
}

fn kind(data: &sightline_model::MetricData) -> &'static str {
    use sightline_model::MetricData as D;
    match data {
        D::Empty => "empty",
        D::Gauge(_) => "gauge",
        D::Sum { monotonic: true, .. } => "counter",
        D::Sum { .. } => "sum",
        D::Histogram { .. } => "histogram",
        D::ExponentialHistogram { .. } => "exponential_histogram",
        D::Summary(_) => "summary",
    }
}

#[async_trait]
impl Component for DebugExporter {
    fn id(&self) -> &str {
        &self.id
    }
}
