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
//! Component ids are `type` or `type/name`. Parsing collects every
//! problem (unknown keys with a suggestion, wrong types, bad values,
//! dangling references) with its key path and a fix, instead of stopping at
//! the first.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use sightline_model::StatusCode;
use toml::{Table, Value};

use crate::exporter::debug::Verbosity;
use crate::exporter::otlp::Protocol;
use crate::processor::{
    attributes, batch, memory_limiter, probabilistic, redaction, servicegraph, spanmetrics, tail,
};

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
}

/// A receiver's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverConfig {
    /// OTLP gRPC + HTTP (addresses come from the serve flags).
    Otlp,
    /// Zipkin v2 on `endpoint`.
    Zipkin {
        /// Listen address.
        endpoint: SocketAddr,
    },
}

/// A processor's settings.
#[derive(Debug, Clone)]
pub enum ProcessorConfig {
    /// `memory_limiter`.
    MemoryLimiter(memory_limiter::Config),
    /// `batch`.
    Batch(batch::Config),
    /// `probabilistic_sampler`.
    Probabilistic(probabilistic::Config),
    /// `tail_sampling`.
    Tail(tail::Config),
    /// `attributes`.
    Attributes(attributes::Config),
    /// `redaction`.
    Redaction(redaction::Config),
    /// `spanmetrics`.
    SpanMetrics(spanmetrics::Config),
    /// `servicegraph`.
    ServiceGraph(servicegraph::Config),
}

/// An exporter's settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ExporterConfig {
    /// The embedded store.
    Store,
    /// OTLP forwarding.
    Otlp(crate::exporter::otlp::Config),
    /// Log spans.
    Debug(Verbosity),
}

/// One pipeline: receivers feed processors in order, then all exporters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSpec {
    /// `traces` or `traces/<name>`.
    pub name: String,
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
    pub receivers: BTreeMap<String, ReceiverConfig>,
    /// Processors by id.
    pub processors: BTreeMap<String, ProcessorConfig>,
    /// Exporters by id.
    pub exporters: BTreeMap<String, ExporterConfig>,
    /// Pipelines.
    pub pipelines: Vec<PipelineSpec>,
}

/// Top-level keys this module owns in a config file.
pub const SECTIONS: &[&str] = &["receivers", "processors", "exporters", "service"];

/// Default Zipkin listen address.
pub const DEFAULT_ZIPKIN_ADDR: &str = "127.0.0.1:9411";

/// The pipeline used when the config defines none: OTLP and Zipkin →
/// memory limiter → redaction → span metrics → service graph → the store.
///
/// Redaction runs before the metrics so span names and dimension values
/// reach `/metrics` and the SPM API already masked.
pub fn default_config(ctx: &Context) -> PipelineConfig {
    let mut receivers = BTreeMap::new();
    receivers.insert("otlp".to_owned(), ReceiverConfig::Otlp);
    receivers.insert(
        "zipkin".to_owned(),
        ReceiverConfig::Zipkin {
            endpoint: DEFAULT_ZIPKIN_ADDR.parse().unwrap_or_else(|_| unreachable_addr()),
        },
    );
    let mut processors = BTreeMap::new();
    processors.insert(
        "memory_limiter".to_owned(),
        ProcessorConfig::MemoryLimiter(memory_limiter::Config::for_limit(ctx.memory_limit)),
    );
    processors.insert("redaction".to_owned(), ProcessorConfig::Redaction(redaction::Config::default()));
    processors.insert("spanmetrics".to_owned(), ProcessorConfig::SpanMetrics(spanmetrics::Config::default()));
    processors
        .insert("servicegraph".to_owned(), ProcessorConfig::ServiceGraph(servicegraph::Config::default()));
    let mut exporters = BTreeMap::new();
    exporters.insert("store".to_owned(), ExporterConfig::Store);
    PipelineConfig {
        receivers,
        processors,
        exporters,
        pipelines: vec![PipelineSpec {
            name: "traces".into(),
            receivers: vec!["otlp".into(), "zipkin".into()],
            processors: vec![
                "memory_limiter".into(),
                "redaction".into(),
                "spanmetrics".into(),
                "servicegraph".into(),
            ],
            exporters: vec!["store".into()],
        }],
    }
}

