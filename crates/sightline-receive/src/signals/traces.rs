//! Traces: `TraceService/Export`, `/v1/traces`.

use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use sightline_model::{Batch, Span, Tenant, TracesConsumer, otlp};

use super::{Decoded, OtlpSignal, partial, rejected_i64};
use crate::Receiver;
use crate::front::Signal;
use crate::front::cost::MessageCost;

pub(crate) struct Traces;

impl OtlpSignal for Traces {
    type Request = ExportTraceServiceRequest;
    type Response = ExportTraceServiceResponse;
    type Unit = Batch;
    type Consumer = dyn TracesConsumer;

    const SIGNAL: Signal = Signal::Traces;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
    const HTTP_PATH: &'static str = "/v1/traces";
    const REJECTED_JSON: &'static str = "rejectedSpans";
    const COST: &'static MessageCost = &crate::ingest::REQUEST;

    fn consumer(receiver: &Receiver) -> Option<Arc<Self::Consumer>> {
        receiver.traces.clone()
    }

    fn decode(request: Self::Request, raw: Option<Bytes>, tenant: Tenant) -> Decoded<Batch> {
        unit_of(otlp::decode_request(request), raw, tenant)
    }

    fn decode_bytes(body: &Bytes, tenant: &Tenant) -> Option<Result<Decoded<Batch>, String>> {
        Some(
            otlp::decode_protobuf(body)
                .map(|decoded| unit_of(decoded, Some(body.clone()), tenant.clone()))
                .map_err(|e| e.to_string()),
        )
    }

    fn count(unit: &Batch) -> usize {
        unit.len()
    }

    fn held(unit: &Batch) -> usize {
        unit.otlp_bytes().len() + unit.spans().iter().map(Span::estimated_size).sum::<usize>()
    }

    fn consume(consumer: Arc<Self::Consumer>, unit: Batch) -> super::Work {
        Box::pin(async move { consumer.consume_traces(unit).await })
    }

    fn response(rejected: u64, error_message: String) -> Self::Response {
        ExportTraceServiceResponse {
            partial_success: partial(rejected, &error_message)
                .then(|| ExportTracePartialSuccess { rejected_spans: rejected_i64(rejected), error_message }),
        }
    }
}

/// The batch of a decoded request, owned by `tenant`; `raw` is reused for
/// the WAL when every span was accepted.
fn unit_of(decoded: otlp::Decoded, raw: Option<Bytes>, tenant: Tenant) -> Decoded<Batch> {
    let unit = (!decoded.spans.is_empty()).then(|| {
        match raw {
            Some(raw) if decoded.rejected == 0 => Batch::new(decoded.spans, raw),
            _ => Batch::from_spans(decoded.spans),
        }
        .with_tenant(tenant)
    });
    Decoded { unit, rejected: decoded.rejected, error_message: decoded.error_message }
}
