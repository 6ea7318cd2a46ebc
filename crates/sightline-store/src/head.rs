//! The head: recent spans in memory, appended batch by batch.
//!
//! Each batch becomes an immutable [`Chunk`] carrying its own small indexes
//! (trace ids sorted, distinct operations), so the head is an append-only
//! list of `Arc`s: a query's snapshot is a copy of that list, taken under a
//! short lock, and everything after that reads without any lock. A trace
//! lookup binary-searches each chunk's index; a head holds a few hundred
//! chunks, so that is a few thousand comparisons.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use sightline_model::{DependencyLink, Operation, Span, SpanId, SpanKind, TraceId, TraceQuery, span_matches};

/// One appended batch and its indexes.
#[derive(Debug)]
pub(crate) struct Chunk {
    spans: Vec<Span>,
    /// `(trace id, index in spans)`, sorted.
    by_trace: Box<[(TraceId, u32)]>,
    /// Distinct `(service, kind, span name)` of the chunk's spans.
    operations: Box<[HeadOperation]>,
    min_start: u64,
    max_start: u64,
}

/// `(service, kind, span name)`, names shared across a head.
type HeadOperation = (Arc<str>, SpanKind, Arc<str>);

/// Bytes a chunk's indexes take per span, beyond the spans themselves.
const INDEX_BYTES_PER_SPAN: usize = std::mem::size_of::<(TraceId, u32)>();

/// Recent spans, mutable only by appending.
#[derive(Debug)]
pub(crate) struct Head {
    chunks: Vec<Arc<Chunk>>,
    /// Service and span names seen, so chunks share one copy of each.
    names: HashSet<Arc<str>>,
    bytes: usize,
    spans: usize,
    created: Instant,
}

impl Default for Head {
    fn default() -> Self {
        Head { chunks: Vec::new(), names: HashSet::new(), bytes: 0, spans: 0, created: Instant::now() }
    }
}

impl Head {
    /// Bytes [`Head::append`] will add for spans of `span_bytes` estimated
    /// bytes: what admission control charges before the append.
    pub(crate) fn charge(spans: usize, span_bytes: usize) -> usize {
        span_bytes + spans * INDEX_BYTES_PER_SPAN
    }

    /// Appends one batch; `span_bytes` is its estimated size, already
    /// computed by the caller for admission.
    pub(crate) fn append(&mut self, spans: Vec<Span>, span_bytes: usize) {
        if spans.is_empty() {
            return;
        }
        let mut by_trace: Vec<(TraceId, u32)> =
            spans.iter().enumerate().map(|(i, s)| (s.trace_id, i as u32)).collect();
        by_trace.sort_unstable();
        let mut seen: HashSet<(&str, SpanKind, &str)> = HashSet::new();
        let mut operations = Vec::new();
        let (mut min_start, mut max_start) = (u64::MAX, 0);
        for span in &spans {
            min_start = min_start.min(span.start_time_unix_nano);
            max_start = max_start.max(span.start_time_unix_nano);
            if seen.insert((span.service_name(), span.kind, &span.name)) {
                let service = intern(&mut self.names, span.service_name());
                let name = intern(&mut self.names, &span.name);
                operations.push((service, span.kind, name));
            }
        }
        drop(seen);
        self.spans += spans.len();
        self.bytes += Head::charge(spans.len(), span_bytes);
        self.chunks.push(Arc::new(Chunk {
            spans,
            by_trace: by_trace.into_boxed_slice(),
            operations: operations.into_boxed_slice(),
            min_start,
            max_start,
        }));
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

    /// An immutable view of the spans held now, cheap to take under a lock.
    pub(crate) fn snapshot(&self) -> HeadSnapshot {
        HeadSnapshot { chunks: self.chunks.clone() }
    }
}

fn intern(names: &mut HashSet<Arc<str>>, name: &str) -> Arc<str> {
    match names.get(name) {
        Some(n) => Arc::clone(n),
        None => {
            let n: Arc<str> = Arc::from(name);
            names.insert(Arc::clone(&n));
            n
        }
    }
}

/// A frozen view of head spans: what queries read and what a flush writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadSnapshot {
    chunks: Vec<Arc<Chunk>>,
}

impl HeadSnapshot {
    /// Every span, in append order.
    pub(crate) fn spans(&self) -> impl Iterator<Item = &Span> {
        self.chunks.iter().flat_map(|c| c.spans.iter())
    }

    /// Adds copies of the spans of traces `ids` to `out`.
    pub(crate) fn traces(&self, ids: &[TraceId], out: &mut HashMap<TraceId, Vec<Span>>) {
        for chunk in &self.chunks {
            for id in ids {
                let first = chunk.by_trace.partition_point(|(t, _)| t < id);
                for (_, i) in chunk.by_trace[first..].iter().take_while(|(t, _)| t == id) {
                    if let Some(span) = chunk.spans.get(*i as usize) {
                        out.entry(*id).or_default().push(span.clone());
                    }
                }
            }
        }
    }

    /// Traces with a span matching `query`, with the latest matching start.
    pub(crate) fn search(&self, query: &TraceQuery, out: &mut HashMap<TraceId, u64>) {
        for chunk in &self.chunks {
            if query.start_min_unix_nanos.is_some_and(|min| chunk.max_start < min)
                || query.start_max_unix_nanos.is_some_and(|max| chunk.min_start > max)
                || !chunk.operations.iter().any(|(service, _, name)| {
                    query.service.as_deref().is_none_or(|s| s == &**service)
                        && query.operation.as_deref().is_none_or(|o| o == &**name)
                })
            {
                continue;
            }
            for span in &chunk.spans {
                if span_matches(span, query) {
                    let latest = out.entry(span.trace_id).or_insert(0);
                    *latest = (*latest).max(span.start_time_unix_nano);
                }
            }
        }
    }

    /// Adds the names of services seen.
    pub(crate) fn services(&self, out: &mut BTreeSet<String>) {
        for chunk in &self.chunks {
            for (service, _, _) in chunk.operations.iter() {
                if !out.contains(&**service) {
                    out.insert(service.to_string());
                }
            }
        }
    }

    /// Adds the operations of `service`, optionally of one kind only.
    pub(crate) fn operations(&self, service: &str, kind: Option<SpanKind>, out: &mut BTreeSet<Operation>) {
        for chunk in &self.chunks {
            for (s, k, name) in chunk.operations.iter() {
                if &**s == service && kind.is_none_or(|want| want == *k) {
                    out.insert(Operation { name: name.to_string(), kind: *k });
                }
            }
        }
    }

    /// Adds parent→child service calls among these spans with child start in
    /// `[from, to]`.
    pub(crate) fn dependencies(&self, from: u64, to: u64, out: &mut HashMap<(String, String), u64>) {
        let mut service_of: HashMap<(TraceId, SpanId), &str> = HashMap::new();
        for span in self.spans() {
            service_of.insert((span.trace_id, span.span_id), span.service_name());
        }
        for span in self.spans() {
            if span.start_time_unix_nano < from || span.start_time_unix_nano > to {
                continue;
            }
            let Some(parent) = span.parent_span_id else { continue };
            if let Some(parent_service) = service_of.get(&(span.trace_id, parent))
                && *parent_service != span.service_name()
            {
                *out.entry(((*parent_service).to_owned(), span.service_name().to_owned())).or_insert(0) += 1;
            }
        }
    }
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
