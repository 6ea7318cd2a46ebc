//! Property-based fuzzing of the OTLP decoders (issue 16 item 6), run by
//! `cargo test` with a bounded number of cases and by `bench/fuzz.sh` with
//! many more (`PROPTEST_CASES`).
//!
//! Inputs are arbitrary bytes, mutated encodings of generated requests, and
//! JSON trees built from OTLP's own field names (so they get past the first
//! parser into the interesting code). Properties:
//!
//! - every body gets 200, 400 or 413 — never a panic, a 5xx or a hang;
//! - the decoded-size walk never refuses what prost decodes;
//! - a request sent as protobuf and as OTLP/JSON yields the same spans.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prometheus_client::registry::Registry;
use proptest::prelude::*;
use prost::Message as _;
use sightline_model::{Batch, ConsumeError, TracesConsumer};
use tower::ServiceExt as _;

use crate::Receiver;
use crate::front::cost::proto_cost;
use crate::front::{Front, Limits, Metrics};
use crate::ingest::REQUEST;

/// Cases per property: `PROPTEST_CASES` (the fuzz command's), else `n`.
fn config(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Keeps every batch.
#[derive(Default)]
struct Keep(std::sync::Mutex<Vec<Batch>>);

#[async_trait::async_trait]
impl TracesConsumer for Keep {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        let mut batches = self.0.lock().map_err(|_| ConsumeError::Unavailable {
            reason: "a test panicked holding the lock".into(),
            retry_after: std::time::Duration::ZERO,
        })?;
        batches.push(batch);
        Ok(())
    }
}

fn receiver() -> (Receiver, Arc<Keep>) {
    let keep = Arc::new(Keep::default());
    let metrics = Arc::new(Metrics::new(&mut Registry::default()));
    // A small body limit keeps cases cheap; the budget stays the default.
    let limits = Limits { max_body_bytes: 256 << 10, ..Limits::default() };
    (Receiver::with_front(Arc::clone(&keep) as Arc<dyn TracesConsumer>, Front::new(limits, metrics)), keep)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn post(rt: &tokio::runtime::Runtime, receiver: &Receiver, content_type: &str, body: Vec<u8>) -> StatusCode {
    let request = http::Request::post("/v1/traces")
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    rt.block_on(receiver.http_router().oneshot(request)).expect("infallible").status()
}

fn any_value(depth: u32) -> BoxedStrategy<pc::AnyValue> {
    use pc::any_value::Value as V;
    let leaf = prop_oneof![
        ".{0,12}".prop_map(V::StringValue),
        any::<i64>().prop_map(V::IntValue),
        any::<bool>().prop_map(V::BoolValue),
        any::<f64>().prop_filter("JSON has no NaN or infinities", |f| f.is_finite()).prop_map(V::DoubleValue),
        proptest::collection::vec(any::<u8>(), 0..8).prop_map(V::BytesValue),
    ];
    let value = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![
            3 => leaf,
            1 => proptest::collection::vec(any_value(depth - 1), 0..3)
                .prop_map(|values| V::ArrayValue(pc::ArrayValue { values })),
            1 => proptest::collection::vec(key_value(depth - 1), 0..3)
                .prop_map(|values| V::KvlistValue(pc::KeyValueList { values })),
        ]
        .boxed()
    };
    value.prop_map(|v| pc::AnyValue { value: Some(v) }).boxed()
}

fn key_value(depth: u32) -> BoxedStrategy<pc::KeyValue> {
    ("[a-z.]{1,10}", any_value(depth))
        .prop_map(|(key, value)| pc::KeyValue { key, value: Some(value), key_strindex: 0 })
        .boxed()
}

/// Spans with valid ids (all-zero ids are rejected by design, so avoided).
fn span() -> impl Strategy<Value = pt::Span> {
    (
        any::<[u8; 16]>().prop_filter("non-zero", |t| t.iter().any(|b| *b != 0)),
        any::<[u8; 8]>().prop_filter("non-zero", |s| s.iter().any(|b| *b != 0)),
        ".{0,16}",
        0i32..6,
        any::<u32>(),
        proptest::collection::vec(key_value(2), 0..4),
        proptest::collection::vec(("[a-z]{0,8}", proptest::collection::vec(key_value(1), 0..2)), 0..2),
    )
        .prop_map(|(trace, id, name, kind, start, attributes, events)| pt::Span {
            trace_id: trace.to_vec(),
            span_id: id.to_vec(),
            name,
            kind,
            start_time_unix_nano: u64::from(start) * 1000,
            end_time_unix_nano: u64::from(start) * 1000 + 5,
            attributes,
            events: events
                .into_iter()
                .map(|(name, attributes)| pt::span::Event {
                    time_unix_nano: 7,
                    name,
                    attributes,
                    dropped_attributes_count: 0,
                })
                .collect(),
            ..Default::default()
        })
}

