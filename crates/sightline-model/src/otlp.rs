//! OTLP ⇄ model mapping, for traces here and for logs and metrics in the
//! submodules.
//!
//! Decoding validates what the model's invariants need (id lengths, non-zero
//! ids) and rejects offending items one by one, reporting them the way OTLP
//! partial success does; everything else is kept as received.

mod direct;
mod direct_logs;
mod logs;
mod metrics;
#[cfg(test)]
mod tests;

pub use direct::{decode_protobuf, decode_request_bytes};
pub use direct_logs::{decode_logs_protobuf, decode_logs_request_bytes};
pub use logs::{DecodedLogs, decode_logs_request, decode_record, encode_logs, encode_record};
pub use metrics::{DecodedMetrics, decode_metrics_request, encode_metric, encode_metrics};
pub mod wire;

use std::fmt::Write as _;
use std::sync::Arc;

use prost::Message as _;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;

use crate::{
    Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId, Value,
};

/// The outcome of decoding one export request.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Spans that passed validation, in request order.
    pub spans: Vec<Span>,
    /// Number of spans rejected.
    pub rejected: u64,
    /// Why spans were rejected (the first few reasons), empty if none.
    pub error_message: String,
}

/// How many rejection reasons an error message lists before summarising.
const MAX_REASONS: usize = 3;

/// Counts one rejected item and keeps its reason (`path: why`) among the
/// first [`MAX_REASONS`], `; `-joined in `message`: one rule for every
/// signal's decoder, so their partial-success messages read alike.
fn note_reason(message: &mut String, reasons: &mut usize, why: std::fmt::Arguments<'_>) {
    if *reasons < MAX_REASONS {
        if *reasons > 0 {
            message.push_str("; ");
        }
        let _ = message.write_fmt(why);
    }
    *reasons += 1;
}

/// Decodes an export request, taking ownership to move strings instead of
/// copying them.
pub fn decode_request(request: ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    let total: usize =
        request.resource_spans.iter().flat_map(|rs| rs.scope_spans.iter()).map(|ss| ss.spans.len()).sum();
    out.spans.reserve(total);
    let mut reasons = 0usize;
    for (ri, rs) in request.resource_spans.into_iter().enumerate() {
        let resource = Arc::new(decode_resource(rs.resource, rs.schema_url));
        for (si, ss) in rs.scope_spans.into_iter().enumerate() {
            let scope = Arc::new(decode_scope(ss.scope, ss.schema_url));
            for (pi, span) in ss.spans.into_iter().enumerate() {
                match decode_span(span, &resource, &scope) {
                    Ok(span) => out.spans.push(span),
                    Err(why) => {
                        out.rejected += 1;
                        note_reason(
                            &mut out.error_message,
                            &mut reasons,
                            format_args!("resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]: {why}"),
                        );
                    }
                }
            }
        }
    }
    if out.rejected > 0 {
        let shown = reasons.min(MAX_REASONS);
        out.error_message = format!(
            "{} span(s) rejected for invalid ids: {}{}",
            out.rejected,
            out.error_message,
            if reasons > shown { "; …" } else { "" }
        );
    }
    out
}

/// Decodes one encoded span (`opentelemetry.proto.trace.v1.Span`) of a
/// `ScopeSpans` whose resource and scope are given, validating it as
/// [`decode_request`] does.
pub fn decode_span_bytes(span: &[u8], resource: &Arc<Resource>, scope: &Arc<Scope>) -> Result<Span, String> {
    let span = pt::Span::decode(span).map_err(|e| format!("span does not decode: {e}"))?;
    decode_span(span, resource, scope)
}

