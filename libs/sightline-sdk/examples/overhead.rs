//! What the instrumentation costs, printed as one JSON object:
//!
//! ```sh
//! cargo run --release -p sightline-sdk --example overhead            # defaults
//! cargo run --release -p sightline-sdk --example overhead -- 200000  # requests / spans per round
//! ```
//!
//! - `server_layer`: per-request latency of an axum router answering
//!   `GET /orders/{id}` in process (no socket), bare and with
//!   `HttpServerLayer` (span + context + Prometheus and OTel metrics), and
//!   with the layer on a disabled handle. `overhead_p50_us` is the
//!   difference of the medians (target ≤ 5 µs).
//! - `span`: a span with 3 attributes, started as a child of a context and
//!   ended, through `spans::start` versus the same calls on the
//!   opentelemetry API (target ratio ≤ 1.2); `in_span`: an async block run
//!   under a span by `spans::in_span` versus `FutureExt::with_context` by
//!   hand; `db_run`: `sql::Db::run` (which also sanitises the statement and
//!   records two metric families) versus a plain client span.
//!
//! Spans go through the batch span processor to an exporter that drops
//! them, so the numbers are the SDK's in-process cost without a network.
//! Rounds alternate between the variants and the median round is kept.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use sightline_sdk::http_server::HttpServerLayer;
use sightline_sdk::{Options, Telemetry, spans};
use tower::{Service, ServiceExt};

#[derive(Debug)]
struct Discard;

impl SpanExporter for Discard {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn router() -> Router {
    Router::new().route("/orders/{id}", get(|| async { "order" }))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

/// Per-request latencies (ns) of `n` requests through `app`.
async fn requests(app: &mut Router, n: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let req = Request::get(format!("/orders/{}", i % 1000))
            .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .body(Body::empty())
            .expect("request");
        let started = Instant::now();
        let svc = ServiceExt::<Request<Body>>::ready(app).await.expect("ready");
        let resp = svc.call(req).await.expect("infallible");
        black_box(resp);
        out.push(started.elapsed().as_nanos() as u64);
    }
    out.sort_unstable();
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn per_op(n: usize, f: impl FnOnce()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_nanos() as f64 / n as f64
}

async fn per_op_async<F: std::future::Future<Output = ()>>(n: usize, f: F) -> f64 {
    let started = Instant::now();
    f.await;
    started.elapsed().as_nanos() as f64 / n as f64
}

fn telemetry() -> sightline_sdk::Guard {
    let opts = Options::new("bench")
        .batched_span_exporter(Discard)
        .schedule_delay(Duration::from_millis(100))
        .install_globals(false);
    sightline_sdk::init_with_env(opts, |_| None).expect("telemetry")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let rounds = 5;
    let guard = telemetry();
    let t: Telemetry = guard.telemetry();
    let off = Telemetry::disabled("bench");

    // --- server layer ---
    let mut bare = router();
    let mut layered = router().layer(HttpServerLayer::new(&t));
    let mut disabled = router().layer(HttpServerLayer::new(&off));
    // warm up
    requests(&mut bare, n / 10).await;
    requests(&mut layered, n / 10).await;
    requests(&mut disabled, n / 10).await;
    let (mut b50, mut l50, mut d50, mut b99, mut l99) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let b = requests(&mut bare, n).await;
        let l = requests(&mut layered, n).await;
        let d = requests(&mut disabled, n).await;
        b50.push(percentile(&b, 0.5) as f64);
        l50.push(percentile(&l, 0.5) as f64);
        d50.push(percentile(&d, 0.5) as f64);
        b99.push(percentile(&b, 0.99) as f64);
        l99.push(percentile(&l, 0.99) as f64);
    }
    let (b50, l50, d50) = (median(b50), median(l50), median(d50));

