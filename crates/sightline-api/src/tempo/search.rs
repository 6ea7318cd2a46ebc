//! `GET /api/search`: Tempo's trace search, as Grafana's Tempo data source
//! calls it.
//!
//! Parameters follow Tempo's `ParseSearchRequest` (`q`, `tags`,
//! `minDuration`, `maxDuration`, `limit`, `spss`, `start`, `end`, and, for
//! the oldest Grafana versions, bare `key=value` tags), in its order and
//! words.
//!
//! `q` is TraceQL (`sightline-traceql`): its pre-filter picks the store
//! searches whose results hold every match, and the query is evaluated
//! exactly on each candidate trace. Candidate ids are searched most recent
//! first in growing rounds until `limit` traces match, the store has no
//! more, or [`MAX_CANDIDATES`] were considered; each round reads only the
//! traces no earlier round read. When the pre-filter is exact (every
//! candidate matches), the first round reads just `limit`.
//!
//! Legacy tag search works as Tempo's block search does: every condition
//! must hold somewhere in the trace (not necessarily on one span),
//! durations are the trace's. Values compare exactly, where Tempo matches
//! `service.name`, `name` and the root names by substring.

use std::collections::{BTreeMap, HashSet};

use axum::extract::RawQuery;
use axum::response::Response;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde::Serialize;
use sightline_model::{Span, StatusCode, TraceId, TraceQuery, otlp, tag_lookup};
use sightline_traceql::{AttributePushdown, Candidates, Query, TraceMatch};

use super::logfmt;
use super::seconds_param;
use crate::duration::parse_go_duration;
use crate::error::{ApiError, TempoError};
use crate::ids::tempo_hex;
use crate::otlp_json::{Attributes, Dialect};
use crate::params::Params;
use crate::render::json;
use crate::scope::Scoped;
use crate::summary::{Summary, summarize};

/// Tempo's `defaultLimit` and `defaultSpansPerSpanSet`.
const DEFAULT_LIMIT: usize = 20;
const DEFAULT_SPANS_PER_SPAN_SET: usize = 3;

/// Most traces read to answer a search whose conditions the store cannot
/// apply itself; they are checked here, most recent first.
const MAX_CANDIDATES: usize = 1_000;

/// Candidates read in the first round of a TraceQL search, at least.
const FIRST_ROUND: usize = 50;

/// Candidate traces read with one [`sightline_model::SpanReader::traces`]
/// call: the store reads each block once per call, and a group this size
/// stays well inside one query's result budget.
const TRACES_PER_FETCH: usize = 100;

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
    let (start_min_unix_nanos, start_max_unix_nanos) = window(request);
    let mut query = TraceQuery {
        start_min_unix_nanos,
        start_max_unix_nanos,
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
    /// `by()` values and aggregate results.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "attributes")]
    attributes: Vec<KeyValue>,
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
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "attributes")]
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

