//! The Zipkin v2 receiver: `POST /api/v2/spans` with a JSON or protobuf
//! list of spans, mapped onto Sightline's span model.
//!
//! Services instrumented with Zipkin libraries (Brave, zipkin-go, zipkin-js,
//! the OpenTelemetry SDKs' Zipkin exporters) keep working unchanged when
//! their endpoint points here (port 9411 by convention): the spans land in
//! the same store, searchable through the same Jaeger API as OTLP spans.
//!
//! # HTTP surface
//!
//! | request | reply |
//! |---|---|
//! | `Content-Type: application/json`: a JSON list of Zipkin v2 spans | 202, empty body |
//! | `Content-Type: application/x-protobuf`: a `zipkin.proto3.ListOfSpans` | 202, empty body |
//! | `Content-Encoding: gzip` / `deflate` | inflated, the size limit applying after inflation |
//! | body over the front's size limit (on the wire or inflated), or decoding to more memory than the in-flight budget | 413 |
//! | no Content-Type (a browser's `no-cors` request), or any other Content-Type or Content-Encoding | 415 |
//! | body not complete within the body timeout | 408 |
//! | undecodable body, malformed id, or every span invalid | 400, plain-text message |
//! | in-flight budget spent, or the consumer `Overloaded` | 429 + `Retry-After` |
//! | the consumer `Unavailable` | 503 + `Retry-After` |
//!
//! Only Zipkin's v2 API is served; `/api/v1/spans` is a 404.
//!
//! # Mapping (Zipkin v2 → model)
//!
//! As the OpenTelemetry Collector's `zipkinv2` translator does, with the
//! differences marked *(superset)* where Sightline keeps data the
//! translator drops:
//!
//! - **Ids.** `traceId` is 1–32 hex digits (64-bit ids are left-padded to
//!   128 bits), `id` and `parentId` 1–16; protobuf ids are 8 or 16 bytes.
//!   A malformed id fails the whole request with 400, as it does in the
//!   Collector and in Zipkin itself (Zipkin has no partial success). An
//!   all-zero trace or span id is well-formed but not a valid W3C id, which
//!   the model forbids: that span alone is skipped and counted
//!   (`sightline_receive_spans_total{receiver="zipkin",outcome="rejected"}`) and the rest are
//!   accepted with 202; when no span is left the reply is 400. A zero
//!   `parentId`, or one equal to `id`, means a root span.
//! - **Kind.** `CLIENT`/`SERVER`/`PRODUCER`/`CONSUMER` map to the same span
//!   kinds. Without a kind, a `span.kind` tag naming a kind is used (and
//!   removed); otherwise the kind is unspecified (the OpenTelemetry Zipkin
//!   exporters send internal spans without a kind).
//! - **Times.** µs → ns; end = start + duration. A span without a
//!   timestamp starts at the epoch and gets
//!   `otel.zipkin.absentField.startTime = true`, as in the translator.
//! - **Resource.** `localEndpoint.serviceName` becomes `service.name`
//!   (absent → the model's `unknown_service`); tags that are resource
//!   attributes by semantic convention (`service.*`, `telemetry.*`,
//!   `host.*`, `process.*`, `os.*`, `k8s.*`, `container.*`, `cloud.*`,
//!   `deployment.*`, …), which the OpenTelemetry Zipkin exporters copy
//!   into every span's tags, move to the resource. Spans with the same
//!   service and resource attributes share one `Arc<Resource>`.
//! - **Scope.** `otel.scope.name`/`otel.scope.version` (or the older
//!   `otel.library.name`/`otel.library.version`) become the
//!   instrumentation scope, shared likewise.
//! - **Endpoints → attributes.** Local ip and port become
//!   `network.local.address` and `network.local.port`; remote ip and port
//!   `network.peer.address` and `network.peer.port` (the Collector's
//!   current semantic conventions); the remote service name `peer.service`,
//!   as the OpenTelemetry Zipkin mapping specifies. A tag with the same key
//!   wins. IPv4 is preferred when both addresses are given; invalid
//!   addresses and ports outside 1–65535 are ignored, as Zipkin does.
//! - **Status.** `otel.status_code` (`OK`/`ERROR`, also the Collector's
//!   `STATUS_CODE_*`/`Ok`/`Error` spellings, any case) and, for errors,
//!   `otel.status_description` set the status. An `error` tag makes the
//!   status ERROR (unless `otel.status_code` said OK, or its value is
//!   `false`) with its value as the message unless that is `true` or a
//!   description was given. Consumed tags are removed, since the query API
//!   derives them from the status.
//! - **Other tags.** `w3c.tracestate` → trace state; `otlp.link.N`
//!   (the Collector's Zipkin exporter encoding) → links; the rest become
//!   string attributes, in key order.
//! - **Annotations → events.** The time is the annotation's; a value in the
//!   OpenTelemetry Zipkin exporters' form `{"name": {attributes}}`
//!   *(superset)* or the Collector's `name|{attributes}|dropped` becomes a
//!   named event with typed attributes; any other value is the event name.
//! - **Shared spans.** A `shared: true` span (a server span reusing its
//!   client's span id, B3 style) gets a new span id derived
//!   deterministically from trace and span id, and the client span as its
//!   parent; spans of the same service in the same request whose parent
//!   was the shared id are re-parented onto it. *(superset)* The
//!   translator passes the duplicate id through, and Sightline's store
//!   would drop one of the two spans as a retry duplicate. A child
//!   reported in a later request stays attached to the client span.
//! - **`debug`** is ignored, as in the translator: every received span is
//!   kept anyway.
//!
//! # Design
//!
//! - **Acknowledge only what is durable.** The 202 is sent only after the
//!   [`TracesConsumer`] returned `Ok`; its refusals become 429/503 with
//!   `Retry-After`. The consumer runs in its own task, so a sender hanging
//!   up mid-request never cancels an append halfway.
//! - **One front.** Requests are read through `sightline_receive`'s
//!   [`Front`], shared with the OTLP receivers: one in-flight budget, one
//!   set of limits, timeouts, refusal mapping and metrics
//!   (`sightline_receive_*{receiver="zipkin"}`). Before decoding, the
//!   body's structure is walked and the budget charged for the decoded
//!   size, so a body of many empty spans is refused, not decoded.
//! - **Never crash on input.** Every failure is a response with a message
//!   naming the offending span and field.
#![deny(missing_docs)]

mod http;
mod json;
mod proto;
mod translate;

use std::sync::Arc;

use sightline_model::TracesConsumer;
use sightline_receive::front::Front;

/// The Zipkin v2 spans path.
pub const SPANS_PATH: &str = "/api/v2/spans";

/// The receiver: consumer and the shared front. Cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    consumer: Arc<dyn TracesConsumer>,
    front: Front,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").field("front", &self.front).finish_non_exhaustive()
    }
}

impl Receiver {
    /// The name metrics and the pipeline config know this receiver by.
    pub const NAME: &'static str = "zipkin";

    /// A receiver handing batches to `consumer` through `front`; nothing
    /// listens until [`Receiver::router`] is served.
    pub fn new(consumer: Arc<dyn TracesConsumer>, front: Front) -> Self {
        Receiver { consumer, front }
    }

    /// The axum router serving `POST /api/v2/spans` (other methods → 405,
    /// other paths → 404).
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }
}

#[cfg(test)]
mod tests;
