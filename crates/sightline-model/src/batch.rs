use std::sync::OnceLock;

use bytes::Bytes;
use prost::Message as _;

use crate::view::{SpanView, for_each_wire_span};
use crate::{Span, Tenant, otlp};

/// A unit of ingest: spans plus their OTLP protobuf encoding.
///
/// The encoding travels with the spans so a store can write it to its
/// write-ahead log without re-encoding: for protobuf requests it is the
/// request body itself. Invariant: `otlp` decodes (with
/// [`otlp::decode_request`]) to exactly the batch's spans, every one valid.
///
/// The spans may be decoded lazily: a batch made with
/// [`Batch::from_protobuf`] holds only the bytes until a stage asks for
/// [`Batch::spans`]. Stages that only read spans should use
/// [`Batch::for_each_span`], which reads them in place; the default
/// pipeline then never builds model spans (the store and the block writer
/// work from the bytes too).
///
/// The batch also names its [`Tenant`] (the default one unless the receiver
/// set another), so every stage can keep tenants apart.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    spans: OnceLock<Vec<Span>>,
    len: usize,
    otlp: Bytes,
    tenant: Tenant,
}

impl Batch {
    /// Pairs decoded spans with the protobuf bytes they were decoded from.
    /// The caller guarantees the invariant; use [`Batch::from_spans`] when
    /// unsure.
    pub fn new(spans: Vec<Span>, otlp: Bytes) -> Self {
        Batch { len: spans.len(), spans: OnceLock::from(spans), otlp, tenant: Tenant::default() }
    }

    /// Builds a batch by encoding `spans` as an OTLP export request.
    pub fn from_spans(spans: Vec<Span>) -> Self {
        let otlp = Bytes::from(otlp::encode_spans(&spans).encode_to_vec());
        Batch::new(spans, otlp)
    }

    /// A batch of an export request's protobuf bytes, its spans left
    /// undecoded, when the request is one the direct decoder reads and
    /// every span in it is valid ([`otlp::check_request_bytes`]); `None`
    /// otherwise (decode it, and report what was rejected).
    pub fn from_protobuf(otlp: Bytes) -> Option<Self> {
        let checked = otlp::check_request_bytes(&otlp)?;
        (checked.rejected == 0).then(|| Batch {
            spans: OnceLock::new(),
            len: checked.accepted,
            otlp,
            tenant: Tenant::default(),
        })
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

    /// The spans, decoded on first use if the batch holds only bytes.
    pub fn spans(&self) -> &[Span] {
        self.spans.get_or_init(|| decode(&self.otlp))
    }

    /// The spans if they are decoded already (for memory accounting and
    /// tests: this does not decode).
    pub fn decoded_spans(&self) -> Option<&[Span]> {
        self.spans.get().map(Vec::as_slice)
    }

    /// Calls `f` with every span, in order: the model spans if decoded,
    /// else read in place from the bytes (see [`crate::WireSpan`]).
    pub fn for_each_span(&self, mut f: impl FnMut(&dyn SpanView)) {
        if let Some(spans) = self.spans.get() {
            spans.iter().for_each(|s| f(s));
            return;
        }
        if let Err(e) = for_each_wire_span(&self.otlp, &mut f) {
            // The bytes were checked when the batch was made: a bug.
            debug_assert!(false, "a checked batch could not be read: {e}");
        }
    }

    /// The OTLP `ExportTraceServiceRequest` protobuf encoding of the spans.
    pub fn otlp_bytes(&self) -> &Bytes {
        &self.otlp
    }

    /// Number of spans.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch has no spans.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Splits the batch into its spans (decoding them if needed) and
    /// encoding.
    pub fn into_parts(mut self) -> (Vec<Span>, Bytes) {
        let spans = match self.spans.take() {
            Some(spans) => spans,
            None => decode(&self.otlp),
        };
        (spans, self.otlp)
    }

    /// The encoding alone, without decoding anything.
    pub fn into_otlp(self) -> Bytes {
        self.otlp
    }
}

/// The spans of checked bytes. They decode (the constructors promise it);
/// were that broken, the batch would read as empty rather than panic.
fn decode(otlp: &[u8]) -> Vec<Span> {
    match otlp::decode_protobuf(otlp) {
        Ok(decoded) => decoded.spans,
        Err(e) => {
            debug_assert!(false, "a batch's bytes did not decode: {e}");
            Vec::new()
        }
    }
}
