//! Options set in code, the environment variables the seeds use, and the
//! resolved [`Settings`] (code wins over the environment).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::trace::TracerProviderBuilder;

use crate::Error;
use crate::logs::LogShape;

/// OTLP transport, from `OTEL_EXPORTER_OTLP_PROTOCOL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`), usually port 4317.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`), usually port 4318.
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies (`http/json`).
    HttpJson,
}

impl Protocol {
    /// Parses the spec's names.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.trim() {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" => Some(Protocol::HttpProtobuf),
            "http/json" => Some(Protocol::HttpJson),
            _ => None,
        }
    }
}

/// A sampler, from `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio` with the ratio (default 1.0)
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the spec's default)
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio` with the ratio (default 1.0)
    ParentBasedTraceIdRatio(f64),
}

impl SamplerConfig {
    /// Parses the variable pair as the spec defines it. Unknown names and
    /// ratios outside `[0, 1]` are errors (we fail at start, not silently).
    pub fn parse(name: &str, arg: Option<&str>) -> Result<SamplerConfig, Error> {
        let ratio = || -> Result<f64, Error> {
            match arg.map(str::trim).filter(|a| !a.is_empty()) {
                None => Ok(1.0),
                Some(a) => match a.parse::<f64>() {
                    Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                    _ => Err(Error::config("OTEL_TRACES_SAMPLER_ARG", a, "expected a ratio in [0, 1]")),
                },
            }
        };
        Ok(match name.trim() {
            "always_on" => SamplerConfig::AlwaysOn,
            "always_off" => SamplerConfig::AlwaysOff,
            "traceidratio" => SamplerConfig::TraceIdRatio(ratio()?),
            "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
            "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(ratio()?),
            other => {
                return Err(Error::config(
                    "OTEL_TRACES_SAMPLER",
                    other,
                    "expected always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off or parentbased_traceidratio",
                ));
            }
        })
    }

    pub(crate) fn to_sampler(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler;
        match self {
            SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
            SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
            SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
            SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            SamplerConfig::ParentBasedTraceIdRatio(r) => {
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
            }
        }
    }
}

/// Body compression for OTLP export (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// `none` (the spec's default).
    #[default]
    None,
    /// `gzip`.
    Gzip,
}

/// TLS material for an `https://` endpoint, as file paths (PEM). The
/// platform's roots are always trusted; `certificate` adds a CA (a private
/// collector's), the client pair enables mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Tls {
    /// Extra trusted CA certificates (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub certificate: Option<PathBuf>,
    /// Client certificate chain (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`).
    pub client_certificate: Option<PathBuf>,
    /// Client private key (`OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
}

/// Where and how one signal is exported over OTLP.
#[derive(Clone, Debug, PartialEq)]
pub struct OtlpTarget {
    /// The URL requests go to: for OTLP/HTTP the base URL with
    /// `/v1/traces` or `/v1/metrics` appended, unless it came from a
    /// per-signal variable (used as given, as the spec says); for gRPC the
    /// base URL.
    pub endpoint: String,
    /// Transport.
    pub protocol: Protocol,
    /// Extra request headers / gRPC metadata (`OTEL_EXPORTER_OTLP_HEADERS`),
    /// e.g. an `authorization` token. Values are never logged.
    pub headers: Vec<(String, String)>,
    /// Per-export timeout (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s).
    pub timeout: Duration,
    /// Body compression.
    pub compression: Compression,
    /// TLS files (only used for `https://`).
    pub tls: Tls,
}

/// Where spans go.
#[derive(Clone, Debug, PartialEq)]
pub enum ExporterKind {
    /// No spans at all (`TELEMETRY_ENABLED=false`, `OTEL_SDK_DISABLED=true`,
    /// or a bad tracing setting outside strict mode).
    Disabled,
    /// OTLP to a collector (or Sightline).
    Otlp(OtlpTarget),
    /// No endpoint configured: one human-readable line per span on stdout.
    Console,
    /// A span exporter given in code ([`Options::span_exporter`]), e.g. the
    /// SDK's `InMemorySpanExporter` in tests; spans are exported as they end.
    Custom,
}

