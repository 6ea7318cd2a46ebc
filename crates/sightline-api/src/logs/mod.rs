//! The logs API: search (`GET /api/logs`), live tail (`GET
//! /api/logs/tail`, server-sent events) and `GET /api/logs/services`, over
//! a [`sightline_model::LogReader`]. Shapes are in the crate docs and the
//! README.

mod dto;
mod params;
mod tail;

pub(crate) use tail::{peer_tail, tail};

use std::sync::Arc;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use sightline_model::{LogQuery, LogReader, Tenant};

use crate::ApiState;
use crate::dto::Envelope;
use crate::error::ApiError;
use crate::params::Params;
use crate::render::{json, pretty};

/// `GET /api/logs`: one page, newest first (on a node sharing a bucket,
/// live peers' log heads too; a peer that did not answer is named in the
/// warnings header).
pub(crate) async fn search(
    State(state): State<ApiState>,
    tenant: Option<Extension<Tenant>>,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let params = Params::parse(&raw);
    let query = params::log_query(&params, true)?;
    let tenant = tenant.map(|Extension(t)| t).unwrap_or_default();
    let reader = log_reader(&state, &tenant, &headers).await?;
    let page = reader.find_logs(&query).await?;
    let mut response = json(&dto::Page::new(&page, query.effective_limit()), pretty(&params))?;
    with_warnings(&mut response, reader.as_ref());
    Ok(response)
}

/// The caller's tenant's log reader; on a node sharing a bucket it asks
/// live peers with the caller's credentials.
async fn log_reader(
    state: &ApiState,
    tenant: &Tenant,
    headers: &axum::http::HeaderMap,
) -> Result<Arc<dyn LogReader>, ApiError> {
    let readers = state
        .logs
        .as_ref()
        .ok_or_else(|| ApiError::NotImplemented("log storage is not enabled".to_owned()))?;
    let credentials = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    Ok(readers.log_reader_for(tenant, credentials).await?)
}

/// Names in the warnings header what `reader` left out (a peer that did
/// not answer), as the trace APIs' middleware does for theirs.
fn with_warnings(response: &mut Response, reader: &dyn LogReader) {
    if let Some(value) = crate::scope::warnings_header(&reader.warnings()) {
        response.headers_mut().insert(crate::scope::WARNINGS_HEADER, value);
    }
}

/// The search a peer asks for at `/internal/logs/head`: the `/api/logs`
/// parameters (see `LogQuery::to_pairs`).
pub(crate) fn head_query(raw: &str) -> Result<LogQuery, ApiError> {
    params::log_query(&Params::parse(raw), true)
}

/// `GET /api/logs/services`: service names with stored records (on a node
/// sharing a bucket, live peers' too; a peer that did not answer is named
/// in the warnings header).
pub(crate) async fn services(
    State(state): State<ApiState>,
    tenant: Option<Extension<Tenant>>,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let tenant = tenant.map(|Extension(t)| t).unwrap_or_default();
    let reader = log_reader(&state, &tenant, &headers).await?;
    let services = reader.log_services().await?;
    let total = services.len();
    let mut response = json(&Envelope::ok(services, total), pretty(&Params::parse(&raw)))?;
    with_warnings(&mut response, reader.as_ref());
    Ok(response)
}
