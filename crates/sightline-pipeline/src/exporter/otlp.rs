//! OTLP exporter: forwards to another OTLP endpoint (another Sightline, a
//! Collector, Jaeger, Tempo) over gRPC or HTTP/protobuf.
//!
//! Batches go into a persistent queue first ([`super::queue`]) and are
//! acknowledged once there, so data survives restarts and downstream
//! outages up to the queue's size cap; beyond it, senders get a retryable
//! refusal. A background sender delivers the queue in order, retrying with
//! exponential backoff and honouring `Retry-After` (HTTP) and `RetryInfo`
//! (gRPC). Responses the OTLP spec calls permanent (e.g. HTTP 400, gRPC
//! `INVALID_ARGUMENT`) drop the batch with an error log and a metric, as
//! retrying them forever would block everything behind them. Delivery is
//! at-least-once.
//!
//! An `https://` endpoint is reached over TLS (rustls, ring provider),
//! trusting the platform's CA certificates — or the PEM bundle named by
//! `SSL_CERT_FILE` / the folder `SSL_CERT_DIR`, as OpenSSL-based tools do,
//! for a private CA.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use parking_lot::Mutex;
use prost::Message as _;
use sightline_model::{Batch, ComponentHealth, ConsumeError, TracesConsumer};
use sightline_wal::FsyncPolicy;
use tokio::task::JoinHandle;

use super::queue::{AppendError, Queue};
use crate::Component;
use crate::metrics::{Metrics, labels};

/// Wire protocol of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
}

/// Settings of an OTLP exporter.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `http://host:port` (gRPC) or the base URL (HTTP; `/v1/traces` is
    /// appended unless the URL already ends with it).
    pub endpoint: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Extra request headers (e.g. an API key).
    pub headers: Vec<(String, String)>,
    /// Queue folder.
    pub queue_dir: PathBuf,
    /// Queue size cap in bytes.
    pub queue_max_bytes: u64,
    /// First retry delay.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

/// Outcome of one delivery attempt.
#[derive(Debug)]
enum Sent {
    Ok,
    Retry { after: Option<Duration>, why: String },
    Permanent(String),
}

