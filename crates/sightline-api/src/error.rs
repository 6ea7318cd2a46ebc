//! Every way a request can fail, and the one place that maps each to an HTTP
//! status and Jaeger's error envelope.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
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
            ApiError::TraceNotFound => StatusCode::NOT_FOUND,
            ApiError::Query(QueryError::Invalid(_)) => StatusCode::BAD_REQUEST,
            ApiError::Query(QueryError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Query(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::MetricsDisabled => StatusCode::NOT_IMPLEMENTED,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // Jaeger logs its 500s too; 4xx are the client's business.
            tracing::error!(error = %self, status = status.as_u16(), "query API request failed");
        }
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
