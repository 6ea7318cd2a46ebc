//! OTLP metrics ⇄ model.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1 as pm;

use super::logs::{optional_span_id, optional_trace_id};
use super::note_reason;
use super::{MAX_REASONS, encode_groups, encode_kvs, exact, kvs};
use crate::{
    Exemplar, ExponentialBuckets, ExponentialHistogramPoint, HistogramPoint, Metric, MetricData, Number,
    NumberPoint, SummaryPoint, Temporality,
};

/// The outcome of decoding one metrics export request.
#[derive(Debug, Default)]
pub struct DecodedMetrics {
    /// Metrics with the data points that passed validation, in request
    /// order (a metric whose points were all rejected is left out).
    pub metrics: Vec<Metric>,
    /// Number of data points rejected.
    pub rejected: u64,
    /// Why data points were rejected (the first few reasons), empty if none.
    pub error_message: String,
}

/// Decodes a metrics export request. A data point is rejected (and
/// counted for OTLP partial success) when an exemplar's id has the wrong
/// length or a histogram's bucket counts do not fit its bounds — data an
/// exporter could not translate faithfully.
pub fn decode_metrics_request(request: ExportMetricsServiceRequest) -> DecodedMetrics {
    let mut out = DecodedMetrics::default();
    let mut reasons = 0usize;
    for (ri, rm) in request.resource_metrics.into_iter().enumerate() {
        let resource = Arc::new(super::decode_resource(rm.resource, rm.schema_url));
        for (si, sm) in rm.scope_metrics.into_iter().enumerate() {
            let scope = Arc::new(super::decode_scope(sm.scope, sm.schema_url));
            for (mi, metric) in sm.metrics.into_iter().enumerate() {
                let mut problems = Vec::new();
                let data = decode_data(metric.data, &mut problems);
                for (pi, why) in &problems {
                    out.rejected += 1;
                    note_reason(
                        &mut out.error_message,
                        &mut reasons,
                        format_args!(
                            "resourceMetrics[{ri}].scopeMetrics[{si}].metrics[{mi}] ({}): data point {pi}: {why}",
                            metric.name
                        ),
                    );
                }
                let decoded = Metric {
                    name: metric.name,
                    description: metric.description,
                    unit: metric.unit,
                    metadata: kvs(metric.metadata),
                    data,
                    resource: Arc::clone(&resource),
                    scope: Arc::clone(&scope),
                };
                // A metric whose every point was refused is dropped; one
                // sent without points is kept.
                if problems.is_empty() || decoded.data_points() > 0 {
                    out.metrics.push(decoded);
                }
            }
        }
    }
    if out.rejected > 0 {
        out.error_message = format!(
            "{} data point(s) rejected: {}{}",
            out.rejected,
            out.error_message,
            if reasons > MAX_REASONS { "; …" } else { "" }
        );
    }
    out
}

/// Rejections: (index of the point in its metric, why).
type Problems = Vec<(usize, String)>;

/// The data with its valid points; each refused point goes to `problems`.
fn decode_data(data: Option<pm::metric::Data>, problems: &mut Problems) -> MetricData {
    use pm::metric::Data;
    match data {
        None => MetricData::Empty,
        Some(Data::Gauge(g)) => MetricData::Gauge(points(g.data_points, number_point, problems)),
        Some(Data::Sum(s)) => MetricData::Sum {
            points: points(s.data_points, number_point, problems),
            temporality: Temporality::from_i32(s.aggregation_temporality),
            monotonic: s.is_monotonic,
        },
        Some(Data::Histogram(h)) => MetricData::Histogram {
            points: points(h.data_points, histogram_point, problems),
            temporality: Temporality::from_i32(h.aggregation_temporality),
        },
        Some(Data::ExponentialHistogram(h)) => MetricData::ExponentialHistogram {
            points: points(h.data_points, exponential_point, problems),
            temporality: Temporality::from_i32(h.aggregation_temporality),
        },
        Some(Data::Summary(s)) => MetricData::Summary(points(s.data_points, summary_point, problems)),
    }
}

fn points<P, T>(list: Vec<P>, f: fn(P) -> Result<T, String>, problems: &mut Problems) -> Vec<T> {
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.into_iter().enumerate() {
        match f(p) {
            Ok(p) => out.push(p),
            Err(why) => problems.push((i, why)),
        }
    }
    out
}