    // --- span helpers vs the plain API ---
    let tracer = t.tracer().expect("enabled").clone();
    let parent = Context::new();
    let attrs = || vec![KeyValue::new("a", "x"), KeyValue::new("b", 42), KeyValue::new("c", true)];
    let (mut plain, mut sdk) = (vec![], vec![]);
    for _ in 0..rounds {
        plain.push(per_op(n, || {
            for _ in 0..n {
                let span = tracer
                    .span_builder("op")
                    .with_kind(SpanKind::Internal)
                    .with_attributes(attrs())
                    .start_with_context(&tracer, &parent);
                let cx = parent.with_span(span);
                cx.span().end();
            }
        }));
        sdk.push(per_op(n, || {
            for _ in 0..n {
                let cx = spans::start(&t, "op", SpanKind::Internal, &parent, attrs());
                cx.span().end();
            }
        }));
    }
    let (span_plain, span_sdk) = (median(plain), median(sdk));

    let (mut plain, mut sdk) = (vec![], vec![]);
    for _ in 0..rounds {
        plain.push(
            per_op_async(n, async {
                for _ in 0..n {
                    let span = tracer
                        .span_builder("op")
                        .with_kind(SpanKind::Internal)
                        .start_with_context(&tracer, &Context::current());
                    let cx = Context::current().with_span(span);
                    let r: Result<u32, String> = async { Ok(black_box(1)) }.with_context(cx.clone()).await;
                    black_box(r).ok();
                    cx.span().end();
                }
            })
            .await,
        );
        sdk.push(
            per_op_async(n, async {
                for _ in 0..n {
                    let r = spans::in_span(&t, "op", async { Ok::<_, String>(black_box(1u32)) }).await;
                    black_box(r).ok();
                }
            })
            .await,
        );
    }
    let (in_plain, in_sdk) = (median(plain), median(sdk));

    let db = sightline_sdk::sql::Db::new(&t, "sqlite");
    let stmt = "INSERT INTO order_events (subject, tenant, payload) VALUES (?, ?, ?)";
    let (mut plain, mut sdk) = (vec![], vec![]);
    for _ in 0..rounds {
        plain.push(
            per_op_async(n, async {
                for _ in 0..n {
                    let span = tracer
                        .span_builder("INSERT order_events")
                        .with_kind(SpanKind::Client)
                        .with_attributes(vec![
                            KeyValue::new("db.system.name", "sqlite"),
                            KeyValue::new("db.operation.name", "INSERT"),
                            KeyValue::new("db.query.text", stmt),
                        ])
                        .start_with_context(&tracer, &Context::current());
                    let cx = Context::current().with_span(span);
                    let r: Result<u32, String> = async { Ok(black_box(1)) }.with_context(cx.clone()).await;
                    black_box(r).ok();
                    cx.span().end();
                }
            })
            .await,
        );
        sdk.push(
            per_op_async(n, async {
                for _ in 0..n {
                    let r = db.run(stmt, async { Ok::<_, String>(black_box(1u32)) }).await;
                    black_box(r).ok();
                }
            })
            .await,
        );
    }
    let (db_plain, db_sdk) = (median(plain), median(sdk));

    let out = serde_json::json!({
        "benchmark": "sightline-sdk overhead",
        "requests_per_round": n,
        "rounds": rounds,
        "server_layer": {
            "bare_p50_ns": b50,
            "layer_p50_ns": l50,
            "disabled_layer_p50_ns": d50,
            "bare_p99_ns": median(b99),
            "layer_p99_ns": median(l99),
            "overhead_p50_us": (l50 - b50) / 1000.0,
            "disabled_overhead_p50_us": (d50 - b50) / 1000.0,
            "target_overhead_p50_us": 5.0,
        },
        "span": {"plain_ns": span_plain, "sdk_ns": span_sdk, "ratio": span_sdk / span_plain, "target_ratio": 1.2},
        "in_span": {"plain_ns": in_plain, "sdk_ns": in_sdk, "ratio": in_sdk / in_plain, "target_ratio": 1.2},
        "db_run": {"plain_ns": db_plain, "sdk_ns": db_sdk, "ratio": db_sdk / db_plain, "note": "sdk also sanitises the statement and records db metrics"},
    });
    println!("{out}");
    drop(guard);
}
