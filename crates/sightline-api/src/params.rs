//! Query-string parsing, following Jaeger's `cmd/query/app/query_parser.go`:
//! the same parameters, defaults, validation order and error texts.
//!
//! Parameters are read from the raw query string because Jaeger clients
//! repeat some of them (`tag=…&tag=…`, `traceID=…&traceID=…`). As with Go's
//! `FormValue`, a single-valued parameter takes its first occurrence and an
//! empty value counts as absent.

use std::borrow::Cow;

use sightline_model::{MetricsQuery, SpanKind, TagFilter, Tenant, TraceId, TraceQuery};

use crate::duration::parse_go_duration;
use crate::error::ApiError;
use crate::ids::parse_trace_id;

/// Traces returned by `/api/traces` when `limit` is absent: Jaeger's
/// `defaultQueryLimit`.
pub(crate) const DEFAULT_LIMIT: usize = 100;

/// `/api/dependencies` window when `lookback` is absent: Jaeger's 24 hours.
pub(crate) const DEFAULT_DEPENDENCY_LOOKBACK_MS: u64 = 24 * 60 * 60 * 1_000;

/// `/api/metrics/*` defaults, from Jaeger's `default_params.go`: one hour
/// back, a point every 5 s, rates over 10 min, server spans.
pub(crate) const DEFAULT_METRICS_LOOKBACK_MS: i64 = 60 * 60 * 1_000;
pub(crate) const DEFAULT_METRICS_STEP_MS: i64 = 5_000;
pub(crate) const DEFAULT_METRICS_RATE_PER_MS: i64 = 10 * 60 * 1_000;

/// The decoded `name=value` pairs of a query string, in order.
pub(crate) struct Params<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Params<'a> {
    /// Decodes `raw` (without the `?`), percent-decoding and turning `+`
    /// into spaces.
    pub(crate) fn parse(raw: &'a str) -> Self {
        Params { pairs: form_urlencoded::parse(raw.as_bytes()).collect() }
    }

    /// The first value of `name`, `None` when absent or empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_ref()).filter(|v| !v.is_empty())
    }

    /// Every pair, in order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    /// Every value of `name`, in order.
    pub(crate) fn all<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.pairs.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_ref())
    }
}

/// A parsed `/api/traces` request: either a search or a list of ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchRequest {
    /// The search (ignored when `trace_ids` is non-empty).
    pub query: TraceQuery,
    /// Traces asked for by id (`traceID=…`, repeatable), in the caller's
    /// spelling; `None` is the all-zero id, which is never found.
    pub trace_ids: Vec<(String, Option<TraceId>)>,
}