/// A propagation format (`OTEL_PROPAGATORS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagatorKind {
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// Zipkin B3, single `b3` header.
    B3,
    /// Zipkin B3, multiple `X-B3-*` headers.
    B3Multi,
    /// Jaeger `uber-trace-id` and `uberctx-*` baggage.
    Jaeger,
}

impl PropagatorKind {
    /// Parses one of the spec's names.
    pub fn parse(s: &str) -> Option<PropagatorKind> {
        Some(match s.trim() {
            "tracecontext" => PropagatorKind::TraceContext,
            "baggage" => PropagatorKind::Baggage,
            "b3" => PropagatorKind::B3,
            "b3multi" => PropagatorKind::B3Multi,
            "jaeger" => PropagatorKind::Jaeger,
            _ => return None,
        })
    }

    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            PropagatorKind::TraceContext => "tracecontext",
            PropagatorKind::Baggage => "baggage",
            PropagatorKind::B3 => "b3",
            PropagatorKind::B3Multi => "b3multi",
            PropagatorKind::Jaeger => "jaeger",
        }
    }
}

pub(crate) type ProviderHook =
    Box<dyn FnOnce(TracerProviderBuilder, &Settings) -> TracerProviderBuilder + Send>;

/// What the caller sets in code; every field left unset is read from the
/// environment, then defaulted. Builder style:
///
/// ```
/// let opts = sightline_sdk::Options::new("gateway")
///     .endpoint("http://127.0.0.1:4318")
///     .baggage_attributes(["tenant"]);
/// ```
#[derive(Default)]
pub struct Options {
    pub(crate) service_name: Option<String>,
    pub(crate) enabled: Option<bool>,
    pub(crate) endpoint: Option<String>,
    pub(crate) protocol: Option<Protocol>,
    pub(crate) service_version: Option<String>,
    pub(crate) environment: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    pub(crate) sampler: Option<SamplerConfig>,
    pub(crate) schedule_delay: Option<Duration>,
    pub(crate) max_queue_size: Option<usize>,
    pub(crate) max_export_batch_size: Option<usize>,
    pub(crate) metric_interval: Option<Duration>,
    pub(crate) excluded_urls: Option<Vec<String>>,
    pub(crate) baggage_attributes: Vec<String>,
    pub(crate) install_globals: Option<bool>,
    pub(crate) json_logs: Option<bool>,
    pub(crate) log_shape: Option<LogShape>,
    pub(crate) metrics_prefix: Option<String>,
    pub(crate) span_exporter: Option<ProviderHook>,
    pub(crate) strict: Option<bool>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) compression: Option<Compression>,
    pub(crate) propagators: Option<Vec<PropagatorKind>>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("service_name", &self.service_name)
            .field("enabled", &self.enabled)
            .field("endpoint", &self.endpoint)
            .field("protocol", &self.protocol)
            .field("custom_exporter", &self.span_exporter.is_some())
            .finish_non_exhaustive()
    }
}

impl Options {
    /// Options for the service called `service_name` (`service.name`).
    pub fn new(service_name: impl Into<String>) -> Options {
        Options { service_name: Some(service_name.into()), ..Options::default() }
    }

    /// Turns everything on or off, overriding `TELEMETRY_ENABLED`.
    pub fn enabled(mut self, on: bool) -> Self {
        self.enabled = Some(on);
        self
    }

