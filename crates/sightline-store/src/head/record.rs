//! One accepted batch as the head keeps it: the OTLP protobuf bytes that
//! went into the WAL, plus a compact index of its spans.
//!
//! A decoded span held ~1.5 KB (3× its encoding: one allocation per string
//! and attribute); the bytes and a 60-byte index entry hold it in about a
//! third of that, and a flush encodes blocks straight from the bytes. What
//! the index keeps is what queries filter on without decoding (times, name,
//! kind, status, service via the resource); attribute filters and results
//! decode the few spans they need.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use sightline_model::otlp::{decode_group, decode_span_bytes, wire};
use sightline_model::{Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId};

/// Where a span is in its record and what queries filter on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpanEntry {
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// The span's id: with the trace id (in the trace index) and the
    /// start, what a flush orders and deduplicates by without reading the
    /// span (see `sightline_block::SpanKey`).
    pub(crate) span_id: SpanId,
    /// Byte range of the encoded span in the record.
    offset: u32,
    len: u32,
    /// Index into the record's names.
    pub(crate) name: u16,
    /// Index into the record's groups.
    pub(crate) group: u16,
    pub(crate) kind: SpanKind,
    pub(crate) status: StatusCode,
}

/// The resource and scope a record's `ScopeSpans` share.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) resource: Arc<Resource>,
    pub(crate) scope: Arc<Scope>,
}

/// One batch's bytes and index. Immutable once built.
#[derive(Debug)]
pub(crate) struct Record {
    bytes: Bytes,
    spans: Box<[SpanEntry]>,
    /// `(trace id, index into spans)`, sorted: lookups binary-search it.
    by_trace: Box<[(TraceId, u32)]>,
    groups: Box<[Group]>,
    names: Box<[Arc<str>]>,
    /// Distinct `(group, kind, name)` of the spans.
    operations: Box<[(u16, SpanKind, u16)]>,
    pub(crate) min_start: u64,
    pub(crate) max_start: u64,
}

/// Index bytes per span: the entry and its trace-index slot.
pub(crate) const INDEX_BYTES_PER_SPAN: usize =
    std::mem::size_of::<SpanEntry>() + std::mem::size_of::<(TraceId, u32)>();

/// Decoded resources, scopes and names a head's records share, so a head
/// holds one copy of each however many batches repeat them.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    resources: HashMap<(Vec<u8>, String), Arc<Resource>>,
    scopes: HashMap<(Vec<u8>, String), Arc<Scope>>,
    names: HashSet<Arc<str>>,
}

impl Interner {
    fn group(&mut self, g: &wire::Group<'_>) -> Result<Group, String> {
        let key = |parts: &[&[u8]], url: &str| (parts.concat(), url.to_owned());
        let resource_key = key(&g.resource, g.resource_schema_url);
        let scope_key = key(&g.scope, g.scope_schema_url);
        if let (Some(resource), Some(scope)) =
            (self.resources.get(&resource_key), self.scopes.get(&scope_key))
        {
            return Ok(Group { resource: Arc::clone(resource), scope: Arc::clone(scope) });
        }
        let (resource, scope) = decode_group(g)?;
        let resource = Arc::clone(self.resources.entry(resource_key).or_insert_with(|| Arc::new(resource)));
        let scope = Arc::clone(self.scopes.entry(scope_key).or_insert_with(|| Arc::new(scope)));
        Ok(Group { resource, scope })
    }

    fn name(&mut self, name: &str) -> Arc<str> {
        match self.names.get(name) {
            Some(n) => Arc::clone(n),
            None => {
                let n: Arc<str> = Arc::from(name);
                self.names.insert(Arc::clone(&n));
                n
            }
        }
    }
}

/// Why a record could not be indexed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct IndexError(String);

