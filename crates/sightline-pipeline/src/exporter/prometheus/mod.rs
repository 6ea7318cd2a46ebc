//! The Prometheus exporters: `prometheusremotewrite` pushes samples to a
//! remote-write endpoint (Prometheus, Mimir, Thanos, VictoriaMetrics)
//! through a persistent queue; `prometheus` serves the received series on
//! a scrape endpoint. Sightline keeps no time series itself.
//!
//! Both translate as the Collector does (`names.rs`, `series.rs`) and turn
//! delta temporality into cumulative the way the Collector's `prometheus`
//! exporter does (`cumulative.rs`).

mod cumulative;
mod names;
mod remote;
mod remote_write;
mod scrape;
mod series;
#[cfg(test)]
mod tests;

pub use remote_write::{RemoteWriteConfig, RemoteWriteExporter};
pub use scrape::{ScrapeConfig, ScrapeExporter, ScrapePage};
pub use series::Translation;

use sightline_model::{Metric, MetricData, Temporality};

use cumulative::{Accumulator, Folded, Kind, Point, Staged};
use series::{Sample, base_labels, histogram, millis, push, summary, value_or_stale};

/// Data points that could not be exported, by reason (for a counter).
pub(crate) type Drops = Vec<(&'static str, u64)>;

/// Whether every point is accumulated (the scrape endpoint serves the
/// accumulated state) or only delta points (remote write sends cumulative
/// points as they come).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    All,
    Delta,
}

/// Runs a batch's points through the accumulator (into `staged`) and
/// returns the samples to send now (nothing for [`Keep::All`]).
pub(crate) fn translate(
    metrics: &[Metric],
    t: &Translation,
    acc: &Accumulator,
    staged: &mut Staged,
    keep: Keep,
    drops: &mut Drops,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut resources: Vec<(&sightline_model::Resource, u64)> = Vec::new();
    let mut count_drop = |reason: &'static str, n: usize| {
        if n > 0 {
            match drops.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, count)) => *count += n as u64,
                None => drops.push((reason, n as u64)),
            }
        }
    };
    for metric in metrics {
        let name = names::metric_name(metric, &t.namespace, t.add_suffixes);
        let mut latest = 0u64;
        // One point: through the accumulator when kept, else straight out.
        let mut handle =
            |kind: Kind, attrs: &[sightline_model::KeyValue], point: Point, delta: bool, flags: u32| {
                let time = match &point {
                    Point::Number { time, .. } => *time,
                    Point::Histogram(h) => h.time_unix_nano,
                    Point::Summary(s) => s.time_unix_nano,
                };
                latest = latest.max(time);
                let point = if keep == Keep::All || delta {
                    let key = Accumulator::key(metric, &name, kind, attrs);
                    match acc.fold(staged, key, metric, &name, kind, attrs, point, delta, flags) {
                        Folded::Point(p) => p,
                        Folded::Ended(Some(last)) if keep == Keep::Delta => {
                            let base = base_labels(&metric.resource, attrs, t);
                            emit(&mut out, &name, &base, &at(last, time), sightline_model::NO_RECORDED_VALUE);
                            return None;
                        }
                        Folded::Ended(_) | Folded::Skip => return None,
                        Folded::Full => return Some("series_limit"),
                    }
                } else {
                    point
                };
                if keep == Keep::Delta {
                    emit(&mut out, &name, &base_labels(&metric.resource, attrs, t), &point, flags);
                }
                None
            };
        let mut failed: Vec<&'static str> = Vec::new();
        match &metric.data {
            MetricData::Empty => {}
            MetricData::Gauge(points) => {
                for p in points {
                    let point = Point::Number {
                        start: p.start_time_unix_nano,
                        time: p.time_unix_nano,
                        value: p.value.map_or(0.0, |v| v.as_f64()),
                    };
                    failed.extend(handle(Kind::Gauge, &p.attributes, point, false, p.flags));
                }
            }
            MetricData::Sum { points, temporality, monotonic } => {
                let delta = match (temporality, monotonic) {
                    (Temporality::Cumulative, _) => false,
                    (Temporality::Delta, true) => true,
                    (Temporality::Delta, false) => {
                        count_drop("delta_non_monotonic_sum", points.len());
                        continue;
                    }
                    (Temporality::Unspecified, _) => {
                        count_drop("unspecified_temporality", points.len());
                        continue;
                    }
                };
                let kind = if *monotonic { Kind::Counter } else { Kind::Gauge };
                for p in points {
                    let point = Point::Number {
                        start: p.start_time_unix_nano,
                        time: p.time_unix_nano,
                        value: p.value.map_or(0.0, |v| v.as_f64()),
                    };
                    failed.extend(handle(kind, &p.attributes, point, delta, p.flags));
                }
            }
            MetricData::Histogram { points, temporality } => {
                let delta = match temporality {
                    Temporality::Cumulative => false,
                    Temporality::Delta => true,
                    Temporality::Unspecified => {
                        count_drop("unspecified_temporality", points.len());
                        continue;
                    }
                };
                for p in points {
                    failed.extend(handle(
                        Kind::Histogram,
                        &p.attributes,
                        Point::Histogram(p.clone()),
                        delta,
                        p.flags,
                    ));
                }
            }
            MetricData::Summary(points) => {
                for p in points {
                    failed.extend(handle(
                        Kind::Summary,
                        &p.attributes,
                        Point::Summary(p.clone()),
                        false,
                        p.flags,
                    ));
                }
            }
            MetricData::ExponentialHistogram { points, .. } => {
                // Prometheus reads these only as native histograms (behind a
                // feature flag before 3.0); the Collector's scrape exporter
                // drops them too.
                count_drop("exponential_histogram", points.len());
                continue;
            }
        }
        for reason in failed {
            count_drop(reason, 1);
        }
        match resources.iter_mut().find(|(r, _)| std::ptr::eq(*r, &*metric.resource)) {
            Some((_, t)) => *t = (*t).max(latest),
            None => resources.push((&metric.resource, latest)),
        }
    }
    if keep == Keep::Delta {
        for (resource, latest) in resources {
            if let Some(labels) = series::target_info(resource, t)
                && latest > 0
            {
                push(&mut out, &series::target_info_name(t), &labels, None, 1.0, millis(latest));
            }
        }
    }
    out
}

/// `point` moved to `time` (to mark its series stale then).
fn at(point: Point, time: u64) -> Point {
    match point {
        Point::Number { start, value, .. } => Point::Number { start, time, value },
        Point::Histogram(mut h) => {
            h.time_unix_nano = time;
            Point::Histogram(h)
        }
        Point::Summary(mut s) => {
            s.time_unix_nano = time;
            Point::Summary(s)
        }
    }
}

/// The samples of one point.
fn emit(out: &mut Vec<Sample>, name: &str, base: &series::Labels, point: &Point, flags: u32) {
    match point {
        Point::Number { time, value, .. } => {
            push(out, name, base, None, value_or_stale(*value, flags), millis(*time))
        }
        Point::Histogram(h) => {
            let mut h = h.clone();
            h.flags |= flags;
            histogram(out, name, base, &h)
        }
        Point::Summary(s) => {
            let mut s = s.clone();
            s.flags |= flags;
            summary(out, name, base, &s)
        }
    }
}
