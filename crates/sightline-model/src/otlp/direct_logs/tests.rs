//! The direct logs decoder against `prost` + [`decode_logs_request`]: the
//! same records, count and message (or the same error) for regular, odd,
//! truncated and mutated requests. The protobuf writer and value helpers
//! are the traces decoder's tests'.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1 as pr;
use pc::any_value::Value as V;
use prost::Message as _;

use super::{decode_logs_protobuf, decode_logs_request_bytes, record as field};
use crate::Value;
use crate::otlp::decode_logs_request;
use crate::otlp::wire::tests::{any, attr, every_kind_of_value, fixed64, int, len, resource, tag};

/// The direct decoder's outcome (or its fallback's) is what `prost` +
/// [`decode_logs_request`] give: the same records, count and message, or
/// the same error; and the direct path never accepts what `prost` rejects.
fn assert_same(request: &[u8]) {
    let expected = ExportLogsServiceRequest::decode(request).map(decode_logs_request);
    let got = decode_logs_protobuf(request);
    // Debug, not ==: a NaN attribute is never == itself.
    assert_eq!(format!("{got:?}"), format!("{expected:?}"));
    if expected.is_err() {
        assert!(decode_logs_request_bytes(request).is_none(), "the direct path accepted what prost rejects");
    }
}

/// [`assert_same`], and the request was decoded by the direct path.
fn assert_direct(request: &[u8]) {
    assert_same(request);
    assert!(decode_logs_request_bytes(request).is_some(), "left to prost");
}

fn full_record(n: u8, body: Option<pc::AnyValue>) -> pl::LogRecord {
    pl::LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000 + u64::from(n),
        observed_time_unix_nano: 1_700_000_000_000_000_500,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body,
        attributes: every_kind_of_value(),
        dropped_attributes_count: 2,
        flags: 0x301,
        trace_id: vec![n; 16],
        span_id: vec![n + 1; 8],
        event_name: format!("event-{n}"),
    }
}

fn text(s: &str) -> Option<pc::AnyValue> {
    Some(any(V::StringValue(s.into())))
}

/// Every shape a body takes: text, structured (map, array), other
/// scalars, a value with no kind, none.
fn bodies() -> Vec<Option<pc::AnyValue>> {
    vec![
        text("payment failed: card declined"),
        text(""),
        Some(any(V::KvlistValue(pc::KeyValueList { values: every_kind_of_value() }))),
        Some(any(V::ArrayValue(pc::ArrayValue {
            values: vec![any(V::IntValue(1)), any(V::BoolValue(true))],
        }))),
        Some(any(V::BytesValue(vec![0, 1, 255]))),
        Some(any(V::DoubleValue(f64::NAN))),
        Some(any(V::StringValueStrindex(4))),
        Some(pc::AnyValue { value: None }),
        None,
    ]
}

/// A resource with its scopes, each with its records.
type Group = (Option<pr::Resource>, Vec<(Option<pc::InstrumentationScope>, Vec<pl::LogRecord>)>);

fn request_of(groups: Vec<Group>) -> Vec<u8> {
    ExportLogsServiceRequest {
        resource_logs: groups
            .into_iter()
            .map(|(resource, scopes)| pl::ResourceLogs {
                resource,
                scope_logs: scopes
                    .into_iter()
                    .map(|(scope, log_records)| pl::ScopeLogs {
                        scope,
                        log_records,
                        schema_url: "scope-url".into(),
                    })
                    .collect(),
                schema_url: "resource-url".into(),
            })
            .collect(),
    }
    .encode_to_vec()
}

fn scope() -> Option<pc::InstrumentationScope> {
    Some(pc::InstrumentationScope {
        name: "app.logger".into(),
        version: "2".into(),
        attributes: every_kind_of_value(),
        dropped_attributes_count: 7,
    })
}

/// The envelope around one record's bytes.
fn request_around(record: &[u8]) -> Vec<u8> {
    let mut scope_logs = Vec::new();
    len(2, record, &mut scope_logs);
    let mut resource_logs = Vec::new();
    len(2, &scope_logs, &mut resource_logs);
    let mut request = Vec::new();
    len(1, &resource_logs, &mut request);
    request
}