/// The resource and scope of a group found by [`wire::visit_request`],
/// decoded (repeated occurrences merged, as protobuf merges them).
pub fn decode_group(group: &wire::Group<'_>) -> Result<(Resource, Scope), String> {
    let resource = if group.resource.is_empty() {
        None
    } else {
        let mut r = pr::Resource::default();
        for bytes in &group.resource {
            r.merge(*bytes).map_err(|e| format!("resource does not decode: {e}"))?;
        }
        Some(r)
    };
    let scope = if group.scope.is_empty() {
        None
    } else {
        let mut s = pc::InstrumentationScope::default();
        for bytes in &group.scope {
            s.merge(*bytes).map_err(|e| format!("scope does not decode: {e}"))?;
        }
        Some(s)
    };
    Ok((
        decode_resource(resource, group.resource_schema_url.to_owned()),
        decode_scope(scope, group.scope_schema_url.to_owned()),
    ))
}

/// Maps a `ResourceSpans`' resource (absent: no attributes) with the
/// `ResourceSpans`' schema URL.
pub fn decode_resource(resource: Option<pr::Resource>, schema_url: String) -> Resource {
    match resource {
        Some(r) => Resource::new(kvs(r.attributes), r.dropped_attributes_count, schema_url),
        None => Resource::new(Vec::new(), 0, schema_url),
    }
}

/// Maps a `ScopeSpans`' scope (absent: empty) with the `ScopeSpans`'
/// schema URL.
pub fn decode_scope(scope: Option<pc::InstrumentationScope>, schema_url: String) -> Scope {
    match scope {
        Some(s) => Scope {
            name: s.name,
            version: s.version,
            attributes: kvs(s.attributes),
            dropped_attributes_count: s.dropped_attributes_count,
            schema_url,
        },
        None => Scope { schema_url, ..Scope::default() },
    }
}

/// Maps one span, validating its ids the way [`decode_request`] does (the
/// error is the reason it reports).
pub fn decode_span(span: pt::Span, resource: &Arc<Resource>, scope: &Arc<Scope>) -> Result<Span, String> {
    let trace_id = TraceId::from_slice(&span.trace_id).map_err(|e| e.to_string())?;
    let span_id = SpanId::from_slice(&span.span_id).map_err(|e| e.to_string())?;
    let parent_span_id = match span.parent_span_id.len() {
        0 => None,
        _ if span.parent_span_id.iter().all(|b| *b == 0) && span.parent_span_id.len() == SpanId::LEN => None,
        _ => Some(SpanId::from_slice(&span.parent_span_id).map_err(|e| format!("parent {e}"))?),
    };
    let mut links = Vec::with_capacity(span.links.len());
    for (i, link) in span.links.into_iter().enumerate() {
        links.push(Link {
            trace_id: TraceId::from_slice(&link.trace_id).map_err(|e| format!("links[{i}]: {e}"))?,
            span_id: SpanId::from_slice(&link.span_id).map_err(|e| format!("links[{i}]: {e}"))?,
            trace_state: link.trace_state,
            attributes: kvs(link.attributes),
            dropped_attributes_count: link.dropped_attributes_count,
            flags: link.flags,
        });
    }
    let status = span
        .status
        .map_or_else(Status::default, |s| Status { code: StatusCode::from_i32(s.code), message: s.message });
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: span.trace_state,
        flags: span.flags,
        name: span.name,
        kind: SpanKind::from_i32(span.kind),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: kvs(span.attributes),
        dropped_attributes_count: span.dropped_attributes_count,
        events: events(span.events),
        dropped_events_count: span.dropped_events_count,
        links,
        dropped_links_count: span.dropped_links_count,
        status,
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

/// Maps a decoded list into one of exactly its length. A plain `collect`
/// would reuse prost's buffer in place, and prost grows it by doubling:
/// 10.6 attributes per realistic span sat in room for 16.8, ~350 B of every
/// span the head holds.
fn exact<T, U>(list: Vec<T>, f: impl FnMut(T) -> U) -> Vec<U> {
    let mut out = Vec::with_capacity(list.len());
    out.extend(list.into_iter().map(f));
    out
}

fn kvs(list: Vec<pc::KeyValue>) -> Vec<KeyValue> {
    exact(list, |kv| KeyValue { key: kv.key.into(), value: kv.value.map_or(Value::Empty, value) })
}

fn events(list: Vec<pt::span::Event>) -> Vec<Event> {
    exact(list, |e| Event {
        time_unix_nano: e.time_unix_nano,
        name: e.name,
        attributes: kvs(e.attributes),
        dropped_attributes_count: e.dropped_attributes_count,
    })
}

/// Maps one attribute value.
pub fn decode_value(v: pc::AnyValue) -> Value {
    value(v)
}

fn value(v: pc::AnyValue) -> Value {
    use pc::any_value::Value as V;
    match v.value {
        None => Value::Empty,
        Some(V::StringValue(s)) => Value::Str(s.into()),
        Some(V::BoolValue(b)) => Value::Bool(b),
        Some(V::IntValue(i)) => Value::Int(i),
        Some(V::DoubleValue(d)) => Value::Double(d),
        Some(V::BytesValue(b)) => Value::Bytes(b),
        Some(V::ArrayValue(a)) => Value::Array(exact(a.values, value)),
        Some(V::KvlistValue(m)) => Value::Map(kvs(m.values)),
        // String tables only exist in the profiles signal; a trace span
        // carrying an index has no text to resolve it to.
        Some(V::StringValueStrindex(_)) => Value::Empty,
    }
}

/// Consecutive items sharing a resource and scope (by pointer), grouped as
/// SDKs batch them: the resource → scope → items shape of every OTLP
/// export request, for the encoders of all three signals.
pub(crate) type Groups<'a, T> = Vec<(&'a Arc<Resource>, Vec<(&'a Arc<Scope>, Vec<&'a T>)>)>;

