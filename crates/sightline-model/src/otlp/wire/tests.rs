//! The wire readers against `prost` + [`crate::otlp::decode_request`]: the
//! same spans, field for field, for regular and odd encodings.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message as _;

use super::*;
use crate::otlp::{
    Decoded, decode_group, decode_protobuf, decode_request, decode_request_bytes, decode_span_bytes,
    decode_value,
};
use crate::{Event, KeyValue, Link, Resource, Scope, Span, SpanKind, Status, StatusCode, Value};

/// A span built from the wire readers alone (falling back to prost for
/// irregular encodings, as the block encoder does); `Err` where the
/// decoder rejects the span.
fn span_from_wire(bytes: &[u8], resource: &Arc<Resource>, scope: &Arc<Scope>) -> Result<Span, String> {
    match read_span(bytes, resource, scope) {
        Ok(span) => Ok(span),
        Err(Outcome::Irregular) => decode_span_bytes(bytes, resource, scope),
        Err(Outcome::Rejected(why)) => Err(why),
    }
}

enum Outcome {
    Irregular,
    Rejected(String),
}

impl From<WireError> for Outcome {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Irregular(_) => Outcome::Irregular,
            WireError::Malformed(m) => Outcome::Rejected(m.to_owned()),
        }
    }
}

fn value(v: AnyValue<'_>) -> Value {
    match v {
        AnyValue::Empty => Value::Empty,
        AnyValue::Str(s) => Value::Str(s.into()),
        AnyValue::Bool(b) => Value::Bool(b),
        AnyValue::Int(i) => Value::Int(i),
        AnyValue::Double(d) => Value::Double(d),
        AnyValue::Bytes(b) => Value::Bytes(b.to_vec()),
        AnyValue::Array(b) => decode_value(pc::AnyValue {
            value: Some(pc::any_value::Value::ArrayValue(pc::ArrayValue::decode(b).unwrap())),
        }),
        AnyValue::Map(b) => decode_value(pc::AnyValue {
            value: Some(pc::any_value::Value::KvlistValue(pc::KeyValueList::decode(b).unwrap())),
        }),
    }
}

fn kv(bytes: &[u8]) -> Result<KeyValue, Outcome> {
    let (key, v) = key_value(bytes)?;
    Ok(KeyValue { key: key.into(), value: value(v) })
}

