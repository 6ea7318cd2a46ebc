//! Jaeger's standard trace adjusters, applied before a trace is shown
//! unless the client asks for it raw (`raw=true`, `rawTraces=true`).
//!
//! Ports of `cmd/jaeger/internal/extension/jaegerquery/internal/adjuster`:
//! `DeduplicateClientServerSpanIDs` (Zipkin-style clients share one span id
//! between the client and server half of a call; Jaeger UI needs unique
//! ids), `DeduplicateSpans` (identical copies of a span) and
//! `CorrectClockSkew` (a child span on another host shifted to fit inside
//! its parent). What they did is reported per span in `warnings`, with
//! Jaeger's texts, so a user sees that a timestamp was moved.
//!
//! Jaeger's other standard adjusters (sorting attributes, normalising IP
//! attributes, moving library attributes, dropping empty links) change only
//! presentation and are not ported.

use std::collections::HashMap;

use sightline_model::{Span, SpanId, SpanKind, Value};

use crate::duration::format_go_duration;

/// Largest shift the clock-skew adjuster applies: 0, Jaeger's default
/// (`max_clock_skew_adjust`), so the skew is computed and reported in the
/// span's warnings but timestamps stay as recorded. Jaeger made that the
/// default because the formula also "corrects" asynchronous children that
/// legitimately end after their parent (a consumer working on a message
/// long after the producer returned), which would then be shown at the
/// wrong time. A deployment flag would pass a larger bound here.
pub(crate) const MAX_CLOCK_SKEW_ADJUST_NANOS: u64 = 0;

/// Spans after adjustment, with the warnings of each (same index).
#[derive(Debug, Default)]
pub(crate) struct Adjusted {
    pub spans: Vec<Span>,
    pub warnings: Vec<Vec<String>>,
}

impl Adjusted {
    /// Spans as stored, without warnings (`raw=true`).
    pub(crate) fn raw(spans: Vec<Span>) -> Adjusted {
        let warnings = vec![Vec::new(); spans.len()];
        Adjusted { spans, warnings }
    }

    /// Spans with unique ids and without identical copies, unshifted: what
    /// Tempo's trace-by-id deduper guarantees.
    pub(crate) fn deduplicated(spans: Vec<Span>) -> Adjusted {
        let mut out = Adjusted::raw(spans);
        out.uniquify_server_span_ids();
        out.remove_duplicate_spans();
        out
    }

    /// Spans through Jaeger's adjusters, in Jaeger's order.
    pub(crate) fn new(spans: Vec<Span>, max_delta_nanos: u64) -> Adjusted {
        let mut out = Adjusted::raw(spans);
        out.uniquify_server_span_ids();
        out.remove_duplicate_spans();
        out.correct_clock_skew(max_delta_nanos);
        out
    }

    /// `DeduplicateClientServerSpanIDs`: a SERVER span sharing its id with
    /// a CLIENT span gets the next unused id and the shared id as its
    /// parent; spans that had the shared id as parent follow the server.
    fn uniquify_server_span_ids(&mut self) {
        let mut client_ids: HashMap<SpanId, ()> = HashMap::new();
        let mut used: HashMap<SpanId, ()> = HashMap::with_capacity(self.spans.len());
        for span in &self.spans {
            used.insert(span.span_id, ());
            if span.kind == SpanKind::Client {
                client_ids.insert(span.span_id, ());
            }
        }
        let mut renamed: HashMap<SpanId, SpanId> = HashMap::new();
        let mut next: u64 = 0;
        for (span, warnings) in self.spans.iter_mut().zip(&mut self.warnings) {
            if span.kind != SpanKind::Server || !client_ids.contains_key(&span.span_id) {
                continue;
            }
            // Jaeger counts up from the largest id it handed out, skipping
            // ids in use.
            let fresh = loop {
                next = next.wrapping_add(1);
                if next == 0 {
                    break None;
                }
                if let Ok(id) = SpanId::from_bytes(next.to_be_bytes())
                    && !used.contains_key(&id)
                {
                    break Some(id);
                }
            };
            let Some(fresh) = fresh else {
                warnings.push("cannot assign unique span ID, too many spans in the trace".to_owned());
                continue;
            };
            used.insert(fresh, ());
            renamed.insert(span.span_id, fresh);
            span.parent_span_id = Some(span.span_id);
            span.span_id = fresh;
        }
        if renamed.is_empty() {
            return;
        }
        for span in &mut self.spans {
            if let Some(&new_parent) = span.parent_span_id.as_ref().and_then(|p| renamed.get(p))
                && span.span_id != new_parent
            {
                span.parent_span_id = Some(new_parent);
            }
        }
    }

    /// `DeduplicateSpans`: of identical spans (same content, resource and
    /// scope), only the first is kept. Only spans with the same id can be
    /// identical, so only those are compared.
    fn remove_duplicate_spans(&mut self) {
        let mut by_id: HashMap<SpanId, Vec<usize>> = HashMap::with_capacity(self.spans.len());
        let mut keep = vec![true; self.spans.len()];
        for (i, span) in self.spans.iter().enumerate() {
            let earlier = by_id.entry(span.span_id).or_default();
            if earlier.iter().any(|&j| self.spans.get(j) == Some(span)) {
                keep[i] = false;
            } else {
                earlier.push(i);
            }
        }
        if keep.iter().all(|k| *k) {
            return;
        }
        let mut flags = keep.into_iter();
        let spans = std::mem::take(&mut self.spans);
        let warnings = std::mem::take(&mut self.warnings);
        (self.spans, self.warnings) =
            spans.into_iter().zip(warnings).filter(|_| flags.next().unwrap_or(true)).unzip();
    }

