//! One JSON line → one log record, in the shape of seed 002's JSON sink
//! (`timestamp`, `level`, `service`, `message`, `trace_id`, `span_id`,
//! `exception`; the names configurable). Other members become attributes.
//! A line that is not a JSON object is kept as a plain-text body (as the
//! Collector's `json_parser` sends entries it cannot parse) and counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;
use sightline_model::{KeyValue, LogRecord, Resource, Scope, SpanId, TraceId, Value};

/// Which JSON member holds what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// RFC 3339 text (`2026-01-02T03:04:05.123456Z`, offsets allowed) or
    /// a number of seconds, milliseconds, microseconds or nanoseconds
    /// since the epoch (told apart by magnitude).
    pub timestamp: String,
    /// Level name: `TRACE`, `DEBUG`, `INFO`, `WARNING`/`WARN`, `ERROR`,
    /// `CRITICAL`/`FATAL` (any case) → OTLP severity numbers.
    pub level: String,
    /// The service: the record's resource `service.name`.
    pub service: String,
    /// The body.
    pub message: String,
    /// 32 hex digits; all zeros means none.
    pub trace_id: String,
    /// 16 hex digits; all zeros means none.
    pub span_id: String,
    /// Becomes the `exception.stacktrace` attribute.
    pub exception: String,
}

impl Default for Fields {
    fn default() -> Self {
        Fields {
            timestamp: "timestamp".into(),
            level: "level".into(),
            service: "service".into(),
            message: "message".into(),
            trace_id: "trace_id".into(),
            span_id: "span_id".into(),
            exception: "exception".into(),
        }
    }
}

/// How a line was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A JSON object.
    Json,
    /// Not a JSON object: kept as text.
    Text,
}

/// Turns lines into records, sharing one resource per service.
pub(crate) struct Parser<'a> {
    fields: &'a Fields,
    default_service: &'a str,
    scope: Arc<Scope>,
    resources: HashMap<String, Arc<Resource>>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(fields: &'a Fields, default_service: &'a str) -> Parser<'a> {
        let scope = Arc::new(Scope {
            name: "sightline.filelog".into(),
            version: String::new(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            schema_url: String::new(),
        });
        Parser { fields, default_service, scope, resources: HashMap::new() }
    }

    fn resource(&mut self, service: &str) -> Arc<Resource> {
        if let Some(r) = self.resources.get(service) {
            return Arc::clone(r);
        }
        let r = Arc::new(Resource::new(vec![KeyValue::new("service.name", service)], 0, String::new()));
        self.resources.insert(service.to_owned(), Arc::clone(&r));
        r
    }

    /// The record for `line` (without its newline) read from `file`.
    pub(crate) fn parse(&mut self, line: &[u8], file: &str) -> (LogRecord, Parsed) {
        let observed = now_nanos();
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let object = match serde_json::from_str::<Json>(text) {
            Ok(Json::Object(map)) => Some(map),
            _ => None,
        };
        let Some(mut map) = object else {
            let record = LogRecord {
                time_unix_nano: 0,
                observed_time_unix_nano: observed,
                severity_number: 0,
                severity_text: String::new(),
                body: Value::Str(text.into()),
                attributes: vec![KeyValue::new("log.file.name", file)],
                dropped_attributes_count: 0,
                flags: 0,
                trace_id: None,
                span_id: None,
                event_name: String::new(),
                resource: self.resource(self.default_service),
                scope: Arc::clone(&self.scope),
            };
            return (record, Parsed::Text);
        };
        let f = self.fields;
        let mut take_str = |key: &str| match map.remove(key) {
            Some(Json::String(s)) => Some(s),
            Some(Json::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        let level = take_str(&f.level).unwrap_or_default();
        let service = take_str(&f.service).unwrap_or_else(|| self.default_service.to_owned());
        let message = take_str(&f.message);
        let trace_id = take_str(&f.trace_id).and_then(|s| s.parse::<TraceId>().ok());
        let span_id = take_str(&f.span_id).and_then(|s| s.parse::<SpanId>().ok());
        let exception = take_str(&f.exception);
        let time = map.remove(&f.timestamp).and_then(|t| timestamp(&t)).unwrap_or(0);
        let mut attributes = vec![KeyValue::new("log.file.name", file)];
        if let Some(e) = exception {
            attributes.push(KeyValue::new("exception.stacktrace", e));
        }
        attributes.extend(map.into_iter().map(|(k, v)| KeyValue { key: k.into(), value: value(v) }));
        let record = LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: observed,
            severity_number: severity(&level),
            severity_text: level,
            body: message.map_or(Value::Empty, Value::from),
            attributes,
            dropped_attributes_count: 0,
            flags: u32::from(trace_id.is_some() && span_id.is_some()),
            trace_id,
            span_id,
            event_name: String::new(),
            resource: self.resource(&service),
            scope: Arc::clone(&self.scope),
        };
        (record, Parsed::Json)
    }
}

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
}

/// OTLP severity numbers for the usual level names (Python, loguru, Rust,
/// log4j); unknown names are 0 (unspecified).
pub(crate) fn severity(level: &str) -> i32 {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" | "SUCCESS" | "NOTICE" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" | "ERR" => 17,
        "CRITICAL" | "FATAL" | "PANIC" | "ALERT" | "EMERGENCY" => 21,
        _ => 0,
    }
}

/// ns since the epoch from RFC 3339 text or an epoch number.
pub(crate) fn timestamp(v: &Json) -> Option<u64> {
    match v {
        Json::Number(n) => {
            let x = n.as_f64()?;
            if !x.is_finite() || x <= 0.0 {
                return None;
            }
            // Seconds until ~2286 are < 1e10; milliseconds < 1e13; µs < 1e16.
            let ns = if x < 1e10 {
                x * 1e9
            } else if x < 1e13 {
                x * 1e6
            } else if x < 1e16 {
                x * 1e3
            } else {
                x
            };
            Some(ns as u64)
        }
        Json::String(s) => rfc3339(s),
        _ => None,
    }
}

/// RFC 3339 with `Z`, a `±HH:MM` offset or none (taken as UTC).
fn rfc3339(s: &str) -> Option<u64> {
    let s = s.trim();
    let (base, offset_secs) = match s.len().checked_sub(6).and_then(|i| s.get(i..).map(|tail| (i, tail))) {
        Some((i, tail))
            if i > 10
                && (tail.starts_with('+') || tail.starts_with('-'))
                && tail.as_bytes().get(3) == Some(&b':') =>
        {
            let hours: i64 = tail.get(1..3)?.parse().ok()?;
            let minutes: i64 = tail.get(4..6)?.parse().ok()?;
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            (s.get(..i)?, sign * (hours * 3600 + minutes * 60))
        }
        _ => (s.trim_end_matches(['Z', 'z']), 0),
    };
    let t = humantime::parse_rfc3339_weak(base).ok()?;
    let ns = i128::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()?;
    u64::try_from(ns - i128::from(offset_secs) * 1_000_000_000).ok()
}

fn value(v: Json) -> Value {
    match v {
        Json::Null => Value::Empty,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => {
            n.as_i64().map_or_else(|| Value::Double(n.as_f64().unwrap_or(f64::NAN)), Value::Int)
        }
        Json::String(s) => Value::from(s),
        Json::Array(a) => Value::Array(a.into_iter().map(value).collect()),
        Json::Object(m) => {
            Value::Map(m.into_iter().map(|(k, v)| KeyValue { key: k.into(), value: value(v) }).collect())
        }
    }
}
