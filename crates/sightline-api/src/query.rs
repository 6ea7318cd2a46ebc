//! Handlers for the Jaeger query routes under `/api` (the v1 JSON API).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use sightline_model::{Span, TraceId, otlp};

use crate::adjust::{Adjusted, MAX_CLOCK_SKEW_ADJUST_NANOS};
use crate::dto::{self, Envelope, StructuredError};
use crate::error::{ApiError, TempoError};
use crate::ids::parse_trace_id;
use crate::jaeger;
use crate::params::{self, Params};
use crate::render::{json, pretty};
use crate::scope::Scoped;
use crate::tempo;

fn parse(raw: &Option<String>) -> Params<'_> {
    Params::parse(raw.as_deref().unwrap_or(""))
}

/// `GET /api/services`: service names.
pub(crate) async fn services(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let services = state.reader.services().await?;
    let total = services.len();
    json(&Envelope::ok(services, total), pretty(&parse(&raw)))
}

/// `GET /api/services/{service}/operations`: the legacy endpoint Jaeger UI
/// still uses; unique operation names of every kind.
pub(crate) async fn service_operations(
    state: Scoped,
    service: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let Path(service) = service.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let operations = state.reader.operations(&service, None).await?;
    let mut names: Vec<&str> = operations.iter().map(|op| op.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let total = names.len();
    json(&Envelope::ok(names, total), pretty(&parse(&raw)))
}

/// `GET /api/operations?service=S[&spanKind=K]`: operations with kinds. A
/// kind no span can have finds nothing, as Jaeger's storage does.
pub(crate) async fn operations(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = parse(&raw);
    let service = params::required_service(&params)?;
    let operations = match params::span_kind(&params) {
        Ok(kind) => state.reader.operations(service, kind).await?,
        Err(()) => Vec::new(),
    };
    let data: Vec<dto::Operation<'_>> = operations
        .iter()
        .map(|op| dto::Operation { name: &op.name, span_kind: op.kind.jaeger_name() })
        .collect();
    let total = data.len();
    json(&Envelope::ok(data, total), pretty(&params))
}

/// `GET /api/traces`: a search, or the traces named by `traceID`. Traces
/// pass through Jaeger's adjusters.
pub(crate) async fn find_traces(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = parse(&raw);
    let request = params::search(&params)?;
    let mut errors = Vec::new();
    let traces: Vec<Vec<Span>> = if request.trace_ids.is_empty() {
        state.reader.find_traces(&request.query).await?
    } else {
        // Unknown ids are left out of `data` and reported in `errors`
        // without a code, as Jaeger does.
        let mut traces = Vec::with_capacity(request.trace_ids.len());
        for (text, id) in request.trace_ids {
            let found = match id {
                Some(id) => state.reader.trace(id).await?.filter(|spans| !spans.is_empty()),
                None => None,
            };
            match found {
                Some(spans) => traces.push(spans),
                None => errors.push(StructuredError {
                    code: 0,
                    msg: ApiError::TraceNotFound.to_string(),
                    trace_id: Some(id.map_or(text, |id| crate::ids::jaeger_hex(&id))),
                }),
            }
        }
        traces
    };
    let adjusted: Vec<Adjusted> =
        traces.into_iter().map(|spans| Adjusted::new(spans, MAX_CLOCK_SKEW_ADJUST_NANOS)).collect();
    let mut data: Vec<dto::Trace<'_>> =
        adjusted.iter().map(|a| jaeger::trace(&a.spans, &a.warnings)).collect();
    partial(&state, &mut data);
    let total = data.len();
    let mut envelope = Envelope::ok(data, total);
    envelope.errors = (!errors.is_empty()).then_some(errors);
    json(&envelope, pretty(&params))
}

/// Reads one trace by id for the Jaeger and Tempo by-id routes: `None`
/// when no span of it is stored (including the all-zero id).
pub(crate) async fn read_trace(state: &Scoped, id: Option<TraceId>) -> Result<Option<Vec<Span>>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    Ok(state.reader.trace(id).await?.filter(|spans| !spans.is_empty()))
}

/// The trace id of a by-id route, Jaeger's way (hex or base64).
pub(crate) fn path_trace_id(id: Result<Path<String>, PathRejection>) -> Result<Option<TraceId>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    parse_trace_id(&id).map_err(|e| ApiError::BadRequest(format!("cannot parse traceID: {e}")))
}

