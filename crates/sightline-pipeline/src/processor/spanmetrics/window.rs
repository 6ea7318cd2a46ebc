//! The in-memory time series behind Jaeger's Monitor tab: per (service,
//! operation, kind), per minute, the calls, errors and a latency histogram,
//! for a bounded window.
//!
//! Queries evaluate like a Prometheus range query over counters: one point
//! every `step` from `end - lookback` to `end`, each summarising the minutes
//! that start in `[t - rate_per, t)`. Latency quantiles interpolate linearly
//! inside a bucket, as Prometheus' `histogram_quantile` does.

use std::collections::{BTreeMap, VecDeque};

use sightline_model::{MetricPoint, QueryError};

/// Resolution of the series: one minute, in ms.
pub(crate) const MINUTE_MS: i64 = 60_000;

/// At most this many points per series, Prometheus' own limit for a range
/// query.
pub(crate) const MAX_POINTS: i64 = 11_000;

/// One minute of one series.
#[derive(Debug, Clone)]
struct Minute {
    /// Minute index: ms since the epoch / 60 000.
    at: i64,
    calls: u32,
    errors: u32,
    /// Counts per latency bucket (`bounds.len() + 1`, the last is `+Inf`).
    latency: Box<[u32]>,
}

/// Minutes of one (service, operation, kind), oldest first, only those with
/// spans.
#[derive(Debug, Default)]
pub(crate) struct Window {
    minutes: VecDeque<Minute>,
}

impl Window {
    /// Counts one span seen at `now_ms`, in latency bucket `bucket` of
    /// `buckets`.
    pub(crate) fn record(&mut self, now_ms: i64, error: bool, bucket: usize, buckets: usize) {
        let at = now_ms.div_euclid(MINUTE_MS);
        // Usually the newest minute; a clock step backwards lands earlier.
        let pos = self.minutes.iter().rposition(|m| m.at <= at);
        let index = match pos {
            Some(i) if self.minutes.get(i).is_some_and(|m| m.at == at) => i,
            other => {
                let i = other.map_or(0, |i| i + 1);
                self.minutes.insert(
                    i,
                    Minute { at, calls: 0, errors: 0, latency: vec![0; buckets].into_boxed_slice() },
                );
                i
            }
        };
        if let Some(m) = self.minutes.get_mut(index) {
            m.calls = m.calls.saturating_add(1);
            if error {
                m.errors = m.errors.saturating_add(1);
            }
            if let Some(c) = m.latency.get_mut(bucket) {
                *c = c.saturating_add(1);
            }
        }
    }

    /// Drops minutes before `oldest` (a minute index).
    pub(crate) fn prune(&mut self, oldest: i64) {
        while self.minutes.front().is_some_and(|m| m.at < oldest) {
            self.minutes.pop_front();
        }
    }
}

/// What a query asks of merged minutes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Measure {
    /// Calls per second.
    CallRate,
    /// Errors / calls.
    ErrorRate,
    /// A latency quantile, in ms.
    Latency(f64),
}

/// The evaluation times of a query, validated like Prometheus validates a
/// range query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Range {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub rate_per: i64,
}