fn unreachable_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9411))
}

/// Parses the pipeline sections of a config file. `root` is the whole file;
/// keys outside [`SECTIONS`] are ignored here. Without a `service` section
/// the default pipeline is used, with any component settings the file gives
/// for its components applied.
pub fn parse(root: &Table, ctx: &Context) -> Result<PipelineConfig, Vec<Problem>> {
    let problems = Problems::default();
    let mut config = default_config(ctx);
    let kinds =
        [("receivers", Kind::Receiver), ("processors", Kind::Processor), ("exporters", Kind::Exporter)];
    for (section, kind) in kinds {
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
            match kind {
                Kind::Receiver => {
                    if let Some(c) = receiver(ty, &r, &path) {
                        config.receivers.insert(id.clone(), c);
                    }
                }
                Kind::Processor => {
                    if let Some(c) = processor(ty, &r, &path, ctx) {
                        config.processors.insert(id.clone(), c);
                    }
                }
                Kind::Exporter => {
                    if let Some(c) = exporter(ty, id, &r, &path, ctx) {
                        config.exporters.insert(id.clone(), c);
                    }
                }
            }
            r.done();
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
    let list = problems.0.into_inner();
    if list.is_empty() { Ok(config) } else { Err(list) }
}

#[derive(Clone, Copy)]
enum Kind {
    Receiver,
    Processor,
    Exporter,
}

fn pipelines_of(r: &Reader<'_>, config: &PipelineConfig, problems: &Problems) -> Vec<PipelineSpec> {
    let mut out = Vec::new();
    for (name, value) in r.table.iter() {
        r.mark(name);
        let path = format!("{}.{name}", r.path);
        if name.split('/').next() != Some("traces") {
            problems.push(&path, "only trace pipelines exist: name it `traces` or `traces/<name>`");
            continue;
        }
        let Some(table) = problems.table(&path, value) else { continue };
        let p = Reader::new(path.clone(), table, problems);
        let list = |key: &str, known: Vec<&String>, what: &str| -> Vec<String> {
            let ids = p.str_list(key).unwrap_or_default();
            for (i, id) in ids.iter().enumerate() {
                if !known.contains(&id) {
                    let names: Vec<&str> = known.iter().map(|k| k.as_str()).collect();
                    problems.push(
                        &format!("{path}.{key}[{i}]"),
                        &format!(
                            "unknown {what} {id:?}{}; define it under [{what}s.{id:?}] or use one of: {}",
                            suggest(id, &names)
                                .map(|s| format!(" (did you mean {s:?}?)"))
                                .unwrap_or_default(),
                            names.join(", ")
                        ),
                    );
                }
            }
            ids
        };
        let spec = PipelineSpec {
            name: name.clone(),
            receivers: list("receivers", config.receivers.keys().collect(), "receiver"),
            processors: list("processors", config.processors.keys().collect(), "processor"),
            exporters: list("exporters", config.exporters.keys().collect(), "exporter"),
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
            match config.processors.get(id) {
                Some(ProcessorConfig::SpanMetrics(c)) => {
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
                }
                Some(ProcessorConfig::ServiceGraph(_)) => match graph {
                    Some(other) if other != id => problems.push(
                        &path,
                        &format!(
                            "{id} and {other} would both publish traces_service_graph_*; use one servicegraph processor in every pipeline"
                        ),
                    ),
                    Some(_) => {}
                    None => graph = Some(id),
                },
                _ => {}
            }
        }
    }
}

fn receiver(ty: &str, r: &Reader<'_>, path: &str) -> Option<ReceiverConfig> {
    match ty {
        "otlp" => Some(ReceiverConfig::Otlp),
        "zipkin" => {
            let endpoint = r.addr("endpoint").unwrap_or_else(unreachable_addr);
            Some(ReceiverConfig::Zipkin { endpoint })
        }
        other => {
            unknown_type(r.problems, path, other, &["otlp", "zipkin"]);
            None
        }
    }
}

fn processor(ty: &str, r: &Reader<'_>, path: &str, ctx: &Context) -> Option<ProcessorConfig> {
    Some(match ty {
        "memory_limiter" => {
            let mut c = memory_limiter::Config::for_limit(r.size("limit").unwrap_or(ctx.memory_limit));
            if let Some(s) = r.size("spike") {
                if s >= c.limit_bytes {
                    r.problems.push(
                        &format!("{path}.spike"),
                        "must be smaller than limit (soft limit = limit - spike)",
                    );
                }
                c.spike_bytes = s;
            }
            if let Some(d) = r.duration("check_interval") {
                c.check_interval = d;
            }
            ProcessorConfig::MemoryLimiter(c)
        }
        "batch" => {
            let mut c = batch::Config::default();
            if let Some(n) = r.positive("send_batch_size") {
                c.send_batch_size = n as usize;
            }
            if let Some(d) = r.duration("timeout") {
                c.timeout = d;
            }
            if let Some(n) = r.positive("queue_batches") {
                c.queue_batches = n as usize;
            }
            if let Some(n) = r.positive("max_in_flight") {
                c.max_in_flight = n as usize;
            }
            ProcessorConfig::Batch(c)
        }
        "probabilistic_sampler" => {
            let pct = r.percentage("sampling_percentage").unwrap_or_else(|| {
                r.problems.push(
                    &format!("{path}.sampling_percentage"),
                    "required: the share of traces kept, 0–100",
                );
                100.0
            });
            ProcessorConfig::Probabilistic(probabilistic::Config { sampling_percentage: pct })
        }
        "tail_sampling" => {
            let mut c = tail::Config::default();
            if let Some(d) = r.duration("decision_wait") {
                c.decision_wait = d;
            }
            if let Some(n) = r.positive("num_traces") {
                c.num_traces = n as usize;
            }
            let budget = r.positive("spans_per_second").unwrap_or(1000);
            c.policies = tail::Config::default_policies(budget);
            let policies = r.tables("policies");
            if !policies.is_empty() {
                c.policies = policies
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| tail_policy(p, &format!("{path}.policies[{i}]")))
                    .collect();
            }
            ProcessorConfig::Tail(c)
        }
        "attributes" => {
            let actions: Vec<attributes::KeyAction> =
                r.tables("actions").iter().filter_map(|a| key_action(a)).collect();
            if actions.is_empty() {
                r.problems.push(
                    &format!("{path}.actions"),
                    "list at least one action, e.g. { key = \"env\", value = \"prod\", action = \"upsert\" }",
                );
            }
            let include = r.table("include").map(|m| match_rule(&m));
            let exclude = r.table("exclude").map(|m| match_rule(&m));
            ProcessorConfig::Attributes(attributes::Config { actions, include, exclude })
        }
        "redaction" => {
            let mut c = redaction::Config::default();
            if let Some(keys) = r.str_list("blocked_key_segments") {
                c.blocked_key_segments = keys.into_iter().map(|k| k.to_ascii_lowercase()).collect();
            }
            c.blocked_key_patterns = r.regex_list("blocked_key_patterns");
            c.blocked_values = r.regex_list("blocked_values");
            if let Some(b) = r.bool("mask_emails") {
                c.masks.emails = b;
            }
            if let Some(b) = r.bool("mask_card_numbers") {
                c.masks.card_numbers = b;
            }
            if let Some(b) = r.bool("mask_bearer_tokens") {
                c.masks.bearer_tokens = b;
            }
            let allow_all = r.bool("allow_all_keys").unwrap_or(true);
            let allowed = r.str_list("allowed_keys");
            match (allow_all, allowed) {
                (false, Some(keys)) => c.allowed_keys = Some(keys),
                (false, None) => r.problems.push(
                    &format!("{path}.allowed_keys"),
                    "allow_all_keys = false needs allowed_keys = [...] (the keys that may stay)",
                ),
                (true, Some(_)) => r.problems.push(
                    &format!("{path}.allowed_keys"),
                    "only used with allow_all_keys = false; set it or remove allowed_keys",
                ),
                (true, None) => {}
            }
            ProcessorConfig::Redaction(c)
        }
        "spanmetrics" => ProcessorConfig::SpanMetrics(span_metrics(r, path)),
        "servicegraph" => ProcessorConfig::ServiceGraph(service_graph(r, path)),
        other => {
            unknown_type(
                r.problems,
                path,
                other,
                &[
                    "memory_limiter",
                    "batch",
                    "probabilistic_sampler",
                    "tail_sampling",
                    "attributes",
                    "redaction",
                    "spanmetrics",
                    "servicegraph",
                ],
            );
            return None;
        }
    })
}

