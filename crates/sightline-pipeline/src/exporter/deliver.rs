//! The one delivery loop of the queued exporters (`otlp`/`otlphttp`,
//! `prometheusremotewrite`): a [`Lane`] is a persistent queue plus the
//! task that delivers it in order — read the oldest record, send it,
//! acknowledge it on success, retry with exponential backoff (or the delay
//! the target asked for) on a retryable failure, and drop it with an error
//! log and a metric on a permanent one (retrying those forever would block
//! everything behind them). Delivery is at-least-once.
//!
//! What differs between exporters is the [`Target`]: how one queued record
//! is sent and what its outcome means. An exporter that keeps tenants
//! apart runs one lane per tenant, so a tenant whose requests the target
//! refuses (a Mimir tenant over its limits) retries on its own while the
//! others keep flowing; the metrics of a lane of a tenant other than the
//! default carry a `tenant` label.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use sightline_model::{ConsumeError, Tenant};
use sightline_wal::FsyncPolicy;
use tokio::task::JoinHandle;

use super::queue::{AppendError, Queue};
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
pub(crate) trait Target: Send + 'static {
    /// One attempt.
    async fn send(&mut self, record: Bytes) -> Sent;
    /// Items (for the exported counter) in a record.
    fn items(&self, record: &Bytes) -> u64;
}

/// Retry delays.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    /// First retry delay.
    pub(crate) initial: Duration,
    /// Longest retry delay.
    pub(crate) max: Duration,
}

/// Who a lane belongs to, for its log lines and metric labels.
#[derive(Clone)]
struct Owner {
    id: String,
    signal: Signal,
    tenant: Tenant,
    metrics: Arc<Metrics>,
}

impl Owner {
    /// `exporter` plus `tenant` for a tenant other than the default one
    /// (so the default lane's series keep the labels they always had).
    fn labels(&self, extra: &[(&str, &str)]) -> crate::metrics::Labels {
        let mut all = vec![("exporter", self.id.as_str())];
        if !self.tenant.is_default() {
            all.push(("tenant", self.tenant.as_str()));
        }
        all.extend_from_slice(extra);
        labels(&all)
    }

    fn count(&self, outcome: &str, items: u64) {
        self.metrics.exported(self.signal).get_or_create(&self.labels(&[("outcome", outcome)])).inc_by(items);
    }

    fn update_gauges(&self, queue: &Queue) {
        let (bytes, records) = queue.depth();
        let l = self.labels(&[]);
        self.metrics.queue_bytes.get_or_create(&l).set(bytes as i64);
        self.metrics.queue_records.get_or_create(&l).set(records as i64);
    }
}

