//! Jaeger API v3 over HTTP/JSON (`/api/v3/*`), as Jaeger's
//! `apiv3/http_gateway.go` and `query_parser.go` define it: what current
//! Jaeger UI uses for its service and operation lists and its search.
//!
//! Parameters are the canonical camelCase names (`query.serviceName`,
//! `startTime`) with the older snake_case spellings accepted; times are
//! RFC 3339, durations Go durations. Traces are OTLP/JSON in
//! `{"result": {"resourceSpans": […]}}`; a lookup that finds nothing is a 404
//! `{"error":{"httpCode":404,"message":"No traces found"}}`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery};
use axum::response::Response;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde::Serialize;
use sightline_model::{Span, SpanKind, TagFilter, TraceQuery, otlp};

use crate::adjust::{Adjusted, MAX_CLOCK_SKEW_ADJUST_NANOS};
use crate::duration::parse_go_duration;
use crate::error::{ApiError, V3Error};
use crate::ids::parse_trace_id;
use crate::otlp_json::{Dialect, TracesData};
use crate::params::{Params, go_parse_bool};
use crate::query::read_trace;
use crate::render::json;
use crate::scope::Scoped;
use crate::summary::summarize;
use crate::timestamp::{parse_rfc3339, to_unix_nanos};

/// Traces a search returns without `query.searchDepth`: Jaeger's
/// `defaultSearchDepth`.
const DEFAULT_SEARCH_DEPTH: usize = 100;

/// The span attribute Jaeger carries adjuster warnings in, in OTLP.
const WARNINGS_ATTRIBUTE: &str = "@jaeger@warnings";

/// The value of the canonical parameter, else of its older spelling, with
/// the name that supplied it (for error messages).
fn param<'p>(
    params: &'p Params<'_>,
    canonical: &'static str,
    older: &'static str,
) -> (Option<&'p str>, &'static str) {
    match params.get(canonical) {
        Some(v) => (Some(v), canonical),
        None => (params.get(older), older),
    }
}

fn malformed(name: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("malformed parameter {name}: {why}"))
}

fn rfc3339(
    params: &Params<'_>,
    canonical: &'static str,
    older: &'static str,
) -> Result<Option<u64>, ApiError> {
    match param(params, canonical, older) {
        (None, _) => Ok(None),
        (Some(text), name) => {
            parse_rfc3339(text).map(|ns| Some(to_unix_nanos(ns))).map_err(|e| malformed(name, e))
        }
    }
}

fn boolean(params: &Params<'_>, canonical: &'static str, older: &'static str) -> Result<bool, ApiError> {
    match param(params, canonical, older) {
        (None, _) => Ok(false),
        (Some(text), name) => go_parse_bool(text)
            .ok_or_else(|| malformed(name, format!("strconv.ParseBool: parsing {text:?}: invalid syntax"))),
    }
}

/// A Go duration as an optional bound: zero or negative is no bound.
fn duration(
    params: &Params<'_>,
    canonical: &'static str,
    older: &'static str,
) -> Result<Option<u64>, ApiError> {
    match param(params, canonical, older) {
        (None, _) => Ok(None),
        (Some(text), name) => {
            let nanos = parse_go_duration(text).map_err(|e| malformed(name, e))?;
            Ok(u64::try_from(nanos).ok().filter(|n| *n > 0))
        }
    }
}

/// A parsed `/api/v3/traces` or `/api/v3/trace-summaries` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FindQuery {
    pub query: TraceQuery,
    pub raw: bool,
}

