//! OTLP logs ⇄ model.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1 as pl;

use super::note_reason;
use super::{MAX_REASONS, encode_kvs, encode_resource, encode_scope, encode_value, group, kvs, value};
use crate::{LogRecord, Resource, Scope, SpanId, TraceId, Value};

/// The outcome of decoding one logs export request.
#[derive(Debug, Default)]
pub struct DecodedLogs {
    /// Records that passed validation, in request order.
    pub records: Vec<LogRecord>,
    /// Number of records rejected.
    pub rejected: u64,
    /// Why records were rejected (the first few reasons), empty if none.
    pub error_message: String,
}

/// Decodes a logs export request. A record is rejected (and counted for
/// OTLP partial success) only for an id of the wrong length: trace and
/// span ids are optional on logs, and empty or all-zero ones mean "none".
pub fn decode_logs_request(request: ExportLogsServiceRequest) -> DecodedLogs {
    let mut out = DecodedLogs::default();
    let total: usize =
        request.resource_logs.iter().flat_map(|rl| rl.scope_logs.iter()).map(|sl| sl.log_records.len()).sum();
    out.records.reserve(total);
    let mut reasons = 0usize;
    for (ri, rl) in request.resource_logs.into_iter().enumerate() {
        let resource = Arc::new(match rl.resource {
            Some(r) => Resource::new(kvs(r.attributes), r.dropped_attributes_count, rl.schema_url),
            None => Resource::new(Vec::new(), 0, rl.schema_url),
        });
        for (si, sl) in rl.scope_logs.into_iter().enumerate() {
            let scope = Arc::new(super::decode_scope(sl.scope, sl.schema_url));
            for (li, record) in sl.log_records.into_iter().enumerate() {
                match decode_record(record, &resource, &scope) {
                    Ok(r) => out.records.push(r),
                    Err(why) => {
                        out.rejected += 1;
                        note_reason(
                            &mut out.error_message,
                            &mut reasons,
                            format_args!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]: {why}"),
                        );
                    }
                }
            }
        }
    }
    if out.rejected > 0 {
        out.error_message = format!(
            "{} log record(s) rejected for invalid ids: {}{}",
            out.rejected,
            out.error_message,
            if reasons > MAX_REASONS { "; …" } else { "" }
        );
    }
    out
}

/// Decodes one record with its (already decoded) resource and scope, as
/// [`decode_logs_request`] does for each record: for stores that keep a
/// record's parts in separate columns.
pub fn decode_record(
    r: pl::LogRecord,
    resource: &Arc<Resource>,
    scope: &Arc<Scope>,
) -> Result<LogRecord, String> {
    Ok(LogRecord {
        trace_id: optional_trace_id(&r.trace_id)?,
        span_id: optional_span_id(&r.span_id)?,
        time_unix_nano: r.time_unix_nano,
        observed_time_unix_nano: r.observed_time_unix_nano,
        severity_number: r.severity_number,
        severity_text: r.severity_text,
        body: r.body.map_or(Value::Empty, value),
        attributes: kvs(r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        flags: r.flags,
        event_name: r.event_name,
        resource: Arc::clone(resource),
        scope: Arc::clone(scope),
    })
}

/// An optional trace id: empty or all zeros is none, a wrong length is an
/// error.
pub(crate) fn optional_trace_id(bytes: &[u8]) -> Result<Option<TraceId>, String> {
    if bytes.is_empty() || (bytes.len() == TraceId::LEN && bytes.iter().all(|b| *b == 0)) {
        return Ok(None);
    }
    TraceId::from_slice(bytes).map(Some).map_err(|e| e.to_string())
}

/// An optional span id, as [`optional_trace_id`].
pub(crate) fn optional_span_id(bytes: &[u8]) -> Result<Option<SpanId>, String> {
    if bytes.is_empty() || (bytes.len() == SpanId::LEN && bytes.iter().all(|b| *b == 0)) {
        return Ok(None);
    }
    SpanId::from_slice(bytes).map(Some).map_err(|e| e.to_string())
}

/// Encodes log records as one export request, grouping consecutive records
/// that share a resource and scope (by pointer) the way SDKs batch them.
pub fn encode_logs(records: &[LogRecord]) -> ExportLogsServiceRequest {
    let resource_logs = group(records, |r| (&r.resource, &r.scope))
        .into_iter()
        .map(|(resource, scopes)| pl::ResourceLogs {
            resource: Some(encode_resource(resource)),
            schema_url: resource.schema_url().to_owned(),
            scope_logs: scopes
                .into_iter()
                .map(|(scope, records)| pl::ScopeLogs {
                    scope: Some(encode_scope(scope)),
                    schema_url: scope.schema_url.clone(),
                    log_records: records.into_iter().map(encode_record).collect(),
                })
                .collect(),
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// Encodes one record (without its resource and scope).
pub fn encode_record(r: &LogRecord) -> pl::LogRecord {
    pl::LogRecord {
        time_unix_nano: r.time_unix_nano,
        observed_time_unix_nano: r.observed_time_unix_nano,
        severity_number: r.severity_number,
        severity_text: r.severity_text.clone(),
        body: (r.body != Value::Empty).then(|| encode_value(&r.body)),
        attributes: encode_kvs(&r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        flags: r.flags,
        trace_id: r.trace_id.map(|t| t.as_bytes().to_vec()).unwrap_or_default(),
        span_id: r.span_id.map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
        event_name: r.event_name.clone(),
    }
}
