//! OTLP exporter: forwards to another OTLP endpoint (another Sightline, a
//! Collector, Jaeger, Tempo) over gRPC or HTTP/protobuf, for one signal
//! per instance (traces, logs or metrics, each with its own queue).
//!
//! Batches go into a persistent queue first ([`super::queue`]) and are
//! acknowledged once there, so data survives restarts and downstream
//! outages up to the queue's size cap; beyond it, senders get a retryable
//! refusal. A background sender ([`super::deliver::Lane`], shared with
//! remote write) delivers the queue in order, retrying with exponential
//! backoff and honouring `Retry-After` (HTTP) and `RetryInfo` (gRPC). Responses the OTLP spec calls permanent (e.g. HTTP 400, gRPC
//! `INVALID_ARGUMENT`) drop the batch with an error log and a metric, as
//! retrying them forever would block everything behind them. Delivery is
//! at-least-once.
//!
//! **Tenants.** Each tenant of the batches has a lane of its own
//! (`super::tenants`: queue, delivery task), and its requests carry
//! `tenant_header: <tenant>` (`X-Scope-OrgID` by default, as another
//! Sightline, Tempo, Loki and Mimir read it) beside the configured
//! headers, so forwarded data lands in its own tenant downstream; the
//! default tenant's requests carry the configured headers only, as
//! before. A tenant the endpoint keeps refusing retries on its own lane.
//!
//! An `https://` endpoint is reached over TLS (rustls, ring provider),
//! trusting the platform's CA certificates — or the PEM bundle named by
//! `SSL_CERT_FILE` / the folder `SSL_CERT_DIR`, as OpenSSL-based tools do,
//! for a private CA.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message as _;
use sightline_model::{
    Batch, ComponentHealth, ConsumeError, LogBatch, LogsConsumer, MetricBatch, MetricsConsumer, Tenant,
    TracesConsumer,
};

use super::deliver::{self, Backoff, Lane, Sent, Target};
use super::tenants::{TenantLanes, headers_for};
use crate::metrics::Metrics;
use crate::{Component, Signal};

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
    /// `http://host:port` (gRPC) or the base URL (HTTP; `/v1/traces`,
    /// `/v1/logs` or `/v1/metrics` is appended unless the URL already ends
    /// with it).
    pub endpoint: String,
    /// Wire protocol.
    pub protocol: Protocol,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Extra request headers (e.g. an API key).
    pub headers: Vec<(String, String)>,
    /// Queue folder (traces; logs and metrics queue in its `logs` and
    /// `metrics` subfolders).
    pub queue_dir: PathBuf,
    /// Queue size cap in bytes.
    pub queue_max_bytes: u64,
    /// First retry delay.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// The request header naming a batch's tenant (other than the
    /// default one); `X-Scope-OrgID` unless configured.
    pub tenant_header: String,
    /// Most tenants with a queue of their own (`--max-tenants`).
    pub max_tenants: usize,
}

/// The exporter.
pub struct OtlpExporter {
    id: String,
    signal: Signal,
    lanes: TenantLanes<Lane>,
}

impl OtlpExporter {
    /// Opens the queue (blocking) and starts the sender; must run inside a
    /// tokio runtime.
    pub fn new(
        id: &str,
        config: Config,
        metrics: Arc<Metrics>,
    ) -> Result<OtlpExporter, sightline_wal::Error> {
        OtlpExporter::for_signal(id, config, Signal::Traces, metrics)
    }

