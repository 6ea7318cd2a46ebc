//! A span as the default processors read it, whether it is a decoded
//! model [`Span`] or a span still in its request's protobuf bytes.
//!
//! Span metrics and the service graph need a span's ids, name, kind,
//! status, duration, resource and a few attributes. Decoding every span
//! into the model (a `String` per key and value) to give them that was
//! about a quarter of the server's CPU at 10k realistic spans/s; a
//! [`WireSpan`] reads the same from the bytes, decoding only the
//! attribute values asked for. [`crate::Batch::for_each_span`] hands out
//! whichever form the batch holds.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use crate::otlp::wire::{self, span};
use crate::{Resource, Span, SpanId, SpanKind, StatusCode, TraceId, Value};

/// What stages that only look at spans read (see the module docs).
pub trait SpanView {
    /// Trace the span belongs to.
    fn trace_id(&self) -> TraceId;
    /// The span's own id.
    fn span_id(&self) -> SpanId;
    /// Parent span, `None` for a root span.
    fn parent_span_id(&self) -> Option<SpanId>;
    /// Span (operation) name.
    fn name(&self) -> &str;
    /// Span kind.
    fn kind(&self) -> SpanKind;
    /// Status code.
    fn status_code(&self) -> StatusCode;
    /// Duration in ns; zero when the end precedes the start.
    fn duration_nanos(&self) -> u64;
    /// Producing resource (shared by the spans of one group).
    fn resource(&self) -> &Arc<Resource>;
    /// The value of the span's first attribute called `key` (not the
    /// resource's).
    fn attribute(&self, key: &str) -> Option<Cow<'_, Value>>;

    /// The producing service's name.
    fn service_name(&self) -> &str {
        self.resource().service_name()
    }

    /// The span's attribute `key`, else its resource's.
    fn attribute_or_resource(&self, key: &str) -> Option<Cow<'_, Value>> {
        self.attribute(key).or_else(|| {
            self.resource().attributes().iter().find(|kv| kv.key == key).map(|kv| Cow::Borrowed(&kv.value))
        })
    }
}

impl SpanView for Span {
    fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    fn span_id(&self) -> SpanId {
        self.span_id
    }
    fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SpanKind {
        self.kind
    }
    fn status_code(&self) -> StatusCode {
        self.status.code
    }
    fn duration_nanos(&self) -> u64 {
        Span::duration_nanos(self)
    }
    fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }
    fn attribute(&self, key: &str) -> Option<Cow<'_, Value>> {
        self.attributes.iter().find(|kv| kv.key == key).map(|kv| Cow::Borrowed(&kv.value))
    }
}

/// A span read in place from checked request bytes (see
/// [`crate::otlp::check_request_bytes`]): its singular fields, its ids,
/// and its attributes as (key, `AnyValue` bytes) pairs, decoded on demand.
#[derive(Debug)]
pub struct WireSpan<'a> {
    fields: wire::SpanFields<'a>,
    ids: (TraceId, SpanId, Option<SpanId>),
    attributes: &'a [(&'a str, &'a [u8])],
    resource: &'a Arc<Resource>,
}

impl SpanView for WireSpan<'_> {
    fn trace_id(&self) -> TraceId {
        self.ids.0
    }
    fn span_id(&self) -> SpanId {
        self.ids.1
    }
    fn parent_span_id(&self) -> Option<SpanId> {
        self.ids.2
    }
    fn name(&self) -> &str {
        self.fields.name
    }
    fn kind(&self) -> SpanKind {
        SpanKind::from_i32(self.fields.kind)
    }
    fn status_code(&self) -> StatusCode {
        StatusCode::from_i32(self.fields.status_code)
    }
    fn duration_nanos(&self) -> u64 {
        self.fields.end.saturating_sub(self.fields.start)
    }
    fn resource(&self) -> &Arc<Resource> {
        self.resource
    }
    fn attribute(&self, key: &str) -> Option<Cow<'_, Value>> {
        let (_, bytes) = self.attributes.iter().find(|(k, _)| *k == key)?;
        Some(Cow::Owned(value(bytes)))
    }
}

/// An attribute's value from its `AnyValue` bytes (empty: no value), as
/// the decoder maps it. The bytes were checked, so they decode; a failure
/// would be a bug, and reads as no value.
fn value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Empty;
    }
    match wire::any_value(bytes) {
        Ok(wire::AnyValue::Str(s)) => Value::Str(s.to_owned()),
        Ok(wire::AnyValue::Int(i)) => Value::Int(i),
        Ok(wire::AnyValue::Bool(b)) => Value::Bool(b),
        Ok(wire::AnyValue::Double(d)) => Value::Double(d),
        Ok(wire::AnyValue::Empty) => Value::Empty,
        // Arrays, maps and bytes are rare in lookups: the shared decoder.
        _ => crate::otlp::decode_value_bytes(bytes).unwrap_or(Value::Empty),
    }
}

/// Calls `f` with every span of a checked `ExportTraceServiceRequest`, in
/// request order. Resources are decoded once per group; spans are read in
/// place. Spans whose ids the decoder would reject are skipped (a checked
/// request handed on whole has none).
pub(crate) fn for_each_wire_span(request: &[u8], f: &mut dyn FnMut(&dyn SpanView)) -> Result<(), String> {
    // Both callbacks need the groups and the first problem.
    let groups: RefCell<Vec<Arc<Resource>>> = RefCell::new(Vec::new());
    let problem: RefCell<Option<String>> = RefCell::new(None);
    let mut attributes: Vec<(&str, &[u8])> = Vec::new();
    wire::visit_request(
        request,
        |group| {
            let resource =
                crate::otlp::decode_group(&group).map(|(resource, _)| resource).unwrap_or_else(|e| {
                    problem.borrow_mut().get_or_insert(e);
                    Resource::default()
                });
            groups.borrow_mut().push(Arc::new(resource));
        },
        |group, bytes| {
            if problem.borrow().is_some() {
                return;
            }
            attributes.clear();
            match read_span(bytes, &mut attributes) {
                Ok(Some((fields, ids))) => {
                    let groups = groups.borrow();
                    f(&WireSpan { fields, ids, attributes: &attributes, resource: &groups[group] });
                }
                Ok(None) => {}
                Err(e) => *problem.borrow_mut() = Some(e.to_string()),
            }
        },
    )
    .map_err(|e| e.to_string())?;
    problem.into_inner().map_or(Ok(()), Err)
}

/// A span's singular fields and valid ids (`None`: ids the decoder
/// rejects), its attributes appended to `attributes`.
#[allow(clippy::type_complexity)]
fn read_span<'a>(
    bytes: &'a [u8],
    attributes: &mut Vec<(&'a str, &'a [u8])>,
) -> Result<Option<(wire::SpanFields<'a>, (TraceId, SpanId, Option<SpanId>))>, wire::WireError> {
    let fields = wire::span_fields(bytes)?;
    let Ok(ids) = fields.ids() else { return Ok(None) };
    for item in wire::fields(bytes) {
        let (number, field) = item?;
        if number != span::ATTRIBUTES {
            continue;
        }
        let (mut key, mut value): (&str, &[u8]) = ("", &[]);
        for item in wire::fields(field.bytes()?) {
            match item? {
                (1, f) => key = f.str()?,
                (2, f) => value = f.bytes()?,
                _ => {}
            }
        }
        attributes.push((key, value));
    }
    Ok(Some((fields, ids)))
}
