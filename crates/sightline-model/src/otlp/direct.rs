//! Decoding an OTLP trace request straight from its protobuf bytes into
//! the model, without `prost`'s structs in between.
//!
//! [`super::decode_request`] maps a `prost`-decoded request; decoding it
//! first allocated every id, grew every list by doubling, and the mapping
//! then copied each list into one of exact length. Reading the wire format
//! in place allocates only what the model keeps: strings and exact-length
//! lists.
//!
//! The result must be exactly what `prost` plus [`super::decode_request`]
//! give, so anything these readers would decode differently is left to
//! that path: [`decode_request_bytes`] returns `None` on any input that is
//! not plainly valid (malformed, or irregular in the ways
//! [`super::wire`] describes, or nested deeper than [`MAX_DEPTH`]), and
//! [`decode_protobuf`] then decodes with `prost`, which also gives the
//! error message. The tests compare the two paths on generated and
//! mutated requests.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::note_reason;
use super::wire::{self, AnyValue, WireError, span};
use super::{Decoded, MAX_REASONS};
use crate::{
    Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId, Value,
};

/// Array and map values nested deeper than this are left to `prost`, well
/// inside its recursion limit (100 messages, of which a request uses five
/// before the first attribute value).
const MAX_DEPTH: usize = 32;

/// Decodes an `ExportTraceServiceRequest`'s protobuf bytes: the same
/// result (or the same error) as `prost` decoding and
/// [`super::decode_request`], in one pass over the bytes where it can.
pub fn decode_protobuf(bytes: &[u8]) -> Result<Decoded, prost::DecodeError> {
    match decode_request_bytes(bytes) {
        Some(decoded) => Ok(decoded),
        None => ExportTraceServiceRequest::decode(bytes).map(super::decode_request),
    }
}

/// The direct path of [`decode_protobuf`]; `None` where it leaves the
/// request to `prost`.
pub fn decode_request_bytes(bytes: &[u8]) -> Option<Decoded> {
    let mut d = Decoder::default();
    d.request(bytes).ok()?;
    if d.out.rejected > 0 {
        let shown = d.reasons.min(MAX_REASONS);
        d.out.error_message = format!(
            "{} span(s) rejected for invalid ids: {}{}",
            d.out.rejected,
            d.out.error_message,
            if d.reasons > shown { "; …" } else { "" }
        );
    }
    Some(d.out)
}

/// Why the direct path gave up (the caller only needs to know that it did).
type Wire<T> = Result<T, WireError>;

/// Decoding state: the output, and scratch stacks that lists are built on
/// before being moved into vectors of exact length (nested lists push
/// above their parent's entries and are taken off before the parent's
/// next entry is pushed).
#[derive(Default)]
pub(super) struct Decoder {
    out: Decoded,
    reasons: usize,
    kvs: Vec<KeyValue>,
    values: Vec<Value>,
    events: Vec<Event>,
}

/// A span's fields as read, before its ids are validated.
#[derive(Default)]
struct RawSpan<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    trace_state: &'a str,
    flags: u32,
    name: &'a str,
    kind: i32,
    start: u64,
    end: u64,
    dropped_attributes_count: u32,
    dropped_events_count: u32,
    dropped_links_count: u32,
    status_code: i32,
    status_message: &'a str,
}

/// A link's fields as read; its ids are validated with the span's.
#[derive(Default)]
struct RawLink<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    trace_state: &'a str,
    attributes: Vec<KeyValue>,
    dropped: u32,
    flags: u32,
}

impl Decoder {
    fn request(&mut self, bytes: &[u8]) -> Wire<()> {
        let mut total = 0usize;
        for item in wire::strict_fields(bytes) {
            if let (1, f) = item? {
                total += count_spans(f.bytes()?)?;
            }
        }
        self.out.spans.reserve_exact(total);
        let mut ri = 0usize;
        for item in wire::strict_fields(bytes) {
            if let (1, f) = item? {
                self.resource_spans(f.bytes()?, ri)?;
                ri += 1;
            }
        }
        Ok(())
    }

