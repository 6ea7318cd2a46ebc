//! Metrics: `MetricsService/Export`, `/v1/metrics`.

use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1 as pm;
use sightline_model::{Metric, MetricBatch, MetricsConsumer, Tenant, otlp};

use super::{Decoded, OtlpSignal, Work, partial, rejected_i64};
use crate::Receiver;
use crate::front::Signal;
use crate::front::cost::MessageCost;
use crate::ingest::{KEY_VALUE, RESOURCE, SCOPE, listed};

/// A repeated `uint64` varint (exponential histogram buckets): one wire
/// byte may decode to eight, in a `Vec` that may have half again spare.
const VARINT_GROWTH: usize = 12;

// What each OTLP metrics message costs once decoded: the prost struct as
// a list element plus its model counterpart. Packed doubles and fixed64s
// decode to their own size (charged as body bytes); only varint buckets
// grow.
static REQUEST: MessageCost = MessageCost { bytes: 0, fields: &[(1, &RESOURCE_METRICS)], per_byte: &[] };
static RESOURCE_METRICS: MessageCost = MessageCost {
    bytes: listed::<pm::ResourceMetrics>() + size_of::<sightline_model::Resource>() + 32,
    fields: &[(1, &RESOURCE), (2, &SCOPE_METRICS)],
    per_byte: &[],
};
static SCOPE_METRICS: MessageCost = MessageCost {
    bytes: listed::<pm::ScopeMetrics>() + size_of::<sightline_model::Scope>() + 32,
    fields: &[(1, &SCOPE), (2, &METRIC)],
    per_byte: &[],
};
static METRIC: MessageCost = MessageCost {
    bytes: listed::<pm::Metric>() + size_of::<Metric>(),
    fields: &[
        (5, &NUMBERS),
        (7, &NUMBERS),
        (9, &HISTOGRAMS),
        (10, &EXP_HISTOGRAMS),
        (11, &SUMMARIES),
        (12, &KEY_VALUE),
    ],
    per_byte: &[],
};
static NUMBERS: MessageCost = MessageCost { bytes: 0, fields: &[(1, &NUMBER_POINT)], per_byte: &[] };
static HISTOGRAMS: MessageCost = MessageCost { bytes: 0, fields: &[(1, &HISTOGRAM_POINT)], per_byte: &[] };
static EXP_HISTOGRAMS: MessageCost =
    MessageCost { bytes: 0, fields: &[(1, &EXP_HISTOGRAM_POINT)], per_byte: &[] };
static SUMMARIES: MessageCost = MessageCost { bytes: 0, fields: &[(1, &SUMMARY_POINT)], per_byte: &[] };
static NUMBER_POINT: MessageCost = MessageCost {
    bytes: listed::<pm::NumberDataPoint>() + size_of::<sightline_model::NumberPoint>(),
    fields: &[(7, &KEY_VALUE), (5, &EXEMPLAR)],
    per_byte: &[],
};
static HISTOGRAM_POINT: MessageCost = MessageCost {
    bytes: listed::<pm::HistogramDataPoint>() + size_of::<sightline_model::HistogramPoint>(),
    fields: &[(9, &KEY_VALUE), (8, &EXEMPLAR)],
    per_byte: &[],
};
static EXP_HISTOGRAM_POINT: MessageCost = MessageCost {
    bytes: listed::<pm::ExponentialHistogramDataPoint>()
        + size_of::<sightline_model::ExponentialHistogramPoint>(),
    fields: &[(1, &KEY_VALUE), (8, &BUCKETS), (9, &BUCKETS), (11, &EXEMPLAR)],
    per_byte: &[],
};
static BUCKETS: MessageCost = MessageCost { bytes: 0, fields: &[], per_byte: &[(2, VARINT_GROWTH)] };
static SUMMARY_POINT: MessageCost = MessageCost {
    bytes: listed::<pm::SummaryDataPoint>() + size_of::<sightline_model::SummaryPoint>(),
    fields: &[(7, &KEY_VALUE), (6, &QUANTILE)],
    per_byte: &[],
};
static QUANTILE: MessageCost = MessageCost {
    bytes: listed::<pm::summary_data_point::ValueAtQuantile>() * 2,
    fields: &[],
    per_byte: &[],
};
static EXEMPLAR: MessageCost = MessageCost {
    bytes: listed::<pm::Exemplar>() + size_of::<sightline_model::Exemplar>(),
    fields: &[(7, &KEY_VALUE)],
    per_byte: &[],
};

pub(crate) struct Metrics;

impl OtlpSignal for Metrics {
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;
    type Unit = MetricBatch;
    type Consumer = dyn MetricsConsumer;

    const SIGNAL: Signal = Signal::Metrics;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const HTTP_PATH: &'static str = "/v1/metrics";
    const REJECTED_JSON: &'static str = "rejectedDataPoints";
    const COST: &'static MessageCost = &REQUEST;

    fn consumer(receiver: &Receiver) -> Option<Arc<Self::Consumer>> {
        receiver.metrics.clone()
    }

    fn decode(request: Self::Request, raw: Option<Bytes>, tenant: Tenant) -> Decoded<MetricBatch> {
        let decoded = otlp::decode_metrics_request(request);
        let unit = (!decoded.metrics.is_empty()).then(|| {
            match raw {
                Some(raw) if decoded.rejected == 0 => MetricBatch::new(decoded.metrics, raw),
                _ => MetricBatch::from_metrics(decoded.metrics),
            }
            .with_tenant(tenant)
        });
        Decoded { unit, rejected: decoded.rejected, error_message: decoded.error_message }
    }

    fn count(unit: &MetricBatch) -> usize {
        unit.data_points()
    }

    fn held(unit: &MetricBatch) -> usize {
        // Points are about their encoding's size again; strings are copies.
        (3 * unit.otlp_bytes().len()).saturating_add(size_of_val(unit.metrics()))
    }

    fn consume(consumer: Arc<Self::Consumer>, unit: MetricBatch) -> Work {
        Box::pin(async move { consumer.consume_metrics(unit).await })
    }

    fn response(rejected: u64, error_message: String) -> Self::Response {
        ExportMetricsServiceResponse {
            partial_success: partial(rejected, &error_message).then(|| ExportMetricsPartialSuccess {
                rejected_data_points: rejected_i64(rejected),
                error_message,
            }),
        }
    }
}