    /// OTLP base URL, overriding `OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// OTLP transport, overriding `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn protocol(mut self, p: Protocol) -> Self {
        self.protocol = Some(p);
        self
    }

    /// `service.version`, overriding `SERVICE_VERSION` / `BFF_VERSION`.
    pub fn service_version(mut self, v: impl Into<String>) -> Self {
        self.service_version = Some(v.into());
        self
    }

    /// `deployment.environment`, overriding `ENVIRONMENT`.
    pub fn environment(mut self, v: impl Into<String>) -> Self {
        self.environment = Some(v.into());
        self
    }

    /// An extra resource attribute (wins over `OTEL_RESOURCE_ATTRIBUTES`).
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.resource_attributes.push((key.into(), value.into()));
        self
    }

    /// The sampler, overriding `OTEL_TRACES_SAMPLER`.
    pub fn sampler(mut self, s: SamplerConfig) -> Self {
        self.sampler = Some(s);
        self
    }

    /// Batch processor delay, overriding `OTEL_BSP_SCHEDULE_DELAY`.
    pub fn schedule_delay(mut self, d: Duration) -> Self {
        self.schedule_delay = Some(d);
        self
    }

    /// OTLP metrics push interval, overriding `OTEL_METRIC_EXPORT_INTERVAL`.
    pub fn metric_interval(mut self, d: Duration) -> Self {
        self.metric_interval = Some(d);
        self
    }

    /// URL paths the server layer neither traces nor counts (default
    /// `/health`, `/metrics`). A path matches an entry equal to it or
    /// below it (`/health` also excludes `/health/live`).
    pub fn excluded_urls<I: IntoIterator<Item = S>, S: Into<String>>(mut self, paths: I) -> Self {
        self.excluded_urls = Some(paths.into_iter().map(Into::into).collect());
        self
    }

    /// Baggage keys copied onto every span started where they are set, as
    /// span attributes of the same name (e.g. `tenant`), so they can be
    /// searched in the trace backend. Only the listed keys: baggage may
    /// carry things that must not be stored.
    pub fn baggage_attributes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.baggage_attributes = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Whether [`crate::init`] installs the global tracer provider, meter
    /// provider, propagator and `tracing` subscriber (default `true`).
    /// Tests that build several handles in one process set `false`.
    pub fn install_globals(mut self, on: bool) -> Self {
        self.install_globals = Some(on);
        self
    }

    /// JSON log lines (default) or the human-readable `tracing` format,
    /// overriding `LOG_FORMAT` (`json` | `text`).
    pub fn json_logs(mut self, on: bool) -> Self {
        self.json_logs = Some(on);
        self
    }

    /// A prefix for the generic Prometheus families other than HTTP's
    /// (`db_*`, `messaging_*`, `background_task*`, `public_metrics`),
    /// overriding `METRICS_PREFIX`; `bff_` gives seed 001's
    /// `bff_background_tasks_total` and `bff_public_metrics_total`.
    pub fn metrics_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.metrics_prefix = Some(prefix.into());
        self
    }

    /// The keys of JSON log lines (default: seed 002's), overriding
    /// `LOG_FORMAT=json` / `json-extended`.
    pub fn log_shape(mut self, shape: LogShape) -> Self {
        self.log_shape = Some(shape);
        self
    }

    /// Strict mode (overriding `TELEMETRY_STRICT`): a bad telemetry setting
    /// or an exporter that cannot be built makes [`crate::init`] fail.
    /// Off by default: the problem is logged as an error, the signal it
    /// concerns is disabled, and the service runs on (seed 002: "telemetry
    /// failures never crash your app").
    pub fn strict(mut self, on: bool) -> Self {
        self.strict = Some(on);
        self
    }

    /// An OTLP request header (gRPC metadata), added to
    /// `OTEL_EXPORTER_OTLP_HEADERS` (wins for the same name).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// OTLP export timeout, overriding `OTEL_EXPORTER_OTLP_TIMEOUT`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// OTLP body compression, overriding `OTEL_EXPORTER_OTLP_COMPRESSION`.
    pub fn compression(mut self, c: Compression) -> Self {
        self.compression = Some(c);
        self
    }

    /// Propagation formats, overriding `OTEL_PROPAGATORS`; an empty list
    /// propagates nothing.
    pub fn propagators<I: IntoIterator<Item = PropagatorKind>>(mut self, p: I) -> Self {
        self.propagators = Some(p.into_iter().collect());
        self
    }

    /// Exports spans with `exporter`, synchronously as each span ends,
    /// instead of OTLP or the console; e.g. the SDK's
    /// `opentelemetry_sdk::trace::InMemorySpanExporter` (feature `testing`).
    pub fn span_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::trace::SpanExporter + 'static,
    {
        self.span_exporter =
            Some(Box::new(move |b: TracerProviderBuilder, _: &Settings| b.with_simple_exporter(exporter)));
        self
    }

    /// Exports spans with `exporter` through the batch span processor
    /// (the `OTEL_BSP_*` settings apply), as the OTLP exporter is used:
    /// for an exporter of your own, or to measure the SDK without a network.
    pub fn batched_span_exporter<E>(mut self, exporter: E) -> Self
    where
        E: opentelemetry_sdk::trace::SpanExporter + 'static,
    {
        self.span_exporter = Some(Box::new(move |b: TracerProviderBuilder, s: &Settings| {
            b.with_span_processor(
                opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
                    .with_batch_config(s.batch_config())
                    .build(),
            )
        }));
        self
    }
}

