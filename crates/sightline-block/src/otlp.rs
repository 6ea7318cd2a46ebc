//! Blocks straight from OTLP protobuf: [`write_otlp`] fills the column
//! builders from each span's wire bytes in one streaming pass, without
//! decoding spans into `prost` structs or the model (one allocation per
//! string and attribute, most of what flushing a decoded head cost).
//!
//! The rows are exactly those [`crate::write()`] writes for the same spans
//! decoded (the tests compare them column by column): both paths fill the
//! same builders through [`Row`]; only how a span is read differs. A span
//! whose encoding the wire readers leave to `prost` (see
//! `sightline_model::otlp::wire`) is decoded and written through the model
//! path.

use std::path::Path;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1 as pc;
use prost::Message as _;
use sightline_model::otlp::wire::{self, AnyValue, Field, ValueKind, span};
use sightline_model::otlp::{decode_span_bytes, decode_value};
use sightline_model::{Resource, Scope, Span, SpanId, SpanKind, StatusCode, TraceId, Value};

use crate::dedicated::CHOOSE_SAMPLE;
use crate::dedicated::Dedicated;
use crate::json;
use crate::row::{AttrKind, AttrValue, Row};
use crate::write::{Rows, Scalars, SortKey, Writer, sort_dedup_keys};
use crate::{BlockMeta, Error, WriteOptions};

/// One span to write: its OTLP protobuf encoding
/// (`opentelemetry.proto.trace.v1.Span`), the resource and scope of the
/// `ScopeSpans` it came in, and what the writer orders it by.
#[derive(Debug, Clone, Copy)]
pub struct OtlpSpan<'a> {
    /// The encoded span.
    pub bytes: &'a [u8],
    /// Its resource.
    pub resource: &'a Arc<Resource>,
    /// Its instrumentation scope.
    pub scope: &'a Arc<Scope>,
    /// Its ids and start, exactly as [`OtlpSpan::read`] reads them.
    pub key: SpanKey,
}

/// What [`write_otlp`] sorts and deduplicates a span by. A caller that has
/// read these already (the store's head index reads them when it admits a
/// batch) passes them in, so the flush does not walk every span once more
/// just for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanKey {
    /// The span's trace id.
    pub trace_id: TraceId,
    /// Its span id.
    pub span_id: SpanId,
    /// Its start, ns since the Unix epoch.
    pub start: u64,
}

impl<'a> OtlpSpan<'a> {
    /// The span with its key read from `bytes` (in place, or decoded for
    /// an irregular encoding, as the OTLP decoder reads it); `None` for a
    /// span the decoder rejects (invalid ids), which is not to be written.
    pub fn read(bytes: &'a [u8], resource: &'a Arc<Resource>, scope: &'a Arc<Scope>) -> Option<OtlpSpan<'a>> {
        let row = Input::read(bytes, resource, scope)?;
        let key = SpanKey { trace_id: row.trace_id(), span_id: row.span_id(), start: row.start() };
        Some(OtlpSpan { bytes, resource, scope, key })
    }
}

/// Writes `<dir>/<id>/` durably from encoded spans, exactly as
/// [`crate::write()`] writes the same spans decoded. Every span must read
/// (see [`OtlpSpan::read`]: the decoder keeps it) and carry the key that
/// reads; one that does not read is left out.
///
/// Streams: the spans are ordered by their keys alone (a 40-byte
/// [`SortKey`] each), and each trace's rows are read from the bytes when
/// it is written, so each span is read once. Holding every span's row
/// until the end (~240 bytes each: ~7 MiB for a 16 MiB head of realistic
/// spans) was the flush's largest transient after the column builders,
/// faulted in anew by every flush.
pub fn write_otlp(
    dir: &Path,
    id: &str,
    spans: Vec<OtlpSpan<'_>>,
    options: &WriteOptions,
) -> Result<BlockMeta, Error> {
    let mut keys = Vec::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let index = u32::try_from(i).map_err(|_| Error::corrupt(dir, "over 2^32 spans in one block"))?;
        let SpanKey { trace_id, span_id, start } = span.key;
        keys.push(SortKey { trace_id, start, index, span_id });
    }
    let order = sort_dedup_keys(keys);
    let read =
        |key: &SortKey| spans.get(key.index as usize).and_then(|s| Input::read(s.bytes, s.resource, s.scope));
    // The same spans `Dedicated::choose` samples from the whole sorted
    // list: every `step`-th.
    let step = order.len().div_ceil(CHOOSE_SAMPLE).max(1);
    let sample: Vec<Input<'_>> = order.iter().step_by(step).filter_map(read).collect();
    let dedicated = Dedicated::choose(&sample);
    drop(sample);
    let mut writer = Writer::create(dir, id, options, options.compaction_level, dedicated)?;
    let mut trace: Vec<Input<'_>> = Vec::new();
    let mut rest = &order[..];
    while let Some(first) = rest.first() {
        let len = rest.iter().take_while(|k| k.trace_id == first.trace_id).count();
        let (run, tail) = rest.split_at(len);
        trace.clear();
        trace.extend(run.iter().filter_map(read));
        writer.push_trace(&trace)?;
        rest = tail;
    }
    writer.finish()
}

