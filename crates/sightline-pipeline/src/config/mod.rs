//! Pipeline config: `[receivers.*]`, `[processors.*]`, `[exporters.*]`
//! and `[service.pipelines.*]` tables, in the spirit of the OpenTelemetry
//! Collector's config, in TOML.
//!
//! ```toml
//! [processors.batch]
//! send_batch_size = 4096
//!
//! [exporters."otlp/backup"]
//! endpoint = "http://10.0.0.7:4317"
//!
//! [service.pipelines.traces]
//! receivers = ["otlp"]
//! processors = ["memory_limiter", "redaction", "batch"]
//! exporters = ["store", "otlp/backup"]
//! ```
//!
//! Component ids are `type` or `type/name`; the type picks a factory in
//! [`crate::registry`], which parses the settings. A pipeline is named
//! after its signal (`traces`, `logs`, `metrics`, optionally `/<name>`),
//! and each of its components must handle that signal. Parsing collects
//! every problem (unknown keys with a suggestion, wrong types, bad values,
//! dangling references, components that do not handle a pipeline's signal)
//! with its key path and a fix, instead of stopping at the first.

mod components;
mod reader;

pub(crate) use components::*;
pub use reader::parse_size;
pub(crate) use reader::{Problems, Reader};

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use toml::{Table, Value};

use crate::processor::{memory_limiter, redaction, servicegraph, spanmetrics};
use crate::registry::{self, Factory, Kind};
use crate::signal::Signal;
use reader::{suggest, unknown_type};

/// One thing wrong with a config, at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `processors.batch.timeout`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Values the config's defaults derive from.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where exporter queues live by default (`<data_dir>/queues/<id>`).
    pub data_dir: PathBuf,
    /// The process memory limit (`--memory-limit`), the memory limiter's default.
    pub memory_limit: u64,
    /// Most tenants kept apart (`--max-tenants`): how many tenant queues
    /// (and scrape series sets) an exporter opens at most.
    pub max_tenants: usize,
}

/// A component's parsed settings. Each factory knows the concrete type it
/// parses and builds from; code outside reads it with
/// [`ComponentConfig::settings`].
pub trait Settings: Any + fmt::Debug + Send + Sync {}

impl<T: Any + fmt::Debug + Send + Sync> Settings for T {}

/// One configured component: its factory and its settings.
#[derive(Clone)]
pub struct ComponentConfig {
    factory: &'static Factory,
    settings: Arc<dyn Settings>,
}

impl ComponentConfig {
    pub(crate) fn new(factory: &'static Factory, settings: Arc<dyn Settings>) -> ComponentConfig {
        ComponentConfig { factory, settings }
    }

    /// The factory (type, signals, docs) this component was made by.
    pub fn factory(&self) -> &'static Factory {
        self.factory
    }

    /// The settings, if they are of type `T` (each component type has
    /// one settings type, e.g. `batch::Config` for `batch`).
    pub fn settings<T: Any>(&self) -> Option<&T> {
        let any: &dyn Any = &*self.settings;
        any.downcast_ref()
    }

    /// The same component with other settings of its type (the binary
    /// applies flags this way, e.g. `--zipkin-addr`).
    pub fn with_settings<T: Settings>(&self, settings: T) -> ComponentConfig {
        ComponentConfig { factory: self.factory, settings: Arc::new(settings) }
    }
}

impl fmt::Debug for ComponentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComponentConfig")
            .field("type", &self.factory.ty)
            .field("settings", &self.settings)
            .finish()
    }
}

/// One pipeline: receivers feed processors in order, then all exporters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSpec {
    /// `traces`, `logs` or `metrics`, optionally with `/<name>`.
    pub name: String,
    /// The signal it carries (the name's first part).
    pub signal: Signal,
    /// Receiver ids.
    pub receivers: Vec<String>,
    /// Processor ids, in order.
    pub processors: Vec<String>,
    /// Exporter ids.
    pub exporters: Vec<String>,
}

/// A validated pipeline config.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Receivers by id.
    pub receivers: BTreeMap<String, ComponentConfig>,
    /// Processors by id.
    pub processors: BTreeMap<String, ComponentConfig>,
    /// Exporters by id.
    pub exporters: BTreeMap<String, ComponentConfig>,
    /// Pipelines.
    pub pipelines: Vec<PipelineSpec>,
}

