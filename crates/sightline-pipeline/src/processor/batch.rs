//! Batch processor: merges small batches into larger ones before export.
//!
//! Unlike the Collector's, it does not acknowledge early: each sender waits
//! until the merged batch it joined was accepted downstream, so batching
//! never weakens the durability promise. Merging costs no re-encoding: the
//! concatenation of two protobuf `ExportTraceServiceRequest`s is the
//! encoding of the merged request (repeated fields append).
//!
//! Backpressure: the queue in front of the batcher is bounded; when it is
//! full senders get `Overloaded`, and at most `max_in_flight` merged
//! batches are exported at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use sightline_model::{Batch, ConsumeError, Span, TracesConsumer};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Next;
use crate::Component;
use crate::metrics::{Metrics, labels};

/// Settings of a batch processor.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Send once this many spans are waiting.
    pub send_batch_size: usize,
    /// Send at the latest this long after the first waiting span arrived.
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

/// The processor.
pub struct BatchProcessor {
    id: String,
    tx: parking_lot::Mutex<Option<mpsc::Sender<(Batch, Waiter)>>>,
    metrics: Arc<Metrics>,
    task: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

struct Pending {
    spans: Vec<Span>,
    otlp: BytesMut,
    waiters: Vec<Waiter>,
}

impl Pending {
    fn new() -> Pending {
        Pending { spans: Vec::new(), otlp: BytesMut::new(), waiters: Vec::new() }
    }
}

impl BatchProcessor {
    /// Starts the batching task; must run inside a tokio runtime.
    pub fn new(id: &str, config: &Config, next: Next, metrics: Arc<Metrics>) -> BatchProcessor {
        let (tx, rx) = mpsc::channel(config.queue_batches.max(1));
        let task = tokio::spawn(run(config.clone(), rx, next, Arc::clone(&metrics)));
        BatchProcessor {
            id: id.to_owned(),
            tx: parking_lot::Mutex::new(Some(tx)),
            metrics,
            task: parking_lot::Mutex::new(Some(task)),
        }
    }
}

async fn run(config: Config, mut rx: mpsc::Receiver<(Batch, Waiter)>, next: Next, metrics: Arc<Metrics>) {
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let mut pending = Pending::new();
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
        if let Some(Some((batch, waiter))) = received {
            if pending.waiters.is_empty() {
                deadline = Some(Instant::now() + config.timeout);
            }
            let (spans, otlp) = batch.into_parts();
            pending.spans.extend(spans);
            pending.otlp.extend_from_slice(&otlp);
            pending.waiters.push(waiter);
            if pending.spans.len() < config.send_batch_size {
                continue;
            }
        }
        // Size reached, deadline passed, or input closed: send what waits.
        deadline = None;
        if !pending.waiters.is_empty() {
            let merged = std::mem::replace(&mut pending, Pending::new());
            // NOTE: the semaphore is never closed, so acquiring cannot fail.
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else { return };
            let next = Arc::clone(&next);
            metrics.batch_spans.observe(merged.spans.len() as f64);
            tokio::spawn(async move {
                let result = next.consume_traces(Batch::new(merged.spans, merged.otlp.freeze())).await;
                for w in merged.waiters {
                    let _ = w.send(result.clone());
                }
                drop(permit);
            });
        }
        if closed {
            // Wait for the exports in flight before reporting done.
            let _ = in_flight.acquire_many(config.max_in_flight.max(1) as u32).await;
            return;
        }
    }
}

#[async_trait]
impl TracesConsumer for BatchProcessor {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        if batch.is_empty() {
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

#[async_trait]
impl Component for BatchProcessor {
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
