//! The logs API: search (`GET /api/logs`), live tail (`GET
//! /api/logs/tail`, server-sent events) and `GET /api/logs/services`, over
//! a [`sightline_model::LogReader`]. Shapes are in the crate docs and the
//! README.

mod dto;
mod params;
mod tail;

pub(crate) use tail::{peer_tail, tail};

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::Response;
use sightline_model::{LogQuery, LogReader, Tenant};

use crate::ApiState;
use crate::dto::Envelope;
use crate::error::ApiError;
use crate::params::Params;
use crate::render::{json, pretty};

/// What every logs handler starts from: the raw query string and the log
/// reader of the caller's tenant (the auth layer put it in the request's
/// extensions; the default tenant when there is none). On a node sharing
/// a bucket the reader asks live peers with the caller's credentials.
pub(crate) struct LogScope {
    /// The query string, empty when there is none.
    raw: String,
    reader: Arc<dyn LogReader>,
    /// How to get the reader again (a live tail looks for a log store that
    /// did not exist yet when it started).
    again: Reopen,
}

/// The caller, as [`LogScope::reader`] needs it.
#[derive(Clone)]
struct Reopen {
    state: ApiState,
    tenant: Tenant,
    credentials: Option<String>,
}

impl Reopen {
    async fn reader(&self) -> Result<Arc<dyn LogReader>, ApiError> {
        let readers = self
            .state
            .logs
            .as_ref()
            .ok_or_else(|| ApiError::NotImplemented("log storage is not enabled".to_owned()))?;
        Ok(readers.log_reader_for(&self.tenant, self.credentials.as_deref()).await?)
    }
}

impl FromRequestParts<ApiState> for LogScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<LogScope, ApiError> {
        let again = Reopen {
            state: state.clone(),
            tenant: parts.extensions.get::<Tenant>().cloned().unwrap_or_default(),
            credentials: parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned),
        };
        let reader = again.reader().await?;
        Ok(LogScope { raw: parts.uri.query().unwrap_or_default().to_owned(), reader, again })
    }
}

impl LogScope {
    /// `body` as JSON (indented when `prettyPrint` asks), naming in the
    /// warnings header what the reader left out (a peer that did not
    /// answer), as the trace APIs' middleware does for theirs.
    fn respond<T: serde::Serialize>(&self, params: &Params<'_>, body: &T) -> Result<Response, ApiError> {
        let mut response = json(body, pretty(params))?;
        if let Some(value) = crate::scope::warnings_header(&self.reader.warnings()) {
            response.headers_mut().insert(crate::scope::WARNINGS_HEADER, value);
        }
        Ok(response)
    }
}

/// `GET /api/logs`: one page, newest first (on a node sharing a bucket,
/// live peers' log heads too; a peer that did not answer is named in the
/// warnings header).
pub(crate) async fn search(scope: LogScope) -> Result<Response, ApiError> {
    let params = Params::parse(&scope.raw);
    let query = params::log_query(&params, true)?;
    let page = scope.reader.find_logs(&query).await?;
    scope.respond(&params, &dto::Page::new(&page, query.effective_limit()))
}

/// The search a peer asks for at `/internal/logs/head`: the `/api/logs`
/// parameters (see `LogQuery::to_pairs`).
pub(crate) fn head_query(raw: &str) -> Result<LogQuery, ApiError> {
    params::log_query(&Params::parse(raw), true)
}

/// `GET /api/logs/services`: service names with stored records (on a node
/// sharing a bucket, live peers' too; a peer that did not answer is named
/// in the warnings header).
pub(crate) async fn services(scope: LogScope) -> Result<Response, ApiError> {
    let services = scope.reader.log_services().await?;
    let total = services.len();
    scope.respond(&Params::parse(&scope.raw), &Envelope::ok(services, total))
}