/// The resolved configuration: what [`crate::init`] builds from.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `service.name`.
    pub service_name: String,
    /// Where spans go.
    pub exporter: ExporterKind,
    /// Where OTel metrics are pushed; `None`: not pushed (Prometheus
    /// `/metrics` still renders them).
    pub metrics: Option<OtlpTarget>,
    /// Where `tracing` events are exported as OTLP log records; `None`:
    /// not exported (the JSON lines on stderr are printed either way).
    /// Off with `OTEL_LOGS_EXPORTER=none`.
    pub logs: Option<OtlpTarget>,
    /// Resource attributes besides `service.name`, in order (the
    /// detected ones are added by [`crate::init`]).
    pub resource: Vec<(String, String)>,
    /// The sampler.
    pub sampler: SamplerConfig,
    /// Batch processor: delay between exports.
    pub schedule_delay: Duration,
    /// Batch processor: queue bound (spans beyond it are dropped and counted by the SDK).
    pub max_queue_size: usize,
    /// Batch processor: spans per export.
    pub max_export_batch_size: usize,
    /// OTLP metrics push interval.
    pub metric_interval: Duration,
    /// Paths the server layer skips.
    pub excluded_urls: Arc<[String]>,
    /// Baggage keys copied to span attributes.
    pub baggage_attributes: Arc<[String]>,
    /// Install globals (provider, propagator, subscriber).
    pub install_globals: bool,
    /// JSON log lines.
    pub json_logs: bool,
    /// Their keys.
    pub log_shape: LogShape,
    /// Prefix of the generic non-HTTP Prometheus families.
    pub metrics_prefix: String,
    /// Propagation formats, in order (`OTEL_PROPAGATORS`).
    pub propagators: Vec<PropagatorKind>,
    /// Strict mode: problems fail [`crate::init`] instead of disabling a signal.
    pub strict: bool,
}

fn parse_bool(name: &'static str, v: &str) -> Result<bool, Error> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(name, v, "expected true or false")),
    }
}

fn parse_num<T: std::str::FromStr>(name: &'static str, v: &str) -> Result<T, Error> {
    v.trim().parse().map_err(|_| Error::config(name, v, "expected a non-negative integer"))
}

