//! Tempo's tag endpoints, which Grafana's TraceQL editor and search form
//! autocomplete from: names per scope (`/api/v2/search/tags`,
//! `/api/search/tags`) and the values of one (`/api/v2/search/tag/{tag}/values`,
//! `/api/search/tag/{tag}/values`).
//!
//! Names and values come from the reader's tag listings
//! ([`sightline_model::SpanReader::tag_names`]); service and span names
//! come from its service and operation lists, which are complete.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery};
use axum::response::Response;
use serde::Serialize;
use sightline_model::{AttributeScope, DEFAULT_TAG_LIMIT, TagQuery, Value};

use super::seconds_param;
use crate::error::{ApiError, TempoError};
use crate::params::Params;
use crate::render::json;
use crate::scope::Scoped;

/// TraceQL's intrinsics as Tempo lists them for autocompletion
/// (`search.GetVirtualIntrinsicValues`).
const INTRINSICS: [&str; 25] = [
    "duration",
    "name",
    "status",
    "statusMessage",
    "kind",
    "rootServiceName",
    "rootName",
    "traceDuration",
    "event:name",
    "event:timeSinceStart",
    "link:spanID",
    "link:traceID",
    "instrumentation:name",
    "instrumentation:version",
    "trace:id",
    "span:id",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "span:duration",
    "span:name",
    "span:kind",
    "trace:rootName",
    "trace:rootService",
    "trace:duration",
];

/// Which scopes a tag-name request covers.
enum Scopes {
    All,
    Intrinsic,
    One(AttributeScope),
    /// `trace`: a scope TraceQL knows but which has no attributes here.
    Nothing,
}

fn scopes(params: &Params<'_>) -> Result<Scopes, ApiError> {
    Ok(match params.get("scope") {
        None | Some("none") => Scopes::All,
        Some("intrinsic") => Scopes::Intrinsic,
        Some("trace") => Scopes::Nothing,
        Some(name) => match AttributeScope::from_name(name) {
            Some(scope) => Scopes::One(scope),
            None => return Err(ApiError::BadRequest(format!("invalid scope: {name}"))),
        },
    })
}

/// How far back a tag request without `start`/`end` looks: Tempo answers
/// those from its ingesters, i.e. from recent data only.
const DEFAULT_TAG_WINDOW_SECS: u64 = 3600;

/// The window (`start`/`end`, Unix seconds; the last hour without them) and
/// `limit` of a tag request.
fn tag_query(params: &Params<'_>) -> Result<TagQuery, ApiError> {
    let start = seconds_param(params, "start")?.filter(|s| *s > 0);
    let end = seconds_param(params, "end")?.filter(|s| *s > 0);
    let limit = match params.get("limit") {
        None => DEFAULT_TAG_LIMIT,
        Some(text) => text
            .parse::<u32>()
            .map(|n| if n == 0 { DEFAULT_TAG_LIMIT } else { n as usize })
            .map_err(|_| {
                ApiError::BadRequest(format!(
                    "invalid limit: strconv.ParseUint: parsing {text:?}: invalid syntax"
                ))
            })?,
    };
    if start.is_none() && end.is_none() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let from = now.saturating_sub(DEFAULT_TAG_WINDOW_SECS).saturating_mul(1_000_000_000);
        return Ok(TagQuery { start_min_unix_nanos: Some(from), start_max_unix_nanos: None, limit });
    }
    Ok(TagQuery {
        start_min_unix_nanos: start.map(|s| u64::from(s) * 1_000_000_000),
        start_max_unix_nanos: end.map(|s| u64::from(s) * 1_000_000_000),
        limit,
    })
}

#[derive(Serialize)]
struct TagsV2 {
    scopes: Vec<ScopeTags>,
}

#[derive(Serialize)]
struct ScopeTags {
    name: &'static str,
    tags: Vec<String>,
}

/// `GET /api/v2/search/tags?scope=&start=&end=`: `{"scopes": [{"name",
/// "tags"}]}`; without a scope, every attribute scope with names, then
/// `intrinsic`.
pub(crate) async fn tags_v2(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, TempoError> {
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    let scopes = scopes(&params)?;
    let query = tag_query(&params)?;
    let mut out = Vec::new();
    let attribute_scope = match scopes {
        Scopes::All => Some(None),
        Scopes::One(scope) => Some(Some(scope)),
        Scopes::Intrinsic | Scopes::Nothing => None,
    };
    if let Some(scope) = attribute_scope {
        for (scope, tags) in state.reader.tag_names(scope, &query).await? {
            out.push(ScopeTags { name: scope.name(), tags });
        }
    }
    if matches!(scopes, Scopes::All | Scopes::Intrinsic) {
        out.push(ScopeTags { name: "intrinsic", tags: INTRINSICS.iter().map(|s| (*s).to_owned()).collect() });
    }
    Ok(json(&TagsV2 { scopes: out }, false)?)
}

#[derive(Serialize)]
struct TagsV1 {
    #[serde(rename = "tagNames")]
    tag_names: Vec<String>,
}

/// `GET /api/search/tags`: `{"tagNames": […]}`, the attribute names of
/// every scope (or of `scope`) in one sorted list.
pub(crate) async fn tags_v1(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, TempoError> {
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    let scope = match scopes(&params)? {
        Scopes::All | Scopes::Intrinsic => None,
        Scopes::One(scope) => Some(scope),
        Scopes::Nothing => return Ok(json(&TagsV1 { tag_names: Vec::new() }, false)?),
    };
    let query = tag_query(&params)?;
    let names: BTreeSet<String> =
        state.reader.tag_names(scope, &query).await?.into_values().flatten().collect();
    Ok(json(&TagsV1 { tag_names: names.into_iter().collect() }, false)?)
}

/// A tag as TraceQL names it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tag {
    /// `span.x`, `resource.x`, … or unscoped `.x` (`None`).
    Attribute(Option<AttributeScope>, String),
    /// `name`, `status`, `span:kind`, …
    Intrinsic(String),
}

/// TraceQL's attribute and intrinsic names, as Tempo's `ParseIdentifier`
/// accepts them for tag values.
fn parse_tag(text: &str) -> Result<Tag, String> {
    if INTRINSICS.contains(&text) || matches!(text, "span:childCount" | "parent" | "traceStartTime") {
        return Ok(Tag::Intrinsic(text.to_owned()));
    }
    let (scope, name) = if let Some(rest) = text.strip_prefix('.') {
        (None, rest)
    } else {
        let Some((scope, rest)) = text.split_once('.') else {
            return Err(format!("unknown identifier {text:?}: use an intrinsic or scope.attribute"));
        };
        match AttributeScope::from_name(scope) {
            Some(s) => (Some(s), rest),
            None => return Err(format!("unknown attribute scope {scope:?} in {text:?}")),
        }
    };
    let name = if name.starts_with('"') {
        serde_json::from_str::<String>(name)
            .map_err(|_| format!("malformed quoted attribute name in {text:?}"))?
    } else {
        name.to_owned()
    };
    if name.is_empty() {
        return Err(format!("empty attribute name in {text:?}"));
    }
    Ok(Tag::Attribute(scope, name))
}

/// Grafana encodes the tag of the values path twice; the router decoded it
/// once. A second pass applies only where `%XX` sequences remain and
/// decode to UTF-8.
fn decode_again(tag: &str) -> String {
    if !tag.contains('%') {
        return tag.to_owned();
    }
    let b = tag.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| tag.to_owned())
}