/// The exporter.
pub struct OtlpExporter {
    id: String,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    last_error: Arc<Mutex<Option<String>>>,
    stopping: Arc<AtomicBool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl OtlpExporter {
    /// Opens the queue (blocking) and starts the sender; must run inside a
    /// tokio runtime.
    pub fn new(
        id: &str,
        config: Config,
        metrics: Arc<Metrics>,
    ) -> Result<OtlpExporter, sightline_wal::Error> {
        let queue = Arc::new(Queue::open(&config.queue_dir, config.queue_max_bytes, FsyncPolicy::Always)?);
        let last_error = Arc::new(Mutex::new(None));
        let stopping = Arc::new(AtomicBool::new(false));
        let sender = Sender {
            id: id.to_owned(),
            client: Client::new(&config),
            config,
            queue: Arc::clone(&queue),
            metrics: Arc::clone(&metrics),
            last_error: Arc::clone(&last_error),
            stopping: Arc::clone(&stopping),
        };
        let task = tokio::spawn(sender.run());
        Ok(OtlpExporter {
            id: id.to_owned(),
            queue,
            metrics,
            last_error,
            stopping,
            task: Mutex::new(Some(task)),
        })
    }

    fn update_gauges(&self) {
        let (bytes, records) = self.queue.depth();
        let l = labels(&[("exporter", &self.id)]);
        self.metrics.queue_bytes.get_or_create(&l).set(bytes as i64);
        self.metrics.queue_records.get_or_create(&l).set(records as i64);
    }
}

#[async_trait]
impl TracesConsumer for OtlpExporter {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        if batch.is_empty() {
            return Ok(());
        }
        let spans = batch.len() as u64;
        let (_, otlp) = batch.into_parts();
        let result = self.queue.append(otlp).await;
        self.update_gauges();
        match result {
            Ok(()) => {
                self.queue.wake.notify_one();
                Ok(())
            }
            Err(AppendError::Full) => {
                self.metrics
                    .refused
                    .get_or_create(&labels(&[("component", &self.id), ("reason", "queue_full")]))
                    .inc();
                self.metrics
                    .exported
                    .get_or_create(&labels(&[("exporter", &self.id), ("outcome", "refused")]))
                    .inc_by(spans);
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
impl Component for OtlpExporter {
    fn id(&self) -> &str {
        &self.id
    }

    async fn shutdown(&self) {
        // Queued data is durable: stop sending and close; the next start
        // resumes from the queue.
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
                Some(e) => format!("{records} batches ({bytes} bytes) queued; last error: {e}"),
                None => format!("{records} batches ({bytes} bytes) queued"),
            },
        })
    }
}

type HttpsConnector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

enum Client {
    Grpc(TraceServiceClient<tonic::transport::Channel>),
    Http {
        url: String,
        client: hyper_util::client::legacy::Client<HttpsConnector, http_body_util::Full<Bytes>>,
    },
    Invalid(String),
}

/// The HTTP connector: plain for `http://`, TLS for `https://` with the
/// platform's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured).
fn https_connector(config: &Config) -> Result<HttpsConnector, String> {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_connect_timeout(Some(config.timeout));
    http.enforce_http(false);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_provider_and_native_roots(Arc::clone(&provider)) {
        Ok(b) => b,
        Err(e) if config.endpoint.starts_with("https://") => {
            return Err(format!("no CA certificates to verify {}: {e}; set SSL_CERT_FILE", config.endpoint));
        }
        // Plain HTTP needs no roots.
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        ),
    };
    Ok(builder.https_or_http().enable_http1().wrap_connector(http))
}

impl Client {
    fn new(config: &Config) -> Client {
        match config.protocol {
            Protocol::Grpc => {
                let endpoint =
                    tonic::transport::Endpoint::from_shared(config.endpoint.clone()).and_then(|ep| {
                        if config.endpoint.starts_with("https://") {
                            ep.tls_config(tonic::transport::ClientTlsConfig::new().with_native_roots())
                        } else {
                            Ok(ep)
                        }
                    });
                match endpoint {
                    Ok(ep) => {
                        Client::Grpc(TraceServiceClient::new(ep.timeout(config.timeout).connect_lazy()))
                    }
                    Err(e) => Client::Invalid(format!("invalid endpoint {}: {e}", config.endpoint)),
                }
            }
            Protocol::HttpProtobuf => {
                let base = config.endpoint.trim_end_matches('/');
                let url =
                    if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") };
                match https_connector(config) {
                    Ok(connector) => {
                        let client =
                            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                                .build(connector);
                        Client::Http { url, client }
                    }
                    Err(why) => Client::Invalid(why),
                }
            }
        }
    }
}

struct Sender {
    id: String,
    config: Config,
    client: Client,
    queue: Arc<Queue>,
    metrics: Arc<Metrics>,
    last_error: Arc<Mutex<Option<String>>>,
    stopping: Arc<AtomicBool>,
}

