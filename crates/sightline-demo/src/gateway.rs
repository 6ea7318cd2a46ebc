//! The gateway (the seeds' BFF): `POST /auth/login` creates a session in
//! Redis, `/api/**` checks it and forwards to orders with the baggage
//! `tenant` (no personal data in baggage); sessions created / active are
//! custom metrics.

use std::sync::Arc;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use rand::Rng as _;
use redis::AsyncCommands as _;
use serde::Deserialize;
use serde_json::json;
use sightline_sdk::baggage::Baggage;
use sightline_sdk::bff::{Bff, SessionEvent};
use sightline_sdk::health::Health;
use sightline_sdk::http_client::HttpClient;
use sightline_sdk::http_server::{HttpServerLayer, metrics_router};
use sightline_sdk::opentelemetry;
use sightline_sdk::public_metrics::PublicMetrics;
use sightline_sdk::redis::TracedConnection;
use sightline_sdk::{Telemetry, spans};

/// Gateway flags.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Listen address.
    #[arg(long, env = "GATEWAY_ADDR", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// Base URL of the orders service.
    #[arg(long, env = "ORDERS_URL", default_value = "http://127.0.0.1:8081")]
    orders_url: String,
    /// Session lifetime in seconds.
    #[arg(long, env = "SESSION_TTL_SECS", default_value_t = 3600)]
    session_ttl: u64,
}

#[derive(Clone)]
struct App {
    telemetry: Telemetry,
    redis: TracedConnection<redis::aio::ConnectionManager>,
    client: HttpClient,
    orders_url: Arc<str>,
    ttl: u64,
    bff: Bff,
}

#[derive(Deserialize)]
struct Login {
    user: String,
    #[serde(default = "default_tenant")]
    tenant: String,
}

fn default_tenant() -> String {
    "public".to_owned()
}

#[derive(serde::Serialize, Deserialize)]
struct Session {
    user: String,
    tenant: String,
}

pub(crate) async fn run(args: Args, telemetry: Telemetry) -> anyhow::Result<()> {
    let client = redis::Client::open(args.redis.as_str()).context("redis URL")?;
    let manager =
        client.get_connection_manager().await.with_context(|| format!("connecting to {}", args.redis))?;
    // Seed 001's families by their names (bff_sessions_created_total,
    // bff_verify_duration_seconds{status}, ...), on /metrics and over OTLP.
    let bff = Bff::register(&telemetry);
    let app = App {
        redis: TracedConnection::new(&telemetry, manager.clone()),
        client: HttpClient::new(&telemetry, reqwest::Client::new()),
        orders_url: args.orders_url.trim_end_matches('/').into(),
        ttl: args.session_ttl,
        bff,
        telemetry: telemetry.clone(),
    };
    let health = {
        let redis = TracedConnection::new(&telemetry, manager);
        let orders = format!("{}/health", app.orders_url);
        let http = reqwest::Client::new();
        Health::new("gateway")
            .check("redis", move || {
                let mut r = redis.clone();
                async move { redis::cmd("PING").query_async::<String>(&mut r).await.map(drop) }
            })
            .check("orders", move || {
                let (http, url) = (http.clone(), orders.clone());
                async move { http.get(url).send().await?.error_for_status().map(drop) }
            })
    };
    let router = Router::new()
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/api/{*path}", any(forward))
        .with_state(app)
        .merge(PublicMetrics::new(&telemetry).allow(["page_view", "click", "web_vital"]).router())
        .merge(health.router())
        .merge(metrics_router(&telemetry))
        .layer(HttpServerLayer::new(&telemetry));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %args.listen, "gateway listening");
    axum::serve(listener, router).with_graceful_shutdown(crate::shutdown_signal()).await?;
    Ok(())
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": msg.to_string()}))).into_response()
}

async fn login(State(app): State<App>, Json(body): Json<Login>) -> Response {
    if body.user.is_empty() || body.user.len() > 64 || body.tenant.is_empty() || body.tenant.len() > 64 {
        return error(StatusCode::BAD_REQUEST, "user and tenant must be 1-64 characters");
    }
    let id: String = {
        let mut rng = rand::rng();
        (0..16).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
    };
    let session = Session { user: body.user, tenant: body.tenant };
    let value = json!(session).to_string();
    let mut redis = app.redis.clone();
    let stored: redis::RedisResult<()> = redis.set_ex(format!("session:{id}"), value, app.ttl).await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "storing session");
        return error(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable");
    }
    app.bff.record_session_metrics(SessionEvent::Created);
    tracing::info!(user = %session.user, tenant = %session.tenant, "session created");
    (
        StatusCode::OK,
        [(header::SET_COOKIE, format!("session={id}; HttpOnly; Path=/; SameSite=Lax"))],
        Json(json!({"session": id, "user": session.user, "tenant": session.tenant})),
    )
        .into_response()
}

/// The session id from `Authorization: Bearer`, or the `session` cookie.
fn session_id(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(id) = v.strip_prefix("Bearer ")
    {
        return Some(id.trim().to_owned());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("session=").map(str::to_owned))
}

async fn logout(State(app): State<App>, headers: HeaderMap) -> Response {
    let Some(id) = session_id(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "no session");
    };
    let mut redis = app.redis.clone();
    match redis.del::<_, i64>(format!("session:{id}")).await {
        Ok(1) => {
            app.bff.record_session_metrics(SessionEvent::Destroyed("logout"));
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(_) => error(StatusCode::UNAUTHORIZED, "unknown session"),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn forward(
    State(app): State<App>,
    method: Method,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // ForwardAuth: the session check, timed as seed 001 records it.
    let verifying = std::time::Instant::now();
    let Some(id) = session_id(&headers) else {
        app.bff.record_forwardauth_metrics(verifying.elapsed(), "no_session");
        return error(StatusCode::UNAUTHORIZED, "log in first: POST /auth/login");
    };
    let mut redis = app.redis.clone();
    let session: Option<String> = match redis.get(format!("session:{id}")).await {
        Ok(s) => s,
        Err(e) => {
            app.bff.record_forwardauth_metrics(verifying.elapsed(), "error");
            return error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    };
    let session = session.and_then(|s| serde_json::from_str::<Session>(&s).ok());
    app.bff.record_session_metrics(SessionEvent::Validated(verifying.elapsed(), session.is_some()));
    let Some(session) = session else {
        app.bff.record_forwardauth_metrics(verifying.elapsed(), "unauthorized");
        return error(StatusCode::UNAUTHORIZED, "session expired or unknown");
    };
    app.bff.record_forwardauth_metrics(verifying.elapsed(), "allowed");
    // From here on, everything this request causes carries the tenant.
    // Only the tenant: baggage travels in clear to every downstream hop
    // (and any third party called with it), so no user name or id.
    let cx = Baggage::new([("tenant", session.tenant.as_str())]).context();
    let url = match query {
        Some(q) => format!("{}/{path}?{q}", app.orders_url),
        None => format!("{}/{path}", app.orders_url),
    };
    let mut req = app.client.inner().request(method, url).body(body);
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    let telemetry = app.telemetry.clone();
    let forwarding = spans::in_span(&telemetry, "forward to orders", async {
        let resp = app.client.send(req).await?;
        let status = resp.status();
        let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, ct, bytes))
    });
    let result = opentelemetry::context::FutureExt::with_context(forwarding, cx).await;
    match result {
        Ok((status, ct, bytes)) => {
            let mut resp = (StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY), bytes)
                .into_response();
            if let Some(ct) = ct {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "orders unreachable");
            error(StatusCode::BAD_GATEWAY, "orders service unreachable")
        }
    }
}