fn number_point(p: pm::NumberDataPoint) -> Result<NumberPoint, String> {
    use pm::number_data_point::Value as V;
    Ok(NumberPoint {
        attributes: kvs(p.attributes),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        value: p.value.map(|v| match v {
            V::AsInt(i) => Number::Int(i),
            V::AsDouble(d) => Number::Double(d),
        }),
        exemplars: exemplars(p.exemplars)?,
        flags: p.flags,
    })
}

fn histogram_point(p: pm::HistogramDataPoint) -> Result<HistogramPoint, String> {
    if !p.bucket_counts.is_empty() && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
        return Err(format!(
            "{} bucket counts for {} explicit bounds; expected {} (one more than the bounds) or none",
            p.bucket_counts.len(),
            p.explicit_bounds.len(),
            p.explicit_bounds.len() + 1
        ));
    }
    if p.explicit_bounds.windows(2).any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less)) {
        return Err("explicit bounds must be strictly increasing".into());
    }
    Ok(HistogramPoint {
        attributes: kvs(p.attributes),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        count: p.count,
        sum: p.sum,
        bucket_counts: p.bucket_counts,
        explicit_bounds: p.explicit_bounds,
        exemplars: exemplars(p.exemplars)?,
        flags: p.flags,
        min: p.min,
        max: p.max,
    })
}

fn exponential_point(p: pm::ExponentialHistogramDataPoint) -> Result<ExponentialHistogramPoint, String> {
    let buckets = |b: Option<pm::exponential_histogram_data_point::Buckets>| {
        b.map(|b| ExponentialBuckets { offset: b.offset, bucket_counts: b.bucket_counts }).unwrap_or_default()
    };
    Ok(ExponentialHistogramPoint {
        attributes: kvs(p.attributes),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        count: p.count,
        sum: p.sum,
        scale: p.scale,
        zero_count: p.zero_count,
        positive: buckets(p.positive),
        negative: buckets(p.negative),
        flags: p.flags,
        exemplars: exemplars(p.exemplars)?,
        min: p.min,
        max: p.max,
        zero_threshold: p.zero_threshold,
    })
}

fn summary_point(p: pm::SummaryDataPoint) -> Result<SummaryPoint, String> {
    Ok(SummaryPoint {
        attributes: kvs(p.attributes),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        count: p.count,
        sum: p.sum,
        quantile_values: exact(p.quantile_values, |q| (q.quantile, q.value)),
        flags: p.flags,
    })
}

fn exemplars(list: Vec<pm::Exemplar>) -> Result<Vec<Exemplar>, String> {
    use pm::exemplar::Value as V;
    let mut out = Vec::with_capacity(list.len());
    for (i, e) in list.into_iter().enumerate() {
        out.push(Exemplar {
            trace_id: optional_trace_id(&e.trace_id).map_err(|why| format!("exemplars[{i}]: {why}"))?,
            span_id: optional_span_id(&e.span_id).map_err(|why| format!("exemplars[{i}]: {why}"))?,
            filtered_attributes: kvs(e.filtered_attributes),
            time_unix_nano: e.time_unix_nano,
            value: e.value.map(|v| match v {
                V::AsInt(i) => Number::Int(i),
                V::AsDouble(d) => Number::Double(d),
            }),
        });
    }
    Ok(out)
}

/// Encodes metrics as one export request, grouping consecutive metrics
/// that share a resource and scope (by pointer).
pub fn encode_metrics(metrics: &[Metric]) -> ExportMetricsServiceRequest {
    let resource_metrics = encode_groups(
        metrics,
        |m| (&m.resource, &m.scope),
        |scope, schema_url, metrics| pm::ScopeMetrics {
            scope: Some(scope),
            schema_url,
            metrics: metrics.into_iter().map(encode_metric).collect(),
        },
        |resource, schema_url, scope_metrics| pm::ResourceMetrics {
            resource: Some(resource),
            schema_url,
            scope_metrics,
        },
    );
    ExportMetricsServiceRequest { resource_metrics }
}

