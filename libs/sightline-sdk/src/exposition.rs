//! `/metrics` in the format the scraper asks for.
//!
//! `prometheus_client` writes OpenMetrics only. Prometheus asks for
//! OpenMetrics (`Accept: application/openmetrics-text`) and reads the
//! trace-id exemplars from it; `curl`, `promtool check metrics` and older
//! scrapers read the Prometheus text format 0.0.4, which has no exemplars,
//! no `# UNIT` / `# EOF`, and names a counter family after its `_total`
//! samples. [`to_text`] converts one into the other.

/// Content type of the OpenMetrics exposition.
#[cfg(feature = "axum")]
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text exposition.
#[cfg(feature = "axum")]
pub(crate) const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header lists OpenMetrics with a non-zero quality.
#[cfg(feature = "axum")]
pub(crate) fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        parts.next().is_some_and(|m| m.eq_ignore_ascii_case("application/openmetrics-text"))
            && !parts.any(|p| p.replace(' ', "").eq_ignore_ascii_case("q=0"))
    })
}

/// Where a sample line's exemplar starts (` # ` outside label quotes).
fn exemplar_start(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let (mut quoted, mut escaped) = (false, false);
    for (i, &c) in b.iter().enumerate() {
        match c {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'#' if !quoted && i > 0 && b[i - 1] == b' ' => return Some(i - 1),
            _ => {}
        }
    }
    None
}

/// OpenMetrics to Prometheus text 0.0.4.
pub(crate) fn to_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<(&str, &str)> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest.split_once(' ').unwrap_or((rest, "")));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "gauge" | "histogram" | "summary" => ("", kind),
                _ => ("", "untyped"),
            };
            if let Some((h, text)) = help.take()
                && h == name
            {
                out.push_str(&format!("# HELP {name}{suffix} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name}{suffix} {kind}\n"));
        } else if line.starts_with('#') || line.is_empty() {
            // `# UNIT`, `# EOF`: no 0.0.4 form.
        } else {
            out.push_str(exemplar_start(line).map_or(line, |i| &line[..i]));
            out.push('\n');
        }
    }
    out
}
