//! The head: recent batches as the OTLP bytes the WAL holds, plus a compact
//! index entry per record (time, ids, severity, service), as the trace
//! head keeps spans. Searches filter on the index and decode a batch only
//! when one of its records may be on the page.
//!
//! The fingerprint (paging's tie-breaker) is not in the index: it encodes
//! the whole record, which cost every acknowledged record ~1 µs of ingest
//! for the few a search keeps; searches compute it for the records they
//! decode, as block searches do.

use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message as _;
use sightline_model::{LogQuery, LogRecord, otlp};

use crate::topk::TopK;

/// One record's index entry (40 bytes).
#[derive(Debug, Clone, Copy)]
struct Entry {
    time: u64,
    /// All zeros: none (OTLP treats a zero id as absent too).
    trace_id: [u8; 16],
    span_id: [u8; 8],
    severity: i32,
    /// Index into the batch's service names.
    service: u32,
}

/// One acknowledged batch.
#[derive(Debug)]
pub(crate) struct HeadBatch {
    otlp: Bytes,
    entries: Vec<Entry>,
    services: Vec<String>,
}

impl HeadBatch {
    /// Indexes `records`, which `otlp` encodes (the [`sightline_model::LogBatch`]
    /// invariant).
    pub(crate) fn new(otlp: Bytes, records: &[LogRecord]) -> HeadBatch {
        let mut services: Vec<String> = Vec::new();
        let entries = records
            .iter()
            .map(|r| {
                let name = r.service_name();
                let service = match services.iter().position(|s| s == name) {
                    Some(i) => i,
                    None => {
                        services.push(name.to_owned());
                        services.len() - 1
                    }
                };
                Entry {
                    time: r.timestamp(),
                    trace_id: r.trace_id.map(|t| *t.as_bytes()).unwrap_or_default(),
                    span_id: r.span_id.map(|s| *s.as_bytes()).unwrap_or_default(),
                    severity: r.severity_number,
                    service: service as u32,
                }
            })
            .collect();
        HeadBatch { otlp, entries, services }
    }

    /// Memory held: the bytes plus the index.
    pub(crate) fn size(&self) -> usize {
        self.otlp.len()
            + self.entries.len() * size_of::<Entry>()
            + self.services.iter().map(String::len).sum::<usize>()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The batch's OTLP bytes (an `ExportLogsServiceRequest`).
    pub(crate) fn otlp(&self) -> &[u8] {
        &self.otlp
    }

    pub(crate) fn services(&self) -> &[String] {
        &self.services
    }

    /// The records, decoded from the bytes.
    pub(crate) fn decode(&self) -> Vec<LogRecord> {
        match ExportLogsServiceRequest::decode(self.otlp.clone()) {
            Ok(req) => otlp::decode_logs_request(req).records,
            // NOTE: the bytes were decoded once before they were
            // acknowledged; they cannot fail now short of a memory fault.
            Err(_) => Vec::new(),
        }
    }

    /// Adds this batch's matches to `top`.
    pub(crate) fn search(&self, q: &LogQuery, top: &mut TopK) {
        let service = match &q.service {
            Some(name) => match self.services.iter().position(|s| s == name) {
                Some(i) => Some(i as u32),
                None => return,
            },
            None => None,
        };
        let candidates: Vec<usize> = (0..self.entries.len())
            .filter(|&i| {
                let e = &self.entries[i];
                q.time_in_range(e.time)
                    && top.floor().is_none_or(|f| e.time >= f.0)
                    && service.is_none_or(|s| s == e.service)
                    && e.severity >= q.min_severity
                    && q.trace_id.is_none_or(|t| *t.as_bytes() == e.trace_id)
                    && q.span_id.is_none_or(|s| *s.as_bytes() == e.span_id)
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let records = self.decode();
        for i in candidates {
            let (Some(e), Some(r)) = (self.entries.get(i), records.get(i)) else { continue };
            if !q.matches_content(r) {
                continue;
            }
            let key = (e.time, r.fingerprint());
            if q.key_in_range(key.0, key.1) && top.accepts(key) {
                top.push(key, r.clone());
            }
        }
    }
}

/// A head: batches in arrival order. Shared as an immutable list of
/// `Arc`s so a query's snapshot costs a pointer copy per batch.
#[derive(Debug, Default, Clone)]
pub(crate) struct Head {
    pub(crate) batches: Vec<Arc<HeadBatch>>,
    pub(crate) bytes: usize,
    pub(crate) records: usize,
    /// When the first batch arrived (for the age-based cut).
    pub(crate) since: Option<std::time::Instant>,
}

impl Head {
    pub(crate) fn push(&mut self, batch: HeadBatch) {
        self.bytes += batch.size();
        self.records += batch.len();
        self.since.get_or_insert_with(std::time::Instant::now);
        self.batches.push(Arc::new(batch));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }
}
