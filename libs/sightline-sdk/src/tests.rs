//! Unit tests: configuration from the environment, carriers, baggage, the
//! server layer, the client, PII rejection, logs, sampling; spans checked
//! through the SDK's in-memory exporter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};

use crate::config::{ExporterKind, Options, Protocol, SamplerConfig, Settings};
use crate::{Guard, init_with_env};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    move |k| map.get(k).cloned()
}

/// The traces endpoint and protocol of OTLP settings.
fn otlp(s: &Settings) -> (String, Protocol) {
    match &s.exporter {
        ExporterKind::Otlp(t) => (t.endpoint.clone(), t.protocol),
        other => panic!("not OTLP: {other:?}"),
    }
}

fn resolve(opts: Options, pairs: &[(&str, &str)]) -> Settings {
    Settings::resolve(&opts, env(pairs)).expect("valid settings")
}

/// A handle exporting to a fresh in-memory exporter, no globals.
fn memory(service: &str) -> (Guard, InMemorySpanExporter) {
    memory_with(Options::new(service), &[])
}

fn memory_with(opts: Options, pairs: &[(&str, &str)]) -> (Guard, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let guard =
        init_with_env(opts.span_exporter(exporter.clone()).install_globals(false), env(pairs)).expect("init");
    (guard, exporter)
}

