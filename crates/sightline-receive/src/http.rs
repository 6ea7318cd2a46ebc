//! OTLP/HTTP: `POST /v1/traces`, `/v1/logs` and `/v1/metrics` (those a
//! pipeline takes; others are 404, as from the Collector) with a binary
//! protobuf or JSON body, optionally gzip-compressed.
//!
//! Every failure is a response (the handler cannot fail), with the status
//! the [`Failure`] names. Error bodies are a `google.rpc.Status` in the
//! request's own encoding, as the spec requires; only when the
//! Content-Type is unknown (so there is no encoding to answer in) is the
//! body plain text.

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use prost::Message as _;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::Receiver;
use crate::front::{Failure, Protocol, RequestOutcome, Source};
use crate::ingest::Format;
use crate::json;
use crate::signals::{Logs, Metrics, OtlpSignal, Traces};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";
const FORMATS: &[(&str, Format)] = &[(JSON, Format::Json), (PROTOBUF, Format::Protobuf)];

pub(crate) fn router(receiver: Receiver) -> Router {
    let mut router = Router::new();
    if receiver.traces.is_some() {
        router = router.route(Traces::HTTP_PATH, post(export::<Traces>).fallback(method_not_allowed));
    }
    if receiver.logs.is_some() {
        router = router.route(Logs::HTTP_PATH, post(export::<Logs>).fallback(method_not_allowed));
    }
    if receiver.metrics.is_some() {
        router = router.route(Metrics::HTTP_PATH, post(export::<Metrics>).fallback(method_not_allowed));
    }
    router.with_state(receiver)
}

async fn method_not_allowed() -> Response {
    // axum adds `Allow: POST` to 405s from a method router's fallback; set it
    // here too so the header does not depend on that.
    let mut response =
        plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed, supported: [POST]".into());
    response.headers_mut().insert(ALLOW, HeaderValue::from_static("POST"));
    response
}

fn protocol(format: Format) -> Protocol {
    match format {
        Format::Protobuf => Protocol::HttpProtobuf,
        Format::Json => Protocol::HttpJson,
    }
}

fn content_type(format: Format) -> HeaderValue {
    HeaderValue::from_static(match format {
        Format::Protobuf => PROTOBUF,
        Format::Json => JSON,
    })
}

/// The format named by Content-Type, to answer failures in.
fn format_hint(headers: &http::HeaderMap) -> Option<Format> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or_default().trim();
    FORMATS.iter().find(|(name, _)| media.eq_ignore_ascii_case(name)).map(|(_, f)| *f)
}

async fn export<S: OtlpSignal>(State(receiver): State<Receiver>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let hint = format_hint(&parts.headers);
    let source = Source {
        receiver: Receiver::NAME,
        signal: S::SIGNAL,
        protocol: hint.map_or(Protocol::Http, protocol),
    };
    let metrics = receiver.front.metrics();
    let Some(consumer) = S::consumer(&receiver) else {
        // The router serves only signals with a consumer.
        metrics.request(source, RequestOutcome::Unsupported);
        return plain(StatusCode::NOT_FOUND, "404 page not found".into());
    };
    let result = async {
        let incoming = receiver.front.read_http(&parts, body, FORMATS).await?;
        receiver
            .export::<S>(consumer, source, incoming.format, incoming.body, incoming.claim, incoming.tenant)
            .await
    }
    .await;
    match (result, hint) {
        (Ok(accepted), Some(format)) => {
            let outcome = if accepted.rejected == 0 { RequestOutcome::Ok } else { RequestOutcome::Partial };
            metrics.request(source, outcome);
            success::<S>(format, accepted.rejected, accepted.error_message)
        }
        (Err(failure), Some(format)) => {
            metrics.request(source, failure.outcome());
            failure_response(&failure, format)
        }
        (result, None) => {
            // Only an unknown Content-Type leaves no format to answer in.
            let failure = result.err().unwrap_or_else(|| Failure::unsupported_media_type(JSON));
            metrics.request(source, failure.outcome());
            plain(failure.http_status(), failure.message().to_owned())
        }
    }
}

fn failure_response(failure: &Failure, format: Format) -> Response {
    let (code, message, retry_after) = (failure.grpc_code(), failure.message(), failure.retry_after());
    let body = match format {
        Format::Json => json::status(code, message, retry_after),
        Format::Protobuf => status_protobuf(code, message, retry_after),
    };
    let mut response = (failure.http_status(), body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, content_type(format));
    failure.set_retry_after(response.headers_mut());
    response
}

/// A protobuf `google.rpc.Status`: a `RetryInfo` detail for refusals, a
/// `BadRequest` one for bad data (as the spec suggests).
fn status_protobuf(code: Code, message: &str, retry_after: Option<Duration>) -> Vec<u8> {
    let details = match (retry_after, code) {
        (Some(delay), _) => ErrorDetails::with_retry_info(Some(delay)),
        (None, Code::InvalidArgument) => ErrorDetails::with_bad_request_violation("body", message),
        (None, _) => {
            return tonic_types::Status {
                code: code as i32,
                message: message.to_owned(),
                details: Vec::new(),
            }
            .encode_to_vec();
        }
    };
    // tonic-types encodes the whole google.rpc.Status (code, message and
    // packed details) into the status' details bytes.
    tonic::Status::with_error_details(code, message, details).details().to_vec()
}

fn plain(status: StatusCode, message: String) -> Response {
    let mut response = (status, message).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn success<S: OtlpSignal>(format: Format, rejected: u64, error_message: String) -> Response {
    let body = match format {
        Format::Json => json::response(rejected, &error_message, S::REJECTED_JSON),
        Format::Protobuf => S::response(rejected, error_message).encode_to_vec(),
    };
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, content_type(format));
    response
}
