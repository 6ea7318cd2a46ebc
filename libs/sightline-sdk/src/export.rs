//! The OTLP exporters, built from an [`OtlpTarget`]: transport, headers,
//! timeout, gzip and TLS (rustls with the ring provider, the platform's
//! roots plus `OTEL_EXPORTER_OTLP_CERTIFICATE`, optional client
//! certificate); and the wrappers that say when an export fails.
//!
//! Why the wrappers: the SDK's batch processor and periodic reader report
//! export errors only through its internal logging, which is off here (it
//! would log every failure, and through `tracing`, which our own layers
//! feed back into spans). So a collector that is down used to be silent.
//! [`Reporter`] turns results into one warning when exports start failing
//! (with the reason and the endpoint), then at most one per
//! [`WARN_EVERY`] with the count of failures in between, and one info line
//! when they work again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;
use crate::config::{Compression, OtlpTarget, Protocol, Tls};

/// At most one "still failing" warning per signal this often.
pub(crate) const WARN_EVERY: Duration = Duration::from_secs(60);

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::Tls { path: path.to_owned(), reason: format!("reading the {what}: {e}") })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path, "certificate")?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls { path: path.to_owned(), reason: format!("not a PEM certificate: {e}") })?;
    if certs.is_empty() {
        return Err(Error::Tls { path: path.to_owned(), reason: "no PEM certificate in the file".into() });
    }
    Ok(certs)
}