/// Jaeger's `parseFindTracesQuery`, in its order and words. Both time
/// bounds are required; the service is not (Sightline can search all).
pub(crate) fn find_query(params: &Params<'_>) -> Result<FindQuery, ApiError> {
    let service = param(params, "query.serviceName", "query.service_name").0.map(str::to_owned);
    let operation = param(params, "query.operationName", "query.operation_name").0.map(str::to_owned);
    let mut tags = Vec::new();
    if let Some(json) = params.get("query.attributes") {
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_str(json).map_err(|e| malformed("query.attributes", e))?;
        tags = map.into_iter().map(|(key, value)| TagFilter { key, value }).collect();
    }
    if params.get("query.filter").is_some() {
        return Err(malformed("query.filter", "structured filters are not supported; use query.attributes"));
    }
    let (min, max) = match (
        param(params, "query.startTimeMin", "query.start_time_min"),
        param(params, "query.startTimeMax", "query.start_time_max"),
    ) {
        ((Some(min), min_name), (Some(max), max_name)) => (
            parse_rfc3339(min).map_err(|e| malformed(min_name, e))?,
            parse_rfc3339(max).map_err(|e| malformed(max_name, e))?,
        ),
        _ => {
            return Err(ApiError::BadRequest(
                "query.startTimeMin and query.startTimeMax are required".to_owned(),
            ));
        }
    };
    if min >= max {
        return Err(ApiError::BadRequest("query.startTimeMin must be before query.startTimeMax".to_owned()));
    }
    let depth = match param(params, "query.searchDepth", "query.search_depth") {
        (Some(v), name) => Some((v, name)),
        (None, _) => params.get("query.num_traces").map(|v| (v, "query.num_traces")),
    };
    let limit = match depth {
        None => DEFAULT_SEARCH_DEPTH,
        Some((text, name)) => {
            let n: i64 = text
                .parse()
                .map_err(|_| malformed(name, format!("strconv.Atoi: parsing {text:?}: invalid syntax")))?;
            // Jaeger's gRPC API reads zero or less as the default.
            usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(DEFAULT_SEARCH_DEPTH)
        }
    };
    let min_duration_nanos = duration(params, "query.durationMin", "query.duration_min")?;
    let max_duration_nanos = duration(params, "query.durationMax", "query.duration_max")?;
    let raw = boolean(params, "query.rawTraces", "query.raw_traces")?;
    Ok(FindQuery {
        query: TraceQuery {
            service,
            operation,
            tags,
            min_duration_nanos,
            max_duration_nanos,
            start_min_unix_nanos: Some(to_unix_nanos(min)),
            start_max_unix_nanos: Some(to_unix_nanos(max)),
            limit,
        },
        raw,
    })
}

fn parse(raw: &Option<String>) -> Params<'_> {
    Params::parse(raw.as_deref().unwrap_or(""))
}

#[derive(Serialize)]
struct Services<'a> {
    services: &'a [String],
}

/// `GET /api/v3/services`: `{"services": […]}`.
pub(crate) async fn services(state: Scoped) -> Result<Response, V3Error> {
    let services = state.reader.services().await?;
    Ok(json(&Services { services: &services }, false)?)
}

#[derive(Serialize)]
struct Operations<'a> {
    operations: Vec<Operation<'a>>,
}

#[derive(Serialize)]
struct Operation<'a> {
    name: &'a str,
    #[serde(rename = "spanKind")]
    span_kind: &'static str,
}

/// `GET /api/v3/operations?service=&spanKind=`: `{"operations": [{name,
/// spanKind}]}`. As Jaeger's gateway does, an operation of unspecified kind
/// is listed as `internal`; a kind no span has finds nothing.
pub(crate) async fn operations(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, V3Error> {
    let params = parse(&raw);
    let service = params.get("service").unwrap_or("");
    let operations = match param(&params, "spanKind", "span_kind").0.map(SpanKind::from_jaeger_name) {
        Some(None) => Vec::new(),
        Some(Some(kind)) => state.reader.operations(service, Some(kind)).await?,
        None => state.reader.operations(service, None).await?,
    };
    let operations = operations
        .iter()
        .map(|op| Operation {
            name: &op.name,
            span_kind: match op.kind {
                SpanKind::Unspecified => SpanKind::Internal.jaeger_name(),
                kind => kind.jaeger_name(),
            },
        })
        .collect();
    Ok(json(&Operations { operations }, false)?)
}

#[derive(Serialize)]
struct Result_<'a> {
    result: TracesData<'a>,
}

/// Traces as one OTLP `TracesData`, each span carrying its adjuster
/// warnings in `@jaeger@warnings` as Jaeger's do.
fn resource_spans(traces: &[Adjusted]) -> Vec<ResourceSpans> {
    let mut out = Vec::new();
    for trace in traces {
        let mut request = otlp::encode_spans(&trace.spans);
        // `encode_spans` keeps span order, so the n-th encoded span is the
        // n-th span.
        let encoded = request
            .resource_spans
            .iter_mut()
            .flat_map(|rs| rs.scope_spans.iter_mut())
            .flat_map(|ss| ss.spans.iter_mut());
        for (span, warnings) in encoded.zip(&trace.warnings) {
            if warnings.is_empty() {
                continue;
            }
            let values = warnings
                .iter()
                .map(|w| AnyValue { value: Some(any_value::Value::StringValue(w.clone())) })
                .collect();
            span.attributes.push(KeyValue {
                key: WARNINGS_ATTRIBUTE.to_owned(),
                value: Some(AnyValue { value: Some(any_value::Value::ArrayValue(ArrayValue { values })) }),
                key_strindex: 0,
            });
        }
        out.extend(request.resource_spans);
    }
    out
}