impl PipelineConfig {
    /// The components of one kind, by id.
    pub fn components(&self, kind: Kind) -> &BTreeMap<String, ComponentConfig> {
        match kind {
            Kind::Receiver => &self.receivers,
            Kind::Processor => &self.processors,
            Kind::Exporter => &self.exporters,
        }
    }

    fn components_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, ComponentConfig> {
        match kind {
            Kind::Receiver => &mut self.receivers,
            Kind::Processor => &mut self.processors,
            Kind::Exporter => &mut self.exporters,
        }
    }

    /// The signals some pipeline feeds from receiver `id`.
    pub fn receiver_signals(&self, id: &str) -> Vec<Signal> {
        let mut out: Vec<Signal> =
            self.pipelines.iter().filter(|p| p.receivers.iter().any(|r| r == id)).map(|p| p.signal).collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Top-level keys this module owns in a config file.
pub const SECTIONS: &[&str] = &["receivers", "processors", "exporters", "service"];

/// The pipelines used when the config defines none, one per signal, so a
/// stock SDK's three exporters all get success:
///
/// - traces: OTLP and Zipkin → memory limiter → redaction → span metrics →
///   service graph → the store. Redaction runs before the metrics so span
///   names and dimension values reach `/metrics` and the SPM API already
///   masked.
/// - logs: OTLP → memory limiter → the store (the log store, which
///   group-commits its WAL appends itself).
/// - metrics: OTLP → memory limiter → batch → `prometheus` without an
///   endpoint of its own: the binary serves its series on the API port
///   (`/metrics/otlp`); `--metrics-remote-write` adds a
///   `prometheusremotewrite` exporter ([`with_remote_write`]).
pub fn default_config(ctx: &Context) -> PipelineConfig {
    let mut config = PipelineConfig {
        receivers: BTreeMap::new(),
        processors: BTreeMap::new(),
        exporters: BTreeMap::new(),
        pipelines: vec![PipelineSpec {
            name: "traces".into(),
            signal: Signal::Traces,
            receivers: vec!["otlp".into(), "zipkin".into()],
            processors: vec![
                "memory_limiter".into(),
                "redaction".into(),
                "spanmetrics".into(),
                "servicegraph".into(),
            ],
            exporters: vec!["store".into()],
        }],
    };
    // No batch in front of the log store: like the trace store it groups
    // appends into one WAL commit itself, and a batch processor would hold
    // every acknowledgement for up to its timeout (200 ms), which capped
    // logs ingest at ~20k records/s with the server mostly idle.
    for (signal, processors, exporter) in [
        (Signal::Logs, &["memory_limiter"][..], "store"),
        (Signal::Metrics, &["memory_limiter", "batch"][..], "prometheus"),
    ] {
        config.pipelines.push(PipelineSpec {
            name: signal.name().into(),
            signal,
            receivers: vec!["otlp".into()],
            processors: processors.iter().map(|&p| p.to_owned()).collect(),
            exporters: vec![exporter.into()],
        });
    }
    let scrape = crate::exporter::prometheus::ScrapeConfig {
        endpoint: None,
        translation: crate::exporter::prometheus::Translation::default(),
        metric_expiration: std::time::Duration::from_secs(300),
        max_tenants: ctx.max_tenants,
    };
    let defaults: [(Kind, &str, Arc<dyn Settings>); 9] = [
        (Kind::Receiver, "otlp", Arc::new(crate::receiver::OtlpConfig)),
        (
            Kind::Receiver,
            "zipkin",
            Arc::new(crate::receiver::ZipkinConfig { endpoint: crate::receiver::default_zipkin_addr() }),
        ),
        (Kind::Processor, "memory_limiter", Arc::new(memory_limiter::Config::for_limit(ctx.memory_limit))),
        (Kind::Processor, "redaction", Arc::new(redaction::Config::default())),
        (Kind::Processor, "spanmetrics", Arc::new(spanmetrics::Config::default())),
        (Kind::Processor, "servicegraph", Arc::new(servicegraph::Config::default())),
        (Kind::Processor, "batch", Arc::new(crate::processor::batch::Config::default())),
        (Kind::Exporter, "store", Arc::new(crate::exporter::StoreConfig)),
        (Kind::Exporter, "prometheus", Arc::new(scrape)),
    ];
    for (kind, ty, settings) in defaults {
        if let Some(factory) = registry::find(kind, ty) {
            config.components_mut(kind).insert(ty.to_owned(), ComponentConfig::new(factory, settings));
        }
    }
    config
}

/// Parses the pipeline sections of a config file. `root` is the whole file;
/// keys outside [`SECTIONS`] are ignored here. Without a `service` section
/// the default pipeline is used, with any component settings the file gives
/// for its components applied.
pub fn parse(root: &Table, ctx: &Context) -> Result<PipelineConfig, Vec<Problem>> {
    let problems = Problems::default();
    let mut config = default_config(ctx);
    for kind in Kind::ALL {
        let section = kind.section();
        let Some(value) = root.get(section) else { continue };
        let Some(table) = problems.table(section, value) else { continue };
        for (id, value) in table {
            let path = format!("{section}.{id}");
            let empty = Table::new();
            let settings = match value {
                Value::Table(t) => t,
                _ => {
                    problems.push(
                        &path,
                        "expected a table of settings (use `[section.\"id\"]`, or `{}` for defaults)",
                    );
                    &empty
                }
            };
            let r = Reader::new(path.clone(), settings, &problems);
            let ty = id.split('/').next().unwrap_or_default();
            match registry::find(kind, ty) {
                Some(factory) => {
                    if let Some(settings) = (factory.parse)(&r, ctx, id) {
                        config
                            .components_mut(kind)
                            .insert(id.clone(), ComponentConfig::new(factory, settings));
                    }
                    r.done();
                }
                None => unknown_type(&problems, &path, ty, &registry::types(kind)),
            }
        }
    }
    if let Some(table) = root.get("service").and_then(|service| problems.table("service", service)) {
        let r = Reader::new("service".into(), table, &problems);
        if let Some(pipelines) = r.table("pipelines") {
            config.pipelines = pipelines_of(&pipelines, &config, &problems);
        }
        r.done();
    }
    check_metric_names(&config, &problems);
    let list = problems.into_inner();
    if list.is_empty() { Ok(config) } else { Err(list) }
}

/// `--metrics-remote-write URL`: the `prometheusremotewrite` exporter with
/// `endpoint = URL` (other settings at their defaults, replacing one the
/// file defines under that id) added to every metrics pipeline. Problems
/// name `flag` as their path.
pub fn with_remote_write(
    mut config: PipelineConfig,
    url: &str,
    ctx: &Context,
    flag: &str,
) -> Result<PipelineConfig, Vec<Problem>> {
    const ID: &str = "prometheusremotewrite";
    let problems = Problems::default();
    let mut table = Table::new();
    table.insert("endpoint".into(), Value::String(url.to_owned()));
    let factory = registry::find(Kind::Exporter, ID);
    let settings = factory.and_then(|f| {
        let r = Reader::new(flag.to_owned(), &table, &problems);
        let settings = (f.parse)(&r, ctx, ID);
        r.done();
        settings
    });
    let list = problems.into_inner();
    let (Some(factory), Some(settings), true) = (factory, settings, list.is_empty()) else {
        return Err(list);
    };
    config.exporters.insert(ID.to_owned(), ComponentConfig::new(factory, settings));
    for p in config.pipelines.iter_mut().filter(|p| p.signal == Signal::Metrics) {
        if !p.exporters.iter().any(|e| e == ID) {
            p.exporters.push(ID.to_owned());
        }
    }
    Ok(config)
}

fn pipelines_of(r: &Reader<'_>, config: &PipelineConfig, problems: &Problems) -> Vec<PipelineSpec> {
    let mut out = Vec::new();
    for (name, value) in r.table.iter() {
        r.mark(name);
        let path = format!("{}.{name}", r.path);
        let first = name.split('/').next().unwrap_or_default();
        let Some(signal) = Signal::from_name(first) else {
            let names: Vec<&str> = Signal::ALL.iter().map(|s| s.name()).collect();
            problems.push(
                &path,
                &format!(
                    "unknown signal {first:?}{}: name a pipeline after its signal ({}), optionally with /<name>",
                    suggest(first, &names).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default(),
                    names.join(", ")
                ),
            );
            continue;
        };
        let Some(table) = problems.table(&path, value) else { continue };
        let p = Reader::new(path.clone(), table, problems);
        let list = |kind: Kind, key: &str| -> Vec<String> {
            let known = config.components(kind);
            let what = kind.noun();
            let ids = p.str_list(key).unwrap_or_default();
            for (i, id) in ids.iter().enumerate() {
                let at = format!("{path}.{key}[{i}]");
                match known.get(id) {
                    None => {
                        let names: Vec<&str> = known.keys().map(String::as_str).collect();
                        problems.push(
                            &at,
                            &format!(
                                "unknown {what} {id:?}{}; define it under [{what}s.{id:?}] or use one of: {}",
                                suggest(id, &names)
                                    .map(|s| format!(" (did you mean {s:?}?)"))
                                    .unwrap_or_default(),
                                names.join(", ")
                            ),
                        );
                    }
                    Some(c) if !c.factory().signals.contains(&signal) => problems.push(
                        &at,
                        &format!(
                            "{what} {id:?} does not handle {}; it handles {}",
                            signal.name(),
                            c.factory().signals.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
                        ),
                    ),
                    Some(c) => {
                        if let Some(why) = c.factory().misfit.and_then(|misfit| misfit(c, signal)) {
                            problems
                                .push(&at, &format!("{what} {id:?} does not fit {}: {why}", signal.name()));
                        }
                    }
                }
            }
            ids
        };
        let spec = PipelineSpec {
            name: name.clone(),
            signal,
            receivers: list(Kind::Receiver, "receivers"),
            processors: list(Kind::Processor, "processors"),
            exporters: list(Kind::Exporter, "exporters"),
        };
        if spec.receivers.is_empty() {
            problems.push(
                &format!("{path}.receivers"),
                "a pipeline needs at least one receiver, e.g. [\"otlp\"]",
            );
        }
        if spec.exporters.is_empty() {
            problems.push(
                &format!("{path}.exporters"),
                "a pipeline needs at least one exporter, e.g. [\"store\"]",
            );
        }
        if let Some(i) = spec.processors.iter().position(|p| p.split('/').next() == Some("memory_limiter"))
            && i != 0
        {
            problems.push(
                &format!("{path}.processors[{i}]"),
                "memory_limiter must come first, so it refuses data before other processors spend memory on it",
            );
        }
        p.done();
        out.push(spec);
    }
    if out.is_empty() {
        problems.push(&r.path, "define at least one pipeline, e.g. [service.pipelines.traces]");
    }
    out
}

/// Span metrics and the service graph register fixed metric names: two
/// processors in use must not produce the same names.
fn check_metric_names(config: &PipelineConfig, problems: &Problems) {
    let mut namespaces: BTreeMap<String, &str> = BTreeMap::new();
    let mut graph: Option<&str> = None;
    for pipeline in &config.pipelines {
        for (i, id) in pipeline.processors.iter().enumerate() {
            let path = format!("service.pipelines.{}.processors[{i}]", pipeline.name);
            let Some(c) = config.processors.get(id) else { continue };
            if let Some(c) = c.settings::<spanmetrics::Config>() {
                let ns = spanmetrics::prometheus_name(&c.namespace);
                match namespaces.get(&ns) {
                    Some(other) if *other != id => problems.push(
                        &path,
                        &format!(
                            "{id} and {other} would both publish {ns}_calls_total; give one a different namespace"
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        namespaces.insert(ns, id);
                    }
                }
            } else if c.settings::<servicegraph::Config>().is_some() {
                match graph {
                    Some(other) if other != id => problems.push(
                        &path,
                        &format!(
                            "{id} and {other} would both publish traces_service_graph_*; use one servicegraph processor in every pipeline"
                        ),
                    ),
                    Some(_) => {}
                    None => graph = Some(id),
                }
            }
        }
    }
}
