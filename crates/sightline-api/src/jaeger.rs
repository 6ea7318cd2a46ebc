//! Model spans → Jaeger UI JSON, following the OpenTelemetry Collector's
//! OTLP → Jaeger translator (`pkg/translator/jaeger/traces_to_jaegerproto.go`)
//! and Jaeger's `FromDomain` JSON conversion.
//!
//! Jaeger serves OTLP-ingested spans through exactly that pair, so copying
//! its rules (tag order, synthetic tags, reference types, process sharing)
//! makes a Sightline trace look in Jaeger UI and Grafana as it would in
//! Jaeger itself.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use sightline_model::{KeyValue, Resource, Span, StatusCode, Value};

use crate::dto::{self, RefType, Tag, TagType, TagValue};
use crate::ids::jaeger_hex;

/// Integers beyond ±(2^53 − 1) are sent as strings, as Jaeger's `FromDomain`
/// does, because JavaScript would silently round them.
const JS_MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The link attribute OpenTracing bridges use to keep a reference's type.
const OPENTRACING_REF_TYPE: &str = "opentracing.ref_type";

/// Converts one trace (all spans of one trace id, in reader order), with
/// each span's adjuster warnings (same index; missing means none).
pub(crate) fn trace<'a>(spans: &'a [Span], warnings: &'a [Vec<String>]) -> dto::Trace<'a> {
    let mut processes: Vec<&Arc<Resource>> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for (i, span) in spans.iter().enumerate() {
        let index = match processes.iter().position(|r| same_process(r, &span.resource)) {
            Some(i) => i,
            None => {
                processes.push(&span.resource);
                processes.len() - 1
            }
        };
        let warnings = warnings.get(i).filter(|w| !w.is_empty()).map(Vec::as_slice);
        out.push(convert_span(span, process_key(index), warnings));
    }
    let processes: BTreeMap<String, dto::Process<'_>> =
        processes.into_iter().enumerate().map(|(i, r)| (process_key(i), process(r))).collect();
    dto::Trace {
        trace_id: spans.first().map(|s| jaeger_hex(&s.trace_id)).unwrap_or_default(),
        spans: out,
        processes,
        warnings: None,
    }
}

/// Jaeger's process ids: `p1`, `p2`, … in order of first appearance.
fn process_key(index: usize) -> String {
    format!("p{}", index + 1)
}

/// Spans share a process when they share a resource: the same allocation
/// (one `ResourceSpans`) or, across batches, equal service and attributes —
/// Jaeger hashes processes by content for the same reason.
fn same_process(a: &Arc<Resource>, b: &Arc<Resource>) -> bool {
    Arc::ptr_eq(a, b) || (a.service_name() == b.service_name() && a.attributes() == b.attributes())
}

/// Service name plus every other resource attribute as a tag.
///
/// A `service.name` that is not a string (the conventions make it one) is
/// shown as `unknown_service`, as the store lists and searches it (see
/// [`Resource::new`]), and kept as a tag: the Collector's translator drops
/// it, which would hide the value a tag search on `service.name` matches.
fn process(resource: &Resource) -> dto::Process<'_> {
    let named = |kv: &KeyValue| kv.key == "service.name" && matches!(kv.value, Value::Str(_));
    dto::Process {
        service_name: resource.service_name(),
        tags: resource.attributes().iter().filter(|kv| !named(kv)).map(tag).collect(),
    }
}

fn convert_span<'a>(span: &'a Span, process_id: String, warnings: Option<&'a [String]>) -> dto::Span<'a> {
    dto::Span {
        trace_id: jaeger_hex(&span.trace_id),
        span_id: span.span_id.to_hex(),
        flags: span.flags & 0xff,
        operation_name: &span.name,
        references: references(span),
        start_time: span.start_time_unix_nano / 1_000,
        duration: span.duration_nanos() / 1_000,
        tags: span_tags(span),
        logs: span
            .events
            .iter()
            .map(|event| {
                // The event name becomes an `event` field unless an attribute
                // already carries that key.
                let named = !event.name.is_empty() && !event.attributes.iter().any(|kv| kv.key == "event");
                let mut fields = Vec::with_capacity(event.attributes.len() + usize::from(named));
                if named {
                    fields.push(str_tag("event", &event.name));
                }
                fields.extend(event.attributes.iter().map(tag));
                dto::Log { timestamp: event.time_unix_nano / 1_000, fields }
            })
            .collect(),
        process_id,
        warnings,
    }
}