fn read_span(bytes: &[u8], resource: &Arc<Resource>, scope: &Arc<Scope>) -> Result<Span, Outcome> {
    let f = span_fields(bytes)?;
    let (trace_id, span_id, parent_span_id) = f.ids().map_err(Outcome::Rejected)?;
    check_links(bytes).map_err(Outcome::Rejected)?;
    let (mut attributes, mut events, mut links) = (Vec::new(), Vec::new(), Vec::new());
    for item in fields(bytes) {
        let (number, field) = item?;
        match number {
            span::ATTRIBUTES => attributes.push(kv(field.bytes()?)?),
            span::EVENTS => {
                let mut e = Event::default();
                for item in fields(field.bytes()?) {
                    match item? {
                        (span::event::TIME, f) => e.time_unix_nano = f.fixed64()?,
                        (span::event::NAME, f) => e.name = f.str()?.to_owned(),
                        (span::event::ATTRIBUTES, f) => e.attributes.push(kv(f.bytes()?)?),
                        (span::event::DROPPED_ATTRIBUTES, f) => {
                            e.dropped_attributes_count = f.varint()? as u32
                        }
                        _ => {}
                    }
                }
                events.push(e);
            }
            span::LINKS => {
                let (mut t, mut s, mut state, mut attrs, mut dropped, mut flags) =
                    (&[][..], &[][..], "", Vec::new(), 0, 0);
                for item in fields(field.bytes()?) {
                    match item? {
                        (span::link::TRACE_ID, f) => t = f.bytes()?,
                        (span::link::SPAN_ID, f) => s = f.bytes()?,
                        (span::link::TRACE_STATE, f) => state = f.str()?,
                        (span::link::ATTRIBUTES, f) => attrs.push(kv(f.bytes()?)?),
                        (span::link::DROPPED_ATTRIBUTES, f) => dropped = f.varint()? as u32,
                        (span::link::FLAGS, f) => flags = f.fixed32()?,
                        _ => {}
                    }
                }
                links.push(Link {
                    trace_id: TraceId::from_slice(t).map_err(|e| Outcome::Rejected(e.to_string()))?,
                    span_id: SpanId::from_slice(s).map_err(|e| Outcome::Rejected(e.to_string()))?,
                    trace_state: state.to_owned(),
                    attributes: attrs,
                    dropped_attributes_count: dropped,
                    flags,
                });
            }
            _ => {}
        }
    }
    Ok(Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state: f.trace_state.to_owned(),
        flags: f.flags,
        name: f.name.to_owned(),
        kind: SpanKind::from_i32(f.kind),
        start_time_unix_nano: f.start,
        end_time_unix_nano: f.end,
        attributes,
        dropped_attributes_count: f.dropped_attributes_count,
        events,
        dropped_events_count: f.dropped_events_count,
        links,
        dropped_links_count: f.dropped_links_count,
        status: Status { code: StatusCode::from_i32(f.status_code), message: f.status_message.to_owned() },
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

/// Every accepted span of `request` through the wire readers.
fn wire_decode(request: &[u8]) -> (Vec<Span>, u64) {
    let mut groups: Vec<(Arc<Resource>, Arc<Scope>)> = Vec::new();
    let mut spans = Vec::new();
    let mut rejected = 0;
    let mut raw: Vec<(usize, &[u8])> = Vec::new();
    visit_request(
        request,
        |g| {
            let (r, s) = decode_group(&g).unwrap();
            groups.push((Arc::new(r), Arc::new(s)));
        },
        |g, bytes| raw.push((g, bytes)),
    )
    .unwrap();
    for (g, bytes) in raw {
        let (r, s) = &groups[g];
        match span_from_wire(bytes, r, s) {
            Ok(span) => spans.push(span),
            Err(_) => rejected += 1,
        }
    }
    (spans, rejected)
}

fn prost_decode(request: &[u8]) -> (Vec<Span>, u64) {
    let d = decode_request(ExportTraceServiceRequest::decode(request).unwrap());
    (d.spans, d.rejected)
}

/// The direct decoder's outcome (or its fallback's) as `prost` +
/// [`decode_request`] give it: the same spans, count and message, or the
/// same error.
fn assert_direct_same(request: &[u8]) {
    let expected: Result<Decoded, _> = ExportTraceServiceRequest::decode(request).map(decode_request);
    let got = decode_protobuf(request);
    // Debug, not ==: a NaN attribute is never == itself.
    assert_eq!(format!("{got:?}"), format!("{expected:?}"));
    if expected.is_err() {
        assert!(decode_request_bytes(request).is_none(), "the direct path accepted what prost rejects");
    }
}

fn assert_same(request: &[u8]) {
    assert_direct_same(request);
    let (expected, rejected) = prost_decode(request);
    let (got, wire_rejected) = wire_decode(request);
    assert_eq!(wire_rejected, rejected, "rejected spans");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        // Debug, not ==: a NaN attribute is never == itself.
        assert_eq!(format!("{g:?}"), format!("{e:?}"));
    }
}

// A minimal protobuf writer for encodings prost never produces (the logs
// decoder's tests use it, and the value helpers below, too).
pub(crate) fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
pub(crate) fn tag(n: u32, wire: u8, out: &mut Vec<u8>) {
    varint(u64::from(n) << 3 | u64::from(wire), out);
}
pub(crate) fn len(n: u32, bytes: &[u8], out: &mut Vec<u8>) {
    tag(n, 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}
pub(crate) fn fixed64(n: u32, v: u64, out: &mut Vec<u8>) {
    tag(n, 1, out);
    out.extend_from_slice(&v.to_le_bytes());
}
pub(crate) fn int(n: u32, v: u64, out: &mut Vec<u8>) {
    tag(n, 0, out);
    varint(v, out);
}

pub(crate) fn any(kind: pc::any_value::Value) -> pc::AnyValue {
    pc::AnyValue { value: Some(kind) }
}

pub(crate) fn attr(key: &str, kind: pc::any_value::Value) -> pc::KeyValue {
    pc::KeyValue { key: key.into(), value: Some(any(kind)), key_strindex: 0 }
}

pub(crate) fn every_kind_of_value() -> Vec<pc::KeyValue> {
    use pc::any_value::Value as V;
    vec![
        attr("s", V::StringValue("text".into())),
        attr("empty.s", V::StringValue(String::new())),
        attr("b", V::BoolValue(true)),
        attr("i", V::IntValue(-42)),
        attr("d", V::DoubleValue(-0.0)),
        attr("nan", V::DoubleValue(f64::NAN.copysign(-1.0))),
        attr("bytes", V::BytesValue(vec![0, 255, 7])),
        attr(
            "arr",
            V::ArrayValue(pc::ArrayValue {
                values: vec![any(V::IntValue(1)), any(V::StringValue("x".into()))],
            }),
        ),
        attr("map", V::KvlistValue(pc::KeyValueList { values: vec![attr("k", V::BoolValue(false))] })),
        attr("strindex", V::StringValueStrindex(3)),
        pc::KeyValue { key: "no.value".into(), value: None, key_strindex: 0 },
        pc::KeyValue {
            key: "empty.value".into(),
            value: Some(pc::AnyValue { value: None }),
            key_strindex: 0,
        },
        attr("dup", V::IntValue(1)),
        attr("dup", V::IntValue(2)),
    ]
}

fn full_span(n: u8) -> pt::Span {
    pt::Span {
        trace_id: vec![n; 16],
        span_id: vec![n + 1; 8],
        parent_span_id: vec![n + 2; 8],
        trace_state: "k=v".into(),
        flags: 0x301,
        name: format!("op-{n}"),
        kind: 3,
        start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n),
        end_time_unix_nano: 1_600_000_000_000_000_000,
        attributes: every_kind_of_value(),
        dropped_attributes_count: 2,
        events: vec![pt::span::Event {
            time_unix_nano: 5,
            name: "exception".into(),
            attributes: every_kind_of_value(),
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 3,
        links: vec![pt::span::Link {
            trace_id: vec![9; 16],
            span_id: vec![8; 8],
            trace_state: "l=1".into(),
            attributes: every_kind_of_value(),
            dropped_attributes_count: 4,
            flags: 1,
        }],
        dropped_links_count: 5,
        status: Some(pt::Status { message: "boom".into(), code: 2 }),
    }
}

/// A resource with its scopes, each with its spans.
type Group = (Option<pr::Resource>, Vec<(Option<pc::InstrumentationScope>, Vec<pt::Span>)>);

fn request_of(groups: Vec<Group>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(resource, scopes)| pt::ResourceSpans {
                resource,
                scope_spans: scopes
                    .into_iter()
                    .map(|(scope, spans)| pt::ScopeSpans { scope, spans, schema_url: "scope-url".into() })
                    .collect(),
                schema_url: "resource-url".into(),
            })
            .collect(),
    }
    .encode_to_vec()
}

pub(crate) fn resource(service: &str) -> Option<pr::Resource> {
    Some(pr::Resource {
        attributes: vec![attr("service.name", pc::any_value::Value::StringValue(service.into()))],
        dropped_attributes_count: 1,
        entity_refs: Vec::new(),
    })
}

#[test]
fn regular_requests_read_the_same() {
    let scope = Some(pc::InstrumentationScope {
        name: "lib".into(),
        version: "2".into(),
        attributes: every_kind_of_value(),
        dropped_attributes_count: 7,
    });
    let request = request_of(vec![
        (resource("a"), vec![(scope.clone(), vec![full_span(1), full_span(2)]), (None, vec![full_span(3)])]),
        (None, vec![(scope, vec![full_span(4)])]),
        (resource("c"), vec![]),
    ]);
    assert_same(&request);
    // The batch processor concatenates requests: protobuf appends them.
    let mut twice = request.clone();
    twice.extend_from_slice(&request);
    assert_same(&twice);
    assert_eq!(wire_decode(&twice).0.len(), 8);
    assert_same(&[]);
}

#[test]
fn absent_fields_read_as_defaults() {
    let bare = pt::Span { trace_id: vec![1; 16], span_id: vec![2; 8], ..Default::default() };
    assert_same(&request_of(vec![(None, vec![(None, vec![bare])])]));
}

#[test]
fn invalid_ids_are_rejected_as_the_decoder_rejects_them() {
    let mut spans = Vec::new();
    for (trace, span, parent) in [
        (vec![0; 16], vec![1; 8], vec![]),
        (vec![1; 15], vec![1; 8], vec![]),
        (vec![1; 16], vec![1; 9], vec![]),
        (vec![1; 16], vec![1; 8], vec![0; 8]),
        (vec![1; 16], vec![1; 8], vec![0; 4]),
        (vec![1; 16], vec![1; 8], vec![3; 8]),
    ] {
        spans.push(pt::Span { trace_id: trace, span_id: span, parent_span_id: parent, ..full_span(1) });
    }
    let mut bad_link = full_span(2);
    bad_link.links[0].span_id = vec![0; 8];
    spans.push(bad_link);
    let request = request_of(vec![(resource("a"), vec![(None, spans)])]);
    assert_same(&request);
    assert_eq!(wire_decode(&request).1, 5);
}

#[test]
fn odd_encodings_read_as_prost_reads_them() {
    let span = full_span(1).encode_to_vec();
    let mut odd = Vec::new();
    // Fields in reverse order of number (prost writes ascending).
    let decoded = pt::Span::decode(span.as_slice()).unwrap();
    for n in (1..=16u32).rev() {
        let mut one = pt::Span::default();
        match n {
            1 => one.trace_id = decoded.trace_id.clone(),
            2 => one.span_id = decoded.span_id.clone(),
            5 => one.name = decoded.name.clone(),
            7 => one.start_time_unix_nano = decoded.start_time_unix_nano,
            9 => one.attributes = decoded.attributes.clone(),
            11 => one.events = decoded.events.clone(),
            13 => one.links = decoded.links.clone(),
            15 => one.status = decoded.status.clone(),
            _ => continue,
        }
        odd.extend(one.encode_to_vec());
    }
    // A repeated scalar: the last one wins.
    len(span::NAME, b"renamed", &mut odd);
    fixed64(span::END, 99, &mut odd);
    // A second status merges into the first: code from it, message kept.
    let mut status = Vec::new();
    int(3, 1, &mut status);
    len(span::STATUS, &status, &mut odd);
    // Unknown fields of every wire type, a group with a nested group.
    int(100, 7, &mut odd);
    fixed64(101, 7, &mut odd);
    len(102, b"xyz", &mut odd);
    tag(103, 5, &mut odd);
    odd.extend_from_slice(&[1, 2, 3, 4]);
    tag(104, 3, &mut odd);
    int(1, 5, &mut odd);
    tag(105, 3, &mut odd);
    tag(105, 4, &mut odd);
    tag(104, 4, &mut odd);
    // An attribute with a key_strindex, and the key given twice.
    let mut kv = Vec::new();
    len(1, b"first", &mut kv);
    int(3, 9, &mut kv);
    len(1, b"second", &mut kv);
    len(span::ATTRIBUTES, &kv, &mut odd);

    let mut scope_spans = Vec::new();
    len(2, &odd, &mut scope_spans);
    len(3, b"scope-url", &mut scope_spans);
    let mut resource_spans = Vec::new();
    // The resource twice (merged), its schema URL after the scope spans.
    len(1, &resource("a").unwrap().encode_to_vec(), &mut resource_spans);
    len(2, &scope_spans, &mut resource_spans);
    len(1, &resource("b").unwrap().encode_to_vec(), &mut resource_spans);
    len(3, b"late-url", &mut resource_spans);
    let mut request = Vec::new();
    len(1, &resource_spans, &mut request);
    assert_same(&request);
    let (spans, _) = wire_decode(&request);
    assert_eq!(spans[0].name, "renamed");
    assert_eq!(spans[0].status, Status { code: StatusCode::Ok, message: "boom".into() });
    assert_eq!(spans[0].resource.schema_url(), "late-url");
    assert_eq!(spans[0].resource.attributes().len(), 2, "merged resources append attributes");
}

#[test]
fn irregular_values_are_left_to_prost() {
    // An attribute with two values, and a value with two kinds.
    let mut two_values = Vec::new();
    len(1, b"k", &mut two_values);
    len(2, &any(pc::any_value::Value::IntValue(1)).encode_to_vec(), &mut two_values);
    len(
        2,
        &any(pc::any_value::Value::ArrayValue(pc::ArrayValue::default())).encode_to_vec(),
        &mut two_values,
    );
    assert!(matches!(key_value(&two_values), Err(WireError::Irregular(_))));
    // The kind is still known: the last kind field's (here the array's).
    assert_eq!(key_value_kind(&two_values), Ok(("k", ValueKind::Other)));
    let mut str_then_int = Vec::new();
    len(1, b"n", &mut str_then_int);
    len(2, &any(pc::any_value::Value::StringValue("s".into())).encode_to_vec(), &mut str_then_int);
    len(2, &any(pc::any_value::Value::IntValue(3)).encode_to_vec(), &mut str_then_int);
    assert_eq!(key_value_kind(&str_then_int), Ok(("n", ValueKind::Int)));
    let decoded = pc::KeyValue::decode(str_then_int.as_slice()).unwrap();
    assert_eq!(decoded.value.unwrap().value, Some(pc::any_value::Value::IntValue(3)), "as prost decodes it");
    let mut arrays = Vec::new();
    let array =
        |v: i64| pc::ArrayValue { values: vec![any(pc::any_value::Value::IntValue(v))] }.encode_to_vec();
    len(5, &array(1), &mut arrays);
    len(5, &array(2), &mut arrays);
    assert!(matches!(any_value(&arrays), Err(WireError::Irregular(_))));
    let mut kv = Vec::new();
    len(1, b"merged", &mut kv);
    len(2, &arrays, &mut kv);

    let mut span =
        pt::Span { trace_id: vec![1; 16], span_id: vec![2; 8], ..Default::default() }.encode_to_vec();
    len(span::ATTRIBUTES, &two_values, &mut span);
    len(span::ATTRIBUTES, &kv, &mut span);
    let mut scope_spans = Vec::new();
    len(2, &span, &mut scope_spans);
    let mut resource_spans = Vec::new();
    len(2, &scope_spans, &mut resource_spans);
    let mut request = Vec::new();
    len(1, &resource_spans, &mut request);
    assert_same(&request);
    let (spans, _) = wire_decode(&request);
    assert_eq!(
        spans[0].attributes[1].value,
        Value::Array(vec![Value::Int(1), Value::Int(2)]),
        "prost merges"
    );
}

#[test]
fn malformed_bytes_are_errors_not_panics() {
    for bad in [&[0x08][..], &[0x0a, 0x05, 1], &[0xff; 11], &[0x00, 0x01], &[0x0b], &[0x0f, 1]] {
        assert!(fields(bad).any(|f| f.is_err()), "{bad:?}");
        assert!(span_fields(bad).is_err(), "{bad:?}");
    }
    let mut invalid_utf8 = Vec::new();
    len(span::NAME, &[0xc3, 0x28], &mut invalid_utf8);
    assert_eq!(span_fields(&invalid_utf8), Err(WireError::Malformed("string is not UTF-8")));
    assert!(visit_request(&[0x0a, 0x02, 0x12, 0x05], |_| {}, |_, _| {}).is_err());
}

#[test]
fn regular_requests_take_the_direct_path() {
    let scope = Some(pc::InstrumentationScope {
        name: "lib".into(),
        version: "2".into(),
        attributes: every_kind_of_value(),
        dropped_attributes_count: 7,
    });
    let mut bad_link = full_span(5);
    bad_link.links[0].trace_id = vec![1; 3];
    let request = request_of(vec![
        (resource("a"), vec![(scope, vec![full_span(1), full_span(2)]), (None, vec![full_span(3)])]),
        (None, vec![(None, vec![full_span(4), bad_link])]),
    ]);
    let direct = decode_request_bytes(&request).expect("a regular request is decoded directly");
    let expected = decode_request(ExportTraceServiceRequest::decode(request.as_slice()).unwrap());
    assert_eq!(format!("{direct:?}"), format!("{expected:?}"));
    assert_eq!(direct.rejected, 1);
    assert_eq!(
        direct.error_message,
        "1 span(s) rejected for invalid ids: resourceSpans[1].scopeSpans[0].spans[1]: links[0]: trace id must be 16 bytes, got 3"
    );
    // One resource per `ResourceSpans`, shared by its scopes (re-encoding
    // groups spans by these pointers).
    assert!(Arc::ptr_eq(&direct.spans[0].resource, &direct.spans[2].resource));
    assert!(!Arc::ptr_eq(&direct.spans[0].scope, &direct.spans[2].scope));
    // Lists hold no spare room (the head and memory estimates count it).
    assert_eq!(direct.spans[0].attributes.capacity(), direct.spans[0].attributes.len());
}

#[test]
fn deep_values_and_groups_are_left_to_prost() {
    use pc::any_value::Value as V;
    let mut deep = any(V::IntValue(1));
    for _ in 0..120 {
        deep = any(V::ArrayValue(pc::ArrayValue { values: vec![deep] }));
    }
    let mut span = pt::Span { trace_id: vec![1; 16], span_id: vec![2; 8], ..Default::default() };
    span.attributes.push(pc::KeyValue { key: "deep".into(), value: Some(deep), key_strindex: 0 });
    let request = request_of(vec![(None, vec![(None, vec![span])])]);
    assert!(decode_request_bytes(&request).is_none());
    let error = decode_protobuf(&request).unwrap_err().to_string();
    assert!(error.contains("recursion limit"), "{error}");
    // A group where prost expects a string: prost rejects it (followed
    // by another field: the wire readers stumble on a trailing group).
    let mut span =
        pt::Span { trace_id: vec![1; 16], span_id: vec![2; 8], ..Default::default() }.encode_to_vec();
    tag(span::NAME, 3, &mut span);
    tag(span::NAME, 4, &mut span);
    int(span::KIND, 2, &mut span);
    let mut scope_spans = Vec::new();
    len(2, &span, &mut scope_spans);
    let mut resource_spans = Vec::new();
    len(2, &scope_spans, &mut resource_spans);
    let mut request = Vec::new();
    len(1, &resource_spans, &mut request);
    assert_direct_same(&request);
    assert!(decode_protobuf(&request).is_err());
}

/// Every single-byte change, and every truncation, of a request with
/// every kind of field decodes as prost decodes it (or fails as prost
/// fails).
#[test]
fn mutated_requests_decode_as_prost_decodes_them() {
    let mut span = full_span(1);
    span.attributes.truncate(4);
    span.events[0].attributes.truncate(2);
    span.links[0].attributes.truncate(2);
    let scope = Some(pc::InstrumentationScope {
        name: "lib".into(),
        version: "2".into(),
        attributes: every_kind_of_value()[7..9].to_vec(),
        dropped_attributes_count: 7,
    });
    let request = request_of(vec![(resource("a"), vec![(scope, vec![span, full_span(2)])])]);
    for cut in 0..request.len() {
        assert_direct_same(&request[..cut]);
    }
    let mut m = request.clone();
    for i in 0..request.len() {
        for b in [0x00, 0x02, 0x0b, 0x80, 0xff, request[i] ^ 0x01] {
            m[i] = b;
            assert_direct_same(&m);
        }
        m[i] = request[i];
    }
}