fn request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    proptest::collection::vec(
        (proptest::collection::vec(key_value(1), 0..3), proptest::collection::vec(span(), 0..4)),
        0..3,
    )
    .prop_map(|groups| ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(attributes, spans)| pt::ResourceSpans {
                resource: Some(pr::Resource { attributes, ..Default::default() }),
                scope_spans: vec![pt::ScopeSpans { spans, ..Default::default() }],
                schema_url: String::new(),
            })
            .collect(),
    })
}

/// Byte edits applied to an encoding.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(
        prop_oneof![
            (any::<usize>(), 1u8..=255).prop_map(|(at, x)| Edit::Flip(at, x)),
            (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
            any::<usize>().prop_map(Edit::Delete),
            any::<usize>().prop_map(Edit::Truncate),
        ],
        1..4,
    )
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let n = bytes.len().max(1);
        match *edit {
            Edit::Flip(at, x) => {
                if let Some(b) = bytes.get_mut(at % n) {
                    *b ^= x;
                }
            }
            Edit::Insert(at, b) => bytes.insert(at % (bytes.len() + 1), b),
            Edit::Delete(at) => {
                if !bytes.is_empty() {
                    bytes.remove(at % n);
                }
            }
            Edit::Truncate(at) => bytes.truncate(at % n),
        }
    }
    bytes
}

/// OTLP/JSON trees from OTLP's own vocabulary, in both spellings.
fn otlp_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    const KEYS: &[&str] = &[
        "resourceSpans",
        "resource_spans",
        "scopeSpans",
        "spans",
        "resource",
        "scope",
        "attributes",
        "key",
        "value",
        "stringValue",
        "intValue",
        "doubleValue",
        "boolValue",
        "bytesValue",
        "arrayValue",
        "kvlistValue",
        "values",
        "traceId",
        "spanId",
        "parentSpanId",
        "name",
        "kind",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "events",
        "links",
        "status",
        "code",
        "message",
        "droppedAttributesCount",
        "flags",
        "traceState",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[0-9a-fA-F]{0,34}".prop_map(Value::String),
        ".{0,8}".prop_map(Value::String),
        (-1e300f64..1e300).prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..5).prop_map(|members| {
                Value::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

const OK_OR_REFUSED: [StatusCode; 3] =
    [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::PAYLOAD_TOO_LARGE];

proptest! {
    #![proptest_config(config(96))]

    /// Arbitrary and mutated protobuf: a status, never a panic; and the
    /// decoded-size walk accepts whatever prost accepts.
    #[test]
    fn protobuf_bodies_get_a_status_and_the_walk_agrees_with_prost(
        request in request(),
        edits in edits(),
        noise in proptest::collection::vec(any::<u8>(), 0..300),
        pick in 0u8..3,
    ) {
        let body = match pick {
            0 => noise,
            1 => apply(request.encode_to_vec(), &edits),
            _ => request.encode_to_vec(),
        };
        if ExportTraceServiceRequest::decode(Bytes::from(body.clone())).is_ok() {
            prop_assert!(proto_cost(&body, &REQUEST).is_ok(), "the walk refused a body prost decodes");
        }
        let rt = runtime();
        let (receiver, _) = receiver();
        let status = post(&rt, &receiver, "application/x-protobuf", body);
        prop_assert!(OK_OR_REFUSED.contains(&status), "{status}");
        if pick == 2 {
            prop_assert_eq!(status, StatusCode::OK);
        }
        prop_assert_eq!(receiver.front().available(), Limits::default().max_inflight_bytes);
    }

    /// JSON built from OTLP's field names, and arbitrary bytes, as OTLP/JSON.
    #[test]
    fn json_bodies_get_a_status(value in otlp_json(), noise in proptest::collection::vec(any::<u8>(), 0..200)) {
        let rt = runtime();
        let (receiver, _) = receiver();
        for body in [serde_json::to_vec(&value).expect("JSON"), noise] {
            let status = post(&rt, &receiver, "application/json", body);
            prop_assert!(OK_OR_REFUSED.contains(&status), "{status}");
        }
    }

    /// The same request as protobuf and as OTLP/JSON gives the same spans.
    #[test]
    fn protobuf_and_json_of_one_request_decode_alike(request in request()) {
        let rt = runtime();
        let (receiver, keep) = receiver();
        prop_assert_eq!(post(&rt, &receiver, "application/x-protobuf", request.encode_to_vec()), StatusCode::OK);
        let json = serde_json::to_vec(&request).expect("JSON");
        prop_assert_eq!(post(&rt, &receiver, "application/json", json), StatusCode::OK);
        let batches = keep.0.lock().expect("lock").clone();
        let spans: Vec<_> = batches.iter().map(|b| b.spans().to_vec()).collect();
        match spans.as_slice() {
            [] => {}
            [from_protobuf, from_json] => prop_assert_eq!(from_protobuf, from_json),
            other => prop_assert!(false, "{} batches", other.len()),
        }
    }
}