/// Label names span metrics set themselves.
const SPAN_METRICS_LABELS: &[&str] =
    &["service_name", "span_name", "span_kind", "status_code", spanmetrics::OVERFLOW_LABEL];

fn span_metrics(r: &Reader<'_>, path: &str) -> spanmetrics::Config {
    let mut c = spanmetrics::Config::default();
    if let Some(ns) = r.str("namespace") {
        let valid = ns.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.')
            && !ns.starts_with(|ch: char| ch.is_ascii_digit());
        if !valid {
            r.problems.push(
                &format!("{path}.namespace"),
                "use letters, digits, `_` and `.` (not first a digit), e.g. \"traces.span.metrics\"",
            );
        }
        c.namespace = ns;
    }
    let mut labels: Vec<String> = SPAN_METRICS_LABELS.iter().map(|l| (*l).to_owned()).collect();
    for (i, d) in r.tables("dimensions").iter().enumerate() {
        let at = format!("{path}.dimensions[{i}]");
        let name = d.str("name").unwrap_or_default();
        let default = d.str("default");
        d.done();
        if name.is_empty() {
            r.problems.push(&format!("{at}.name"), "required: the attribute key, e.g. \"http.method\"");
            continue;
        }
        let label = spanmetrics::prometheus_name(&name);
        if ["service.name", "span.name", "span.kind", "status.code"].contains(&name.as_str())
            || labels.contains(&label)
        {
            r.problems.push(
                &format!("{at}.name"),
                &format!(
                    "duplicate dimension {name:?} (label {label}); each dimension must give a new label"
                ),
            );
            continue;
        }
        labels.push(label);
        c.dimensions.push(spanmetrics::Dimension { name, default });
    }
    if let Some(n) = r.positive("aggregation_cardinality_limit") {
        c.cardinality_limit = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(d) = r.duration("time_series_window") {
        if d < Duration::from_secs(60) {
            r.problems.push(
                &format!("{path}.time_series_window"),
                "must be at least \"1m\": the series have one point per minute",
            );
        }
        c.time_series_window = d;
    }
    if let Some(h) = r.table("histogram") {
        match h.str("unit").as_deref() {
            None | Some("s") => {}
            Some("ms") => c.unit = spanmetrics::DurationUnit::Milliseconds,
            Some(other) => unknown_type(h.problems, &format!("{}.unit", h.path), other, &["s", "ms"]),
        }
        if h.get("exponential").is_some() {
            h.problems.push(
                &format!("{}.exponential", h.path),
                "exponential histograms are not supported; use explicit buckets",
            );
        }
        if let Some(e) = h.table("explicit") {
            if let Some(b) = e.durations("buckets") {
                c.buckets = b;
            }
            e.done();
        }
        if h.bool("disable") == Some(true) {
            h.problems.push(
                &format!("{}.disable", h.path),
                "the duration histogram cannot be disabled: the SPM latencies need it",
            );
        }
        h.done();
    }
    if let Some(e) = r.table("exemplars") {
        if let Some(b) = e.bool("enabled") {
            c.exemplars = b;
        }
        e.done();
    }
    c
}

fn service_graph(r: &Reader<'_>, path: &str) -> servicegraph::Config {
    let mut c = servicegraph::Config::default();
    if let Some(b) = r.durations("latency_histogram_buckets") {
        c.buckets = b;
    }
    if let Some(dims) = r.str_list("dimensions") {
        let mut seen: Vec<String> = Vec::new();
        for (i, d) in dims.iter().enumerate() {
            let label = spanmetrics::prometheus_name(d);
            if d.is_empty() || seen.contains(&label) {
                r.problems.push(
                    &format!("{path}.dimensions[{i}]"),
                    &format!("{d:?} is empty or gives the same label as an earlier dimension"),
                );
            }
            seen.push(label);
        }
        c.dimensions = dims;
    }
    if let Some(keys) = r.str_list("database_name_attributes") {
        c.database_name_attributes = keys;
    }
    if let Some(s) = r.table("store") {
        if let Some(d) = s.duration("ttl") {
            if d.is_zero() {
                s.problems.push(&format!("{}.ttl", s.path), "must be positive, e.g. \"10s\"");
            }
            c.ttl = d;
        }
        if let Some(n) = s.positive("max_items") {
            c.max_items = usize::try_from(n).unwrap_or(usize::MAX);
        }
        s.done();
    }
    if let Some(d) = r.duration("dependencies_window") {
        if d < Duration::from_secs(60) {
            r.problems.push(
                &format!("{path}.dependencies_window"),
                "must be at least \"1m\": edges are counted per minute",
            );
        }
        c.dependencies_window = d;
    }
    c
}

fn tail_policy(r: &Reader<'_>, path: &str) -> Option<(String, tail::Policy)> {
    let name = r.str("name").unwrap_or_else(|| path.rsplit('.').next().unwrap_or("policy").to_owned());
    let ty = r.str("type");
    let policy = tail_policy_body(r, path, ty.as_deref());
    r.done();
    policy.map(|p| (name, p))
}

fn tail_policy_body(r: &Reader<'_>, path: &str, ty: Option<&str>) -> Option<tail::Policy> {
    let need = |key: &str, what: &str| {
        r.problems.push(&format!("{path}.{key}"), &format!("required for this policy type: {what}"))
    };
    Some(match ty {
        Some("always_sample") => tail::Policy::AlwaysSample,
        Some("status_code") => {
            let codes = r.str_list("status_codes").unwrap_or_default();
            let mut out = Vec::new();
            for (i, c) in codes.iter().enumerate() {
                match c.to_ascii_uppercase().as_str() {
                    "ERROR" => out.push(StatusCode::Error),
                    "OK" => out.push(StatusCode::Ok),
                    "UNSET" => out.push(StatusCode::Unset),
                    _ => r.problems.push(&format!("{path}.status_codes[{i}]"), "expected ERROR, OK or UNSET"),
                }
            }
            if codes.is_empty() {
                need("status_codes", "e.g. [\"ERROR\"]");
            }
            tail::Policy::StatusCode(out)
        }
        Some("latency") => {
            let threshold = r.duration("threshold").unwrap_or_else(|| {
                need("threshold", "a duration like \"500ms\"");
                Duration::ZERO
            });
            tail::Policy::Latency { threshold, upper: r.duration("upper_threshold") }
        }
        Some("string_attribute") => {
            let key = r.str("key").unwrap_or_else(|| {
                need("key", "the attribute key");
                String::new()
            });
            let values = r.str_list("values").unwrap_or_default();
            let regex = if r.bool("enabled_regex_matching").unwrap_or(false) {
                Some(
                    values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| r.compile(&format!("{path}.values[{i}]"), v))
                        .collect(),
                )
            } else {
                None
            };
            tail::Policy::StringAttribute {
                key,
                values,
                regex,
                invert: r.bool("invert_match").unwrap_or(false),
            }
        }
        Some("numeric_attribute") => tail::Policy::NumericAttribute {
            key: r.str("key").unwrap_or_else(|| {
                need("key", "the attribute key");
                String::new()
            }),
            min: r.number("min_value").unwrap_or(f64::MIN),
            max: r.number("max_value").unwrap_or(f64::MAX),
        },
        Some("boolean_attribute") => tail::Policy::BooleanAttribute {
            key: r.str("key").unwrap_or_else(|| {
                need("key", "the attribute key");
                String::new()
            }),
            value: r.bool("value").unwrap_or(true),
        },
        Some("probabilistic") => tail::Policy::Probabilistic {
            percentage: r.percentage("sampling_percentage").unwrap_or_else(|| {
                need("sampling_percentage", "0–100");
                100.0
            }),
        },
        Some("rate_limiting") => tail::Policy::RateLimiting {
            spans_per_second: r.positive("spans_per_second").unwrap_or_else(|| {
                need("spans_per_second", "a positive integer");
                1
            }),
        },
        Some("slower_than_p99") => tail::Policy::SlowerThanP99,
        Some("and") => {
            let subs = r.tables("and_sub_policy");
            if subs.is_empty() {
                need("and_sub_policy", "a list of policies that must all keep the trace");
            }
            tail::Policy::And(
                subs.iter()
                    .enumerate()
                    .filter_map(|(i, s)| {
                        tail_policy(s, &format!("{path}.and_sub_policy[{i}]")).map(|(_, p)| p)
                    })
                    .collect(),
            )
        }
        other => {
            let known = [
                "always_sample",
                "status_code",
                "latency",
                "string_attribute",
                "numeric_attribute",
                "boolean_attribute",
                "probabilistic",
                "rate_limiting",
                "slower_than_p99",
                "and",
            ];
            match other {
                None => r
                    .problems
                    .push(&format!("{path}.type"), &format!("required: one of {}", known.join(", "))),
                Some(t) => unknown_type(r.problems, &format!("{path}.type"), t, &known),
            }
            return None;
        }
    })
}

