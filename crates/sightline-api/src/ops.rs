//! Operational endpoints: `/health`, `/ready`, `/metrics`.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::ApiState;
use crate::dto::{Health, HealthCheck};
use crate::error::ApiError;
use crate::exposition::{OPENMETRICS, PROMETHEUS_TEXT, to_prometheus_text, wants_openmetrics};

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

/// `GET /metrics`: everything registered in the shared registry, as
/// OpenMetrics (with exemplars) when `Accept` asks for it — Prometheus
/// does — else as Prometheus text 0.0.4.
pub(crate) async fn metrics(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &state.registry)
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    let openmetrics =
        headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(wants_openmetrics);
    if openmetrics {
        Ok(([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response())
    } else {
        Ok(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], to_prometheus_text(&body)).into_response())
    }
}
