//! What differs between the OTLP signals, behind one trait: the request
//! and response types, the decoded-size table, the mapping to the model's
//! batch and the consumer it goes to. Everything else — the front, the
//! decoding steps, partial success, metrics — is written once in
//! [`crate::ingest`], [`crate::grpc`] and [`crate::http`].

mod logs;
mod metrics;
mod traces;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use sightline_model::{ConsumeError, Tenant};

use crate::Receiver;
use crate::front::Signal;
use crate::front::cost::MessageCost;

pub(crate) use logs::Logs;
pub(crate) use metrics::Metrics;
pub(crate) use traces::Traces;

/// A request decoded into the model: the unit to hand on (`None` when no
/// item was accepted), and the items rejected for partial success.
pub(crate) struct Decoded<U> {
    pub(crate) unit: Option<U>,
    pub(crate) rejected: u64,
    pub(crate) error_message: String,
}

/// A consumer taking a unit, run by [`crate::front::Front::hand_on`].
pub(crate) type Work = Pin<Box<dyn Future<Output = Result<(), ConsumeError>> + Send>>;

/// One OTLP signal as the receivers see it.
pub(crate) trait OtlpSignal: Send + Sync + 'static {
    /// `Export*ServiceRequest`.
    type Request: prost::Message + Default + serde::de::DeserializeOwned + Send;
    /// `Export*ServiceResponse`.
    type Response: prost::Message;
    /// The model's unit of ingest ([`sightline_model::Batch`], …).
    type Unit: Send + 'static;
    /// The consumer trait object.
    type Consumer: ?Sized + Send + Sync + 'static;

    /// For metrics labels.
    const SIGNAL: Signal;
    /// `/opentelemetry.proto.collector.<signal>.v1.<Service>/Export`.
    const GRPC_PATH: &'static str;
    /// `/v1/<signal>`.
    const HTTP_PATH: &'static str;
    /// The partial-success count's OTLP/JSON name, e.g. `rejectedSpans`.
    const REJECTED_JSON: &'static str;
    /// What the request's messages cost once decoded.
    const COST: &'static MessageCost;

    /// Where the receiver hands this signal, if a pipeline takes it.
    fn consumer(receiver: &Receiver) -> Option<Arc<Self::Consumer>>;
    /// Maps a request to the model; `raw` is the request's protobuf
    /// encoding when it was received as protobuf (reused for the WAL when
    /// every item was accepted).
    fn decode(request: Self::Request, raw: Option<Bytes>, tenant: Tenant) -> Decoded<Self::Unit>;
    /// Decodes a protobuf body straight into the unit, where the signal
    /// has such a path (traces: no prost structs in between); `None`:
    /// decode with `prost`, then [`OtlpSignal::decode`]. `Err` is the
    /// reason the body does not decode.
    fn decode_bytes(_body: &Bytes, _tenant: &Tenant) -> Option<Result<Decoded<Self::Unit>, String>> {
        None
    }
    /// Items counted for metrics: spans, log records, data points.
    fn count(unit: &Self::Unit) -> usize;
    /// Bytes the unit holds (decoded items plus encoding), an estimate.
    fn held(unit: &Self::Unit) -> usize;
    /// Hands the unit to the consumer.
    fn consume(consumer: Arc<Self::Consumer>, unit: Self::Unit) -> Work;
    /// The protobuf response, with partial success when anything was rejected.
    fn response(rejected: u64, error_message: String) -> Self::Response;
}

/// The OTLP partial-success count: an int64.
pub(crate) fn rejected_i64(rejected: u64) -> i64 {
    i64::try_from(rejected).unwrap_or(i64::MAX)
}

/// Whether a response carries a partial success.
pub(crate) fn partial(rejected: u64, error_message: &str) -> bool {
    rejected > 0 || !error_message.is_empty()
}

#[cfg(test)]
mod tests;
