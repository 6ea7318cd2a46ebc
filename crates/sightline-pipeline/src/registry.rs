//! The component registry: every receiver, processor and exporter type as
//! a Collector-style factory — type name, signals, a one-line description,
//! a settings parser (an empty table gives the defaults) and a builder.
//!
//! Config parsing, `sightline validate-config`, the pipeline builder and
//! the README's component list all read this one table, so a new
//! component, or a new signal for one, is one entry here (plus its code).
//! A test checks the README against [`markdown`].

use std::sync::Arc;

use sightline_model::{Batch, LogBatch, LogsConsumer, MetricBatch, MetricsConsumer, TracesConsumer};

use crate::build::{Env, Instance, Stage};
use crate::config::{self, ComponentConfig, Context, Reader, Settings};
use crate::exporter::debug::{DebugExporter, Verbosity};
use crate::exporter::otlp::OtlpExporter;
use crate::processor::attributes::AttributesProcessor;
use crate::processor::batch::BatchProcessor;
use crate::processor::memory_limiter::MemoryLimiter;
use crate::processor::probabilistic::ProbabilisticSampler;
use crate::processor::redaction::RedactionProcessor;
use crate::processor::servicegraph::{self, ServiceGraph, ServiceGraphProcessor};
use crate::processor::spanmetrics::{self, SpanMetrics, SpanMetricsProcessor};
use crate::processor::tail::TailSampler;
use crate::processor::{attributes, batch, memory_limiter, probabilistic, redaction, tail};
use crate::signal::{Consumer, Signal};
use crate::{Component, exporter};

/// What a component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Takes data in from outside.
    Receiver,
    /// Works on data on its way through a pipeline.
    Processor,
    /// Sends data out of a pipeline (or keeps it).
    Exporter,
}

impl Kind {
    /// Every kind, in config order.
    pub const ALL: [Kind; 3] = [Kind::Receiver, Kind::Processor, Kind::Exporter];

    /// The config section, e.g. `processors`.
    pub fn section(self) -> &'static str {
        match self {
            Kind::Receiver => "receivers",
            Kind::Processor => "processors",
            Kind::Exporter => "exporters",
        }
    }

    /// The singular, e.g. `processor`.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Receiver => "receiver",
            Kind::Processor => "processor",
            Kind::Exporter => "exporter",
        }
    }
}

/// Parses one component's table; `id` is the full id (`type/name`).
pub(crate) type ParseFn = fn(&Reader<'_>, &Context, &str) -> Option<Arc<dyn Settings>>;

/// How a component type is built.
pub(crate) enum BuildFn {
    /// By the binary, which owns listeners (receivers). The pipeline hands
    /// it one entry per signal ([`crate::Built::receivers`]).
    Outside,
    /// In front of the next stage of the same signal.
    Processor(fn(&mut Env<'_>, &Instance<'_>, Consumer) -> Result<Stage, String>),
    /// As the end of pipelines of one signal; built once per (id, signal)
    /// and shared by every pipeline of that signal that lists it.
    Exporter(fn(&mut Env<'_>, &Instance<'_>, Signal) -> Result<Stage, String>),
}

/// One component type.
pub struct Factory {
    /// Receiver, processor or exporter.
    pub kind: Kind,
    /// The type: the part of a component id before any `/`.
    pub ty: &'static str,
    /// The signals it handles; a pipeline of another signal may not list it.
    pub signals: &'static [Signal],
    /// One line for the docs.
    pub about: &'static str,
    pub(crate) parse: ParseFn,
    pub(crate) build: BuildFn,
    /// Settings that do not apply to a signal the component otherwise
    /// handles (e.g. `span_names` rules in a logs pipeline): a message, or
    /// `None` when they fit.
    pub(crate) misfit: Option<MisfitFn>,
}

/// Checks a component's settings against a pipeline's signal.
pub(crate) type MisfitFn = fn(&ComponentConfig, Signal) -> Option<String>;

impl std::fmt::Debug for Factory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Factory").field("kind", &self.kind).field("ty", &self.ty).finish_non_exhaustive()
    }
}

