//! The protocol-independent half of an OTLP trace export: charge the
//! decoded size, decode, build the batch, hand it on.

use std::mem::size_of;
use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::trace::v1 as pt;
use sightline_model::{Batch, Span, Tenant, otlp};

use crate::Receiver;
use crate::front::cost::{MessageCost, proto_cost};
use crate::front::{Claim, Failure, ItemOutcome, Source};
use crate::json;

/// The body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Protobuf,
    Json,
}

/// An accepted export: how many spans were rejected as invalid, and why.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) rejected: u64,
    pub(crate) error_message: String,
}

/// A repeated prost field's element: the struct, and half again for the
/// spare room `Vec` growth leaves on average while decoding (twice in the
/// worst case, so the estimate may be up to a quarter short there).
const fn listed<T>() -> usize {
    size_of::<T>() * 3 / 2
}

/// Allocation rounding of the two strings of a key-value pair.
const STRING_ROUNDING: usize = 32;

// What each OTLP trace message costs while a request is decoded. Measured
// on a 20 MiB request of realistic spans (12 attributes, one event):
// prost's decoding peaked at 85 MiB and conversion to the model at 94 MiB
// over the body; this table says 89 MiB, plus the body again for strings.
// The model's spans are charged (their array is reserved up front); their
// attributes, events and links are not, since each replaces its prost
// counterpart, freed as the span is converted.
pub(crate) static REQUEST: MessageCost = MessageCost { bytes: 0, fields: &[(1, &RESOURCE_SPANS)] };
static RESOURCE_SPANS: MessageCost = MessageCost {
    bytes: listed::<pt::ResourceSpans>() + size_of::<sightline_model::Resource>() + 32,
    fields: &[(1, &RESOURCE), (2, &SCOPE_SPANS)],
};
static RESOURCE: MessageCost = MessageCost { bytes: 0, fields: &[(1, &KEY_VALUE)] };
static SCOPE_SPANS: MessageCost = MessageCost {
    bytes: listed::<pt::ScopeSpans>() + size_of::<sightline_model::Scope>() + 32,
    fields: &[(1, &SCOPE), (2, &SPAN)],
};
static SCOPE: MessageCost = MessageCost { bytes: 0, fields: &[(3, &KEY_VALUE)] };
static SPAN: MessageCost = MessageCost {
    bytes: listed::<pt::Span>() + size_of::<Span>(),
    fields: &[(9, &KEY_VALUE), (11, &EVENT), (13, &LINK)],
};
static EVENT: MessageCost =
    MessageCost { bytes: listed::<pt::span::Event>() + STRING_ROUNDING / 2, fields: &[(3, &KEY_VALUE)] };
static LINK: MessageCost = MessageCost { bytes: listed::<pt::span::Link>(), fields: &[(4, &KEY_VALUE)] };
pub(crate) static KEY_VALUE: MessageCost =
    MessageCost { bytes: listed::<pc::KeyValue>() + STRING_ROUNDING, fields: &[(2, &ANY_VALUE)] };
/// Held inline by its key-value pair.
static ANY_VALUE: MessageCost = MessageCost { bytes: 0, fields: &[(5, &ARRAY_VALUE), (6, &KVLIST_VALUE)] };
static ARRAY_VALUE: MessageCost = MessageCost { bytes: 0, fields: &[(1, &ARRAY_ELEMENT)] };
/// An array's element: a listed `AnyValue`.
pub(crate) static ARRAY_ELEMENT: MessageCost =
    MessageCost { bytes: listed::<pc::AnyValue>(), fields: &[(5, &ARRAY_VALUE), (6, &KVLIST_VALUE)] };
static KVLIST_VALUE: MessageCost = MessageCost { bytes: 0, fields: &[(1, &KEY_VALUE)] };

/// Bytes a decoded span-level object (a span, resource, scope, event, link
/// or status) may take, for OTLP/JSON whose objects are counted by kind.
pub(crate) const MESSAGE_BYTES: usize = SPAN.bytes;

/// Decodes an OTLP protobuf request into spans after charging `claim` for
/// its decoded size (structs per message, plus the body's bytes again for
/// the strings copied out of it). Straight from the bytes where it can
/// (see [`otlp::decode_protobuf`]; the charge stays `prost`'s, an upper
/// bound of what that path holds).
fn decode_protobuf(body: &Bytes, claim: &mut Claim) -> Result<otlp::Decoded, Failure> {
    let invalid = |e: String| Failure::bad_request(format!("invalid OTLP protobuf: {e}"));
    let cost = proto_cost(body, &REQUEST).map_err(invalid)?;
    claim.grow(cost.saturating_add(body.len()))?;
    otlp::decode_protobuf(body).map_err(|e| invalid(e.to_string()))
}

impl Receiver {
    /// Decodes `body` and hands its valid spans, owned by `tenant`, to the
    /// consumer; counts spans (the caller counts the request).
    pub(crate) async fn export(
        &self,
        source: Source,
        format: Format,
        body: Bytes,
        mut claim: Claim,
        tenant: Tenant,
    ) -> Result<Accepted, Failure> {
        let metrics = self.front.metrics();
        metrics.request_bytes(source, body.len());
        let (decoded, raw) = match format {
            Format::Protobuf => (decode_protobuf(&body, &mut claim)?, Some(body)),
            Format::Json => (otlp::decode_request(json::decode_request(&body, &mut claim)?), None),
        };
        let (rejected, error_message) = (decoded.rejected, decoded.error_message);
        metrics.spans(source, ItemOutcome::Rejected, rejected);
        if decoded.spans.is_empty() {
            return Ok(Accepted { rejected, error_message });
        }
        let batch = match raw {
            Some(raw) if rejected == 0 => Batch::new(decoded.spans, raw),
            _ => Batch::from_spans(decoded.spans),
        }
        .with_tenant(tenant);
        // The request's prost form is gone: hold what the batch holds.
        let held = batch.otlp_bytes().len() + batch.spans().iter().map(Span::estimated_size).sum::<usize>();
        claim.shrink_to(held);
        let n = batch.len();
        metrics.batch_spans(source, n);
        let consumer = Arc::clone(&self.consumer);
        match self.front.hand_on(claim, async move { consumer.consume_traces(batch).await }).await {
            Ok(()) => {
                metrics.spans(source, ItemOutcome::Accepted, n as u64);
                Ok(Accepted { rejected, error_message })
            }
            Err(failure) => {
                metrics.spans(source, ItemOutcome::Refused, n as u64);
                Err(failure)
            }
        }
    }
}