    fn resource_spans(&mut self, bytes: &[u8], ri: usize) -> Wire<()> {
        // The resource may follow the scope spans on the wire: read the
        // resource's parts first, as `prost` has merged them all before
        // the request is mapped.
        let (mut attributes, mut dropped, mut schema_url) = (Vec::new(), 0, "");
        for item in wire::strict_fields(bytes) {
            match item? {
                // Repeated occurrences merge: attributes append, the last
                // count wins.
                (1, f) => {
                    for item in wire::strict_fields(f.bytes()?) {
                        match item? {
                            (1, f) => attributes.push(self.key_value(f.bytes()?, 0)?),
                            (2, f) => dropped = f.varint()? as u32,
                            // Entity references: their strings would need
                            // checking as `prost` checks them.
                            (3, _) => return Err(irregular()),
                            _ => {}
                        }
                    }
                }
                (2, f) => {
                    f.bytes()?;
                }
                (3, f) => schema_url = f.str()?,
                _ => {}
            }
        }
        attributes.shrink_to_fit();
        let resource = Arc::new(Resource::new(attributes, dropped, schema_url.to_owned()));
        let mut si = 0usize;
        for item in wire::strict_fields(bytes) {
            if let (2, f) = item? {
                self.scope_spans(f.bytes()?, &resource, ri, si)?;
                si += 1;
            }
        }
        Ok(())
    }

    fn scope_spans(&mut self, bytes: &[u8], resource: &Arc<Resource>, ri: usize, si: usize) -> Wire<()> {
        let mut scope = Scope::default();
        for item in wire::strict_fields(bytes) {
            match item? {
                (1, f) => {
                    for item in wire::strict_fields(f.bytes()?) {
                        match item? {
                            (1, f) => scope.name = f.str()?.to_owned(),
                            (2, f) => scope.version = f.str()?.to_owned(),
                            (3, f) => scope.attributes.push(self.key_value(f.bytes()?, 0)?),
                            (4, f) => scope.dropped_attributes_count = f.varint()? as u32,
                            _ => {}
                        }
                    }
                }
                (2, f) => {
                    f.bytes()?;
                }
                (3, f) => scope.schema_url = f.str()?.to_owned(),
                _ => {}
            }
        }
        scope.attributes.shrink_to_fit();
        let scope = Arc::new(scope);
        let mut pi = 0usize;
        for item in wire::strict_fields(bytes) {
            if let (2, f) = item? {
                match self.span(f.bytes()?, resource, &scope)? {
                    Ok(span) => self.out.spans.push(span),
                    Err(why) => {
                        self.out.rejected += 1;
                        note_reason(
                            &mut self.out.error_message,
                            &mut self.reasons,
                            format_args!("resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]: {why}"),
                        );
                    }
                }
                pi += 1;
            }
        }
        Ok(())
    }

