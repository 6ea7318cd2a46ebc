//! The send mode's log requests (`--signal logs`): the records
//! `logs-bench` stores in-process (ten services, a severity mix, seed 002's
//! HTTP- and order-style messages, 8 records per trace from 3 services,
//! trace and span ids, three attributes), encoded as OTLP
//! `ExportLogsServiceRequest`s and sent by the same send loop, transports
//! and retry handling as spans.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use sightline_model::LogRecord;

use crate::logs::Generator;

/// Time between consecutive records of one request: a request of 512
/// spans 5 ms, like a batch an SDK exports.
const RECORD_GAP_NANOS: u64 = 10_000;

/// Request `k` of `n` records, the first stamped `base` (ns since the
/// epoch). Requests of a multiple of 8 records hold whole traces, so a
/// template patch (one trace mask per request) keeps each trace's records
/// together.
pub(crate) fn request(generator: &Generator, k: u64, n: usize, base: u64) -> ExportLogsServiceRequest {
    let first = k * n as u64;
    let records: Vec<LogRecord> = (0..n as u64)
        .map(|j| {
            let mut r = generator.record(first + j);
            let observed_lag = r.observed_time_unix_nano.saturating_sub(r.time_unix_nano);
            r.time_unix_nano = base + j * RECORD_GAP_NANOS;
            r.observed_time_unix_nano = r.time_unix_nano + observed_lag;
            r
        })
        .collect();
    sightline_model::otlp::encode_logs(&records)
}
