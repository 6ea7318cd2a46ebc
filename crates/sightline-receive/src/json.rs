//! OTLP/JSON, for every signal: the gaps opentelemetry-proto's serde
//! leaves, and the JSON responses written by hand.
//!
//! The generated serde code already handles hex ids, int64 as strings or
//! numbers, integer enums and unknown fields. What it does not handle is
//! what proto3 JSON parsers must accept besides lowerCamelCase: `null` as
//! "default" and the original snake_case field names. Rather than fork the
//! generated types, the body is parsed into a [`serde_json::Value`], a
//! schema-aware pre-pass renames snake_case keys, drops nulls and turns
//! enum names (`SPAN_KIND_SERVER`, `SEVERITY_NUMBER_INFO`,
//! `AGGREGATION_TEMPORALITY_DELTA`, `STATUS_CODE_ERROR`) into their
//! numbers, and the
//! result is deserialized with a path-tracking deserializer so an error
//! names the offending field (`resourceSpans[0]…traceId`). In OTLP every
//! JSON object key is a field name (attribute keys are string values), so
//! renaming object keys never touches user data.

use std::time::Duration;

use opentelemetry_proto::tonic::logs::v1::SeverityNumber;
use opentelemetry_proto::tonic::metrics::v1::AggregationTemporality;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::front::cost::json_shape;
use crate::front::{Claim, Failure};
use crate::ingest::{ARRAY_ELEMENT, KEY_VALUE, MESSAGE_BYTES};

/// The deepest JSON nesting accepted. Protobuf decoding stops at 100
/// nested messages, and OTLP/JSON spends at most two levels (an object and
/// the array around it) per message, so everything protobuf accepts —
/// kvlists 30 deep included — is accepted here too. Recursion this deep
/// stays far inside a worker thread's 2 MiB stack.
pub(crate) const MAX_DEPTH: usize = 256;

/// Decodes an OTLP/JSON `Export*ServiceRequest`; the error says what is
/// wrong and where (line:column for syntax, a field path for content).
///
/// Memory is charged to `claim` in two steps before it is taken: the
/// `serde_json::Value` tree, from the text's shape, then the request and
/// model structs, from the objects counted by kind while normalizing.
pub(crate) fn decode_request<T: DeserializeOwned + Default>(
    body: &[u8],
    claim: &mut Claim,
) -> Result<T, Failure> {
    if body.is_empty() {
        // An empty body carries no telemetry, which OTLP answers with success.
        return Ok(T::default());
    }
    let shape =
        json_shape(body, MAX_DEPTH).map_err(|e| Failure::bad_request(format!("invalid JSON: {e}")))?;
    claim.grow(shape.value_tree_bytes(body.len()))?;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // The shape check bounded the depth; serde_json's own limit (128) would
    // refuse nesting protobuf accepts.
    deserializer.disable_recursion_limit();
    let mut value = Value::deserialize(&mut deserializer)
        .and_then(|v| deserializer.end().map(|()| v))
        .map_err(|e| Failure::bad_request(format!("invalid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Failure::bad_request(
            "invalid OTLP/JSON: the body must be a JSON object (an export request)",
        ));
    }
    let mut counts = Counts::default();
    normalize(&mut value, Ctx::Message, &mut counts);
    claim.grow(counts.bytes())?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        Failure::bad_request(if path == "." {
            format!("invalid OTLP/JSON: {}", e.inner())
        } else {
            format!("invalid OTLP/JSON at {path}: {}", e.inner())
        })
    })
}

/// Objects by kind, for the memory their decoded forms take.
#[derive(Debug, Default)]
struct Counts {
    messages: usize,
    key_values: usize,
    any_values: usize,
}

impl Counts {
    fn bytes(&self) -> usize {
        self.messages
            .saturating_mul(MESSAGE_BYTES)
            .saturating_add(self.key_values.saturating_mul(KEY_VALUE.bytes))
            .saturating_add(self.any_values.saturating_mul(ARRAY_ELEMENT.bytes))
    }
}

/// Which OTLP message an object is, where it matters to the pre-pass: the
/// generated types of these four require fields proto3 makes optional.
#[derive(Debug, Clone, Copy)]
enum Ctx {
    Message,
    KeyValue,
    AnyValue,
    ArrayValue,
    KvList,
}

