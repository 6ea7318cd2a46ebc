//! Logs and metrics ⇄ OTLP: what decodes, what is rejected and why, and
//! that encoding gives back what was decoded.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::resource::v1 as pr;
use prost::Message as _;

use super::*;
use crate::{LogBatch, MetricBatch, MetricData, Number, Temporality, Value};

fn s(key: &str, v: &str) -> pc::KeyValue {
    pc::KeyValue {
        key: key.into(),
        value: Some(pc::AnyValue { value: Some(pc::any_value::Value::StringValue(v.into())) }),
        key_strindex: 0,
    }
}

fn resource(service: &str) -> Option<pr::Resource> {
    Some(pr::Resource { attributes: vec![s("service.name", service)], ..Default::default() })
}

fn logs(records: Vec<pl::LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![pl::ResourceLogs {
            resource: resource("api"),
            scope_logs: vec![pl::ScopeLogs {
                scope: Some(pc::InstrumentationScope { name: "app.logger".into(), ..Default::default() }),
                log_records: records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn record(trace: Vec<u8>, span: Vec<u8>, body: &str) -> pl::LogRecord {
    pl::LogRecord {
        time_unix_nano: 1_700_000_000_000_000_000,
        observed_time_unix_nano: 1_700_000_000_000_000_100,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(pc::AnyValue { value: Some(pc::any_value::Value::StringValue(body.into())) }),
        attributes: vec![s("code.function", "pay")],
        trace_id: trace,
        span_id: span,
        ..Default::default()
    }
}

#[test]
fn logs_decode_with_optional_ids_and_reject_bad_lengths() {
    let req = logs(vec![
        record(vec![7; 16], vec![8; 8], "payment failed"),
        record(vec![], vec![], "no trace"),
        record(vec![0; 16], vec![0; 8], "zero ids mean none"),
        record(vec![7; 5], vec![8; 8], "short trace id"),
    ]);
    let decoded = decode_logs_request(req);
    assert_eq!(decoded.records.len(), 3);
    assert_eq!(decoded.rejected, 1);
    assert!(
        decoded.error_message.starts_with(
            "1 log record(s) rejected for invalid ids: resourceLogs[0].scopeLogs[0].logRecords[3]: "
        ),
        "{}",
        decoded.error_message
    );
    let first = &decoded.records[0];
    assert_eq!(first.trace_id.map(|t| t.to_hex()), Some("07".repeat(16)));
    assert_eq!(first.span_id.map(|t| t.to_hex()), Some("08".repeat(8)));
    assert_eq!(first.body, Value::Str("payment failed".into()));
    assert_eq!((first.severity_number, first.severity_text.as_str()), (17, "ERROR"));
    assert_eq!(first.service_name(), "api");
    assert_eq!(first.scope.name, "app.logger");
    assert_eq!((decoded.records[1].trace_id, decoded.records[2].span_id), (None, None));

    // The batch's bytes decode to exactly its records.
    let batch = LogBatch::from_records(decoded.records.clone());
    let again = decode_logs_request(ExportLogsServiceRequest::decode(batch.otlp_bytes().clone()).unwrap());
    assert_eq!(again.records, decoded.records);
    assert_eq!(again.rejected, 0);
}

fn number(value: pm::number_data_point::Value, attrs: Vec<pc::KeyValue>) -> pm::NumberDataPoint {
    pm::NumberDataPoint {
        attributes: attrs,
        start_time_unix_nano: 1_000,
        time_unix_nano: 2_000,
        value: Some(value),
        ..Default::default()
    }
}

fn metrics(list: Vec<pm::Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![pm::ResourceMetrics {
            resource: resource("api"),
            scope_metrics: vec![pm::ScopeMetrics {
                scope: Some(pc::InstrumentationScope { name: "meter".into(), ..Default::default() }),
                metrics: list,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[test]
fn metrics_of_every_kind_round_trip_and_bad_points_are_rejected() {
    use pm::metric::Data;
    use pm::number_data_point::Value as V;
    let histogram = |counts: Vec<u64>, bounds: Vec<f64>| pm::HistogramDataPoint {
        start_time_unix_nano: 1_000,
        time_unix_nano: 2_000,
        count: counts.iter().sum(),
        sum: Some(4.5),
        bucket_counts: counts,
        explicit_bounds: bounds,
        exemplars: vec![pm::Exemplar {
            time_unix_nano: 1_500,
            trace_id: vec![3; 16],
            span_id: vec![4; 8],
            value: Some(pm::exemplar::Value::AsDouble(0.7)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let req = metrics(vec![
        pm::Metric {
            name: "requests".into(),
            unit: "{request}".into(),
            data: Some(Data::Sum(pm::Sum {
                data_points: vec![
                    number(V::AsInt(3), vec![s("route", "/a")]),
                    number(V::AsInt(5), vec![s("route", "/b")]),
                ],
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        pm::Metric {
            name: "temperature".into(),
            data: Some(Data::Gauge(pm::Gauge { data_points: vec![number(V::AsDouble(21.5), vec![])] })),
            ..Default::default()
        },
        pm::Metric {
            name: "latency".into(),
            unit: "s".into(),
            data: Some(Data::Histogram(pm::Histogram {
                data_points: vec![
                    histogram(vec![1, 2, 3], vec![0.5, 1.0]),
                    // Two counts for two bounds: one short.
                    histogram(vec![1, 2], vec![0.5, 1.0]),
                ],
                aggregation_temporality: 1,
            })),
            ..Default::default()
        },
        pm::Metric {
            name: "sizes".into(),
            data: Some(Data::ExponentialHistogram(pm::ExponentialHistogram {
                data_points: vec![pm::ExponentialHistogramDataPoint {
                    count: 3,
                    scale: 2,
                    zero_count: 1,
                    positive: Some(pm::exponential_histogram_data_point::Buckets {
                        offset: -1,
                        bucket_counts: vec![1, 1],
                    }),
                    ..Default::default()
                }],
                aggregation_temporality: 2,
            })),
            ..Default::default()
        },
        pm::Metric {
            name: "rpc".into(),
            data: Some(Data::Summary(pm::Summary {
                data_points: vec![pm::SummaryDataPoint {
                    count: 10,
                    sum: 5.0,
                    quantile_values: vec![pm::summary_data_point::ValueAtQuantile {
                        quantile: 0.99,
                        value: 1.5,
                    }],
                    ..Default::default()
                }],
            })),
            ..Default::default()
        },
        pm::Metric { name: "no data".into(), ..Default::default() },
    ]);
    let decoded = decode_metrics_request(req);
    assert_eq!(decoded.rejected, 1);
    assert_eq!(
        decoded.error_message,
        "1 data point(s) rejected: resourceMetrics[0].scopeMetrics[0].metrics[2] (latency): data point 1: 2 bucket counts for 2 explicit bounds; expected 3 (one more than the bounds) or none"
    );
    let names: Vec<&str> = decoded.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["requests", "temperature", "latency", "sizes", "rpc", "no data"]);
    match &decoded.metrics[0].data {
        MetricData::Sum { points, temporality: Temporality::Cumulative, monotonic: true } => {
            assert_eq!(points[1].value, Some(Number::Int(5)));
            assert_eq!(points[1].attributes[0].value, Value::Str("/b".into()));
        }
        other => panic!("{other:?}"),
    }
    match &decoded.metrics[2].data {
        MetricData::Histogram { points, temporality: Temporality::Delta } => {
            assert_eq!(points.len(), 1);
            assert_eq!(points[0].exemplars[0].trace_id.map(|t| t.to_hex()), Some("03".repeat(16)));
        }
        other => panic!("{other:?}"),
    }
    let batch = MetricBatch::from_metrics(decoded.metrics.clone());
    assert_eq!(batch.data_points(), 6);
    let again =
        decode_metrics_request(ExportMetricsServiceRequest::decode(batch.otlp_bytes().clone()).unwrap());
    assert_eq!(again.metrics, decoded.metrics);

    // A metric whose every point was rejected is left out entirely.
    let bad = metrics(vec![pm::Metric {
        name: "bad".into(),
        data: Some(Data::Gauge(pm::Gauge {
            data_points: vec![pm::NumberDataPoint {
                exemplars: vec![pm::Exemplar { span_id: vec![1; 3], ..Default::default() }],
                ..Default::default()
            }],
        })),
        ..Default::default()
    }]);
    let decoded = decode_metrics_request(bad);
    assert!(decoded.metrics.is_empty());
    assert!(
        decoded.error_message.contains("(bad): data point 0: exemplars[0]: "),
        "{}",
        decoded.error_message
    );
}
