//! The protocol- and signal-independent half of an OTLP export: charge
//! the decoded size, decode, build the unit, hand it on. Also the trace
//! messages' decoded-size table, whose common parts (resource, scope,
//! attributes) the logs and metrics tables reuse.

use std::mem::size_of;
use std::sync::Arc;

use bytes::Bytes;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prost::Message as _;
use sightline_model::{Span, Tenant};

use crate::Receiver;
use crate::front::cost::{MessageCost, proto_cost};
use crate::front::{Claim, Failure, ItemOutcome, Source};
use crate::json;
use crate::signals::{Decoded, OtlpSignal};

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
pub(crate) const fn listed<T>() -> usize {
    size_of::<T>() * 3 / 2
}

/// Allocation rounding of the two strings of a key-value pair.
pub(crate) const STRING_ROUNDING: usize = 32;

// What each OTLP trace message costs while a request is decoded. Measured
// on a 20 MiB request of realistic spans (12 attributes, one event):
// prost's decoding peaked at 85 MiB and conversion to the model at 94 MiB
// over the body; this table says 89 MiB, plus the body again for strings.
// The model's spans are charged (their array is reserved up front); their
// attributes, events and links are not, since each replaces its prost
// counterpart, freed as the span is converted.
pub(crate) static REQUEST: MessageCost =
    MessageCost { bytes: 0, fields: &[(1, &RESOURCE_SPANS)], per_byte: &[] };
static RESOURCE_SPANS: MessageCost = MessageCost {
    bytes: listed::<pt::ResourceSpans>() + size_of::<sightline_model::Resource>() + 32,
    fields: &[(1, &RESOURCE), (2, &SCOPE_SPANS)],
    per_byte: &[],
};
pub(crate) static RESOURCE: MessageCost = MessageCost { bytes: 0, fields: &[(1, &KEY_VALUE)], per_byte: &[] };
static SCOPE_SPANS: MessageCost = MessageCost {
    bytes: listed::<pt::ScopeSpans>() + size_of::<sightline_model::Scope>() + 32,
    fields: &[(1, &SCOPE), (2, &SPAN)],
    per_byte: &[],
};
pub(crate) static SCOPE: MessageCost = MessageCost { bytes: 0, fields: &[(3, &KEY_VALUE)], per_byte: &[] };
static SPAN: MessageCost = MessageCost {
    bytes: listed::<pt::Span>() + size_of::<Span>(),
    fields: &[(9, &KEY_VALUE), (11, &EVENT), (13, &LINK)],
    per_byte: &[],
};
static EVENT: MessageCost = MessageCost {
    bytes: listed::<pt::span::Event>() + STRING_ROUNDING / 2,
    fields: &[(3, &KEY_VALUE)],
    per_byte: &[],
};
static LINK: MessageCost =
    MessageCost { bytes: listed::<pt::span::Link>(), fields: &[(4, &KEY_VALUE)], per_byte: &[] };
pub(crate) static KEY_VALUE: MessageCost = MessageCost {
    bytes: listed::<pc::KeyValue>() + STRING_ROUNDING,
    fields: &[(2, &ANY_VALUE)],
    per_byte: &[],
};
/// Held inline by its key-value pair.
pub(crate) static ANY_VALUE: MessageCost =
    MessageCost { bytes: 0, fields: &[(5, &ARRAY_VALUE), (6, &KVLIST_VALUE)], per_byte: &[] };
static ARRAY_VALUE: MessageCost = MessageCost { bytes: 0, fields: &[(1, &ARRAY_ELEMENT)], per_byte: &[] };
/// An array's element: a listed `AnyValue`.
pub(crate) static ARRAY_ELEMENT: MessageCost = MessageCost {
    bytes: listed::<pc::AnyValue>(),
    fields: &[(5, &ARRAY_VALUE), (6, &KVLIST_VALUE)],
    per_byte: &[],
};
static KVLIST_VALUE: MessageCost = MessageCost { bytes: 0, fields: &[(1, &KEY_VALUE)], per_byte: &[] };

/// Bytes a decoded span-level object (a span, resource, scope, event, link
/// or status) may take, for OTLP/JSON whose objects are counted by kind.
pub(crate) const MESSAGE_BYTES: usize = SPAN.bytes;

/// Decodes an OTLP protobuf request after charging `claim` for its decoded
/// size (structs per message, plus the body's bytes again for the strings
/// copied out of it). Straight from the bytes where the signal can (see
/// [`OtlpSignal::decode_bytes`]; the charge stays `prost`'s, an upper
/// bound of what that path holds).
fn decode_protobuf<S: OtlpSignal>(
    body: &Bytes,
    claim: &mut Claim,
    tenant: Tenant,
) -> Result<Decoded<S::Unit>, Failure> {
    let invalid = |e: String| Failure::bad_request(format!("invalid OTLP protobuf: {e}"));
    let cost = proto_cost(body, S::COST).map_err(invalid)?;
    claim.grow(cost.saturating_add(body.len()))?;
    if let Some(direct) = S::decode_bytes(body, &tenant) {
        return direct.map_err(invalid);
    }
    let request = S::Request::decode(body.clone()).map_err(|e| invalid(e.to_string()))?;
    Ok(S::decode(request, Some(body.clone()), tenant))
}

impl Receiver {
    /// Decodes `body` and hands its valid items, owned by `tenant`, to
    /// `consumer`; counts items (the caller counts the request).
    pub(crate) async fn export<S: OtlpSignal>(
        &self,
        consumer: Arc<S::Consumer>,
        source: Source,
        format: Format,
        body: Bytes,
        mut claim: Claim,
        tenant: Tenant,
    ) -> Result<Accepted, Failure> {
        let metrics = self.front.metrics();
        metrics.request_bytes(source, body.len());
        let Decoded { unit, rejected, error_message } = match format {
            Format::Protobuf => decode_protobuf::<S>(&body, &mut claim, tenant)?,
            Format::Json => S::decode(json::decode_request::<S::Request>(&body, &mut claim)?, None, tenant),
        };
        metrics.items(source, ItemOutcome::Rejected, rejected);
        let Some(unit) = unit else {
            return Ok(Accepted { rejected, error_message });
        };
        // The request's prost form is gone: hold what the unit holds.
        claim.shrink_to(S::held(&unit));
        let n = S::count(&unit);
        metrics.batch_items(source, n);
        match self.front.hand_on(claim, S::consume(consumer, unit)).await {
            Ok(()) => {
                metrics.items(source, ItemOutcome::Accepted, n as u64);
                Ok(Accepted { rejected, error_message })
            }
            Err(failure) => {
                metrics.items(source, ItemOutcome::Refused, n as u64);
                Err(failure)
            }
        }
    }
}