const TRACES: &[Signal] = &[Signal::Traces];
const TRACES_LOGS: &[Signal] = &[Signal::Traces, Signal::Logs];
const LOGS: &[Signal] = &[Signal::Logs];
const METRICS: &[Signal] = &[Signal::Metrics];
const ALL: &[Signal] = &[Signal::Traces, Signal::Logs, Signal::Metrics];

/// Every component type, in the order docs and error messages list them.
pub static FACTORIES: &[Factory] = &[
    Factory {
        kind: Kind::Receiver,
        ty: "otlp",
        signals: ALL,
        about: "OTLP/gRPC and OTLP/HTTP (protobuf and JSON) on `--otlp-grpc-addr` and `--otlp-http-addr`; serves each signal a pipeline takes from it",
        parse: config::otlp_receiver,
        build: BuildFn::Outside,
        misfit: None,
    },
    Factory {
        kind: Kind::Receiver,
        ty: "zipkin",
        signals: TRACES,
        about: "Zipkin v2 JSON and protobuf on `endpoint` (default `127.0.0.1:9411`, or `--zipkin-addr`)",
        parse: config::zipkin_receiver,
        build: BuildFn::Outside,
        misfit: None,
    },
    Factory {
        kind: Kind::Receiver,
        ty: "filelog",
        signals: LOGS,
        about: "tails JSON-lines files (`include` globs; seed 002's `timestamp`, `level`, `service`, `message`, `trace_id`, `span_id`, `exception`, renamed under `fields`), resuming after restarts and following rotation; records go to `tenant` (default: the default tenant)",
        parse: config::filelog_receiver,
        build: BuildFn::Outside,
        misfit: None,
    },
    Factory {
        kind: Kind::Processor,
        ty: "memory_limiter",
        signals: ALL,
        about: "refuses data retryably while resident memory is over `limit - spike` (first in a pipeline)",
        parse: config::memory_limiter,
        build: BuildFn::Processor(build_memory_limiter),
        misfit: None,
    },
    Factory {
        kind: Kind::Processor,
        ty: "batch",
        signals: ALL,
        about: "merges batches up to `send_batch_size` items (spans, log records, data points) or `timeout`; acknowledges only after downstream did",
        parse: config::batch,
        build: BuildFn::Processor(build_batch),
        misfit: None,
    },
    Factory {
        kind: Kind::Processor,
        ty: "probabilistic_sampler",
        signals: TRACES,
        about: "keeps `sampling_percentage` of traces, consistently by trace id (`ot=th:` tracestate)",
        parse: config::probabilistic_sampler,
        build: BuildFn::Processor(build_probabilistic),
        misfit: None,
    },
    Factory {
        kind: Kind::Processor,
        ty: "tail_sampling",
        signals: TRACES,
        about: "decides per complete trace by `policies` (errors, latency, attributes, rate limits)",
        parse: config::tail_sampling,
        build: BuildFn::Processor(build_tail),
        misfit: None,
    },
    Factory {
        kind: Kind::Processor,
        ty: "attributes",
        signals: TRACES_LOGS,
        about: "inserts, updates, upserts, deletes or hashes span or log record attributes, with include/exclude rules",
        parse: config::attributes,
        build: BuildFn::Processor(build_attributes),
        misfit: Some(attributes_misfit),
    },
    Factory {
        kind: Kind::Processor,
        ty: "redaction",
        signals: TRACES_LOGS,
        about: "deletes secret-looking attributes and masks emails, card numbers and credentials (log bodies too)",
        parse: config::redaction,
        build: BuildFn::Processor(build_redaction),
        misfit: None,
    },
    Factory {
        kind: Kind::Processor,
        ty: "spanmetrics",
        signals: TRACES,
        about: "call counts and duration histograms per service and operation (`/metrics`, Jaeger's Monitor tab)",
        parse: config::spanmetrics,
        build: BuildFn::Processor(build_spanmetrics),
        misfit: None,
    },
    Factory {
        kind: Kind::Processor,
        ty: "servicegraph",
        signals: TRACES,
        about: "request counts and latencies per client → server edge (`/metrics`, `/api/dependencies`)",
        parse: config::servicegraph,
        build: BuildFn::Processor(build_servicegraph),
        misfit: None,
    },
    // Traces go to `Exporters::store`, logs to `Exporters::logs_store`
    // (the binary fills both).
    Factory {
        kind: Kind::Exporter,
        ty: "store",
        signals: TRACES_LOGS,
        about: "the embedded store (write-ahead log, then Parquet blocks; logs in their own under `<data-dir>/logs`)",
        parse: config::store,
        build: BuildFn::Exporter(build_store),
        misfit: None,
    },
    Factory {
        kind: Kind::Exporter,
        ty: "otlp",
        signals: ALL,
        about: "forwards over OTLP/gRPC (or `protocol = \"http/protobuf\"`) through a persistent queue",
        parse: config::otlp,
        build: BuildFn::Exporter(build_otlp),
        misfit: None,
    },
    Factory {
        kind: Kind::Exporter,
        ty: "otlphttp",
        signals: ALL,
        about: "`otlp` with OTLP/HTTP protobuf as the default protocol",
        parse: config::otlphttp,
        build: BuildFn::Exporter(build_otlp),
        misfit: None,
    },
    Factory {
        kind: Kind::Exporter,
        ty: "prometheusremotewrite",
        signals: METRICS,
        about: "pushes Prometheus remote-write requests to `endpoint` through a persistent queue per tenant, each tenant's with its `X-Scope-OrgID` (delta sums and histograms made cumulative)",
        parse: config::prometheusremotewrite,
        build: BuildFn::Exporter(build_remote_write),
        misfit: None,
    },
    Factory {
        kind: Kind::Exporter,
        ty: "prometheus",
        signals: METRICS,
        about: "serves the received series for scraping at `http://<endpoint>/metrics` (default `127.0.0.1:8889`; the default tenant's)",
        parse: config::prometheus,
        build: BuildFn::Exporter(build_scrape),
        misfit: None,
    },
    Factory {
        kind: Kind::Exporter,
        ty: "debug",
        signals: ALL,
        about: "logs what passes (`verbosity = \"basic\"` or `\"detailed\"`), for trying pipelines out",
        parse: config::debug,
        build: BuildFn::Exporter(build_debug),
        misfit: None,
    },
];