#[test]
fn regular_requests_decode_directly_as_prost_decodes_them() {
    let records: Vec<_> =
        bodies().into_iter().enumerate().map(|(i, b)| full_record(i as u8 + 1, b)).collect();
    let request = request_of(vec![
        (resource("a"), vec![(scope(), records[..5].to_vec()), (None, records[5..].to_vec())]),
        (None, vec![(scope(), vec![full_record(20, text("x"))])]),
        (resource("c"), vec![]),
    ]);
    assert_direct(&request);
    // The batch processor concatenates requests: protobuf appends them.
    let mut twice = request.clone();
    twice.extend_from_slice(&request);
    assert_direct(&twice);
    assert_eq!(decode_logs_request_bytes(&twice).unwrap().records.len(), 20);
    assert_direct(&[]);
    let bare = pl::LogRecord::default();
    assert_direct(&request_of(vec![(None, vec![(None, vec![bare])])]));

    let direct = decode_logs_request_bytes(&request).unwrap();
    assert_eq!(direct.records[0].body, Value::Str("payment failed: card declined".into()));
    // One resource per `ResourceLogs`, one scope per `ScopeLogs`.
    assert!(Arc::ptr_eq(&direct.records[0].resource, &direct.records[8].resource));
    assert!(!Arc::ptr_eq(&direct.records[0].scope, &direct.records[8].scope));
    // A resource repeated in later `ResourceLogs` is decoded once, but
    // only when its bytes and schema URL are the same.
    let again = request_of(vec![
        (resource("a"), vec![(None, vec![full_record(1, None)])]),
        (resource("b"), vec![(None, vec![full_record(2, None)])]),
        (resource("a"), vec![(None, vec![full_record(3, None)])]),
    ]);
    assert_direct(&again);
    let r = decode_logs_request_bytes(&again).unwrap().records;
    assert!(Arc::ptr_eq(&r[0].resource, &r[2].resource));
    assert!(!Arc::ptr_eq(&r[0].resource, &r[1].resource));
    let mut other_url = ExportLogsServiceRequest::decode(again.as_slice()).unwrap();
    other_url.resource_logs[2].schema_url = "other-url".into();
    let other_url = other_url.encode_to_vec();
    assert_direct(&other_url);
    let r = decode_logs_request_bytes(&other_url).unwrap().records;
    assert!(!Arc::ptr_eq(&r[0].resource, &r[2].resource));
    assert_eq!(r[2].resource.schema_url(), "other-url");
    // Lists hold no spare room (the head's memory estimate counts them).
    assert_eq!(direct.records.capacity(), direct.records.len());
    assert_eq!(direct.records[0].attributes.capacity(), direct.records[0].attributes.len());
}

#[test]
fn bad_ids_reject_records_with_the_same_messages() {
    let mut records = Vec::new();
    for (trace, span) in [
        (vec![1; 15], vec![1; 8]),
        (vec![1; 16], vec![1; 9]),
        (vec![0; 16], vec![0; 8]),
        (vec![], vec![2; 8]),
        (vec![3; 16], vec![]),
        (vec![1; 17], vec![]),
        (vec![], vec![0; 4]),
        (vec![0; 3], vec![0; 3]),
    ] {
        records.push(pl::LogRecord { trace_id: trace, span_id: span, ..full_record(1, text("t")) });
    }
    let request = request_of(vec![(resource("a"), vec![(None, records)])]);
    assert_direct(&request);
    let direct = decode_logs_request_bytes(&request).unwrap();
    assert_eq!((direct.records.len(), direct.rejected), (3, 5));
    assert_eq!(
        direct.error_message,
        "5 log record(s) rejected for invalid ids: \
         resourceLogs[0].scopeLogs[0].logRecords[0]: trace id must be 16 bytes, got 15; \
         resourceLogs[0].scopeLogs[0].logRecords[1]: span id must be 8 bytes, got 9; \
         resourceLogs[0].scopeLogs[0].logRecords[5]: trace id must be 16 bytes, got 17; …"
    );
}

#[test]
fn odd_encodings_decode_as_prost_decodes_them() {
    let decoded = full_record(1, text("first"));
    // Fields in reverse order of number (prost writes ascending).
    let mut odd = Vec::new();
    for n in (1..=12u32).rev() {
        let mut one = pl::LogRecord::default();
        match n {
            field::TIME => one.time_unix_nano = decoded.time_unix_nano,
            field::SEVERITY_TEXT => one.severity_text = decoded.severity_text.clone(),
            field::BODY => one.body = decoded.body.clone(),
            field::ATTRIBUTES => one.attributes = decoded.attributes.clone(),
            field::TRACE_ID => one.trace_id = decoded.trace_id.clone(),
            field::SPAN_ID => one.span_id = decoded.span_id.clone(),
            _ => continue,
        }
        odd.extend(one.encode_to_vec());
    }
    // Repeated scalars: the last one wins.
    len(field::SEVERITY_TEXT, b"WARN", &mut odd);
    fixed64(field::OBSERVED_TIME, 99, &mut odd);
    int(field::SEVERITY_NUMBER, u64::MAX, &mut odd);
    // Unknown fields of every wire type, a group with a nested group.
    int(100, 7, &mut odd);
    fixed64(101, 7, &mut odd);
    len(102, b"xyz", &mut odd);
    tag(103, 5, &mut odd);
    odd.extend_from_slice(&[1, 2, 3, 4]);
    let mut scope_logs = Vec::new();
    len(2, &odd, &mut scope_logs);
    len(3, b"scope-url", &mut scope_logs);
    // The scope twice (merged).
    len(1, &scope().unwrap().encode_to_vec(), &mut scope_logs);
    len(
        1,
        &pc::InstrumentationScope { name: "renamed".into(), ..Default::default() }.encode_to_vec(),
        &mut scope_logs,
    );
    let mut resource_logs = Vec::new();
    // The resource twice (merged), its schema URL after the scope logs.
    len(1, &resource("a").unwrap().encode_to_vec(), &mut resource_logs);
    len(2, &scope_logs, &mut resource_logs);
    len(1, &resource("b").unwrap().encode_to_vec(), &mut resource_logs);
    len(3, b"late-url", &mut resource_logs);
    let mut request = Vec::new();
    len(1, &resource_logs, &mut request);
    assert_direct(&request);
    let direct = decode_logs_request_bytes(&request).unwrap();
    let r = &direct.records[0];
    assert_eq!((r.severity_text.as_str(), r.observed_time_unix_nano, r.severity_number), ("WARN", 99, -1));
    assert_eq!((r.scope.name.as_str(), r.scope.version.as_str()), ("renamed", "2"));
    assert_eq!(r.resource.schema_url(), "late-url");
    assert_eq!(r.resource.attributes().len(), 2, "merged resources append attributes");

    // A trailing group, unknown or in a known field, is left to prost
    // (which skips the one and rejects the other).
    for number in [104, field::SEVERITY_TEXT] {
        let mut grouped = full_record(1, text("g")).encode_to_vec();
        tag(number, 3, &mut grouped);
        tag(number, 4, &mut grouped);
        let request = request_around(&grouped);
        assert!(decode_logs_request_bytes(&request).is_none());
        assert_same(&request);
    }
}

