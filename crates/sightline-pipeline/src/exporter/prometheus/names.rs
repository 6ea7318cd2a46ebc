//! Prometheus names for OTLP metrics and attributes, by the rules of the
//! Collector's `pkg/translator/prometheus` (`normalize_name.go`,
//! `normalize_label.go`): unit and type suffixes (`_seconds`, `_total`,
//! `_ratio`, `_per_second`), non-alphanumerics as `_`, a `_` or `key_`
//! prefix for names that would start badly.
//!
//! One deliberate difference: only ASCII letters and digits are kept.
//! The Collector keeps any Unicode letter, which Prometheus before 3.0
//! rejects (and a rejected name fails a whole remote-write request).

use sightline_model::{Metric, MetricData};

/// OTLP (UCUM) units and the Prometheus words for them.
const UNITS: &[(&str, &str)] = &[
    ("d", "days"),
    ("h", "hours"),
    ("min", "minutes"),
    ("s", "seconds"),
    ("ms", "milliseconds"),
    ("us", "microseconds"),
    ("ns", "nanoseconds"),
    ("By", "bytes"),
    ("KiBy", "kibibytes"),
    ("MiBy", "mebibytes"),
    ("GiBy", "gibibytes"),
    ("TiBy", "tibibytes"),
    ("KBy", "kilobytes"),
    ("MBy", "megabytes"),
    ("GBy", "gigabytes"),
    ("TBy", "terabytes"),
    ("B", "bytes"),
    ("KB", "kilobytes"),
    ("MB", "megabytes"),
    ("GB", "gigabytes"),
    ("TB", "terabytes"),
    ("m", "meters"),
    ("V", "volts"),
    ("A", "amperes"),
    ("J", "joules"),
    ("W", "watts"),
    ("g", "grams"),
    ("Cel", "celsius"),
    ("Hz", "hertz"),
    ("1", ""),
    ("%", "percent"),
    ("$", "dollars"),
];

/// The denominators of rate units (`By/s` → `per_second`).
const PER_UNITS: &[(&str, &str)] = &[
    ("s", "second"),
    ("m", "minute"),
    ("h", "hour"),
    ("d", "day"),
    ("w", "week"),
    ("mo", "month"),
    ("y", "year"),
];

fn lookup<'a>(table: &[(&str, &'a str)], key: &'a str) -> &'a str {
    table.iter().find(|(k, _)| *k == key).map_or(key, |(_, v)| v)
}

/// Splits on everything but ASCII letters and digits, dropping empties.
fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty())
}

fn clean_up(s: &str) -> String {
    tokens(s).collect::<Vec<_>>().join("_")
}

/// Whether the metric is a counter (a monotonic sum).
pub(crate) fn is_counter(metric: &Metric) -> bool {
    matches!(metric.data, MetricData::Sum { monotonic: true, .. })
}

/// The Prometheus name of a metric (before `_bucket`/`_sum`/`_count`).
/// With `add_suffixes` (the Collector's default), unit and type suffixes
/// are added; without, forbidden characters are only replaced.
pub(crate) fn metric_name(metric: &Metric, namespace: &str, add_suffixes: bool) -> String {
    if !add_suffixes {
        let name: String = metric
            .name
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        return finish(if namespace.is_empty() { name } else { format!("{namespace}_{name}") });
    }
    let mut parts: Vec<String> = tokens(&metric.name).map(str::to_owned).collect();
    let mut unit = metric.unit.splitn(2, '/');
    let main = unit.next().unwrap_or("").trim();
    if !main.is_empty() && !main.contains(['{', '}']) {
        let word = clean_up(lookup(UNITS, main));
        if !word.is_empty() && !parts.contains(&word) {
            parts.push(word);
        }
    }
    if let Some(per) = unit.next().map(str::trim).filter(|p| !p.is_empty() && !p.contains(['{', '}'])) {
        let word = clean_up(lookup(PER_UNITS, per));
        if !word.is_empty() && !parts.contains(&word) {
            parts.push("per".into());
            parts.push(word);
        }
    }
    if is_counter(metric) {
        parts.retain(|p| p != "total");
        parts.push("total".into());
    }
    if metric.unit == "1" && matches!(metric.data, MetricData::Gauge(_)) {
        parts.retain(|p| p != "ratio");
        parts.push("ratio".into());
    }
    if !namespace.is_empty() {
        parts.insert(0, namespace.to_owned());
    }
    finish(parts.join("_"))
}

/// A name may not start with a digit: prefix `_`.
fn finish(name: String) -> String {
    if name.starts_with(|c: char| c.is_ascii_digit()) { format!("_{name}") } else { name }
}

/// The Prometheus label name for an attribute key: non-alphanumerics as
/// `_`, a leading digit prefixed with `key_`, a single leading `_` with
/// `key` (`__` names are Prometheus' own and kept).
pub(crate) fn label_name(key: &str) -> String {
    if key.is_empty() {
        return String::new();
    }
    let label: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if label.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{label}")
    } else if label.starts_with('_') && !label.starts_with("__") {
        format!("key{label}")
    } else {
        label
    }
}