/// Decodes `%XX` escapes (the W3C baggage octet rules that
/// `OTEL_RESOURCE_ATTRIBUTES` uses); invalid escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a `k=v,k2=v2` list with percent-encoded values (the format of
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`).
fn parse_pairs(name: &'static str, v: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, val)) = pair.split_once('=') else {
            // Never echo a header list: it usually holds a token.
            let shown = if name.ends_with("HEADERS") { "<hidden>" } else { v };
            let what = if name.ends_with("HEADERS") { "an entry".to_owned() } else { format!("{pair:?}") };
            return Err(Error::config(name, shown, format!("{what} is not key=value")));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(Error::config(
                name,
                if name.ends_with("HEADERS") { "<hidden>" } else { v },
                "empty key",
            ));
        }
        out.push((k.to_owned(), percent_decode(val.trim())));
    }
    Ok(out)
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-encoded).
pub(crate) fn parse_resource_attributes(v: &str) -> Result<Vec<(String, String)>, Error> {
    parse_pairs("OTEL_RESOURCE_ATTRIBUTES", v)
}

/// Parses `OTEL_PROPAGATORS`: a comma list; `none` alone means none.
pub(crate) fn parse_propagators(v: &str) -> Result<Vec<PropagatorKind>, Error> {
    let mut out = Vec::new();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "none" {
            continue;
        }
        let p = PropagatorKind::parse(name).ok_or_else(|| {
            Error::config(
                "OTEL_PROPAGATORS",
                v,
                format!(
                    "unknown propagator {name:?}: expected tracecontext, baggage, b3, b3multi, jaeger or none"
                ),
            )
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

fn endpoint_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split('/').next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// The per-signal variable names (the spec's `OTEL_EXPORTER_OTLP_{SIGNAL}_*`).
struct SignalVars {
    path: &'static str,
    endpoint: &'static str,
    protocol: &'static str,
    headers: &'static str,
    timeout: &'static str,
    compression: &'static str,
    certificate: &'static str,
    client_certificate: &'static str,
    client_key: &'static str,
}

const TRACES: SignalVars = SignalVars {
    path: "/v1/traces",
    endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
    certificate: "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    client_certificate: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    client_key: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY",
};

const METRICS: SignalVars = SignalVars {
    path: "/v1/metrics",
    endpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    headers: "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
    certificate: "OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE",
    client_certificate: "OTEL_EXPORTER_OTLP_METRICS_CLIENT_CERTIFICATE",
    client_key: "OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY",
};

const LOGS: SignalVars = SignalVars {
    path: "/v1/logs",
    endpoint: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    protocol: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    headers: "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    compression: "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION",
    certificate: "OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE",
    client_certificate: "OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE",
    client_key: "OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY",
};

/// Whether `OTEL_{SIGNAL}_EXPORTER` (`var`) lets the signal go over OTLP:
/// `otlp` (or unset) does, `none` does not; anything else is a problem
/// (and the signal is off).
fn exporter_on<F: Fn(&str) -> Option<String>>(env: &Env<F>, var: &'static str) -> Result<bool, Error> {
    match env.get(var).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(true),
        Some(v) if v == "otlp" => Ok(true),
        Some(v) if v == "none" => Ok(false),
        Some(v) => Err(Error::config(var, &v, "expected otlp or none")),
    }
}

/// Problems found while resolving, each tied to what it disables.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub(crate) errors: Vec<Error>,
    pub(crate) traces: bool,
    pub(crate) metrics: bool,
    pub(crate) logs: bool,
}

impl Problems {
    fn note(&mut self, e: Error) {
        if !self.errors.iter().any(|x| x.to_string() == e.to_string()) {
            self.errors.push(e);
        }
    }
}

/// The environment lookup with empty values treated as unset.
struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn get(&self, k: &str) -> Option<String> {
        (self.0)(k).filter(|v| !v.trim().is_empty())
    }

    /// The signal's variable, else the generic one: (name, value).
    fn either(&self, signal: &'static str, generic: &'static str) -> Option<(&'static str, String)> {
        self.get(signal).map(|v| (signal, v)).or_else(|| self.get(generic).map(|v| (generic, v)))
    }
}

/// Resolves one signal's OTLP target; `Ok(None)` when no endpoint is set.
fn resolve_target<F: Fn(&str) -> Option<String>>(
    opts: &Options,
    env: &Env<F>,
    vars: &SignalVars,
) -> Result<Option<OtlpTarget>, Error> {
    // Code, then the signal's own variable (a full URL), then the seeds'
    // OTLP_ENDPOINT, then the spec's base variable.
    let (base, full, name, seed_var) = match &opts.endpoint {
        Some(e) => (e.clone(), false, "endpoint", false),
        None => match env.get(vars.endpoint) {
            Some(e) => (e, true, vars.endpoint, false),
            None => match env.get("OTLP_ENDPOINT") {
                Some(e) => (e, false, "OTLP_ENDPOINT", true),
                None => match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
                    Some(e) => (e, false, "OTEL_EXPORTER_OTLP_ENDPOINT", false),
                    None => return Ok(None),
                },
            },
        },
    };
    let base = base.trim().trim_end_matches('/').to_owned();
    if !base.starts_with("http://") && !base.starts_with("https://") {
        return Err(Error::config(name, &base, "expected an http:// or https:// URL"));
    }
    let protocol = match opts.protocol {
        Some(p) => p,
        None => match env.either(vars.protocol, "OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some((n, p)) => Protocol::parse(&p)
                .ok_or_else(|| Error::config(n, &p, "expected grpc, http/protobuf or http/json"))?,
            None if seed_var || endpoint_port(&base) == Some(4317) => Protocol::Grpc,
            None => Protocol::HttpProtobuf,
        },
    };
    let endpoint = if protocol == Protocol::Grpc || full { base } else { format!("{base}{}", vars.path) };
    let mut headers = Vec::new();
    for var in ["OTEL_EXPORTER_OTLP_HEADERS", vars.headers] {
        if let Some(v) = env.get(var) {
            for (k, v) in parse_pairs(var, &v)? {
                headers.retain(|(h, _): &(String, String)| !h.eq_ignore_ascii_case(&k));
                headers.push((k, v));
            }
        }
    }
    for (k, v) in &opts.headers {
        headers.retain(|(h, _): &(String, String)| !h.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    for (k, v) in &headers {
        if http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).is_err()
            || http::HeaderValue::from_str(v).is_err()
        {
            return Err(Error::config(
                "OTEL_EXPORTER_OTLP_HEADERS",
                "<hidden>",
                format!("header {k:?} is not a valid header name and value"),
            ));
        }
    }
    let timeout = match opts.timeout {
        Some(t) => t,
        None => match env.either(vars.timeout, "OTEL_EXPORTER_OTLP_TIMEOUT") {
            Some((n, v)) => Duration::from_millis(parse_num(n, &v)?),
            None => Duration::from_secs(10),
        },
    };
    let compression = match opts.compression {
        Some(c) => c,
        None => match env.either(vars.compression, "OTEL_EXPORTER_OTLP_COMPRESSION") {
            Some((n, v)) => match v.trim().to_ascii_lowercase().as_str() {
                "gzip" => Compression::Gzip,
                "none" => Compression::None,
                _ => return Err(Error::config(n, &v, "expected gzip or none")),
            },
            None => Compression::None,
        },
    };
    let path = |signal: &'static str, generic: &'static str| {
        env.either(signal, generic).map(|(_, v)| PathBuf::from(v.trim()))
    };
    let tls = Tls {
        certificate: path(vars.certificate, "OTEL_EXPORTER_OTLP_CERTIFICATE"),
        client_certificate: path(vars.client_certificate, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        client_key: path(vars.client_key, "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
    };
    if tls.client_certificate.is_some() != tls.client_key.is_some() {
        return Err(Error::config(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            &tls.client_certificate.as_ref().map_or(String::new(), |p| p.display().to_string()),
            "a client certificate and a client key go together (OTEL_EXPORTER_OTLP_CLIENT_KEY)",
        ));
    }
    Ok(Some(OtlpTarget { endpoint, protocol, headers, timeout, compression, tls }))
}

impl Settings {
    /// Resolves `opts` against the process environment.
    pub fn from_env(opts: &Options) -> Result<Settings, Error> {
        Settings::resolve(opts, |k| std::env::var(k).ok())
    }

    /// Resolves `opts` against `lookup` (an environment), code first;
    /// the first problem is an error (what strict mode does).
    ///
    /// The protocol, when neither set in code nor by
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, is `grpc` if the endpoint came from
    /// the seeds' `OTLP_ENDPOINT` or names port 4317 (that is how the
    /// seeds deploy it), and the spec's default `http/protobuf` otherwise.
    pub fn resolve(opts: &Options, lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, Error> {
        let (settings, mut problems) = Settings::resolve_lenient(opts, lookup);
        if problems.errors.is_empty() { Ok(settings) } else { Err(problems.errors.remove(0)) }
    }

    /// Resolves without failing: each problem is noted and disables what
    /// it concerns (a bad sampler disables traces, a bad metrics endpoint
    /// the OTLP metrics; a bad resource or propagator list is ignored).
    pub(crate) fn resolve_lenient(
        opts: &Options,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> (Settings, Problems) {
        let env = Env(lookup);
        let mut p = Problems::default();
        let strict = match opts.strict {
            Some(s) => s,
            None => match env.get("TELEMETRY_STRICT") {
                Some(v) => parse_bool("TELEMETRY_STRICT", &v).unwrap_or_else(|e| {
                    p.note(e);
                    false
                }),
                None => false,
            },
        };
        let enabled = match opts.enabled {
            Some(e) => e,
            None => {
                let mut on = true;
                for var in ["TELEMETRY_ENABLED", "OTEL_SDK_DISABLED"] {
                    if let Some(v) = env.get(var) {
                        match parse_bool(var, &v) {
                            Ok(b) => on &= if var == "OTEL_SDK_DISABLED" { !b } else { b },
                            Err(e) => {
                                // Unreadable: off, loudly (the safe side).
                                p.note(e);
                                on = false;
                            }
                        }
                    }
                }
                on
            }
        };

        // Resource: OTEL_RESOURCE_ATTRIBUTES, then the named variables, then code.
        let mut resource: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| {
            resource.retain(|(key, _)| key != k);
            resource.push((k.to_owned(), v));
        };
        if let Some(v) = env.get("OTEL_RESOURCE_ATTRIBUTES") {
            match parse_resource_attributes(&v) {
                Ok(pairs) => pairs.into_iter().for_each(|(k, val)| set(&k, val)),
                Err(e) => p.note(e),
            }
        }
        if let Some(v) = opts
            .service_version
            .clone()
            .or_else(|| env.get("SERVICE_VERSION"))
            .or_else(|| env.get("BFF_VERSION"))
        {
            set("service.version", v);
        }
        if let Some(v) = opts.environment.clone().or_else(|| env.get("ENVIRONMENT")) {
            set("deployment.environment", v);
        }
        for (k, v) in &opts.resource_attributes {
            set(k, v.clone());
        }
        let from_attrs = resource.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone());
        resource.retain(|(k, _)| k != "service.name");
        let service_name = opts
            .service_name
            .clone()
            .or_else(|| env.get("OTEL_SERVICE_NAME"))
            .or(from_attrs)
            .unwrap_or_else(|| "unknown_service".to_owned());

        let mut traces_target = None;
        let mut metrics = None;
        if enabled && opts.span_exporter.is_none() {
            match resolve_target(opts, &env, &TRACES) {
                Ok(t) => traces_target = t,
                Err(e) => {
                    p.note(e);
                    p.traces = true;
                }
            }
        }
        let mut logs = None;
        for (vars, exporter_var, slot, off) in [
            (&METRICS, "OTEL_METRICS_EXPORTER", &mut metrics, &mut p.metrics),
            (&LOGS, "OTEL_LOGS_EXPORTER", &mut logs, &mut p.logs),
        ] {
            if !enabled {
                continue;
            }
            match exporter_on(&env, exporter_var).and_then(|on| match on {
                true => resolve_target(opts, &env, vars),
                false => Ok(None),
            }) {
                Ok(t) => *slot = t,
                Err(e) => {
                    // As `Problems::note`: one line per distinct problem.
                    if !p.errors.iter().any(|x| x.to_string() == e.to_string()) {
                        p.errors.push(e);
                    }
                    *off = true;
                }
            }
        }

        let sampler = match opts.sampler {
            Some(s) => s,
            None => match env.get("OTEL_TRACES_SAMPLER") {
                Some(name) => SamplerConfig::parse(&name, env.get("OTEL_TRACES_SAMPLER_ARG").as_deref())
                    .unwrap_or_else(|e| {
                        p.note(e);
                        p.traces = true;
                        SamplerConfig::ParentBasedAlwaysOn
                    }),
                None => SamplerConfig::ParentBasedAlwaysOn,
            },
        };
        let mut num = |name: &'static str, code: Option<u64>, default: u64, traces: bool| -> u64 {
            if let Some(v) = code {
                return v;
            }
            match env.get(name).map(|v| parse_num::<u64>(name, &v)).transpose() {
                Ok(v) => v.unwrap_or(default),
                Err(e) => {
                    p.note(e);
                    if traces {
                        p.traces = true
                    } else {
                        p.metrics = true
                    }
                    default
                }
            }
        };
        let as_ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        let schedule_delay =
            Duration::from_millis(num("OTEL_BSP_SCHEDULE_DELAY", as_ms(opts.schedule_delay), 5_000, true));
        let max_queue_size =
            num("OTEL_BSP_MAX_QUEUE_SIZE", opts.max_queue_size.map(|n| n as u64), 2048, true) as usize;
        let max_export_batch_size =
            (num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", opts.max_export_batch_size.map(|n| n as u64), 512, true)
                as usize)
                .min(max_queue_size);
        let metric_interval = Duration::from_millis(num(
            "OTEL_METRIC_EXPORT_INTERVAL",
            as_ms(opts.metric_interval),
            60_000,
            false,
        ));
        let (env_json, env_shape) = match env.get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("json") => (true, LogShape::Seed),
            Some("json-extended") => (true, LogShape::Extended),
            Some("text") => (false, LogShape::Seed),
            Some(other) => {
                p.note(Error::config("LOG_FORMAT", other, "expected json, json-extended or text"));
                (true, LogShape::Seed)
            }
        };
        let json_logs = opts.json_logs.unwrap_or(env_json);
        let log_shape = opts.log_shape.unwrap_or(env_shape);
        let metrics_prefix = match opts.metrics_prefix.clone().or_else(|| env.get("METRICS_PREFIX")) {
            Some(prefix)
                if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    || prefix.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                p.note(Error::config("METRICS_PREFIX", &prefix, "expected [A-Za-z_][A-Za-z0-9_]*"));
                String::new()
            }
            Some(prefix) => prefix,
            None => String::new(),
        };
        let default_propagators = vec![PropagatorKind::TraceContext, PropagatorKind::Baggage];
        let propagators = match &opts.propagators {
            Some(list) => list.clone(),
            None => match env.get("OTEL_PROPAGATORS") {
                Some(v) => parse_propagators(&v).unwrap_or_else(|e| {
                    p.note(e);
                    default_propagators
                }),
                None => default_propagators,
            },
        };

        let exporter = if !enabled || p.traces {
            ExporterKind::Disabled
        } else if opts.span_exporter.is_some() {
            ExporterKind::Custom
        } else {
            match traces_target {
                Some(t) => ExporterKind::Otlp(t),
                None => ExporterKind::Console,
            }
        };
        if p.metrics || !enabled {
            metrics = None;
        }
        if p.logs || !enabled {
            logs = None;
        }
        let excluded =
            opts.excluded_urls.clone().unwrap_or_else(|| vec!["/health".to_owned(), "/metrics".to_owned()]);
        let settings = Settings {
            service_name,
            exporter,
            metrics,
            logs,
            resource,
            sampler,
            schedule_delay,
            max_queue_size,
            max_export_batch_size,
            metric_interval,
            excluded_urls: excluded.into(),
            baggage_attributes: opts.baggage_attributes.clone().into(),
            install_globals: opts.install_globals.unwrap_or(true),
            json_logs,
            log_shape,
            metrics_prefix,
            propagators,
            strict,
        };
        (settings, p)
    }

    pub(crate) fn batch_config(&self) -> opentelemetry_sdk::trace::BatchConfig {
        opentelemetry_sdk::trace::BatchConfigBuilder::default()
            .with_scheduled_delay(self.schedule_delay)
            .with_max_queue_size(self.max_queue_size)
            .with_max_export_batch_size(self.max_export_batch_size)
            .build()
    }

    /// Whether the server layer skips `path`.
    pub fn is_excluded(&self, path: &str) -> bool {
        is_excluded(&self.excluded_urls, path)
    }
}

pub(crate) fn is_excluded(excluded: &[String], path: &str) -> bool {
    excluded.iter().any(|e| {
        path.strip_prefix(e.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || e.ends_with('/'))
    })
}
