//! What the block writer needs from a span, whatever holds it: a decoded
//! model [`Span`] (compaction) or a span still in its OTLP protobuf bytes
//! (a flush, see [`crate::otlp`]). Both fill the same column builders, so
//! the two paths write the same rows by construction, except for how they
//! read the span.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use sightline_model::{KeyValue, Resource, Scope, Span, SpanId, SpanKind, TraceId, Value};

use crate::Error;
use crate::dedicated::Dedicated;
use crate::json;
use crate::write::Rows;

/// A span as the writer sees it.
pub(crate) trait Row {
    fn trace_id(&self) -> TraceId;
    fn span_id(&self) -> SpanId;
    fn parent_span_id(&self) -> Option<SpanId>;
    fn start(&self) -> u64;
    fn end(&self) -> u64;
    fn name(&self) -> &str;
    fn kind(&self) -> SpanKind;
    fn resource(&self) -> &Arc<Resource>;
    fn scope(&self) -> &Arc<Scope>;

    /// Each attribute's key and whether its value is a string or an
    /// integer (what the dedicated-column choice counts).
    fn attribute_kinds(&self) -> Box<dyn Iterator<Item = (&str, AttrKind)> + '_>;

    /// Appends the span as one row.
    fn push(
        &self,
        rows: &mut Rows,
        parent_distance: Option<i32>,
        resource: u32,
        scope: u32,
        dedicated: &Dedicated,
    ) -> Result<(), Error>;

    fn service(&self) -> &str {
        self.resource().service_name()
    }
}

/// The value kinds the dedicated columns hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrKind {
    Str,
    Int,
    Other,
}

/// An attribute value as the column builders take it: borrowed where the
/// source allows, arrays and maps already as their stored JSON text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AttrValue<'a> {
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    /// An array as OTLP/JSON (see `json::array_text`).
    Array(String),
    /// A map as OTLP/JSON (see `json::map_text`).
    Map(String),
}

impl<'a> AttrValue<'a> {
    pub(crate) fn of(value: &'a Value) -> AttrValue<'a> {
        match value {
            Value::Empty => AttrValue::Empty,
            Value::Str(s) => AttrValue::Str(s),
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::Int(i) => AttrValue::Int(*i),
            Value::Double(d) => AttrValue::Double(*d),
            Value::Bytes(b) => AttrValue::Bytes(b),
            Value::Array(items) => AttrValue::Array(json::array_text(items)),
            Value::Map(kvs) => AttrValue::Map(json::map_text(kvs)),
        }
    }

    /// The text stored in the `str` leaf, if any: strings as is, bytes as
    /// base64 (their text form in tag search), arrays and maps as JSON.
    pub(crate) fn text(&self) -> Option<Cow<'_, str>> {
        match self {
            AttrValue::Str(s) => Some(Cow::Borrowed(s)),
            AttrValue::Bytes(b) => Some(Cow::Owned(base64::engine::general_purpose::STANDARD.encode(b))),
            AttrValue::Array(t) | AttrValue::Map(t) => Some(Cow::Borrowed(t)),
            _ => None,
        }
    }
}

/// The attributes of a model span, as the builders take them.
pub(crate) fn model_attrs(kvs: &[KeyValue]) -> impl Iterator<Item = (&str, AttrValue<'_>)> {
    kvs.iter().map(|kv| (kv.key.as_str(), AttrValue::of(&kv.value)))
}

impl Row for Span {
    fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    fn span_id(&self) -> SpanId {
        self.span_id
    }
    fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }
    fn start(&self) -> u64 {
        self.start_time_unix_nano
    }
    fn end(&self) -> u64 {
        self.end_time_unix_nano
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SpanKind {
        self.kind
    }
    fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }
    fn scope(&self) -> &Arc<Scope> {
        &self.scope
    }

    fn attribute_kinds(&self) -> Box<dyn Iterator<Item = (&str, AttrKind)> + '_> {
        Box::new(self.attributes.iter().map(|kv| {
            let kind = match kv.value {
                Value::Str(_) => AttrKind::Str,
                Value::Int(_) => AttrKind::Int,
                _ => AttrKind::Other,
            };
            (kv.key.as_str(), kind)
        }))
    }

    fn push(
        &self,
        rows: &mut Rows,
        parent_distance: Option<i32>,
        resource: u32,
        scope: u32,
        dedicated: &Dedicated,
    ) -> Result<(), Error> {
        rows.push_scalars(&crate::write::Scalars {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            parent_distance,
            start: self.start_time_unix_nano,
            end: self.end_time_unix_nano,
            service: self.service_name(),
            name: &self.name,
            kind: self.kind as u8,
            status_code: self.status.code as u8,
            status_message: &self.status.message,
            trace_state: &self.trace_state,
            flags: self.flags,
            resource,
            scope,
            dropped_attributes: self.dropped_attributes_count,
            dropped_events: self.dropped_events_count,
            dropped_links: self.dropped_links_count,
        });
        rows.push_attributes(model_attrs(&self.attributes), dedicated);
        let start = self.start_time_unix_nano;
        rows.push_events(
            self.events.iter().map(|e| {
                (e.time_unix_nano, e.name.as_str(), model_attrs(&e.attributes), e.dropped_attributes_count)
            }),
            start,
        );
        rows.push_links(self.links.iter().map(|l| {
            (
                l.trace_id,
                l.span_id,
                l.trace_state.as_str(),
                model_attrs(&l.attributes),
                l.dropped_attributes_count,
                l.flags,
            )
        }));
        Ok(())
    }
}

/// Rows are pushed by reference too (the store's frozen head keeps its
/// spans; compaction owns them).
impl<R: Row + ?Sized> Row for &R {
    fn trace_id(&self) -> TraceId {
        (**self).trace_id()
    }
    fn span_id(&self) -> SpanId {
        (**self).span_id()
    }
    fn parent_span_id(&self) -> Option<SpanId> {
        (**self).parent_span_id()
    }
    fn start(&self) -> u64 {
        (**self).start()
    }
    fn end(&self) -> u64 {
        (**self).end()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn kind(&self) -> SpanKind {
        (**self).kind()
    }
    fn resource(&self) -> &Arc<Resource> {
        (**self).resource()
    }
    fn scope(&self) -> &Arc<Scope> {
        (**self).scope()
    }
    fn attribute_kinds(&self) -> Box<dyn Iterator<Item = (&str, AttrKind)> + '_> {
        (**self).attribute_kinds()
    }
    fn push(
        &self,
        rows: &mut Rows,
        parent_distance: Option<i32>,
        resource: u32,
        scope: u32,
        dedicated: &Dedicated,
    ) -> Result<(), Error> {
        (**self).push(rows, parent_distance, resource, scope, dedicated)
    }
}