/// The factory for a type of a kind.
pub fn find(kind: Kind, ty: &str) -> Option<&'static Factory> {
    FACTORIES.iter().find(|f| f.kind == kind && f.ty == ty)
}

/// The type names of a kind, in registry order.
pub fn types(kind: Kind) -> Vec<&'static str> {
    FACTORIES.iter().filter(|f| f.kind == kind).map(|f| f.ty).collect()
}

/// The component list as a Markdown table, for the README.
pub fn markdown() -> String {
    let mut out = String::from("| kind | type | signals | what it does |\n|---|---|---|---|\n");
    for f in FACTORIES {
        let signals: Vec<&str> = f.signals.iter().map(|s| s.name()).collect();
        out.push_str(&format!("| {} | `{}` | {} | {} |\n", f.kind.noun(), f.ty, signals.join(", "), f.about));
    }
    out
}

// ----------------------------------------------------------------- builders

fn traces(consumer: Arc<impl TracesConsumer + Component + 'static>) -> Stage {
    (Consumer::Traces(consumer.clone()), Some(consumer))
}

fn logs(consumer: Arc<impl LogsConsumer + Component + 'static>) -> Stage {
    (Consumer::Logs(consumer.clone()), Some(consumer))
}

fn metrics(consumer: Arc<impl MetricsConsumer + Component + 'static>) -> Stage {
    (Consumer::Metrics(consumer.clone()), Some(consumer))
}

/// For components that take every signal through one type.
fn any_signal(
    consumer: Arc<impl TracesConsumer + LogsConsumer + MetricsConsumer + Component + 'static>,
    signal: Signal,
) -> Stage {
    match signal {
        Signal::Traces => traces(consumer),
        Signal::Logs => logs(consumer),
        Signal::Metrics => metrics(consumer),
    }
}

/// The factory lists the signals it builds for; the builder is asked only
/// for those, so any other is a wiring mistake reported as such.
fn not_for(c: &Instance<'_>, signal: Signal) -> String {
    format!("{}: cannot build for {}", c.id, signal.name())
}