fn key_action(r: &Reader<'_>) -> Option<attributes::KeyAction> {
    let path = r.path.clone();
    let key = r.str("key");
    let pattern = r.str("pattern").and_then(|p| r.compile(&format!("{path}.pattern"), &p));
    let value = r.value("value");
    let action = match r.str("action").as_deref() {
        Some("insert") => value.clone().map(attributes::Action::Insert),
        Some("update") => value.clone().map(attributes::Action::Update),
        Some("upsert") => value.clone().map(attributes::Action::Upsert),
        Some("delete") => Some(attributes::Action::Delete),
        Some("hash") => Some(attributes::Action::Hash),
        Some(other) => {
            unknown_type(
                r.problems,
                &format!("{path}.action"),
                other,
                &["insert", "update", "upsert", "delete", "hash"],
            );
            None
        }
        None => {
            r.problems.push(&format!("{path}.action"), "required: insert, update, upsert, delete or hash");
            None
        }
    };
    let needs_value = matches!(r.str("action").as_deref(), Some("insert" | "update" | "upsert"));
    if needs_value && value.is_none() {
        r.problems.push(&format!("{path}.value"), "insert/update/upsert need a value");
    }
    if key.is_none() && pattern.is_none() {
        r.problems.push(&path, "give a key (or, for delete/hash, a pattern)");
    }
    if key.is_none() && needs_value {
        r.problems.push(&format!("{path}.key"), "insert/update/upsert need an exact key");
    }
    r.done();
    Some(attributes::KeyAction { key, pattern, action: action? })
}

