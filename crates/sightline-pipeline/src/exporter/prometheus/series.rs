//! OTLP data points as Prometheus samples, by the Collector's
//! `prometheusremotewrite` translator: labels from attributes (collisions
//! after normalisation joined with `;`), `job` and `instance` from the
//! resource, histograms as cumulative `_bucket{le}`/`_sum`/`_count`,
//! summaries as `{quantile}`/`_sum`/`_count`, and one `target_info` per
//! resource carrying its other attributes.

use sightline_model::{HistogramPoint, KeyValue, NO_RECORDED_VALUE, Resource, SummaryPoint};

use super::names::label_name;

/// Label pairs, sorted by name once a sample is complete.
pub(crate) type Labels = Vec<(String, String)>;

/// Prometheus' staleness marker: a NaN with this bit pattern tells
/// Prometheus a series ended (sent for points flagged "no recorded value").
pub(crate) const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// Settings both Prometheus exporters share (the Collector's names).
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// Prefix of every metric name (`namespace`).
    pub namespace: String,
    /// Unit and type suffixes (`add_metric_suffixes`, default true).
    pub add_suffixes: bool,
    /// Every resource attribute as a label too
    /// (`resource_to_telemetry_conversion.enabled`, default false).
    pub resource_to_labels: bool,
    /// Labels added to every series unless it has them
    /// (`external_labels` / `const_labels`).
    pub extra_labels: Labels,
    /// Emit `target_info` per resource (`target_info.enabled`, default true).
    pub target_info: bool,
}

impl Default for Translation {
    fn default() -> Self {
        Translation {
            namespace: String::new(),
            add_suffixes: true,
            resource_to_labels: false,
            extra_labels: Vec::new(),
            target_info: true,
        }
    }
}

/// One sample: its complete label set (with `__name__`), value and time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) labels: Labels,
    pub(crate) value: f64,
    pub(crate) timestamp_ms: i64,
}

/// `job` from `service.namespace`/`service.name` (or the name alone).
pub(crate) fn job(resource: &Resource) -> Option<String> {
    let get = |k: &str| resource.attributes().iter().find(|kv| kv.key == k).map(|kv| kv.value.to_text());
    let name = get("service.name")?;
    Some(match get("service.namespace") {
        Some(ns) => format!("{ns}/{name}"),
        None => name,
    })
}

/// `instance` from `service.instance.id`.
pub(crate) fn instance(resource: &Resource) -> Option<String> {
    resource.attributes().iter().find(|kv| kv.key == "service.instance.id").map(|kv| kv.value.to_text())
}

/// The attributes that name a target rather than describe it.
const IDENTIFYING: [&str; 3] = ["service.name", "service.namespace", "service.instance.id"];

/// A series' labels without `__name__`: its attributes (and the resource's,
/// with `resource_to_labels`), then `job`, `instance` and the extra labels.
pub(crate) fn base_labels(resource: &Resource, attributes: &[KeyValue], t: &Translation) -> Labels {
    let mut pairs: Vec<(&str, String)> = Vec::with_capacity(attributes.len());
    if t.resource_to_labels {
        for kv in resource.attributes() {
            if !attributes.iter().any(|a| a.key == kv.key) {
                pairs.push((&kv.key, kv.value.to_text()));
            }
        }
    }
    pairs.extend(attributes.iter().map(|kv| (kv.key.as_str(), kv.value.to_text())));
    labels_of(pairs, resource, t)
}

fn labels_of(mut pairs: Vec<(&str, String)>, resource: &Resource, t: &Translation) -> Labels {
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out: Labels = Vec::with_capacity(pairs.len() + 2 + t.extra_labels.len());
    for (key, value) in pairs {
        let name = label_name(key);
        if name.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) if *existing != value => {
                existing.push(';');
                existing.push_str(&value);
            }
            Some(_) => {}
            None => out.push((name, value)),
        }
    }
    let mut set = |name: &str, value: String| match out.iter_mut().find(|(n, _)| n == name) {
        Some((_, v)) => *v = value,
        None => out.push((name.to_owned(), value)),
    };
    if let Some(job) = job(resource) {
        set("job", job);
    }
    if let Some(instance) = instance(resource) {
        set("instance", instance);
    }
    for (name, value) in &t.extra_labels {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.clone(), value.clone()));
        }
    }
    out
}

