//! OTLP/JSON encoding of the values Parquet columns do not hold directly:
//! nested attribute values (arrays, maps) and the per-block resource and
//! scope tables.
//!
//! OTLP/JSON is what other tools already parse, and it is lossless when
//! written carefully: 64-bit integers and doubles are JSON strings (proto3
//! JSON allows both), so no JSON number parser can round them.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value as J, json};
use sightline_model::{KeyValue, Resource, Scope, Value};

/// One OTLP/JSON `AnyValue`.
pub(crate) fn value_to_json(v: &Value) -> J {
    match v {
        Value::Empty => J::Object(Map::new()),
        Value::Str(s) => json!({ "stringValue": s }),
        Value::Bool(b) => json!({ "boolValue": b }),
        Value::Int(i) => json!({ "intValue": i.to_string() }),
        Value::Double(d) => json!({ "doubleValue": double_text(*d) }),
        Value::Bytes(b) => json!({ "bytesValue": base64::engine::general_purpose::STANDARD.encode(b) }),
        Value::Array(items) => {
            json!({ "arrayValue": { "values": items.iter().map(value_to_json).collect::<Vec<_>>() } })
        }
        Value::Map(kvs) => json!({ "kvlistValue": { "values": kvs_to_json(kvs) } }),
    }
}

/// Proto3 JSON text of a double: shortest round-trip decimal, or one of
/// the special strings.
fn double_text(d: f64) -> String {
    if d.is_nan() {
        "NaN".to_owned()
    } else if d.is_infinite() {
        if d > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        // `Display` for f64 prints the shortest text that parses back to
        // the same bits (and "-0" for negative zero).
        d.to_string()
    }
}

fn parse_double(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => text.parse::<f64>().map_err(|_| format!("bad doubleValue {text:?}")),
    }
}

/// An OTLP/JSON list of `KeyValue`s.
pub(crate) fn kvs_to_json(kvs: &[KeyValue]) -> J {
    J::Array(kvs.iter().map(|kv| json!({ "key": kv.key, "value": value_to_json(&kv.value) })).collect())
}

/// Text stored in the `str` field for an array value: its OTLP/JSON
/// `values` list.
pub(crate) fn array_text(items: &[Value]) -> String {
    J::Array(items.iter().map(value_to_json).collect()).to_string()
}

/// Text stored in the `str` field for a map value: its OTLP/JSON
/// key-value list.
pub(crate) fn map_text(kvs: &[KeyValue]) -> String {
    kvs_to_json(kvs).to_string()
}

/// Parses [`array_text`].
pub(crate) fn array_from_text(text: &str) -> Result<Vec<Value>, String> {
    let j: J = serde_json::from_str(text).map_err(|e| format!("array value: {e}"))?;
    let J::Array(items) = j else { return Err("array value is not a JSON array".to_owned()) };
    items.iter().map(value_from_json).collect()
}

/// Parses [`map_text`].
pub(crate) fn map_from_text(text: &str) -> Result<Vec<KeyValue>, String> {
    let j: J = serde_json::from_str(text).map_err(|e| format!("map value: {e}"))?;
    kvs_from_json(&j)
}

/// Parses an OTLP/JSON `AnyValue`.
pub(crate) fn value_from_json(j: &J) -> Result<Value, String> {
    let J::Object(obj) = j else { return Err(format!("AnyValue is not an object: {j}")) };
    let mut fields = obj.iter();
    let Some((name, inner)) = fields.next() else { return Ok(Value::Empty) };
    if fields.next().is_some() {
        return Err(format!("AnyValue has more than one field: {j}"));
    }
    let bad = || format!("bad {name}: {inner}");
    Ok(match name.as_str() {
        "stringValue" => Value::Str(inner.as_str().ok_or_else(bad)?.into()),
        "boolValue" => Value::Bool(inner.as_bool().ok_or_else(bad)?),
        "intValue" => Value::Int(inner.as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?),
        "doubleValue" => Value::Double(parse_double(inner.as_str().ok_or_else(bad)?)?),
        "bytesValue" => Value::Bytes(
            inner
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .ok_or_else(bad)?,
        ),
        "arrayValue" => Value::Array(
            inner
                .get("values")
                .and_then(J::as_array)
                .ok_or_else(bad)?
                .iter()
                .map(value_from_json)
                .collect::<Result<_, _>>()?,
        ),
        "kvlistValue" => Value::Map(kvs_from_json(inner.get("values").ok_or_else(bad)?)?),
        _ => return Err(format!("unknown AnyValue field {name:?}")),
    })
}

