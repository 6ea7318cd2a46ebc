//! The two exposition formats of `/metrics` and how a request picks one.
//!
//! `prometheus_client` writes OpenMetrics only. Prometheus asks for it in
//! `Accept` and reads exemplars from it; other tools (`curl`, `promtool
//! check metrics`, older scrapers) read the Prometheus text format 0.0.4,
//! which has no exemplars, no `# UNIT`/`# EOF` lines, and names a counter's
//! family after its `_total` samples. [`to_prometheus_text`] rewrites one
//! into the other, line by line.

/// Content type of the OpenMetrics exposition.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Content type of the Prometheus text exposition.
pub(crate) const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (with a non-zero
/// quality).
pub(crate) fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        media.eq_ignore_ascii_case("application/openmetrics-text")
            && parts.all(|p| {
                p.split_once('=').is_none_or(|(k, v)| {
                    !k.trim().eq_ignore_ascii_case("q") || v.trim().parse::<f64>().is_ok_and(|q| q > 0.0)
                })
            })
    })
}

/// Rewrites an OpenMetrics exposition as Prometheus text 0.0.4: drops
/// `# EOF`, `# UNIT` and exemplars; names counter families `<name>_total`
/// and info families `<name>_info` (as gauges); `unknown` becomes
/// `untyped`.
pub(crate) fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // prometheus_client writes HELP before TYPE; the family name is only
    // known once TYPE is read.
    let mut pending_help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, text));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "gauge" | "histogram" | "summary" => ("", kind),
                _ => ("", "untyped"),
            };
            if let Some((help_name, text)) = pending_help.take()
                && help_name == name
            {
                out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name}{suffix} {kind}\n"));
        } else if line.starts_with('#') {
            // `# UNIT`, `# EOF` and comments have no 0.0.4 form.
        } else if !line.is_empty() {
            out.push_str(without_exemplar(line));
            out.push('\n');
        }
    }
    out
}

/// A sample line without its ` # {…} value [timestamp]` exemplar. Label
/// values may contain ` # `, so the label set is skipped first.
fn without_exemplar(line: &str) -> &str {
    let bytes = line.as_bytes();
    let mut i = 0;
    let mut in_labels = false;
    let mut in_quotes = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' if in_quotes => i += 1,
            b'"' if in_labels => in_quotes = !in_quotes,
            b'{' if !in_quotes => in_labels = true,
            b'}' if !in_quotes => in_labels = false,
            b'#' if !in_labels && i > 0 && bytes.get(i - 1) == Some(&b' ') => {
                return line.get(..i - 1).unwrap_or(line).trim_end();
            }
            _ => {}
        }
        i += 1;
    }
    line
}