fn build_memory_limiter(env: &mut Env<'_>, c: &Instance<'_>, next: Consumer) -> Result<Stage, String> {
    let config = c.settings::<memory_limiter::Config>()?;
    let pressure = env.exporters.memory.clone();
    let m = Arc::clone(env.metrics);
    Ok(match next {
        Consumer::Traces(next) => traces(Arc::new(MemoryLimiter::new(c.id, config, next, m, pressure))),
        Consumer::Logs(next) => logs(Arc::new(MemoryLimiter::new(c.id, config, next, m, pressure))),
        Consumer::Metrics(next) => metrics(Arc::new(MemoryLimiter::new(c.id, config, next, m, pressure))),
    })
}

fn build_batch(env: &mut Env<'_>, c: &Instance<'_>, next: Consumer) -> Result<Stage, String> {
    let config = c.settings::<batch::Config>()?;
    let m = Arc::clone(env.metrics);
    Ok(match next {
        Consumer::Traces(next) => traces(Arc::new(BatchProcessor::<Batch>::new(c.id, config, next, m))),
        Consumer::Logs(next) => logs(Arc::new(BatchProcessor::<LogBatch>::new(c.id, config, next, m))),
        Consumer::Metrics(next) => {
            metrics(Arc::new(BatchProcessor::<MetricBatch>::new(c.id, config, next, m)))
        }
    })
}

fn build_probabilistic(env: &mut Env<'_>, c: &Instance<'_>, next: Consumer) -> Result<Stage, String> {
    let config = c.settings::<probabilistic::Config>()?;
    let Consumer::Traces(next) = next else { return Err(not_for(c, next.signal())) };
    Ok(traces(Arc::new(ProbabilisticSampler::new(c.id, config, next, Arc::clone(env.metrics)))))
}

fn build_tail(env: &mut Env<'_>, c: &Instance<'_>, next: Consumer) -> Result<Stage, String> {
    let config = c.settings::<tail::Config>()?;
    let Consumer::Traces(next) = next else { return Err(not_for(c, next.signal())) };
    Ok(traces(TailSampler::new(c.id, config.clone(), next, Arc::clone(env.metrics))))
}

fn build_attributes(env: &mut Env<'_>, c: &Instance<'_>, next: Consumer) -> Result<Stage, String> {
    let config = c.settings::<attributes::Config>()?.clone();
    let m = Arc::clone(env.metrics);
    match next {
        Consumer::Traces(next) => Ok(traces(Arc::new(AttributesProcessor::new(c.id, config, next, m)))),
        Consumer::Logs(next) => Ok(logs(Arc::new(AttributesProcessor::new(c.id, config, next, m)))),
        Consumer::Metrics(_) => Err(not_for(c, Signal::Metrics)),
    }
}

/// Include/exclude conditions that select only another signal's items.
fn attributes_misfit(c: &ComponentConfig, signal: Signal) -> Option<String> {
    let config = c.settings::<attributes::Config>()?;
    let mut foreign: Vec<&str> = Vec::new();
    for rule in config.include.iter().chain(&config.exclude) {
        foreign.extend(rule.foreign_conditions(signal));
    }
    foreign.dedup();
    (!foreign.is_empty()).then(|| {
        format!(
            "its include/exclude {} cannot select {}; use another attributes processor here",
            foreign.join(", "),
            signal.name()
        )
    })
}

fn build_redaction(env: &mut Env<'_>, c: &Instance<'_>, next: Consumer) -> Result<Stage, String> {
    let config = c.settings::<redaction::Config>()?.clone();
    let m = Arc::clone(env.metrics);
    match next {
        Consumer::Traces(next) => Ok(traces(Arc::new(RedactionProcessor::new(c.id, config, next, m)))),
        Consumer::Logs(next) => Ok(logs(Arc::new(RedactionProcessor::new(c.id, config, next, m)))),
        Consumer::Metrics(_) => Err(not_for(c, Signal::Metrics)),
    }
}

/// A span metrics id used by several pipelines shares one aggregator.
fn build_spanmetrics(env: &mut Env<'_>, c: &Instance<'_>, next: Consumer) -> Result<Stage, String> {
    let config = c.settings::<spanmetrics::Config>()?;
    let Consumer::Traces(next) = next else { return Err(not_for(c, next.signal())) };
    let core = match env.span_metrics.iter().find(|(known, _)| known == c.id) {
        Some((_, core)) => Arc::clone(core),
        None => {
            let core = Arc::new(SpanMetrics::new(config.clone()));
            core.register(env.registry);
            env.span_metrics.push((c.id.to_owned(), Arc::clone(&core)));
            core
        }
    };
    Ok(traces(Arc::new(SpanMetricsProcessor::new(c.id, core, next))))
}

