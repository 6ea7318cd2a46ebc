//! `GET /api/search`: Tempo's trace search, as Grafana's Tempo data source
//! calls it.
//!
//! Parameters follow Tempo's `ParseSearchRequest` (`q`, `tags`,
//! `minDuration`, `maxDuration`, `limit`, `spss`, `start`, `end`, and, for
//! the oldest Grafana versions, bare `key=value` tags), in its order and
//! words. Legacy tag search works as Tempo's block search does: every
//! condition must hold somewhere in the trace (not necessarily on one
//! span), durations are the trace's. Values compare exactly, where Tempo
//! matches `service.name`, `name` and the root names by substring.
//!
//! TraceQL in `q` is answered once the TraceQL crate is wired in; until
//! then only the match-everything spanset `{}` is.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde::Serialize;
use sightline_model::{Span, StatusCode, TraceQuery, tag_lookup};

use super::logfmt;
use super::seconds_param;
use crate::ApiState;
use crate::duration::parse_go_duration;
use crate::error::{ApiError, TempoError};
use crate::ids::tempo_hex;
use crate::otlp_json::{Attributes, Dialect};
use crate::params::Params;
use crate::render::json;
use crate::summary::{Summary, summarize};

/// Tempo's `defaultLimit` and `defaultSpansPerSpanSet`.
const DEFAULT_LIMIT: usize = 20;
const DEFAULT_SPANS_PER_SPAN_SET: usize = 3;

/// Most traces read to answer a legacy search whose conditions the store
/// cannot apply itself; they are checked here, most recent first.
const MAX_CANDIDATES: usize = 1_000;

/// Tempo's text for a trace whose root span has not arrived.
const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";

/// Parameters that are never tags in an old-style search.
const RESERVED: [&str; 8] = ["q", "tags", "minDuration", "maxDuration", "limit", "spss", "start", "end"];

/// A parsed `/api/search` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchRequest {
    pub query: Option<String>,
    pub tags: Vec<(String, String)>,
    pub min_duration_ms: u32,
    pub max_duration_ms: u32,
    pub limit: usize,
    pub spans_per_span_set: usize,
    pub start: u32,
    pub end: u32,
}

fn bad(msg: String) -> ApiError {
    ApiError::BadRequest(msg)
}

/// Tempo's `ParseSearchRequest`.
pub(crate) fn parse(params: &Params<'_>) -> Result<SearchRequest, ApiError> {
    let start = seconds_param(params, "start")?.unwrap_or(0);
    let end = seconds_param(params, "end")?.unwrap_or(0);
    let query = params.get("q").map(str::to_owned);
    let mut tags: Vec<(String, String)> = Vec::new();
    let tags_text = params.get("tags");
    if let Some(text) = tags_text {
        if query.is_some() {
            return Err(bad("invalid request: can't specify tags and q in the same query".to_owned()));
        }
        let pairs =
            logfmt::decode(text).map_err(|e| bad(format!("invalid tags: {} at pos {}", e.msg, e.pos)))?;
        for (key, value) in pairs {
            if tags.iter().any(|(k, _)| *k == key) {
                return Err(bad(format!("invalid tags: tag {key} has been set twice")));
            }
            tags.push((key, value));
        }
    }
    if query.is_none() && tags_text.is_none() && start == 0 && end == 0 {
        // The first Grafana versions sent each tag as its own parameter.
        for (key, value) in params.pairs() {
            if !RESERVED.contains(&key) && !value.is_empty() && !tags.iter().any(|(k, _)| k == key) {
                tags.push((key.to_owned(), value.to_owned()));
            }
        }
    }
    let millis = |name: &str| -> Result<u32, ApiError> {
        match params.get(name) {
            None => Ok(0),
            Some(text) => {
                let nanos = parse_go_duration(text).map_err(|e| bad(format!("invalid {name}: {e}")))?;
                Ok(u32::try_from(nanos / 1_000_000).unwrap_or(if nanos < 0 { 0 } else { u32::MAX }))
            }
        }
    };
    let min_duration_ms = millis("minDuration")?;
    let max_duration_ms = millis("maxDuration")?;
    if params.get("maxDuration").is_some() && min_duration_ms != 0 && min_duration_ms > max_duration_ms {
        return Err(bad("invalid maxDuration: must be greater than minDuration".to_owned()));
    }
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<u32>() {
            Ok(0) => return Err(bad("invalid limit: must be a positive number".to_owned())),
            Ok(n) => n as usize,
            Err(_) => {
                return Err(bad(format!(
                    "invalid limit: strconv.ParseUint: parsing {text:?}: invalid syntax"
                )));
            }
        },
    };
    let spans_per_span_set = match params.get("spss") {
        None => DEFAULT_SPANS_PER_SPAN_SET,
        Some(text) => text
            .parse::<u32>()
            .map(|n| n as usize)
            .map_err(|_| bad(format!("invalid spss: strconv.ParseUint: parsing {text:?}: invalid syntax")))?,
    };
    if (start != 0 || end != 0) && end <= start {
        return Err(bad(format!(
            "http parameter start must be before end. received start={start} end={end}"
        )));
    }
    Ok(SearchRequest { query, tags, min_duration_ms, max_duration_ms, limit, spans_per_span_set, start, end })
}

