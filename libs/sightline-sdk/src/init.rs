//! [`init`]: builds the providers from [`Settings`], and the [`Telemetry`]
//! handle every helper takes.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanProcessor};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{ExporterKind, Options, Settings};
use crate::export::{Reporter, ReportingLogExporter, ReportingMetricExporter, ReportingSpanExporter};
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
    logger_provider: Option<SdkLoggerProvider>,
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
    problems: Vec<Error>,
}

impl Guard {
    /// What went wrong while setting telemetry up (outside strict mode
    /// these were logged, and the signals they concern are off).
    pub fn problems(&self) -> &[Error] {
        &self.problems
    }

    /// A handle to clone into the helpers.
    pub fn telemetry(&self) -> Telemetry {
        self.telemetry.clone()
    }

    /// Exports everything buffered now (spans, metrics, log records).
    pub fn flush(&self) {
        self.telemetry.flush();
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
        if let Some(l) = &i.logger_provider {
            let _ = l.force_flush();
            let _ = l.shutdown();
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

/// Targets whose events must not become exported log records: the
/// exporters' transports and the SDK's own export reports (they would
/// feed back into the export that produced them).
fn is_exporter_internal(target: &str) -> bool {
    const INTERNAL: &[&str] = &[
        "opentelemetry",
        "opentelemetry_sdk",
        "opentelemetry_otlp",
        "opentelemetry_http",
        "tonic",
        "h2",
        "hyper",
        "hyper_util",
        "reqwest",
        "sightline_sdk::export",
    ];
    INTERNAL
        .iter()
        .any(|p| target.strip_prefix(p).is_some_and(|rest| rest.is_empty() || rest.starts_with("::")))
}

fn resource(settings: &Settings) -> Resource {
    // Detected first: the environment and code override them.
    Resource::builder_empty()
        .with_attributes(crate::resource::detect())
        .with_attributes(settings.resource.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
        .with_service_name(settings.service_name.clone())
        .build()
}

/// The one call: resolves `opts` against the environment, builds the
/// tracer and meter providers and the propagator (`OTEL_PROPAGATORS`,
/// default W3C trace context + baggage), installs them and a `tracing`
/// subscriber (JSON log lines with the trace ids, `RUST_LOG` filter, spans
/// bridged to OTel, WARN+ events as span events) unless
/// [`Options::install_globals`] is `false`, logs where each signal goes,
/// and returns the guard.
///
/// Telemetry never stops the service: a bad setting, an unreadable TLS
/// file or an exporter that cannot be built is logged as an error and
/// disables the signal it concerns ([`Guard::problems`] lists them), and an
/// OTLP endpoint that is down is retried, dropped and reported as a
/// rate-limited warning. Only in strict mode ([`Options::strict`],
/// `TELEMETRY_STRICT=true`) does the first problem make `init` fail.
pub fn init(opts: Options) -> Result<Guard, Error> {
    init_with_env(opts, |k| std::env::var(k).ok())
}

/// [`init`] reading variables from `lookup` instead of the process
/// environment (tests, or configuration kept elsewhere).
pub fn init_with_env(mut opts: Options, lookup: impl Fn(&str) -> Option<String>) -> Result<Guard, Error> {
    let (settings, problems) = Settings::resolve_lenient(&opts, lookup);
    let mut problems = problems.errors;
    let strict = settings.strict;
    if strict && !problems.is_empty() {
        return Err(problems.remove(0));
    }
    let custom = opts.span_exporter.take();
    let telemetry = Telemetry::build(settings, custom, &mut problems);
    if strict && !problems.is_empty() {
        return Err(problems.remove(0));
    }
    if telemetry.inner.settings.install_globals
        && let Err(e) = telemetry.install_globals()
    {
        if strict {
            return Err(e);
        }
        problems.push(e);
    }
    telemetry.announce(&problems);
    Ok(Guard { telemetry, problems })
}

use crate::config::ProviderHook;

impl Telemetry {
    /// A handle with telemetry off: helpers pass through, `/metrics` still counts.
    pub fn disabled(service: impl Into<String>) -> Telemetry {
        let (settings, _) = Settings::resolve_lenient(&Options::new(service).enabled(false), |_| None);
        Telemetry::from_parts(settings, None, None, None, TextMapCompositePropagator::new(vec![]))
    }

    fn from_parts(
        settings: Settings,
        tracer_provider: Option<SdkTracerProvider>,
        meter_provider: Option<SdkMeterProvider>,
        meter: Option<opentelemetry::metrics::Meter>,
        propagator: TextMapCompositePropagator,
    ) -> Telemetry {
        Telemetry::with_logs(settings, tracer_provider, meter_provider, meter, propagator, None)
    }

    fn with_logs(
        settings: Settings,
        tracer_provider: Option<SdkTracerProvider>,
        meter_provider: Option<SdkMeterProvider>,
        meter: Option<opentelemetry::metrics::Meter>,
        propagator: TextMapCompositePropagator,
        logger_provider: Option<SdkLoggerProvider>,
    ) -> Telemetry {
        Telemetry {
            inner: Arc::new(Inner {
                tracer: tracer_provider.as_ref().map(|p| p.tracer(SCOPE)),
                metrics: Metrics::new(meter, &settings.metrics_prefix),
                propagator,
                tracer_provider,
                meter_provider,
                logger_provider,
                settings,
            }),
        }
    }

    /// Builds what `settings` asks for; an exporter that cannot be built
    /// is added to `problems` and its signal left off.
    fn build(mut settings: Settings, custom: Option<ProviderHook>, problems: &mut Vec<Error>) -> Telemetry {
        if settings.exporter == ExporterKind::Disabled
            && settings.metrics.is_none()
            && settings.logs.is_none()
        {
            let propagator = if problems.is_empty() {
                TextMapCompositePropagator::new(vec![])
            } else {
                // Off because of a problem, not by choice: keep passing
                // incoming context on, as an uninstrumented hop would not.
                crate::propagators::composite(&settings.propagators)
            };
            return Telemetry::from_parts(settings, None, None, None, propagator);
        }
        let resource = resource(&settings);
        let batch = settings.batch_config();
        let mut tracer_builder = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_sampler(settings.sampler.to_sampler());
        if !settings.baggage_attributes.is_empty() {
            // First, so the attributes are on the span before exporters see it.
            tracer_builder = tracer_builder
                .with_span_processor(BaggageAttributes { keys: settings.baggage_attributes.clone() });
        }
        let traces_on = match settings.exporter.clone() {
            ExporterKind::Otlp(target) => match crate::export::span_exporter(&target) {
                Ok(exporter) => {
                    let exporter = ReportingSpanExporter {
                        inner: exporter,
                        reporter: Reporter::new("traces", target.endpoint.clone()),
                    };
                    tracer_builder = tracer_builder.with_span_processor(
                        BatchSpanProcessor::builder(exporter).with_batch_config(batch).build(),
                    );
                    true
                }
                Err(e) => {
                    problems.push(e);
                    settings.exporter = ExporterKind::Disabled;
                    false
                }
            },
            ExporterKind::Console => {
                let exporter = ConsoleExporter::stdout(settings.service_name.clone());
                tracer_builder = tracer_builder.with_span_processor(
                    BatchSpanProcessor::builder(exporter).with_batch_config(batch).build(),
                );
                true
            }
            ExporterKind::Custom => {
                if let Some(hook) = custom {
                    tracer_builder = hook(tracer_builder, &settings);
                }
                true
            }
            ExporterKind::Disabled => false,
        };
        let mut meter_provider = None;
        if let Some(target) = settings.metrics.clone() {
            match crate::export::metric_exporter(&target) {
                Ok(exporter) => {
                    let exporter = ReportingMetricExporter {
                        inner: exporter,
                        reporter: Reporter::new("metrics", target.endpoint.clone()),
                    };
                    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
                        .with_interval(settings.metric_interval)
                        .build();
                    meter_provider = Some(
                        SdkMeterProvider::builder()
                            .with_resource(resource.clone())
                            .with_reader(reader)
                            .build(),
                    );
                }
                Err(e) => {
                    problems.push(e);
                    settings.metrics = None;
                }
            }
        }
        let mut logger_provider = None;
        if let Some(target) = settings.logs.clone() {
            match crate::export::log_exporter(&target) {
                Ok(exporter) => {
                    let exporter = ReportingLogExporter {
                        inner: exporter,
                        reporter: Reporter::new("logs", target.endpoint.clone()),
                    };
                    logger_provider = Some(
                        SdkLoggerProvider::builder()
                            .with_resource(resource)
                            .with_batch_exporter(exporter)
                            .build(),
                    );
                }
                Err(e) => {
                    problems.push(e);
                    settings.logs = None;
                }
            }
        }
        let tracer_provider = traces_on.then(|| tracer_builder.build());
        // Without OTLP metrics, OTel instruments record into a no-op
        // meter (Prometheus still renders the registry).
        let meter = meter_provider.as_ref().map(|mp| {
            use opentelemetry::metrics::MeterProvider as _;
            mp.meter(SCOPE)
        });
        let propagator = crate::propagators::composite(&settings.propagators);
        Telemetry::with_logs(settings, tracer_provider, meter_provider, meter, propagator, logger_provider)
    }

    /// Logs, once, where each signal goes and every problem found.
    fn announce(&self, problems: &[Error]) {
        let s = &self.inner.settings;
        for p in problems {
            tracing::error!(
                target: "sightline_sdk::init",
                service = %s.service_name,
                "telemetry problem (the service runs on; TELEMETRY_STRICT=true makes it fatal): {p}"
            );
        }
        let traces = match &s.exporter {
            ExporterKind::Otlp(t) => crate::export::describe(t),
            ExporterKind::Console => {
                "console (stdout; set OTEL_EXPORTER_OTLP_ENDPOINT to export over OTLP)".to_owned()
            }
            ExporterKind::Custom => "an exporter set in code".to_owned(),
            ExporterKind::Disabled if problems.is_empty() => "off".to_owned(),
            ExporterKind::Disabled => "off (see the error above)".to_owned(),
        };
        let metrics = match &s.metrics {
            Some(t) => format!("{} every {} ms", crate::export::describe(t), s.metric_interval.as_millis()),
            None => "Prometheus /metrics only".to_owned(),
        };
        let logs = match &s.logs {
            Some(t) => format!("stderr and {}", crate::export::describe(t)),
            None => "stderr".to_owned(),
        };
        let propagators: Vec<&str> = s.propagators.iter().map(|p| p.name()).collect();
        tracing::info!(
            target: "sightline_sdk::init",
            service = %s.service_name,
            "telemetry for {}: traces -> {traces}; metrics -> {metrics}; logs -> {logs}; propagators: {}",
            s.service_name,
            if propagators.is_empty() { "none".to_owned() } else { propagators.join(",") },
        );
    }

    fn install_globals(&self) -> Result<(), Error> {
        let i = &self.inner;
        opentelemetry::global::set_text_map_propagator(crate::propagators::composite(
            &i.settings.propagators,
        ));
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
            (
                Some(
                    crate::logs::JsonLayer::new(i.settings.service_name.clone(), std::io::stderr)
                        .with_shape(i.settings.log_shape),
                ),
                None,
            )
        } else {
            (None, Some(tracing_subscriber::fmt::layer().with_writer(std::io::stderr)))
        };
        // Events as OTLP log records, with the ids of the span they happen
        // in (tracing-opentelemetry makes the span's context current on
        // entry). Not the exporters' own events: a failing export would
        // log, export the log, fail again…
        let otlp_logs = i.logger_provider.as_ref().map(|p| {
            use tracing_subscriber::Layer as _;
            opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(p)
                .with_filter(tracing_subscriber::filter::filter_fn(|m| !is_exporter_internal(m.target())))
        });
        tracing_subscriber::registry()
            .with(filter)
            .with(otel)
            .with(crate::logs::SpanEventsLayer)
            .with(otlp_logs)
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
        // A handler's changed baggage travels on (crate::baggage).
        self.inner.propagator.inject_context(&crate::baggage::effective(cx), carrier);
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
        if let Some(l) = &self.inner.logger_provider {
            let _ = l.force_flush();
        }
    }

    /// The logger provider exporting `tracing` events over OTLP, when
    /// logs go there (for a bridge layer of your own when
    /// [`Options::install_globals`] is `false`).
    pub fn logger_provider(&self) -> Option<&SdkLoggerProvider> {
        self.inner.logger_provider.as_ref()
    }
}
