//! Turns a [`PipelineConfig`] into running consumers: one entry per
//! receiver and signal, processors chained per pipeline, exporters shared
//! by id within a signal. What each component type builds comes from its
//! factory in [`crate::registry`].

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::registry::Registry;
use sightline_model::{
    Batch, LogBatch, LogsConsumer, MetricBatch, MetricsConsumer, ServiceGraphReader, SpanMetricsReader,
    TracesConsumer,
};

use crate::config::{ComponentConfig, PipelineConfig, PipelineSpec};
use crate::exporter::Fanout;
use crate::exporter::prometheus::ScrapePage;
use crate::processor::servicegraph::ServiceGraph;
use crate::processor::spanmetrics::SpanMetrics;
use crate::registry::{BuildFn, Kind};
use crate::signal::{Consumer, Signal};
use crate::{Component, Metrics};

/// Exporters that live outside this crate.
#[derive(Default)]
pub struct Exporters {
    /// The embedded store, for the `store` exporter in trace pipelines.
    pub store: Option<Arc<dyn TracesConsumer>>,
    /// A log store, for the `store` exporter in log pipelines: the slot
    /// the binary fills once a log store exists (the `store` factory then
    /// lists logs among its signals).
    pub logs_store: Option<Arc<dyn LogsConsumer>>,
    /// The process memory budget: memory limiters publish the pressure
    /// they measure on it, and the embedded store, subscribed, cuts and
    /// flushes its head while it lasts. Without it, memory held by buffers
    /// could keep the limiter refusing forever.
    pub memory: Option<Arc<sightline_model::MemoryBudget>>,
}

/// Where one receiver hands its data, per signal (`None`: no pipeline
/// takes that signal from it).
#[derive(Clone, Default)]
pub struct Entries {
    /// Spans.
    pub traces: Option<Arc<dyn TracesConsumer>>,
    /// Log records.
    pub logs: Option<Arc<dyn LogsConsumer>>,
    /// Metrics.
    pub metrics: Option<Arc<dyn MetricsConsumer>>,
}

/// Running pipelines.
pub struct Built {
    /// For each receiver id used by a pipeline: where it sends data.
    pub receivers: BTreeMap<String, Entries>,
    /// Every component, in shutdown order (entry side first, so buffered
    /// data flows into exporters before they stop).
    pub components: Vec<Arc<dyn Component>>,
    /// The first span metrics processor's reader (pipeline order), for
    /// Jaeger's `/api/metrics/*`.
    pub span_metrics: Option<Arc<dyn SpanMetricsReader>>,
    /// The service graph processor's reader, for `/api/dependencies`.
    pub service_graph: Option<Arc<dyn ServiceGraphReader>>,
    /// The series of a `prometheus` exporter without an endpoint of its
    /// own (the default metrics pipeline's), for the binary to serve on
    /// its API port.
    pub scrape_page: Option<ScrapePage>,
}

impl Built {
    /// Shuts every component down in order.
    pub async fn shutdown(&self) {
        for c in &self.components {
            c.shutdown().await;
        }
    }
}

/// What builders share: the binary's exporters, metrics, and aggregators
/// that pipelines listing the same id share.
pub(crate) struct Env<'a> {
    pub(crate) exporters: &'a Exporters,
    pub(crate) metrics: &'a Arc<Metrics>,
    pub(crate) registry: &'a mut Registry,
    pub(crate) span_metrics: Vec<(String, Arc<SpanMetrics>)>,
    pub(crate) service_graphs: Vec<(String, Arc<ServiceGraph>)>,
    pub(crate) scrape_page: Option<ScrapePage>,
}

/// The component a factory is asked to build.
pub(crate) struct Instance<'a> {
    /// Its id, e.g. `batch/fast`.
    pub(crate) id: &'a str,
    config: &'a ComponentConfig,
}

impl Instance<'_> {
    /// The settings, of the type the component's factory parsed.
    pub(crate) fn settings<T: 'static>(&self) -> Result<&T, String> {
        self.config.settings::<T>().ok_or_else(|| {
            format!("{}: settings of the wrong type for {}", self.id, self.config.factory().ty)
        })
    }
}