/// One legacy tag condition, checked against a whole trace.
fn trace_has(spans: &[Span], summary: &Summary<'_>, key: &str, value: &str) -> bool {
    match key {
        "root.service.name" => summary.root.is_some_and(|r| r.service_name() == value),
        "root.name" => summary.root.is_some_and(|r| r.name == value),
        "name" => spans.iter().any(|s| s.name == value),
        "service.name" => spans.iter().any(|s| s.service_name() == value),
        "status.code" => spans.iter().any(|s| status_name(s.status.code) == value),
        _ => spans.iter().any(|s| tag_lookup(s, key, value)),
    }
}

/// Tempo's names for span statuses.
fn status_name(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

/// The store query for a legacy search: the window and the one condition
/// the store can check at trace level for us (several would have to hold
/// on one span). The rest are checked here.
fn store_query(request: &SearchRequest, only_window: bool) -> TraceQuery {
    let mut query = TraceQuery {
        start_min_unix_nanos: (request.start > 0).then(|| u64::from(request.start) * 1_000_000_000),
        start_max_unix_nanos: (request.end > 0).then(|| u64::from(request.end) * 1_000_000_000),
        limit: if only_window { request.limit } else { request.limit.max(MAX_CANDIDATES) },
        ..TraceQuery::default()
    };
    if let Some((_, v)) = request.tags.iter().find(|(k, _)| k == "service.name") {
        query.service = Some(v.clone());
    } else if let Some((_, v)) = request.tags.iter().find(|(k, _)| k == "name") {
        query.operation = Some(v.clone());
    }
    query
}

#[derive(Serialize)]
struct SearchResponse<'a> {
    traces: Vec<TraceSearchMetadata<'a>>,
    metrics: SearchMetrics,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchMetrics {
    #[serde(skip_serializing_if = "is_zero")]
    inspected_traces: u32,
    completed_jobs: u32,
    total_jobs: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceSearchMetadata<'a> {
    #[serde(rename = "traceID")]
    trace_id: String,
    root_service_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    root_trace_name: &'a str,
    start_time_unix_nano: String,
    #[serde(skip_serializing_if = "is_zero")]
    duration_ms: u32,
    /// Deprecated in Tempo, still written for old Grafana versions.
    #[serde(skip_serializing_if = "Option::is_none")]
    span_set: Option<SpanSet<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    span_sets: Vec<SpanSet<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    service_stats: BTreeMap<&'a str, ServiceStats>,
}

#[derive(Serialize, Clone)]
struct SpanSet<'a> {
    spans: Vec<SpanJson<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    matched: u32,
}

#[derive(Serialize, Clone)]
#[serde(rename_all = "camelCase")]
struct SpanJson<'a> {
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    start_time_unix_nano: String,
    duration_nanos: String,
    #[serde(serialize_with = "attributes")]
    attributes: Vec<KeyValue>,
}

