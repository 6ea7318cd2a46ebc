//! What a search result list shows of a trace without its spans: root,
//! time range, span and error counts per service. Jaeger API v3's
//! `/api/v3/trace-summaries` and Tempo's `/api/search` both list traces this
//! way; the rules are Jaeger's `summarizeTrace`.

use std::collections::{BTreeMap, HashSet};

use sightline_model::{Span, StatusCode, TraceId};

/// One trace, summarised.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary<'a> {
    pub trace_id: TraceId,
    /// The parentless span that started first, if any span has no parent.
    pub root: Option<&'a Span>,
    /// Earliest span start, ns since the epoch.
    pub min_start: u64,
    /// Latest span end.
    pub max_end: u64,
    pub span_count: usize,
    pub error_span_count: usize,
    /// Spans whose parent is not in the trace (an incomplete trace).
    pub orphan_span_count: usize,
    /// Per service, sorted by name.
    pub services: Vec<ServiceSummary<'a>>,
}

/// One service's share of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceSummary<'a> {
    pub name: &'a str,
    pub span_count: usize,
    pub error_span_count: usize,
}

/// Summarises a non-empty trace; `None` for no spans.
pub(crate) fn summarize(spans: &[Span]) -> Option<Summary<'_>> {
    let first = spans.first()?;
    let ids: HashSet<_> = spans.iter().map(|s| s.span_id).collect();
    let mut services: BTreeMap<&str, ServiceSummary<'_>> = BTreeMap::new();
    let mut out = Summary {
        trace_id: first.trace_id,
        root: None,
        min_start: u64::MAX,
        max_end: 0,
        span_count: spans.len(),
        error_span_count: 0,
        orphan_span_count: 0,
        services: Vec::new(),
    };
    for span in spans {
        let name = span.service_name();
        let service =
            services.entry(name).or_insert(ServiceSummary { name, span_count: 0, error_span_count: 0 });
        service.span_count += 1;
        if span.status.code == StatusCode::Error {
            service.error_span_count += 1;
            out.error_span_count += 1;
        }
        out.min_start = out.min_start.min(span.start_time_unix_nano);
        out.max_end = out.max_end.max(span.end_time_unix_nano);
        match span.parent_span_id {
            None => {
                if out.root.is_none_or(|r| span.start_time_unix_nano < r.start_time_unix_nano) {
                    out.root = Some(span);
                }
            }
            Some(parent) if !ids.contains(&parent) => out.orphan_span_count += 1,
            Some(_) => {}
        }
    }
    out.services = services.into_values().collect();
    Some(out)
}
