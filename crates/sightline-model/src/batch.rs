use bytes::Bytes;
use prost::Message as _;

use crate::{Span, Tenant, otlp};

/// A unit of ingest: decoded spans plus their OTLP protobuf encoding.
///
/// The encoding travels with the spans so a store can write it to its
/// write-ahead log without re-encoding: for protobuf requests it is the
/// request body itself. Invariant: `otlp` decodes (with
/// [`otlp::decode_request`]) to exactly `spans`.
///
/// The batch also names its [`Tenant`] (the default one unless the receiver
/// set another), so every stage can keep tenants apart.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    spans: Vec<Span>,
    otlp: Bytes,
    tenant: Tenant,
}

impl Batch {
    /// Pairs decoded spans with the protobuf bytes they were decoded from.
    /// The caller guarantees the invariant; use [`Batch::from_spans`] when
    /// unsure.
    pub fn new(spans: Vec<Span>, otlp: Bytes) -> Self {
        Batch { spans, otlp, tenant: Tenant::default() }
    }

    /// Builds a batch by encoding `spans` as an OTLP export request.
    pub fn from_spans(spans: Vec<Span>) -> Self {
        let otlp = Bytes::from(otlp::encode_spans(&spans).encode_to_vec());
        Batch { spans, otlp, tenant: Tenant::default() }
    }

    /// The same batch, owned by `tenant`.
    pub fn with_tenant(mut self, tenant: Tenant) -> Self {
        self.tenant = tenant;
        self
    }

    /// Who the spans belong to.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The spans.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// The OTLP `ExportTraceServiceRequest` protobuf encoding of the spans.
    pub fn otlp_bytes(&self) -> &Bytes {
        &self.otlp
    }

    /// Number of spans.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch has no spans.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Splits the batch into its spans and encoding.
    pub fn into_parts(self) -> (Vec<Span>, Bytes) {
        (self.spans, self.otlp)
    }

    /// The encoding alone (the spans are dropped).
    pub fn into_otlp(self) -> Bytes {
        self.otlp
    }
}