fn adjusted(spans: Vec<Span>, raw: bool) -> Adjusted {
    if raw { Adjusted::raw(spans) } else { Adjusted::new(spans, MAX_CLOCK_SKEW_ADJUST_NANOS) }
}

fn traces_response(traces: &[Adjusted]) -> Result<Response, V3Error> {
    if traces.is_empty() {
        return Err(V3Error(ApiError::TraceNotFound));
    }
    let resource_spans = resource_spans(traces);
    Ok(json(
        &Result_ { result: TracesData { resource_spans: &resource_spans, dialect: Dialect::Otlp } },
        false,
    )?)
}

/// `GET /api/v3/traces/{trace_id}?startTime=&endTime=&rawTraces=`: one
/// trace (hex or base64 id). The times are checked but, as on the v1
/// route, never hide a stored trace.
pub(crate) async fn trace(
    state: Scoped,
    id: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, V3Error> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let id = parse_trace_id(&id).map_err(|e| malformed("trace_id", e))?;
    let params = parse(&raw);
    rfc3339(&params, "startTime", "start_time")?;
    rfc3339(&params, "endTime", "end_time")?;
    let raw_traces = boolean(&params, "rawTraces", "raw_traces")?;
    let traces: Vec<Adjusted> =
        read_trace(&state, id).await?.map(|s| adjusted(s, raw_traces)).into_iter().collect();
    traces_response(&traces)
}

/// `GET /api/v3/traces?query.…`: the matching traces in one `TracesData`.
pub(crate) async fn find_traces(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, V3Error> {
    let find = find_query(&parse(&raw))?;
    let traces = state.reader.find_traces(&find.query).await?;
    let traces: Vec<Adjusted> = traces.into_iter().map(|spans| adjusted(spans, find.raw)).collect();
    traces_response(&traces)
}

#[derive(Serialize)]
struct Summaries<'a> {
    summaries: Vec<TraceSummary<'a>>,
}

/// Jaeger's `TraceSummary` as `jsonpb` writes it: zero counts left out,
/// 64-bit times as strings.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceSummary<'a> {
    trace_id: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    root_service_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    root_operation_name: &'a str,
    min_start_time_unix_nano: String,
    max_end_time_unix_nano: String,
    #[serde(skip_serializing_if = "is_zero")]
    span_count: usize,
    #[serde(skip_serializing_if = "is_zero")]
    error_span_count: usize,
    #[serde(skip_serializing_if = "is_zero")]
    orphan_span_count: usize,
    services: Vec<ServiceSummary<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceSummary<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    span_count: usize,
    #[serde(skip_serializing_if = "is_zero")]
    error_span_count: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// `GET /api/v3/trace-summaries?query.…`: `{"summaries": […]}`, one per
/// matching trace, computed after Jaeger's adjusters as Jaeger computes
/// them (`rawTraces` has no effect here).
pub(crate) async fn trace_summaries(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, V3Error> {
    let find = find_query(&parse(&raw))?;
    let traces = state.reader.find_traces(&find.query).await?;
    let traces: Vec<Adjusted> = traces.into_iter().map(|spans| adjusted(spans, false)).collect();
    let summaries = traces
        .iter()
        .filter_map(|t| summarize(&t.spans))
        .map(|s| TraceSummary {
            trace_id: s.trace_id.to_hex(),
            root_service_name: s.root.map_or("", |r| r.service_name()),
            root_operation_name: s.root.map_or("", |r| r.name.as_str()),
            min_start_time_unix_nano: s.min_start.to_string(),
            max_end_time_unix_nano: s.max_end.to_string(),
            span_count: s.span_count,
            error_span_count: s.error_span_count,
            orphan_span_count: s.orphan_span_count,
            services: s
                .services
                .iter()
                .map(|svc| ServiceSummary {
                    name: svc.name,
                    span_count: svc.span_count,
                    error_span_count: svc.error_span_count,
                })
                .collect(),
        })
        .collect();
    Ok(json(&Summaries { summaries }, false)?)
}
