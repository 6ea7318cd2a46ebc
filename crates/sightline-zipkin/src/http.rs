//! `POST /api/v2/spans`: read through the shared receiver front, decoded
//! here. Every failure is a plain-text response with the front's status
//! (and `Retry-After` for refusals); success is 202 with an empty body, as
//! Zipkin answers.

use std::mem::size_of;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use sightline_model::{Batch, Span};
use sightline_receive::front::cost::{MessageCost, json_shape, proto_cost};
use sightline_receive::front::{Claim, Failure, ItemOutcome, Protocol, RequestOutcome, Signal, Source};

use crate::translate::{WireAnnotation, WireEndpoint, WireSpan, translate};
use crate::{Receiver, SPANS_PATH, json, proto};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Protobuf,
}

const FORMATS: &[(&str, Format)] = &[(JSON, Format::Json), (PROTOBUF, Format::Protobuf)];

pub(crate) fn router(receiver: Receiver) -> Router {
    Router::new().route(SPANS_PATH, post(spans)).with_state(receiver)
}

/// The protocol label of a request, from its Content-Type.
fn protocol(headers: &HeaderMap) -> Protocol {
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim());
    match media {
        Some(m) if m.eq_ignore_ascii_case(JSON) => Protocol::HttpJson,
        Some(m) if m.eq_ignore_ascii_case(PROTOBUF) => Protocol::HttpProtobuf,
        _ => Protocol::Http,
    }
}

// What one decoded Zipkin object costs (wire struct, translated span and
// model span all exist while a request is converted).
const SPAN_BYTES: usize = 2 * size_of::<proto::Span>() + size_of::<WireSpan>() + size_of::<Span>();
const ENDPOINT_BYTES: usize = size_of::<WireEndpoint>() + 64;
const ANNOTATION_BYTES: usize =
    2 * size_of::<proto::Annotation>() + size_of::<WireAnnotation>() + size_of::<sightline_model::Event>();
/// A tag: B-tree entries of two `String`s in the wire struct and again in
/// the translated span, and a model attribute.
const TAG_BYTES: usize = 4 * 2 * size_of::<String>() + size_of::<sightline_model::KeyValue>();

pub(crate) static LIST_OF_SPANS: MessageCost = MessageCost { bytes: 0, fields: &[(1, &SPAN)], per_byte: &[] };
static SPAN: MessageCost = MessageCost {
    bytes: SPAN_BYTES,
    fields: &[(8, &ENDPOINT), (9, &ENDPOINT), (10, &ANNOTATION), (11, &TAG)],
    per_byte: &[],
};
static ENDPOINT: MessageCost = MessageCost { bytes: ENDPOINT_BYTES, fields: &[], per_byte: &[] };
static ANNOTATION: MessageCost = MessageCost { bytes: ANNOTATION_BYTES, fields: &[], per_byte: &[] };
static TAG: MessageCost = MessageCost { bytes: TAG_BYTES, fields: &[], per_byte: &[] };

/// Charges `claim` for what decoding `body` will take, then decodes it.
/// JSON objects are counted at a span's cost and members at a tag's: an
/// upper bound, since the serde structs are filled without a `Value` tree.
fn decode(format: Format, body: Bytes, claim: &mut Claim) -> Result<Vec<WireSpan>, Failure> {
    let cost = match format {
        Format::Protobuf => proto_cost(&body, &LIST_OF_SPANS).map_err(|e| {
            Failure::bad_request(format!("invalid Zipkin protobuf (expected zipkin.proto3.ListOfSpans): {e}"))
        })?,
        Format::Json => {
            let shape = json_shape(&body, 128)
                .map_err(|e| Failure::bad_request(format!("invalid Zipkin JSON: {e}")))?;
            shape
                .containers
                .saturating_mul(SPAN_BYTES)
                .saturating_add(shape.members.saturating_mul(TAG_BYTES))
        }
    };
    // Strings are copied out of the body once or twice on the way.
    claim.grow(cost.saturating_add(body.len().saturating_mul(2)))?;
    match format {
        Format::Protobuf => proto::decode(body),
        Format::Json => json::decode(&body),
    }
    .map_err(Failure::bad_request)
}

async fn spans(State(receiver): State<Receiver>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let source =
        Source { receiver: Receiver::NAME, signal: Signal::Traces, protocol: protocol(&parts.headers) };
    let metrics = receiver.front.metrics();
    let result = async {
        let incoming = receiver.front.read_http(&parts, body, FORMATS).await?;
        let mut claim = incoming.claim;
        metrics.request_bytes(source, incoming.body.len());
        let wire = decode(incoming.format, incoming.body, &mut claim)?;
        let translated = translate(wire);
        metrics.items(source, ItemOutcome::Rejected, translated.rejected);
        if translated.spans.is_empty() {
            return if translated.rejected > 0 {
                Err(Failure::bad_request(translated.error_message))
            } else {
                Ok(RequestOutcome::Ok)
            };
        }
        if translated.rejected > 0 {
            tracing::debug!(message = %translated.error_message, "skipped Zipkin spans");
        }
        let outcome = if translated.rejected == 0 { RequestOutcome::Ok } else { RequestOutcome::Partial };
        let batch = Batch::from_spans(translated.spans).with_tenant(incoming.tenant);
        claim.shrink_to(
            batch.otlp_bytes().len() + batch.spans().iter().map(Span::estimated_size).sum::<usize>(),
        );
        let n = batch.len();
        metrics.batch_items(source, n);
        let consumer = Arc::clone(&receiver.consumer);
        match receiver.front.hand_on(claim, async move { consumer.consume_traces(batch).await }).await {
            Ok(()) => {
                metrics.items(source, ItemOutcome::Accepted, n as u64);
                Ok(outcome)
            }
            Err(failure) => {
                metrics.items(source, ItemOutcome::Refused, n as u64);
                Err(failure)
            }
        }
    }
    .await;
    match result {
        Ok(outcome) => {
            metrics.request(source, outcome);
            StatusCode::ACCEPTED.into_response()
        }
        Err(failure) => {
            metrics.request(source, failure.outcome());
            if failure.http_status() == StatusCode::BAD_REQUEST {
                tracing::debug!(message = %failure.message(), "rejected a Zipkin request");
            }
            let mut response = (failure.http_status(), failure.message().to_owned()).into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
            failure.set_retry_after(headers);
            response
        }
    }
}