impl Record {
    /// Indexes an `ExportTraceServiceRequest`. Spans the OTLP decoder
    /// would reject (invalid ids) are left out, as it leaves them out.
    /// Resources, scopes and names are shared through `interner`, locked
    /// briefly per group and once for the names.
    pub(crate) fn index(bytes: Bytes, interner: &Mutex<Interner>) -> Result<Record, IndexError> {
        // Each `ScopeSpans` of the request, mapped to a distinct (resource,
        // scope) pair: requests that repeat a resource per span (or batches
        // merged from many requests) keep one entry per pair.
        let mut groups: Vec<Group> = Vec::new();
        let mut group_of: Vec<usize> = Vec::new();
        let mut raw: Vec<(usize, &[u8])> = Vec::new();
        let mut group_error = None;
        wire::visit_request(
            &bytes,
            |g| match interner.lock().group(&g) {
                Ok(group) => {
                    let same = groups.iter().position(|known| {
                        Arc::ptr_eq(&known.resource, &group.resource)
                            && Arc::ptr_eq(&known.scope, &group.scope)
                    });
                    group_of.push(same.unwrap_or_else(|| {
                        groups.push(group);
                        groups.len() - 1
                    }));
                }
                Err(e) => {
                    group_error.get_or_insert(e);
                    group_of.push(0);
                }
            },
            |g, span| raw.push((g, span)),
        )
        .map_err(|e| IndexError(e.to_string()))?;
        if let Some(e) = group_error {
            return Err(IndexError(e));
        }
        if groups.len() > usize::from(u16::MAX) {
            return Err(IndexError(format!("{} resource/scope groups in one batch", groups.len())));
        }
        let base = bytes.as_ptr() as usize;
        let mut names: Vec<Arc<str>> = Vec::new();
        let mut name_index: HashMap<Arc<str>, u16> = HashMap::new();
        let mut spans = Vec::with_capacity(raw.len());
        let mut by_trace = Vec::with_capacity(raw.len());
        let mut operations: HashSet<(u16, SpanKind, u16)> = HashSet::new();
        let (mut min_start, mut max_start) = (u64::MAX, 0);
        for (g, span) in raw {
            let g = group_of.get(g).copied().unwrap_or(0);
            let Some(summary) = summarize(span, &groups[g]) else { continue };
            let name = match name_index.get(summary.name.as_ref()) {
                Some(i) => *i,
                None => {
                    let i = u16::try_from(names.len())
                        .map_err(|_| IndexError("more than 65535 span names in one batch".to_owned()))?;
                    let n: Arc<str> = Arc::from(summary.name.as_ref());
                    names.push(Arc::clone(&n));
                    name_index.insert(n, i);
                    i
                }
            };
            let group = g as u16;
            operations.insert((group, summary.kind, name));
            min_start = min_start.min(summary.start);
            max_start = max_start.max(summary.start);
            let offset = span.as_ptr() as usize - base;
            by_trace.push((summary.trace_id, spans.len() as u32));
            spans.push(SpanEntry {
                start: summary.start,
                end: summary.end,
                span_id: summary.span_id,
                offset: u32::try_from(offset).map_err(|_| IndexError("batch over 4 GiB".to_owned()))?,
                len: span.len() as u32,
                name,
                group,
                kind: summary.kind,
                status: summary.status,
            });
        }
        drop(name_index);
        {
            let mut shared = interner.lock();
            for name in &mut names {
                *name = shared.name(name);
            }
        }
        by_trace.sort_unstable();
        let mut operations: Vec<(u16, SpanKind, u16)> = operations.into_iter().collect();
        operations.sort_unstable();
        Ok(Record {
            bytes,
            spans: spans.into_boxed_slice(),
            by_trace: by_trace.into_boxed_slice(),
            groups: groups.into_boxed_slice(),
            names: names.into_boxed_slice(),
            operations: operations.into_boxed_slice(),
            min_start,
            max_start,
        })
    }

    /// Bytes held: the encoding, the index, the tables.
    pub(crate) fn memory(&self) -> usize {
        self.bytes.len()
            + self.spans.len() * INDEX_BYTES_PER_SPAN
            + self.groups.len() * std::mem::size_of::<Group>()
            + self.names.len() * 16
            + self.operations.len() * 8
            + std::mem::size_of::<Record>()
    }

    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (usize, &SpanEntry)> {
        self.spans.iter().enumerate()
    }

    /// `(trace id, span index)` of every span, by trace id.
    pub(crate) fn traces(&self) -> impl Iterator<Item = (TraceId, usize)> + '_ {
        self.by_trace.iter().map(|(t, i)| (*t, *i as usize))
    }

    /// Indexes of the spans of trace `id`.
    pub(crate) fn spans_of(&self, id: TraceId) -> impl Iterator<Item = usize> + '_ {
        let first = self.by_trace.partition_point(|(t, _)| *t < id);
        self.by_trace[first..].iter().take_while(move |(t, _)| *t == id).map(|(_, i)| *i as usize)
    }

    /// The encoded span at `i`.
    pub(crate) fn bytes_of(&self, entry: &SpanEntry) -> &[u8] {
        let start = entry.offset as usize;
        self.bytes.get(start..start + entry.len as usize).unwrap_or(&[])
    }

    pub(crate) fn entry(&self, i: usize) -> Option<&SpanEntry> {
        self.spans.get(i)
    }

    pub(crate) fn group_of(&self, entry: &SpanEntry) -> Option<&Group> {
        self.groups.get(usize::from(entry.group))
    }

    pub(crate) fn groups(&self) -> &[Group] {
        &self.groups
    }

    pub(crate) fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// Distinct `(group, kind, name)` indexes.
    pub(crate) fn operations(&self) -> &[(u16, SpanKind, u16)] {
        &self.operations
    }

    /// The span at `entry`, decoded.
    pub(crate) fn decode(&self, entry: &SpanEntry) -> Option<Span> {
        let group = self.group_of(entry)?;
        decode_span_bytes(self.bytes_of(entry), &group.resource, &group.scope).ok()
    }
}

/// What the index keeps of a span.
struct Summary<'a> {
    trace_id: TraceId,
    span_id: SpanId,
    name: std::borrow::Cow<'a, str>,
    start: u64,
    end: u64,
    kind: SpanKind,
    status: StatusCode,
}

/// Reads a span's summary in place; a span that does not read in place is
/// decoded (it is valid: the receiver decoded it), one the decoder rejects
/// is `None`.
fn summarize<'a>(span: &'a [u8], group: &Group) -> Option<Summary<'a>> {
    let read = wire::span_fields(span).ok().and_then(|f| {
        let (trace_id, span_id, _) = f.ids().ok()?;
        wire::check_links(span).ok()?;
        Some(Summary {
            trace_id,
            span_id,
            name: std::borrow::Cow::Borrowed(f.name),
            start: f.start,
            end: f.end,
            kind: SpanKind::from_i32(f.kind),
            status: StatusCode::from_i32(f.status_code),
        })
    });
    if read.is_some() {
        return read;
    }
    let decoded = decode_span_bytes(span, &group.resource, &group.scope).ok()?;
    Some(Summary {
        trace_id: decoded.trace_id,
        span_id: decoded.span_id,
        name: std::borrow::Cow::Owned(decoded.name),
        start: decoded.start_time_unix_nano,
        end: decoded.end_time_unix_nano,
        kind: decoded.kind,
        status: decoded.status.code,
    })
}