/// A span to write, read in place or (for irregular encodings) decoded.
enum Input<'a> {
    Wire(WireRow<'a>),
    Decoded(Span),
}

impl<'a> Input<'a> {
    /// The span as the writer reads it; `None` for a span the decoder
    /// rejects. Deterministic: the key is read once (by [`OtlpSpan::read`]
    /// or the caller's index), the row when it is written, and both must
    /// agree.
    fn read(bytes: &'a [u8], resource: &'a Arc<Resource>, scope: &'a Arc<Scope>) -> Option<Input<'a>> {
        match WireRow::read(bytes, resource, scope) {
            Ok(row) => Some(Input::Wire(row)),
            Err(_) => decode_span_bytes(bytes, resource, scope).ok().map(Input::Decoded),
        }
    }
}

/// A span read from its wire bytes; [`WireRow::read`] has checked that
/// every part of it reads.
struct WireRow<'a> {
    bytes: &'a [u8],
    fields: wire::SpanFields<'a>,
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    resource: &'a Arc<Resource>,
    scope: &'a Arc<Scope>,
}

impl<'a> WireRow<'a> {
    /// Reads the singular fields and checks the ids; an `Err` means
    /// "decode this one with prost" (or, if that fails too, that the span
    /// is one the decoder rejects). The lists are read once, when the row
    /// is pushed (see [`Lists`]).
    fn read(
        bytes: &'a [u8],
        resource: &'a Arc<Resource>,
        scope: &'a Arc<Scope>,
    ) -> Result<WireRow<'a>, String> {
        let fields = wire::span_fields(bytes).map_err(|e| e.to_string())?;
        let (trace_id, span_id, parent) = fields.ids()?;
        if fields.links > 0 {
            wire::check_links(bytes)?;
        }
        Ok(WireRow { bytes, fields, trace_id, span_id, parent, resource, scope })
    }
}

/// A wire value as the builders take it; arrays and maps go through the
/// model's mapping into their stored JSON text, exactly as decoded spans.
fn attr_value(value: AnyValue<'_>) -> Result<AttrValue<'_>, String> {
    Ok(match value {
        AnyValue::Empty => AttrValue::Empty,
        AnyValue::Str(s) => AttrValue::Str(s),
        AnyValue::Bool(b) => AttrValue::Bool(b),
        AnyValue::Int(i) => AttrValue::Int(i),
        AnyValue::Double(d) => AttrValue::Double(d),
        AnyValue::Bytes(b) => AttrValue::Bytes(b),
        AnyValue::Array(bytes) => {
            let array = pc::ArrayValue::decode(bytes).map_err(|e| format!("array value: {e}"))?;
            match decode_value(pc::AnyValue { value: Some(pc::any_value::Value::ArrayValue(array)) }) {
                Value::Array(items) => AttrValue::Array(json::array_text(&items)),
                _ => return Err("array value did not map to an array".to_owned()),
            }
        }
        AnyValue::Map(bytes) => {
            let map = pc::KeyValueList::decode(bytes).map_err(|e| format!("map value: {e}"))?;
            match decode_value(pc::AnyValue { value: Some(pc::any_value::Value::KvlistValue(map)) }) {
                Value::Map(kvs) => AttrValue::Map(json::map_text(&kvs)),
                _ => return Err("map value did not map to a map".to_owned()),
            }
        }
    })
}

/// An attribute as the builders take it.
type Attr<'a> = (&'a str, AttrValue<'a>);

/// A link read from the wire: `(trace id, span id, trace state, its
/// attributes in `Lists::link_attrs`, dropped attributes, flags)`.
type LinkRef<'a> = (TraceId, SpanId, &'a str, std::ops::Range<usize>, u32, u32);

/// A span's attributes, events and links, read in one pass over its bytes
/// into borrowed slices before anything is pushed: a span that does not
/// read (an irregular encoding) is then written through the model path,
/// with no half-pushed row to undo.
#[derive(Default)]
struct Lists<'a> {
    attrs: Vec<Attr<'a>>,
    /// `(time, name, attributes in event_attrs, dropped attributes)`.
    events: Vec<(u64, &'a str, std::ops::Range<usize>, u32)>,
    event_attrs: Vec<Attr<'a>>,
    links: Vec<LinkRef<'a>>,
    link_attrs: Vec<Attr<'a>>,
}