    /// `CorrectClockSkew`: walks each span tree from its root; a child on
    /// another host (or an unknown one) that does not fit inside its
    /// already-adjusted parent is shifted, with its events, by the delta
    /// Jaeger computes, and its subtree on the same host with it.
    fn correct_clock_skew(&mut self, max_delta_nanos: u64) {
        let hosts: Vec<String> = self.spans.iter().map(host_key).collect();
        let mut index: HashMap<SpanId, usize> = HashMap::with_capacity(self.spans.len());
        for (i, span) in self.spans.iter().enumerate() {
            match index.entry(span.span_id) {
                std::collections::hash_map::Entry::Occupied(_) => push_warning(
                    &mut self.warnings,
                    i,
                    "duplicate span IDs; skipping clock skew adjustment".into(),
                ),
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut roots: Vec<usize> = Vec::new();
        for (&id, &i) in &index {
            let Some(span) = self.spans.get(i) else { continue };
            debug_assert_eq!(span.span_id, id);
            match span.parent_span_id {
                None => roots.push(i),
                Some(parent) => match index.get(&parent) {
                    Some(&p) => children.entry(p).or_default().push(i),
                    None => {
                        let text = format!(
                            "parent span ID={parent} is not in the trace; skipping clock skew adjustment"
                        );
                        push_warning(&mut self.warnings, i, text);
                        roots.push(i);
                    }
                },
            }
        }
        // Deterministic output: Jaeger walks a map; order only affects the
        // order of independent subtrees.
        roots.sort_unstable();
        for list in children.values_mut() {
            list.sort_unstable();
        }
        // (node, parent, inherited delta, inherited host); a stack instead
        // of recursion, as traces can be deeper than a thread's stack.
        let mut stack: Vec<(usize, Option<usize>, i64, usize)> =
            roots.iter().rev().map(|&r| (r, None, 0, r)).collect();
        while let Some((node, parent, mut delta, mut host_of)) = stack.pop() {
            let host = hosts.get(node).map_or("", String::as_str);
            if let Some(parent) = parent
                && (host.is_empty() || hosts.get(host_of).map_or("", String::as_str) != host)
            {
                delta = match (self.spans.get(node), self.spans.get(parent)) {
                    (Some(child), Some(parent)) => skew(child, parent),
                    _ => 0,
                };
                host_of = node;
            }
            self.shift(node, delta, max_delta_nanos);
            if let Some(list) = children.get(&node) {
                stack.extend(list.iter().rev().map(|&c| (c, Some(node), delta, host_of)));
            }
        }
    }

    /// Applies `delta` to span `i`, or explains why not.
    fn shift(&mut self, i: usize, delta: i64, max_delta_nanos: u64) {
        if delta == 0 {
            return;
        }
        let shown = format_go_duration(delta);
        if delta.unsigned_abs() > max_delta_nanos {
            let text = if max_delta_nanos == 0 {
                format!("clock skew adjustment disabled; not applying calculated delta of {shown}")
            } else {
                let max = format_go_duration(i64::try_from(max_delta_nanos).unwrap_or(i64::MAX));
                format!(
                    "max clock skew adjustment delta of {max} exceeded; not applying calculated delta of {shown}"
                )
            };
            push_warning(&mut self.warnings, i, text);
            return;
        }
        if let Some(span) = self.spans.get_mut(i) {
            span.start_time_unix_nano = span.start_time_unix_nano.saturating_add_signed(delta);
            span.end_time_unix_nano = span.end_time_unix_nano.saturating_add_signed(delta);
            for event in &mut span.events {
                event.time_unix_nano = event.time_unix_nano.saturating_add_signed(delta);
            }
        }
        push_warning(&mut self.warnings, i, format!("This span's timestamps were adjusted by {shown}"));
    }
}

fn push_warning(warnings: &mut [Vec<String>], i: usize, text: String) {
    if let Some(list) = warnings.get_mut(i) {
        list.push(text);
    }
}

/// Jaeger's `calculateSkew`: how far to move `child` so it sits inside
/// `parent`, splitting the spare time evenly on both sides (network
/// latency); a child longer than its parent is only kept from starting
/// before it.
fn skew(child: &Span, parent: &Span) -> i64 {
    let (cs, ce) = (i128::from(child.start_time_unix_nano), i128::from(child.end_time_unix_nano));
    let (ps, pe) = (i128::from(parent.start_time_unix_nano), i128::from(parent.end_time_unix_nano));
    let (child_len, parent_len) = (ce - cs, pe - ps);
    let delta = if child_len > parent_len {
        if cs < ps { ps - cs } else { 0 }
    } else if cs >= ps && ce <= pe {
        0
    } else {
        // Go's Duration division truncates toward zero, as i128's does.
        let latency = (parent_len - child_len) / 2;
        ps + latency - cs
    };
    i64::try_from(delta).unwrap_or(if delta > 0 { i64::MAX } else { i64::MIN })
}

/// Jaeger's `hostKey`: `host.id`, else `host.ip` (a string, or the first
/// of a list), else `host.name` of the span's resource; empty when none.
fn host_key(span: &Span) -> String {
    let attrs = span.resource.attributes();
    let get = |key: &str| attrs.iter().find(|kv| kv.key == key).map(|kv| &kv.value);
    if let Some(v) = get("host.id") {
        return string(v);
    }
    if let Some(v) = get("host.ip") {
        match v {
            Value::Str(s) => return s.as_str().to_owned(),
            Value::Array(items) => {
                if let Some(first) = items.first() {
                    return first.to_text();
                }
            }
            _ => {}
        }
    }
    get("host.name").map(string).unwrap_or_default()
}

/// pdata's `Str()`: the text of a string value, empty for other types.
fn string(v: &Value) -> String {
    match v {
        Value::Str(s) => s.as_str().to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