/// Appends one sample named `name` with `base` plus `extra` labels.
pub(crate) fn push(
    out: &mut Vec<Sample>,
    name: &str,
    base: &Labels,
    extra: Option<(&str, String)>,
    value: f64,
    timestamp_ms: i64,
) {
    let mut labels = Vec::with_capacity(base.len() + 2);
    labels.extend(base.iter().filter(|(n, _)| Some(n.as_str()) != extra.as_ref().map(|e| e.0)).cloned());
    if let Some((n, v)) = extra {
        labels.push((n.to_owned(), v));
    }
    labels.push(("__name__".to_owned(), name.to_owned()));
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    out.push(Sample { labels, value, timestamp_ms });
}

/// The value to send: the staleness marker for flagged points.
pub(crate) fn value_or_stale(value: f64, flags: u32) -> f64 {
    if flags & NO_RECORDED_VALUE != 0 { f64::from_bits(STALE_NAN) } else { value }
}

/// ns → ms.
pub(crate) fn millis(unix_nanos: u64) -> i64 {
    (unix_nanos / 1_000_000) as i64
}

/// A bucket bound or quantile as Prometheus writes it (Go's
/// `FormatFloat(f, 'f', -1, 64)`: shortest form, no exponent).
pub(crate) fn format_bound(f: f64) -> String {
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    // Rust's `Display` for floats never uses an exponent, like Go's 'f'.
    format!("{f}")
}

/// A histogram point as `_bucket` (cumulative, ending with `+Inf`), `_sum`
/// (when recorded) and `_count` samples.
pub(crate) fn histogram(out: &mut Vec<Sample>, name: &str, base: &Labels, p: &HistogramPoint) {
    let ts = millis(p.time_unix_nano);
    if let Some(sum) = p.sum {
        push(out, &format!("{name}_sum"), base, None, value_or_stale(sum, p.flags), ts);
    }
    push(out, &format!("{name}_count"), base, None, value_or_stale(p.count as f64, p.flags), ts);
    let bucket = format!("{name}_bucket");
    let mut cumulative = 0u64;
    for (bound, count) in p.explicit_bounds.iter().zip(&p.bucket_counts) {
        cumulative += count;
        push(
            out,
            &bucket,
            base,
            Some(("le", format_bound(*bound))),
            value_or_stale(cumulative as f64, p.flags),
            ts,
        );
    }
    push(out, &bucket, base, Some(("le", "+Inf".into())), value_or_stale(p.count as f64, p.flags), ts);
}

/// A summary point as `{quantile}`, `_sum` and `_count` samples.
pub(crate) fn summary(out: &mut Vec<Sample>, name: &str, base: &Labels, p: &SummaryPoint) {
    let ts = millis(p.time_unix_nano);
    push(out, &format!("{name}_sum"), base, None, value_or_stale(p.sum, p.flags), ts);
    push(out, &format!("{name}_count"), base, None, value_or_stale(p.count as f64, p.flags), ts);
    for (q, v) in &p.quantile_values {
        push(out, name, base, Some(("quantile", format_bound(*q))), value_or_stale(*v, p.flags), ts);
    }
}

/// `target_info` for a resource: its non-identifying attributes as labels
/// plus `job`/`instance`; `None` when it has nothing else to say or no
/// `job`/`instance` to join on.
pub(crate) fn target_info(resource: &Resource, t: &Translation) -> Option<Labels> {
    if !t.target_info {
        return None;
    }
    let pairs: Vec<(&str, String)> = resource
        .attributes()
        .iter()
        .filter(|kv| !IDENTIFYING.contains(&kv.key.as_str()))
        .map(|kv| (kv.key.as_str(), kv.value.to_text()))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let labels = labels_of(pairs, resource, t);
    labels.iter().any(|(n, _)| n == "job" || n == "instance").then_some(labels)
}

/// `target_info`'s name under a namespace.
pub(crate) fn target_info_name(t: &Translation) -> String {
    if t.namespace.is_empty() { "target_info".into() } else { format!("{}_target_info", t.namespace) }
}