/// A service graph id used by several pipelines shares one aggregator.
fn build_servicegraph(env: &mut Env<'_>, c: &Instance<'_>, next: Consumer) -> Result<Stage, String> {
    let config = c.settings::<servicegraph::Config>()?;
    let Consumer::Traces(next) = next else { return Err(not_for(c, next.signal())) };
    let core = match env.service_graphs.iter().find(|(known, _)| known == c.id) {
        Some((_, core)) => Arc::clone(core),
        None => {
            let core = Arc::new(ServiceGraph::new(config.clone()));
            core.register(env.registry);
            env.service_graphs.push((c.id.to_owned(), Arc::clone(&core)));
            core
        }
    };
    Ok(traces(Arc::new(ServiceGraphProcessor::new(c.id, core, next))))
}

/// The embedded store is passed in by the binary; its lifecycle is the
/// binary's too, so it is no pipeline component.
fn build_store(env: &mut Env<'_>, c: &Instance<'_>, signal: Signal) -> Result<Stage, String> {
    c.settings::<exporter::StoreConfig>()?;
    let missing = || format!("exporter {}: no embedded store for {} in this mode", c.id, signal.name());
    match signal {
        Signal::Traces => Ok((Consumer::Traces(env.exporters.store.clone().ok_or_else(missing)?), None)),
        Signal::Logs => match env.exporters.logs_store.clone() {
            Some(store) => Ok((Consumer::Logs(store), None)),
            None => Ok(logs(Arc::new(exporter::unstored::UnstoredLogs::new(c.id)))),
        },
        Signal::Metrics => Err(not_for(c, signal)),
    }
}

fn build_otlp(env: &mut Env<'_>, c: &Instance<'_>, signal: Signal) -> Result<Stage, String> {
    let config = c.settings::<exporter::otlp::Config>()?;
    let exporter =
        OtlpExporter::for_signal(c.id, config.clone(), signal, Arc::clone(env.metrics)).map_err(|err| {
            format!(
                "exporter {}: cannot open its {} queue under {}: {err}",
                c.id,
                signal.name(),
                config.queue_dir.display()
            )
        })?;
    Ok(any_signal(Arc::new(exporter), signal))
}

fn build_remote_write(env: &mut Env<'_>, c: &Instance<'_>, signal: Signal) -> Result<Stage, String> {
    let config = c.settings::<exporter::prometheus::RemoteWriteConfig>()?;
    if signal != Signal::Metrics {
        return Err(not_for(c, signal));
    }
    let exporter =
        exporter::prometheus::RemoteWriteExporter::new(c.id, config.clone(), Arc::clone(env.metrics))
            .map_err(|err| {
                format!("exporter {}: cannot open its queue in {}: {err}", c.id, config.queue_dir.display())
            })?;
    Ok(metrics(Arc::new(exporter)))
}

fn build_scrape(env: &mut Env<'_>, c: &Instance<'_>, signal: Signal) -> Result<Stage, String> {
    let config = c.settings::<exporter::prometheus::ScrapeConfig>()?;
    if signal != Signal::Metrics {
        return Err(not_for(c, signal));
    }
    let exporter = exporter::prometheus::ScrapeExporter::new(c.id, config.clone(), Arc::clone(env.metrics))
        .map_err(|err| {
        let at = config.endpoint.map(|a| a.to_string()).unwrap_or_default();
        format!("exporter {}: cannot listen on {at}: {err}", c.id)
    })?;
    if exporter.local_addr().is_none() && env.scrape_page.is_none() {
        env.scrape_page = Some(exporter.page());
    }
    Ok(metrics(Arc::new(exporter)))
}

fn build_debug(_: &mut Env<'_>, c: &Instance<'_>, signal: Signal) -> Result<Stage, String> {
    let verbosity = *c.settings::<Verbosity>()?;
    Ok(any_signal(Arc::new(DebugExporter::new(c.id, verbosity)), signal))
}
