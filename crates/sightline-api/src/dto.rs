//! The JSON shapes Jaeger's query service serves, as serde structs.
//!
//! Field names, order and `null`-versus-absent choices copy Jaeger's Go
//! structs (`structuredResponse` in `cmd/query/app/http_handler.go`, the UI
//! model in `model/json/model.go`): Jaeger UI and Grafana parse these, and
//! Go's `omitempty` decides which fields may be missing. The trace DTOs borrow
//! from the model spans so a large trace is not copied before serialising.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

/// Jaeger's response envelope: `{"data","total","limit","offset","errors"}`.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope<T> {
    /// The payload, `null` on errors.
    pub data: Option<T>,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    /// `null` unless something went wrong.
    pub errors: Option<Vec<StructuredError>>,
}

impl<T> Envelope<T> {
    /// A successful response.
    pub(crate) fn ok(data: T, total: usize) -> Self {
        Envelope { data: Some(data), total, limit: 0, offset: 0, errors: None }
    }
}

/// One entry of `errors`. `code` and `traceID` are `omitempty` in Jaeger.
#[derive(Debug, Serialize)]
pub(crate) struct StructuredError {
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub code: u16,
    pub msg: String,
    #[serde(rename = "traceID", skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// `/api/operations` entry.
#[derive(Debug, Serialize)]
pub(crate) struct Operation<'a> {
    pub name: &'a str,
    #[serde(rename = "spanKind")]
    pub span_kind: &'static str,
}

/// `/api/dependencies` entry.
#[derive(Debug, Serialize)]
pub(crate) struct DependencyLink<'a> {
    pub parent: &'a str,
    pub child: &'a str,
    #[serde(rename = "callCount")]
    pub call_count: u64,
}

/// A trace as Jaeger UI renders it.
#[derive(Debug, Serialize)]
pub(crate) struct Trace<'a> {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span<'a>>,
    /// Keyed `p1`, `p2`, …; a `BTreeMap` gives Go's sorted map-key order.
    pub processes: BTreeMap<String, Process<'a>>,
    /// `null`, or what a partial answer left out (a peer that did not
    /// answer in time).
    pub warnings: Option<Vec<String>>,
}

/// A span as Jaeger UI renders it.
#[derive(Debug, Serialize)]
pub(crate) struct Span<'a> {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// W3C trace flags; `omitempty` in Jaeger.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub flags: u32,
    #[serde(rename = "operationName")]
    pub operation_name: &'a str,
    pub references: Vec<Reference>,
    /// µs since the Unix epoch.
    #[serde(rename = "startTime")]
    pub start_time: u64,
    /// µs.
    pub duration: u64,
    pub tags: Vec<Tag<'a>>,
    pub logs: Vec<Log<'a>>,
    #[serde(rename = "processID")]
    pub process_id: String,
    /// What the adjusters changed or could not check; `null` when nothing.
    pub warnings: Option<&'a [String]>,
}

/// `CHILD_OF` / `FOLLOWS_FROM` reference.
#[derive(Debug, Serialize)]
pub(crate) struct Reference {
    #[serde(rename = "refType")]
    pub ref_type: RefType,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

/// Jaeger's two reference types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum RefType {
    #[serde(rename = "CHILD_OF")]
    ChildOf,
    #[serde(rename = "FOLLOWS_FROM")]
    FollowsFrom,
}

/// The process (resource) spans came from.
#[derive(Debug, Serialize)]
pub(crate) struct Process<'a> {
    #[serde(rename = "serviceName")]
    pub service_name: &'a str,
    pub tags: Vec<Tag<'a>>,
}

/// A span log (OTLP event).
#[derive(Debug, Serialize)]
pub(crate) struct Log<'a> {
    /// µs since the Unix epoch.
    pub timestamp: u64,
    pub fields: Vec<Tag<'a>>,
}

/// A typed tag: `{"key","type","value"}`.
#[derive(Debug, Serialize)]
pub(crate) struct Tag<'a> {
    pub key: &'a str,
    #[serde(rename = "type")]
    pub kind: TagType,
    pub value: TagValue<'a>,
}

/// Jaeger's value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TagType {
    String,
    Bool,
    Int64,
    Float64,
    Binary,
}

/// A tag value, serialised as the bare JSON scalar.
#[derive(Debug)]
pub(crate) enum TagValue<'a> {
    Str(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Serialize for TagValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TagValue::Str(v) => s.serialize_str(v),
            TagValue::Bool(v) => s.serialize_bool(*v),
            TagValue::Int(v) => s.serialize_i64(*v),
            TagValue::Float(v) => s.serialize_f64(*v),
        }
    }
}

/// A span-metrics answer: Jaeger's `MetricFamily` protobuf as its
/// `jsonpb` marshaler writes it (camelCase names, the `GAUGE` enum by name,
/// empty lists present, `unit` left out when empty).
#[derive(Debug, Serialize)]
pub(crate) struct MetricFamily {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub help: String,
    pub metrics: Vec<Metric>,
}

/// One series of a [`MetricFamily`].
#[derive(Debug, Serialize)]
pub(crate) struct Metric {
    pub labels: Vec<Label>,
    #[serde(rename = "metricPoints")]
    pub metric_points: Vec<MetricPoint>,
}

/// `{"name","value"}`.
#[derive(Debug, Serialize)]
pub(crate) struct Label {
    pub name: String,
    pub value: String,
}

/// A gauge point; `timestamp` is a protobuf `Timestamp` in JSON (RFC 3339,
/// UTC, 0/3/6/9 fractional digits).
#[derive(Debug, Serialize)]
pub(crate) struct MetricPoint {
    #[serde(rename = "gaugeValue")]
    pub gauge_value: GaugeValue,
    pub timestamp: String,
}

/// `{"doubleValue": …}`.
#[derive(Debug, Serialize)]
pub(crate) struct GaugeValue {
    #[serde(rename = "doubleValue", serialize_with = "go_float")]
    pub double_value: f64,
}

/// Writes a float as Go's `encoding/json` does for the usual magnitudes:
/// whole numbers without `.0`.
fn go_float<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// `/health` body.
#[derive(Debug, Serialize)]
pub(crate) struct Health<'a> {
    pub status: &'static str,
    pub checks: Vec<HealthCheck<'a>>,
}

/// One component's entry in `/health`.
#[derive(Debug, Serialize)]
pub(crate) struct HealthCheck<'a> {
    pub name: &'a str,
    pub status: &'static str,
    pub detail: &'a str,
}
