//! Logs: `LogsService/Export`, `/v1/logs`.

use std::mem::size_of;
use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1 as pl;
use sightline_model::{KeyValue, LogBatch, LogRecord, LogsConsumer, Tenant, otlp};

use super::{Decoded, OtlpSignal, Work, partial, rejected_i64};
use crate::Receiver;
use crate::front::Signal;
use crate::front::cost::MessageCost;
use crate::ingest::{ANY_VALUE, KEY_VALUE, RESOURCE, SCOPE, listed};

// What each OTLP logs message costs once decoded, as the trace table in
// `ingest.rs` counts it: the prost struct as a list element, plus the
// model's record (its array is reserved up front); a body's nested arrays
// and maps are charged like attribute values.
static REQUEST: MessageCost = MessageCost { bytes: 0, fields: &[(1, &RESOURCE_LOGS)], per_byte: &[] };
static RESOURCE_LOGS: MessageCost = MessageCost {
    bytes: listed::<pl::ResourceLogs>() + size_of::<sightline_model::Resource>() + 32,
    fields: &[(1, &RESOURCE), (2, &SCOPE_LOGS)],
    per_byte: &[],
};
static SCOPE_LOGS: MessageCost = MessageCost {
    bytes: listed::<pl::ScopeLogs>() + size_of::<sightline_model::Scope>() + 32,
    fields: &[(1, &SCOPE), (2, &LOG_RECORD)],
    per_byte: &[],
};
static LOG_RECORD: MessageCost = MessageCost {
    bytes: listed::<pl::LogRecord>() + size_of::<LogRecord>(),
    fields: &[(5, &ANY_VALUE), (6, &KEY_VALUE)],
    per_byte: &[],
};

pub(crate) struct Logs;

impl OtlpSignal for Logs {
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;
    type Unit = LogBatch;
    type Consumer = dyn LogsConsumer;

    const SIGNAL: Signal = Signal::Logs;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const HTTP_PATH: &'static str = "/v1/logs";
    const REJECTED_JSON: &'static str = "rejectedLogRecords";
    const COST: &'static MessageCost = &REQUEST;

    fn consumer(receiver: &Receiver) -> Option<Arc<Self::Consumer>> {
        receiver.logs.clone()
    }

    fn decode(request: Self::Request, raw: Option<Bytes>, tenant: Tenant) -> Decoded<LogBatch> {
        unit_of(otlp::decode_logs_request(request), raw, tenant)
    }

    fn decode_bytes(body: &Bytes, tenant: &Tenant) -> Option<Result<Decoded<LogBatch>, String>> {
        Some(
            otlp::decode_logs_protobuf(body)
                .map(|decoded| unit_of(decoded, Some(body.clone()), tenant.clone()))
                .map_err(|e| e.to_string()),
        )
    }

    fn count(unit: &LogBatch) -> usize {
        unit.len()
    }

    fn held(unit: &LogBatch) -> usize {
        // Strings are copies of the encoding's bytes: twice the encoding
        // bounds them and the encoding together.
        let attributes: usize = unit.records().iter().map(|r| r.attributes.len()).sum();
        (2 * unit.otlp_bytes().len())
            .saturating_add(unit.len() * size_of::<LogRecord>())
            .saturating_add(attributes * size_of::<KeyValue>())
    }

    fn consume(consumer: Arc<Self::Consumer>, unit: LogBatch) -> Work {
        Box::pin(async move { consumer.consume_logs(unit).await })
    }

    fn response(rejected: u64, error_message: String) -> Self::Response {
        ExportLogsServiceResponse {
            partial_success: partial(rejected, &error_message).then(|| ExportLogsPartialSuccess {
                rejected_log_records: rejected_i64(rejected),
                error_message,
            }),
        }
    }
}

/// The batch of a decoded request, owned by `tenant`; `raw` is reused for
/// the WAL when every record was accepted.
fn unit_of(decoded: otlp::DecodedLogs, raw: Option<Bytes>, tenant: Tenant) -> Decoded<LogBatch> {
    let unit = (!decoded.records.is_empty()).then(|| {
        match raw {
            Some(raw) if decoded.rejected == 0 => LogBatch::new(decoded.records, raw),
            _ => LogBatch::from_records(decoded.records),
        }
        .with_tenant(tenant)
    });
    Decoded { unit, rejected: decoded.rejected, error_message: decoded.error_message }
}
