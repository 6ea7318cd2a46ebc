use std::fmt::Write as _;

use base64::Engine as _;
pub use compact_str::CompactString;

/// An attribute value: OTLP's `AnyValue`, owned.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// No value was set (OTLP allows an empty `AnyValue`).
    #[default]
    Empty,
    /// UTF-8 text; up to 24 bytes are held inline, without allocating.
    Str(CompactString),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// A homogeneous or mixed array.
    Array(Vec<Value>),
    /// A nested key/value list.
    Map(Vec<KeyValue>),
}

/// One attribute: a key and its value. Order is kept as received.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValue {
    /// Attribute key, e.g. `http.request.method`; up to 24 bytes are held
    /// inline, without allocating (keys are almost all that short and
    /// repeat in every span).
    pub key: CompactString,
    /// Attribute value.
    pub value: Value,
}

impl KeyValue {
    /// Builds a key/value pair.
    pub fn new(key: impl Into<CompactString>, value: impl Into<Value>) -> Self {
        KeyValue { key: key.into(), value: value.into() }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.into())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v.into())
    }
}
impl From<CompactString> for Value {
    fn from(v: CompactString) -> Self {
        Value::Str(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl Value {
    /// The value as text, the way the OpenTelemetry Collector's `AsString`
    /// renders it: strings as is, numbers in shortest round-trip form, bytes
    /// as base64, arrays and maps as compact JSON. Jaeger tag search compares
    /// against this form.
    pub fn to_text(&self) -> String {
        match self {
            Value::Str(s) => s.as_str().to_owned(),
            _ => {
                let mut out = String::new();
                self.write_text(&mut out);
                out
            }
        }
    }

    /// Appends [`Value::to_text`] to `out` without allocating for scalars.
    pub fn write_text(&self, out: &mut String) {
        match self {
            Value::Empty => {}
            Value::Str(s) => out.push_str(s),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Double(d) => write_double(*d, out),
            Value::Bytes(b) => out.push_str(&base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Array(_) | Value::Map(_) => out.push_str(&self.to_json().to_string()),
        }
    }

    /// Whether [`Value::to_text`] equals `text`, without allocating for
    /// strings, booleans and integers (the common tag-search cases).
    pub fn text_eq(&self, text: &str) -> bool {
        match self {
            Value::Str(s) => s == text,
            Value::Bool(b) => text == if *b { "true" } else { "false" },
            Value::Int(i) => text.parse::<i64>().is_ok_and(|t| t == *i) && !text.starts_with('+'),
            _ => self.to_text() == text,
        }
    }

    /// The value as JSON: scalars as JSON scalars, bytes as base64 text,
    /// arrays as arrays, maps as objects.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Empty => J::Null,
            Value::Str(s) => J::String(s.as_str().to_owned()),
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Double(d) => {
                serde_json::Number::from_f64(*d).map_or_else(|| J::String(d.to_string()), J::Number)
            }
            Value::Bytes(b) => J::String(base64::engine::general_purpose::STANDARD.encode(b)),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(kvs) => {
                J::Object(kvs.iter().map(|kv| (kv.key.as_str().to_owned(), kv.value.to_json())).collect())
            }
        }
    }
}

fn write_double(d: f64, out: &mut String) {
    if d.is_infinite() {
        out.push_str(if d > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{d}");
    }
}