    /// Decodes one span: `Err` gives up on the request, `Ok(Err(why))`
    /// rejects the span as [`super::decode_span`] does (same checks, same
    /// order, same messages).
    fn span(
        &mut self,
        bytes: &[u8],
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
    ) -> Wire<Result<Span, String>> {
        let mut s = RawSpan::default();
        let (kvs, events) = (self.kvs.len(), self.events.len());
        let mut raw_links: Vec<RawLink<'_>> = Vec::new();
        for item in wire::strict_fields(bytes) {
            let (number, field) = item?;
            match number {
                span::TRACE_ID => s.trace_id = field.bytes()?,
                span::SPAN_ID => s.span_id = field.bytes()?,
                span::TRACE_STATE => s.trace_state = field.str()?,
                span::PARENT_SPAN_ID => s.parent_span_id = field.bytes()?,
                span::NAME => s.name = field.str()?,
                span::KIND => s.kind = field.varint()? as i32,
                span::START => s.start = field.fixed64()?,
                span::END => s.end = field.fixed64()?,
                span::ATTRIBUTES => {
                    let kv = self.key_value(field.bytes()?, 0)?;
                    self.kvs.push(kv);
                }
                span::DROPPED_ATTRIBUTES => s.dropped_attributes_count = field.varint()? as u32,
                span::EVENTS => {
                    let event = self.event(field.bytes()?)?;
                    self.events.push(event);
                }
                span::DROPPED_EVENTS => s.dropped_events_count = field.varint()? as u32,
                span::LINKS => {
                    let link = self.link(field.bytes()?)?;
                    raw_links.push(link);
                }
                span::DROPPED_LINKS => s.dropped_links_count = field.varint()? as u32,
                // A repeated status merges into the first: reading the
                // occurrences in order, last value per field, is that merge.
                span::STATUS => {
                    for item in wire::strict_fields(field.bytes()?) {
                        match item? {
                            (2, f) => s.status_message = f.str()?,
                            (3, f) => s.status_code = f.varint()? as i32,
                            _ => {}
                        }
                    }
                }
                span::FLAGS => s.flags = field.fixed32()?,
                _ => {}
            }
        }
        let attributes: Vec<KeyValue> = self.kvs.drain(kvs..).collect();
        let span_events: Vec<Event> = self.events.drain(events..).collect();
        let checked = (|| {
            let trace_id = TraceId::from_slice(s.trace_id).map_err(|e| e.to_string())?;
            let span_id = SpanId::from_slice(s.span_id).map_err(|e| e.to_string())?;
            let parent = wire::parent_id(s.parent_span_id)?;
            let mut links = Vec::with_capacity(raw_links.len());
            for (i, link) in raw_links.into_iter().enumerate() {
                links.push(Link {
                    trace_id: TraceId::from_slice(link.trace_id).map_err(|e| format!("links[{i}]: {e}"))?,
                    span_id: SpanId::from_slice(link.span_id).map_err(|e| format!("links[{i}]: {e}"))?,
                    trace_state: link.trace_state.to_owned(),
                    attributes: link.attributes,
                    dropped_attributes_count: link.dropped,
                    flags: link.flags,
                });
            }
            Ok::<_, String>((trace_id, span_id, parent, links))
        })();
        let (trace_id, span_id, parent_span_id, span_links) = match checked {
            Ok(checked) => checked,
            Err(why) => return Ok(Err(why)),
        };
        Ok(Ok(Span {
            trace_id,
            span_id,
            parent_span_id,
            trace_state: s.trace_state.to_owned(),
            flags: s.flags,
            name: s.name.to_owned(),
            kind: SpanKind::from_i32(s.kind),
            start_time_unix_nano: s.start,
            end_time_unix_nano: s.end,
            attributes,
            dropped_attributes_count: s.dropped_attributes_count,
            events: span_events,
            dropped_events_count: s.dropped_events_count,
            links: span_links,
            dropped_links_count: s.dropped_links_count,
            status: Status {
                code: StatusCode::from_i32(s.status_code),
                message: s.status_message.to_owned(),
            },
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
        }))
    }

    fn event(&mut self, bytes: &[u8]) -> Wire<Event> {
        let first = self.kvs.len();
        let (mut time, mut name, mut dropped) = (0, "", 0);
        for item in wire::strict_fields(bytes) {
            let (number, field) = item?;
            match number {
                span::event::TIME => time = field.fixed64()?,
                span::event::NAME => name = field.str()?,
                span::event::ATTRIBUTES => {
                    let kv = self.key_value(field.bytes()?, 0)?;
                    self.kvs.push(kv);
                }
                span::event::DROPPED_ATTRIBUTES => dropped = field.varint()? as u32,
                _ => {}
            }
        }
        Ok(Event {
            time_unix_nano: time,
            name: name.to_owned(),
            attributes: self.kvs.drain(first..).collect(),
            dropped_attributes_count: dropped,
        })
    }