fn match_rule(r: &Reader<'_>) -> attributes::Match {
    let path = r.path.clone();
    let m = attributes::Match {
        services: r.str_list("services").unwrap_or_default(),
        span_names: r
            .str_list("span_names")
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| r.compile(&format!("{path}.span_names[{i}]"), &format!("^(?:{n})$")))
            .collect(),
        attributes: r
            .tables("attributes")
            .iter()
            .filter_map(|a| {
                let kv = (a.str("key")?, a.str("value")?);
                a.done();
                Some(kv)
            })
            .collect(),
    };
    r.done();
    m
}

fn exporter(ty: &str, id: &str, r: &Reader<'_>, path: &str, ctx: &Context) -> Option<ExporterConfig> {
    Some(match ty {
        "store" => ExporterConfig::Store,
        "debug" => ExporterConfig::Debug(match r.str("verbosity").as_deref() {
            None | Some("basic") => Verbosity::Basic,
            Some("detailed") => Verbosity::Detailed,
            Some(other) => {
                unknown_type(r.problems, &format!("{path}.verbosity"), other, &["basic", "detailed"]);
                Verbosity::Basic
            }
        }),
        "otlp" | "otlphttp" => {
            let endpoint = r.str("endpoint").unwrap_or_else(|| {
                r.problems.push(
                    &format!("{path}.endpoint"),
                    "required: the target, e.g. \"http://127.0.0.1:4317\"",
                );
                String::new()
            });
            if !(endpoint.is_empty() || endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                r.problems.push(&format!("{path}.endpoint"), "must start with http:// (TLS: https://)");
            }
            let protocol = match r.str("protocol").as_deref() {
                None if ty == "otlphttp" => Protocol::HttpProtobuf,
                None | Some("grpc") => Protocol::Grpc,
                Some("http/protobuf") => Protocol::HttpProtobuf,
                Some(other) => {
                    unknown_type(r.problems, &format!("{path}.protocol"), other, &["grpc", "http/protobuf"]);
                    Protocol::Grpc
                }
            };
            let headers = r
                .table("headers")
                .map(|h| {
                    let pairs: Vec<(String, String)> = h
                        .table
                        .iter()
                        .filter_map(|(k, v)| {
                            h.mark(k);
                            match v {
                                Value::String(s) => Some((k.clone(), s.clone())),
                                _ => {
                                    h.problems
                                        .push(&format!("{}.{k}", h.path), "header values must be strings");
                                    None
                                }
                            }
                        })
                        .collect();
                    h.done();
                    pairs
                })
                .unwrap_or_default();
            let safe_id = id.replace('/', "_");
            ExporterConfig::Otlp(crate::exporter::otlp::Config {
                endpoint,
                protocol,
                timeout: r.duration("timeout").unwrap_or(Duration::from_secs(10)),
                headers,
                queue_dir: r
                    .str("queue_dir")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| ctx.data_dir.join("queues").join(safe_id)),
                queue_max_bytes: r.size("queue_max_size").unwrap_or(1 << 30),
                initial_backoff: r.duration("retry_initial_interval").unwrap_or(Duration::from_secs(1)),
                max_backoff: r.duration("retry_max_interval").unwrap_or(Duration::from_secs(30)),
            })
        }
        other => {
            unknown_type(r.problems, path, other, &["store", "otlp", "otlphttp", "debug"]);
            return None;
        }
    })
}

