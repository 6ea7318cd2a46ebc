//! Orders: a per-tenant order list in Redis with a read cache, and an
//! event to NATS for every list and every new order (the worker stores
//! them). The tenant comes from the baggage the gateway set.

use anyhow::Context as _;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use redis::AsyncCommands as _;
use serde::Deserialize;
use serde_json::{Value, json};
use sightline_sdk::baggage::CurrentBaggage;
use sightline_sdk::health::Health;
use sightline_sdk::http_server::{HttpServerLayer, metrics_router};
use sightline_sdk::opentelemetry::trace::TraceContextExt as _;
use sightline_sdk::opentelemetry::{Context, KeyValue};
use sightline_sdk::redis::TracedConnection;
use sightline_sdk::{Telemetry, spans};

/// Orders flags.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Listen address.
    #[arg(long, env = "ORDERS_ADDR", default_value = "127.0.0.1:8081")]
    listen: String,
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
    /// NATS URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
}

#[derive(Clone)]
struct App {
    telemetry: Telemetry,
    redis: TracedConnection<redis::aio::ConnectionManager>,
    nats: async_nats::Client,
}

#[derive(Deserialize)]
struct NewOrder {
    item: String,
    #[serde(default = "one")]
    qty: u32,
}

fn one() -> u32 {
    1
}

pub(crate) async fn run(args: Args, telemetry: Telemetry) -> anyhow::Result<()> {
    let client = redis::Client::open(args.redis.as_str()).context("redis URL")?;
    let manager =
        client.get_connection_manager().await.with_context(|| format!("connecting to {}", args.redis))?;
    let nats = async_nats::connect(args.nats.as_str())
        .await
        .with_context(|| format!("connecting to {}", args.nats))?;
    let app = App {
        redis: TracedConnection::new(&telemetry, manager),
        nats: nats.clone(),
        telemetry: telemetry.clone(),
    };
    let health = {
        let redis = app.redis.clone();
        Health::new("orders")
            .check("redis", move || {
                let mut r = redis.clone();
                async move { redis::cmd("PING").query_async::<String>(&mut r).await.map(drop) }
            })
            .check("nats", move || {
                let state = nats.connection_state();
                async move {
                    match state {
                        async_nats::connection::State::Connected => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                }
            })
    };
    let router = Router::new()
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(one_order))
        .with_state(app)
        .merge(health.router())
        .merge(metrics_router(&telemetry))
        .layer(HttpServerLayer::new(&telemetry));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %args.listen, "orders listening");
    axum::serve(listener, router).with_graceful_shutdown(crate::shutdown_signal()).await?;
    Ok(())
}

fn tenant() -> String {
    CurrentBaggage::current().get("tenant").unwrap_or("public").to_owned()
}

fn error(status: StatusCode, msg: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": msg.to_string()}))).into_response()
}

async fn publish(app: &App, subject: &str, event: &Value) {
    if let Err(e) =
        sightline_sdk::nats::publish(&app.telemetry, &app.nats, subject, event.to_string().into()).await
    {
        // The order itself is stored; a lost event is logged, not fatal.
        tracing::warn!(error = %e, subject, "publishing event");
    }
}

async fn list(State(app): State<App>) -> Response {
    let tenant = tenant();
    let mut redis = app.redis.clone();
    let cache_key = format!("orders:cache:{tenant}");
    let cached: Option<String> = match redis.get(&cache_key).await {
        Ok(c) => c,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let (orders, hit) = match cached.and_then(|c| serde_json::from_str::<Vec<Value>>(&c).ok()) {
        Some(orders) => (orders, true),
        None => {
            let raw: Vec<String> = match redis.lrange(format!("orders:{tenant}"), -50, -1).await {
                Ok(r) => r,
                Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
            };
            let orders: Vec<Value> = raw.iter().filter_map(|s| serde_json::from_str(s).ok()).collect();
            let _: redis::RedisResult<()> = redis.set_ex(&cache_key, json!(orders).to_string(), 10).await;
            (orders, false)
        }
    };
    Context::current().span().set_attribute(KeyValue::new("cache.hit", hit));
    publish(&app, "orders.listed", &json!({"tenant": tenant, "count": orders.len(), "cache_hit": hit})).await;
    Json(json!({"tenant": tenant, "orders": orders})).into_response()
}

async fn create(State(app): State<App>, Json(body): Json<NewOrder>) -> Response {
    let tenant = tenant();
    if body.item.is_empty() || body.item.len() > 100 || body.qty == 0 {
        return error(StatusCode::UNPROCESSABLE_ENTITY, "item must be 1-100 characters and qty at least 1");
    }
    // Large orders need a stock check that fails: a manual span with an
    // exception, to show an error trace.
    if body.qty > 100 {
        let checked = spans::in_span(&app.telemetry, "check stock", async {
            Err::<(), _>(format!("not enough stock for {} x {}", body.qty, body.item))
        })
        .await;
        if let Err(e) = checked {
            // A warning inside the request: also an event on its span.
            tracing::warn!(qty = body.qty, error = %e, "stock check failed");
            return error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
    }
    let mut redis = app.redis.clone();
    let id: i64 = match redis.incr("orders:seq", 1).await {
        Ok(id) => id,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    let order = json!({"id": id, "item": body.item, "qty": body.qty, "tenant": tenant});
    let stored: redis::RedisResult<()> = redis::pipe()
        .rpush(format!("orders:{tenant}"), order.to_string())
        .hset("orders:by-id", id, order.to_string())
        .del(format!("orders:cache:{tenant}"))
        .query_async(&mut redis)
        .await;
    if let Err(e) = stored {
        return error(StatusCode::SERVICE_UNAVAILABLE, e);
    }
    publish(&app, "orders.created", &order).await;
    tracing::info!(order_id = id, tenant = %tenant, "order created");
    (StatusCode::CREATED, Json(order)).into_response()
}

async fn one_order(State(app): State<App>, Path(id): Path<i64>) -> Response {
    let mut redis = app.redis.clone();
    let found: Option<String> = match redis.hget("orders:by-id", id).await {
        Ok(f) => f,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, e),
    };
    match found.and_then(|s| serde_json::from_str::<Value>(&s).ok()) {
        Some(order) if order["tenant"] == tenant().as_str() => Json(order).into_response(),
        _ => error(StatusCode::NOT_FOUND, format!("no order {id}")),
    }
}