    /// A link's fields, its ids as read: the span checks them, so that a
    /// bad link rejects the span with the decoder's message rather than
    /// giving up on the request.
    fn link<'a>(&mut self, bytes: &'a [u8]) -> Wire<RawLink<'a>> {
        let first = self.kvs.len();
        let mut link = RawLink::default();
        for item in wire::strict_fields(bytes) {
            let (number, field) = item?;
            match number {
                span::link::TRACE_ID => link.trace_id = field.bytes()?,
                span::link::SPAN_ID => link.span_id = field.bytes()?,
                span::link::TRACE_STATE => link.trace_state = field.str()?,
                span::link::ATTRIBUTES => {
                    let kv = self.key_value(field.bytes()?, 0)?;
                    self.kvs.push(kv);
                }
                span::link::DROPPED_ATTRIBUTES => link.dropped = field.varint()? as u32,
                span::link::FLAGS => link.flags = field.fixed32()?,
                _ => {}
            }
        }
        link.attributes = self.kvs.drain(first..).collect();
        Ok(link)
    }

    /// A `KeyValue` (`depth`: array and map values it is nested in).
    pub(super) fn key_value(&mut self, bytes: &[u8], depth: usize) -> Wire<KeyValue> {
        let mut key = "";
        let mut value: Option<&[u8]> = None;
        for item in wire::strict_fields(bytes) {
            match item? {
                (1, f) => key = f.str()?,
                (2, f) => {
                    if value.is_some() {
                        // `prost` merges the two: leave it to `prost`.
                        return Err(irregular());
                    }
                    value = Some(f.bytes()?);
                }
                (3, f) => {
                    f.varint()?;
                }
                _ => {}
            }
        }
        let value = match value {
            Some(bytes) => self.any_value(bytes, depth)?,
            None => Value::Empty,
        };
        Ok(KeyValue { key: key.into(), value })
    }

    pub(super) fn any_value(&mut self, bytes: &[u8], depth: usize) -> Wire<Value> {
        let mut kind = AnyValue::Empty;
        let mut set = false;
        for item in wire::strict_fields(bytes) {
            let (number, field) = item?;
            let v = match number {
                1 => AnyValue::Str(field.str()?),
                2 => AnyValue::Bool(field.varint()? != 0),
                3 => AnyValue::Int(field.varint()? as i64),
                4 => AnyValue::Double(f64::from_bits(field.fixed64()?)),
                5 => AnyValue::Array(field.bytes()?),
                6 => AnyValue::Map(field.bytes()?),
                7 => AnyValue::Bytes(field.bytes()?),
                8 => {
                    field.varint()?;
                    AnyValue::Empty
                }
                _ => continue,
            };
            if set {
                return Err(irregular());
            }
            set = true;
            kind = v;
        }
        Ok(match kind {
            AnyValue::Empty => Value::Empty,
            AnyValue::Str(s) => Value::Str(s.into()),
            AnyValue::Bool(b) => Value::Bool(b),
            AnyValue::Int(i) => Value::Int(i),
            AnyValue::Double(d) => Value::Double(d),
            AnyValue::Bytes(b) => Value::Bytes(b.to_vec()),
            AnyValue::Array(bytes) => {
                if depth >= MAX_DEPTH {
                    return Err(irregular());
                }
                let first = self.values.len();
                for item in wire::strict_fields(bytes) {
                    if let (1, f) = item? {
                        let element = f.bytes()?;
                        let v = self.any_value(element, depth + 1)?;
                        self.values.push(v);
                    }
                }
                Value::Array(self.values.drain(first..).collect())
            }
            AnyValue::Map(bytes) => {
                if depth >= MAX_DEPTH {
                    return Err(irregular());
                }
                let first = self.kvs.len();
                for item in wire::strict_fields(bytes) {
                    if let (1, f) = item? {
                        let kv = self.key_value(f.bytes()?, depth + 1)?;
                        self.kvs.push(kv);
                    }
                }
                Value::Map(self.kvs.drain(first..).collect())
            }
        })
    }
}

fn irregular() -> WireError {
    WireError::Irregular("left to prost")
}

/// Spans of a `ResourceSpans`, for reserving the output once.
fn count_spans(resource_spans: &[u8]) -> Wire<usize> {
    let mut n = 0;
    for item in wire::strict_fields(resource_spans) {
        if let (2, f) = item? {
            for item in wire::strict_fields(f.bytes()?) {
                if let (2, f) = item? {
                    f.bytes()?;
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}
