//! A health endpoint builder (seed 001): named async checks, run
//! concurrently with a timeout; JSON with each component's status and
//! latency; 200 when all pass, 503 otherwise.
//!
//! ```
//! use sightline_sdk::health::Health;
//!
//! let app: axum::Router = Health::new("gateway")
//!     .check("redis", || async { Ok::<_, std::io::Error>(()) })
//!     .check("orders", || async { Err::<(), _>("connection refused") })
//!     .router(); // GET /health -> 503 {"status":"unhealthy","checks":{"orders":{"status":"down",...}}}
//! ```

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use http::StatusCode;
use serde_json::{Map, Value, json};

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// Named checks; clone-cheap once built.
#[derive(Clone)]
pub struct Health {
    service: String,
    checks: Vec<(String, CheckFn)>,
    timeout: Duration,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.checks.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Health").field("service", &self.service).field("checks", &names).finish()
    }
}

impl Health {
    /// No checks yet; each check times out after 2 s.
    pub fn new(service: impl Into<String>) -> Health {
        Health { service: service.into(), checks: Vec::new(), timeout: Duration::from_secs(2) }
    }

    /// Per-check timeout (a check that takes longer is `down`).
    pub fn timeout(mut self, t: Duration) -> Health {
        self.timeout = t;
        self
    }

    /// Adds a check: `Ok` is up, `Err(e)` is down with `e` as the reason.
    pub fn check<F, Fut, E>(mut self, name: impl Into<String>, f: F) -> Health
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let f = Arc::new(f);
        self.checks.push((
            name.into(),
            Arc::new(move || {
                let fut = f();
                Box::pin(async move { fut.await.map_err(|e| e.to_string()) }) as CheckFuture
            }),
        ));
        self
    }

    /// Runs every check concurrently: (all up, JSON report).
    pub async fn run(&self) -> (bool, Value) {
        let runs = self.checks.iter().map(|(name, f)| {
            let fut = f();
            let timeout = self.timeout;
            async move {
                let started = Instant::now();
                let outcome = match tokio::time::timeout(timeout, fut).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("timed out after {timeout:?}")),
                };
                (name.clone(), outcome, started.elapsed())
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let mut all_up = true;
        let mut checks = Map::new();
        for (name, outcome, took) in results {
            let latency_ms = (took.as_secs_f64() * 1e6).round() / 1e3;
            let entry = match outcome {
                Ok(()) => json!({"status": "up", "latency_ms": latency_ms}),
                Err(e) => {
                    all_up = false;
                    json!({"status": "down", "latency_ms": latency_ms, "error": e})
                }
            };
            checks.insert(name, entry);
        }
        let status = if all_up { "healthy" } else { "unhealthy" };
        (all_up, json!({"status": status, "service": self.service, "checks": checks}))
    }

    /// `GET /health` answering the report, 200 or 503.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> axum::Router<S> {
        let health = Arc::new(self);
        axum::Router::new().route(
            "/health",
            axum::routing::get(move || {
                let health = health.clone();
                async move {
                    let (ok, body) = health.run().await;
                    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    (code, Json(body))
                }
            }),
        )
    }
}