/// See [`Groups`]; `of` names an item's resource and scope.
pub(crate) fn group<'a, T>(
    items: &'a [T],
    of: impl Fn(&'a T) -> (&'a Arc<Resource>, &'a Arc<Scope>),
) -> Groups<'a, T> {
    let mut out: Groups<'a, T> = Vec::new();
    for item in items {
        let (resource, scope) = of(item);
        match out.last_mut() {
            Some((r, scopes)) if Arc::ptr_eq(r, resource) => match scopes.last_mut() {
                Some((s, list)) if Arc::ptr_eq(s, scope) => list.push(item),
                _ => scopes.push((scope, vec![item])),
            },
            _ => out.push((resource, vec![(scope, vec![item])])),
        }
    }
    out
}

/// Encodes spans as one export request, grouping consecutive spans that
/// share a resource and scope (by pointer) the way SDKs batch them.
pub fn encode_spans(spans: &[Span]) -> ExportTraceServiceRequest {
    let resource_spans = encode_groups(
        spans,
        |s| (&s.resource, &s.scope),
        |scope, schema_url, spans| pt::ScopeSpans {
            scope: Some(scope),
            schema_url,
            spans: spans.into_iter().map(encode_span).collect(),
        },
        |resource, schema_url, scope_spans| pt::ResourceSpans {
            resource: Some(resource),
            schema_url,
            scope_spans,
        },
    );
    ExportTraceServiceRequest { resource_spans }
}