fn unknown_type(problems: &Problems, path: &str, ty: &str, known: &[&str]) {
    problems.push(
        path,
        &format!(
            "unknown type {ty:?}{}; known: {}",
            suggest(ty, known).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default(),
            known.join(", ")
        ),
    );
}

/// The known name closest to `word`, if close enough to be a typo.
fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}

#[derive(Default)]
struct Problems(RefCell<Vec<Problem>>);

impl Problems {
    fn push(&self, path: &str, message: &str) {
        self.0.borrow_mut().push(Problem { path: path.to_owned(), message: message.to_owned() });
    }

    fn table<'v>(&self, path: &str, value: &'v Value) -> Option<&'v Table> {
        match value {
            Value::Table(t) => Some(t),
            other => {
                self.push(path, &format!("expected a table, found {}", other.type_str()));
                None
            }
        }
    }
}

/// Reads typed settings from one table, remembering which keys it used so
/// [`Reader::done`] can report the unknown ones.
struct Reader<'a> {
    path: String,
    table: &'a Table,
    used: RefCell<Vec<String>>,
    problems: &'a Problems,
}

impl<'a> Reader<'a> {
    fn new(path: String, table: &'a Table, problems: &'a Problems) -> Reader<'a> {
        Reader { path, table, used: RefCell::new(Vec::new()), problems }
    }

    fn mark(&self, key: &str) {
        self.used.borrow_mut().push(key.to_owned());
    }

    fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.mark(key);
        self.table.get(key)
    }

    fn wrong(&self, key: &str, expected: &str, found: &Value) {
        self.problems
            .push(&self.at(key), &format!("expected {expected}, found {} {found}", found.type_str()));
    }

    fn str(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong(key, "a string", other);
                None
            }
        }
    }

    fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                self.wrong(key, "true or false", other);
                None
            }
        }
    }

    fn number(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            other => {
                self.wrong(key, "a number", other);
                None
            }
        }
    }

    fn positive(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Integer(i) if *i > 0 => Some(*i as u64),
            other => {
                self.wrong(key, "a positive integer", other);
                None
            }
        }
    }

    fn percentage(&self, key: &str) -> Option<f64> {
        let v = self.number(key)?;
        if (0.0..=100.0).contains(&v) {
            Some(v)
        } else {
            self.problems.push(&self.at(key), "expected a percentage between 0 and 100");
            None
        }
    }

    fn duration(&self, key: &str) -> Option<Duration> {
        let s = self.str(key)?;
        match humantime::parse_duration(s.trim()) {
            Ok(d) => Some(d),
            Err(_) => {
                self.problems.push(
                    &self.at(key),
                    &format!("invalid duration {s:?}: expected e.g. \"200ms\", \"10s\", \"1m\""),
                );
                None
            }
        }
    }

    fn size(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Integer(i) if *i > 0 => Some(*i as u64),
            Value::String(s) => parse_size(s).or_else(|| {
                self.problems
                    .push(&self.at(key), &format!("invalid size {s:?}: expected e.g. \"512MiB\", \"2GiB\""));
                None
            }),
            other => {
                self.wrong(key, "a size like \"512MiB\"", other);
                None
            }
        }
    }

    fn addr(&self, key: &str) -> Option<SocketAddr> {
        let s = self.str(key)?;
        s.parse().ok().or_else(|| {
            self.problems.push(
                &self.at(key),
                &format!("invalid address {s:?}: expected host:port, e.g. \"127.0.0.1:9411\""),
            );
            None
        })
    }

    fn value(&self, key: &str) -> Option<sightline_model::Value> {
        Some(match self.get(key)? {
            Value::String(s) => sightline_model::Value::Str(s.clone()),
            Value::Integer(i) => sightline_model::Value::Int(*i),
            Value::Float(f) => sightline_model::Value::Double(*f),
            Value::Boolean(b) => sightline_model::Value::Bool(*b),
            other => {
                self.wrong(key, "a string, number or boolean", other);
                return None;
            }
        })
    }

    fn str_list(&self, key: &str) -> Option<Vec<String>> {
        match self.get(key)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        Value::String(s) => Some(s.clone()),
                        other => {
                            self.wrong(&format!("{key}[{i}]"), "a string", other);
                            None
                        }
                    })
                    .collect(),
            ),
            other => {
                self.wrong(key, "a list of strings", other);
                None
            }
        }
    }

    /// A list of durations in increasing order, e.g. `["2ms", "1s"]`.
    fn durations(&self, key: &str) -> Option<Vec<Duration>> {
        let texts = self.str_list(key)?;
        let mut out = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            match humantime::parse_duration(text.trim()) {
                Ok(d) if !d.is_zero() => out.push(d),
                _ => {
                    self.problems.push(
                        &format!("{}[{i}]", self.at(key)),
                        &format!(
                            "invalid duration {text:?}: expected a positive duration like \"2ms\" or \"1s\""
                        ),
                    );
                    return None;
                }
            }
        }
        if out.is_empty() {
            self.problems
                .push(&self.at(key), "list at least one bucket bound, e.g. [\"10ms\", \"100ms\", \"1s\"]");
            return None;
        }
        if out.windows(2).any(|w| w[0] >= w[1]) {
            self.problems.push(&self.at(key), "bucket bounds must be in increasing order without repeats");
            return None;
        }
        Some(out)
    }

    fn compile(&self, path: &str, pattern: &str) -> Option<Regex> {
        Regex::new(pattern).map_err(|e| self.problems.push(path, &format!("invalid regex: {e}"))).ok()
    }

    fn regex_list(&self, key: &str) -> Vec<Regex> {
        self.str_list(key)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, p)| self.compile(&format!("{}[{i}]", self.at(key)), p))
            .collect()
    }

    fn table(&self, key: &str) -> Option<Reader<'a>> {
        match self.get(key)? {
            Value::Table(t) => Some(Reader::new(self.at(key), t, self.problems)),
            other => {
                self.wrong(key, "a table", other);
                None
            }
        }
    }

    fn tables(&self, key: &str) -> Vec<Reader<'a>> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::Table(t) => Some(Reader::new(format!("{}[{i}]", self.at(key)), t, self.problems)),
                    other => {
                        self.wrong(&format!("{key}[{i}]"), "a table", other);
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.wrong(key, "a list of tables", other);
                Vec::new()
            }
        }
    }

    /// Reports keys nobody asked for.
    fn done(&self) {
        let used = self.used.borrow();
        let known: Vec<&str> = used.iter().map(String::as_str).collect();
        for key in self.table.keys() {
            if !used.iter().any(|u| u == key) {
                let hint = suggest(key, &known).map(|s| format!("; did you mean {s:?}?")).unwrap_or_default();
                self.problems.push(&self.at(key), &format!("unknown setting{hint}"));
            }
        }
    }
}

/// Parses sizes like `512MiB`, `2GiB`, `500MB`, `64k` (binary for single
/// letters).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    let bytes = number * multiplier as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}
