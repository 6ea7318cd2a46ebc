//! Debug exporter: prints spans to the log, like the Collector's `debug`
//! exporter. For trying pipelines out, not for production volumes.

use async_trait::async_trait;
use sightline_model::{Batch, ConsumeError, TracesConsumer};

use crate::Component;

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// One line per batch: span and trace counts.
    Basic,
    /// One line per span: ids, service, name, duration, status.
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
impl Component for DebugExporter {
    fn id(&self) -> &str {
        &self.id
    }
}