/// The search-result entry of a trace, without span sets.
fn metadata<'a>(summary: &Summary<'a>) -> TraceSearchMetadata<'a> {
    TraceSearchMetadata {
        trace_id: tempo_hex(&summary.trace_id),
        root_service_name: summary.root.map_or(ROOT_NOT_RECEIVED, |r| r.service_name()),
        root_trace_name: summary.root.map_or("", |r| r.name.as_str()),
        start_time_unix_nano: summary.min_start.to_string(),
        duration_ms: millis(summary.max_end.saturating_sub(summary.min_start)),
        span_set: None,
        span_sets: Vec::new(),
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

fn millis(nanos: u64) -> u32 {
    u32::try_from(nanos / 1_000_000).unwrap_or(u32::MAX)
}

/// A TraceQL match as Tempo's search lists it: the spansets with their
/// spans (id, name, times, the attributes the query read) and, for old
/// Grafana versions, the first one again as `spanSet`.
fn traceql_metadata<'a>(spans: &'a [Span], summary: &Summary<'a>, m: &TraceMatch) -> TraceSearchMetadata<'a> {
    let mut out = metadata(summary);
    out.span_sets = m
        .spansets
        .iter()
        .map(|set| SpanSet {
            spans: set
                .spans
                .iter()
                .filter_map(|sm| {
                    let span = spans.get(sm.index)?;
                    Some(SpanJson {
                        span_id: hex::encode(span.span_id.as_bytes()),
                        name: &span.name,
                        start_time_unix_nano: span.start_time_unix_nano.to_string(),
                        duration_nanos: span.duration_nanos().to_string(),
                        attributes: otlp::encode_kvs(&sm.attributes),
                    })
                })
                .collect(),
            matched: count(set.matched),
            attributes: otlp::encode_kvs(&set.attributes),
        })
        .collect();
    out.span_set = out.span_sets.first().cloned();
    out
}

/// The time window of a search, as a store search's bounds.
fn window(request: &SearchRequest) -> (Option<u64>, Option<u64>) {
    (
        (request.start > 0).then(|| u64::from(request.start) * 1_000_000_000),
        (request.end > 0).then(|| u64::from(request.end) * 1_000_000_000),
    )
}

fn duration_fits(request: &SearchRequest, summary: &Summary<'_>) -> bool {
    let duration_ms = summary.max_end.saturating_sub(summary.min_start) / 1_000_000;
    (request.min_duration_ms == 0 || duration_ms >= u64::from(request.min_duration_ms))
        && (request.max_duration_ms == 0 || duration_ms <= u64::from(request.max_duration_ms))
}

/// The ids of up to `ask` candidate traces per store search the query's
/// pre-filter asks for, most recent first, and whether the store has no
/// more of them. Only ids: the traces are read once, by [`traceql_search`].
async fn candidate_ids(
    state: &Scoped,
    query: &Query,
    window: (Option<u64>, Option<u64>),
    ask: usize,
) -> Result<(Vec<TraceId>, bool), ApiError> {
    if let Some(ids) = query.prefilter().trace_ids() {
        return Ok((ids.into_iter().collect(), true));
    }
    let searches = match query.prefilter().candidates(AttributePushdown::ScalarValues) {
        Candidates::Nothing => return Ok((Vec::new(), true)),
        Candidates::Everything => vec![TraceQuery::default()],
        Candidates::Queries(queries) => queries,
    };
    let mut seen: HashSet<TraceId> = HashSet::new();
    let mut out = Vec::new();
    let mut exhausted = true;
    for mut search in searches {
        (search.start_min_unix_nanos, search.start_max_unix_nanos) = window;
        search.limit = ask;
        let found = state.reader.find_trace_ids(&search).await?;
        exhausted &= found.len() < ask;
        out.extend(found.into_iter().map(|hit| hit.trace_id).filter(|id| seen.insert(*id)));
    }
    Ok((out, exhausted))
}

/// Latest span start of a trace, the recency searches rank by.
fn latest_start(spans: &[Span]) -> u64 {
    spans.iter().map(|s| s.start_time_unix_nano).max().unwrap_or(0)
}

/// Candidates to read in the first round. When the store search finds
/// exactly the matches (the pre-filter is exact and no trace-level
/// duration bound applies), `limit` of them is the answer, as a Jaeger
/// search reads just `limit` traces; reading a surplus cost 4x the time
/// of the whole search (2.5x the traces, from older blocks too). Otherwise
/// a surplus makes up for candidates that fail evaluation.
fn first_round(request: &SearchRequest, query: &Query) -> usize {
    let exact = query.prefilter().exact && request.min_duration_ms == 0 && request.max_duration_ms == 0;
    if exact {
        request.limit.min(MAX_CANDIDATES)
    } else {
        (request.limit * 2).clamp(FIRST_ROUND, MAX_CANDIDATES)
    }
}

/// Matching traces of a TraceQL search with their matches, most recent
/// first, at most `limit`, and how many traces were evaluated.
///
/// Each round asks the store for more candidate ids and reads only the
/// traces no earlier round read (in groups of [`TRACES_PER_FETCH`]), so a
/// search that needs four rounds reads each candidate once, not up to four
/// times.
async fn traceql_search(
    state: &Scoped,
    request: &SearchRequest,
    query: &Query,
) -> Result<(Vec<(Vec<Span>, TraceMatch)>, usize), ApiError> {
    let mut hits: Vec<(Vec<Span>, TraceMatch)> = Vec::new();
    let mut asked: HashSet<TraceId> = HashSet::new();
    let mut evaluated = 0usize;
    if query.matches_nothing() {
        return Ok((hits, 0));
    }
    let mut ask = first_round(request, query);
    loop {
        let (ids, exhausted) = candidate_ids(state, query, window(request), ask).await?;
        let new: Vec<TraceId> = ids.into_iter().filter(|id| asked.insert(*id)).collect();
        for group in new.chunks(TRACES_PER_FETCH) {
            for spans in state.reader.traces(group).await? {
                if spans.is_empty() {
                    continue;
                }
                evaluated += 1;
                let matched = query
                    .evaluate(&spans, request.spans_per_span_set)
                    .map_err(|e| ApiError::BadRequest(format!("TraceQL evaluation failed: {}", e.message)))?;
                if let Some(m) = matched
                    && summarize(&spans).is_some_and(|s| duration_fits(request, &s))
                {
                    hits.push((spans, m));
                }
            }
        }
        if hits.len() >= request.limit || exhausted || ask >= MAX_CANDIDATES {
            break;
        }
        ask = (ask * 4).min(MAX_CANDIDATES);
    }
    hits.sort_by_key(|(spans, _)| std::cmp::Reverse(latest_start(spans)));
    hits.truncate(request.limit);
    Ok((hits, evaluated))
}

/// The traces of a legacy tag search, most recent first, at most `limit`,
/// and how many were read: candidate ids from the store, then traces in
/// that order, a group at a time, until `limit` of them hold every tag.
async fn legacy_search(
    state: &Scoped,
    request: &SearchRequest,
    only_window: bool,
) -> Result<(Vec<Vec<Span>>, usize), ApiError> {
    let ids: Vec<TraceId> = state
        .reader
        .find_trace_ids(&store_query(request, only_window))
        .await?
        .into_iter()
        .map(|hit| hit.trace_id)
        .collect();
    let mut found = Vec::new();
    let mut inspected = 0usize;
    for group in ids.chunks(TRACES_PER_FETCH) {
        for spans in state.reader.traces(group).await? {
            inspected += 1;
            let fits = summarize(&spans).is_some_and(|summary| {
                duration_fits(request, &summary)
                    && request.tags.iter().all(|(k, v)| trace_has(&spans, &summary, k, v))
            });
            if fits && found.len() < request.limit {
                found.push(spans);
            }
        }
        if found.len() >= request.limit {
            break;
        }
    }
    Ok((found, inspected))
}

/// Parses `q`, refusing what search cannot answer with the position.
fn parse_traceql(q: &str) -> Result<Query, ApiError> {
    sightline_traceql::parse(q).map_err(|e| {
        if e.is_metrics() {
            ApiError::BadRequest(format!(
                "invalid TraceQL query: {e}; metrics queries are answered by /api/metrics/query_range, which Sightline does not serve"
            ))
        } else {
            ApiError::BadRequest(format!("invalid TraceQL query: {e}"))
        }
    })
}

/// `GET /api/search`: `{"traces": [...], "metrics": {...}}`.
pub(crate) async fn search(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, TempoError> {
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    let request = parse(&params)?;
    if let Some(q) = request.query.as_deref() {
        let query = parse_traceql(q)?;
        let (hits, inspected) = traceql_search(&state, &request, &query).await?;
        let summaries: Vec<Summary<'_>> = hits.iter().filter_map(|(spans, _)| summarize(spans)).collect();
        let traces = hits
            .iter()
            .zip(&summaries)
            .map(|((spans, m), summary)| traceql_metadata(spans, summary, m))
            .collect();
        let metrics = SearchMetrics { inspected_traces: count(inspected), completed_jobs: 1, total_jobs: 1 };
        return Ok(json(&SearchResponse { traces, metrics }, false)?);
    }
    let only_window = request.tags.len() <= 1
        && request.tags.iter().all(|(k, _)| k == "service.name" || k == "name")
        && request.min_duration_ms == 0
        && request.max_duration_ms == 0;
    let (found, inspected) = legacy_search(&state, &request, only_window).await?;
    let summaries: Vec<Summary<'_>> = found.iter().filter_map(|spans| summarize(spans)).collect();
    let traces: Vec<TraceSearchMetadata<'_>> = summaries.iter().map(metadata).collect();
    let metrics = SearchMetrics { inspected_traces: count(inspected), completed_jobs: 1, total_jobs: 1 };
    Ok(json(&SearchResponse { traces, metrics }, false)?)
}
