//! Each component type's settings parser: reads its table (an empty
//! one gives the defaults) and records every problem with its key path.
//! The registry (`crate::registry`) names which parser a type uses.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sightline_model::{StatusCode, Tenant};
use toml::Value;

use super::reader::{Reader, unknown_type};
use super::{Context, Settings};
use crate::exporter::debug::Verbosity;
use crate::exporter::otlp::Protocol;
use crate::processor::{
    attributes, batch, memory_limiter, probabilistic, redaction, servicegraph, spanmetrics, tail,
};
use crate::receiver;

/// What a parser returns: the settings, type-erased for the registry.
type Parsed = Option<Arc<dyn Settings>>;

fn some<T: Settings>(settings: T) -> Parsed {
    Some(Arc::new(settings))
}

pub(crate) fn otlp_receiver(_: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    some(receiver::OtlpConfig)
}

pub(crate) fn zipkin_receiver(r: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    let endpoint = r.addr("endpoint").unwrap_or_else(receiver::default_zipkin_addr);
    some(receiver::ZipkinConfig { endpoint })
}

pub(crate) fn filelog_receiver(r: &Reader<'_>, ctx: &Context, id: &str) -> Parsed {
    let include = r.str_list("include").unwrap_or_default();
    if include.is_empty() {
        r.problems.push(
            &r.at("include"),
            "required: glob patterns of the files to read, e.g. [\"/var/log/app/*.log\"]",
        );
    }
    let start_at_beginning = match r.str("start_at").as_deref() {
        None | Some("end") => false,
        Some("beginning") => true,
        Some(other) => {
            r.problems.push(&r.at("start_at"), &format!("{other:?}: use \"beginning\" or \"end\""));
            false
        }
    };
    let mut fields = receiver::FILELOG_FIELDS.map(str::to_owned);
    if let Some(t) = r.table("fields") {
        for (i, key) in receiver::FILELOG_FIELDS.iter().enumerate() {
            if let Some(name) = t.str(key) {
                fields[i] = name;
            }
        }
        t.done();
    }
    // Named like an `X-Scope-OrgID` value, checked by the same rules.
    let tenant = match r.str("tenant") {
        None => Tenant::default(),
        Some(name) => Tenant::new(&name).unwrap_or_else(|e| {
            r.problems.push(&r.at("tenant"), &e.to_string());
            Tenant::default()
        }),
    };
    some(receiver::FilelogConfig {
        include,
        exclude: r.str_list("exclude").unwrap_or_default(),
        start_at_beginning,
        poll_interval: r.duration("poll_interval").unwrap_or(Duration::from_millis(200)),
        max_log_size: r.size("max_log_size").and_then(|n| usize::try_from(n).ok()).unwrap_or(1 << 20).max(64),
        fields,
        service_name: r.str("service_name").unwrap_or_else(|| "unknown_service".into()),
        state_path: ctx.data_dir.join("filelog").join(format!("{}.json", id.replace('/', "_"))),
        tenant,
    })
}

pub(crate) fn memory_limiter(r: &Reader<'_>, ctx: &Context, _: &str) -> Parsed {
    let path = &r.path;
    let mut c = memory_limiter::Config::for_limit(r.size("limit").unwrap_or(ctx.memory_limit));
    if let Some(s) = r.size("spike") {
        if s >= c.limit_bytes {
            r.problems
                .push(&format!("{path}.spike"), "must be smaller than limit (soft limit = limit - spike)");
        }
        c.spike_bytes = s;
    }
    if let Some(d) = r.duration("check_interval") {
        c.check_interval = d;
    }
    some(c)
}

pub(crate) fn batch(r: &Reader<'_>, _: &Context, _: &str) -> Parsed {
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
    some(c)
}

pub(crate) fn probabilistic_sampler(r: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    let path = &r.path;
    let pct = r.percentage("sampling_percentage").unwrap_or_else(|| {
        r.problems.push(&format!("{path}.sampling_percentage"), "required: the share of traces kept, 0–100");
        100.0
    });
    some(probabilistic::Config { sampling_percentage: pct })
}

pub(crate) fn tail_sampling(r: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    let path = &r.path;
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
    some(c)
}

pub(crate) fn attributes(r: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    let path = &r.path;
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
    some(attributes::Config { actions, include, exclude })
}

pub(crate) fn redaction(r: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    let path = &r.path;
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
    some(c)
}

pub(crate) fn spanmetrics(r: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    some(span_metrics(r, &r.path))
}

