//! Options set in code, the environment variables the seeds use, and the
//! resolved [`Settings`] (code wins over the environment).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::trace::TracerProviderBuilder;

use crate::Error;

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

/// Where spans go.
#[derive(Clone, Debug, PartialEq)]
pub enum ExporterKind {
    /// No telemetry at all (`TELEMETRY_ENABLED=false`).
    Disabled,
    /// OTLP to a collector (or Sightline) at `endpoint`, a base URL.
    Otlp {
        /// Base URL, e.g. `http://127.0.0.1:4318`; `/v1/traces` is appended for HTTP.
        endpoint: String,
        /// Transport.
        protocol: Protocol,
    },
    /// No endpoint configured: one human-readable line per span on stdout.
    Console,
    /// A span exporter given in code ([`Options::span_exporter`]), e.g. the
    /// SDK's `InMemorySpanExporter` in tests; spans are exported as they end.
    Custom,
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
    pub(crate) span_exporter: Option<ProviderHook>,
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
    /// Resource attributes besides `service.name`, in order.
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

/// Parses `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-encoded).
pub(crate) fn parse_resource_attributes(v: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, val)) = pair.split_once('=') else {
            return Err(Error::config("OTEL_RESOURCE_ATTRIBUTES", v, format!("{pair:?} is not key=value")));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(Error::config("OTEL_RESOURCE_ATTRIBUTES", v, "empty key"));
        }
        out.push((k.to_owned(), percent_decode(val.trim())));
    }
    Ok(out)
}

fn endpoint_port(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split('/').next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}

impl Settings {
    /// Resolves `opts` against the process environment.
    pub fn from_env(opts: &Options) -> Result<Settings, Error> {
        Settings::resolve(opts, |k| std::env::var(k).ok())
    }

    /// Resolves `opts` against `lookup` (an environment), code first.
    ///
    /// The protocol, when neither set in code nor by
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, is `grpc` if the endpoint came from
    /// the seeds' `OTLP_ENDPOINT` or names port 4317 (that is how the
    /// seeds deploy it), and the spec's default `http/protobuf` otherwise.
    pub fn resolve(opts: &Options, lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, Error> {
        let env = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let enabled = match opts.enabled {
            Some(e) => e,
            None => env("TELEMETRY_ENABLED")
                .map(|v| parse_bool("TELEMETRY_ENABLED", &v))
                .transpose()?
                .unwrap_or(true),
        };

        // Resource: OTEL_RESOURCE_ATTRIBUTES, then the named variables, then code.
        let mut resource: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: String| {
            resource.retain(|(key, _)| key != k);
            resource.push((k.to_owned(), v));
        };
        if let Some(v) = env("OTEL_RESOURCE_ATTRIBUTES") {
            for (k, val) in parse_resource_attributes(&v)? {
                set(&k, val);
            }
        }
        if let Some(v) =
            opts.service_version.clone().or_else(|| env("SERVICE_VERSION")).or_else(|| env("BFF_VERSION"))
        {
            set("service.version", v);
        }
        if let Some(v) = opts.environment.clone().or_else(|| env("ENVIRONMENT")) {
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
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .or(from_attrs)
            .unwrap_or_else(|| "unknown_service".to_owned());

        let exporter = if !enabled {
            ExporterKind::Disabled
        } else if opts.span_exporter.is_some() {
            ExporterKind::Custom
        } else {
            let (endpoint, seed_var) = match &opts.endpoint {
                Some(e) => (Some(e.clone()), false),
                None => match env("OTLP_ENDPOINT") {
                    Some(e) => (Some(e), true),
                    None => (env("OTEL_EXPORTER_OTLP_ENDPOINT"), false),
                },
            };
            match endpoint {
                None => ExporterKind::Console,
                Some(endpoint) => {
                    let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
                    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                        return Err(Error::config(
                            "OTEL_EXPORTER_OTLP_ENDPOINT",
                            &endpoint,
                            "expected an http:// or https:// URL",
                        ));
                    }
                    let protocol = match opts.protocol {
                        Some(p) => p,
                        None => match env("OTEL_EXPORTER_OTLP_PROTOCOL") {
                            Some(p) => Protocol::parse(&p).ok_or_else(|| {
                                Error::config(
                                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                                    &p,
                                    "expected grpc, http/protobuf or http/json",
                                )
                            })?,
                            None if seed_var || endpoint_port(&endpoint) == Some(4317) => Protocol::Grpc,
                            None => Protocol::HttpProtobuf,
                        },
                    };
                    ExporterKind::Otlp { endpoint, protocol }
                }
            }
        };

        let sampler = match opts.sampler {
            Some(s) => s,
            None => match env("OTEL_TRACES_SAMPLER") {
                Some(name) => SamplerConfig::parse(&name, env("OTEL_TRACES_SAMPLER_ARG").as_deref())?,
                None => SamplerConfig::ParentBasedAlwaysOn,
            },
        };
        let ms = |name: &'static str, default: u64| -> Result<Duration, Error> {
            Ok(Duration::from_millis(env(name).map(|v| parse_num(name, &v)).transpose()?.unwrap_or(default)))
        };
        let schedule_delay = match opts.schedule_delay {
            Some(d) => d,
            None => ms("OTEL_BSP_SCHEDULE_DELAY", 5_000)?,
        };
        let max_queue_size = match opts.max_queue_size {
            Some(n) => n,
            None => env("OTEL_BSP_MAX_QUEUE_SIZE")
                .map(|v| parse_num("OTEL_BSP_MAX_QUEUE_SIZE", &v))
                .transpose()?
                .unwrap_or(2048),
        };
        let max_export_batch_size = match opts.max_export_batch_size {
            Some(n) => n,
            None => env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")
                .map(|v| parse_num("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &v))
                .transpose()?
                .unwrap_or(512)
                .min(max_queue_size),
        };
        let metric_interval = match opts.metric_interval {
            Some(d) => d,
            None => ms("OTEL_METRIC_EXPORT_INTERVAL", 60_000)?,
        };
        let json_logs = match opts.json_logs {
            Some(j) => j,
            None => match env("LOG_FORMAT").as_deref().map(str::trim) {
                None | Some("json") => true,
                Some("text") => false,
                Some(other) => return Err(Error::config("LOG_FORMAT", other, "expected json or text")),
            },
        };
        let excluded =
            opts.excluded_urls.clone().unwrap_or_else(|| vec!["/health".to_owned(), "/metrics".to_owned()]);
        Ok(Settings {
            service_name,
            exporter,
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
        })
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
