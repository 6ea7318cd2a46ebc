//! The Tempo HTTP API that Grafana's Tempo data source speaks (Tempo's
//! `pkg/api/http.go`, `modules/frontend` and `cmd/tempo/app`): trace by id
//! (protobuf for Grafana, JSON for the rest), search, tag names and values,
//! `echo` and `buildinfo`.
//!
//! Shapes follow Tempo's: protobuf bodies are `tempopb` messages, JSON is
//! what Go's `jsonpb` writes (camelCase, 64-bit integers as strings,
//! defaults left out; trace ids in search results without leading zeros).
//! Errors are plain text, as Tempo's `http.Error`. The tenancy header
//! `X-Scope-OrgID` (or the token) picks whose data is read, as in Tempo:
//! the auth layer resolves it and every handler reads through
//! [`crate::scope::Scoped`].

mod logfmt;
mod proto;
mod search;
mod tags;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use prost::Message as _;
use serde::Serialize;
use sightline_model::{TraceId, otlp};

use crate::adjust::Adjusted;
use crate::error::{ApiError, TempoError};
use crate::otlp_json::{Dialect, TracesData};
use crate::params::Params;
use crate::query::{path_trace_id, read_trace};
use crate::render::{bytes, json};
use crate::scope::Scoped;

pub(crate) use search::search;
pub(crate) use tags::{tag_values_v1, tag_values_v2, tags_v1, tags_v2};

/// Content type of Tempo's protobuf bodies.
pub(crate) const PROTOBUF: &str = "application/protobuf";

/// Whether the client asks for protobuf: Tempo looks for the media type
/// anywhere in `Accept`.
pub(crate) fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(PROTOBUF))
}

/// `GET /api/echo`: `echo`, Grafana's connection test.
pub(crate) async fn echo() -> Response {
    bytes(StatusCode::OK, "text/plain; charset=utf-8", b"echo\n".to_vec())
}

/// Prometheus' `PrometheusVersion`, which Tempo's buildinfo answers with.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo {
    version: &'static str,
    revision: &'static str,
    branch: &'static str,
    build_user: &'static str,
    build_date: &'static str,
    go_version: &'static str,
}

/// `GET /api/status/buildinfo`: Sightline's version in Tempo's shape.
pub(crate) async fn buildinfo() -> Result<Response, TempoError> {
    let info = BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        revision: "",
        branch: "",
        build_user: "",
        build_date: "",
        go_version: "",
    };
    Ok(json(&info, false)?)
}

/// Tempo's by-id window: `start`/`end` in Unix seconds, checked as Tempo
/// checks them. Like Jaeger's, the window never hides a stored trace:
/// Grafana sends its dashboard's time range, and a trace found by id
/// should open whatever the range.
fn check_window(params: &Params<'_>) -> Result<(), ApiError> {
    let int = |name: &'static str| -> Result<i64, ApiError> {
        match params.get(name) {
            None => Ok(0),
            Some(text) => text.parse::<i64>().map_err(|_| {
                ApiError::BadRequest(format!(
                    "invalid {name}: strconv.ParseInt: parsing {text:?}: invalid syntax"
                ))
            }),
        }
    };
    let (start, end) = (int("start")?, int("end")?);
    if start > 0 && end > 0 && end <= start {
        return Err(ApiError::BadRequest(format!(
            "http parameter start must be before end. received start={start} end={end}"
        )));
    }
    match params.get("mode") {
        None | Some("all" | "ingesters" | "blocks" | "external") => Ok(()),
        Some(other) => Err(ApiError::BadRequest(format!("invalid value for mode {other}"))),
    }
}

/// A stored trace with Tempo's span-id deduplication, or `TraceNotFound`.
async fn load(state: &Scoped, id: Option<TraceId>) -> Result<Adjusted, ApiError> {
    match read_trace(state, id).await? {
        Some(spans) => Ok(Adjusted::deduplicated(spans)),
        None => Err(ApiError::TraceNotFound),
    }
}

/// `GET /api/traces/{id}` with `Accept: application/protobuf`: the trace as
/// `tempopb.Trace`. (Other `Accept` values get Jaeger's JSON on this path;
/// see `query::trace_by_id`.) Unknown ids: an empty 404.
pub(crate) async fn trace_v1_protobuf(
    state: &Scoped,
    id: Option<TraceId>,
    params: &Params<'_>,
) -> Result<Response, TempoError> {
    check_window(params)?;
    let trace = load(state, id).await?;
    let data = otlp::encode_spans(&trace.spans);
    let body = opentelemetry_proto::tonic::trace::v1::TracesData { resource_spans: data.resource_spans };
    Ok(bytes(StatusCode::OK, PROTOBUF, body.encode_to_vec()))
}

#[derive(Serialize)]
struct TraceByIdJson<'a> {
    trace: TracesData<'a>,
}

/// `GET /api/v2/traces/{id}?start=&end=`: `tempopb.TraceByIDResponse` as
/// protobuf when asked for, else as JSON (`{"trace": {"resourceSpans":
/// […]}}`, `jsonpb`'s spelling). Unknown ids: 404, after which Grafana
/// tries `/api/traces/{id}`.
pub(crate) async fn trace_v2(
    state: Scoped,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, TempoError> {
    let id = path_trace_id(id)?;
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    check_window(&params)?;
    let trace = load(&state, id).await?;
    let data = otlp::encode_spans(&trace.spans);
    if wants_protobuf(&headers) {
        let response = proto::TraceByIdResponse {
            trace: Some(opentelemetry_proto::tonic::trace::v1::TracesData {
                resource_spans: data.resource_spans,
            }),
            metrics: Some(proto::TraceByIdMetrics { inspected_bytes: 0 }),
            status: 0,
            message: String::new(),
        };
        return Ok(bytes(StatusCode::OK, PROTOBUF, response.encode_to_vec()));
    }
    let body = TraceByIdJson {
        trace: TracesData { resource_spans: &data.resource_spans, dialect: Dialect::Proto3 },
    };
    Ok(json(&body, false)?)
}

/// Unix seconds of a Tempo `start`/`end` parameter (`strconv.ParseUint(s,
/// 10, 32)`), `None` when absent.
pub(crate) fn seconds_param(params: &Params<'_>, name: &'static str) -> Result<Option<u32>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(text) => text.parse::<u32>().map(Some).map_err(|_| {
            let why = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            ApiError::BadRequest(format!("invalid {name}: strconv.ParseUint: parsing {text:?}: {why}"))
        }),
    }
}
