//! Operational endpoints: `/health`, `/ready`, `/metrics`.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ApiState;
use crate::dto::{Health, HealthCheck};
use crate::error::ApiError;

/// The exposition format `prometheus_client` writes. It is OpenMetrics
/// (counters end in `_total`, the body ends in `# EOF`), so it is labelled
/// as such rather than as Prometheus text 0.0.4: Prometheus asks for
/// OpenMetrics first in its scrape `Accept` header and parses it natively,
/// while a 0.0.4 label would misdescribe the `# EOF` and unit lines.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /health`: 200 when every component is healthy, else 503; both list
/// every component with its status and detail.
pub(crate) async fn health(State(state): State<ApiState>) -> Response {
    let components = (state.health)();
    let healthy = components.iter().all(|c| c.healthy);
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" },
        checks: components
            .iter()
            .map(|c| HealthCheck {
                name: &c.name,
                status: if c.healthy { "ok" } else { "unavailable" },
                detail: &c.detail,
            })
            .collect(),
    };
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `GET /ready`: 200 `ready` once the binary has every listener serving.
pub(crate) async fn ready(State(state): State<ApiState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

/// `GET /metrics`: everything registered in the shared registry.
pub(crate) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &state.registry)
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response())
}