fn normalize(value: &mut Value, ctx: Ctx, counts: &mut Counts) {
    match value {
        Value::Object(map) => normalize_object(map, ctx, counts),
        // Arrays are repeated fields: every element has the field's type.
        Value::Array(items) => items.iter_mut().for_each(|item| normalize(item, ctx, counts)),
        _ => {}
    }
}

fn normalize_object(map: &mut Map<String, Value>, ctx: Ctx, counts: &mut Counts) {
    match ctx {
        Ctx::Message => counts.messages += 1,
        Ctx::KeyValue => counts.key_values += 1,
        Ctx::AnyValue => counts.any_values += 1,
        Ctx::ArrayValue | Ctx::KvList => {}
    }
    if map.keys().any(|k| k.contains('_')) {
        for (key, value) in std::mem::take(map) {
            let key = if key.contains('_') { lower_camel(&key) } else { key };
            // With both spellings present the first one seen wins; such a
            // body is malformed anyway.
            map.entry(key).or_insert(value);
        }
    }
    map.retain(|_, v| !v.is_null());
    for (key, child) in map.iter_mut() {
        if let (Ctx::Message, Value::String(name)) = (ctx, &*child)
            && let Some(n) = enum_number(key, name)
        {
            *child = Value::from(n);
            continue;
        }
        let child_ctx = match (ctx, key.as_str()) {
            (_, "attributes" | "filteredAttributes") | (Ctx::Message, "metadata") => Ctx::KeyValue,
            (Ctx::Message, "body") => Ctx::AnyValue,
            (Ctx::KeyValue, "value") => Ctx::AnyValue,
            (Ctx::AnyValue, "arrayValue") => Ctx::ArrayValue,
            (Ctx::AnyValue, "kvlistValue") => Ctx::KvList,
            (Ctx::ArrayValue, "values") => Ctx::AnyValue,
            (Ctx::KvList, "values") => Ctx::KeyValue,
            _ => Ctx::Message,
        };
        normalize(child, child_ctx, counts);
    }
    match ctx {
        Ctx::KeyValue => {
            map.entry("key").or_insert_with(|| Value::String(String::new()));
        }
        Ctx::ArrayValue | Ctx::KvList => {
            map.entry("values").or_insert_with(|| Value::Array(Vec::new()));
        }
        Ctx::Message | Ctx::AnyValue => {}
    }
}

/// The number of an OTLP enum value given by name, for the enum fields
/// (proto3 JSON parsers accept both; the generated serde only numbers).
fn enum_number(key: &str, name: &str) -> Option<i32> {
    match key {
        "kind" => SpanKind::from_str_name(name).map(|v| v as i32),
        "code" => StatusCode::from_str_name(name).map(|v| v as i32),
        "severityNumber" => SeverityNumber::from_str_name(name).map(|v| v as i32),
        "aggregationTemporality" => AggregationTemporality::from_str_name(name).map(|v| v as i32),
        _ => None,
    }
}

/// `start_time_unix_nano` → `startTimeUnixNano`, as protoc names JSON fields.
pub(crate) fn lower_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The JSON `Export*ServiceResponse`: `{}` on full success, else the
/// partial success with the count (`rejected_key`, e.g. `rejectedSpans`)
/// as a string (proto3 JSON int64).
pub(crate) fn response(rejected: u64, error_message: &str, rejected_key: &str) -> Vec<u8> {
    let body = if rejected == 0 && error_message.is_empty() {
        json!({})
    } else {
        let mut partial = Map::new();
        partial.insert(rejected_key.to_owned(), Value::String(rejected.to_string()));
        partial.insert("errorMessage".to_owned(), Value::String(error_message.to_owned()));
        json!({ "partialSuccess": partial })
    };
    body.to_string().into_bytes()
}

/// A JSON `google.rpc.Status`, with a `RetryInfo` detail when the sender
/// should retry after a delay.
pub(crate) fn status(code: tonic::Code, message: &str, retry_after: Option<Duration>) -> Vec<u8> {
    let mut body = json!({"code": code as i32, "message": message});
    if let (Some(delay), Some(obj)) = (retry_after, body.as_object_mut()) {
        obj.insert(
            "details".to_owned(),
            json!([{
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": duration_json(delay),
            }]),
        );
    }
    body.to_string().into_bytes()
}

/// proto3 JSON for `google.protobuf.Duration`: seconds with an `s` suffix.
fn duration_json(d: Duration) -> String {
    match d.subsec_nanos() {
        0 => format!("{}s", d.as_secs()),
        n => format!("{}.{n:09}s", d.as_secs()),
    }
}
