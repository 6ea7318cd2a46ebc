//! [`init`]: builds the providers from [`Settings`], and the [`Telemetry`]
//! handle every helper takes.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanProcessor};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{ExporterKind, Options, Protocol, Settings};
use crate::{ConsoleExporter, Error, Metrics};

/// The instrumentation scope name of every span this crate starts.
pub(crate) const SCOPE: &str = "sightline-sdk";

struct Inner {
    settings: Settings,
    tracer: Option<SdkTracer>,
    propagator: TextMapCompositePropagator,
    metrics: Metrics,
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

/// A handle on one service's telemetry: its tracer, propagator, metrics and
/// settings. Cheap to clone; pass it to the helpers.
///
/// A disabled handle (`TELEMETRY_ENABLED=false`) starts no spans, extracts
/// and injects nothing, and exports nothing; the Prometheus `/metrics`
/// families still count (scraping is separate from OTel export, as in the
/// seeds).
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("service", &self.inner.settings.service_name)
            .field("exporter", &self.inner.settings.exporter)
            .finish_non_exhaustive()
    }
}

/// Owns the providers: on drop, flushes pending spans and metrics and shuts
/// the exporters down. Keep it alive for the life of the service (bind it
/// in `main`). Derefs to [`Telemetry`].
///
/// Drop it from a multi-threaded Tokio runtime or outside any runtime: the
/// gRPC exporter needs the runtime's other threads to finish its last
/// export.
#[derive(Debug)]
pub struct Guard {
    telemetry: Telemetry,
}

impl Guard {
    /// A handle to clone into the helpers.
    pub fn telemetry(&self) -> Telemetry {
        self.telemetry.clone()
    }

    /// Exports everything buffered now (spans and metrics).
    pub fn flush(&self) {
        let i = &self.telemetry.inner;
        if let Some(p) = &i.tracer_provider {
            let _ = p.force_flush();
        }
        if let Some(m) = &i.meter_provider {
            let _ = m.force_flush();
        }
    }
}