pub(crate) fn servicegraph(r: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    some(service_graph(r, &r.path))
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
    let full_matches = |key: &str| -> Vec<regex::Regex> {
        r.str_list(key)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, n)| r.compile(&format!("{path}.{key}[{i}]"), &format!("^(?:{n})$")))
            .collect()
    };
    let m = attributes::Match {
        services: r.str_list("services").unwrap_or_default(),
        span_names: full_matches("span_names"),
        log_bodies: full_matches("log_bodies"),
        log_severity_texts: r.str_list("log_severity_texts").unwrap_or_default(),
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

pub(crate) fn store(_: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    some(crate::exporter::StoreConfig)
}

pub(crate) fn debug(r: &Reader<'_>, _: &Context, _: &str) -> Parsed {
    let path = &r.path;
    some(match r.str("verbosity").as_deref() {
        None | Some("basic") => Verbosity::Basic,
        Some("detailed") => Verbosity::Detailed,
        Some(other) => {
            unknown_type(r.problems, &format!("{path}.verbosity"), other, &["basic", "detailed"]);
            Verbosity::Basic
        }
    })
}

pub(crate) fn otlp(r: &Reader<'_>, ctx: &Context, id: &str) -> Parsed {
    otlp_with(r, ctx, id, Protocol::Grpc)
}

pub(crate) fn otlphttp(r: &Reader<'_>, ctx: &Context, id: &str) -> Parsed {
    otlp_with(r, ctx, id, Protocol::HttpProtobuf)
}

fn otlp_with(r: &Reader<'_>, ctx: &Context, id: &str, default_protocol: Protocol) -> Parsed {
    let path = &r.path;
    let endpoint = r.str("endpoint").unwrap_or_else(|| {
        r.problems.push(&format!("{path}.endpoint"), "required: the target, e.g. \"http://127.0.0.1:4317\"");
        String::new()
    });
    if !(endpoint.is_empty() || endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        r.problems.push(&format!("{path}.endpoint"), "must start with http:// (TLS: https://)");
    }
    let protocol = match r.str("protocol").as_deref() {
        None => default_protocol,
        Some("grpc") => Protocol::Grpc,
        Some("http/protobuf") => Protocol::HttpProtobuf,
        Some(other) => {
            unknown_type(r.problems, &format!("{path}.protocol"), other, &["grpc", "http/protobuf"]);
            Protocol::Grpc
        }
    };
    let headers = headers(r);
    let tenant_header = r.str("tenant_header").unwrap_or_else(|| "X-Scope-OrgID".to_owned());
    if http::HeaderName::from_bytes(tenant_header.as_bytes()).is_err() {
        r.problems.push(&format!("{path}.tenant_header"), "a header name: letters, digits and `-`");
    }
    let safe_id = id.replace('/', "_");
    some(crate::exporter::otlp::Config {
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
        tenant_header,
        max_tenants: ctx.max_tenants,
    })
}

/// A table of string values, e.g. `headers = { "x-api-key" = "k" }`.
fn string_table(r: &Reader<'_>, key: &str, what: &str) -> Vec<(String, String)> {
    r.table(key)
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
                                .push(&format!("{}.{k}", h.path), &format!("{what} values must be strings"));
                            None
                        }
                    }
                })
                .collect();
            h.done();
            pairs
        })
        .unwrap_or_default()
}

fn headers(r: &Reader<'_>) -> Vec<(String, String)> {
    string_table(r, "headers", "header")
}

/// `{ enabled = … }` tables, as the Collector writes feature switches.
fn enabled(r: &Reader<'_>, key: &str, default: bool) -> bool {
    match r.table(key) {
        None => default,
        Some(t) => {
            let on = t.bool("enabled").unwrap_or(default);
            t.done();
            on
        }
    }
}

/// Names, labels and suffixes both Prometheus exporters take.
fn translation(r: &Reader<'_>, labels_key: &str) -> crate::exporter::prometheus::Translation {
    let path = &r.path;
    let namespace = r.str("namespace").unwrap_or_default();
    if !namespace.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || namespace.starts_with(|c: char| c.is_ascii_digit())
    {
        r.problems
            .push(&format!("{path}.namespace"), "use ASCII letters, digits and `_` (not first a digit)");
    }
    let extra_labels = string_table(r, labels_key, "label");
    for (name, _) in &extra_labels {
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && !name.starts_with("__");
        if !valid {
            r.problems.push(
                &format!("{path}.{labels_key}.{name}"),
                "a label name: ASCII letters, digits and `_`, not first a digit, not starting with `__`",
            );
        }
    }
    crate::exporter::prometheus::Translation {
        namespace,
        add_suffixes: r.bool("add_metric_suffixes").unwrap_or(true),
        resource_to_labels: enabled(r, "resource_to_telemetry_conversion", false),
        extra_labels,
        target_info: true,
    }
}

pub(crate) fn prometheusremotewrite(r: &Reader<'_>, ctx: &Context, id: &str) -> Parsed {
    let path = &r.path;
    let endpoint = r.str("endpoint").unwrap_or_else(|| {
        r.problems.push(
            &format!("{path}.endpoint"),
            "required: the remote-write URL, e.g. \"http://127.0.0.1:9090/api/v1/write\"",
        );
        String::new()
    });
    if endpoint.starts_with("https://") {
        r.problems.push(&format!("{path}.endpoint"), "https is not supported here yet; use http://");
    } else if !(endpoint.is_empty() || endpoint.starts_with("http://")) {
        r.problems.push(
            &format!("{path}.endpoint"),
            "must be an http:// URL, e.g. \"http://127.0.0.1:9090/api/v1/write\"",
        );
    }
    let mut translation = translation(r, "external_labels");
    translation.target_info = enabled(r, "target_info", true);
    let safe_id = id.replace('/', "_");
    some(crate::exporter::prometheus::RemoteWriteConfig {
        endpoint,
        headers: headers(r),
        timeout: r.duration("timeout").unwrap_or(Duration::from_secs(5)),
        translation,
        metric_expiration: r.duration("metric_expiration").unwrap_or(Duration::from_secs(300)),
        queue_dir: r
            .str("queue_dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| ctx.data_dir.join("queues").join(safe_id)),
        queue_max_bytes: r.size("queue_max_size").unwrap_or(1 << 30),
        initial_backoff: r.duration("retry_initial_interval").unwrap_or(Duration::from_secs(1)),
        max_backoff: r.duration("retry_max_interval").unwrap_or(Duration::from_secs(30)),
        max_tenants: ctx.max_tenants,
    })
}

pub(crate) fn prometheus(r: &Reader<'_>, ctx: &Context, _: &str) -> Parsed {
    some(crate::exporter::prometheus::ScrapeConfig {
        endpoint: Some(
            r.addr("endpoint").unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 8889))),
        ),
        translation: translation(r, "const_labels"),
        metric_expiration: r.duration("metric_expiration").unwrap_or(Duration::from_secs(300)),
        max_tenants: ctx.max_tenants,
    })
}
