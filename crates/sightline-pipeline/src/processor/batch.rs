//! Batch processor: merges small batches into larger ones before export,
//! for every signal (it counts spans, log records or metric data points).
//!
//! Unlike the Collector's, it does not acknowledge early: each sender waits
//! until the merged batch it joined was accepted downstream, so batching
//! never weakens the durability promise. Merging costs no re-encoding: the
//! concatenation of two protobuf export requests is the encoding of the
//! merged request (repeated fields append).
//!
//! Batches of different tenants are never merged: each tenant has its own
//! pending batch (one deadline for all).
//!
//! Backpressure: the queue in front of the batcher is bounded; when it is
//! full senders get `Overloaded`, and at most `max_in_flight` merged
//! batches are exported at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use sightline_model::{ConsumeError, Tenant};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::Component;
use crate::metrics::{Metrics, labels};
use crate::signal::{Signal, Unit, consumers_for_units};

/// Settings of a batch processor.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Send once this many items (spans, log records, data points) wait.
    pub send_batch_size: usize,
    /// Send at the latest this long after the first waiting item arrived.
    pub timeout: Duration,
    /// Batches (as received) that may wait in the queue; beyond, refuse.
    pub queue_batches: usize,
    /// Merged batches exported concurrently.
    pub max_in_flight: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            send_batch_size: 8192,
            timeout: Duration::from_millis(200),
            queue_batches: 1024,
            max_in_flight: 4,
        }
    }
}

type Waiter = oneshot::Sender<Result<(), ConsumeError>>;

/// The processor, for units `U` of one signal.
pub struct BatchProcessor<U: Unit> {
    id: String,
    tx: parking_lot::Mutex<Option<mpsc::Sender<(U, Waiter)>>>,
    metrics: Arc<Metrics>,
    task: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

struct Pending<U: Unit> {
    items: Vec<U::Item>,
    /// What the items count for ([`Unit::count`]).
    count: usize,
    otlp: BytesMut,
    waiters: Vec<Waiter>,
}

impl<U: Unit> Pending<U> {
    fn new() -> Pending<U> {
        Pending { items: Vec::new(), count: 0, otlp: BytesMut::new(), waiters: Vec::new() }
    }
}

impl<U: Unit> BatchProcessor<U> {
    /// Starts the batching task; must run inside a tokio runtime.
    pub fn new(
        id: &str,
        config: &Config,
        next: Arc<U::Consumer>,
        metrics: Arc<Metrics>,
    ) -> BatchProcessor<U> {
        let (tx, rx) = mpsc::channel(config.queue_batches.max(1));
        let task = tokio::spawn(run::<U>(config.clone(), rx, next, Arc::clone(&metrics)));
        BatchProcessor {
            id: id.to_owned(),
            tx: parking_lot::Mutex::new(Some(tx)),
            metrics,
            task: parking_lot::Mutex::new(Some(task)),
        }
    }
}

async fn run<U: Unit>(
    config: Config,
    mut rx: mpsc::Receiver<(U, Waiter)>,
    next: Arc<U::Consumer>,
    metrics: Arc<Metrics>,
) {
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    // One merge per tenant: units of different tenants never share a batch.
    let mut pending: BTreeMap<Tenant, Pending<U>> = BTreeMap::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let received = match deadline {
            Some(at) => tokio::select! {
                item = rx.recv() => Some(item),
                _ = tokio::time::sleep_until(at) => None,
            },
            None => Some(rx.recv().await),
        };
        let closed = matches!(received, Some(None));
        // Size reached (that tenant's), or deadline passed / input closed
        // (every tenant's): what to send now.
        let due: Vec<Tenant> = match received {
            Some(Some((batch, waiter))) => {
                if pending.is_empty() {
                    deadline = Some(Instant::now() + config.timeout);
                }
                let tenant = batch.tenant();
                let waiting = pending.entry(tenant.clone()).or_insert_with(Pending::new);
                waiting.count += batch.count();
                let (items, otlp) = batch.into_parts();
                waiting.items.extend(items);
                waiting.otlp.extend_from_slice(&otlp);
                waiting.waiters.push(waiter);
                if waiting.count < config.send_batch_size {
                    continue;
                }
                vec![tenant]
            }
            _ => pending.keys().cloned().collect(),
        };
        for tenant in due {
            let Some(merged) = pending.remove(&tenant) else { continue };
            // NOTE: the semaphore is never closed, so acquiring cannot fail.
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else { return };
            let next = Arc::clone(&next);
            if U::SIGNAL == Signal::Traces {
                metrics.batch_spans.observe(merged.count as f64);
            }
            tokio::spawn(async move {
                let unit = U::from_parts(merged.items, merged.otlp.freeze()).with_tenant(tenant);
                let result = U::send(&next, unit).await;
                for w in merged.waiters {
                    let _ = w.send(result.clone());
                }
                drop(permit);
            });
        }
        if pending.is_empty() {
            deadline = None;
        }
        if closed {
            // Wait for the exports in flight before reporting done.
            let _ = in_flight.acquire_many(config.max_in_flight.max(1) as u32).await;
            return;
        }
    }
}

impl<U: Unit> BatchProcessor<U> {
    async fn consume(&self, batch: U) -> Result<(), ConsumeError> {
        if batch.count() == 0 {
            return Ok(());
        }
        let Some(tx) = self.tx.lock().clone() else {
            return Err(ConsumeError::Unavailable {
                reason: "shutting down".into(),
                retry_after: Duration::from_secs(5),
            });
        };
        let (waiter, done) = oneshot::channel();
        if tx.try_send((batch, waiter)).is_err() {
            self.metrics
                .refused
                .get_or_create(&labels(&[("component", &self.id), ("reason", "queue_full")]))
                .inc();
            return Err(ConsumeError::Overloaded {
                reason: "batch queue is full".into(),
                retry_after: Duration::from_secs(1),
            });
        }
        done.await.unwrap_or_else(|_| {
            Err(ConsumeError::Unavailable {
                reason: "batch processor stopped".into(),
                retry_after: Duration::from_secs(5),
            })
        })
    }
}

consumers_for_units!(BatchProcessor);

#[async_trait]
impl<U: Unit> Component for BatchProcessor<U> {
    fn id(&self) -> &str {
        &self.id
    }

    async fn shutdown(&self) {
        // Closing the channel makes the task send what waits and finish.
        self.tx.lock().take();
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}