/// [`Lists`]' buffers between spans, kept with the writer's rows: read
/// into fresh vectors, a realistic span's lists cost five or six
/// allocations (the attribute list grows three times).
#[derive(Default)]
pub(crate) struct ListBuffers(Lists<'static>);

impl ListBuffers {
    /// The buffers, empty, for a span's lists.
    fn take<'a>(&mut self) -> Lists<'a> {
        std::mem::take(&mut self.0)
    }

    /// Takes `lists`' buffers back, emptied. Collecting an emptied vector
    /// into one of the same layout keeps its allocation (in-place
    /// collection), which lets the borrowed lifetime go.
    fn put_back(&mut self, lists: Lists<'_>) {
        fn empty<T, U>(mut v: Vec<T>) -> Vec<U> {
            v.clear();
            v.into_iter().filter_map(|_| None).collect()
        }
        self.0 = Lists {
            attrs: empty(lists.attrs),
            events: empty(lists.events),
            event_attrs: empty(lists.event_attrs),
            links: empty(lists.links),
            link_attrs: empty(lists.link_attrs),
        };
    }
}

impl<'a> Lists<'a> {
    /// Reads `span`'s lists into `out`, which must be empty.
    fn read_into(span: &'a [u8], out: &mut Lists<'a>) -> Result<(), String> {
        for item in wire::fields(span) {
            let (number, field) = item.map_err(|e| e.to_string())?;
            match number {
                span::ATTRIBUTES => out.attrs.push(attr(field)?),
                span::EVENTS => {
                    let first = out.event_attrs.len();
                    let (mut time, mut name, mut dropped) = (0, "", 0);
                    for item in wire::fields(bytes(field)?) {
                        let (n, f) = item.map_err(|e| e.to_string())?;
                        let read = match n {
                            span::event::TIME => f.fixed64().map(|v| time = v),
                            span::event::NAME => f.str().map(|v| name = v),
                            span::event::DROPPED_ATTRIBUTES => f.varint().map(|v| dropped = v as u32),
                            span::event::ATTRIBUTES => {
                                out.event_attrs.push(attr(f)?);
                                Ok(())
                            }
                            _ => Ok(()),
                        };
                        read.map_err(|e| e.to_string())?;
                    }
                    out.events.push((time, name, first..out.event_attrs.len(), dropped));
                }
                span::LINKS => {
                    let first = out.link_attrs.len();
                    let (mut trace, mut id, mut state, mut dropped, mut flags) = (&[][..], &[][..], "", 0, 0);
                    for item in wire::fields(bytes(field)?) {
                        let (n, f) = item.map_err(|e| e.to_string())?;
                        let read = match n {
                            span::link::TRACE_ID => f.bytes().map(|v| trace = v),
                            span::link::SPAN_ID => f.bytes().map(|v| id = v),
                            span::link::TRACE_STATE => f.str().map(|v| state = v),
                            span::link::DROPPED_ATTRIBUTES => f.varint().map(|v| dropped = v as u32),
                            span::link::FLAGS => f.fixed32().map(|v| flags = v),
                            span::link::ATTRIBUTES => {
                                out.link_attrs.push(attr(f)?);
                                Ok(())
                            }
                            _ => Ok(()),
                        };
                        read.map_err(|e| e.to_string())?;
                    }
                    let trace = TraceId::from_slice(trace).map_err(|e| e.to_string())?;
                    let id = SpanId::from_slice(id).map_err(|e| e.to_string())?;
                    out.links.push((trace, id, state, first..out.link_attrs.len(), dropped, flags));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn bytes(field: Field<'_>) -> Result<&[u8], String> {
    field.bytes().map_err(|e| e.to_string())
}

fn attr(field: Field<'_>) -> Result<Attr<'_>, String> {
    let (key, value) = wire::key_value(bytes(field)?).map_err(|e| e.to_string())?;
    Ok((key, attr_value(value)?))
}

impl Row for Input<'_> {
    fn trace_id(&self) -> TraceId {
        match self {
            Input::Wire(w) => w.trace_id,
            Input::Decoded(s) => s.trace_id,
        }
    }
    fn span_id(&self) -> SpanId {
        match self {
            Input::Wire(w) => w.span_id,
            Input::Decoded(s) => s.span_id,
        }
    }
    fn parent_span_id(&self) -> Option<SpanId> {
        match self {
            Input::Wire(w) => w.parent,
            Input::Decoded(s) => s.parent_span_id,
        }
    }
    fn start(&self) -> u64 {
        match self {
            Input::Wire(w) => w.fields.start,
            Input::Decoded(s) => s.start_time_unix_nano,
        }
    }
    fn end(&self) -> u64 {
        match self {
            Input::Wire(w) => w.fields.end,
            Input::Decoded(s) => s.end_time_unix_nano,
        }
    }
    fn name(&self) -> &str {
        match self {
            Input::Wire(w) => w.fields.name,
            Input::Decoded(s) => &s.name,
        }
    }
    fn kind(&self) -> SpanKind {
        match self {
            Input::Wire(w) => SpanKind::from_i32(w.fields.kind),
            Input::Decoded(s) => s.kind,
        }
    }
    fn resource(&self) -> &Arc<Resource> {
        match self {
            Input::Wire(w) => w.resource,
            Input::Decoded(s) => &s.resource,
        }
    }
    fn scope(&self) -> &Arc<Scope> {
        match self {
            Input::Wire(w) => w.scope,
            Input::Decoded(s) => &s.scope,
        }
    }

    fn attribute_kinds(&self) -> Box<dyn Iterator<Item = (&str, AttrKind)> + '_> {
        match self {
            Input::Decoded(s) => s.attribute_kinds(),
            Input::Wire(w) => Box::new(
                wire::fields(w.bytes)
                    .filter_map(Result::ok)
                    .filter(|(number, _)| *number == span::ATTRIBUTES)
                    .filter_map(|(_, field)| field.bytes().and_then(wire::key_value_kind).ok())
                    .map(|(key, kind)| {
                        let kind = match kind {
                            ValueKind::Str => AttrKind::Str,
                            ValueKind::Int => AttrKind::Int,
                            ValueKind::Other => AttrKind::Other,
                        };
                        (key, kind)
                    }),
            ),
        }
    }

    fn push(
        &self,
        rows: &mut Rows,
        parent_distance: Option<i32>,
        resource: u32,
        scope: u32,
        dedicated: &Dedicated,
    ) -> Result<(), Error> {
        let w = match self {
            Input::Decoded(s) => return s.push(rows, parent_distance, resource, scope, dedicated),
            Input::Wire(w) => w,
        };
        let mut lists = rows.list_buffers.take();
        match Lists::read_into(w.bytes, &mut lists) {
            Ok(()) => {}
            Err(_) => {
                rows.list_buffers.put_back(lists);
                // Irregular (or unreadable) lists: the model path, as
                // `write()` would write the span.
                let decoded = decode_span_bytes(w.bytes, w.resource, w.scope).map_err(|detail| {
                    Error::Corrupt { path: std::path::PathBuf::from("<otlp span>"), detail }
                })?;
                return decoded.push(rows, parent_distance, resource, scope, dedicated);
            }
        };
        let f = &w.fields;
        rows.push_scalars(&Scalars {
            trace_id: w.trace_id,
            span_id: w.span_id,
            parent_span_id: w.parent,
            parent_distance,
            start: f.start,
            end: f.end,
            service: w.resource.service_name(),
            name: f.name,
            kind: SpanKind::from_i32(f.kind) as u8,
            status_code: StatusCode::from_i32(f.status_code) as u8,
            status_message: f.status_message,
            trace_state: f.trace_state,
            flags: f.flags,
            resource,
            scope,
            dropped_attributes: f.dropped_attributes_count,
            dropped_events: f.dropped_events_count,
            dropped_links: f.dropped_links_count,
        });
        rows.push_attributes(lists.attrs.drain(..), dedicated);
        let event_attrs = &lists.event_attrs;
        rows.push_events(
            lists.events.iter().map(|(time, name, attrs, dropped)| {
                (*time, *name, event_attrs[attrs.clone()].iter().cloned(), *dropped)
            }),
            f.start,
        );
        let link_attrs = &lists.link_attrs;
        rows.push_links(lists.links.iter().map(|(trace, id, state, attrs, dropped, flags)| {
            (*trace, *id, *state, link_attrs[attrs.clone()].iter().cloned(), *dropped, *flags)
        }));
        rows.list_buffers.put_back(lists);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{AttrValue, ListBuffers};

    /// The buffers come back empty with the allocation they grew, even
    /// though what they held borrowed from a span that is gone.
    #[test]
    fn list_buffers_keep_their_allocations() {
        let mut buffers = ListBuffers::default();
        let span = String::from("key value");
        let mut lists = buffers.take();
        for _ in 0..11 {
            lists.attrs.push((&span[..3], AttrValue::Str(&span[4..])));
        }
        lists.events.push((1, &span[..3], 0..0, 0));
        let (attrs, capacity, events) =
            (lists.attrs.as_ptr() as usize, lists.attrs.capacity(), lists.events.as_ptr() as usize);
        buffers.put_back(lists);
        drop(span);
        let again = buffers.take();
        assert!(again.attrs.is_empty() && again.events.is_empty());
        assert_eq!((again.attrs.as_ptr() as usize, again.attrs.capacity()), (attrs, capacity));
        assert_eq!(again.events.as_ptr() as usize, events);
    }
}
