//! Redis client spans: wrap any `redis::aio::ConnectionLike` (a
//! `ConnectionManager`, a multiplexed connection) in [`TracedConnection`]
//! and every command gets a CLIENT span named after the command (`GET`,
//! `SET`, `PIPELINE`) with `db.system.name=redis` (and the older
//! `db.system`), `db.operation.name`, `db.namespace` (the db index) and a
//! sanitised `db.query.text` (`SET ? ?`: keys and values are never
//! recorded, they often hold user data); errors set ERROR status;
//! `db_operations_total{system="redis",operation,status}` and
//! `db_operation_duration_seconds`.
//!
//! ```no_run
//! # async fn demo(telemetry: sightline_sdk::Telemetry) -> redis::RedisResult<()> {
//! use redis::AsyncCommands as _;
//! let client = redis::Client::open("redis://127.0.0.1:6379")?;
//! // any ConnectionLike: a ConnectionManager (feature connection-manager), a multiplexed connection...
//! let mut conn = sightline_sdk::redis::TracedConnection::new(&telemetry, client.get_multiplexed_async_connection().await?);
//! let _: () = conn.set("session:1", "alice").await?;
//! # Ok(()) }
//! ```

use std::time::Instant;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use redis::aio::ConnectionLike;
use redis::{Arg, Cmd, Pipeline, RedisFuture, Value};

use crate::Telemetry;

/// `db.system.name` for Redis.
pub const SYSTEM: &str = "redis";

/// A connection whose commands are traced and counted.
#[derive(Clone, Debug)]
pub struct TracedConnection<C> {
    inner: C,
    telemetry: Telemetry,
}

impl<C> TracedConnection<C> {
    /// Wraps `inner`.
    pub fn new(telemetry: &Telemetry, inner: C) -> TracedConnection<C> {
        TracedConnection { inner, telemetry: telemetry.clone() }
    }

    /// The wrapped connection.
    pub fn into_inner(self) -> C {
        self.inner
    }
}

/// The command name, uppercase.
pub fn command_name(cmd: &Cmd) -> String {
    match cmd.args_iter().next() {
        Some(Arg::Simple(name)) => String::from_utf8_lossy(name).to_ascii_uppercase(),
        _ => "UNKNOWN".to_owned(),
    }
}

/// The command with every argument replaced by `?` (`SET ? ?`).
pub fn sanitized(cmd: &Cmd) -> String {
    let mut it = cmd.args_iter();
    let mut out = match it.next() {
        Some(Arg::Simple(name)) => String::from_utf8_lossy(name).to_ascii_uppercase(),
        _ => "UNKNOWN".to_owned(),
    };
    for _ in it {
        out.push_str(" ?");
    }
    out
}

fn start(telemetry: &Telemetry, name: String, text: String, db: i64) -> Context {
    crate::spans::start(
        telemetry,
        name.clone(),
        SpanKind::Client,
        &Context::current(),
        vec![
            KeyValue::new("db.system.name", SYSTEM),
            KeyValue::new("db.system", SYSTEM),
            KeyValue::new("db.operation.name", name),
            KeyValue::new("db.query.text", text),
            KeyValue::new("db.namespace", db.to_string()),
        ],
    )
}

fn finish<T>(
    telemetry: &Telemetry,
    cx: &Context,
    op: &str,
    started: Instant,
    result: &redis::RedisResult<T>,
) {
    if let Err(e) = result {
        cx.span().set_attribute(KeyValue::new("error.type", format!("{:?}", e.kind())));
        crate::spans::record_error(&cx.span(), e);
    }
    cx.span().end();
    telemetry.metrics().record_db(SYSTEM, op, result.is_ok(), started.elapsed().as_secs_f64());
}

impl<C: ConnectionLike + Send> ConnectionLike for TracedConnection<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let started = Instant::now();
            let op = command_name(cmd);
            let cx = start(&self.telemetry, op.clone(), sanitized(cmd), self.inner.get_db());
            let result = self.inner.req_packed_command(cmd).with_context(cx.clone()).await;
            finish(&self.telemetry, &cx, &op, started, &result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let started = Instant::now();
            let op = "PIPELINE".to_owned();
            let text = pipeline.cmd_iter().map(sanitized).collect::<Vec<_>>().join("\n");
            let cx = start(&self.telemetry, op.clone(), text, self.inner.get_db());
            cx.span()
                .set_attribute(KeyValue::new("db.operation.batch.size", pipeline.cmd_iter().count() as i64));
            let result =
                self.inner.req_packed_commands(pipeline, offset, count).with_context(cx.clone()).await;
            finish(&self.telemetry, &cx, &op, started, &result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
