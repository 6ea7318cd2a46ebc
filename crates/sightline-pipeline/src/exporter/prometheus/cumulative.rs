//! The latest value of every series, with delta sums and histograms
//! turned into cumulative ones — the Collector's `prometheus` exporter
//! accumulator (`accumulator.go`), which both Prometheus exporters here
//! use: the scrape endpoint serves from it, and remote write runs delta
//! points through it (where the Collector's `prometheusremotewrite` drops
//! them and points users at the `deltatocumulative` processor).
//!
//! Rules, per series (metric name and kind, scope, attributes, job and
//! instance):
//! - gauges, cumulative sums and histograms, summaries: the newest point
//!   wins; an older one is ignored;
//! - delta monotonic sums and delta histograms: a point whose interval
//!   starts at or after the previous point's time is added to it (a gap
//!   means nothing was measured in between); one that overlaps it starts
//!   over (the sender restarted), as in the Collector; one not newer than
//!   the previous is a duplicate (a retried batch) and ignored, so
//!   at-least-once delivery upstream does not double-count;
//! - delta histograms with other bucket bounds than before start over
//!   with the new bounds;
//! - delta non-monotonic sums cannot become a Prometheus type: dropped, as
//!   both Collector exporters do;
//! - a point flagged "no recorded value" ends its series.
//!
//! Series not updated for `expiration` are forgotten; at most
//! [`MAX_SERIES`] are kept (beyond, new series are dropped and counted).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_model::{HistogramPoint, KeyValue, Metric, NO_RECORDED_VALUE, Resource, Scope, SummaryPoint};

use crate::processor::FastMap;

/// Series kept at most.
pub(crate) const MAX_SERIES: usize = 200_000;

/// How a series is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

/// A cumulative (or last-value) point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Point {
    Number { start: u64, time: u64, value: f64 },
    Histogram(HistogramPoint),
    Summary(SummaryPoint),
}

impl Point {
    fn time(&self) -> u64 {
        match self {
            Point::Number { time, .. } => *time,
            Point::Histogram(h) => h.time_unix_nano,
            Point::Summary(s) => s.time_unix_nano,
        }
    }
}

/// One series' latest state.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The metric's Prometheus name (before `_bucket` etc.).
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) kind: Kind,
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) resource: Arc<Resource>,
    pub(crate) point: Point,
    updated: Instant,
}

/// What happened to one incoming point.
#[derive(Debug, PartialEq)]
pub(crate) enum Folded {
    /// Export this (cumulative) point.
    Point(Point),
    /// The series ended (no recorded value): mark it stale; its last
    /// point, if it had one.
    Ended(Option<Point>),
    /// Nothing to export: older than what is known, or a duplicate.
    Skip,
    /// Dropped: beyond [`MAX_SERIES`].
    Full,
}

/// The accumulated series.
pub(crate) struct Accumulator {
    series: FastMap<String, Entry>,
    expiration: Duration,
}

/// Changes not yet applied: remote write applies them only once its batch
/// is safely queued, so a refused batch retried later is not counted twice.
#[derive(Default)]
pub(crate) struct Staged {
    changes: FastMap<String, Option<Entry>>,
}

impl Accumulator {
    pub(crate) fn new(expiration: Duration) -> Accumulator {
        Accumulator { series: FastMap::default(), expiration }
    }

    /// The series' identity.
    pub(crate) fn key(metric: &Metric, name: &str, kind: Kind, attributes: &[KeyValue]) -> String {
        let mut attrs: Vec<String> =
            attributes.iter().map(|kv| format!("{}\u{1}{}", kv.key, kv.value.to_text())).collect();
        attrs.sort();
        let scope: &Scope = &metric.scope;
        format!(
            "{name}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            kind.name(),
            scope.name,
            scope.version,
            super::series::job(&metric.resource).unwrap_or_default(),
            super::series::instance(&metric.resource).unwrap_or_default(),
            attrs.join("\u{2}")
        )
    }

    /// Folds one point into `staged` (on top of what is accumulated).
    /// `delta` says whether `point` covers only its own interval.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fold(
        &self,
        staged: &mut Staged,
        key: String,
        metric: &Metric,
        name: &str,
        kind: Kind,
        attributes: &[KeyValue],
        point: Point,
        delta: bool,
        flags: u32,
    ) -> Folded {
        let previous = match staged.changes.get(&key) {
            Some(change) => change.as_ref(),
            None => self.series.get(&key),
        };
        if flags & NO_RECORDED_VALUE != 0 {
            let last = previous.map(|p| p.point.clone());
            staged.changes.insert(key, None);
            return Folded::Ended(last);
        }
        let point = match previous {
            None => point,
            Some(prev) => match combine(&prev.point, point, delta) {
                Some(p) => p,
                None => return Folded::Skip,
            },
        };
        if previous.is_none() && self.series.len() + staged.changes.len() >= MAX_SERIES {
            return Folded::Full;
        }
        staged.changes.insert(
            key,
            Some(Entry {
                name: name.to_owned(),
                help: metric.description.clone(),
                kind,
                attributes: attributes.to_vec(),
                resource: Arc::clone(&metric.resource),
                point: point.clone(),
                updated: Instant::now(),
            }),
        );
        Folded::Point(point)
    }

    /// Applies staged changes and forgets expired series.
    pub(crate) fn commit(&mut self, staged: Staged) {
        for (key, change) in staged.changes {
            match change {
                Some(entry) => {
                    self.series.insert(key, entry);
                }
                None => {
                    self.series.remove(&key);
                }
            }
        }
        let expiration = self.expiration;
        self.series.retain(|_, e| e.updated.elapsed() < expiration);
    }

    /// The live series.
    pub(crate) fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.series.values()
    }

    /// Number of series kept.
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }
}

/// The point to keep after `prev` given `next`, or `None` to ignore `next`.
fn combine(prev: &Point, next: Point, delta: bool) -> Option<Point> {
    if next.time() < prev.time() || (delta && next.time() == prev.time()) {
        return None;
    }
    if !delta {
        return Some(next);
    }
    Some(match (prev, next) {
        (Point::Number { start, time, value }, Point::Number { start: s, time: t, value: v }) => {
            if s >= *time {
                Point::Number { start: *start, time: t, value: value + v }
            } else {
                Point::Number { start: s, time: t, value: v }
            }
        }
        (Point::Histogram(p), Point::Histogram(mut n)) => {
            if n.start_time_unix_nano >= p.time_unix_nano
                && p.explicit_bounds == n.explicit_bounds
                && p.bucket_counts.len() == n.bucket_counts.len()
            {
                n.start_time_unix_nano = p.start_time_unix_nano;
                n.count += p.count;
                n.sum = match (p.sum, n.sum) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
                for (c, prev) in n.bucket_counts.iter_mut().zip(&p.bucket_counts) {
                    *c += prev;
                }
                n.min = match (p.min, n.min) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    _ => None,
                };
                n.max = match (p.max, n.max) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                };
            }
            Point::Histogram(n)
        }
        (_, next) => next,
    })
}