fn attributes<S: serde::Serializer>(kvs: &[KeyValue], s: S) -> Result<S::Ok, S::Error> {
    Attributes(kvs, Dialect::Proto3).serialize(s)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceStats {
    #[serde(skip_serializing_if = "is_zero")]
    span_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    error_count: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A span of a span set: Tempo shows its id, name, times and the service
/// it ran in.
fn span_json(span: &Span) -> SpanJson<'_> {
    SpanJson {
        span_id: hex::encode(span.span_id.as_bytes()),
        name: &span.name,
        start_time_unix_nano: span.start_time_unix_nano.to_string(),
        duration_nanos: span.duration_nanos().to_string(),
        attributes: vec![KeyValue {
            key: "service.name".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(span.service_name().to_owned())),
            }),
            key_strindex: 0,
        }],
    }
}

fn metadata<'a>(
    summary: &Summary<'a>,
    spans: &'a [Span],
    spans_per_set: Option<usize>,
) -> TraceSearchMetadata<'a> {
    let span_set = spans_per_set.map(|n| {
        let mut by_start: Vec<&Span> = spans.iter().collect();
        by_start.sort_by_key(|s| s.start_time_unix_nano);
        SpanSet { spans: by_start.into_iter().take(n).map(span_json).collect(), matched: count(spans.len()) }
    });
    TraceSearchMetadata {
        trace_id: tempo_hex(&summary.trace_id),
        root_service_name: summary.root.map_or(ROOT_NOT_RECEIVED, |r| r.service_name()),
        root_trace_name: summary.root.map_or("", |r| r.name.as_str()),
        start_time_unix_nano: summary.min_start.to_string(),
        duration_ms: count(((summary.max_end.saturating_sub(summary.min_start)) / 1_000_000) as usize),
        span_sets: span_set.iter().cloned().collect(),
        span_set,
        service_stats: summary
            .services
            .iter()
            .map(|s| {
                (
                    s.name,
                    ServiceStats { span_count: count(s.span_count), error_count: count(s.error_span_count) },
                )
            })
            .collect(),
    }
}

/// Whether `q` is TraceQL that matches every span (`{}`, `{ }`, `{true}`).
fn matches_everything(q: &str) -> bool {
    let inner: String = q.chars().filter(|c| !c.is_whitespace()).collect();
    inner == "{}" || inner == "{true}"
}

/// `GET /api/search`: `{"traces": [...], "metrics": {...}}`.
pub(crate) async fn search(
    State(state): State<ApiState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, TempoError> {
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    let request = parse(&params)?;
    let spans_per_set = match request.query.as_deref() {
        None => None,
        Some(q) if matches_everything(q) => Some(request.spans_per_span_set),
        Some(q) => {
            return Err(ApiError::BadRequest(format!(
                "TraceQL is not available yet in this Sightline build: only {{}} is answered, got {q:?}; \
                 use tags=, minDuration= and maxDuration= meanwhile"
            ))
            .into());
        }
    };
    let only_window = request.tags.len() <= 1
        && request.tags.iter().all(|(k, _)| k == "service.name" || k == "name")
        && request.min_duration_ms == 0
        && request.max_duration_ms == 0;
    let candidates = state.reader.find_traces(&store_query(&request, only_window)).await?;
    let inspected = count(candidates.len());
    let summaries: Vec<(&[Span], Summary<'_>)> =
        candidates.iter().filter_map(|spans| summarize(spans).map(|s| (spans.as_slice(), s))).collect();
    let traces: Vec<TraceSearchMetadata<'_>> = summaries
        .iter()
        .filter(|(spans, summary)| {
            let duration_ms = summary.max_end.saturating_sub(summary.min_start) / 1_000_000;
            (request.min_duration_ms == 0 || duration_ms >= u64::from(request.min_duration_ms))
                && (request.max_duration_ms == 0 || duration_ms <= u64::from(request.max_duration_ms))
                && request.tags.iter().all(|(k, v)| trace_has(spans, summary, k, v))
        })
        .take(request.limit)
        .map(|(spans, summary)| metadata(summary, spans, spans_per_set))
        .collect();
    let metrics = SearchMetrics { inspected_traces: inspected, completed_jobs: 1, total_jobs: 1 };
    Ok(json(&SearchResponse { traces, metrics }, false)?)
}
