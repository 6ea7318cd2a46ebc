//! The node-to-node routes: a node sharing a bucket asks each live peer
//! for the spans only that peer has (its heads, not yet in a block the
//! manifest lists), so a query on any node sees a span as soon as some
//! node acknowledged it rather than after that node's flush and the next
//! manifest poll.
//!
//! * `GET /internal/head/traces?traceID=<32 hex>&…` — those traces;
//! * `GET /internal/head/search?<TraceQuery::to_pairs>` — a search;
//! * `GET /internal/head/services`, `/internal/head/operations?service=S
//!   [&spanKind=K]`, `/internal/head/tag-names?[scope=S&]start=&end=&limit=`,
//!   `/internal/head/tag-values?key=K[&scope=S]&start=&end=&limit=` — the
//!   listings (drop-downs of Jaeger UI and Grafana), so a name a peer has
//!   only in its head is offered at once, not after its next flush.
//!
//! * `GET /internal/logs/services` — the services of the node's log
//!   records (logs are kept by the node that received them);
//! * `GET /internal/logs/head?<the /api/logs parameters>` — one page of
//!   the node's log heads (records acknowledged, not yet in a flushed
//!   block), answered as an OTLP `ExportLogsServiceRequest` in protobuf;
//! * `GET /internal/logs/tail?<the /api/logs/tail parameters>` — the
//!   node's own live tail, one long answer of frames (records as an OTLP
//!   `ExportLogsServiceRequest`, keep-alives; see
//!   `sightline_model::TailFrame`), which a peer serving a client's tail
//!   follows.
//!
//! The first two answer an OTLP `ExportTraceServiceRequest` in protobuf:
//! compact, exact (no µs rounding, every attribute kind) and decoded by the
//! code every receiver already uses. The listings answer one OTLP
//! `AnyValue` (see [`otlp::encode_value_bytes`]): services an array of
//! strings, operations an array of `[name, kind number]`, tag names a
//! key/value list scope → array of names, tag values an array of values. They sit behind the same auth layer as the
//! query API (the `read` role; the tenant from the token or
//! `X-Scope-OrgID`), and read that tenant's heads only.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prost::Message as _;
use sightline_model::{
    AttributeScope, KeyValue, LogTenantReaders, Span, SpanKind, TagQuery, Tenant, TenantReaders, TraceId,
    TraceQuery, Value, otlp,
};

use crate::ApiError;

/// Path of the trace lookup.
pub const HEAD_TRACES_PATH: &str = "/internal/head/traces";
/// Path of the search.
pub const HEAD_SEARCH_PATH: &str = "/internal/head/search";
/// Path of the service listing.
pub const HEAD_SERVICES_PATH: &str = "/internal/head/services";
/// Path of the operation listing.
pub const HEAD_OPERATIONS_PATH: &str = "/internal/head/operations";
/// Path of the tag name listing.
pub const HEAD_TAG_NAMES_PATH: &str = "/internal/head/tag-names";
/// Path of the tag value listing.
pub const HEAD_TAG_VALUES_PATH: &str = "/internal/head/tag-values";
/// Path of the log service listing.
pub const LOG_SERVICES_PATH: &str = "/internal/logs/services";
/// Path of the log head search.
pub const LOG_HEAD_PATH: &str = "/internal/logs/head";
/// Path of the node's own live log tail.
pub const LOG_TAIL_PATH: &str = "/internal/logs/tail";
/// Content type of the answers.
pub const PROTOBUF: &str = "application/x-protobuf";
/// Most trace ids one lookup takes (a search's result is capped the same
/// way by [`TraceQuery::MAX_LIMIT`]).
const MAX_IDS: usize = TraceQuery::MAX_LIMIT;

/// The routes, reading each request's tenant's heads from `heads`. The
/// caller wraps them in the API's auth layer.
pub fn router(heads: Arc<dyn TenantReaders>) -> Router {
    Router::new()
        .route(HEAD_TRACES_PATH, get(traces))
        .route(HEAD_SEARCH_PATH, get(search))
        .route(HEAD_SERVICES_PATH, get(services))
        .route(HEAD_OPERATIONS_PATH, get(operations))
        .route(HEAD_TAG_NAMES_PATH, get(tag_names))
        .route(HEAD_TAG_VALUES_PATH, get(tag_values))
        .with_state(heads)
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

/// The log route, `GET /internal/logs/services` (the services of this
/// node's log records as an array of strings), reading each request's
/// tenant's logs from `logs`: what this node holds and other nodes sharing
/// the bucket do not read themselves. The caller wraps it in the API's
/// auth layer.
/// `heads` answers `GET /internal/logs/head` (each tenant's log heads
/// only: the blocks every node reads itself).
pub fn log_router(logs: Arc<dyn LogTenantReaders>, heads: Arc<dyn LogTenantReaders>) -> Router {
    Router::new()
        .route(LOG_SERVICES_PATH, get(log_services))
        .route(LOG_TAIL_PATH, get(log_tail))
        .with_state(logs)
        .merge(Router::new().route(LOG_HEAD_PATH, get(log_head)).with_state(heads))
}

async fn log_head(
    State(heads): State<Arc<dyn LogTenantReaders>>,
    extensions: axum::http::Extensions,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let raw = raw.unwrap_or_default();
    let query = crate::logs::head_query(&raw)?;
    let page = heads.log_reader(&tenant(&extensions)).await?.find_logs(&query).await?;
    let body = otlp::encode_logs(&page.records).encode_to_vec();
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))], body).into_response())
}