/// Parses `/api/traces` parameters: `service` (required without
/// `traceID`), `operation`, `tag`/`tags`, `start`/`end` (µs), `limit`,
/// `minDuration`/`maxDuration` (Go durations), `traceID`. `lookback` is
/// only a UI hint that `start` already reflects, so it is ignored.
///
/// Unlike Jaeger, an absent `start`/`end` leaves that bound open instead of
/// defaulting to "the last two days": both UIs always send them, and an
/// explicit window keeps the query deterministic.
pub(crate) fn search(params: &Params<'_>) -> Result<SearchRequest, ApiError> {
    let start_min_unix_nanos = micros_param(params, "start")?;
    let start_max_unix_nanos = micros_param(params, "end")?;
    let tags = tags(params)?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<i32>() {
            Ok(0) => DEFAULT_LIMIT,
            Ok(n) => {
                usize::try_from(n).map_err(|_| invalid("limit", format!("must not be negative, got {n}")))?
            }
            Err(e) => return Err(invalid("limit", format!("{e}: {text:?}"))),
        },
    };
    let min_duration_nanos = duration_param(params, "minDuration")?;
    let max_duration_nanos = duration_param(params, "maxDuration")?;
    let trace_ids = params
        .all("traceID")
        .map(|text| {
            parse_trace_id(text)
                .map(|id| (text.to_owned(), id))
                .map_err(|e| ApiError::BadRequest(format!("cannot parse traceID param: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let service = params.get("service").map(str::to_owned);
    if trace_ids.is_empty() && service.is_none() {
        return Err(ApiError::BadRequest("parameter 'service' is required".to_owned()));
    }
    if let (Some(min), Some(max)) = (min_duration_nanos, max_duration_nanos)
        && max < min
    {
        return Err(ApiError::BadRequest("'maxDuration' should be greater than 'minDuration'".to_owned()));
    }
    Ok(SearchRequest {
        query: TraceQuery {
            service,
            operation: params.get("operation").map(str::to_owned),
            tags,
            min_duration_nanos,
            max_duration_nanos,
            start_min_unix_nanos,
            start_max_unix_nanos,
            limit,
        },
        trace_ids,
    })
}

/// The `spanKind` of `/api/operations`, any case: `Ok(None)` for every
/// kind (absent or empty), `Err(())` for a kind no span can have — Jaeger
/// passes it to storage, which finds no operation of it.
pub(crate) fn span_kind(params: &Params<'_>) -> Result<Option<SpanKind>, ()> {
    match params.get("spanKind") {
        None => Ok(None),
        Some(text) => SpanKind::from_jaeger_name(text).map(Some).ok_or(()),
    }
}

/// A required `service` parameter.
pub(crate) fn required_service<'p>(params: &'p Params<'_>) -> Result<&'p str, ApiError> {
    params.get("service").ok_or_else(|| ApiError::BadRequest("parameter 'service' is required".to_owned()))
}

/// The `/api/dependencies` window in ns: `endTs` (ms since the epoch,
/// default `now_ms`) and `lookback` (ms, default 24h).
pub(crate) fn dependencies(params: &Params<'_>, now_ms: u64) -> Result<(u64, u64), ApiError> {
    let end_ms = millis_param(params, "endTs")?.unwrap_or(now_ms);
    let lookback_ms = millis_param(params, "lookback")?.unwrap_or(DEFAULT_DEPENDENCY_LOOKBACK_MS);
    let end = end_ms.checked_mul(1_000_000).ok_or_else(|| invalid("endTs", "out of range".to_owned()))?;
    let lookback =
        lookback_ms.checked_mul(1_000_000).ok_or_else(|| invalid("lookback", "out of range".to_owned()))?;
    Ok((end, lookback))
}

/// Parses `/api/metrics/{latencies,calls,errors}` parameters in the order
/// and with the texts of Jaeger's `parseMetricsQueryParams`: `service`
/// (required, repeatable, may be empty), `groupByOperation` (Go
/// `ParseBool`), `spanKind` (repeatable; default server), `endTs` (ms,
/// default now), `lookback`, `step`, `ratePer` (ms), then `tag`/`tags`.
/// Tag filters parse as Jaeger parses them but are refused: span metrics
/// carry no span attributes beyond their dimensions.
pub(crate) fn metrics_query(params: &Params<'_>, now_ms: i64) -> Result<MetricsQuery, ApiError> {
    let services: Vec<String> = params.all("service").map(str::to_owned).collect();
    if services.is_empty() {
        return Err(invalid("service", "please provide at least one service name".to_owned()));
    }
    let group_by_operation = match params.get("groupByOperation") {
        None => false,
        Some(text) => go_parse_bool(text).ok_or_else(|| {
            invalid("groupByOperation", format!("strconv.ParseBool: parsing {text:?}: invalid syntax"))
        })?,
    };
    let kinds: Vec<&str> = params.all("spanKind").collect();
    let span_kinds = if kinds.is_empty() {
        vec![SpanKind::Server]
    } else {
        kinds
            .iter()
            .map(|k| {
                metrics_span_kind(k)
                    .ok_or_else(|| invalid("spanKind", format!("unsupported span kind: '{k}'")))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let end_unix_millis = go_int_param(params, "endTs")?.unwrap_or(now_ms);
    let lookback_millis = go_int_param(params, "lookback")?.unwrap_or(DEFAULT_METRICS_LOOKBACK_MS);
    let step_millis = go_int_param(params, "step")?.unwrap_or(DEFAULT_METRICS_STEP_MS);
    let rate_per_millis = go_int_param(params, "ratePer")?.unwrap_or(DEFAULT_METRICS_RATE_PER_MS);
    if !tags(params)?.is_empty() {
        return Err(ApiError::BadRequest(
            "span metrics cannot be filtered by tags; remove 'tag'/'tags' or add the attribute as a spanmetrics dimension"
                .to_owned(),
        ));
    }
    Ok(MetricsQuery {
        // The handler narrows it to the request's tenant.
        tenant: Tenant::default(),
        services,
        span_kinds,
        group_by_operation,
        end_unix_millis,
        lookback_millis,
        step_millis,
        rate_per_millis,
    })
}

/// `quantile` of `/api/metrics/latencies`, parsed first as Jaeger does,
/// with Go's `ParseFloat` errors (an absent or empty value is invalid).
pub(crate) fn quantile(params: &Params<'_>) -> Result<f64, ApiError> {
    let text = params.all("quantile").next().unwrap_or("");
    let syntax = || invalid("quantile", format!("strconv.ParseFloat: parsing {text:?}: invalid syntax"));
    let value: f64 = text.parse().map_err(|_| syntax())?;
    let spelled_infinite = text.trim_start_matches(['+', '-']).to_ascii_lowercase().starts_with("inf");
    if value.is_infinite() && !spelled_infinite {
        return Err(invalid("quantile", format!("strconv.ParseFloat: parsing {text:?}: value out of range")));
    }
    Ok(value)
}

/// Jaeger's metrics span kinds, in any case (`StringToProtoSpanKind`
/// lower-cases).
fn metrics_span_kind(text: &str) -> Option<SpanKind> {
    Some(match text.to_ascii_lowercase().as_str() {
        "unspecified" => SpanKind::Unspecified,
        "internal" => SpanKind::Internal,
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => return None,
    })
}

/// Go's `strconv.ParseBool`.
pub(crate) fn go_parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A signed integer parameter with Go's `strconv.ParseInt` errors; absent
/// or empty is `None`.
pub(crate) fn go_int_param(params: &Params<'_>, name: &'static str) -> Result<Option<i64>, ApiError> {
    let Some(text) = params.get(name) else { return Ok(None) };
    text.parse::<i64>().map(Some).map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => "value out of range",
            _ => "invalid syntax",
        };
        invalid(name, format!("strconv.ParseInt: parsing {text:?}: {why}"))
    })
}

/// A boolean parameter with Go's `strconv.ParseBool` errors; absent or
/// empty is `false`.
pub(crate) fn go_bool_param(params: &Params<'_>, name: &'static str) -> Result<bool, ApiError> {
    match params.get(name) {
        None => Ok(false),
        Some(text) => go_parse_bool(text)
            .ok_or_else(|| invalid(name, format!("strconv.ParseBool: parsing {text:?}: invalid syntax"))),
    }
}

pub(crate) fn invalid(param: &'static str, reason: String) -> ApiError {
    ApiError::InvalidParam { param, reason }
}

/// A non-negative integer parameter.
fn unsigned_param(params: &Params<'_>, name: &'static str) -> Result<Option<u64>, ApiError> {
    let Some(text) = params.get(name) else { return Ok(None) };
    match text.parse::<i64>() {
        Ok(v) => {
            u64::try_from(v).map(Some).map_err(|_| invalid(name, format!("must not be negative, got {v}")))
        }
        Err(e) => Err(invalid(name, format!("{e}: {text:?}"))),
    }
}

/// A time in µs since the epoch, returned in ns.
pub(crate) fn micros_param(params: &Params<'_>, name: &'static str) -> Result<Option<u64>, ApiError> {
    unsigned_param(params, name)?
        .map(|us| us.checked_mul(1_000).ok_or_else(|| invalid(name, format!("{us}µs is out of range"))))
        .transpose()
}

fn millis_param(params: &Params<'_>, name: &'static str) -> Result<Option<u64>, ApiError> {
    unsigned_param(params, name)
}

/// A Go duration in ns. Zero means "no bound", as in Jaeger.
fn duration_param(params: &Params<'_>, name: &'static str) -> Result<Option<u64>, ApiError> {
    let Some(text) = params.get(name) else { return Ok(None) };
    let nanos = parse_go_duration(text).map_err(|e| invalid(name, e.to_string()))?;
    match u64::try_from(nanos) {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(invalid(name, format!("negative duration {text:?}"))),
    }
}

/// `tag=key:value` (repeatable; the value may contain `:`) and `tags=` JSON
/// objects of strings, merged in that order with a later value for the same
/// key replacing the earlier one — Jaeger collects them into one map.
pub(crate) fn tags(params: &Params<'_>) -> Result<Vec<TagFilter>, ApiError> {
    let mut out: Vec<TagFilter> = Vec::new();
    let mut put = |key: &str, value: &str| match out.iter_mut().find(|t| t.key == key) {
        Some(existing) => existing.value = value.to_owned(),
        None => out.push(TagFilter { key: key.to_owned(), value: value.to_owned() }),
    };
    for tag in params.all("tag") {
        let Some((key, value)) = tag.split_once(':') else {
            return Err(ApiError::BadRequest(format!(
                "malformed 'tag' parameter, expecting key:value, received: {tag}"
            )));
        };
        put(key, value);
    }
    for json in params.all("tags") {
        // Jaeger decodes into map[string]string, so non-string values are
        // rejected, and `null` is an empty map. serde_json's map is sorted,
        // which keeps the resulting filter order deterministic.
        let map: Option<std::collections::BTreeMap<String, String>> =
            serde_json::from_str(json).map_err(|e| {
                ApiError::BadRequest(format!("malformed 'tags' parameter, cannot unmarshal JSON: {e}"))
            })?;
        for (key, value) in map.iter().flatten() {
            put(key, value);
        }
    }
    Ok(out)
}
