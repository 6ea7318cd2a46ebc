//! The head: recent batches in memory, as the OTLP bytes the WAL holds plus
//! an index (see [`record`]).
//!
//! The head is an append-only list of immutable `Arc<Record>`s: a query's
//! snapshot is a copy of that list, taken under a short lock, and
//! everything after that reads without any lock. A trace lookup
//! binary-searches each record's trace index; a head holds a few hundred
//! records, so that is a few thousand comparisons.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use sightline_block::{OtlpSpan, SpanKey};
use sightline_model::otlp::wire;
use sightline_model::{
    DependencyLink, Operation, Scope, Span, SpanId, SpanKind, StatusCode, TagFilter, TraceId, TraceQuery,
    span_matches,
};

pub(crate) mod record;

use record::{INDEX_BYTES_PER_SPAN, IndexError, Interner, Record, SpanEntry};

/// Recent batches, mutable only by appending.
#[derive(Debug)]
pub(crate) struct Head {
    records: Vec<Arc<Record>>,
    bytes: usize,
    spans: usize,
    created: Instant,
}

impl Default for Head {
    fn default() -> Self {
        Head { records: Vec::new(), bytes: 0, spans: 0, created: Instant::now() }
    }
}

impl Head {
    /// Bytes [`Head::append`] will take for a batch of `spans` spans
    /// encoded in `encoded` bytes: what admission control charges first.
    pub(crate) fn charge(spans: usize, encoded: usize) -> usize {
        encoded + spans * INDEX_BYTES_PER_SPAN
    }

    /// Indexes one batch (an `ExportTraceServiceRequest`'s encoding) for
    /// [`Head::push`]. Done before the WAL append and outside any lock
    /// appends contend on.
    pub(crate) fn index(otlp: &[u8], interner: &Mutex<Interner>) -> Result<Record, IndexError> {
        // A copy of exactly the batch's size: the caller's bytes may be a
        // view into a bigger buffer (an HTTP read buffer, a WAL segment)
        // that the head would otherwise keep alive whole.
        Record::index(Bytes::copy_from_slice(otlp), interner)
    }

    /// Appends an indexed batch.
    pub(crate) fn push(&mut self, record: Record) {
        if record.len() > 0 {
            self.spans += record.len();
            self.bytes += record.memory();
            self.records.push(Arc::new(record));
        }
    }

    /// Estimated bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of spans held.
    pub(crate) fn len(&self) -> usize {
        self.spans
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.spans == 0
    }

    /// When the head was started.
    pub(crate) fn created(&self) -> Instant {
        self.created
    }

    /// An immutable view of the batches held now, cheap to take under a
    /// lock.
    pub(crate) fn snapshot(&self) -> HeadSnapshot {
        HeadSnapshot { records: self.records.clone() }
    }
}

/// A frozen view of head batches: what queries read and what a flush
/// writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadSnapshot {
    records: Vec<Arc<Record>>,
}