    /// [`OtlpExporter::new`] for one signal's data.
    pub fn for_signal(
        id: &str,
        config: Config,
        signal: Signal,
        metrics: Arc<Metrics>,
    ) -> Result<OtlpExporter, sightline_wal::Error> {
        let backoff = Backoff { initial: config.initial_backoff, max: config.max_backoff };
        let root = queue_dir(&config, signal);
        let (max_bytes, max_tenants) = (config.queue_max_bytes, config.max_tenants);
        let lane_id = id.to_owned();
        let start = move |tenant: &Tenant, queue| {
            let mut config = config.clone();
            config.headers = headers_for(&config.headers, &config.tenant_header, tenant);
            let target = OtlpTarget { signal, client: Client::new(&config, signal), config };
            Lane::start(&lane_id, signal, tenant.clone(), queue, backoff, target, Arc::clone(&metrics))
        };
        let lanes = TenantLanes::open(id, &root, max_bytes, max_tenants, start)?;
        Ok(OtlpExporter { id: id.to_owned(), signal, lanes })
    }

    /// Queues one export request of `items` spans, records or points of
    /// `tenant`.
    async fn enqueue(
        &self,
        signal: Signal,
        tenant: &Tenant,
        items: u64,
        otlp: Bytes,
    ) -> Result<(), ConsumeError> {
        if signal != self.signal {
            // NOTE: the builder makes one exporter per signal; this guards
            // the queue against a wiring mistake.
            return Err(ConsumeError::Unavailable {
                reason: format!("exporter {} takes {}, not {}", self.id, self.signal.name(), signal.name()),
                retry_after: Duration::from_secs(5),
            });
        }
        if items == 0 {
            return Ok(());
        }
        self.lanes.lane(tenant).await?.enqueue(items, otlp).await
    }
}

#[async_trait]
impl TracesConsumer for OtlpExporter {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        let items = batch.len() as u64;
        let tenant = batch.tenant().clone();
        self.enqueue(Signal::Traces, &tenant, items, batch.into_otlp()).await
    }
}

#[async_trait]
impl LogsConsumer for OtlpExporter {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        let items = batch.len() as u64;
        let tenant = batch.tenant().clone();
        self.enqueue(Signal::Logs, &tenant, items, batch.into_parts().1).await
    }
}

#[async_trait]
impl MetricsConsumer for OtlpExporter {
    async fn consume_metrics(&self, batch: MetricBatch) -> Result<(), ConsumeError> {
        let items = batch.data_points() as u64;
        let tenant = batch.tenant().clone();
        self.enqueue(Signal::Metrics, &tenant, items, batch.into_parts().1).await
    }
}

/// Where one signal's queue lives: traces in `queue_dir` itself (as before
/// logs and metrics existed), the others in subfolders, which the WAL
/// ignores.
fn queue_dir(config: &Config, signal: Signal) -> PathBuf {
    match signal {
        Signal::Traces => config.queue_dir.clone(),
        Signal::Logs | Signal::Metrics => config.queue_dir.join(signal.name()),
    }
}

#[async_trait]
impl Component for OtlpExporter {
    fn id(&self) -> &str {
        &self.id
    }

    async fn shutdown(&self) {
        // Queued data is durable: the next start resumes from the queues.
        for (_, lane) in self.lanes.all() {
            lane.shutdown().await;
        }
    }

