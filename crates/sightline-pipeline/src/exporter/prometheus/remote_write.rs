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
//!
//! **Tenants.** Each tenant of the batches has a lane of its own
//! (`exporter::tenants`: queue, delivery task, plus here the delta running
//! totals): the default tenant's queue in `queue_dir`, another's in
//! `queue_dir/tenants/<tenant>` (reopened at start, so what was queued is
//! still sent). A tenant's requests carry `X-Scope-OrgID: <tenant>`
//! (replacing one set in `headers`), as Mimir and Cortex expect; the
//! default tenant's carry only the configured `headers`. A tenant whose
//! requests fail retries on its own lane while the others keep flowing.
//! Each lane's queue may hold `queue_max_bytes`; at most `max_tenants`
//! lanes are opened (`--max-tenants`; a batch of one more is refused,
//! retryably).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use prost::Message as _;
use sightline_model::{ComponentHealth, ConsumeError, MetricBatch, MetricsConsumer, Tenant};

use super::cumulative::{Accumulator, Staged};
use super::{Keep, Translation, translate};
use crate::exporter::deliver::{self, Backoff, Lane, Sent, Target};
use crate::exporter::tenants::{TENANT_HEADER, TenantLanes, headers_for};
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
    /// Most tenants with a queue of their own (`--max-tenants`).
    pub max_tenants: usize,
}

/// The exporter.
pub struct RemoteWriteExporter {
    id: String,
    config: RemoteWriteConfig,
    metrics: Arc<Metrics>,
    /// Each tenant's lane.
    tenants: TenantLanes<TenantLane>,
}

/// One tenant's queue, delivery and delta running totals.
struct TenantLane {
    lane: Lane,
    /// Running totals of delta series; locked across translate + append.
    state: tokio::sync::Mutex<Accumulator>,
}

impl RemoteWriteExporter {
    /// Opens the queues (blocking) — the default tenant's and every
    /// tenant's left from an earlier run — and starts their senders; must
    /// run inside a tokio runtime.
    pub fn new(
        id: &str,
        config: RemoteWriteConfig,
        metrics: Arc<Metrics>,
    ) -> Result<RemoteWriteExporter, sightline_wal::Error> {
        let lanes = {
            let (id, config, metrics) = (id.to_owned(), config.clone(), Arc::clone(&metrics));
            move |tenant: &Tenant, queue| start_lane(&id, &config, tenant, queue, &metrics)
        };
        let tenants =
            TenantLanes::open(id, &config.queue_dir, config.queue_max_bytes, config.max_tenants, lanes)?;
        Ok(RemoteWriteExporter { id: id.to_owned(), config, metrics, tenants })
    }
}

fn start_lane(
    id: &str,
    config: &RemoteWriteConfig,
    tenant: &Tenant,
    queue: crate::exporter::queue::Queue,
    metrics: &Arc<Metrics>,
) -> TenantLane {
    let backoff = Backoff { initial: config.initial_backoff, max: config.max_backoff };
    let target = Http::new(config, tenant);
    TenantLane {
        lane: Lane::start(id, Signal::Metrics, tenant.clone(), queue, backoff, target, Arc::clone(metrics)),
        state: tokio::sync::Mutex::new(Accumulator::new(config.metric_expiration)),
    }
}

#[async_trait]
impl MetricsConsumer for RemoteWriteExporter {
    async fn consume_metrics(&self, batch: MetricBatch) -> Result<(), ConsumeError> {
        let points = batch.data_points() as u64;
        let lane = self.tenants.lane(batch.tenant()).await?;
        let mut state = lane.state.lock().await;
        let mut staged = Staged::default();
        let mut drops = Vec::new();
        let samples = translate(
            batch.metrics(),
            &self.config.translation,
            &state,
            &mut staged,
            Keep::Delta,
            &mut drops,
        );
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
        lane.lane.enqueue(points, Bytes::from(record)).await?;
        state.commit(staged);
        Ok(())
    }
}

#[async_trait]
impl Component for RemoteWriteExporter {
    fn id(&self) -> &str {
        &self.id
    }

    async fn shutdown(&self) {
        // Queued data is durable: the next start resumes from the queues
        // (delta running totals start over).
        for (_, lane) in self.tenants.all() {
            lane.lane.shutdown().await;
        }
    }

    fn health(&self) -> Option<ComponentHealth> {
        let (mut bytes, mut records, mut errors) = (0, 0, Vec::new());
        for (tenant, lane) in self.tenants.all() {
            let (b, r) = lane.lane.depth();
            bytes += b;
            records += r;
            if let Some(e) = lane.lane.last_error() {
                errors.push(if tenant.is_default() { e } else { format!("tenant {tenant}: {e}") });
            }
        }
        Some(ComponentHealth {
            name: format!("exporter {}", self.id),
            // Downstream trouble is not our failure: the queue absorbs it.
            healthy: true,
            detail: if errors.is_empty() {
                format!("{records} requests ({bytes} bytes) queued")
            } else {
                format!("{records} requests ({bytes} bytes) queued; last error: {}", errors.join("; "))
            },
        })
    }
}

/// Remote write's retryable statuses (429 and 5xx, as Prometheus's own
/// sender retries; `Retry-After` gives the delay); any other failure is
/// permanent.
fn classify_http(status: u16, retry_after: Option<&http::HeaderValue>) -> Sent {
    let after = deliver::retry_after(retry_after);
    match status {
        200..=299 => Sent::Ok,
        429 | 500..=599 => Sent::Retry { after, why: format!("HTTP {status}") },
        _ => Sent::Permanent(format!("HTTP {status}")),
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
    /// Posts `tenant`'s requests: the configured headers, and for a tenant
    /// other than the default its `X-Scope-OrgID` in place of a configured
    /// one (the data must land in its own tenant).
    fn new(config: &RemoteWriteConfig, tenant: &Tenant) -> Http {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_connect_timeout(Some(config.timeout));
        let headers = headers_for(&config.headers, TENANT_HEADER, tenant);
        Http {
            url: config.endpoint.clone(),
            headers,
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