/// A rustls client configuration: the ring provider, the platform's roots
/// plus the configured CA, and the client certificate when given.
fn rustls_config(tls: &Tls, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(ca) = &tls.certificate {
        for cert in certificates(ca)? {
            roots
                .add(cert)
                .map_err(|e| Error::Tls { path: ca.clone(), reason: format!("unusable CA: {e}") })?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls { path: Default::default(), reason: e.to_string() })?
        .with_root_certificates(roots);
    let mut config = match (&tls.client_certificate, &tls.client_key) {
        (Some(cert), Some(key_path)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_slice(&read(key_path, "client key")?).map_err(|e| {
                Error::Tls { path: key_path.clone(), reason: format!("not a PEM private key: {e}") }
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Tls { path: cert.clone(), reason: format!("client certificate: {e}") })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The client the OTLP/HTTP exporter sends with ([`crate::transport`]).
fn http_client(t: &OtlpTarget) -> Result<crate::transport::OtlpHttpClient, Error> {
    let config = if t.endpoint.starts_with("https://") {
        rustls_config(&t.tls, &[])?
    } else {
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls { path: Default::default(), reason: e.to_string() })?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    crate::transport::OtlpHttpClient::start(config, t.timeout).map_err(|e| Error::Tls {
        path: Default::default(),
        reason: format!("starting the HTTP client: {e}"),
    })
}

fn tonic_tls(tls: &Tls) -> Result<tonic::transport::ClientTlsConfig, Error> {
    let mut config = tonic::transport::ClientTlsConfig::new().with_native_roots();
    if let Some(ca) = &tls.certificate {
        config = config.ca_certificate(tonic::transport::Certificate::from_pem(read(ca, "certificate")?));
    }
    if let (Some(cert), Some(key)) = (&tls.client_certificate, &tls.client_key) {
        config = config.identity(tonic::transport::Identity::from_pem(
            read(cert, "client certificate")?,
            read(key, "client key")?,
        ));
    }
    Ok(config)
}

fn metadata(headers: &[(String, String)]) -> tonic::metadata::MetadataMap {
    let mut map = http::HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()), http::HeaderValue::from_str(v))
        {
            map.append(name, value);
        }
    }
    tonic::metadata::MetadataMap::from_headers(map)
}

fn otlp_protocol(p: Protocol) -> opentelemetry_otlp::Protocol {
    match p {
        Protocol::Grpc => opentelemetry_otlp::Protocol::Grpc,
        Protocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
    }
}

fn grpc_needs_runtime() -> Result<(), Error> {
    // tonic's lazy channel spawns its worker on the current Tokio runtime
    // and panics without one: say so instead.
    tokio::runtime::Handle::try_current().map(drop).map_err(|_| Error::Config {
        name: "OTEL_EXPORTER_OTLP_PROTOCOL",
        value: "grpc".into(),
        reason: "gRPC export needs a Tokio runtime: call init inside #[tokio::main] (or use http/protobuf)"
            .into(),
    })
}

macro_rules! build_exporter {
    ($builder:expr, $t:expr, $signal:literal) => {{
        let t: &OtlpTarget = $t;
        let built = match t.protocol {
            Protocol::Grpc => {
                grpc_needs_runtime()?;
                let mut b = $builder
                    .with_tonic()
                    .with_endpoint(t.endpoint.clone())
                    .with_timeout(t.timeout)
                    .with_metadata(metadata(&t.headers));
                if t.compression == Compression::Gzip {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                if t.endpoint.starts_with("https://") {
                    b = b.with_tls_config(tonic_tls(&t.tls)?);
                }
                b.build()
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let mut b = $builder
                    .with_http()
                    .with_protocol(otlp_protocol(t.protocol))
                    .with_endpoint(t.endpoint.clone())
                    .with_timeout(t.timeout)
                    .with_http_client(http_client(t)?)
                    .with_headers(t.headers.iter().cloned().collect::<HashMap<_, _>>());
                if t.compression == Compression::Gzip {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                b.build()
            }
        };
        built.map_err(|source| Error::Exporter { signal: $signal, endpoint: t.endpoint.clone(), source })
    }};
}

/// The OTLP span exporter for `t`.
pub(crate) fn span_exporter(t: &OtlpTarget) -> Result<opentelemetry_otlp::SpanExporter, Error> {
    build_exporter!(opentelemetry_otlp::SpanExporter::builder(), t, "traces")
}

/// The OTLP metric exporter for `t`.
pub(crate) fn metric_exporter(t: &OtlpTarget) -> Result<opentelemetry_otlp::MetricExporter, Error> {
    build_exporter!(opentelemetry_otlp::MetricExporter::builder(), t, "metrics")
}

/// The OTLP log exporter for `t`.
pub(crate) fn log_exporter(t: &OtlpTarget) -> Result<opentelemetry_otlp::LogExporter, Error> {
    build_exporter!(opentelemetry_otlp::LogExporter::builder(), t, "logs")
}

/// What [`Reporter::record`] says should be logged.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// Exports fail: `suppressed` failures were not logged since the last warning.
    Failing { reason: String, suppressed: u64 },
    /// Exports work again after `failures` failed ones.
    Recovered { failures: u64 },
}

#[derive(Debug, Default)]
struct ReportState {
    failures: u64,
    unreported: u64,
    last_warning: Option<Instant>,
}

/// Rate-limits export failure messages for one signal.
#[derive(Debug)]
pub(crate) struct Reporter {
    signal: &'static str,
    endpoint: String,
    state: Mutex<ReportState>,
}

impl Reporter {
    pub(crate) fn new(signal: &'static str, endpoint: impl Into<String>) -> Reporter {
        Reporter { signal, endpoint: endpoint.into(), state: Mutex::default() }
    }

    /// Notes one export's outcome at `now`; what to log, if anything.
    pub(crate) fn record(&self, result: &OTelSdkResult, now: Instant) -> Option<Report> {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(()) if s.failures == 0 => None,
            Ok(()) => {
                let failures = std::mem::take(&mut s.failures);
                s.unreported = 0;
                s.last_warning = None;
                Some(Report::Recovered { failures })
            }
            Err(e) => {
                s.failures += 1;
                let due = s.last_warning.is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
                if due {
                    let suppressed = std::mem::take(&mut s.unreported);
                    s.last_warning = Some(now);
                    Some(Report::Failing { reason: e.to_string(), suppressed })
                } else {
                    s.unreported += 1;
                    None
                }
            }
        }
    }

    /// Records and logs.
    pub(crate) fn observe(&self, result: &OTelSdkResult) {
        match self.record(result, Instant::now()) {
            Some(Report::Failing { reason, suppressed }) => tracing::warn!(
                target: "sightline_sdk::export",
                signal = self.signal,
                endpoint = %self.endpoint,
                suppressed,
                "exporting {} to {} failed: {reason}{}",
                self.signal,
                self.endpoint,
                if suppressed > 0 {
                    format!(" ({suppressed} more failures since the last warning)")
                } else {
                    String::new()
                },
            ),
            Some(Report::Recovered { failures }) => tracing::info!(
                target: "sightline_sdk::export",
                signal = self.signal,
                endpoint = %self.endpoint,
                "exporting {} to {} works again after {failures} failed exports",
                self.signal,
                self.endpoint,
            ),
            None => {}
        }
    }
}

/// A span exporter whose failures are reported ([`Reporter`]).
#[derive(Debug)]
pub(crate) struct ReportingSpanExporter<E> {
    pub(crate) inner: E,
    pub(crate) reporter: Reporter,
}

impl<E: SpanExporter> SpanExporter for ReportingSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.reporter.observe(&result);
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// A metric exporter whose failures are reported ([`Reporter`]).
#[derive(Debug)]
pub(crate) struct ReportingMetricExporter<E> {
    pub(crate) inner: E,
    pub(crate) reporter: Reporter,
}

impl<E: PushMetricExporter> PushMetricExporter for ReportingMetricExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.reporter.observe(&result);
        result
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// A log exporter whose failures are reported ([`Reporter`]). Its
/// warnings are `tracing` events of target `sightline_sdk::export`, which
/// the log bridge leaves out (see `init.rs`), so a failing export does not
/// feed itself.
#[derive(Debug)]
pub(crate) struct ReportingLogExporter<E> {
    pub(crate) inner: E,
    pub(crate) reporter: Reporter,
}

impl<E: opentelemetry_sdk::logs::LogExporter> opentelemetry_sdk::logs::LogExporter
    for ReportingLogExporter<E>
{
    async fn export(&self, batch: opentelemetry_sdk::logs::LogBatch<'_>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.reporter.observe(&result);
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// One line saying where a signal goes: transport, URL, gzip, TLS, the
/// header *names* (values are secrets).
pub(crate) fn describe(t: &OtlpTarget) -> String {
    let protocol = match t.protocol {
        Protocol::Grpc => "grpc",
        Protocol::HttpProtobuf => "http/protobuf",
        Protocol::HttpJson => "http/json",
    };
    let mut s = format!("OTLP {protocol} to {}", t.endpoint);
    if t.compression == Compression::Gzip {
        s.push_str(", gzip");
    }
    if t.endpoint.starts_with("https://") {
        s.push_str(", TLS");
        if t.tls.certificate.is_some() {
            s.push_str(" with a custom CA");
        }
        if t.tls.client_certificate.is_some() {
            s.push_str(", client certificate");
        }
    }
    if !t.headers.is_empty() {
        let names: Vec<&str> = t.headers.iter().map(|(k, _)| k.as_str()).collect();
        s.push_str(&format!(", headers {}", names.join(", ")));
    }
    s.push_str(&format!(", timeout {} ms", t.timeout.as_millis()));
    s
}
