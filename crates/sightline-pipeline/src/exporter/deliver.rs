//! Delivering a persistent queue in order: read the oldest record, send
//! it, acknowledge it on success, retry with exponential backoff (or the
//! delay the target asked for) on a retryable failure, and drop it with an
//! error log and a metric on a permanent one — retrying those forever
//! would block everything behind them. Delivery is at-least-once.
//!
//! Used by the remote-write exporter; the OTLP exporter has the same loop
//! inline (`otlp.rs`) and can move onto this one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::queue::Queue;
use crate::Signal;
use crate::metrics::{Metrics, labels};

/// Outcome of one delivery attempt.
#[derive(Debug)]
pub(crate) enum Sent {
    Ok,
    Retry { after: Option<Duration>, why: String },
    Permanent(String),
}

/// Where queued records go: one attempt at a time.
#[async_trait]
pub(crate) trait Target: Send {
    /// One attempt.
    async fn send(&mut self, record: Bytes) -> Sent;
    /// Items (for the exported counter) in a record.
    fn items(&self, record: &Bytes) -> u64;
}

/// What the loop shares with its exporter.
pub(crate) struct Delivery {
    pub(crate) id: String,
    pub(crate) signal: Signal,
    pub(crate) queue: Arc<Queue>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) last_error: Arc<Mutex<Option<String>>>,
    pub(crate) stopping: Arc<AtomicBool>,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl Delivery {
    /// Runs until `stopping` is set.
    pub(crate) async fn run(self, mut sender: impl Target) {
        let mut backoff = self.initial_backoff;
        while !self.stopping.load(Ordering::Acquire) {
            if let Err(e) = self.queue.maybe_seal().await {
                tracing::error!(exporter = %self.id, error = %e, "queue failed; stopping the sender");
                *self.last_error.lock() = Some(e.to_string());
                return;
            }
            let next = match self.queue.peek().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(exporter = %self.id, error = %e, "cannot read the queue; stopping the sender");
                    *self.last_error.lock() = Some(e.to_string());
                    return;
                }
            };
            let Some((seg, record)) = next else {
                tokio::select! {
                    _ = self.queue.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            };
            let items = sender.items(&record);
            match sender.send(record).await {
                Sent::Ok => {
                    backoff = self.initial_backoff;
                    *self.last_error.lock() = None;
                    self.count("sent", items);
                    if let Err(e) = self.queue.ack(seg) {
                        tracing::error!(exporter = %self.id, error = %e, "cannot delete a delivered queue segment");
                    }
                }
                Sent::Permanent(why) => {
                    tracing::error!(exporter = %self.id, error = %why, items, "target rejected a batch permanently; dropping it");
                    *self.last_error.lock() = Some(why);
                    self.count("failed", items);
                    let _ = self.queue.ack(seg);
                }
                Sent::Retry { after, why } => {
                    let wait = after.unwrap_or(backoff).min(self.max_backoff.max(Duration::from_secs(1)) * 4);
                    tracing::warn!(exporter = %self.id, error = %why, retry_in = ?wait, "export failed; will retry");
                    *self.last_error.lock() = Some(why);
                    self.count("retried", items);
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                }
            }
            update_gauges(&self.metrics, &self.id, &self.queue);
        }
    }

    fn count(&self, outcome: &str, items: u64) {
        self.metrics
            .exported(self.signal)
            .get_or_create(&labels(&[("exporter", &self.id), ("outcome", outcome)]))
            .inc_by(items);
    }
}

/// Sets the queue depth gauges of exporter `id`.
pub(crate) fn update_gauges(metrics: &Metrics, id: &str, queue: &Queue) {
    let (bytes, records) = queue.depth();
    let l = labels(&[("exporter", id)]);
    metrics.queue_bytes.get_or_create(&l).set(bytes as i64);
    metrics.queue_records.get_or_create(&l).set(records as i64);
}

/// Retryable HTTP statuses as the OTLP and remote-write specs define them
/// (429 and 5xx; `Retry-After` gives the delay); other failures are
/// permanent.
pub(crate) fn classify_http(status: u16, retry_after: Option<&http::HeaderValue>) -> Sent {
    let after = retry_after
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status {
        200..=299 => Sent::Ok,
        429 | 500..=599 => Sent::Retry { after, why: format!("HTTP {status}") },
        _ => Sent::Permanent(format!("HTTP {status}")),
    }
}
