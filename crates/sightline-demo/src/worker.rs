//! The worker: consumes order events from NATS, continuing each trace from
//! the message headers, and stores them in SQLite; a background task
//! prunes old events. `/health` and `/metrics` on its own port.
//!
//! With `--amqp-url` (RabbitMQ) each new order also takes a RabbitMQ hop:
//! the worker publishes to `order.notifications`; the notifier sets the
//! baggage entry `notification.channel` (no re-attach: it travels on by
//! itself), adds the span event `notification_sent` and publishes to
//! `order.audit`; the auditor records the channel it received, adds
//! `audit_recorded` and clears the baggage (it goes no further).

use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use futures_util::StreamExt as _;
use lapin::BasicProperties;
use sightline_sdk::baggage::CurrentBaggage;
use sightline_sdk::health::Health;
use sightline_sdk::http_server::{HttpServerLayer, metrics_router};
use sightline_sdk::opentelemetry::trace::TraceContextExt as _;
use sightline_sdk::opentelemetry::{Context, KeyValue};
use sightline_sdk::sql::Db;
use sightline_sdk::{Telemetry, rabbitmq, spans};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// Worker flags.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Listen address for /health and /metrics.
    #[arg(long, env = "WORKER_ADDR", default_value = "127.0.0.1:8082")]
    listen: String,
    /// NATS URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// SQLite database file (created if missing).
    #[arg(long, env = "WORKER_DB", default_value = "worker.db")]
    database: String,
    /// Seconds between prune runs.
    #[arg(long, env = "WORKER_PRUNE_SECS", default_value_t = 30)]
    prune_every: u64,
    /// RabbitMQ URL (`amqp://...`); unset: no RabbitMQ hop.
    #[arg(long, env = "AMQP_URL")]
    amqp_url: Option<String>,
}

const NOTIFICATIONS: &str = "order.notifications";
const AUDIT: &str = "order.audit";

const CREATE_EVENTS: &str = "CREATE TABLE IF NOT EXISTS order_events (id INTEGER PRIMARY KEY, subject TEXT NOT NULL, \
     tenant TEXT NOT NULL, payload TEXT NOT NULL, received_at INTEGER NOT NULL)";
const CREATE_ORDERS: &str = "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, tenant TEXT NOT NULL, item TEXT NOT NULL, qty INTEGER NOT NULL)";
const INSERT_EVENT: &str =
    "INSERT INTO order_events (subject, tenant, payload, received_at) VALUES (?, ?, ?, strftime('%s','now'))";
const INSERT_ORDER: &str = "INSERT OR REPLACE INTO orders (id, tenant, item, qty) VALUES (?, ?, ?, ?)";
const PRUNE: &str = "DELETE FROM order_events WHERE received_at < strftime('%s','now') - 3600";

pub(crate) async fn run(args: Args, telemetry: Telemetry) -> anyhow::Result<()> {
    let options = SqliteConnectOptions::new().filename(&args.database).create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .with_context(|| format!("opening {}", args.database))?;
    let db = Db::new(&telemetry, "sqlite").namespace(args.database.clone());
    db.run(CREATE_EVENTS, sqlx::query(CREATE_EVENTS).execute(&pool)).await?;
    db.run(CREATE_ORDERS, sqlx::query(CREATE_ORDERS).execute(&pool)).await?;

    let nats = async_nats::connect(args.nats.as_str())
        .await
        .with_context(|| format!("connecting to {}", args.nats))?;
    let mut sub =
        nats.queue_subscribe("orders.>", "workers".to_owned()).await.context("subscribing to orders.>")?;

    let health = {
        let (pool, nats) = (pool.clone(), nats.clone());
        Health::new("worker")
            .check("sqlite", move || {
                let pool = pool.clone();
                async move { sqlx::query("SELECT 1").execute(&pool).await.map(drop) }
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
    let router: Router = Router::new()
        .merge(health.router())
        .merge(metrics_router(&telemetry))
        .layer(HttpServerLayer::new(&telemetry));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %args.listen, "worker listening");
    let server = tokio::spawn(async move {
        axum::serve(listener, router).with_graceful_shutdown(crate::shutdown_signal()).await
    });

    // The connection is held until the worker stops.
    let (_amqp_conn, amqp) = match &args.amqp_url {
        Some(url) => {
            let (conn, channel) = start_amqp(url, &telemetry).await?;
            (Some(conn), Some(channel))
        }
        None => (None, None),
    };

    let pruner = {
        let (db, pool, telemetry) = (db.clone(), pool.clone(), telemetry.clone());
        let every = Duration::from_secs(args.prune_every.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let _ = spans::background_task(&telemetry, "prune_events", async {
                    db.run(PRUNE, sqlx::query(PRUNE).execute(&pool)).await
                })
                .await;
            }
        })
    };

    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let msg = tokio::select! {
            () = &mut shutdown => break,
            msg = sub.next() => match msg {
                Some(m) => m,
                None => break,
            },
        };
        let outcome = sightline_sdk::nats::process(
            &telemetry,
            &msg,
            handle(&telemetry, &db, &pool, amqp.as_ref(), &msg),
        )
        .await;
        if let Err(e) = outcome {
            tracing::warn!(error = %e, subject = %msg.subject, "event not stored");
        }
    }
    pruner.abort();
    server.abort();
    Ok(())
}

