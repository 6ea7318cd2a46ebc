//! The head: recent spans in memory, appended batch by batch.
//!
//! Batches are kept as immutable `Arc`ed chunks so a query can take a
//! snapshot (clone the chunk list) under a short lock and then read without
//! blocking ingest. A trace-id index points into the chunks.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Instant;

use sightline_model::{DependencyLink, Operation, Span, SpanId, SpanKind, TraceId, TraceQuery, span_matches};

/// Position of a span: (chunk index, index in chunk).
type Pos = (u32, u32);

/// Hashes trace ids by their last 8 bytes. Trace ids are random (W3C
/// requires it), so those bytes already are a good hash, and SipHash over
/// 16 bytes per span was a measurable part of ingest.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 16]` hashes as its length, then its bytes: keep a rolling
        // mix so both calls count and the id bytes dominate.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x517C_C1B7_2722_0A95);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 ^= n as u64;
    }
}

type IdMap<V> = HashMap<TraceId, V, BuildHasherDefault<IdHasher>>;

/// A trace's span positions; most traces in a head have a few spans, and a
/// single-span trace needs no allocation.
#[derive(Debug)]
enum Positions {
    One(Pos),
    Many(Vec<Pos>),
}

impl Positions {
    fn push(&mut self, pos: Pos) {
        match self {
            Positions::One(first) => *self = Positions::Many(vec![*first, pos]),
            Positions::Many(list) => list.push(pos),
        }
    }

    fn as_slice(&self) -> &[Pos] {
        match self {
            Positions::One(p) => std::slice::from_ref(p),
            Positions::Many(list) => list,
        }
    }
}

/// Recent spans, mutable only by appending.
#[derive(Debug)]
pub(crate) struct Head {
    chunks: Vec<Arc<Vec<Span>>>,
    by_trace: IdMap<Positions>,
    /// service → kind → span names.
    operations: HashMap<String, HashMap<SpanKind, HashSet<String>>>,
    operation_count: usize,
    /// The last operation noted, by resource pointer: consecutive spans of
    /// one batch usually repeat it, and then no map is looked at.
    last_operation: Option<(usize, SpanKind, String)>,
    bytes: usize,
    spans: usize,
    min_start: u64,
    max_start: u64,
    created: Instant,
}

impl Default for Head {
    fn default() -> Self {
        Head {
            chunks: Vec::new(),
            by_trace: IdMap::default(),
            operations: HashMap::new(),
            operation_count: 0,
            last_operation: None,
            bytes: 0,
            spans: 0,
            min_start: u64::MAX,
            max_start: 0,
            created: Instant::now(),
        }
    }
}

impl Head {
    /// Appends one batch. Its size estimate is given by the caller, who
    /// already computed it for the memory budget.
    pub(crate) fn append(&mut self, spans: Vec<Span>, bytes: usize) {
        if spans.is_empty() {
            return;
        }
        let chunk = self.chunks.len() as u32;
        for (i, span) in spans.iter().enumerate() {
            let pos = (chunk, i as u32);
            match self.by_trace.get_mut(&span.trace_id) {
                Some(positions) => positions.push(pos),
                None => {
                    self.by_trace.insert(span.trace_id, Positions::One(pos));
                }
            }
            self.min_start = self.min_start.min(span.start_time_unix_nano);
            self.max_start = self.max_start.max(span.start_time_unix_nano);
            self.note_operation(span);
        }
        self.spans += spans.len();
        self.bytes += bytes;
        self.chunks.push(Arc::new(spans));
    }

    /// Records the span's operation; lookups by `&str` first, so the common
    /// case (a known operation) allocates nothing.
    fn note_operation(&mut self, span: &Span) {
        let resource = Arc::as_ptr(&span.resource) as usize;
        if self
            .last_operation
            .as_ref()
            .is_some_and(|(r, k, name)| *r == resource && *k == span.kind && *name == span.name)
        {
            return;
        }
        self.remember_operation(span);
        // NOTE: the pointer stays valid as an identity: the head keeps every
        // span (and so its resource `Arc`) alive as long as itself.
        match &mut self.last_operation {
            Some((r, k, name)) => {
                (*r, *k) = (resource, span.kind);
                name.clear();
                name.push_str(&span.name);
            }
            None => self.last_operation = Some((resource, span.kind, span.name.clone())),
        }
    }

    fn remember_operation(&mut self, span: &Span) {
        let service = span.service_name();
        let known = self
            .operations
            .get(service)
            .and_then(|kinds| kinds.get(&span.kind))
            .is_some_and(|names| names.contains(span.name.as_str()));
        if known || self.operation_count >= MAX_HEAD_OPERATIONS {
            return;
        }
        if !self.operations.contains_key(service) {
            self.operations.insert(service.to_owned(), HashMap::new());
        }
        if let Some(kinds) = self.operations.get_mut(service) {
            kinds.entry(span.kind).or_default().insert(span.name.clone());
            self.operation_count += 1;
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

    /// Spans of one trace, copied out.
    pub(crate) fn trace(&self, id: TraceId) -> Vec<Span> {
        self.by_trace
            .get(&id)
            .map(|positions| {
                positions
                    .as_slice()
                    .iter()
                    .filter_map(|(c, i)| self.chunks.get(*c as usize).and_then(|ch| ch.get(*i as usize)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// An immutable view of the spans held now, cheap to take under a lock.
    pub(crate) fn snapshot(&self) -> HeadSnapshot {
        HeadSnapshot { chunks: self.chunks.clone(), min_start: self.min_start, max_start: self.max_start }
    }

    /// Adds the names of services seen.
    pub(crate) fn services(&self, out: &mut BTreeSet<String>) {
        out.extend(self.operations.keys().cloned());
    }

    /// Adds the operations of `service`, optionally of one kind only.
    pub(crate) fn operations(&self, service: &str, kind: Option<SpanKind>, out: &mut BTreeSet<Operation>) {
        let Some(kinds) = self.operations.get(service) else { return };
        for (k, names) in kinds {
            if kind.is_none_or(|want| want == *k) {
                out.extend(names.iter().map(|name| Operation { name: name.clone(), kind: *k }));
            }
        }
    }
}

/// Bound on distinct operations tracked per head, so a client sending
/// unique span names cannot grow the set without limit; blocks still record
/// every operation when the head is flushed.
const MAX_HEAD_OPERATIONS: usize = 100_000;

/// A frozen view of head spans: what queries scan and what a flush writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadSnapshot {
    chunks: Vec<Arc<Vec<Span>>>,
    min_start: u64,
    max_start: u64,
}

impl HeadSnapshot {
    pub(crate) fn spans(&self) -> impl Iterator<Item = &Span> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// Traces with a span matching `query`, with the latest matching start.
    pub(crate) fn search(&self, query: &TraceQuery, out: &mut HashMap<TraceId, u64>) {
        if query.start_min_unix_nanos.is_some_and(|min| self.max_start < min)
            || query.start_max_unix_nanos.is_some_and(|max| self.min_start > max)
        {
            return;
        }
        for span in self.spans() {
            if span_matches(span, query) {
                let latest = out.entry(span.trace_id).or_insert(0);
                *latest = (*latest).max(span.start_time_unix_nano);
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