/// The OTLP resource → scope → items nesting, for any signal: `items`
/// grouped as [`group`] does, each scope group built by `scope_group`
/// (scope, its schema URL, its items) and each resource group by
/// `resource_group` (resource, its schema URL, its scope groups). Only the
/// signal's message types differ, so each encoder passes their
/// constructors.
pub(crate) fn encode_groups<'a, T, S, R>(
    items: &'a [T],
    of: impl Fn(&'a T) -> (&'a Arc<Resource>, &'a Arc<Scope>),
    scope_group: impl Fn(pc::InstrumentationScope, String, Vec<&'a T>) -> S,
    resource_group: impl Fn(pr::Resource, String, Vec<S>) -> R,
) -> Vec<R> {
    group(items, of)
        .into_iter()
        .map(|(resource, scopes)| {
            let scopes = scopes
                .into_iter()
                .map(|(scope, items)| scope_group(encode_scope(scope), scope.schema_url.clone(), items))
                .collect();
            resource_group(encode_resource(resource), resource.schema_url().to_owned(), scopes)
        })
        .collect()
}

/// Encodes a resource.
pub fn encode_resource(r: &Resource) -> pr::Resource {
    pr::Resource {
        attributes: encode_kvs(r.attributes()),
        dropped_attributes_count: r.dropped_attributes_count(),
        entity_refs: Vec::new(),
    }
}

/// Encodes a scope.
pub fn encode_scope(s: &Scope) -> pc::InstrumentationScope {
    pc::InstrumentationScope {
        name: s.name.clone(),
        version: s.version.clone(),
        attributes: encode_kvs(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
    }
}

/// Encodes one span (without its resource and scope).
pub fn encode_span(s: &Span) -> pt::Span {
    pt::Span {
        trace_id: s.trace_id.as_bytes().to_vec(),
        span_id: s.span_id.as_bytes().to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.map(|p| p.as_bytes().to_vec()).unwrap_or_default(),
        flags: s.flags,
        name: s.name.clone(),
        kind: s.kind as i32,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: encode_kvs(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s
            .events
            .iter()
            .map(|e| pt::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name.clone(),
                attributes: encode_kvs(&e.attributes),
                dropped_attributes_count: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events_count: s.dropped_events_count,
        links: s
            .links
            .iter()
            .map(|l| pt::span::Link {
                trace_id: l.trace_id.as_bytes().to_vec(),
                span_id: l.span_id.as_bytes().to_vec(),
                trace_state: l.trace_state.clone(),
                attributes: encode_kvs(&l.attributes),
                dropped_attributes_count: l.dropped_attributes_count,
                flags: l.flags,
            })
            .collect(),
        dropped_links_count: s.dropped_links_count,
        status: (s.status.code != StatusCode::Unset || !s.status.message.is_empty())
            .then(|| pt::Status { message: s.status.message.clone(), code: s.status.code as i32 }),
    }
}

/// Encodes attributes.
pub fn encode_kvs(list: &[KeyValue]) -> Vec<pc::KeyValue> {
    list.iter()
        .map(|kv| pc::KeyValue {
            key: kv.key.as_str().to_owned(),
            value: Some(encode_value(&kv.value)),
            key_strindex: 0,
        })
        .collect()
}

/// One value as a protobuf `AnyValue`: how nodes sharing a bucket send
/// each other listings (services, operations, tag names and values) —
/// exact for every value kind, and decoded by code every receiver has.
pub fn encode_value_bytes(v: &Value) -> Vec<u8> {
    encode_value(v).encode_to_vec()
}

/// Reads what [`encode_value_bytes`] wrote.
pub fn decode_value_bytes(bytes: &[u8]) -> Result<Value, prost::DecodeError> {
    Ok(value(pc::AnyValue::decode(bytes)?))
}

/// Log records from a protobuf `ExportLogsServiceRequest`: how a node
/// sharing a bucket reads a peer's log head (`/internal/logs/head`).
pub fn decode_logs_bytes(bytes: &[u8]) -> Result<DecodedLogs, prost::DecodeError> {
    decode_logs_protobuf(bytes)
}

/// Encodes one attribute value.
pub fn encode_value(v: &Value) -> pc::AnyValue {
    use pc::any_value::Value as V;
    let value = match v {
        Value::Empty => None,
        Value::Str(s) => Some(V::StringValue(s.as_str().to_owned())),
        Value::Bool(b) => Some(V::BoolValue(*b)),
        Value::Int(i) => Some(V::IntValue(*i)),
        Value::Double(d) => Some(V::DoubleValue(*d)),
        Value::Bytes(b) => Some(V::BytesValue(b.clone())),
        Value::Array(a) => {
            Some(V::ArrayValue(pc::ArrayValue { values: a.iter().map(encode_value).collect() }))
        }
        Value::Map(m) => Some(V::KvlistValue(pc::KeyValueList { values: encode_kvs(m) })),
    };
    pc::AnyValue { value }
}