    fn health(&self) -> Option<ComponentHealth> {
        let (mut bytes, mut records, mut errors) = (0, 0, Vec::new());
        for (tenant, lane) in self.lanes.all() {
            let (b, r) = lane.depth();
            bytes += b;
            records += r;
            if let Some(e) = lane.last_error() {
                errors.push(if tenant.is_default() { e } else { format!("tenant {tenant}: {e}") });
            }
        }
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        Some(ComponentHealth {
            name: match self.signal {
                Signal::Traces => format!("exporter {}", self.id),
                other => format!("exporter {} ({})", self.id, other.name()),
            },
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
    GrpcLogs(LogsServiceClient<tonic::transport::Channel>),
    GrpcMetrics(MetricsServiceClient<tonic::transport::Channel>),
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
    fn new(config: &Config, signal: Signal) -> Client {
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
                        let channel = ep.timeout(config.timeout).connect_lazy();
                        match signal {
                            Signal::Traces => Client::Grpc(TraceServiceClient::new(channel)),
                            Signal::Logs => Client::GrpcLogs(LogsServiceClient::new(channel)),
                            Signal::Metrics => Client::GrpcMetrics(MetricsServiceClient::new(channel)),
                        }
                    }
                    Err(e) => Client::Invalid(format!("invalid endpoint {}: {e}", config.endpoint)),
                }
            }
            Protocol::HttpProtobuf => {
                let base = config.endpoint.trim_end_matches('/');
                let path = format!("/v1/{}", signal.name());
                let url = if base.ends_with(&path) { base.to_owned() } else { format!("{base}{path}") };
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

/// Sends one queued export request to the OTLP endpoint.
struct OtlpTarget {
    signal: Signal,
    config: Config,
    client: Client,
}

#[async_trait]
impl Target for OtlpTarget {
    fn items(&self, record: &Bytes) -> u64 {
        item_count(self.signal, record)
    }

    async fn send(&mut self, record: Bytes) -> Sent {
        match &mut self.client {
            Client::Invalid(why) => Sent::Retry { after: Some(Duration::from_secs(30)), why: why.clone() },
            Client::Grpc(client) => {
                let request = match ExportTraceServiceRequest::decode(record) {
                    Ok(r) => r,
                    Err(e) => return Sent::Permanent(format!("queued record is not OTLP: {e}")),
                };
                let req = with_headers(request, &self.config.headers);
                match client.export(req).await {
                    Ok(_) => Sent::Ok,
                    Err(status) => classify_grpc(&status),
                }
            }
            Client::GrpcLogs(client) => {
                let request = match ExportLogsServiceRequest::decode(record) {
                    Ok(r) => r,
                    Err(e) => return Sent::Permanent(format!("queued record is not OTLP: {e}")),
                };
                match client.export(with_headers(request, &self.config.headers)).await {
                    Ok(_) => Sent::Ok,
                    Err(status) => classify_grpc(&status),
                }
            }
            Client::GrpcMetrics(client) => {
                let request = match ExportMetricsServiceRequest::decode(record) {
                    Ok(r) => r,
                    Err(e) => return Sent::Permanent(format!("queued record is not OTLP: {e}")),
                };
                match client.export(with_headers(request, &self.config.headers)).await {
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

/// A gRPC request carrying the configured headers as metadata.
fn with_headers<T>(message: T, headers: &[(String, String)]) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
            tonic::metadata::MetadataValue::try_from(v.as_str()),
        ) {
            req.metadata_mut().insert(k, v);
        }
    }
    req
}

/// Spans, log records or metric data points in a queued request.
fn item_count(signal: Signal, record: &Bytes) -> u64 {
    match signal {
        Signal::Traces => ExportTraceServiceRequest::decode(record.clone())
            .map(|r| {
                r.resource_spans.iter().flat_map(|rs| &rs.scope_spans).map(|ss| ss.spans.len() as u64).sum()
            })
            .unwrap_or(0),
        Signal::Logs => ExportLogsServiceRequest::decode(record.clone())
            .map(|r| {
                r.resource_logs
                    .iter()
                    .flat_map(|rl| &rl.scope_logs)
                    .map(|sl| sl.log_records.len() as u64)
                    .sum()
            })
            .unwrap_or(0),
        Signal::Metrics => ExportMetricsServiceRequest::decode(record.clone())
            .map(|r| {
                use opentelemetry_proto::tonic::metrics::v1::metric::Data;
                let points = |m: &opentelemetry_proto::tonic::metrics::v1::Metric| match &m.data {
                    None => 0,
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                };
                r.resource_metrics
                    .iter()
                    .flat_map(|rm| &rm.scope_metrics)
                    .flat_map(|sm| &sm.metrics)
                    .map(|m| points(m) as u64)
                    .sum()
            })
            .unwrap_or(0),
    }
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
    let after = deliver::retry_after(retry_after);
    match status {
        200..=299 => Sent::Ok,
        429 | 502 | 503 | 504 => Sent::Retry { after, why: format!("HTTP {status}") },
        _ => Sent::Permanent(format!("HTTP {status}")),
    }
}