/// Stores one event; runs under the consumer span, so the baggage the
/// gateway set is current here.
async fn handle(
    telemetry: &Telemetry,
    db: &Db,
    pool: &sqlx::SqlitePool,
    amqp: Option<&lapin::Channel>,
    msg: &async_nats::Message,
) -> Result<(), anyhow::Error> {
    let tenant = CurrentBaggage::current().get("tenant").unwrap_or("public").to_owned();
    let payload = std::str::from_utf8(&msg.payload).context("payload is not UTF-8")?;
    let event: serde_json::Value = serde_json::from_str(payload).context("payload is not JSON")?;
    db.run(
        INSERT_EVENT,
        sqlx::query(INSERT_EVENT).bind(msg.subject.as_str()).bind(&tenant).bind(payload).execute(pool),
    )
    .await?;
    if msg.subject.as_str() == "orders.created" {
        let id = event["id"].as_i64().context("order without id")?;
        let item = event["item"].as_str().unwrap_or_default();
        let qty = event["qty"].as_i64().unwrap_or(1);
        db.run(
            INSERT_ORDER,
            sqlx::query(INSERT_ORDER).bind(id).bind(&tenant).bind(item).bind(qty).execute(pool),
        )
        .await?;
        if let Some(channel) = amqp {
            let props = BasicProperties::default()
                .with_message_id(format!("order-{id}").as_str().into())
                .with_correlation_id(format!("order-{id}").as_str().into());
            rabbitmq::publish(
                telemetry,
                channel,
                "",
                NOTIFICATIONS,
                Default::default(),
                payload.as_bytes(),
                props,
            )
            .await
            .context("publishing the notification")?;
        }
    }
    tracing::info!(subject = %msg.subject, tenant = %tenant, "event stored");
    Ok(())
}

/// Connects to RabbitMQ, declares the two queues and starts their consumers.
async fn start_amqp(url: &str, telemetry: &Telemetry) -> anyhow::Result<(lapin::Connection, lapin::Channel)> {
    use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to RabbitMQ at {url}"))?;
    let channel = conn.create_channel().await.context("opening a channel")?;
    for queue in [NOTIFICATIONS, AUDIT] {
        channel
            .queue_declare(queue.into(), QueueDeclareOptions::default(), lapin::types::FieldTable::default())
            .await
            .with_context(|| format!("declaring {queue}"))?;
    }
    for queue in [NOTIFICATIONS, AUDIT] {
        let consumer = channel
            .basic_consume(
                queue.into(),
                format!("worker-{queue}").as_str().into(),
                BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await
            .with_context(|| format!("consuming {queue}"))?;
        let (telemetry, channel) = (telemetry.clone(), channel.clone());
        tokio::spawn(consume(queue, consumer, telemetry, channel));
    }
    Ok((conn, channel))
}

async fn consume(
    queue: &'static str,
    mut consumer: lapin::Consumer,
    telemetry: Telemetry,
    channel: lapin::Channel,
) {
    while let Some(Ok(delivery)) = consumer.next().await {
        let outcome = rabbitmq::process(&telemetry, &delivery, queue, async {
            if queue == NOTIFICATIONS { notify(&telemetry, &channel, &delivery).await } else { audit() }
        })
        .await;
        if let Err(e) = &outcome {
            tracing::warn!(error = %format!("{e:#}"), queue, "message not handled");
        }
        let _ = delivery.ack(lapin::options::BasicAckOptions::default()).await;
    }
}

/// The notifier: changes the baggage, which the audit message then carries.
async fn notify(
    telemetry: &Telemetry,
    channel: &lapin::Channel,
    delivery: &lapin::message::Delivery,
) -> anyhow::Result<()> {
    let mut baggage = CurrentBaggage::current();
    baggage.set("notification.channel", "email");
    Context::current().span().add_event("notification_sent", vec![KeyValue::new("channel", "email")]);
    let props = BasicProperties::default().with_correlation_id(
        delivery.properties.correlation_id().clone().unwrap_or_else(|| "unknown".into()),
    );
    rabbitmq::publish(telemetry, channel, "", AUDIT, Default::default(), &delivery.data, props)
        .await
        .context("publishing to the audit queue")?;
    Ok(())
}

/// The auditor: records what the notifier put in the baggage, then stops it.
fn audit() -> anyhow::Result<()> {
    let mut baggage = CurrentBaggage::current();
    let channel = baggage.get("notification.channel").unwrap_or("none").to_owned();
    let cx = Context::current();
    cx.span().set_attribute(KeyValue::new("notification.channel", channel.clone()));
    cx.span().add_event("audit_recorded", vec![KeyValue::new("channel", channel)]);
    baggage.clear(); // nothing of it travels further
    Ok(())
}
