//! `POST /api/v2/spans`: every failure is a plain-text response (the
//! handler cannot fail); success is 202 with an empty body, as Zipkin
//! answers.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use sightline_model::{Batch, ConsumeError};

use crate::body::{BodyError, Encoding, inflate_limited, read_limited};
use crate::metrics::{Format, RequestOutcome, SpanOutcome};
use crate::translate::translate;
use crate::{Receiver, SPANS_PATH, json, proto};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// Retry delay suggested when the in-flight budget is spent.
const INFLIGHT_RETRY_AFTER: Duration = Duration::from_secs(1);

pub(crate) fn router(receiver: Receiver) -> Router {
    Router::new().route(SPANS_PATH, post(spans)).with_state(receiver)
}

/// The body format named by Content-Type (parameters and case ignored); no
/// Content-Type means JSON, as Zipkin and the Collector assume.
fn format(headers: &HeaderMap) -> Format {
    let Some(value) = headers.get(CONTENT_TYPE) else { return Format::Json };
    let Ok(value) = value.to_str() else { return Format::Unknown };
    let media = value.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case(JSON) {
        Format::Json
    } else if media.eq_ignore_ascii_case(PROTOBUF) {
        Format::Protobuf
    } else {
        Format::Unknown
    }
}

/// A failed request.
struct Failure {
    status: StatusCode,
    outcome: RequestOutcome,
    message: String,
    retry_after: Option<Duration>,
}

impl Failure {
    fn new(status: StatusCode, outcome: RequestOutcome, message: impl Into<String>) -> Self {
        Failure { status, outcome, message: message.into(), retry_after: None }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Failure::new(StatusCode::BAD_REQUEST, RequestOutcome::BadRequest, message)
    }

    fn too_large(limit: usize) -> Self {
        Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            RequestOutcome::TooLarge,
            format!("request body exceeds the limit of {limit} bytes (after decompression too)"),
        )
    }

    fn over_budget() -> Self {
        Failure {
            retry_after: Some(INFLIGHT_RETRY_AFTER),
            ..Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                RequestOutcome::Refused,
                "receiver is over its in-flight byte limit; retry later",
            )
        }
    }

    fn refused(err: &ConsumeError) -> Self {
        let status = match err {
            ConsumeError::Overloaded { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        Failure {
            retry_after: Some(err.retry_after()),
            ..Failure::new(status, RequestOutcome::Refused, err.to_string())
        }
    }

    fn body(err: BodyError, limit: usize) -> Self {
        match err {
            BodyError::TooLarge => Failure::too_large(limit),
            BodyError::Refused => Failure::over_budget(),
            BodyError::Read(e) => Failure::bad_request(format!("reading request body: {e}")),
            BodyError::Corrupt(e) => Failure::bad_request(format!("invalid compressed body: {e}")),
        }
    }

    fn into_response(self) -> Response {
        let mut response = plain(self.status, self.message);
        if let Some(delay) = self.retry_after {
            // Retry-After takes whole seconds; round up, and never say 0.
            let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

fn plain(status: StatusCode, message: String) -> Response {
    let mut response = (status, message).into_response();
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

async fn spans(State(receiver): State<Receiver>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let format = format(&parts.headers);
    let metrics = &receiver.shared.metrics;
    let result = match format {
        Format::Unknown => Err(Failure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RequestOutcome::Unsupported,
            format!("unsupported Content-Type; supported: {JSON}, {PROTOBUF}"),
        )),
        _ => handle(&receiver, format, &parts.headers, body).await,
    };
    match result {
        Ok(outcome) => {
            metrics.request(format, outcome);
            StatusCode::ACCEPTED.into_response()
        }
        Err(failure) => {
            metrics.request(format, failure.outcome);
            if failure.status == StatusCode::BAD_REQUEST {
                tracing::debug!(message = %failure.message, "rejected a Zipkin request");
            }
            failure.into_response()
        }
    }
}

async fn handle(
    receiver: &Receiver,
    format: Format,
    headers: &HeaderMap,
    body: Body,
) -> Result<RequestOutcome, Failure> {
    let shared = &receiver.shared;
    let limit = shared.options.max_body_bytes;
    let encoding = Encoding::parse(headers.get(CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("(not text)")))
        .map_err(|value| {
            Failure::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                RequestOutcome::Unsupported,
                format!("unsupported Content-Encoding {value:?}; supported: gzip, deflate, identity"),
            )
        })?;
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > limit) {
        return Err(Failure::too_large(limit));
    }

    // A declared length is charged before reading a byte, so an
    // over-budget request is refused without buffering any of it.
    let mut claim = shared.budget.claim();
    if let Some(n) = declared
        && !claim.try_grow(n)
    {
        return Err(Failure::over_budget());
    }
    let received =
        read_limited(body, limit, declared, &mut claim).await.map_err(|e| Failure::body(e, limit))?;
    let body = match encoding {
        Encoding::Identity => received,
        compressed => {
            let inflated = inflate_limited(&received, compressed, limit, &mut claim)
                .map_err(|e| Failure::body(e, limit))?;
            // The compressed bytes are dropped here: keep only the inflated ones charged.
            drop(received);
            claim.release(claim.held().saturating_sub(inflated.len()));
            Bytes::from(inflated)
        }
    };

    let wire = match format {
        Format::Protobuf => proto::decode(body),
        _ => json::decode(&body),
    }
    .map_err(Failure::bad_request)?;
    let translated = translate(wire);
    let metrics = &shared.metrics;
    metrics.spans(SpanOutcome::Rejected, translated.rejected);
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

    let batch = Batch::from_spans(translated.spans);
    let n = batch.len() as u64;
    // The consumer runs in its own task so that a sender hanging up
    // mid-append never cancels a write halfway; the claim is held until the
    // consumer is done with the batch.
    let consumer = std::sync::Arc::clone(&shared.consumer);
    let task = tokio::spawn(async move {
        let result = consumer.consume_traces(batch).await;
        drop(claim);
        result
    });
    let err = match task.await {
        Ok(Ok(())) => {
            metrics.spans(SpanOutcome::Accepted, n);
            return Ok(outcome);
        }
        Ok(Err(err)) => err,
        Err(join) => {
            tracing::error!(error = %join, "traces consumer task failed");
            ConsumeError::Unavailable {
                reason: "traces consumer failed; retry later".to_owned(),
                retry_after: Duration::from_secs(5),
            }
        }
    };
    metrics.spans(SpanOutcome::Refused, n);
    Err(Failure::refused(&err))
}
