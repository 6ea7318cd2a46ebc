//! `prometheusremotewrite`: metrics as Prometheus remote-write 1.0
//! requests (protobuf, snappy block compression) to `endpoint`, through a
//! persistent queue with retries, like the Collector's exporter of that
//! name.
//!
//! A batch is translated when it arrives (delta points need the series'
//! previous state, which lives in memory) and queued as the compressed
//! request, ready to send; the accumulated state changes only once the
//! request is queued, so a refused batch that is sent again is not counted
//! twice. Remote write answers 5xx and 429 to retry and any other 4xx to
//! give up (Prometheus says 400 for out-of-order or malformed samples).
//! The queue holds `[data points: u32 LE][snappy(WriteRequest)]` records.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use prost::Message as _;
use sightline_model::{ComponentHealth, ConsumeError, MetricBatch, MetricsConsumer};
use sightline_wal::FsyncPolicy;
use tokio::task::JoinHandle;

use super::cumulative::{Accumulator, Staged};
use super::{Keep, Translation, translate};
use crate::exporter::deliver::{self, Delivery, Sent, Target, classify_http};
use crate::exporter::queue::{AppendError, Queue};
use crate::metrics::{Metrics, labels};
use crate::{Component, Signal};

/// Settings of a remote-write exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    /// The remote-write URL, e.g. `http://127.0.0.1:9090/api/v1/write`.
    pub endpoint: String,
    /// Extra request headers (e.g. `X-Scope-OrgID`).
    pub headers: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Names and labels.
    pub translation: Translation,
    /// How long a delta series' running total is kept without updates.
    pub metric_expiration: Duration,
    /// Queue folder.
    pub queue_dir: PathBuf,
    /// Queue size cap in bytes.
    pub queue_max_bytes: u64,
    /// First retry delay.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

/// The exporter.
pub struct RemoteWriteExporter {
    id: String,
    translation: Translation,
    queue: Arc<Queue>,
    /// Running totals of delta series; locked across translate + append.
    state: tokio::sync::Mutex<Accumulator>,
    metrics: Arc<Metrics>,
    last_error: Arc<Mutex<Option<String>>>,
    stopping: Arc<AtomicBool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl RemoteWriteExporter {
    /// Opens the queue (blocking) and starts the sender; must run inside a
    /// tokio runtime.
    pub fn new(
        id: &str,
        config: RemoteWriteConfig,
        metrics: Arc<Metrics>,
    ) -> Result<RemoteWriteExporter, sightline_wal::Error> {
        let queue = Arc::new(Queue::open(&config.queue_dir, config.queue_max_bytes, FsyncPolicy::Always)?);
        let last_error = Arc::new(Mutex::new(None));
        let stopping = Arc::new(AtomicBool::new(false));
        let delivery = Delivery {
            id: id.to_owned(),
            signal: Signal::Metrics,
            queue: Arc::clone(&queue),
            metrics: Arc::clone(&metrics),
            last_error: Arc::clone(&last_error),
            stopping: Arc::clone(&stopping),
            initial_backoff: config.initial_backoff,
            max_backoff: config.max_backoff,
        };
        let task = tokio::spawn(delivery.run(Http::new(&config)));
        Ok(RemoteWriteExporter {
            id: id.to_owned(),
            translation: config.translation,
            queue,
            state: tokio::sync::Mutex::new(Accumulator::new(config.metric_expiration)),
            metrics,
            last_error,
            stopping,
            task: Mutex::new(Some(task)),
        })
    }
}

#[async_trait]
impl MetricsConsumer for RemoteWriteExporter {
    async fn consume_metrics(&self, batch: MetricBatch) -> Result<(), ConsumeError> {
        let points = batch.data_points() as u64;
        let mut state = self.state.lock().await;
        let mut staged = Staged::default();
        let mut drops = Vec::new();
        let samples =
            translate(batch.metrics(), &self.translation, &state, &mut staged, Keep::Delta, &mut drops);
        for (reason, n) in drops {
            self.metrics
                .metric_points_dropped
                .get_or_create(&labels(&[("exporter", &self.id), ("reason", reason)]))
                .inc_by(n);
        }
        if samples.is_empty() {
            state.commit(staged);
            return Ok(());
        }
        let request = super::remote::write_request(samples).encode_to_vec();
        let Ok(compressed) = snap::raw::Encoder::new().compress_vec(&request) else {
            // NOTE: snappy fails only for inputs over ~4 GiB; the batch is
            // far smaller, so this is a wiring mistake worth refusing.
            return Err(ConsumeError::Unavailable {
                reason: format!("exporter {}: cannot compress the request", self.id),
                retry_after: Duration::from_secs(5),
            });
        };
        let mut record = Vec::with_capacity(4 + compressed.len());
        record.extend_from_slice(&u32::try_from(points).unwrap_or(u32::MAX).to_le_bytes());
        record.extend_from_slice(&compressed);
        let result = self.queue.append(Bytes::from(record)).await;
        deliver::update_gauges(&self.metrics, &self.id, &self.queue);
        match result {
            Ok(()) => {
                state.commit(staged);
                self.queue.wake.notify_one();
                Ok(())
            }
            Err(AppendError::Full) => {
                self.metrics
                    .refused
                    .get_or_create(&labels(&[("component", &self.id), ("reason", "queue_full")]))
                    .inc();
                Err(ConsumeError::Overloaded {
                    reason: format!("exporter {} queue is full", self.id),
                    retry_after: Duration::from_secs(5),
                })
            }
            Err(AppendError::Wal(e)) => Err(ConsumeError::Unavailable {
                reason: format!("exporter {} queue failed: {e}", self.id),
                retry_after: Duration::from_secs(5),
            }),
        }
    }
}

#[async_trait]
impl Component for RemoteWriteExporter {
    fn id(&self) -> &str {
        &self.id
    }