/// A persistent queue and its delivery task.
pub(crate) struct Lane {
    owner: Owner,
    queue: Arc<Queue>,
    last_error: Arc<Mutex<Option<String>>>,
    stopping: Arc<AtomicBool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Lane {
    /// Opens (creating) the queue in `dir`. Blocking.
    pub(crate) fn open_queue(dir: &Path, max_bytes: u64) -> Result<Queue, sightline_wal::Error> {
        Queue::open(dir, max_bytes, FsyncPolicy::Always)
    }

    /// Starts delivering `queue` to `target`; must run inside a tokio
    /// runtime.
    pub(crate) fn start(
        id: &str,
        signal: Signal,
        tenant: Tenant,
        queue: Queue,
        backoff: Backoff,
        target: impl Target,
        metrics: Arc<Metrics>,
    ) -> Lane {
        let owner = Owner { id: id.to_owned(), signal, tenant, metrics };
        let queue = Arc::new(queue);
        let last_error = Arc::new(Mutex::new(None));
        let stopping = Arc::new(AtomicBool::new(false));
        let delivery = Delivery {
            owner: owner.clone(),
            queue: Arc::clone(&queue),
            last_error: Arc::clone(&last_error),
            stopping: Arc::clone(&stopping),
            backoff,
        };
        let task = tokio::spawn(delivery.run(target));
        Lane { owner, queue, last_error, stopping, task: Mutex::new(Some(task)) }
    }

    /// Queues one record of `items` spans, records or points; `Ok` once it
    /// is durable. A full queue is a retryable refusal, counted.
    pub(crate) async fn enqueue(&self, items: u64, record: Bytes) -> Result<(), ConsumeError> {
        let result = self.queue.append(record).await;
        self.owner.update_gauges(&self.queue);
        match result {
            Ok(()) => {
                self.queue.wake.notify_one();
                Ok(())
            }
            Err(AppendError::Full) => {
                self.owner
                    .metrics
                    .refused
                    .get_or_create(&labels(&[("component", &self.owner.id), ("reason", "queue_full")]))
                    .inc();
                self.owner.count("refused", items);
                Err(ConsumeError::Overloaded {
                    reason: format!("exporter {} queue is full", self.owner.id),
                    retry_after: Duration::from_secs(5),
                })
            }
            Err(AppendError::Wal(e)) => Err(ConsumeError::Unavailable {
                reason: format!("exporter {} queue failed: {e}", self.owner.id),
                retry_after: Duration::from_secs(5),
            }),
        }
    }

    /// Bytes and records waiting.
    pub(crate) fn depth(&self) -> (u64, u64) {
        self.queue.depth()
    }

    /// Why the last attempt failed, until one succeeds.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// Stops sending and closes the queue: queued data is durable, the
    /// next start resumes from it.
    pub(crate) async fn shutdown(&self) {
        self.stopping.store(true, Ordering::Release);
        self.queue.wake.notify_one();
        let task = self.task.lock().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        self.queue.close().await;
    }
}

/// What the loop shares with its lane.
struct Delivery {
    owner: Owner,
    queue: Arc<Queue>,
    last_error: Arc<Mutex<Option<String>>>,
    stopping: Arc<AtomicBool>,
    backoff: Backoff,
}

impl Delivery {
    /// Runs until `stopping` is set.
    async fn run(self, mut target: impl Target) {
        let id = &self.owner.id;
        let tenant = self.owner.tenant.as_str();
        let mut backoff = self.backoff.initial;
        while !self.stopping.load(Ordering::Acquire) {
            if let Err(e) = self.queue.maybe_seal().await {
                tracing::error!(exporter = %id, tenant, error = %e, "queue failed; stopping the sender");
                *self.last_error.lock() = Some(e.to_string());
                return;
            }
            let next = match self.queue.peek().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(exporter = %id, tenant, error = %e, "cannot read the queue; stopping the sender");
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
            let items = target.items(&record);
            match target.send(record).await {
                Sent::Ok => {
                    backoff = self.backoff.initial;
                    *self.last_error.lock() = None;
                    self.owner.count("sent", items);
                    if let Err(e) = self.queue.ack(seg) {
                        tracing::error!(exporter = %id, tenant, error = %e, "cannot delete a delivered queue segment");
                    }
                }
                Sent::Permanent(why) => {
                    tracing::error!(exporter = %id, tenant, error = %why, items, "target rejected a batch permanently; dropping it");
                    *self.last_error.lock() = Some(why);
                    self.owner.count("failed", items);
                    let _ = self.queue.ack(seg);
                }
                Sent::Retry { after, why } => {
                    let wait = after.unwrap_or(backoff).min(self.backoff.max.max(Duration::from_secs(1)) * 4);
                    tracing::warn!(exporter = %id, tenant, error = %why, retry_in = ?wait, "export failed; will retry");
                    *self.last_error.lock() = Some(why);
                    self.owner.count("retried", items);
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(self.backoff.max);
                }
            }
            self.owner.update_gauges(&self.queue);
        }
    }
}

/// The seconds of a `Retry-After` header (the HTTP-date form is not used
/// by OTLP or remote-write servers).
pub(crate) fn retry_after(value: Option<&http::HeaderValue>) -> Option<Duration> {
    value.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs)
}
