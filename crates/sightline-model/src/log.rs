use std::sync::Arc;

use bytes::Bytes;
use prost::Message as _;

use crate::{KeyValue, Resource, Scope, SpanId, Tenant, TraceId, Value, otlp};

/// One log record, as OTLP defines it, with its resource and scope shared
/// by `Arc` like a span's.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// When the event happened (ns since the Unix epoch; 0 = unknown).
    pub time_unix_nano: u64,
    /// When the collection system saw it (ns; 0 = unknown).
    pub observed_time_unix_nano: u64,
    /// OTLP `SeverityNumber`: 0 unspecified, 1–4 TRACE, 5–8 DEBUG, 9–12
    /// INFO, 13–16 WARN, 17–20 ERROR, 21–24 FATAL.
    pub severity_number: i32,
    /// The severity as the source wrote it, e.g. `WARNING`.
    pub severity_text: String,
    /// The message: usually a string, sometimes a map (structured logs).
    pub body: Value,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the sender dropped.
    pub dropped_attributes_count: u32,
    /// W3C trace flags of the span it belongs to.
    pub flags: u32,
    /// The trace it belongs to, if any.
    pub trace_id: Option<TraceId>,
    /// The span it belongs to, if any.
    pub span_id: Option<SpanId>,
    /// The event's name, for records that are events.
    pub event_name: String,
    /// The emitting entity (service).
    pub resource: Arc<Resource>,
    /// The instrumentation scope (logger).
    pub scope: Arc<Scope>,
}

impl LogRecord {
    /// An `INFO` record of the text `body` at `time_unix_nano` (observed
    /// then too) from an unnamed service, with nothing else set: the base
    /// that tests and tools vary by struct update
    /// (`LogRecord { severity_number: 17, ..LogRecord::info(t, "x") }`)
    /// rather than spelling out every field.
    pub fn info(time_unix_nano: u64, body: impl Into<String>) -> LogRecord {
        LogRecord {
            time_unix_nano,
            observed_time_unix_nano: time_unix_nano,
            severity_number: 9,
            severity_text: "INFO".into(),
            body: Value::from(body.into()),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: None,
            span_id: None,
            event_name: String::new(),
            resource: Arc::new(Resource::new(Vec::new(), 0, String::new())),
            scope: Arc::new(Scope::default()),
        }
    }

    /// The resource's `service.name`, or [`crate::UNKNOWN_SERVICE`].
    pub fn service_name(&self) -> &str {
        self.resource.service_name()
    }

    /// When the record happened: its own time, or when it was observed
    /// for records that carry none (the OTLP data model's advice). What
    /// log searches filter and sort on.
    pub fn timestamp(&self) -> u64 {
        if self.time_unix_nano != 0 { self.time_unix_nano } else { self.observed_time_unix_nano }
    }

    /// A stable 64-bit digest of the record and its service (FNV-1a over
    /// its OTLP encoding): the tie-breaker that orders records of the same
    /// timestamp for paging, equal for a record sent twice. Fixed across
    /// builds and machines, so a cursor survives restarts.
    pub fn fingerprint(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let encoded = otlp::encode_record(self).encode_to_vec();
        for b in encoded.iter().chain([0u8].iter()).chain(self.service_name().as_bytes()) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }
}

/// A unit of log ingest: decoded records plus their OTLP protobuf
/// encoding, as [`crate::Batch`] is for spans. Invariant: `otlp` decodes
/// (with [`otlp::decode_logs_request`]) to exactly `records`.
///
/// The batch names its [`Tenant`] (the default one unless the receiver set
/// another), so the pipeline and the log store keep tenants apart.
#[derive(Debug, Clone, Default)]
pub struct LogBatch {
    records: Vec<LogRecord>,
    otlp: Bytes,
    tenant: Tenant,
}

impl LogBatch {
    /// Pairs decoded records with the `ExportLogsServiceRequest` bytes they
    /// were decoded from. The caller guarantees the invariant; use
    /// [`LogBatch::from_records`] when unsure.
    pub fn new(records: Vec<LogRecord>, otlp: Bytes) -> Self {
        LogBatch { records, otlp, tenant: Tenant::default() }
    }

    /// Builds a batch by encoding `records` as an OTLP export request.
    pub fn from_records(records: Vec<LogRecord>) -> Self {
        let otlp = Bytes::from(otlp::encode_logs(&records).encode_to_vec());
        LogBatch { records, otlp, tenant: Tenant::default() }
    }

    /// The same batch, owned by `tenant`.
    pub fn with_tenant(mut self, tenant: Tenant) -> Self {
        self.tenant = tenant;
        self
    }

    /// Who the records belong to.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The records.
    pub fn records(&self) -> &[LogRecord] {
        &self.records
    }

    /// The OTLP `ExportLogsServiceRequest` protobuf encoding.
    pub fn otlp_bytes(&self) -> &Bytes {
        &self.otlp
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Splits the batch into its records and encoding.
    pub fn into_parts(self) -> (Vec<LogRecord>, Bytes) {
        (self.records, self.otlp)
    }
}