/// Encodes one metric (without its resource and scope).
pub fn encode_metric(m: &Metric) -> pm::Metric {
    use pm::metric::Data;
    let data = match &m.data {
        MetricData::Empty => None,
        MetricData::Gauge(points) => {
            Some(Data::Gauge(pm::Gauge { data_points: exact_ref(points, encode_number) }))
        }
        MetricData::Sum { points, temporality, monotonic } => Some(Data::Sum(pm::Sum {
            data_points: exact_ref(points, encode_number),
            aggregation_temporality: temporality.as_i32(),
            is_monotonic: *monotonic,
        })),
        MetricData::Histogram { points, temporality } => Some(Data::Histogram(pm::Histogram {
            data_points: exact_ref(points, encode_histogram),
            aggregation_temporality: temporality.as_i32(),
        })),
        MetricData::ExponentialHistogram { points, temporality } => {
            Some(Data::ExponentialHistogram(pm::ExponentialHistogram {
                data_points: exact_ref(points, encode_exponential),
                aggregation_temporality: temporality.as_i32(),
            }))
        }
        MetricData::Summary(points) => {
            Some(Data::Summary(pm::Summary { data_points: exact_ref(points, encode_summary) }))
        }
    };
    pm::Metric {
        name: m.name.clone(),
        description: m.description.clone(),
        unit: m.unit.clone(),
        metadata: encode_kvs(&m.metadata),
        data,
    }
}

fn exact_ref<T, U>(list: &[T], f: fn(&T) -> U) -> Vec<U> {
    list.iter().map(f).collect()
}

fn encode_number(p: &NumberPoint) -> pm::NumberDataPoint {
    use pm::number_data_point::Value as V;
    pm::NumberDataPoint {
        attributes: encode_kvs(&p.attributes),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        exemplars: exact_ref(&p.exemplars, encode_exemplar),
        flags: p.flags,
        value: p.value.map(|v| match v {
            Number::Int(i) => V::AsInt(i),
            Number::Double(d) => V::AsDouble(d),
        }),
    }
}

fn encode_histogram(p: &HistogramPoint) -> pm::HistogramDataPoint {
    pm::HistogramDataPoint {
        attributes: encode_kvs(&p.attributes),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        count: p.count,
        sum: p.sum,
        bucket_counts: p.bucket_counts.clone(),
        explicit_bounds: p.explicit_bounds.clone(),
        exemplars: exact_ref(&p.exemplars, encode_exemplar),
        flags: p.flags,
        min: p.min,
        max: p.max,
    }
}

fn encode_exponential(p: &ExponentialHistogramPoint) -> pm::ExponentialHistogramDataPoint {
    let buckets = |b: &ExponentialBuckets| {
        Some(pm::exponential_histogram_data_point::Buckets {
            offset: b.offset,
            bucket_counts: b.bucket_counts.clone(),
        })
    };
    pm::ExponentialHistogramDataPoint {
        attributes: encode_kvs(&p.attributes),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        count: p.count,
        sum: p.sum,
        scale: p.scale,
        zero_count: p.zero_count,
        positive: buckets(&p.positive),
        negative: buckets(&p.negative),
        flags: p.flags,
        exemplars: exact_ref(&p.exemplars, encode_exemplar),
        min: p.min,
        max: p.max,
        zero_threshold: p.zero_threshold,
    }
}

fn encode_summary(p: &SummaryPoint) -> pm::SummaryDataPoint {
    pm::SummaryDataPoint {
        attributes: encode_kvs(&p.attributes),
        start_time_unix_nano: p.start_time_unix_nano,
        time_unix_nano: p.time_unix_nano,
        count: p.count,
        sum: p.sum,
        quantile_values: p
            .quantile_values
            .iter()
            .map(|(quantile, value)| pm::summary_data_point::ValueAtQuantile {
                quantile: *quantile,
                value: *value,
            })
            .collect(),
        flags: p.flags,
    }
}

fn encode_exemplar(e: &Exemplar) -> pm::Exemplar {
    use pm::exemplar::Value as V;
    pm::Exemplar {
        filtered_attributes: encode_kvs(&e.filtered_attributes),
        time_unix_nano: e.time_unix_nano,
        span_id: e.span_id.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
        trace_id: e.trace_id.map(|t| t.as_bytes().to_vec()).unwrap_or_default(),
        value: e.value.map(|v| match v {
            Number::Int(i) => V::AsInt(i),
            Number::Double(d) => V::AsDouble(d),
        }),
    }
}
