//! The traffic driver: users of three tenants log in, list orders, create
//! orders, look one up; now and then a request without a session (401),
//! an unknown order (404), a too-large order (503 with an error span) and
//! a client metric event.
//!
//! Each user action is one trace whose root span says what the user did
//! (`user places an order`, `anonymous visitor opens orders`...): the
//! HTTP calls it makes are its children, so a round does not scatter into
//! one trace per request named only `POST` / `GET`.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::Rng as _;
use serde_json::{Value, json};
use sightline_sdk::Telemetry;
use sightline_sdk::http_client::HttpClient;

/// Driver flags.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Base URL of the gateway.
    #[arg(long, env = "GATEWAY_URL", default_value = "http://127.0.0.1:8080")]
    gateway: String,
    /// Pause between rounds, in milliseconds.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
    /// Stop after this many rounds (0: until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    rounds: u64,
}

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const ITEMS: [&str; 4] = ["widget", "gadget", "sprocket", "gizmo"];

struct Driver {
    telemetry: Telemetry,
    http: HttpClient,
    base: String,
}

impl Driver {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        session: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.inner().request(method, format!("{}{path}", self.base));
        if let Some(s) = session {
            req = req.bearer_auth(s);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let resp = self.http.send(req).await.with_context(|| format!("calling {path}"))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }
}

pub(crate) async fn run(args: Args, telemetry: Telemetry) -> anyhow::Result<()> {
    let driver = Driver {
        telemetry: telemetry.clone(),
        http: HttpClient::new(&telemetry, reqwest::Client::new()),
        base: args.gateway.trim_end_matches('/').to_owned(),
    };
    let shutdown = crate::shutdown_signal();
    tokio::pin!(shutdown);
    let started = Instant::now();
    let mut round = 0u64;
    let mut failures = 0u32;
    loop {
        round += 1;
        match one_round(&driver, round).await {
            Ok(summary) => {
                failures = 0;
                println!("round {round:>4} ({:>5.1}s): {summary}", started.elapsed().as_secs_f64());
            }
            Err(e) => {
                failures += 1;
                println!("round {round:>4}: {e:#}");
                anyhow::ensure!(failures < 60, "the gateway failed 60 rounds in a row: {e:#}");
            }
        }
        if args.rounds != 0 && round >= args.rounds {
            return Ok(());
        }
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(args.interval_ms)) => {}
        }
    }
}

/// Runs `action` as one trace: a root span named `name` (a user action).
async fn action<T>(
    d: &Driver,
    name: &'static str,
    tenant: &str,
    fut: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    use sightline_sdk::opentelemetry::trace::{SpanKind, TraceContextExt as _};
    use sightline_sdk::opentelemetry::{Context, KeyValue};
    let cx = sightline_sdk::spans::start(
        &d.telemetry,
        name,
        SpanKind::Internal,
        &Context::new(),
        vec![KeyValue::new("demo.tenant", tenant.to_owned())],
    );
    let result = sightline_sdk::opentelemetry::context::FutureExt::with_context(fut, cx.clone()).await;
    if let Err(e) = &result {
        sightline_sdk::spans::record_exception(&cx.span(), e);
    }
    cx.span().end();
    result
}

async fn one_round(d: &Driver, round: u64) -> anyhow::Result<String> {
    use reqwest::Method;
    let (tenant, item, qty, surprise) = {
        let mut rng = rand::rng();
        let tenant = TENANTS[rng.random_range(0..TENANTS.len())];
        let item = ITEMS[rng.random_range(0..ITEMS.len())];
        (tenant, item, rng.random_range(1..5u32), rng.random_range(0..6u32))
    };
    let user = format!("user{}", round % 7);
    let (session, mut summary) = action(d, "user places an order", tenant, async {
        let (status, login) =
            d.call(Method::POST, "/auth/login", None, Some(json!({"user": user, "tenant": tenant}))).await?;
        anyhow::ensure!(status == 200, "login answered {status}: {login}");
        let session = login["session"].as_str().context("login without session")?.to_owned();
        let s = Some(session.as_str());
        let (list, _) = d.call(Method::GET, "/api/orders", s, None).await?;
        let (created, order) =
            d.call(Method::POST, "/api/orders", s, Some(json!({"item": item, "qty": qty}))).await?;
        let mut summary = format!("{tenant:<8} login 200, list {list}, create {created}");
        if let Some(id) = order["id"].as_i64() {
            let (got, _) = d.call(Method::GET, &format!("/api/orders/{id}"), s, None).await?;
            summary.push_str(&format!(", get {got}"));
        }
        Ok((session, summary))
    })
    .await?;
    let s = Some(session.as_str());
    match surprise {
        0 => {
            let (st, _) = action(d, "anonymous visitor opens orders", tenant, async {
                d.call(Method::GET, "/api/orders", None, None).await
            })
            .await?;
            summary.push_str(&format!(", no session {st}"));
        }
        1 => {
            let (st, _) = action(d, "user opens an unknown order", tenant, async {
                d.call(Method::GET, "/api/orders/999999", s, None).await
            })
            .await?;
            summary.push_str(&format!(", unknown order {st}"));
        }
        2 => {
            let (st, _) = action(d, "user places a huge order", tenant, async {
                d.call(Method::POST, "/api/orders", s, Some(json!({"item": item, "qty": 500}))).await
            })
            .await?;
            summary.push_str(&format!(", huge order {st}"));
        }
        3 => {
            let (st, _) = action(d, "browser reports a page view", tenant, async {
                d.call(
                    Method::POST,
                    "/api/v1/metrics",
                    None,
                    Some(json!({"event": "page_view", "labels": {"page": "orders"}})),
                )
                .await
            })
            .await?;
            summary.push_str(&format!(", client metric {st}"));
        }
        _ => {}
    }
    Ok(summary)
}