impl Sender {
    async fn run(mut self) {
        let mut backoff = self.config.initial_backoff;
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
            let spans = span_count(&record);
            match self.send(record).await {
                Sent::Ok => {
                    backoff = self.config.initial_backoff;
                    *self.last_error.lock() = None;
                    self.count("sent", spans);
                    if let Err(e) = self.queue.ack(seg) {
                        tracing::error!(exporter = %self.id, error = %e, "cannot delete a delivered queue segment");
                    }
                }
                Sent::Permanent(why) => {
                    tracing::error!(exporter = %self.id, error = %why, spans, "target rejected a batch permanently; dropping it");
                    *self.last_error.lock() = Some(why);
                    self.count("failed", spans);
                    let _ = self.queue.ack(seg);
                }
                Sent::Retry { after, why } => {
                    let wait =
                        after.unwrap_or(backoff).min(self.config.max_backoff.max(Duration::from_secs(1)) * 4);
                    tracing::warn!(exporter = %self.id, error = %why, retry_in = ?wait, "export failed; will retry");
                    *self.last_error.lock() = Some(why);
                    self.count("retried", spans);
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
            let (bytes, records) = self.queue.depth();
            let l = labels(&[("exporter", &self.id)]);
            self.metrics.queue_bytes.get_or_create(&l).set(bytes as i64);
            self.metrics.queue_records.get_or_create(&l).set(records as i64);
        }
    }

    fn count(&self, outcome: &str, spans: u64) {
        self.metrics
            .exported
            .get_or_create(&labels(&[("exporter", &self.id), ("outcome", outcome)]))
            .inc_by(spans);
    }

    async fn send(&mut self, record: Bytes) -> Sent {
        match &mut self.client {
            Client::Invalid(why) => Sent::Retry { after: Some(Duration::from_secs(30)), why: why.clone() },
            Client::Grpc(client) => {
                let request = match ExportTraceServiceRequest::decode(record) {
                    Ok(r) => r,
                    Err(e) => return Sent::Permanent(format!("queued record is not OTLP: {e}")),
                };
                let mut req = tonic::Request::new(request);
                for (k, v) in &self.config.headers {
                    if let (Ok(k), Ok(v)) = (
                        tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
                        tonic::metadata::MetadataValue::try_from(v.as_str()),
                    ) {
                        req.metadata_mut().insert(k, v);
                    }
                }
                match client.export(req).await {
                    Ok(_) => Sent::Ok,
                    Err(status) => classify_grpc(&status),
                }
            }
            Client::Http { url, client } => {
                let mut builder =
                    http::Request::post(url.as_str()).header("content-type", "application/x-protobuf");
                for (k, v) in &self.config.headers {
                    builder = builder.header(k.as_str(), v.as_str());
                }
                let req = match builder.body(http_body_util::Full::new(record)) {
                    Ok(r) => r,
                    Err(e) => return Sent::Permanent(format!("cannot build the request: {e}")),
                };
                match tokio::time::timeout(self.config.timeout, client.request(req)).await {
                    Err(_) => {
                        Sent::Retry { after: None, why: format!("timed out after {:?}", self.config.timeout) }
                    }
                    Ok(Err(e)) => Sent::Retry { after: None, why: format!("cannot reach {url}: {e}") },
                    Ok(Ok(resp)) => classify_http(resp.status().as_u16(), resp.headers().get("retry-after")),
                }
            }
        }
    }
}

fn span_count(record: &Bytes) -> u64 {
    ExportTraceServiceRequest::decode(record.clone())
        .map(|r| r.resource_spans.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len() as u64).sum())
        .unwrap_or(0)
}

/// The OTLP spec's retryable gRPC codes; `RetryInfo` gives the delay.
fn classify_grpc(status: &tonic::Status) -> Sent {
    use tonic::Code;
    let retry_info = retry_delay(status);
    let retryable = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_info.is_some(),
        _ => false,
    };
    let why = format!("gRPC {:?}: {}", status.code(), status.message());
    if retryable { Sent::Retry { after: retry_info, why } } else { Sent::Permanent(why) }
}

/// Reads `google.rpc.RetryInfo` from a status's details.
fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    use tonic_types::StatusExt as _;
    status.get_details_retry_info().and_then(|info| info.retry_delay)
}

/// The OTLP spec's retryable HTTP statuses; `Retry-After` gives the delay.
fn classify_http(status: u16, retry_after: Option<&http::HeaderValue>) -> Sent {
    let after = retry_after
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    match status {
        200..=299 => Sent::Ok,
        429 | 502 | 503 | 504 => Sent::Retry { after, why: format!("HTTP {status}") },
        _ => Sent::Permanent(format!("HTTP {status}")),
    }
}