#[test]
fn a_body_given_twice_is_merged_by_prost() {
    let array =
        |v: i64| any(V::ArrayValue(pc::ArrayValue { values: vec![any(V::IntValue(v))] })).encode_to_vec();
    let mut record = pl::LogRecord { trace_id: vec![1; 16], ..Default::default() }.encode_to_vec();
    len(field::BODY, &array(1), &mut record);
    len(field::BODY, &array(2), &mut record);
    let request = request_around(&record);
    assert!(decode_logs_request_bytes(&request).is_none());
    assert_same(&request);
    let decoded = decode_logs_protobuf(&request).unwrap();
    assert_eq!(decoded.records[0].body, Value::Array(vec![Value::Int(1), Value::Int(2)]), "prost merges");
}

#[test]
fn invalid_utf8_and_deep_values_fail_as_prost_fails() {
    for number in [field::SEVERITY_TEXT, field::EVENT_NAME] {
        let mut record = full_record(1, text("ok")).encode_to_vec();
        len(number, &[0xc3, 0x28], &mut record);
        let request = request_around(&record);
        assert_same(&request);
        let error = decode_logs_protobuf(&request).unwrap_err().to_string();
        assert!(error.contains("UTF-8"), "{error}");
    }
    let mut bad_body = Vec::new();
    len(1, &[0xff, 0xfe], &mut bad_body);
    let mut record = Vec::new();
    len(field::BODY, &bad_body, &mut record);
    assert!(decode_logs_protobuf(&request_around(&record)).is_err());
    assert_same(&request_around(&record));

    // An entity reference in the resource, its type not UTF-8 (the
    // direct path leaves entity references to prost).
    let mut entity = Vec::new();
    len(2, &[0xc3, 0x28], &mut entity);
    let mut bad_resource = Vec::new();
    len(3, &entity, &mut bad_resource);
    let mut resource_logs = Vec::new();
    len(1, &bad_resource, &mut resource_logs);
    let mut request = Vec::new();
    len(1, &resource_logs, &mut request);
    assert!(decode_logs_protobuf(&request).is_err());
    assert_same(&request);

    let mut deep = any(V::IntValue(1));
    for _ in 0..120 {
        deep = any(V::ArrayValue(pc::ArrayValue { values: vec![deep] }));
    }
    let record = pl::LogRecord { body: Some(deep), ..Default::default() };
    let request = request_of(vec![(None, vec![(None, vec![record])])]);
    assert!(decode_logs_request_bytes(&request).is_none());
    let error = decode_logs_protobuf(&request).unwrap_err().to_string();
    assert!(error.contains("recursion limit"), "{error}");
}

/// Every truncation, and every single-byte change, of a request with
/// every kind of field decodes as prost decodes it (or fails as prost
/// fails).
#[test]
fn truncated_and_mutated_requests_decode_as_prost_decodes_them() {
    let mut first = full_record(
        1,
        Some(any(V::KvlistValue(pc::KeyValueList { values: vec![attr("k", V::IntValue(3))] }))),
    );
    first.attributes.truncate(4);
    let mut second = full_record(2, text("second"));
    second.attributes = every_kind_of_value()[7..9].to_vec();
    second.span_id = vec![1; 3];
    let mut scope = scope();
    if let Some(s) = scope.as_mut() {
        s.attributes.truncate(2);
    }
    let request = request_of(vec![(resource("a"), vec![(scope, vec![first, second])])]);
    for cut in 0..request.len() {
        assert_same(&request[..cut]);
    }
    let mut m = request.clone();
    for i in 0..request.len() {
        for b in [0x00, 0x02, 0x0b, 0x80, 0xff, request[i] ^ 0x01] {
            m[i] = b;
            assert_same(&m);
        }
        m[i] = request[i];
    }
}