/// `GET /api/traces/{traceID}?start=&end=&raw=&prettyPrint=`: one trace,
/// 404 when unknown. `start`/`end` (µs) are checked but never filter:
/// Grafana sends milliseconds there, and a time hint must not hide a trace
/// that exists. `raw=true` skips the adjusters.
///
/// Tempo serves this path too: a client asking for `application/protobuf`
/// (Grafana's Tempo data source) gets Tempo's `tempopb.Trace` instead.
pub(crate) async fn trace_by_id(
    state: Scoped,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, Response> {
    if tempo::wants_protobuf(&headers) {
        let params = parse(&raw);
        let id = path_trace_id(id).map_err(|e| TempoError(e).into_response())?;
        return tempo::trace_v1_protobuf(&state, id, &params).await.map_err(IntoResponse::into_response);
    }
    jaeger_trace_by_id(&state, id, &raw).await.map_err(IntoResponse::into_response)
}

async fn jaeger_trace_by_id(
    state: &Scoped,
    id: Result<Path<String>, PathRejection>,
    raw: &Option<String>,
) -> Result<Response, ApiError> {
    let id = path_trace_id(id)?;
    let params = parse(raw);
    params::go_int_param(&params, "start")?;
    params::go_int_param(&params, "end")?;
    let raw_trace = params::go_bool_param(&params, "raw")?;
    let Some(spans) = read_trace(state, id).await? else { return Err(ApiError::TraceNotFound) };
    let adjusted =
        if raw_trace { Adjusted::raw(spans) } else { Adjusted::new(spans, MAX_CLOCK_SKEW_ADJUST_NANOS) };
    let mut data = vec![jaeger::trace(&adjusted.spans, &adjusted.warnings)];
    partial(state, &mut data);
    json(&Envelope::ok(data, 1), pretty(&params))
}

/// Marks each trace of a partial answer with what was left out (a peer
/// that did not answer): Jaeger UI shows a trace's `warnings` above it.
fn partial(state: &Scoped, data: &mut [dto::Trace<'_>]) {
    let warnings = state.warnings();
    if !warnings.is_empty() {
        for trace in data {
            trace.warnings.get_or_insert_with(Vec::new).extend(warnings.iter().cloned());
        }
    }
}

/// `POST /api/transform`: an OTLP/JSON export request in, Jaeger UI JSON
/// out (one trace per trace id, in order of first appearance) — what Jaeger
/// UI's file upload sends. Spans with invalid ids are refused with 400
/// rather than dropped.
pub(crate) async fn transform(RawQuery(raw): RawQuery, body: Bytes) -> Result<Response, ApiError> {
    let request = sightline_receive::decode_json(&body)
        .map_err(|e| ApiError::BadRequest(format!("cannot unmarshal OTLP : {e}")))?;
    let decoded = otlp::decode_request(request);
    if decoded.rejected > 0 {
        return Err(ApiError::BadRequest(decoded.error_message));
    }
    let mut order: Vec<TraceId> = Vec::new();
    let mut by_trace: HashMap<TraceId, Vec<Span>> = HashMap::new();
    for span in decoded.spans {
        by_trace
            .entry(span.trace_id)
            .or_insert_with(|| {
                order.push(span.trace_id);
                Vec::new()
            })
            .push(span);
    }
    let traces: Vec<Vec<Span>> = order.iter().filter_map(|id| by_trace.remove(id)).collect();
    let data: Vec<dto::Trace<'_>> = traces.iter().map(|spans| jaeger::trace(spans, &[])).collect();
    // Jaeger leaves `total` at 0 here.
    json(&Envelope::ok(data, 0), pretty(&parse(&raw)))
}

/// `GET /api/dependencies?endTs=<ms>&lookback=<ms>[&service=S]`: service
/// call counts, optionally only those involving `service`, with duplicate
/// parent/child pairs summed as Jaeger does.
pub(crate) async fn dependencies(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = parse(&raw);
    // A clock before 1970 is not worth failing a request over.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let (end, lookback) = params::dependencies(&params, now_ms)?;
    let service = params.get("service");
    let links = state.reader.dependencies(end, lookback).await?;
    let graph = match &state.service_graph {
        Some(g) => g.dependencies(&state.tenant, end, lookback).await?,
        None => Vec::new(),
    };
    let mut data: Vec<dto::DependencyLink<'_>> = Vec::with_capacity(links.len());
    let mut index: HashMap<(&str, &str), usize> = HashMap::with_capacity(links.len());
    for link in &links {
        if service.is_some_and(|s| s != link.parent && s != link.child) {
            continue;
        }
        let key = (link.parent.as_str(), link.child.as_str());
        match index.get(&key) {
            Some(&i) => {
                if let Some(entry) = data.get_mut(i) {
                    entry.call_count += link.call_count;
                }
            }
            None => {
                index.insert(key, data.len());
                data.push(dto::DependencyLink { parent: key.0, child: key.1, call_count: link.call_count });
            }
        }
    }
    for link in &graph {
        if service.is_some_and(|s| s != link.parent && s != link.child) {
            continue;
        }
        let key = (link.parent.as_str(), link.child.as_str());
        match index.get(&key).and_then(|&i| data.get_mut(i)) {
            Some(entry) => entry.call_count = entry.call_count.max(link.call_count),
            None => {
                index.insert(key, data.len());
                data.push(dto::DependencyLink { parent: key.0, child: key.1, call_count: link.call_count });
            }
        }
    }
    let total = data.len();
    json(&Envelope::ok(data, total), pretty(&params))
}

/// `POST /api/archive/{traceID}`: Sightline keeps no separate archive
/// (retention applies to every trace alike).
pub(crate) async fn archive() -> ApiError {
    ApiError::NotImplemented(
        "archive storage is not configured: Sightline keeps every trace for the same retention".to_owned(),
    )
}

/// `GET /api/quality-metrics` and `/api/deep-dependencies`: Jaeger serves
/// fixed sample data there; Sightline says it has none rather than show
/// made-up numbers.
pub(crate) async fn not_implemented(uri: Uri) -> ApiError {
    ApiError::NotImplemented(format!("{} is not implemented by Sightline", uri.path()))
}

/// Any other `/api/…` or `/analytics/…` path: a JSON 404, never the web
/// UI's `index.html` (which a client would fail to parse as JSON).
pub(crate) async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no API route {}", uri.path()))
}