impl Deref for Guard {
    type Target = Telemetry;
    fn deref(&self) -> &Telemetry {
        &self.telemetry
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let i = &self.telemetry.inner;
        if let Some(p) = &i.tracer_provider {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
        if let Some(m) = &i.meter_provider {
            let _ = m.force_flush();
            let _ = m.shutdown();
        }
    }
}

/// Copies the listed baggage entries of the parent context onto each span
/// as it starts ([`Options::baggage_attributes`]).
#[derive(Debug)]
struct BaggageAttributes {
    keys: Arc<[String]>,
}

impl SpanProcessor for BaggageAttributes {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        use opentelemetry::trace::Span as _;
        let baggage = cx.baggage();
        for k in self.keys.iter() {
            if let Some(v) = baggage.get(k.as_str()) {
                span.set_attribute(KeyValue::new(k.clone(), v.clone()));
            }
        }
    }
    fn on_end(&self, _span: SpanData) {}
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn resource(settings: &Settings) -> Resource {
    Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attributes(settings.resource.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
        .with_attributes([
            KeyValue::new("telemetry.sdk.name", "opentelemetry"),
            KeyValue::new("telemetry.sdk.language", "rust"),
            KeyValue::new("telemetry.sdk.version", "0.33.1"),
        ])
        .build()
}

fn span_exporter(endpoint: &str, protocol: Protocol) -> Result<opentelemetry_otlp::SpanExporter, Error> {
    let built = match protocol {
        Protocol::Grpc => {
            opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(otlp_protocol(protocol))
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .build(),
    };
    built.map_err(|source| Error::Exporter { signal: "traces", endpoint: endpoint.to_owned(), source })
}

fn metric_exporter(endpoint: &str, protocol: Protocol) -> Result<opentelemetry_otlp::MetricExporter, Error> {
    let built = match protocol {
        Protocol::Grpc => {
            opentelemetry_otlp::MetricExporter::builder().with_tonic().with_endpoint(endpoint).build()
        }
        Protocol::HttpProtobuf | Protocol::HttpJson => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(otlp_protocol(protocol))
            .with_endpoint(format!("{endpoint}/v1/metrics"))
            .build(),
    };
    built.map_err(|source| Error::Exporter { signal: "metrics", endpoint: endpoint.to_owned(), source })
}

fn otlp_protocol(p: Protocol) -> opentelemetry_otlp::Protocol {
    match p {
        Protocol::Grpc => opentelemetry_otlp::Protocol::Grpc,
        Protocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
        Protocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
    }
}

/// The one call: resolves `opts` against the environment, builds the
/// tracer and meter providers and the propagator (W3C trace context +
/// baggage), installs them and a `tracing` subscriber (JSON log lines with
/// the trace ids, `RUST_LOG` filter, spans bridged to OTel) unless
/// [`Options::install_globals`] is `false`, and returns the guard.
///
/// An OTLP endpoint that is down is not an error: the SDK retries and
/// drops, and the service keeps serving.
pub fn init(opts: Options) -> Result<Guard, Error> {
    init_with_env(opts, |k| std::env::var(k).ok())
}

/// [`init`] reading variables from `lookup` instead of the process
/// environment (tests, or configuration kept elsewhere).
pub fn init_with_env(mut opts: Options, lookup: impl Fn(&str) -> Option<String>) -> Result<Guard, Error> {
    let settings = Settings::resolve(&opts, lookup)?;
    let custom = opts.span_exporter.take();
    let telemetry = Telemetry::build(settings, custom)?;
    if telemetry.inner.settings.install_globals {
        telemetry.install_globals()?;
    }
    Ok(Guard { telemetry })
}

use crate::config::ProviderHook;

impl Telemetry {
    /// A handle with telemetry off: helpers pass through, `/metrics` still counts.
    pub fn disabled(service: impl Into<String>) -> Telemetry {
        let settings = match Settings::resolve(&Options::new(service).enabled(false), |_| None) {
            Ok(s) => s,
            // Unreachable: an empty environment has nothing to reject.
            Err(_) => return Telemetry::disabled("unknown_service"),
        };
        Telemetry {
            inner: Arc::new(Inner {
                settings,
                tracer: None,
                propagator: TextMapCompositePropagator::new(vec![]),
                metrics: Metrics::new(None),
                tracer_provider: None,
                meter_provider: None,
            }),
        }
    }

    fn build(settings: Settings, custom: Option<ProviderHook>) -> Result<Telemetry, Error> {
        if settings.exporter == ExporterKind::Disabled {
            let mut t = Telemetry::disabled(settings.service_name.clone());
            if let Some(inner) = Arc::get_mut(&mut t.inner) {
                inner.settings = settings;
            }
            return Ok(t);
        }
        let resource = resource(&settings);
        let mut builder = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(settings.sampler.to_sampler());
        if !settings.baggage_attributes.is_empty() {
            // First, so the attributes are on the span before exporters see it.
            builder =
                builder.with_span_processor(BaggageAttributes { keys: settings.baggage_attributes.clone() });
        }
        let batch = || settings.batch_config();
        let mut meter_provider = None;
        match &settings.exporter {
            ExporterKind::Otlp { endpoint, protocol } => {
                let exporter = span_exporter(endpoint, *protocol)?;
                builder = builder.with_span_processor(
                    BatchSpanProcessor::builder(exporter).with_batch_config(batch()).build(),
                );
                let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(metric_exporter(
                    endpoint, *protocol,
                )?)
                .with_interval(settings.metric_interval)
                .build();
                meter_provider =
                    Some(SdkMeterProvider::builder().with_resource(resource).with_reader(reader).build());
            }
            ExporterKind::Console => {
                let exporter = ConsoleExporter::stdout(settings.service_name.clone());
                builder = builder.with_span_processor(
                    BatchSpanProcessor::builder(exporter).with_batch_config(batch()).build(),
                );
            }
            ExporterKind::Custom => {
                if let Some(hook) = custom {
                    builder = hook(builder, &settings);
                }
            }
            ExporterKind::Disabled => {}
        }
        let provider = builder.build();
        let tracer = provider.tracer(SCOPE);
        // Console and custom exporters get OTel instruments without a
        // reader: recorded, never exported (Prometheus still renders them).
        let meter = match &meter_provider {
            Some(mp) => {
                use opentelemetry::metrics::MeterProvider as _;
                mp.meter(SCOPE)
            }
            None => opentelemetry::metrics::MeterProvider::meter(
                &opentelemetry::metrics::noop::NoopMeterProvider::new(),
                SCOPE,
            ),
        };
        Ok(Telemetry {
            inner: Arc::new(Inner {
                propagator: TextMapCompositePropagator::new(vec![
                    Box::new(TraceContextPropagator::new()),
                    Box::new(BaggagePropagator::new()),
                ]),
                metrics: Metrics::new(Some(meter)),
                tracer: Some(tracer),
                tracer_provider: Some(provider),
                meter_provider,
                settings,
            }),
        })
    }

    fn install_globals(&self) -> Result<(), Error> {
        let i = &self.inner;
        opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]));
        if let Some(p) = &i.tracer_provider {
            opentelemetry::global::set_tracer_provider(p.clone());
        }
        if let Some(m) = &i.meter_provider {
            opentelemetry::global::set_meter_provider(m.clone());
        }
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let otel = i.tracer.clone().map(|t| tracing_opentelemetry::layer().with_tracer(t));
        let (json, text) = if i.settings.json_logs {
            (Some(crate::logs::JsonLayer::new(i.settings.service_name.clone(), std::io::stderr)), None)
        } else {
            (None, Some(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)))
        };
        tracing_subscriber::registry()
            .with(filter)
            .with(otel)
            .with(json)
            .with(text)
            .try_init()
            .map_err(|_| Error::SubscriberAlreadySet)
    }

    /// The resolved settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// `service.name`.
    pub fn service_name(&self) -> &str {
        &self.inner.settings.service_name
    }

    /// Whether spans are started at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.tracer.is_some()
    }

    /// The tracer (for spans of your own), `None` when disabled.
    pub fn tracer(&self) -> Option<&SdkTracer> {
        self.inner.tracer.as_ref()
    }

    /// The metrics: Prometheus registry and OTel meter.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The propagator (W3C `traceparent`/`tracestate` and `baggage`); a
    /// no-op when disabled.
    pub fn propagator(&self) -> &TextMapCompositePropagator {
        &self.inner.propagator
    }

    /// Writes `cx` (span and baggage) into a carrier.
    pub fn inject(&self, cx: &Context, carrier: &mut dyn opentelemetry::propagation::Injector) {
        self.inner.propagator.inject_context(cx, carrier);
    }

    /// Reads a context (remote parent and baggage) from a carrier, on top
    /// of the current context.
    pub fn extract(&self, carrier: &dyn opentelemetry::propagation::Extractor) -> Context {
        self.inner.propagator.extract(carrier)
    }

    /// Exports everything buffered now (what [`Guard::flush`] does).
    pub fn flush(&self) {
        if let Some(p) = &self.inner.tracer_provider {
            let _ = p.force_flush();
        }
        if let Some(m) = &self.inner.meter_provider {
            let _ = m.force_flush();
        }
    }
}