/// Parses an OTLP/JSON list of `KeyValue`s.
pub(crate) fn kvs_from_json(j: &J) -> Result<Vec<KeyValue>, String> {
    let J::Array(items) = j else { return Err(format!("key-value list is not an array: {j}")) };
    items
        .iter()
        .map(|item| {
            let key =
                item.get("key").and_then(J::as_str).ok_or_else(|| format!("KeyValue without key: {item}"))?;
            let value = match item.get("value") {
                Some(v) => value_from_json(v)?,
                None => Value::Empty,
            };
            Ok(KeyValue { key: key.into(), value })
        })
        .collect()
}

/// One entry of the resource table.
pub(crate) fn resource_to_json(r: &Resource) -> J {
    json!({
        "attributes": kvs_to_json(r.attributes()),
        "droppedAttributesCount": r.dropped_attributes_count(),
        "schemaUrl": r.schema_url(),
    })
}

/// One entry of the scope table.
pub(crate) fn scope_to_json(s: &Scope) -> J {
    json!({
        "name": s.name,
        "version": s.version,
        "attributes": kvs_to_json(&s.attributes),
        "droppedAttributesCount": s.dropped_attributes_count,
        "schemaUrl": s.schema_url,
    })
}

fn str_field<'a>(j: &'a J, name: &str) -> Result<&'a str, String> {
    j.get(name).and_then(J::as_str).ok_or_else(|| format!("missing string field {name:?}"))
}

fn u32_field(j: &J, name: &str) -> Result<u32, String> {
    j.get(name)
        .and_then(J::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("missing or bad u32 field {name:?}"))
}

fn kvs_field(j: &J) -> Result<Vec<KeyValue>, String> {
    kvs_from_json(j.get("attributes").ok_or("missing field \"attributes\"")?)
}

/// Parses the resource table.
pub(crate) fn resources_from_json(text: &str) -> Result<Vec<Arc<Resource>>, String> {
    let j: J = serde_json::from_str(text).map_err(|e| format!("resource table: {e}"))?;
    let J::Array(items) = j else { return Err("resource table is not an array".to_owned()) };
    items
        .iter()
        .map(|r| {
            Ok(Arc::new(Resource::new(
                kvs_field(r)?,
                u32_field(r, "droppedAttributesCount")?,
                str_field(r, "schemaUrl")?.to_owned(),
            )))
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("resource table: {e}"))
}

/// Parses the scope table.
pub(crate) fn scopes_from_json(text: &str) -> Result<Vec<Arc<Scope>>, String> {
    let j: J = serde_json::from_str(text).map_err(|e| format!("scope table: {e}"))?;
    let J::Array(items) = j else { return Err("scope table is not an array".to_owned()) };
    items
        .iter()
        .map(|s| {
            Ok(Arc::new(Scope {
                name: str_field(s, "name")?.to_owned(),
                version: str_field(s, "version")?.to_owned(),
                attributes: kvs_field(s)?,
                dropped_attributes_count: u32_field(s, "droppedAttributesCount")?,
                schema_url: str_field(s, "schemaUrl")?.to_owned(),
            }))
        })
        .collect::<Result<_, String>>()
        .map_err(|e| format!("scope table: {e}"))
}