/// The parent first as `CHILD_OF` (backends look for it there), then links
/// as `FOLLOWS_FROM` unless the link says `opentracing.ref_type=child_of`. A
/// link to the parent itself only overrides the parent reference's type.
fn references(span: &Span) -> Vec<dto::Reference> {
    let mut refs = Vec::with_capacity(span.links.len() + usize::from(span.parent_span_id.is_some()));
    if let Some(parent) = span.parent_span_id {
        refs.push(dto::Reference {
            ref_type: RefType::ChildOf,
            trace_id: jaeger_hex(&span.trace_id),
            span_id: parent.to_hex(),
        });
    }
    for link in &span.links {
        let ref_type = match link.attributes.iter().find(|kv| kv.key == OPENTRACING_REF_TYPE) {
            Some(KeyValue { value: Value::Str(s), .. }) if s == "child_of" => RefType::ChildOf,
            _ => RefType::FollowsFrom,
        };
        if span.parent_span_id == Some(link.span_id) && link.trace_id == span.trace_id {
            if let Some(parent_ref) = refs.first_mut() {
                parent_ref.ref_type = ref_type;
            }
            continue;
        }
        refs.push(dto::Reference {
            ref_type,
            trace_id: jaeger_hex(&link.trace_id),
            span_id: link.span_id.to_hex(),
        });
    }
    refs
}

/// The translator's tag order: scope name and version, the span's
/// attributes, `span.kind`, `otel.status_code`, `error`,
/// `otel.status_description`, `w3c.tracestate`.
fn span_tags(span: &Span) -> Vec<Tag<'_>> {
    let mut tags = Vec::with_capacity(span.attributes.len() + 7);
    if !span.scope.name.is_empty() {
        tags.push(str_tag("otel.scope.name", &span.scope.name));
    }
    if !span.scope.version.is_empty() {
        tags.push(str_tag("otel.scope.version", &span.scope.version));
    }
    tags.extend(span.attributes.iter().map(tag));
    let kind = span.kind.jaeger_name();
    if !kind.is_empty() {
        tags.push(str_tag("span.kind", kind));
    }
    if let Some(code) = span.status.code.otel_name() {
        tags.push(str_tag("otel.status_code", code));
    }
    if span.status.code == StatusCode::Error {
        tags.push(Tag { key: "error", kind: TagType::Bool, value: TagValue::Bool(true) });
    }
    // The translator adds the description whenever it is non-empty; OTLP
    // only allows one with an error status anyway.
    if !span.status.message.is_empty() {
        tags.push(str_tag("otel.status_description", &span.status.message));
    }
    if !span.trace_state.is_empty() {
        tags.push(str_tag("w3c.tracestate", &span.trace_state));
    }
    tags
}

fn str_tag<'a>(key: &'a str, value: &'a str) -> Tag<'a> {
    Tag { key, kind: TagType::String, value: TagValue::Str(Cow::Borrowed(value)) }
}

/// One attribute as a typed tag. Arrays and maps become JSON text (the
/// Collector's `AsString`), bytes base64 text typed `binary` (Go's JSON
/// encoding of `[]byte`), an empty value an empty string.
fn tag(kv: &KeyValue) -> Tag<'_> {
    let (kind, value) = match &kv.value {
        Value::Str(s) => (TagType::String, TagValue::Str(Cow::Borrowed(s))),
        Value::Bool(b) => (TagType::Bool, TagValue::Bool(*b)),
        Value::Int(i) if (-JS_MAX_SAFE_INTEGER..=JS_MAX_SAFE_INTEGER).contains(i) => {
            (TagType::Int64, TagValue::Int(*i))
        }
        Value::Int(i) => (TagType::Int64, TagValue::Str(Cow::Owned(i.to_string()))),
        // JSON has no NaN or infinities (Go's encoder fails the whole
        // response on them); send their text instead.
        Value::Double(d) if d.is_finite() => (TagType::Float64, TagValue::Float(*d)),
        Value::Double(_) => (TagType::Float64, TagValue::Str(Cow::Owned(kv.value.to_text()))),
        Value::Bytes(_) => (TagType::Binary, TagValue::Str(Cow::Owned(kv.value.to_text()))),
        Value::Array(_) | Value::Map(_) => (TagType::String, TagValue::Str(Cow::Owned(kv.value.to_text()))),
        Value::Empty => (TagType::String, TagValue::Str(Cow::Borrowed(""))),
    };
    Tag { key: &kv.key, kind, value }
}