fn tag_path(tag: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(tag) = tag.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let tag = decode_again(&tag);
    if tag.is_empty() {
        return Err(ApiError::BadRequest("please provide a non-empty tagName".to_owned()));
    }
    Ok(tag)
}

/// Every span name of every service, sorted.
async fn span_names(state: &Scoped) -> Result<Vec<String>, ApiError> {
    let mut names = BTreeSet::new();
    for service in state.reader.services().await? {
        names.extend(state.reader.operations(&service, None).await?.into_iter().map(|op| op.name));
    }
    Ok(names.into_iter().collect())
}

#[derive(Serialize)]
struct TagValuesV2 {
    #[serde(rename = "tagValues")]
    tag_values: Vec<TagValue>,
}

#[derive(Serialize)]
struct TagValue {
    #[serde(rename = "type")]
    kind: &'static str,
    value: String,
}

fn typed(v: &Value) -> TagValue {
    let kind = match v {
        Value::Int(_) => "int",
        Value::Double(_) => "float",
        Value::Bool(_) => "bool",
        _ => "string",
    };
    TagValue { kind, value: v.to_text() }
}

fn keywords(words: &[&str]) -> Vec<TagValue> {
    words.iter().map(|w| TagValue { kind: "keyword", value: (*w).to_owned() }).collect()
}

fn strings(values: Vec<String>) -> Vec<TagValue> {
    values.into_iter().map(|value| TagValue { kind: "string", value }).collect()
}

/// `GET /api/v2/search/tag/{tag}/values?start=&end=&limit=`: typed values
/// of a TraceQL attribute or intrinsic. `q` (values only of spans matching
/// a TraceQL query) is accepted and not yet applied.
pub(crate) async fn tag_values_v2(
    state: Scoped,
    tag: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, TempoError> {
    let text = tag_path(tag)?;
    let tag =
        parse_tag(&text).map_err(|e| ApiError::BadRequest(format!("please provide a valid tagName: {e}")))?;
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    let query = tag_query(&params)?;
    let tag_values = match tag {
        Tag::Intrinsic(name) => match name.as_str() {
            "status" | "span:status" => keywords(&["ok", "error", "unset"]),
            "kind" | "span:kind" => {
                keywords(&["client", "server", "producer", "consumer", "internal", "unspecified"])
            }
            "name" | "span:name" | "rootName" | "trace:rootName" => strings(span_names(&state).await?),
            "rootServiceName" | "trace:rootService" => strings(state.reader.services().await?),
            _ => Vec::new(),
        },
        Tag::Attribute(scope, name)
            if name == "service.name" && matches!(scope, None | Some(AttributeScope::Resource)) =>
        {
            strings(state.reader.services().await?)
        }
        Tag::Attribute(scope, name) => {
            state.reader.tag_values(scope, &name, &query).await?.iter().map(typed).collect()
        }
    };
    Ok(json(&TagValuesV2 { tag_values }, false)?)
}

#[derive(Serialize)]
struct TagValuesV1 {
    #[serde(rename = "tagValues")]
    tag_values: Vec<String>,
}

/// `GET /api/search/tag/{tag}/values`: the values of a bare attribute name
/// (span or resource) as text, plus Tempo's virtual tags `status.code` and
/// `error`.
pub(crate) async fn tag_values_v1(
    state: Scoped,
    tag: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Response, TempoError> {
    let tag = tag_path(tag)?;
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    let query = tag_query(&params)?;
    let tag_values = match tag.as_str() {
        "status.code" => vec!["unset".to_owned(), "ok".to_owned(), "error".to_owned()],
        "error" => vec!["true".to_owned()],
        "service.name" => state.reader.services().await?,
        _ => {
            let values = state.reader.tag_values(None, &tag, &query).await?;
            values.iter().map(Value::to_text).collect::<BTreeSet<_>>().into_iter().collect()
        }
    };
    Ok(json(&TagValuesV1 { tag_values }, false)?)
}
