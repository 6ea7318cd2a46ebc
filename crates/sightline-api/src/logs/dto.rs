//! The logs API's JSON: a record as the UI shows it (times in µs like
//! Jaeger's span times, ids in hex, attributes as objects).

use serde::Serialize;
use serde_json::{Map, Value as J};
use sightline_model::{KeyValue, LogPage, LogRecord};

use super::params::format_cursor;

/// `/api/logs`' body.
#[derive(Serialize)]
pub(crate) struct Page<'a> {
    data: Vec<Record<'a>>,
    total: usize,
    limit: usize,
    /// Pass as `cursor=` for the next page; `null` on the last page.
    next: Option<String>,
    errors: Option<Vec<String>>,
    warnings: Option<&'a [String]>,
}

impl<'a> Page<'a> {
    pub(crate) fn new(page: &'a LogPage, limit: usize) -> Page<'a> {
        Page {
            data: page.records.iter().map(Record::new).collect(),
            total: page.records.len(),
            limit,
            next: page.next.as_ref().map(format_cursor),
            errors: None,
            warnings: (!page.warnings.is_empty()).then_some(page.warnings.as_slice()),
        }
    }
}

/// One record.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record<'a> {
    /// µs since the epoch: the record's time, or its observed time when it
    /// has none.
    timestamp: u64,
    /// µs since the epoch; 0 when unknown.
    observed_timestamp: u64,
    severity_text: &'a str,
    severity_number: i32,
    /// A string, or JSON for structured bodies; `null` when absent.
    body: J,
    /// 32 hex digits, or `null`.
    #[serde(rename = "traceID")]
    trace_id: Option<String>,
    /// 16 hex digits, or `null`.
    #[serde(rename = "spanID")]
    span_id: Option<String>,
    service: &'a str,
    attributes: Map<String, J>,
    resource: Map<String, J>,
    scope: Scope<'a>,
    /// The OTLP event name; empty for plain log lines.
    event_name: &'a str,
}

#[derive(Serialize)]
struct Scope<'a> {
    name: &'a str,
    version: &'a str,
}

impl<'a> Record<'a> {
    pub(crate) fn new(r: &'a LogRecord) -> Record<'a> {
        Record {
            timestamp: r.timestamp() / 1000,
            observed_timestamp: r.observed_time_unix_nano / 1000,
            severity_text: &r.severity_text,
            severity_number: r.severity_number,
            body: r.body.to_json(),
            trace_id: r.trace_id.map(|t| t.to_hex()),
            span_id: r.span_id.map(|s| s.to_hex()),
            service: r.service_name(),
            attributes: object(&r.attributes),
            resource: object(r.resource.attributes()),
            scope: Scope { name: &r.scope.name, version: &r.scope.version },
            event_name: &r.event_name,
        }
    }
}

fn object(kvs: &[KeyValue]) -> Map<String, J> {
    kvs.iter().map(|kv| (kv.key.as_str().to_owned(), kv.value.to_json())).collect()
}