/// A built stage: its entry, and its lifecycle if the pipeline owns it.
pub(crate) type Stage = (Consumer, Option<Arc<dyn Component>>);

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
    let mut env = Env {
        exporters: &exporters,
        metrics: &metrics,
        registry,
        span_metrics: Vec::new(),
        service_graphs: Vec::new(),
        scrape_page: None,
    };
    let mut components: Vec<Arc<dyn Component>> = Vec::new();
    let mut exporter_components: Vec<Arc<dyn Component>> = Vec::new();
    let mut built_exporters: BTreeMap<(Signal, String), Consumer> = BTreeMap::new();
    let mut feeds: BTreeMap<String, Vec<Consumer>> = BTreeMap::new();

    for pipeline in &config.pipelines {
        let mut targets: Vec<Consumer> = Vec::new();
        for id in &pipeline.exporters {
            let key = (pipeline.signal, id.clone());
            if let Some(e) = built_exporters.get(&key) {
                targets.push(e.clone());
                continue;
            }
            let (instance, build) = instance(config, pipeline, Kind::Exporter, id)?;
            let BuildFn::Exporter(make) = build else {
                return Err(format!("pipeline {}: {id} is not an exporter", pipeline.name));
            };
            let (exporter, component) = make(&mut env, &instance, pipeline.signal)?;
            exporter_components.extend(component);
            built_exporters.insert(key, exporter.clone());
            targets.push(exporter);
        }
        let mut next = fan_out(targets)
            .ok_or_else(|| format!("pipeline {}: a pipeline needs at least one exporter", pipeline.name))?;
        // Chain processors from the exporter side back to the entry.
        let mut chain: Vec<Arc<dyn Component>> = Vec::new();
        for id in pipeline.processors.iter().rev() {
            let (instance, build) = instance(config, pipeline, Kind::Processor, id)?;
            let BuildFn::Processor(make) = build else {
                return Err(format!("pipeline {}: {id} is not a processor", pipeline.name));
            };
            let (consumer, component) = make(&mut env, &instance, next)?;
            chain.extend(component);
            next = consumer;
        }
        chain.reverse();
        components.extend(chain);
        for r in &pipeline.receivers {
            feeds.entry(r.clone()).or_default().push(next.clone());
        }
    }
    components.extend(exporter_components);
    let mut receivers: BTreeMap<String, Entries> = BTreeMap::new();
    for (id, entries) in feeds {
        let mut by_signal: BTreeMap<Signal, Vec<Consumer>> = BTreeMap::new();
        for e in entries {
            by_signal.entry(e.signal()).or_default().push(e);
        }
        let slot = receivers.entry(id).or_default();
        for entry in by_signal.into_values().filter_map(fan_out) {
            match entry {
                Consumer::Traces(c) => slot.traces = Some(c),
                Consumer::Logs(c) => slot.logs = Some(c),
                Consumer::Metrics(c) => slot.metrics = Some(c),
            }
        }
    }
    let span_metrics = first_in_pipeline_order(config, &env.span_metrics);
    let service_graph = first_in_pipeline_order(config, &env.service_graphs);
    Ok(Built {
        receivers,
        components,
        span_metrics: span_metrics.map(|core| core as Arc<dyn SpanMetricsReader>),
        service_graph: service_graph.map(|core| core as Arc<dyn ServiceGraphReader>),
        scrape_page: env.scrape_page,
    })
}

/// The component `id` of `kind` a pipeline lists, with its builder.
fn instance<'a>(
    config: &'a PipelineConfig,
    pipeline: &PipelineSpec,
    kind: Kind,
    id: &'a str,
) -> Result<(Instance<'a>, &'static BuildFn), String> {
    let c = config
        .components(kind)
        .get(id)
        .ok_or_else(|| format!("pipeline {}: unknown {} {id}", pipeline.name, kind.noun()))?;
    if !c.factory().signals.contains(&pipeline.signal) {
        return Err(format!(
            "pipeline {}: {} {id} does not handle {}",
            pipeline.name,
            kind.noun(),
            pipeline.signal.name()
        ));
    }
    Ok((Instance { id, config: c }, &c.factory().build))
}

/// One consumer sending to all of `targets` (all of one signal); the
/// consumer itself when there is one, `None` when there are none.
fn fan_out(mut targets: Vec<Consumer>) -> Option<Consumer> {
    if targets.len() <= 1 {
        return targets.pop();
    }
    let (mut traces, mut logs, mut metrics) = (Vec::new(), Vec::new(), Vec::new());
    for t in targets {
        match t {
            Consumer::Traces(c) => traces.push(c),
            Consumer::Logs(c) => logs.push(c),
            Consumer::Metrics(c) => metrics.push(c),
        }
    }
    // NOTE: a pipeline's targets are all of its signal, so two of these
    // lists are empty.
    Some(if !logs.is_empty() {
        Consumer::Logs(Arc::new(Fanout::<LogBatch>::new(logs)))
    } else if !metrics.is_empty() {
        Consumer::Metrics(Arc::new(Fanout::<MetricBatch>::new(metrics)))
    } else {
        Consumer::Traces(Arc::new(Fanout::<Batch>::new(traces)))
    })
}

/// Processors were built exporter side first: the first in pipeline order
/// is looked up by the order pipelines list them.
fn first_in_pipeline_order<T>(config: &PipelineConfig, built: &[(String, Arc<T>)]) -> Option<Arc<T>> {
    config
        .pipelines
        .iter()
        .flat_map(|p| p.processors.iter())
        .find_map(|id| built.iter().find(|(known, _)| known == id).map(|(_, core)| Arc::clone(core)))
}
