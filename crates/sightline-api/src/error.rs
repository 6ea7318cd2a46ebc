//! Every way a request can fail, and the one place that maps each to an HTTP
//! status and to the error body of the API that was asked: Jaeger's v1
//! envelope ([`ApiError`] itself), Jaeger API v3's gRPC-gateway error
//! ([`V3Error`]) or Tempo's plain text ([`TempoError`]).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sightline_model::QueryError;

use crate::dto::{Envelope, StructuredError};

/// Why a request failed. Each variant maps to one status; the body is always
/// Jaeger's envelope with `errors: [{"code", "msg"}]`, which is what Jaeger UI
/// and Grafana show to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A query parameter could not be parsed (400). The message names it,
    /// in Jaeger's words: `unable to parse param 'limit': …`.
    #[error("unable to parse param '{param}': {reason}")]
    InvalidParam {
        /// The parameter, as spelled in the URL.
        param: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The request is malformed in some other way (400), e.g. a missing
    /// `service` or `maxDuration < minDuration`.
    #[error("{0}")]
    BadRequest(String),
    /// No span of the requested trace is stored (404).
    #[error("trace not found")]
    TraceNotFound,
    /// Nothing answers this path (404), e.g. an unknown `/api/…` route.
    #[error("{0}")]
    NotFound(String),
    /// A route Jaeger UI knows that Sightline does not serve (501), e.g.
    /// archiving.
    #[error("{0}")]
    NotImplemented(String),
    /// The reader failed: invalid query → 400, unavailable → 503,
    /// internal → 500.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Sightline itself failed, e.g. encoding metrics (500).
    #[error("internal error: {0}")]
    Internal(String),
    /// No span metrics are kept, so `/api/metrics/*` cannot answer (501, in
    /// Jaeger's words for a disabled metrics store).
    #[error("metrics querying is currently disabled")]
    MetricsDisabled,
}

impl ApiError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidParam { .. } | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::TraceNotFound | ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Query(QueryError::Invalid(_)) => StatusCode::BAD_REQUEST,
            ApiError::Query(QueryError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Query(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::MetricsDisabled => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl ApiError {
    /// Logs server faults (Jaeger logs its 500s too; 4xx are the client's
    /// business) and returns the status.
    fn logged_status(&self) -> StatusCode {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(error = %self, status = status.as_u16(), "query API request failed");
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.logged_status();
        let body: Envelope<()> = Envelope {
            data: None,
            total: 0,
            limit: 0,
            offset: 0,
            errors: Some(vec![StructuredError {
                code: status.as_u16(),
                msg: self.to_string(),
                trace_id: None,
            }]),
        };
        (status, Json(body)).into_response()
    }
}

/// An [`ApiError`] answered the way Jaeger's API v3 HTTP gateway answers:
/// `{"error":{"httpCode":…,"message":…}}` written by Go's `http.Error`, so
/// as `text/plain` with a trailing newline.
#[derive(Debug)]
pub(crate) struct V3Error(pub ApiError);

impl From<ApiError> for V3Error {
    fn from(e: ApiError) -> Self {
        V3Error(e)
    }
}

impl From<QueryError> for V3Error {
    fn from(e: QueryError) -> Self {
        V3Error(ApiError::Query(e))
    }
}

#[derive(Serialize)]
struct GatewayError<'a> {
    error: GatewayErrorDetails<'a>,
}

#[derive(Serialize)]
struct GatewayErrorDetails<'a> {
    #[serde(rename = "httpCode")]
    http_code: u16,
    message: &'a str,
}

impl IntoResponse for V3Error {
    fn into_response(self) -> Response {
        let status = self.0.logged_status();
        let message = match &self.0 {
            // Jaeger's texts for the two ways a v3 lookup finds nothing.
            ApiError::TraceNotFound => "No traces found".to_owned(),
            other => other.to_string(),
        };
        let body =
            GatewayError { error: GatewayErrorDetails { http_code: status.as_u16(), message: &message } };
        let mut text = serde_json::to_string(&body).unwrap_or_default();
        text.push('\n');
        plain(status, text)
    }
}

/// An [`ApiError`] answered the way Tempo answers: the message as plain
/// text (Go's `http.Error`), or an empty 404 for an unknown trace.
#[derive(Debug)]
pub(crate) struct TempoError(pub ApiError);

impl From<ApiError> for TempoError {
    fn from(e: ApiError) -> Self {
        TempoError(e)
    }
}

impl From<QueryError> for TempoError {
    fn from(e: QueryError) -> Self {
        TempoError(ApiError::Query(e))
    }
}

impl IntoResponse for TempoError {
    fn into_response(self) -> Response {
        let status = self.0.logged_status();
        if matches!(self.0, ApiError::TraceNotFound) {
            return status.into_response();
        }
        plain(status, format!("{}\n", self.0))
    }
}

/// A `text/plain` response, as Go's `http.Error` writes it.
fn plain(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
