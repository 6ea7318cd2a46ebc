//! Handlers for the Jaeger query routes under `/api`.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use sightline_model::{Span, TraceId};

use crate::ApiState;
use crate::dto::{self, Envelope, StructuredError};
use crate::error::ApiError;
use crate::jaeger;
use crate::params::{self, Params};

/// `GET /api/services`: service names.
pub(crate) async fn services(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let services = state.reader.services().await?;
    let total = services.len();
    Ok(Json(Envelope::ok(services, total)).into_response())
}

/// `GET /api/services/{service}/operations`: the legacy endpoint Jaeger UI
/// still uses; unique operation names of every kind.
pub(crate) async fn service_operations(
    State(state): State<ApiState>,
    service: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(service) = service.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let operations = state.reader.operations(&service, None).await?;
    let mut names: Vec<&str> = operations.iter().map(|op| op.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let total = names.len();
    Ok(Json(Envelope::ok(names, total)).into_response())
}

/// `GET /api/operations?service=S[&spanKind=K]`: operations with kinds.
pub(crate) async fn operations(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    let service = params::required_service(&params)?;
    let kind = params::span_kind(&params)?;
    let operations = state.reader.operations(service, kind).await?;
    let data: Vec<dto::Operation<'_>> = operations
        .iter()
        .map(|op| dto::Operation { name: &op.name, span_kind: op.kind.jaeger_name() })
        .collect();
    let total = data.len();
    Ok(Json(Envelope::ok(data, total)).into_response())
}

/// `GET /api/traces`: a search, or the traces named by `traceID`.
pub(crate) async fn find_traces(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    let request = params::search(&params)?;
    let mut errors = Vec::new();
    let traces: Vec<Vec<Span>> = if request.trace_ids.is_empty() {
        state.reader.find_traces(&request.query).await?
    } else {
        // Unknown ids are left out of `data` and reported in `errors`
        // without a code, as Jaeger does.
        let mut traces = Vec::with_capacity(request.trace_ids.len());
        for id in request.trace_ids {
            match state.reader.trace(id).await? {
                Some(spans) if !spans.is_empty() => traces.push(spans),
                _ => errors.push(StructuredError {
                    code: 0,
                    msg: ApiError::TraceNotFound.to_string(),
                    trace_id: Some(id.to_hex()),
                }),
            }
        }
        traces
    };
    let data: Vec<dto::Trace<'_>> = traces.iter().map(|spans| jaeger::trace(spans)).collect();
    let mut envelope = Envelope::ok(data, traces.len());
    envelope.errors = (!errors.is_empty()).then_some(errors);
    Ok(Json(envelope).into_response())
}

/// `GET /api/traces/{traceID}`: one trace, 404 when unknown.
pub(crate) async fn trace_by_id(
    State(state): State<ApiState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let id =
        TraceId::from_str(&id).map_err(|e| ApiError::BadRequest(format!("cannot parse traceID: {e}")))?;
    let spans = match state.reader.trace(id).await? {
        Some(spans) if !spans.is_empty() => spans,
        _ => return Err(ApiError::TraceNotFound),
    };
    Ok(Json(Envelope::ok(vec![jaeger::trace(&spans)], 1)).into_response())
}

/// `GET /api/dependencies?endTs=<ms>&lookback=<ms>[&service=S]`: service
/// call counts, optionally only those involving `service`, with duplicate
/// parent/child pairs summed as Jaeger does.
pub(crate) async fn dependencies(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    // A clock before 1970 is not worth failing a request over.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let (end, lookback) = params::dependencies(&params, now_ms)?;
    let service = params.get("service");
    let links = state.reader.dependencies(end, lookback).await?;
    let graph = match &state.service_graph {
        Some(g) => g.dependencies(end, lookback).await?,
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
    Ok(Json(Envelope::ok(data, total)).into_response())
}
