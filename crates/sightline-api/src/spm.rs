//! Jaeger's service performance monitoring API, which the Monitor tab of
//! Jaeger UI reads: `/api/metrics/{latencies,calls,errors,minstep}`.
//!
//! Parameters, names and help texts follow Jaeger's `http_handler.go`,
//! `query_parser.go` and its Prometheus metrics reader: the answer is a
//! bare `MetricFamily` (no envelope) named `service_latencies`,
//! `service_call_rate` or `service_error_rate` — `service_operation_…` when
//! grouped by operation — with gauge points; `minstep` answers in the
//! envelope. Without a [`SpanMetricsReader`] every route answers 501 as
//! Jaeger does when no metrics store is configured.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use sightline_model::MetricSeries;

use crate::ApiState;
use crate::dto::{Envelope, GaugeValue, Label, Metric, MetricFamily, MetricPoint};
use crate::error::ApiError;
use crate::params::{self, Params};
use crate::scope::Scoped;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Which family a route answers.
#[derive(Debug, Clone, Copy)]
enum Measure {
    Latencies(f64),
    Calls,
    Errors,
}

impl Measure {
    fn name_and_help(self) -> (&'static str, String) {
        match self {
            Measure::Latencies(q) => {
                ("service_latencies", format!("{q:.2}th quantile latency, grouped by service"))
            }
            Measure::Calls => ("service_call_rate", "calls/sec, grouped by service".to_owned()),
            Measure::Errors => (
                "service_error_rate",
                "error rate, computed as a fraction of errors/sec over calls/sec, grouped by service"
                    .to_owned(),
            ),
        }
    }
}

/// Parses the common parameters, then asks the reader (501 without one).
async fn family(state: &Scoped, params: &Params<'_>, measure: Measure) -> Result<Response, ApiError> {
    let mut query = params::metrics_query(params, now_ms())?;
    query.tenant = state.tenant.clone();
    let reader = state.span_metrics.as_deref().ok_or(ApiError::MetricsDisabled)?;
    let (name, help) = measure.name_and_help();
    let (name, help) = if query.group_by_operation {
        (name.replacen("service", "service_operation", 1), format!("{help} & operation"))
    } else {
        (name.to_owned(), help)
    };
    let series = match measure {
        Measure::Latencies(q) => reader.latencies(&query, q).await?,
        Measure::Calls => reader.call_rates(&query).await?,
        Measure::Errors => reader.error_rates(&query).await?,
    };
    Ok(Json(MetricFamily { name, kind: "GAUGE", help, metrics: series.into_iter().map(metric).collect() })
        .into_response())
}

fn metric(series: MetricSeries) -> Metric {
    Metric {
        labels: series.labels.into_iter().map(|(name, value)| Label { name, value }).collect(),
        metric_points: series
            .points
            .into_iter()
            .map(|p| MetricPoint {
                gauge_value: GaugeValue { double_value: p.value },
                timestamp: rfc3339_millis(p.timestamp_unix_millis),
            })
            .collect(),
    }
}

/// `GET /api/metrics/latencies?service=…&quantile=…`: quantile latencies in
/// ms. `quantile` is checked first, as Jaeger does.
pub(crate) async fn latencies(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref().unwrap_or(""));
    let quantile = params::quantile(&params)?;
    family(&state, &params, Measure::Latencies(quantile)).await
}

/// `GET /api/metrics/calls?service=…`: calls per second.
pub(crate) async fn calls(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    family(&state, &Params::parse(raw.as_deref().unwrap_or("")), Measure::Calls).await
}

/// `GET /api/metrics/errors?service=…`: errors as a fraction of calls.
pub(crate) async fn errors(state: Scoped, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    family(&state, &Params::parse(raw.as_deref().unwrap_or("")), Measure::Errors).await
}

/// `GET /api/metrics/minstep`: the reader's resolution in ms, in the
/// envelope.
/// The same for every tenant: no reader lookup.
pub(crate) async fn min_step(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let reader = state.span_metrics.as_deref().ok_or(ApiError::MetricsDisabled)?;
    let ms = i64::try_from(reader.min_step().as_millis()).unwrap_or(i64::MAX);
    Ok(Json(Envelope::ok(ms, 0)).into_response())
}

/// A protobuf `Timestamp` as `jsonpb` writes it: RFC 3339 in UTC, with 0,
/// 3, 6 or 9 fractional digits (here 0 or 3).
pub(crate) fn rfc3339_millis(unix_millis: i64) -> String {
    let seconds = unix_millis.div_euclid(1000);
    let millis = unix_millis.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (h, m, s) = (in_day / 3600, in_day % 3600 / 60, in_day % 60);
    if millis == 0 {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