fn spans(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
    exporter.get_finished_spans().expect("finished spans")
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

mod config {
    use super::*;

    #[test]
    fn otlp_endpoint_wins_over_the_otel_variable_and_means_grpc_as_in_the_seeds() {
        let s = resolve(
            Options::default(),
            &[
                ("OTLP_ENDPOINT", "http://collector:4317"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4318"),
            ],
        );
        assert_eq!(otlp(&s), ("http://collector:4317".to_owned(), Protocol::Grpc));
    }

    #[test]
    fn otel_endpoint_defaults_to_http_protobuf_and_port_4317_to_grpc() {
        let s = resolve(Options::default(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]);
        assert_eq!(otlp(&s), ("http://127.0.0.1:4318/v1/traces".to_owned(), Protocol::HttpProtobuf));
        let s = resolve(Options::default(), &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")]);
        assert_eq!(otlp(&s), ("http://127.0.0.1:4317".to_owned(), Protocol::Grpc));
    }

    #[test]
    fn protocol_variable_is_honoured_and_checked() {
        for (name, p) in [
            ("grpc", Protocol::Grpc),
            ("http/protobuf", Protocol::HttpProtobuf),
            ("http/json", Protocol::HttpJson),
        ] {
            let s = resolve(
                Options::default(),
                &[("OTLP_ENDPOINT", "http://c:4317"), ("OTEL_EXPORTER_OTLP_PROTOCOL", name)],
            );
            let url = if p == Protocol::Grpc { "http://c:4317" } else { "http://c:4317/v1/traces" };
            assert_eq!(otlp(&s), (url.to_owned(), p));
        }
        let err = Settings::resolve(
            &Options::default(),
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")]),
        )
        .expect_err("unknown protocol");
        assert!(err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{err}");
        let err =
            Settings::resolve(&Options::default(), env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")]))
                .expect_err("no scheme");
        assert!(err.to_string().contains("http://"), "{err}");
    }

    #[test]
    fn per_signal_endpoints_are_used_as_given_and_stand_alone() {
        // The traces variable alone: traces over OTLP (not the console),
        // metrics only on /metrics.
        let s = resolve(
            Options::new("svc"),
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://tempo:4318/custom/traces")],
        );
        assert_eq!(otlp(&s), ("http://tempo:4318/custom/traces".to_owned(), Protocol::HttpProtobuf));
        assert_eq!(s.metrics, None);
        // The base variable: /v1/traces and /v1/metrics appended; a
        // per-signal protocol for metrics only.
        let s = resolve(
            Options::new("svc"),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4317"),
                ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ],
        );
        assert_eq!(otlp(&s), ("http://c:4318/v1/traces".to_owned(), Protocol::HttpProtobuf));
        let m = s.metrics.expect("metrics target");
        assert_eq!((m.endpoint.as_str(), m.protocol), ("http://m:4317", Protocol::Grpc));
        let s = resolve(Options::new("svc"), &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]);
        assert_eq!(s.metrics.expect("metrics").endpoint, "http://c:4318/v1/metrics");
    }

    #[test]
    fn logs_go_where_traces_go_unless_told_otherwise() {
        let s = resolve(Options::new("svc"), &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")]);
        let l = s.logs.expect("logs target");
        assert_eq!((l.endpoint.as_str(), l.protocol), ("http://c:4318/v1/logs", Protocol::HttpProtobuf));
        // The seeds' gRPC endpoint: the same port for every signal.
        let s = resolve(Options::new("svc"), &[("OTLP_ENDPOINT", "http://c:4317")]);
        assert_eq!(s.logs.expect("logs").endpoint, "http://c:4317");
        let s = resolve(
            Options::new("svc"),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://l:9000/ingest"),
                ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
            ],
        );
        let l = s.logs.expect("logs");
        assert_eq!((l.endpoint.as_str(), l.compression), ("http://l:9000/ingest", crate::Compression::Gzip));
        let s = resolve(
            Options::new("svc"),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_LOGS_EXPORTER", "none"),
                ("OTEL_METRICS_EXPORTER", "none"),
            ],
        );
        assert_eq!((&s.logs, &s.metrics), (&None, &None));
        assert_eq!(otlp(&s).0, "http://c:4318/v1/traces");
        // No endpoint: nothing exported, JSON lines only.
        assert_eq!(resolve(Options::new("svc"), &[]).logs, None);
        // An unknown exporter name is a problem that turns that signal off.
        let err = Settings::resolve(
            &Options::new("svc"),
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_LOGS_EXPORTER", "loki")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("OTEL_LOGS_EXPORTER"), "{err}");
    }

    #[test]
    fn headers_timeout_compression_and_tls_files() {
        let s = resolve(
            Options::new("svc").header("x-team", "auth"),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20abc,x-team=core"),
                ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=acme"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700"),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/client.key"),
            ],
        );
        let ExporterKind::Otlp(t) = &s.exporter else { panic!("{:?}", s.exporter) };
        assert_eq!(
            t.headers,
            vec![
                ("Authorization".to_owned(), "Bearer abc".to_owned()),
                ("x-tenant".to_owned(), "acme".to_owned()),
                ("x-team".to_owned(), "auth".to_owned()),
            ],
            "code wins over the variables, the signal's over the generic one"
        );
        assert_eq!(t.timeout, std::time::Duration::from_millis(2500));
        assert_eq!(t.compression, crate::Compression::Gzip);
        assert_eq!(t.tls.certificate.as_deref(), Some(std::path::Path::new("/etc/ca.pem")));
        assert_eq!(t.tls.client_key.as_deref(), Some(std::path::Path::new("/etc/client.key")));
        let m = s.metrics.as_ref().expect("metrics");
        assert_eq!(m.timeout, std::time::Duration::from_millis(700));
        assert!(!m.headers.iter().any(|(k, _)| k == "x-tenant"), "traces headers stay on traces");
        for (var, value, hidden) in [
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", false),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", false),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization", true),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem", false),
        ] {
            let err = Settings::resolve(
                &Options::new("svc"),
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), (var, value)]),
            )
            .expect_err(var);
            let msg = err.to_string();
            assert!(msg.contains(var), "{msg}");
            assert_eq!(msg.contains(value), !hidden, "header values are never echoed: {msg}");
        }
    }

    #[test]
    fn otel_sdk_disabled_and_propagators() {
        let s = resolve(
            Options::new("svc"),
            &[("OTEL_SDK_DISABLED", "true"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")],
        );
        assert_eq!(s.exporter, ExporterKind::Disabled);
        assert_eq!(s.metrics, None);
        let s = resolve(Options::new("svc"), &[("OTEL_SDK_DISABLED", "false")]);
        assert_eq!(s.exporter, ExporterKind::Console);
        use crate::PropagatorKind::*;
        assert_eq!(resolve(Options::new("svc"), &[]).propagators, vec![TraceContext, Baggage]);
        assert_eq!(
            resolve(Options::new("svc"), &[("OTEL_PROPAGATORS", "b3multi, jaeger,tracecontext,b3")])
                .propagators,
            vec![B3Multi, Jaeger, TraceContext, B3]
        );
        assert!(resolve(Options::new("svc"), &[("OTEL_PROPAGATORS", "none")]).propagators.is_empty());
        let err = Settings::resolve(&Options::new("svc"), env(&[("OTEL_PROPAGATORS", "tracecontext,xray")]))
            .expect_err("unknown propagator");
        assert!(err.to_string().contains("xray"), "{err}");
    }

    #[test]
    fn a_bad_setting_disables_its_signal_and_the_app_runs_on_unless_strict() {
        let bad_sampler =
            [("OTEL_TRACES_SAMPLER", "sometimes"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")];
        let guard = init_with_env(Options::new("svc").install_globals(false), env(&bad_sampler))
            .expect("not strict: init succeeds");
        assert!(!guard.is_enabled(), "traces off");
        assert_eq!(guard.problems().len(), 1);
        assert!(guard.problems()[0].to_string().contains("OTEL_TRACES_SAMPLER"));
        assert!(guard.settings().metrics.is_some(), "metrics unaffected");
        let err = init_with_env(Options::new("svc").install_globals(false).strict(true), env(&bad_sampler))
            .expect_err("strict");
        assert!(err.to_string().contains("OTEL_TRACES_SAMPLER"), "{err}");
        let mut strict_env = bad_sampler.to_vec();
        strict_env.push(("TELEMETRY_STRICT", "true"));
        assert!(init_with_env(Options::new("svc").install_globals(false), env(&strict_env)).is_err());
        // An unreadable CA file: found when the exporter is built.
        let tls = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:9"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
        ];
        let guard = init_with_env(Options::new("svc").install_globals(false), env(&tls)).expect("runs on");
        assert!(!guard.is_enabled());
        assert!(
            guard.problems().iter().any(|p| p.to_string().contains("/nonexistent/ca.pem")),
            "{:?}",
            guard.problems()
        );
        assert!(init_with_env(Options::new("svc").install_globals(false).strict(true), env(&tls)).is_err());
    }

    #[test]
    fn grpc_outside_a_tokio_runtime_is_a_problem_not_a_panic() {
        let guard = init_with_env(
            Options::new("svc").install_globals(false),
            env(&[("OTLP_ENDPOINT", "http://127.0.0.1:9")]),
        )
        .expect("runs on");
        assert!(!guard.is_enabled());
        assert!(guard.problems()[0].to_string().contains("Tokio runtime"), "{:?}", guard.problems());
    }

    #[test]
    fn gzip_and_https_exporters_build() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let _g = rt.enter();
        for protocol in ["grpc", "http/protobuf", "http/json"] {
            let guard = init_with_env(
                Options::new("svc").install_globals(false),
                env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:9"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                    ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                ]),
            )
            .expect("init");
            assert!(guard.problems().is_empty(), "{protocol}: {:?}", guard.problems());
            assert!(guard.is_enabled());
            drop(guard);
        }
    }

    #[test]
    fn no_endpoint_falls_back_to_the_console() {
        assert_eq!(resolve(Options::new("svc"), &[]).exporter, ExporterKind::Console);
        // an empty variable counts as unset
        assert_eq!(
            resolve(Options::new("svc"), &[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).exporter,
            ExporterKind::Console
        );
    }

    #[test]
    fn console_fallback_builds_a_working_handle() {
        let guard = init_with_env(Options::new("svc").install_globals(false), env(&[])).expect("init");
        assert_eq!(guard.settings().exporter, ExporterKind::Console);
        assert!(guard.is_enabled());
    }

    #[test]
    fn telemetry_enabled_false_disables_everything() {
        let s = resolve(
            Options::new("svc"),
            &[("TELEMETRY_ENABLED", "false"), ("OTLP_ENDPOINT", "http://c:4317")],
        );
        assert_eq!(s.exporter, ExporterKind::Disabled);
        let s = resolve(Options::new("svc"), &[("TELEMETRY_ENABLED", "0")]);
        assert_eq!(s.exporter, ExporterKind::Disabled);
        let err = Settings::resolve(&Options::new("svc"), env(&[("TELEMETRY_ENABLED", "maybe")]))
            .expect_err("bad bool");
        assert!(err.to_string().contains("TELEMETRY_ENABLED"), "{err}");
        let guard =
            init_with_env(Options::new("svc").install_globals(false), env(&[("TELEMETRY_ENABLED", "false")]))
                .expect("init");
        assert!(!guard.is_enabled());
        assert!(guard.tracer().is_none());
    }

    #[test]
    fn code_overrides_the_environment() {
        let s = resolve(
            Options::new("from-code")
                .enabled(true)
                .endpoint("http://code:4318")
                .protocol(Protocol::HttpJson)
                .environment("prod"),
            &[
                ("TELEMETRY_ENABLED", "false"),
                ("OTEL_SERVICE_NAME", "from-env"),
                ("OTLP_ENDPOINT", "http://env:4317"),
                ("ENVIRONMENT", "dev"),
            ],
        );
        assert_eq!(s.service_name, "from-code");
        assert_eq!(otlp(&s), ("http://code:4318/v1/traces".to_owned(), Protocol::HttpJson));
        assert!(s.resource.contains(&("deployment.environment".into(), "prod".into())));
    }

    #[test]
    fn resource_from_the_seed_variables() {
        let s = resolve(
            Options::default(),
            &[
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=bff,team=auth%20core, region = eu "),
                ("BFF_VERSION", "1.0.0"),
                ("ENVIRONMENT", "development"),
            ],
        );
        assert_eq!(s.service_name, "bff");
        assert_eq!(
            s.resource,
            vec![
                ("team".to_owned(), "auth core".to_owned()),
                ("region".to_owned(), "eu".to_owned()),
                ("service.version".to_owned(), "1.0.0".to_owned()),
                ("deployment.environment".to_owned(), "development".to_owned()),
            ]
        );
        // SERVICE_VERSION wins over BFF_VERSION; OTEL_SERVICE_NAME over the attribute
        let s = resolve(
            Options::default(),
            &[
                ("SERVICE_VERSION", "2"),
                ("BFF_VERSION", "1"),
                ("OTEL_SERVICE_NAME", "x"),
                ("OTEL_RESOURCE_ATTRIBUTES", "service.name=y"),
            ],
        );
        assert_eq!(s.service_name, "x");
        assert!(s.resource.contains(&("service.version".into(), "2".into())));
        assert_eq!(resolve(Options::default(), &[]).service_name, "unknown_service");
        assert!(
            Settings::resolve(&Options::default(), env(&[("OTEL_RESOURCE_ATTRIBUTES", "novalue")])).is_err()
        );
    }

    #[test]
    fn sampler_selection_from_the_environment() {
        let cases: &[(&str, Option<&str>, SamplerConfig)] = &[
            ("always_on", None, SamplerConfig::AlwaysOn),
            ("always_off", None, SamplerConfig::AlwaysOff),
            ("traceidratio", Some("0.25"), SamplerConfig::TraceIdRatio(0.25)),
            ("traceidratio", None, SamplerConfig::TraceIdRatio(1.0)),
            ("parentbased_always_on", None, SamplerConfig::ParentBasedAlwaysOn),
            ("parentbased_always_off", None, SamplerConfig::ParentBasedAlwaysOff),
            ("parentbased_traceidratio", Some("0.1"), SamplerConfig::ParentBasedTraceIdRatio(0.1)),
        ];
        for (name, arg, want) in cases {
            let mut pairs = vec![("OTEL_TRACES_SAMPLER", *name)];
            if let Some(a) = arg {
                pairs.push(("OTEL_TRACES_SAMPLER_ARG", a));
            }
            assert_eq!(resolve(Options::default(), &pairs).sampler, *want, "{name} {arg:?}");
        }
        assert_eq!(resolve(Options::default(), &[]).sampler, SamplerConfig::ParentBasedAlwaysOn);
        for bad in [
            &[("OTEL_TRACES_SAMPLER", "sometimes")][..],
            &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1.5")],
        ] {
            assert!(Settings::resolve(&Options::default(), env(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_sampler_from_the_environment_is_the_one_used() {
        let (off, exp_off) = memory_with(Options::new("s"), &[("OTEL_TRACES_SAMPLER", "always_off")]);
        let (on, exp_on) = memory_with(
            Options::new("s"),
            &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1")],
        );
        for t in [&off, &on] {
            for _ in 0..20 {
                crate::spans::start(t, "x", SpanKind::Internal, &Context::new(), vec![]).span().end();
            }
        }
        assert_eq!(spans(&exp_off).len(), 0);
        assert_eq!(spans(&exp_on).len(), 20);
        // ratio 0 samples nothing, ratio between samples some (by trace id)
        let (none, exp_none) = memory_with(
            Options::new("s"),
            &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0")],
        );
        let (half, exp_half) = memory_with(
            Options::new("s"),
            &[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "0.5")],
        );
        for t in [&none, &half] {
            for _ in 0..400 {
                crate::spans::start(t, "x", SpanKind::Internal, &Context::new(), vec![]).span().end();
            }
        }
        assert_eq!(spans(&exp_none).len(), 0);
        let n = spans(&exp_half).len();
        assert!((100..300).contains(&n), "ratio 0.5 kept {n} of 400");
    }

    #[test]
    fn batch_processor_settings_from_the_environment() {
        let s = resolve(
            Options::default(),
            &[
                ("OTEL_BSP_SCHEDULE_DELAY", "250"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
            ],
        );
        assert_eq!(s.schedule_delay, std::time::Duration::from_millis(250));
        assert_eq!(s.max_queue_size, 100);
        assert_eq!(s.max_export_batch_size, 100, "a batch never exceeds the queue");
        assert!(Settings::resolve(&Options::default(), env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "-1")])).is_err());
    }

    #[test]
    fn excluded_urls_match_the_path_and_below_only() {
        let s = resolve(Options::default(), &[]);
        assert!(s.is_excluded("/health"));
        assert!(s.is_excluded("/health/live"));
        assert!(s.is_excluded("/metrics"));
        assert!(!s.is_excluded("/healthz"));
        assert!(!s.is_excluded("/api/health"));
        let s = resolve(Options::default().excluded_urls(["/internal"]), &[]);
        assert!(s.is_excluded("/internal/x"));
        assert!(!s.is_excluded("/health"));
    }
}

mod console {
    use super::*;
    use opentelemetry_sdk::trace::SpanExporter as _;

    #[test]
    fn one_readable_line_per_span() {
        let (t, exp) = memory("svc");
        let cx = crate::spans::start(
            &t,
            "GET /orders/{id}",
            SpanKind::Server,
            &Context::new(),
            vec![KeyValue::new("http.route", "/orders/{id}")],
        );
        cx.span().set_status(Status::error("boom"));
        cx.span().end();
        let span = spans(&exp).remove(0);
        let sink: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
        let console = crate::ConsoleExporter::to_writer("svc", sink.clone());
        futures_executor_block_on(console.export(vec![span.clone()])).expect("export");
        let text = String::from_utf8(sink.lock().expect("sink").clone()).expect("utf8");
        assert_eq!(text.lines().count(), 1);
        assert!(text.starts_with("[svc] server \"GET /orders/{id}\" trace="), "{text}");
        assert!(text.contains(&span.span_context.trace_id().to_string()), "{text}");
        assert!(text.contains("ERROR(boom)"), "{text}");
        assert!(text.contains("http.route=/orders/{id}"), "{text}");
    }

    fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }
}

mod carriers {
    #[allow(unused_imports)] // used by the feature-gated carriers
    use opentelemetry::propagation::Extractor as _;

    use super::*;

    /// Starts a span with baggage, injects with `inject`, extracts with
    /// `extract`, and checks the remote parent and the baggage came through.
    fn round_trip(
        inject: impl FnOnce(&crate::Telemetry, &Context),
        extract: impl FnOnce(&crate::Telemetry) -> Context,
    ) {
        let (t, exp) = memory("carrier");
        let parent = crate::baggage::Baggage::new([("tenant", "acme"), ("user", "u 1")]).context();
        let cx = crate::spans::start(&t, "producer", SpanKind::Producer, &parent, vec![]);
        inject(&t, &cx);
        let got = extract(&t);
        let remote = got.span().span_context().clone();
        let sent = cx.span().span_context().clone();
        assert!(remote.is_valid() && remote.is_remote());
        assert_eq!(remote.trace_id(), sent.trace_id());
        assert_eq!(remote.span_id(), sent.span_id());
        assert!(remote.is_sampled());
        let b = crate::baggage::CurrentBaggage::from_context(&got);
        assert_eq!(b.get("tenant"), Some("acme"));
        assert_eq!(b.get("user"), Some("u 1"));
        // a child started from the extracted context continues the trace
        let child = crate::spans::start(&t, "consumer", SpanKind::Consumer, &got, vec![]);
        child.span().end();
        cx.span().end();
        let done = spans(&exp);
        let consumer = done.iter().find(|s| s.name == "consumer").expect("consumer span");
        assert_eq!(consumer.parent_span_id, sent.span_id());
        assert_eq!(consumer.span_context.trace_id(), sent.trace_id());
    }

    #[test]
    fn http_headers() {
        let mut headers = http::HeaderMap::new();
        let slot = Arc::new(Mutex::new(http::HeaderMap::new()));
        let s2 = slot.clone();
        round_trip(
            |t, cx| {
                t.inject(cx, &mut crate::propagation::HeaderInjector(&mut headers));
                assert!(headers.contains_key("traceparent") && headers.contains_key("baggage"));
                *s2.lock().expect("slot") = headers.clone();
            },
            |t| t.extract(&crate::propagation::HeaderExtractor(&slot.lock().expect("slot"))),
        );
    }

    #[test]
    fn hash_map() {
        let slot = Arc::new(Mutex::new(HashMap::<String, String>::new()));
        let s2 = slot.clone();
        round_trip(
            |t, cx| t.inject(cx, &mut *s2.lock().expect("slot")),
            |t| t.extract(&*slot.lock().expect("slot")),
        );
    }

    #[cfg(feature = "nats")]
    #[test]
    fn nats_headers() {
        let slot = Arc::new(Mutex::new(async_nats::HeaderMap::new()));
        let s2 = slot.clone();
        round_trip(
            |t, cx| t.inject(cx, &mut crate::propagation::NatsInjector(&mut s2.lock().expect("slot"))),
            |t| t.extract(&crate::propagation::NatsExtractor(&slot.lock().expect("slot"))),
        );
        // other casings are found too
        let mut h = async_nats::HeaderMap::new();
        h.insert("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let x = crate::propagation::NatsExtractor(&h);
        assert_eq!(x.get("traceparent"), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    }

    #[cfg(feature = "amqp")]
    #[test]
    fn amqp_field_table() {
        use amq_protocol_types::{AMQPValue, FieldTable, ShortString};
        let slot = Arc::new(Mutex::new(FieldTable::default()));
        let s2 = slot.clone();
        round_trip(
            |t, cx| t.inject(cx, &mut crate::propagation::AmqpInjector(&mut s2.lock().expect("slot"))),
            |t| t.extract(&crate::propagation::AmqpExtractor(&slot.lock().expect("slot"))),
        );
        let table = slot.lock().expect("slot").clone();
        assert!(matches!(
            table.inner().get(&ShortString::from("traceparent")),
            Some(AMQPValue::LongString(_))
        ));
        // short strings written by other clients are read too
        let mut t2 = FieldTable::default();
        t2.insert("baggage".into(), AMQPValue::ShortString("k=v".into()));
        assert_eq!(crate::propagation::AmqpExtractor(&t2).get("baggage"), Some("k=v"));
        assert_eq!(crate::propagation::AmqpExtractor(&t2).keys(), vec!["baggage"]);
    }

    #[cfg(feature = "kafka")]
    #[test]
    fn kafka_headers() {
        let slot = Arc::new(Mutex::new(vec![("traceparent".to_owned(), b"stale".to_vec())]));
        let s2 = slot.clone();
        round_trip(
            |t, cx| t.inject(cx, &mut crate::propagation::KafkaInjector(&mut s2.lock().expect("slot"))),
            |t| t.extract(&crate::propagation::KafkaExtractor(&slot.lock().expect("slot"))),
        );
        let headers = slot.lock().expect("slot").clone();
        assert_eq!(headers.iter().filter(|(k, _)| k == "traceparent").count(), 1, "injection replaces");
        let x = crate::propagation::KafkaExtractor(&[
            ("a".to_owned(), vec![0xff]),
            ("b".to_owned(), b"1".to_vec()),
        ]);
        assert_eq!(x.get("a"), None, "non-UTF-8 values are not read");
        assert_eq!(x.get("B"), Some("1"));
    }

    #[test]
    fn a_disabled_handle_injects_nothing() {
        let t = crate::Telemetry::disabled("off");
        let mut map = HashMap::new();
        let cx = crate::baggage::Baggage::new([("k", "v")]).context();
        t.inject(&cx, &mut map);
        assert!(map.is_empty());
    }
}

mod baggage {
    use super::*;
    use crate::baggage::{Baggage, CurrentBaggage};

    #[test]
    fn to_headers_and_back() {
        let mut headers = HashMap::new();
        Baggage::new([("hello", "world"), ("user-id", "1,2 x;y")]).to_headers(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(!headers["baggage"].contains(' '), "values are percent-encoded on the wire: {headers:?}");
        let b = CurrentBaggage::from_headers(&headers);
        assert_eq!(b.get("hello"), Some("world"));
        assert_eq!(b.get("user-id"), Some("1,2 x;y"), "{headers:?}");
    }

    #[test]
    fn set_remove_clear_like_faststream() {
        let _g = Baggage::new([("hello", "world")]).attach();
        let mut b = CurrentBaggage::current();
        assert_eq!(b.get_all().len(), 1);
        b.remove("hello");
        b.set("user-id", "1");
        b.set("request-id", "UUID");
        assert_eq!(b.get("user-id"), Some("1"));
        {
            let _g2 = b.attach();
            let next = CurrentBaggage::current();
            assert_eq!(next.get_all().keys().collect::<Vec<_>>(), vec!["request-id", "user-id"]);
            let mut next = next;
            next.clear();
            let _g3 = next.attach();
            assert!(CurrentBaggage::current().get_all().is_empty());
        }
        // detached: the original is current again
        assert_eq!(CurrentBaggage::current().get("hello"), Some("world"));
    }

    #[test]
    fn stop_propagation_keeps_the_trace_but_drops_the_baggage() {
        let (t, _exp) = memory("b");
        let parent = Baggage::new([("tenant", "acme")]).context();
        let cx = crate::spans::start(&t, "s", SpanKind::Internal, &parent, vec![]);
        let _g = cx.attach();
        let mut with = HashMap::new();
        t.inject(&Context::current(), &mut with);
        assert!(with.contains_key("baggage") && with.contains_key("traceparent"));
        let _stop = crate::baggage::stop_propagation();
        let mut without = HashMap::new();
        t.inject(&Context::current(), &mut without);
        assert!(without.contains_key("traceparent"));
        assert!(!without.contains_key("baggage"), "{without:?}");
        // cleared entries stop it as well
        let mut cleared = CurrentBaggage::from_context(&parent);
        cleared.clear();
        let mut none = HashMap::new();
        t.inject(&cleared.context(), &mut none);
        assert!(!none.contains_key("baggage"));
    }

    #[tokio::test]
    async fn baggage_changed_in_a_handler_travels_on_without_attach() {
        let (t, exp) = memory_with(Options::new("h").baggage_attributes(["tenant", "step"]), &[]);
        let mut first = HashMap::new();
        let cx = Baggage::new([("tenant", "acme"), ("hello", "world")]).context();
        opentelemetry::context::FutureExt::with_context(
            async {
                let op = crate::messaging::Operation::publish(&t, "rabbitmq", "first");
                op.inject(&mut first);
                op.end(&Ok::<(), String>(()));
            },
            cx,
        )
        .await;
        // The handler of "first" changes the baggage and publishes to "second".
        let parent = t.extract(&first);
        let second = crate::messaging::Operation::process(&t, "rabbitmq", "first", &parent)
            .run(async {
                let mut b = CurrentBaggage::current();
                b.remove("hello");
                b.set("step", "2");
                // no attach: the next publish carries the change
                let op = crate::messaging::Operation::publish(&t, "rabbitmq", "second");
                let mut headers = HashMap::new();
                op.inject(&mut headers);
                op.end(&Ok::<(), String>(()));
                Ok::<_, String>(headers)
            })
            .await
            .expect("handler");
        let seen = CurrentBaggage::from_headers(&second);
        assert_eq!(seen.get("step"), Some("2"));
        assert_eq!(seen.get("tenant"), Some("acme"));
        assert_eq!(seen.get("hello"), None, "removed in the handler");
        let done = spans(&exp);
        let publish2 = done.iter().find(|s| s.name == "publish second").expect("publish span");
        assert_eq!(attr_str(publish2, "step").as_deref(), Some("2"), "new spans see the change too");
        // A clear in the handler stops the baggage downstream.
        let third = crate::messaging::Operation::process(&t, "rabbitmq", "second", &t.extract(&second))
            .run(async {
                CurrentBaggage::current().clear();
                let mut headers = HashMap::new();
                crate::messaging::Operation::publish(&t, "rabbitmq", "third").inject(&mut headers);
                Ok::<_, String>(headers)
            })
            .await
            .expect("handler");
        assert!(!third.contains_key("baggage"), "{third:?}");
        assert!(third.contains_key("traceparent"));
    }

    #[tokio::test]
    async fn a_message_without_context_gets_a_creation_span() {
        let (t, exp) = memory("c");
        crate::messaging::Operation::process(
            &t,
            "rabbitmq",
            "orders",
            &t.extract(&HashMap::<String, String>::new()),
        )
        .run(async { Ok::<_, String>(()) })
        .await
        .expect("ok");
        let done = spans(&exp);
        let create = done.iter().find(|s| s.name == "create orders").expect("creation span");
        let process = done.iter().find(|s| s.name == "process orders").expect("process span");
        assert_eq!(create.span_kind, SpanKind::Producer);
        assert_eq!(attr_str(create, "messaging.operation.type").as_deref(), Some("create"));
        assert_eq!(process.parent_span_id, create.span_context.span_id());
        assert_eq!(process.span_context.trace_id(), create.span_context.trace_id());
    }

    #[test]
    fn batch_merges_baggage_and_keeps_each_message_own() {
        let (t, exp) = memory("batch");
        let producer = |entries: &[(&str, &str)]| {
            let parent = Baggage::new(entries.iter().copied()).context();
            let cx = crate::spans::start(&t, "publish", SpanKind::Producer, &parent, vec![]);
            let mut headers = HashMap::new();
            t.inject(&cx, &mut headers);
            cx.span().end();
            t.extract(&headers)
        };
        let m1 = producer(&[("tenant", "acme"), ("a", "1")]);
        let m2 = producer(&[("tenant", "globex"), ("b", "2")]);
        let op = crate::messaging::Operation::process_batch(&t, "kafka", "orders", &[m1.clone(), m2.clone()]);
        let seen = CurrentBaggage::from_context(op.context());
        assert_eq!(seen.get("tenant"), Some("globex"), "later message wins");
        assert_eq!(seen.get("a"), Some("1"));
        assert_eq!(seen.get("b"), Some("2"));
        assert_eq!(seen.get_all_batch().len(), 2);
        assert_eq!(seen.get_all_batch()[0].get("tenant").map(String::as_str), Some("acme"));
        assert_eq!(seen.get_all_batch()[1].get("tenant").map(String::as_str), Some("globex"));
        op.end(&Ok::<(), String>(()));
        let done = spans(&exp);
        let consumer = done.iter().find(|s| s.span_kind == SpanKind::Consumer).expect("consumer");
        let linked: Vec<_> = consumer.links.iter().map(|l| l.span_context.span_id()).collect();
        assert_eq!(linked, vec![m1.span().span_context().span_id(), m2.span().span_context().span_id()]);
        assert_eq!(attr(consumer, "messaging.batch.message_count"), Some(&Value::I64(2)));
    }

    #[tokio::test]
    async fn baggage_attributes_are_copied_onto_spans() {
        let (t, exp) = memory_with(Options::new("b").baggage_attributes(["tenant"]), &[]);
        let parent = Baggage::new([("tenant", "acme"), ("secret", "x")]).context();
        let cx = crate::spans::start(&t, "s", SpanKind::Internal, &parent, vec![]);
        cx.span().end();
        let s = spans(&exp).remove(0);
        assert_eq!(attr_str(&s, "tenant").as_deref(), Some("acme"));
        assert_eq!(attr(&s, "secret"), None, "only listed keys");
    }
}

mod messaging {
    use super::*;
    use crate::messaging::Operation;

    #[tokio::test]
    async fn producer_and_consumer_spans_follow_the_conventions() {
        let (t, exp) = memory("m");
        let mut headers = HashMap::new();
        let op = Operation::publish(&t, "rabbitmq", "orders");
        op.inject(&mut headers);
        op.run(async { Ok::<_, String>(()) }).await.expect("publish");
        let parent = t.extract(&headers);
        let r = Operation::process(&t, "rabbitmq", "orders", &parent)
            .run(async { Err::<(), _>("bad payload") })
            .await;
        assert!(r.is_err());
        let done = spans(&exp);
        let p = done.iter().find(|s| s.span_kind == SpanKind::Producer).expect("producer");
        let c = done.iter().find(|s| s.span_kind == SpanKind::Consumer).expect("consumer");
        assert_eq!(p.name, "publish orders");
        assert_eq!(c.name, "process orders");
        assert_eq!(c.parent_span_id, p.span_context.span_id());
        assert_eq!(attr_str(p, "messaging.system").as_deref(), Some("rabbitmq"));
        assert_eq!(attr_str(p, "messaging.operation.type").as_deref(), Some("send"));
        assert_eq!(attr_str(c, "messaging.operation.type").as_deref(), Some("process"));
        assert_eq!(attr_str(c, "messaging.destination.name").as_deref(), Some("orders"));
        assert!(matches!(&c.status, Status::Error { description } if description == "bad payload"));
        assert!(c.events.iter().any(|e| e.name == "exception"));
        let m = t.metrics().render();
        assert!(m.contains(r#"messaging_operations_total{system="rabbitmq",operation="process",destination="orders",status="error"} 1"#), "{m}");
    }
}

mod spans_and_tasks {
    use super::*;

    #[tokio::test]
    async fn in_span_nests_and_records_the_exception() {
        let (t, exp) = memory("s");
        let r = crate::spans::in_span(&t, "outer", async {
            crate::spans::in_span(&t, "inner", async { Err::<(), _>(std::io::Error::other("disk full")) })
                .await
        })
        .await;
        assert!(r.is_err());
        let done = spans(&exp);
        let inner = done.iter().find(|s| s.name == "inner").expect("inner");
        let outer = done.iter().find(|s| s.name == "outer").expect("outer");
        assert_eq!(inner.parent_span_id, outer.span_context.span_id());
        let ev = inner.events.iter().find(|e| e.name == "exception").expect("exception event");
        assert!(
            ev.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "exception.message" && kv.value.as_str() == "disk full")
        );
        assert!(matches!(&inner.status, Status::Error { description } if description == "disk full"));
    }

    #[tokio::test]
    async fn exceptions_carry_the_real_type_and_the_cause_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                if f.alternate() {
                    write!(f, "storing the order: {}", self.0)
                } else {
                    f.write_str("storing the order")
                }
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let (t, exp) = memory("s");
        let mut headers = HashMap::new();
        crate::messaging::Operation::publish(&t, "nats", "orders").inject(&mut headers);
        let parent = t.extract(&headers);
        let r = crate::messaging::Operation::process(&t, "nats", "orders", &parent)
            .run(async { Err::<(), _>(Outer(std::io::Error::other("disk full"))) })
            .await;
        assert!(r.is_err());
        let cx = crate::spans::start(&t, "typed", SpanKind::Internal, &Context::new(), vec![]);
        crate::spans::record_error(&cx.span(), &Outer(std::io::Error::other("disk full")));
        cx.span().end();
        let done = spans(&exp);
        for name in ["process orders", "typed"] {
            let s = done.iter().find(|s| s.name == name).expect(name);
            let ev = s.events.iter().find(|e| e.name == "exception").expect("exception event");
            let get = |k: &str| {
                ev.attributes.iter().find(|kv| kv.key.as_str() == k).map(|kv| kv.value.as_str().into_owned())
            };
            let ty = get("exception.type").expect("type");
            assert!(ty.ends_with("Outer") && !ty.contains("dyn"), "{name}: {ty}");
            assert_eq!(get("exception.message").as_deref(), Some("storing the order"));
            assert_eq!(
                get("exception.stacktrace").as_deref(),
                Some("storing the order: disk full"),
                "{name}"
            );
        }
    }

    #[test]
    fn warnings_inside_an_otel_span_become_span_events() {
        use tracing_subscriber::layer::SubscriberExt as _;
        let (t, exp) = memory("s");
        let subscriber = tracing_subscriber::registry().with(crate::logs::SpanEventsLayer);
        let cx = crate::spans::start(&t, "req", SpanKind::Server, &Context::new(), vec![]);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("outside any span: dropped");
            let _g = cx.clone().attach();
            tracing::info!("info: not an event");
            tracing::warn!(key = "orders:acme", attempt = 2, "cache unavailable");
            tracing::error!("giving up");
        });
        cx.span().end();
        let s = spans(&exp).remove(0);
        let names: Vec<&str> = s.events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(names, vec!["cache unavailable", "giving up"]);
        let ev = &s.events.iter().next().expect("event");
        let get = |k: &str| ev.attributes.iter().find(|kv| kv.key.as_str() == k).map(|kv| kv.value.clone());
        assert_eq!(get("level"), Some(Value::from("WARN")));
        assert_eq!(get("key"), Some(Value::from("orders:acme")));
        assert_eq!(get("attempt"), Some(Value::I64(2)));
    }

    #[tokio::test]
    async fn background_tasks_are_spanned_and_counted() {
        let (t, exp) = memory("s");
        crate::spans::background_task(&t, "cleanup", async { Ok::<_, String>(()) }).await.expect("ok");
        crate::spans::background_task(&t, "cleanup", async { Err::<(), _>("x".to_owned()) })
            .await
            .expect_err("err");
        let done = spans(&exp);
        assert_eq!(done.len(), 2);
        assert!(
            done.iter()
                .all(|s| s.name == "task cleanup" && attr_str(s, "task.type").as_deref() == Some("cleanup"))
        );
        let m = t.metrics().render();
        assert!(m.contains(r#"background_tasks_total{task_type="cleanup",status="ok"} 1"#), "{m}");
        assert!(m.contains(r#"background_tasks_total{task_type="cleanup",status="error"} 1"#), "{m}");
        assert!(m.contains(r#"background_task_duration_seconds_count{task_type="cleanup"} 2"#), "{m}");
    }
}

mod sql {
    use crate::sql::{collection, operation, sanitize};

    #[test]
    fn literals_are_removed_identifiers_kept() {
        assert_eq!(
            sanitize("SELECT * FROM users WHERE email = 'a@b.c' AND age > 42 AND t2.x = -3.5"),
            "SELECT * FROM users WHERE email = ? AND age > ? AND t2.x = ?"
        );
        assert_eq!(
            sanitize("INSERT INTO t (a, b) VALUES ('it''s', 7)"),
            "INSERT INTO t (a, b) VALUES (?, ?)"
        );
        assert_eq!(sanitize("UPDATE t SET a = ? WHERE id = $1"), "UPDATE t SET a = ? WHERE id = $1");
        assert_eq!(sanitize("select col1 from tab9"), "select col1 from tab9");
        assert!(!sanitize("SELECT 'unterminated").contains("unterminated"));
    }

    #[test]
    fn sanitize_never_panics_and_never_leaks_quoted_text() {
        for input in [
            "",
            "'",
            "''",
            "'a",
            "-",
            "--1",
            "x-1",
            "é'ü'",
            "SELECT '日本' , -",
            "$",
            "$1$2",
            "1e10",
            "a'b'c'd",
        ] {
            let out = sanitize(input);
            assert!(!out.contains("日本") && !out.contains('ü'), "{input:?} -> {out:?}");
        }
        assert_eq!(sanitize("x-1"), "x-?", "minus after an identifier is an operator");
    }

    #[tokio::test]
    async fn one_statement_many_runs_share_the_cached_series() {
        let (t, exp) = super::memory("db");
        let db = crate::sql::Db::new(&t, "sqlite");
        let clone = db.clone();
        let stmt = "UPDATE stock SET n = n - 1 WHERE id = ?";
        db.run(stmt, async { Err::<(), _>("locked") }).await.expect_err("err");
        clone.run(stmt, async { Ok::<_, String>(()) }).await.expect("ok");
        db.run(stmt, async { Ok::<_, String>(()) }).await.expect("ok");
        assert_eq!(super::spans(&exp).len(), 3);
        assert!(super::spans(&exp).iter().all(|s| s.name == "UPDATE stock"));
        let m = t.metrics().render();
        assert!(
            m.contains(r#"db_operations_total{system="sqlite",operation="UPDATE",status="ok"} 2"#),
            "{m}"
        );
        assert!(
            m.contains(r#"db_operations_total{system="sqlite",operation="UPDATE",status="error"} 1"#),
            "{m}"
        );
        assert!(
            m.contains(r#"db_operation_duration_seconds_count{system="sqlite",operation="UPDATE"} 3"#),
            "{m}"
        );
    }

    #[test]
    fn operation_and_table() {
        assert_eq!(operation("  insert into orders (id) values (?)"), "INSERT");
        assert_eq!(collection("INSERT INTO orders (id) VALUES (?)").as_deref(), Some("orders"));
        assert_eq!(collection("DELETE FROM order_events WHERE x"), Some("order_events".to_owned()));
        assert_eq!(collection("UPDATE t SET a=1").as_deref(), Some("t"));
        assert_eq!(collection("SELECT 1"), None);
        assert_eq!(operation(""), "QUERY");
    }

    #[tokio::test]
    async fn db_spans_carry_the_sanitised_statement_and_errors() {
        let (t, exp) = super::memory("db");
        let db = crate::sql::Db::new(&t, "sqlite").namespace("test.db");
        db.run("INSERT INTO orders (id, note) VALUES (1, 'secret note')", async { Ok::<_, String>(()) })
            .await
            .expect("ok");
        db.run("SELECT * FROM missing", async { Err::<(), _>("no such table: missing") })
            .await
            .expect_err("err");
        let done = super::spans(&exp);
        assert_eq!(done[0].name, "INSERT orders");
        assert_eq!(done[0].span_kind, opentelemetry::trace::SpanKind::Client);
        assert_eq!(
            super::attr_str(&done[0], "db.query.text").as_deref(),
            Some("INSERT INTO orders (id, note) VALUES (?, ?)")
        );
        assert_eq!(super::attr_str(&done[0], "db.system").as_deref(), Some("sqlite"));
        assert_eq!(super::attr_str(&done[0], "db.namespace").as_deref(), Some("test.db"));
        assert!(matches!(done[1].status, opentelemetry::trace::Status::Error { .. }));
        let m = t.metrics().render();
        assert!(
            m.contains(r#"db_operations_total{system="sqlite",operation="SELECT",status="error"} 1"#),
            "{m}"
        );
    }
}

#[cfg(feature = "redis")]
mod redis_names {
    #[test]
    fn commands_are_named_and_arguments_hidden() {
        let mut cmd = redis::cmd("set");
        cmd.arg("session:abc").arg("alice@example.com").arg("EX").arg(60);
        assert_eq!(crate::redis::command_name(&cmd), "SET");
        assert_eq!(crate::redis::sanitized(&cmd), "SET ? ? ? ?");
    }
}

#[cfg(feature = "axum")]
mod pii {
    use crate::public_metrics::{find_sensitive_key, is_sensitive_key, validate};
    use serde_json::json;

    #[test]
    fn sensitive_keys_by_word() {
        for k in [
            "email",
            "userEmail",
            "user_email",
            "Password",
            "access_token",
            "apiKey",
            "api-key",
            "clientSecret",
            "Authorization",
            "ssn",
            "card_number",
            "creditCardNumber",
            "cvv",
            "phone",
        ] {
            assert!(is_sensitive_key(k), "{k}");
        }
        for k in ["page", "className", "duration_ms", "event", "author", "discount", "route"] {
            assert!(!is_sensitive_key(k), "{k}");
        }
    }

    #[test]
    fn the_offending_key_is_named_wherever_it_is() {
        let v = json!({"events": [{"event": "click", "labels": {"page": "home"}}, {"event": "x", "labels": {"userEmail": "a@b"}}]});
        assert_eq!(find_sensitive_key(&v), Some("userEmail"));
        let r = validate(&v, &Default::default()).expect_err("rejected");
        assert_eq!(r.key.as_deref(), Some("userEmail"));
    }

    #[test]
    fn schema() {
        let ok = json!({"event": "page_view", "value": 1.5, "labels": {"page": "home", "n": 2, "b": true}, "timestamp": 1});
        assert_eq!(validate(&ok, &Default::default()).expect("valid"), vec!["page_view"]);
        for (bad, key) in [
            (json!({"value": 1}), Some("event")),
            (json!({"event": "has space"}), Some("event")),
            (json!({"event": "e", "extra": 1}), Some("extra")),
            (json!({"event": "e", "value": "1"}), Some("value")),
            (json!({"event": "e", "labels": {"nested": {"a": 1}}}), Some("nested")),
            (json!({"events": []}), Some("events")),
            (json!([1, 2]), None),
        ] {
            let r = validate(&bad, &Default::default()).expect_err("invalid");
            assert_eq!(r.key.as_deref(), key, "{bad}");
        }
        let allowed = ["page_view".to_owned()].into_iter().collect();
        assert!(validate(&json!({"event": "other"}), &allowed).is_err());
    }
}

#[cfg(feature = "axum")]
mod server {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use http::{Request, StatusCode};
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    use crate::http_server::{HttpServerLayer, metrics_router};

    fn app(t: &crate::Telemetry) -> Router {
        Router::new()
            .route("/orders/{id}", get(|| async { "order" }))
            .route("/boom", get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }))
            .route("/health", get(|| async { "ok" }))
            .route(
                "/baggage",
                get(|| async {
                    crate::baggage::CurrentBaggage::current().get("tenant").unwrap_or("none").to_owned()
                }),
            )
            .merge(metrics_router(t))
            .merge(crate::public_metrics::PublicMetrics::new(t).router())
            .layer(HttpServerLayer::new(t))
    }

    async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String) {
        let resp = app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn get_req(uri: &str) -> Request<Body> {
        Request::get(uri).header("host", "shop.local:8080").body(Body::empty()).expect("request")
    }

    #[tokio::test]
    async fn a_server_span_per_request_named_by_route_continuing_the_caller() {
        let (t, exp) = memory("orders");
        let app = app(&t);
        let req = Request::get("/orders/42?x=1&access_token=abc&Signature=zz&code=")
            .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .header("baggage", "tenant=acme")
            .header("user-agent", "test/1")
            .body(Body::empty())
            .expect("request");
        assert_eq!(call(&app, req).await.0, StatusCode::OK);
        let (_, tenant) = call(
            &app,
            Request::get("/baggage").header("baggage", "tenant=globex").body(Body::empty()).expect("req"),
        )
        .await;
        assert_eq!(tenant, "globex", "the handler sees the caller's baggage");
        let done = spans(&exp);
        let s = done.iter().find(|s| s.name == "GET /orders/{id}").expect("server span");
        assert_eq!(s.span_kind, SpanKind::Server);
        assert_eq!(s.span_context.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(s.parent_span_id.to_string(), "b7ad6b7169203331");
        assert_eq!(attr_str(s, "http.request.method").as_deref(), Some("GET"));
        assert_eq!(attr_str(s, "http.route").as_deref(), Some("/orders/{id}"));
        assert_eq!(attr_str(s, "url.path").as_deref(), Some("/orders/42"));
        assert_eq!(
            attr_str(s, "url.query").as_deref(),
            Some("x=1&access_token=REDACTED&Signature=REDACTED&code="),
            "secret values redacted"
        );
        assert_eq!(attr_str(s, "user_agent.original").as_deref(), Some("test/1"));
        assert_eq!(attr(s, "http.response.status_code"), Some(&Value::I64(200)));
        assert_eq!(s.status, Status::Unset);
    }

    #[tokio::test]
    async fn server_errors_mark_the_span_and_not_found_does_not() {
        let (t, exp) = memory("orders");
        let app = app(&t);
        assert_eq!(call(&app, get_req("/boom")).await.0, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(call(&app, get_req("/nowhere/123")).await.0, StatusCode::NOT_FOUND);
        let done = spans(&exp);
        let boom = done.iter().find(|s| s.name == "GET /boom").expect("boom");
        assert!(matches!(boom.status, Status::Error { .. }));
        assert_eq!(attr_str(boom, "error.type").as_deref(), Some("500"));
        assert_eq!(attr_str(boom, "server.address").as_deref(), Some("shop.local"));
        assert_eq!(attr(boom, "server.port"), Some(&Value::I64(8080)));
        let nf = done.iter().find(|s| s.name == "GET").expect("unmatched request named by method only");
        assert_eq!(nf.status, Status::Unset);
        let m = t.metrics().render();
        assert!(m.contains(r#"http_requests_total{method="GET",endpoint="/boom",status="500"} 1"#), "{m}");
        assert!(
            m.contains(r#"http_requests_total{method="GET",endpoint="unmatched",status="404"} 1"#),
            "{m}"
        );
        assert!(m.contains(r#"http_request_duration_seconds_count{method="GET",endpoint="/boom"} 1"#), "{m}");
    }

    #[tokio::test]
    async fn excluded_urls_are_neither_traced_nor_counted() {
        let (t, exp) = memory("orders");
        let app = app(&t);
        assert_eq!(call(&app, get_req("/health")).await.0, StatusCode::OK);
        assert_eq!(call(&app, get_req("/metrics")).await.0, StatusCode::OK);
        let names: Vec<_> = spans(&exp).iter().map(|s| s.name.clone()).collect();
        assert!(names.is_empty(), "{names:?}");
        call(&app, get_req("/orders/1")).await;
        assert_eq!(spans(&exp).len(), 1);
        let (status, metrics) = call(&app, get_req("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            metrics.contains(r#"http_requests_total{method="GET",endpoint="/orders/{id}",status="200"} 1"#),
            "{metrics}"
        );
        assert!(
            !metrics.contains(r#"endpoint="/health""#) && !metrics.contains(r#"endpoint="/metrics""#),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn work_under_an_excluded_route_starts_no_trace() {
        let (t, exp) = memory("orders");
        let t2 = t.clone();
        let app = Router::new()
            .route(
                "/health",
                get(move || {
                    let t = t2.clone();
                    // what a health check does: a traced dependency call
                    async move {
                        crate::spans::in_span(&t, "PING", async { Ok::<_, String>("ok") })
                            .await
                            .unwrap_or("down")
                    }
                }),
            )
            .layer(HttpServerLayer::new(&t));
        for _ in 0..3 {
            assert_eq!(call(&app, get_req("/health")).await, (StatusCode::OK, "ok".to_owned()));
        }
        let names: Vec<_> = spans(&exp).iter().map(|s| s.name.clone()).collect();
        assert!(names.is_empty(), "no span from a probe's work: {names:?}");
        // outside the excluded route the same work is traced
        let cx = crate::spans::start(&t, "req", SpanKind::Server, &Context::new(), vec![]);
        opentelemetry::context::FutureExt::with_context(
            crate::spans::in_span(&t, "PING", async { Ok::<_, String>(()) }),
            cx.clone(),
        )
        .await
        .expect("ok");
        assert_eq!(spans(&exp).len(), 1);
    }

    #[tokio::test]
    async fn disabled_telemetry_passes_requests_through() {
        let t = crate::Telemetry::disabled("off");
        let app = app(&t);
        assert_eq!(call(&app, get_req("/orders/1")).await, (StatusCode::OK, "order".to_owned()));
        assert!(t.metrics().render().contains(r#"endpoint="/orders/{id}""#));
    }

    #[tokio::test]
    async fn client_metrics_route_rejects_pii_and_counts_events() {
        let (t, _exp) = memory("gw");
        let app = app(&t);
        let post_json = |body: &str| {
            Request::post("/api/v1/metrics")
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .expect("req")
        };
        let (status, body) = call(&app, post_json(r#"{"event":"signup","labels":{"email":"a@b.c"}}"#)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["key"], "email", "{body}");
        let (status, _) = call(&app, post_json("not json")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = call(
            &app,
            post_json(r#"{"events":[{"event":"page_view"},{"event":"page_view"},{"event":"click"}]}"#),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let m = t.metrics().render();
        assert!(m.contains(r#"public_metrics_total{event="page_view"} 2"#), "{m}");
        assert!(m.contains(r#"public_metrics_total{event="click"} 1"#), "{m}");
        assert!(!m.contains("signup"), "rejected payloads are not counted");
    }

    #[tokio::test]
    async fn health_reports_each_component() {
        let app: Router = crate::health::Health::new("gw")
            .check("redis", || async { Ok::<_, String>(()) })
            .check("idp", || async { Err::<(), _>("connection refused") })
            .router();
        let (status, body) = call(&app, get_req("/health")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["status"], "unhealthy");
        assert_eq!(v["checks"]["redis"]["status"], "up");
        assert_eq!(v["checks"]["idp"]["status"], "down");
        assert_eq!(v["checks"]["idp"]["error"], "connection refused");
        assert!(v["checks"]["redis"]["latency_ms"].is_number());
        let ok: Router =
            crate::health::Health::new("gw").check("a", || async { Ok::<_, String>(()) }).router();
        assert_eq!(call(&ok, get_req("/health")).await.0, StatusCode::OK);
        let slow: Router = crate::health::Health::new("gw")
            .timeout(std::time::Duration::from_millis(20))
            .check("slow", || async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                Ok::<_, String>(())
            })
            .router();
        let (status, body) = call(&slow, get_req("/health")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("timed out"), "{body}");
    }

    #[cfg(feature = "reqwest")]
    #[tokio::test]
    async fn the_client_injects_context_and_the_server_continues_it() {
        let (server_t, server_exp) = memory("server");
        let (client_t, client_exp) = memory("client");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new()
            .route(
                "/echo",
                post(|| async {
                    crate::baggage::CurrentBaggage::current().get("tenant").unwrap_or("none").to_owned()
                }),
            )
            .route("/fail", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }))
            .layer(HttpServerLayer::new(&server_t));
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        // In a workspace build reqwest may come without a crypto provider
        // (Sightline's object-store client asks for none): install ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = crate::http_client::HttpClient::new(&client_t, reqwest::Client::new());
        let cx = crate::baggage::Baggage::new([("tenant", "acme")]).context();
        let body = opentelemetry::context::FutureExt::with_context(
            async {
                let resp =
                    client.send(client.inner().post(format!("http://{addr}/echo"))).await.expect("send");
                resp.text().await.expect("text")
            },
            cx,
        )
        .await;
        assert_eq!(body, "acme", "baggage crossed the wire");
        let quiet = opentelemetry::context::FutureExt::with_context(
            async {
                let resp = client
                    .send_without_baggage(
                        client.inner().post(format!("http://{addr}/echo?api_key=k1&page=2")),
                    )
                    .await
                    .expect("send");
                resp.text().await.expect("text")
            },
            crate::baggage::Baggage::new([("tenant", "acme")]).context(),
        )
        .await;
        assert_eq!(quiet, "none", "no baggage on an opted-out request");
        let resp =
            client.send(client.inner().get(format!("http://user:pw@{addr}/fail"))).await.expect("send");
        assert_eq!(resp.status(), 503);
        let refused = client.send(client.inner().get("http://127.0.0.1:9/closed")).await;
        assert!(refused.is_err());
        server.abort();

        let c = spans(&client_exp);
        let s = spans(&server_exp);
        let post_client = c.iter().find(|x| x.name == "POST").expect("client span");
        let opted_out = c
            .iter()
            .find(|x| attr_str(x, "url.full").is_some_and(|u| u.contains("page=2")))
            .expect("opted-out span");
        assert_eq!(
            attr_str(opted_out, "url.full").as_deref(),
            Some(format!("http://{addr}/echo?api_key=REDACTED&page=2").as_str())
        );
        let post_server = s.iter().find(|x| x.name == "POST /echo").expect("server span");
        assert_eq!(post_client.span_kind, SpanKind::Client);
        assert_eq!(post_server.parent_span_id, post_client.span_context.span_id());
        assert_eq!(post_server.span_context.trace_id(), post_client.span_context.trace_id());
        assert_eq!(attr_str(post_client, "server.address").as_deref(), Some("127.0.0.1"));
        assert_eq!(attr(post_client, "http.response.status_code"), Some(&Value::I64(200)));
        let fail = c
            .iter()
            .find(|x| attr_str(x, "url.full").is_some_and(|u| u.ends_with("/fail")))
            .expect("fail span");
        assert!(!attr_str(fail, "url.full").unwrap_or_default().contains("pw"), "credentials removed");
        assert!(matches!(fail.status, Status::Error { .. }));
        let closed = c
            .iter()
            .find(|x| attr_str(x, "url.full").is_some_and(|u| u.ends_with("/closed")))
            .expect("closed span");
        assert_eq!(attr_str(closed, "error.type").as_deref(), Some("connect"));
        let m = client_t.metrics().render();
        assert!(m.contains(r#"http_client_requests_total{host="127.0.0.1",status="503"} 1"#), "{m}");
        assert!(m.contains(r#"http_client_requests_total{host="127.0.0.1",status="error"} 1"#), "{m}");
    }
}

mod logs {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(buf: &Buf) -> Vec<serde_json::Value> {
        let bytes = buf.0.lock().expect("buf").clone();
        String::from_utf8(bytes)
            .expect("utf8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    #[test]
    fn fields_with_zero_ids_outside_spans_and_the_span_ids_inside() {
        let buf = Buf::default();
        let b2 = buf.clone();
        let (t, _exp) = memory("orders");
        let subscriber =
            tracing_subscriber::registry().with(crate::logs::JsonLayer::new("orders", move || b2.clone()));
        let cx = crate::spans::start(&t, "req", SpanKind::Server, &Context::new(), vec![]);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(order = 7, "no span here");
            let _g = cx.clone().attach();
            tracing::warn!("inside \"quoted\"");
        });
        let l = lines(&buf);
        assert_eq!(l.len(), 2);
        assert_eq!(l[0]["level"], "INFO");
        assert_eq!(l[0]["service"], "orders");
        assert_eq!(l[0]["message"], "no span here");
        assert_eq!(l[0]["trace_id"], "0".repeat(32));
        assert_eq!(l[0]["span_id"], "0".repeat(16));
        assert_eq!(l[0]["order"], 7);
        assert!(l[0]["timestamp"].as_str().is_some_and(|ts| ts.ends_with('Z') && ts.len() == 27), "{}", l[0]);
        assert_eq!(l[1]["message"], "inside \"quoted\"");
        assert_eq!(l[1]["trace_id"], cx.span().span_context().trace_id().to_string());
        assert_eq!(l[1]["span_id"], cx.span().span_context().span_id().to_string());
        let raw = String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf8");
        assert!(raw.starts_with("{\"timestamp\":"), "seed key order: {raw}");
    }

    #[test]
    fn tracing_spans_bridged_to_otel_give_the_ids_too() {
        let buf = Buf::default();
        let b2 = buf.clone();
        let (t, exp) = memory("orders");
        let tracer = t.tracer().expect("enabled").clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(tracer))
            .with(crate::logs::JsonLayer::new("orders", move || b2.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("work");
            let _e = span.enter();
            tracing::info!("inside a tracing span");
        });
        let l = lines(&buf);
        let done = spans(&exp);
        let work = done.iter().find(|s| s.name == "work").expect("bridged span exported");
        assert_eq!(l[0]["trace_id"], work.span_context.trace_id().to_string());
        assert_eq!(l[0]["span_id"], work.span_context.span_id().to_string());
    }

    #[test]
    fn the_seed_shape_by_default_and_the_extended_one_as_an_option() {
        #[derive(Debug)]
        struct Root;
        impl std::fmt::Display for Root {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connection refused")
            }
        }
        impl std::error::Error for Root {}
        #[derive(Debug)]
        struct Outer(Root);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("loading the session")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let emit = |shape: crate::logs::LogShape| {
            let buf = Buf::default();
            let b2 = buf.clone();
            let layer = crate::logs::JsonLayer::new("gw", move || b2.clone()).with_shape(shape);
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                let e = Outer(Root);
                tracing::warn!(
                    error = &e as &(dyn std::error::Error + 'static),
                    tenant = "acme",
                    "lookup failed"
                );
                tracing::error!(error = %"plain text", "boom");
            });
            (lines(&buf), String::from_utf8(buf.0.lock().expect("buf").clone()).expect("utf8"))
        };
        let (seed, raw) = emit(crate::logs::LogShape::Seed);
        assert_eq!(seed[0]["level"], "WARNING", "loguru's level name");
        assert_eq!(seed[0]["exception"], "loading the session: connection refused", "the whole chain");
        assert_eq!(seed[0]["tenant"], "acme");
        assert!(seed[0].get("target").is_none() && seed[0].get("error").is_none(), "{}", seed[0]);
        assert_eq!(seed[1]["exception"], "plain text");
        let first = raw.lines().next().expect("line");
        let keys: Vec<&str> =
            ["timestamp", "level", "service", "message", "trace_id", "span_id", "exception"].to_vec();
        let mut at = 0;
        for k in keys {
            let pos = first.find(&format!("\"{k}\":")).unwrap_or_else(|| panic!("{k} in {first}"));
            assert!(pos >= at, "seed key order: {first}");
            at = pos;
        }
        let (ext, _) = emit(crate::logs::LogShape::Extended);
        assert_eq!(ext[0]["level"], "WARN");
        assert!(ext[0]["target"].is_string());
        assert_eq!(ext[0]["error"], "loading the session: connection refused");
        assert!(ext[0].get("exception").is_none());
    }

    #[test]
    fn log_format_variable_picks_the_shape() {
        use crate::logs::LogShape;
        assert_eq!(resolve(Options::new("s"), &[]).log_shape, LogShape::Seed);
        let s = resolve(Options::new("s"), &[("LOG_FORMAT", "json-extended")]);
        assert!(s.json_logs);
        assert_eq!(s.log_shape, LogShape::Extended);
        assert!(!resolve(Options::new("s"), &[("LOG_FORMAT", "text")]).json_logs);
    }

    #[test]
    fn rfc3339() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(crate::logs::rfc3339(t), "2023-11-14T22:13:20.123456Z");
        assert_eq!(crate::logs::rfc3339(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let leap = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(crate::logs::rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }
}

#[test]
fn no_dependency_on_internal_crates() {
    // Published from libs/: may not use the server's crates (crates/*).
    let manifest = include_str!("../Cargo.toml");
    for line in manifest.lines() {
        let l = line.trim();
        assert!(!l.contains("path ="), "path dependency in the published crate: {l}");
        assert!(
            !l.starts_with("sightline") || l.starts_with("sightline-sdk"),
            "internal crate dependency: {l}"
        );
        assert!(
            !l.contains(".workspace = true")
                || l.starts_with("edition")
                || l.starts_with("rust-version")
                || l.starts_with("license"),
            "workspace-inherited dependency: {l}"
        );
    }
}

mod propagators {
    use super::*;
    use crate::{B3Encoding, B3Propagator, JaegerPropagator};
    use opentelemetry::baggage::BaggageExt as _;
    use opentelemetry::propagation::TextMapPropagator as _;

    fn carrier(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn ids(cx: &Context) -> (String, String, bool, bool) {
        let span = cx.span();
        let sc = span.span_context();
        (sc.trace_id().to_string(), sc.span_id().to_string(), sc.is_sampled(), sc.is_remote())
    }

    #[test]
    fn b3_single_header_per_the_b3_spec() {
        let p = B3Propagator::new(B3Encoding::Single);
        let cx = p.extract(&carrier(&[(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]));
        assert_eq!(
            ids(&cx),
            ("80f198ee56343ba864fe8b2a57d3eff7".into(), "e457b5a2e4d86bd1".into(), true, true)
        );
        // 64-bit trace id, debug flag
        let cx = p.extract(&carrier(&[("b3", "a3ce929d0e0e4736-e457b5a2e4d86bd1-d")]));
        assert_eq!(ids(&cx).0, "0000000000000000a3ce929d0e0e4736");
        assert!(ids(&cx).2, "debug means sampled");
        let cx = p.extract(&carrier(&[("b3", "a3ce929d0e0e4736-e457b5a2e4d86bd1-0")]));
        assert!(!ids(&cx).2);
        for bad in ["0", "1", "xyz-e457b5a2e4d86bd1-1", "a3ce929d0e0e4736-0000000000000000-1", "a-b-c-d-e"] {
            let cx = p.extract(&carrier(&[("b3", bad)]));
            assert!(!cx.span().span_context().is_valid(), "{bad}");
        }
        // injection writes the single header only
        let mut out = HashMap::new();
        p.inject_context(&cx_from(&p, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"), &mut out);
        assert_eq!(out, carrier(&[("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")]));
    }

    fn cx_from(p: &B3Propagator, b3: &str) -> Context {
        p.extract(&carrier(&[("b3", b3)]))
    }

    #[test]
    fn b3_multi_headers_and_fallback_from_single() {
        let multi = B3Propagator::new(B3Encoding::Multi);
        let headers = carrier(&[
            ("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"),
            ("x-b3-spanid", "a2fb4a1d1a96d312"),
            ("x-b3-sampled", "0"),
        ]);
        let cx = multi.extract(&headers);
        assert_eq!(
            ids(&cx),
            ("463ac35c9f6413ad48485a3953bb6124".into(), "a2fb4a1d1a96d312".into(), false, true)
        );
        let mut out = HashMap::new();
        multi.inject_context(&cx, &mut out);
        assert_eq!(out, headers);
        // the single-header propagator reads multi headers too; X-B3-Flags: 1 is debug
        let single = B3Propagator::new(B3Encoding::Single);
        let mut h = headers.clone();
        h.insert("x-b3-flags".into(), "1".into());
        assert!(ids(&single.extract(&h)).2);
        // over real HTTP headers (case-insensitive)
        let mut hm = http::HeaderMap::new();
        hm.insert("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124".parse().expect("v"));
        hm.insert("X-B3-SpanId", "a2fb4a1d1a96d312".parse().expect("v"));
        let cx = multi.extract(&crate::propagation::HeaderExtractor(&hm));
        assert!(ids(&cx).2, "no sampling header: accept");
    }

    #[test]
    fn jaeger_uber_trace_id_and_baggage() {
        let p = JaegerPropagator::new();
        let cx = p.extract(&carrier(&[
            ("uber-trace-id", "463ac35c9f6413ad48485a3953bb6124%3Aa2fb4a1d1a96d312%3A0%3A1"),
            ("uberctx-tenant", "acme%20corp"),
        ]));
        assert_eq!(
            ids(&cx),
            ("463ac35c9f6413ad48485a3953bb6124".into(), "a2fb4a1d1a96d312".into(), true, true)
        );
        assert_eq!(cx.baggage().get("tenant").map(|v| v.as_str().to_owned()).as_deref(), Some("acme corp"));
        let cx2 = p.extract(&carrier(&[("uber-trace-id", "a3ce929d0e0e4736:e457b5a2e4d86bd1:0:0")]));
        assert_eq!(ids(&cx2).0, "0000000000000000a3ce929d0e0e4736");
        assert!(!ids(&cx2).2);
        for bad in ["x:y:0:1", "463ac35c9f6413ad:0:0:1", "1:2:3"] {
            assert!(
                !p.extract(&carrier(&[("uber-trace-id", bad)])).span().span_context().is_valid(),
                "{bad}"
            );
        }
        let mut out = HashMap::new();
        p.inject_context(&cx, &mut out);
        assert_eq!(out["uber-trace-id"], "463ac35c9f6413ad48485a3953bb6124:a2fb4a1d1a96d312:0:1");
        assert_eq!(out["uberctx-tenant"], "acme%20corp");
    }

    #[test]
    fn otel_propagators_choose_what_a_handle_injects() {
        let (t, _exp) = memory_with(Options::new("p"), &[("OTEL_PROPAGATORS", "b3multi,jaeger")]);
        let cx = crate::spans::start(&t, "s", SpanKind::Client, &Context::new(), vec![]);
        let mut out = HashMap::new();
        t.inject(&cx, &mut out);
        let mut keys: Vec<&str> = out.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["uber-trace-id", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"]);
        let back = t.extract(&out);
        assert_eq!(back.span().span_context().span_id(), cx.span().span_context().span_id());
    }
}

mod export_reports {
    use std::time::{Duration, Instant};

    use crate::export::{Report, Reporter, WARN_EVERY};
    use opentelemetry_sdk::error::OTelSdkError;

    #[test]
    fn first_failure_then_at_most_one_warning_per_interval_then_recovery() {
        let r = Reporter::new("traces", "http://c:4318/v1/traces");
        let t0 = Instant::now();
        let fail = Err(OTelSdkError::InternalFailure("connection refused".into()));
        assert_eq!(r.record(&Ok(()), t0), None, "success is quiet");
        assert!(matches!(
            r.record(&fail, t0),
            Some(Report::Failing { reason, suppressed: 0 }) if reason.contains("connection refused")
        ));
        assert_eq!(r.record(&fail, t0 + Duration::from_secs(1)), None);
        assert_eq!(r.record(&fail, t0 + Duration::from_secs(2)), None);
        assert!(matches!(r.record(&fail, t0 + WARN_EVERY), Some(Report::Failing { suppressed: 2, .. })));
        assert_eq!(r.record(&Ok(()), t0 + WARN_EVERY), Some(Report::Recovered { failures: 4 }));
        assert_eq!(r.record(&Ok(()), t0 + WARN_EVERY), None);
        assert!(matches!(r.record(&fail, t0 + WARN_EVERY), Some(Report::Failing { suppressed: 0, .. })));
    }
}

mod export_logging {
    use super::*;
    use opentelemetry_sdk::trace::SpanExporter as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn lines(&self) -> Vec<serde_json::Value> {
            String::from_utf8(self.0.lock().expect("buf").clone())
                .expect("utf8")
                .lines()
                .map(|l| serde_json::from_str(l).expect("json line"))
                .collect()
        }
    }

    fn closed_port() -> u16 {
        // bound then released: nothing listens there during the test
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
    }

    #[test]
    fn init_says_where_each_signal_goes_without_header_values() {
        let buf = Buf::default();
        let b2 = buf.clone();
        let subscriber =
            tracing_subscriber::registry().with(crate::logs::JsonLayer::new("svc", move || b2.clone()));
        let guard = tracing::subscriber::with_default(subscriber, || {
            init_with_env(
                Options::new("svc").install_globals(false),
                env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
                    ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cr3t"),
                    ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                ]),
            )
            .expect("init")
        });
        let lines = buf.lines();
        let line =
            lines.iter().find(|l| l["message"].as_str().is_some_and(|m| m.starts_with("telemetry for svc")));
        let msg = line.expect("an init line")["message"].as_str().expect("message").to_owned();
        assert!(
            msg.contains("traces -> OTLP http/protobuf to http://127.0.0.1:4318/v1/traces, gzip"),
            "{msg}"
        );
        assert!(msg.contains("metrics -> OTLP http/protobuf to http://127.0.0.1:4318/v1/metrics"), "{msg}");
        assert!(msg.contains("headers authorization"), "{msg}");
        assert!(!msg.contains("s3cr3t"), "header values are secrets: {msg}");
        assert!(msg.contains("propagators: tracecontext,baggage"), "{msg}");
        drop(guard);
    }

    #[test]
    fn a_bad_setting_is_logged_as_an_error() {
        let buf = Buf::default();
        let b2 = buf.clone();
        let subscriber =
            tracing_subscriber::registry().with(crate::logs::JsonLayer::new("svc", move || b2.clone()));
        let _guard = tracing::subscriber::with_default(subscriber, || {
            init_with_env(
                Options::new("svc").install_globals(false),
                env(&[("OTEL_TRACES_SAMPLER_ARG", "2"), ("OTEL_TRACES_SAMPLER", "traceidratio")]),
            )
            .expect("runs on")
        });
        let lines = buf.lines();
        let err = lines.iter().find(|l| l["level"] == "ERROR").expect("an error line");
        assert!(err["message"].as_str().is_some_and(|m| m.contains("OTEL_TRACES_SAMPLER_ARG")), "{err}");
        let info = lines.iter().find(|l| l["level"] == "INFO").expect("the init line");
        assert!(
            info["message"].as_str().is_some_and(|m| m.contains("traces -> off (see the error above)")),
            "{info}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_export_is_warned_about_once_with_the_reason() {
        let (t, exp) = memory("svc");
        crate::spans::start(&t, "s", SpanKind::Internal, &Context::new(), vec![]).span().end();
        let batch = spans(&exp);
        for protocol in [Protocol::HttpProtobuf, Protocol::Grpc] {
            let port = closed_port();
            let base = format!("http://127.0.0.1:{port}");
            let target = crate::OtlpTarget {
                endpoint: if protocol == Protocol::Grpc { base.clone() } else { format!("{base}/v1/traces") },
                protocol,
                headers: vec![],
                timeout: std::time::Duration::from_secs(5),
                compression: crate::Compression::None,
                tls: crate::Tls::default(),
            };
            let exporter = crate::export::ReportingSpanExporter {
                inner: crate::export::span_exporter(&target).expect("exporter"),
                reporter: crate::export::Reporter::new("traces", target.endpoint.clone()),
            };
            let buf = Buf::default();
            let b2 = buf.clone();
            let subscriber =
                tracing_subscriber::registry().with(crate::logs::JsonLayer::new("svc", move || b2.clone()));
            let _scope = tracing::subscriber::set_default(subscriber);
            assert!(exporter.export(batch.clone()).await.is_err(), "nothing listens on {port}");
            assert!(exporter.export(batch.clone()).await.is_err());
            let warnings: Vec<_> = buf
                .lines()
                .into_iter()
                .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with("exporting")))
                .collect();
            assert_eq!(warnings.len(), 1, "{protocol:?}: one warning for two failures: {warnings:?}");
            let w = &warnings[0];
            assert!(matches!(w["level"].as_str(), Some("WARN" | "WARNING")), "{w}");
            let msg = w["message"].as_str().expect("message");
            assert!(msg.starts_with(&format!("exporting traces to {}", target.endpoint)), "{msg}");
            assert!(
                msg.len() > format!("exporting traces to {} failed: ", target.endpoint).len(),
                "a reason: {msg}"
            );
        }
    }
}