impl Range {
    pub(crate) fn new(end: i64, lookback: i64, step: i64, rate_per: i64) -> Result<Range, QueryError> {
        if step <= 0 {
            return Err(QueryError::Invalid(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        if rate_per <= 0 {
            return Err(QueryError::Invalid("ratePer must be a positive number of milliseconds".into()));
        }
        if lookback < 0 {
            return Err(QueryError::Invalid("lookback must not be negative".into()));
        }
        if lookback / step >= MAX_POINTS {
            return Err(QueryError::Invalid(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                    .into(),
            ));
        }
        let start = end
            .checked_sub(lookback)
            .ok_or_else(|| QueryError::Invalid("lookback is out of range".into()))?;
        Ok(Range { start, end, step, rate_per })
    }
}

/// Calls, errors and latency bucket counts of one minute.
type Sums = (u64, u64, Vec<u64>);

/// Minutes of several windows summed per minute.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    minutes: BTreeMap<i64, Sums>,
}

impl Merged {
    /// Adds the minutes of `window` that can matter for `range`.
    pub(crate) fn add(&mut self, window: &Window, range: &Range) {
        let first = range.start.saturating_sub(range.rate_per).div_euclid(MINUTE_MS);
        let last = range.end.div_euclid(MINUTE_MS);
        for m in window.minutes.iter().filter(|m| m.at >= first && m.at <= last) {
            let entry = self.minutes.entry(m.at).or_insert_with(|| (0, 0, vec![0; m.latency.len()]));
            entry.0 += u64::from(m.calls);
            entry.1 += u64::from(m.errors);
            for (sum, c) in entry.2.iter_mut().zip(m.latency.iter()) {
                *sum += u64::from(*c);
            }
        }
    }

    /// Whether nothing was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.minutes.is_empty()
    }

    /// The points of `measure` over `range`. Call rates start at the first
    /// minute with data and read 0 in quiet windows, as a Prometheus `rate`
    /// over a live counter does; error rates have a point wherever call
    /// rates do (0 without calls); latencies only where the window has
    /// calls. `bounds_ms` are the latency buckets' upper bounds.
    pub(crate) fn points(&self, range: &Range, measure: Measure, bounds_ms: &[f64]) -> Vec<MetricPoint> {
        let Some(first_ms) = self.minutes.keys().next().map(|at| at.saturating_mul(MINUTE_MS)) else {
            return Vec::new();
        };
        let minutes: Vec<(i64, &Sums)> =
            self.minutes.iter().map(|(at, v)| (at.saturating_mul(MINUTE_MS), v)).collect();
        let rate_seconds = range.rate_per as f64 / 1000.0;
        let mut out = Vec::new();
        let mut t = range.start;
        while t <= range.end {
            if t >= first_ms {
                let lo = minutes.partition_point(|(start, _)| *start < t.saturating_sub(range.rate_per));
                let hi = minutes.partition_point(|(start, _)| *start < t);
                let slice = minutes.get(lo..hi).unwrap_or_default();
                let calls: u64 = slice.iter().map(|(_, v)| v.0).sum();
                let value = match measure {
                    Measure::CallRate => Some(calls as f64 / rate_seconds),
                    Measure::ErrorRate => {
                        let errors: u64 = slice.iter().map(|(_, v)| v.1).sum();
                        Some(if calls == 0 { 0.0 } else { errors as f64 / calls as f64 })
                    }
                    Measure::Latency(q) if calls > 0 => {
                        let mut counts = vec![0u64; bounds_ms.len() + 1];
                        for (_, v) in slice {
                            for (sum, c) in counts.iter_mut().zip(v.2.iter()) {
                                *sum += *c;
                            }
                        }
                        Some(histogram_quantile(q, bounds_ms, &counts))
                    }
                    Measure::Latency(_) => None,
                };
                if let Some(value) = value.filter(|v| v.is_finite()) {
                    out.push(MetricPoint { timestamp_unix_millis: t, value });
                }
            }
            match t.checked_add(range.step) {
                Some(next) => t = next,
                None => break,
            }
        }
        out
    }
}

/// Prometheus' `histogram_quantile` over explicit buckets: the bucket
/// holding rank `q · total`, linearly interpolated between its bounds (the
/// first bucket starts at 0); a rank in the `+Inf` bucket returns the
/// largest finite bound. `counts` has one more entry than `bounds`.
pub(crate) fn histogram_quantile(q: f64, bounds: &[f64], counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 || q.is_nan() {
        return f64::NAN;
    }
    if q <= 0.0 {
        return 0.0;
    }
    let rank = q.min(1.0) * total as f64;
    let mut below = 0u64;
    for (i, count) in counts.iter().enumerate() {
        let cumulative = below + count;
        if cumulative as f64 >= rank && *count > 0 {
            let Some(upper) = bounds.get(i) else {
                // The +Inf bucket: the highest finite bound is all we know.
                return bounds.last().copied().unwrap_or(f64::NAN);
            };
            let lower = if i == 0 { 0.0f64.min(*upper) } else { bounds.get(i - 1).copied().unwrap_or(0.0) };
            let within = (rank - below as f64) / *count as f64;
            return lower + (upper - lower) * within;
        }
        below = cumulative;
    }
    bounds.last().copied().unwrap_or(f64::NAN)
}
