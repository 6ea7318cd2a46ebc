//! The node-to-node routes: a node sharing a bucket asks each live peer
//! for the spans only that peer has (its heads, not yet in a block the
//! manifest lists), so a query on any node sees a span as soon as some
//! node acknowledged it rather than after that node's flush and the next
//! manifest poll.
//!
//! * `GET /internal/head/traces?traceID=<32 hex>&…` — those traces;
//! * `GET /internal/head/search?<TraceQuery::to_pairs>` — a search.
//!
//! Both answer an OTLP `ExportTraceServiceRequest` in protobuf: compact,
//! exact (no µs rounding, every attribute kind) and decoded by the code
//! every receiver already uses. They sit behind the same auth layer as the
//! query API (the `read` role; the tenant from the token or
//! `X-Scope-OrgID`), and read that tenant's heads only.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost::Message as _;
use sightline_model::{Span, Tenant, TenantReaders, TraceId, TraceQuery, otlp};

use crate::ApiError;

/// Path of the trace lookup.
pub const HEAD_TRACES_PATH: &str = "/internal/head/traces";
/// Path of the search.
pub const HEAD_SEARCH_PATH: &str = "/internal/head/search";
/// Content type of both answers.
pub const PROTOBUF: &str = "application/x-protobuf";
/// Most trace ids one lookup takes (a search's result is capped the same
/// way by [`TraceQuery::MAX_LIMIT`]).
const MAX_IDS: usize = TraceQuery::MAX_LIMIT;

/// The routes, reading each request's tenant's heads from `heads`. The
/// caller wraps them in the API's auth layer.
pub fn router(heads: Arc<dyn TenantReaders>) -> Router {
    Router::new().route(HEAD_TRACES_PATH, get(traces)).route(HEAD_SEARCH_PATH, get(search)).with_state(heads)
}

fn tenant(request: &axum::http::Extensions) -> Tenant {
    request.get::<Tenant>().cloned().unwrap_or_default()
}

async fn traces(
    State(heads): State<Arc<dyn TenantReaders>>,
    extensions: axum::http::Extensions,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let mut ids = Vec::new();
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        if name != "traceID" {
            return Err(ApiError::BadRequest(format!("unknown parameter {name:?}; expected traceID")));
        }
        let id = value.parse::<TraceId>().map_err(|e| {
            ApiError::BadRequest(format!("cannot parse traceID {value:?}: {e}; expected 32 hex digits"))
        })?;
        ids.push(id);
    }
    if ids.len() > MAX_IDS {
        return Err(ApiError::BadRequest(format!("at most {MAX_IDS} traceID parameters, got {}", ids.len())));
    }
    let reader = heads.reader(&tenant(&extensions)).await?;
    let found = reader.traces(&ids).await?;
    Ok(protobuf(found.iter().flatten()))
}

async fn search(
    State(heads): State<Arc<dyn TenantReaders>>,
    extensions: axum::http::Extensions,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    let query = TraceQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| ApiError::BadRequest(format!("invalid head search: {e}")))?;
    let reader = heads.reader(&tenant(&extensions)).await?;
    let found = reader.find_traces(&query).await?;
    Ok(protobuf(found.iter().flatten()))
}

fn protobuf<'a>(spans: impl Iterator<Item = &'a Span>) -> Response {
    let spans: Vec<Span> = spans.cloned().collect();
    let body = otlp::encode_spans(&spans).encode_to_vec();
    ([(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))], body).into_response()
}