    async fn shutdown(&self) {
        // Queued data is durable: stop sending and close; the next start
        // resumes from the queue (delta running totals start over).
        self.stopping.store(true, Ordering::Release);
        self.queue.wake.notify_one();
        let task = self.task.lock().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        self.queue.close().await;
    }

    fn health(&self) -> Option<ComponentHealth> {
        let (bytes, records) = self.queue.depth();
        let error = self.last_error.lock().clone();
        Some(ComponentHealth {
            name: format!("exporter {}", self.id),
            // Downstream trouble is not our failure: the queue absorbs it.
            healthy: true,
            detail: match error {
                Some(e) => format!("{records} requests ({bytes} bytes) queued; last error: {e}"),
                None => format!("{records} requests ({bytes} bytes) queued"),
            },
        })
    }
}

/// Posts queued requests.
struct Http {
    url: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
}

impl Http {
    fn new(config: &RemoteWriteConfig) -> Http {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        Http {
            url: config.endpoint.clone(),
            headers: config.headers.clone(),
            timeout: config.timeout,
            client: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector),
        }
    }
}

#[async_trait]
impl Target for Http {
    async fn send(&mut self, record: Bytes) -> Sent {
        if record.len() < 4 {
            return Sent::Permanent("queued record is too short".into());
        }
        let mut builder = http::Request::post(self.url.as_str())
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .header("x-prometheus-remote-write-version", "0.1.0")
            .header("user-agent", concat!("sightline/", env!("CARGO_PKG_VERSION")));
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let req = match builder.body(http_body_util::Full::new(record.slice(4..))) {
            Ok(r) => r,
            Err(e) => return Sent::Permanent(format!("cannot build the request: {e}")),
        };
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => Sent::Retry { after: None, why: format!("timed out after {:?}", self.timeout) },
            Ok(Err(e)) => Sent::Retry { after: None, why: format!("cannot reach {}: {e}", self.url) },
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let sent = classify_http(status, resp.headers().get("retry-after"));
                match sent {
                    Sent::Permanent(why) => {
                        // Prometheus says why in the body (e.g. "out of order sample").
                        let body = http_body_util::BodyExt::collect(resp.into_body())
                            .await
                            .map(|b| {
                                String::from_utf8_lossy(&b.to_bytes())
                                    .trim()
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            })
                            .unwrap_or_default();
                        Sent::Permanent(if body.is_empty() { why } else { format!("{why}: {body}") })
                    }
                    other => other,
                }
            }
        }
    }

    fn items(&self, record: &Bytes) -> u64 {
        record.get(..4).and_then(|b| b.try_into().ok()).map_or(0, |b| u64::from(u32::from_le_bytes(b)))
    }
}