/// This node's own records only (`logs` is the local store: never the
/// peers', so no tail is followed round a cluster).
async fn log_tail(
    State(logs): State<Arc<dyn LogTenantReaders>>,
    extensions: axum::http::Extensions,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    crate::logs::peer_tail(logs, tenant(&extensions), &raw.unwrap_or_default()).await
}

async fn log_services(
    State(logs): State<Arc<dyn LogTenantReaders>>,
    extensions: axum::http::Extensions,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    pairs(raw, &[])?;
    let names = logs.log_reader(&tenant(&extensions)).await?.log_services().await?;
    Ok(value(Value::Array(names.into_iter().map(Value::from).collect())))
}

/// The query string's pairs; a name not in `known` is a 400.
fn pairs(raw: Option<String>, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let raw = raw.unwrap_or_default();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    if let Some((name, _)) = pairs.iter().find(|(name, _)| !known.contains(&name.as_str())) {
        return Err(ApiError::BadRequest(format!("unknown parameter {name:?}; expected one of {known:?}")));
    }
    Ok(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn number<T: std::str::FromStr>(pairs: &[(String, String)], name: &str) -> Result<Option<T>, ApiError> {
    param(pairs, name)
        .map(|v| v.parse().map_err(|_| ApiError::BadRequest(format!("{name} must be a number, got {v:?}"))))
        .transpose()
}

/// A tag listing's scope and window.
fn tag_query(pairs: &[(String, String)]) -> Result<(Option<AttributeScope>, TagQuery), ApiError> {
    let scope = param(pairs, "scope")
        .map(|s| {
            AttributeScope::from_name(s).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "unknown scope {s:?}; expected resource, span, event, link or instrumentation"
                ))
            })
        })
        .transpose()?;
    let mut query = TagQuery {
        start_min_unix_nanos: number(pairs, "start")?,
        start_max_unix_nanos: number(pairs, "end")?,
        ..TagQuery::default()
    };
    if let Some(limit) = number(pairs, "limit")? {
        query.limit = limit;
    }
    Ok((scope, query))
}

async fn services(
    State(heads): State<Arc<dyn TenantReaders>>,
    extensions: axum::http::Extensions,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    pairs(raw, &[])?;
    let names = heads.reader(&tenant(&extensions)).await?.services().await?;
    Ok(value(Value::Array(names.into_iter().map(Value::from).collect())))
}

async fn operations(
    State(heads): State<Arc<dyn TenantReaders>>,
    extensions: axum::http::Extensions,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = pairs(raw, &["service", "spanKind"])?;
    let service =
        param(&pairs, "service").ok_or_else(|| ApiError::BadRequest("service is required".into()))?;
    let kind = param(&pairs, "spanKind")
        .map(|k| {
            SpanKind::from_jaeger_name(k)
                .ok_or_else(|| ApiError::BadRequest(format!("unknown spanKind {k:?}")))
        })
        .transpose()?;
    let found = heads.reader(&tenant(&extensions)).await?.operations(service, kind).await?;
    let list = found
        .into_iter()
        .map(|op| Value::Array(vec![Value::from(op.name), Value::Int(op.kind as i64)]))
        .collect();
    Ok(value(Value::Array(list)))
}

async fn tag_names(
    State(heads): State<Arc<dyn TenantReaders>>,
    extensions: axum::http::Extensions,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = pairs(raw, &["scope", "start", "end", "limit"])?;
    let (scope, query) = tag_query(&pairs)?;
    let names = heads.reader(&tenant(&extensions)).await?.tag_names(scope, &query).await?;
    let map = names
        .into_iter()
        .map(|(scope, names)| KeyValue {
            key: scope.name().into(),
            value: Value::Array(names.into_iter().map(Value::from).collect()),
        })
        .collect();
    Ok(value(Value::Map(map)))
}

async fn tag_values(
    State(heads): State<Arc<dyn TenantReaders>>,
    extensions: axum::http::Extensions,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let pairs = pairs(raw, &["key", "scope", "start", "end", "limit"])?;
    let key = param(&pairs, "key").ok_or_else(|| ApiError::BadRequest("key is required".into()))?;
    let (scope, query) = tag_query(&pairs)?;
    let values = heads.reader(&tenant(&extensions)).await?.tag_values(scope, key, &query).await?;
    Ok(value(Value::Array(values)))
}

fn value(v: Value) -> Response {
    let body = otlp::encode_value_bytes(&v);
    ([(header::CONTENT_TYPE, HeaderValue::from_static(PROTOBUF))], body).into_response()
}