impl HeadSnapshot {
    /// Every span, encoded, with its resource and scope, in `parts`
    /// disjoint sets by trace id (each trace whole in one): what a flush
    /// writes its blocks from.
    pub(crate) fn otlp_spans(&self, parts: usize) -> Vec<Vec<OtlpSpan<'_>>> {
        let parts = parts.max(1);
        let total: usize = self.records.iter().map(|r| r.len()).sum();
        let mut out: Vec<Vec<OtlpSpan<'_>>> =
            (0..parts).map(|_| Vec::with_capacity(total / parts + 1)).collect();
        for record in &self.records {
            for (trace, i) in record.traces() {
                // Trace ids are random: their first byte spreads evenly.
                let part = usize::from(trace.as_bytes()[0]) * parts / 256;
                let Some(entry) = record.entry(i) else { continue };
                if let (Some(group), Some(list)) = (record.group_of(entry), out.get_mut(part)) {
                    // The key as the index read it when the batch came in,
                    // the same way `OtlpSpan::read` reads it.
                    list.push(OtlpSpan {
                        bytes: record.bytes_of(entry),
                        resource: &group.resource,
                        scope: &group.scope,
                        key: SpanKey { trace_id: trace, span_id: entry.span_id, start: entry.start },
                    });
                }
            }
        }
        out
    }

    /// Number of spans.
    pub(crate) fn len(&self) -> usize {
        self.records.iter().map(|r| r.len()).sum()
    }

    /// Adds the spans of traces `ids` to `out`, decoded.
    pub(crate) fn traces(&self, ids: &[TraceId], out: &mut HashMap<TraceId, Vec<Span>>) {
        for record in &self.records {
            for id in ids {
                for i in record.spans_of(*id) {
                    if let Some(span) = record.entry(i).and_then(|e| record.decode(e)) {
                        out.entry(*id).or_default().push(span);
                    }
                }
            }
        }
    }

    /// Traces with a span matching `query`, with the latest matching start.
    /// The index answers service, operation, times; spans that pass are
    /// decoded only if the query has tags.
    pub(crate) fn search(&self, query: &TraceQuery, out: &mut HashMap<TraceId, u64>) {
        let (start_min, start_max) =
            (query.start_min_unix_nanos.unwrap_or(0), query.start_max_unix_nanos.unwrap_or(u64::MAX));
        for record in &self.records {
            if record.max_start < start_min || record.min_start > start_max {
                continue;
            }
            // Which groups have the service, which names the operation.
            let service_ok: Vec<bool> = record
                .groups()
                .iter()
                .map(|g| query.service.as_deref().is_none_or(|s| s == g.resource.service_name()))
                .collect();
            let name_ok: Vec<bool> =
                record.names().iter().map(|n| query.operation.as_deref().is_none_or(|o| o == &**n)).collect();
            let possible = record.operations().iter().any(|(g, _, n)| {
                service_ok.get(usize::from(*g)) == Some(&true) && name_ok.get(usize::from(*n)) == Some(&true)
            });
            if !possible {
                continue;
            }
            for (_, entry) in record.entries() {
                if !entry_matches(entry, query, &service_ok, &name_ok) {
                    continue;
                }
                // Tags the index answers (error, kind, status, scope)
                // need no decoding; any other tag may match an attribute.
                let group = record.group_of(entry);
                let answered =
                    query.tags.iter().all(|t| group.is_some_and(|g| synthetic_hit(entry, &g.scope, t)));
                let trace_id = if answered {
                    trace_id_of(record.bytes_of(entry))
                } else {
                    record.decode(entry).filter(|span| span_matches(span, query)).map(|span| span.trace_id)
                };
                if let Some(id) = trace_id {
                    let latest = out.entry(id).or_insert(0);
                    *latest = (*latest).max(entry.start);
                }
            }
        }
    }

    /// Adds the names of services seen.
    pub(crate) fn services(&self, out: &mut BTreeSet<String>) {
        for record in &self.records {
            for group in record.groups() {
                let service = group.resource.service_name();
                if !out.contains(service) {
                    out.insert(service.to_owned());
                }
            }
        }
    }

    /// Adds the operations of `service`, optionally of one kind only.
    pub(crate) fn operations(&self, service: &str, kind: Option<SpanKind>, out: &mut BTreeSet<Operation>) {
        for record in &self.records {
            for (g, k, n) in record.operations() {
                let group_service = record.groups().get(usize::from(*g)).map(|g| g.resource.service_name());
                if group_service == Some(service) && kind.is_none_or(|want| want == *k) {
                    let name = record.names().get(usize::from(*n)).map_or("", |n| n);
                    out.insert(Operation { name: name.to_owned(), kind: *k });
                }
            }
        }
    }

    /// Adds parent→child service calls among these spans with child start in
    /// `[from, to]`.
    pub(crate) fn dependencies(&self, from: u64, to: u64, out: &mut HashMap<(String, String), u64>) {
        // (trace, span) → (service, parent, start), read in place.
        let mut spans: HashMap<(TraceId, SpanId), (&str, Option<SpanId>, u64)> = HashMap::new();
        for record in &self.records {
            for (_, entry) in record.entries() {
                let Some(group) = record.group_of(entry) else { continue };
                let Ok(fields) = wire::span_fields(record.bytes_of(entry)) else { continue };
                let Ok((trace, span, parent)) = fields.ids() else { continue };
                spans.insert((trace, span), (group.resource.service_name(), parent, entry.start));
            }
        }
        for ((trace, _), (service, parent, start)) in &spans {
            if *start < from || *start > to {
                continue;
            }
            let Some(parent) = parent else { continue };
            if let Some((parent_service, _, _)) = spans.get(&(*trace, *parent))
                && parent_service != service
            {
                *out.entry(((*parent_service).to_owned(), (*service).to_owned())).or_insert(0) += 1;
            }
        }
    }
}

/// The conditions of `query` the index answers: start, duration, service,
/// operation.
fn entry_matches(entry: &SpanEntry, query: &TraceQuery, service_ok: &[bool], name_ok: &[bool]) -> bool {
    if query.start_min_unix_nanos.is_some_and(|min| entry.start < min)
        || query.start_max_unix_nanos.is_some_and(|max| entry.start > max)
    {
        return false;
    }
    let duration = entry.end.saturating_sub(entry.start);
    if query.min_duration_nanos.is_some_and(|min| duration < min)
        || query.max_duration_nanos.is_some_and(|max| duration > max)
    {
        return false;
    }
    service_ok.get(usize::from(entry.group)) == Some(&true)
        && name_ok.get(usize::from(entry.name)) == Some(&true)
}

/// Whether one of the synthetic tags Jaeger adds (see
/// `sightline_model::tag_lookup`) holds for the span, from the index alone.
/// `false` means "maybe not": an attribute of the same key may still match.
fn synthetic_hit(entry: &SpanEntry, scope: &Scope, tag: &TagFilter) -> bool {
    let value = tag.value.as_str();
    match tag.key.as_str() {
        "error" => entry.status == StatusCode::Error && value == "true",
        "span.kind" => entry.kind.jaeger_name() == value,
        "otel.status_code" => entry.status.otel_name() == Some(value),
        "otel.scope.name" => scope.name == value,
        "otel.scope.version" => scope.version == value,
        _ => false,
    }
}

/// The trace id of an encoded span (valid: the index checked it). The
/// last occurrence wins, as in protobuf.
fn trace_id_of(span: &[u8]) -> Option<TraceId> {
    let mut id = None;
    for item in wire::fields(span) {
        if let Ok((wire::span::TRACE_ID, f)) = item {
            id = f.bytes().ok();
        }
    }
    id.and_then(|b| TraceId::from_slice(b).ok())
}

/// Merges dependency counts into the reply shape.
pub(crate) fn dependency_links(counts: HashMap<(String, String), u64>) -> Vec<DependencyLink> {
    let mut links: Vec<DependencyLink> = counts
        .into_iter()
        .map(|((parent, child), call_count)| DependencyLink { parent, child, call_count })
        .collect();
    links.sort();
    links
}

#[cfg(test)]
mod tests;
