//! Turns a [`PipelineConfig`] into running consumers: one entry consumer
//! per receiver, processors chained per pipeline, exporters shared by id.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use sightline_model::{ServiceGraphReader, SpanMetricsReader, TracesConsumer};

use crate::config::{ExporterConfig, PipelineConfig, ProcessorConfig};
use crate::exporter::Fanout;
use crate::exporter::debug::DebugExporter;
use crate::exporter::otlp::OtlpExporter;
use crate::processor::attributes::AttributesProcessor;
use crate::processor::batch::BatchProcessor;
use crate::processor::memory_limiter::MemoryLimiter;
use crate::processor::probabilistic::ProbabilisticSampler;
use crate::processor::redaction::RedactionProcessor;
use crate::processor::servicegraph::{ServiceGraph, ServiceGraphProcessor};
use crate::processor::spanmetrics::{SpanMetrics, SpanMetricsProcessor};
use crate::processor::tail::TailSampler;
use crate::{Component, Metrics};

/// Exporters that live outside this crate.
#[derive(Default)]
pub struct Exporters {
    /// The embedded store, for the `store` exporter.
    pub store: Option<Arc<dyn TracesConsumer>>,
    /// The process memory budget: memory limiters publish the pressure
    /// they measure on it, and the embedded store, subscribed, cuts and
    /// flushes its head while it lasts. Without it, memory held by buffers
    /// could keep the limiter refusing forever.
    pub memory: Option<Arc<sightline_model::MemoryBudget>>,
}

/// Running pipelines.
pub struct Built {
    /// For each receiver id used by a pipeline: where it sends batches.
    pub receivers: BTreeMap<String, Arc<dyn TracesConsumer>>,
    /// Every component, in shutdown order (entry side first, so buffered
    /// data flows into exporters before they stop).
    pub components: Vec<Arc<dyn Component>>,
    /// The first span metrics processor's reader (pipeline order), for
    /// Jaeger's `/api/metrics/*`.
    pub span_metrics: Option<Arc<dyn SpanMetricsReader>>,
    /// The service graph processor's reader, for `/api/dependencies`.
    pub service_graph: Option<Arc<dyn ServiceGraphReader>>,
}

impl Built {
    /// Shuts every component down in order.
    pub async fn shutdown(&self) {
        for c in &self.components {
            c.shutdown().await;
        }
    }
}

