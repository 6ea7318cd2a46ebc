//! Tempo's protobuf messages that Grafana reads (`pkg/tempopb/tempo.proto`),
//! written by hand as prost structs, as `sightline-zipkin` does for Zipkin:
//! there is no generated crate, and two messages do not justify a build
//! script.
//!
//! Tempo's `Trace` is `repeated ResourceSpans resourceSpans = 1`, and its
//! `tempopb.trace.v1` is OTLP's trace proto under another package: on the
//! wire that is exactly OTLP's `TracesData`, which is what is used here.

use opentelemetry_proto::tonic::trace::v1::TracesData;

/// `tempopb.TraceByIDResponse`, the body of `GET /api/v2/traces/{id}` with
/// `Accept: application/protobuf`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TraceByIdResponse {
    /// `tempopb.Trace trace = 1`.
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TracesData>,
    /// `TraceByIDMetrics metrics = 2`.
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    /// `PartialStatus status = 3`: `COMPLETE = 0`, `PARTIAL = 1`.
    #[prost(int32, tag = "3")]
    pub status: i32,
    /// `string message = 4`.
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `tempopb.TraceByIDMetrics`: only the field Sightline can fill.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct TraceByIdMetrics {
    /// `uint64 inspectedBytes = 1`.
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}