/// Builds the pipelines. Must run inside a tokio runtime (processors start
/// tasks); opening exporter queues does blocking IO. Span metrics and the
/// service graph register their metrics in `registry`; a processor id used
/// by several pipelines shares one aggregator.
pub fn build(
    config: &PipelineConfig,
    exporters: Exporters,
    metrics: Arc<Metrics>,
    registry: &mut Registry,
) -> Result<Built, String> {
    let mut span_metrics: Vec<(String, Arc<SpanMetrics>)> = Vec::new();
    let mut service_graphs: Vec<(String, Arc<ServiceGraph>)> = Vec::new();
    let mut components: Vec<Arc<dyn Component>> = Vec::new();
    let mut exporter_components: Vec<Arc<dyn Component>> = Vec::new();
    let mut built_exporters: BTreeMap<String, Arc<dyn TracesConsumer>> = BTreeMap::new();
    let mut feeds: BTreeMap<String, Vec<Arc<dyn TracesConsumer>>> = BTreeMap::new();

    for pipeline in &config.pipelines {
        let mut targets: Vec<Arc<dyn TracesConsumer>> = Vec::new();
        for id in &pipeline.exporters {
            if let Some(e) = built_exporters.get(id) {
                targets.push(Arc::clone(e));
                continue;
            }
            let exporter: Arc<dyn TracesConsumer> = match config.exporters.get(id) {
                Some(ExporterConfig::Store) => exporters
                    .store
                    .clone()
                    .ok_or_else(|| format!("exporter {id}: no embedded store in this mode"))?,
                Some(ExporterConfig::Debug(v)) => {
                    let e = Arc::new(DebugExporter::new(id, *v));
                    exporter_components.push(e.clone());
                    e
                }
                Some(ExporterConfig::Otlp(c)) => {
                    let e =
                        Arc::new(OtlpExporter::new(id, c.clone(), Arc::clone(&metrics)).map_err(|err| {
                            format!(
                                "exporter {id}: cannot open its queue in {}: {err}",
                                c.queue_dir.display()
                            )
                        })?);
                    exporter_components.push(e.clone());
                    e
                }
                None => return Err(format!("pipeline {}: unknown exporter {id}", pipeline.name)),
            };
            built_exporters.insert(id.clone(), Arc::clone(&exporter));
            targets.push(exporter);
        }
        let mut next: Arc<dyn TracesConsumer> =
            if targets.len() == 1 { targets.remove(0) } else { Arc::new(Fanout::new(targets)) };
        // Chain processors from the exporter side back to the entry.
        let mut chain: Vec<Arc<dyn Component>> = Vec::new();
        for id in pipeline.processors.iter().rev() {
            let m = Arc::clone(&metrics);
            let (consumer, component): (Arc<dyn TracesConsumer>, Arc<dyn Component>) =
                match config.processors.get(id) {
                    Some(ProcessorConfig::MemoryLimiter(c)) => {
                        both(Arc::new(MemoryLimiter::new(id, c, next, m, exporters.memory.clone())))
                    }
                    Some(ProcessorConfig::Batch(c)) => both(Arc::new(BatchProcessor::new(id, c, next, m))),
                    Some(ProcessorConfig::Probabilistic(c)) => {
                        both(Arc::new(ProbabilisticSampler::new(id, c, next, m)))
                    }
                    Some(ProcessorConfig::Tail(c)) => both(TailSampler::new(id, c.clone(), next, m)),
                    Some(ProcessorConfig::Attributes(c)) => {
                        both(Arc::new(AttributesProcessor::new(id, c.clone(), next, m)))
                    }
                    Some(ProcessorConfig::Redaction(c)) => {
                        both(Arc::new(RedactionProcessor::new(id, c.clone(), next, m)))
                    }
                    Some(ProcessorConfig::SpanMetrics(c)) => {
                        let core = match span_metrics.iter().find(|(known, _)| known == id) {
                            Some((_, core)) => Arc::clone(core),
                            None => {
                                let core = Arc::new(SpanMetrics::new(c.clone()));
                                core.register(registry);
                                span_metrics.push((id.clone(), Arc::clone(&core)));
                                core
                            }
                        };
                        both(Arc::new(SpanMetricsProcessor::new(id, core, next)))
                    }
                    Some(ProcessorConfig::ServiceGraph(c)) => {
                        let core = match service_graphs.iter().find(|(known, _)| known == id) {
                            Some((_, core)) => Arc::clone(core),
                            None => {
                                let core = Arc::new(ServiceGraph::new(c.clone()));
                                core.register(registry);
                                service_graphs.push((id.clone(), Arc::clone(&core)));
                                core
                            }
                        };
                        both(Arc::new(ServiceGraphProcessor::new(id, core, next)))
                    }
                    None => return Err(format!("pipeline {}: unknown processor {id}", pipeline.name)),
                };
            chain.push(component);
            next = consumer;
        }
        chain.reverse();
        components.extend(chain);
        for r in &pipeline.receivers {
            feeds.entry(r.clone()).or_default().push(Arc::clone(&next));
        }
    }
    components.extend(exporter_components);
    let receivers = feeds
        .into_iter()
        .map(|(id, mut entries)| {
            let entry: Arc<dyn TracesConsumer> =
                if entries.len() == 1 { entries.remove(0) } else { Arc::new(Fanout::new(entries)) };
            (id, entry)
        })
        .collect();
    // Processors were built exporter side first: the first in pipeline
    // order is the last created.
    Ok(Built {
        receivers,
        components,
        span_metrics: first_in_pipeline_order(config, &span_metrics)
            .map(|core| core as Arc<dyn SpanMetricsReader>),
        service_graph: first_in_pipeline_order(config, &service_graphs)
            .map(|core| core as Arc<dyn ServiceGraphReader>),
    })
}

fn first_in_pipeline_order<T>(config: &PipelineConfig, built: &[(String, Arc<T>)]) -> Option<Arc<T>> {
    config
        .pipelines
        .iter()
        .flat_map(|p| p.processors.iter())
        .find_map(|id| built.iter().find(|(known, _)| known == id).map(|(_, core)| Arc::clone(core)))
}

fn both<T: TracesConsumer + Component + 'static>(x: Arc<T>) -> (Arc<dyn TracesConsumer>, Arc<dyn Component>) {
    (x.clone(), x)
}
