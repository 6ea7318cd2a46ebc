//! The demo system against real servers: redis-server and nats-server
//! (Debian packages), the real `sightline` binary, and the three demo
//! services as processes; checked only through Sightline's query API.
//!
//! - `end_to_end`: one `POST /auth/login` + `GET /api/orders` gives one
//!   trace gateway → orders → worker with the right parent links and the
//!   `tenant` baggage on the worker's spans (the seed 000 check).
//!
//! - `amqp`: the AMQP carrier through a real rabbitmq-server and lapin.
//!
//! - `export`: the SDK's OTLP export to a real Sightline: gRPC the seeds'
//!   way, and mutual TLS (private CA, client certificate) over gRPC and
//!   OTLP/HTTP with gzip.
//!
//! - `metrics`: seed 001's `bff_*` families through `promtool check
//!   metrics` and a real Prometheus scrape (with trace-id exemplars).

mod amqp;
mod export;
mod harness;
mod metrics;

use std::process::Command;
use std::time::{Duration, Instant};

use harness::{
    JSpan, Proc, free_port, get_json, http, server_binary, sightline_binary, spans_of, wait_ok, wait_port,
};
use serde_json::{Value, json};

struct System {
    // Declared first: dropped before the broker's directory goes.
    _rabbit: harness::RabbitMq,
    _dir: tempfile::TempDir,
    api: String,
    gateway: String,
    otlp: String,
    procs: Vec<Proc>,
}

/// Sightline's default pipelines with a `debug` exporter beside the logs'
/// store.
const SIGHTLINE_CONFIG: &str = r#"
[exporters.debug]
verbosity = "detailed"

[service.pipelines.traces]
receivers = ["otlp", "zipkin"]
processors = ["memory_limiter", "redaction", "spanmetrics", "servicegraph"]
exporters = ["store"]

[service.pipelines.logs]
receivers = ["otlp"]
processors = ["memory_limiter", "batch"]
exporters = ["store", "debug"]

[service.pipelines.metrics]
receivers = ["otlp"]
processors = ["memory_limiter", "batch"]
exporters = ["prometheus"]
"#;

/// Log text without terminal colour codes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl System {
    async fn start() -> System {
        let redis_bin = server_binary("redis-server");
        let nats_bin = server_binary("nats-server");
        let sightline = sightline_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_owned();
        let (redis_port, nats_port) = (free_port(), free_port());
        let (grpc, otlp, api_port, zipkin) = (free_port(), free_port(), free_port(), free_port());
        let (gw, orders, worker) = (free_port(), free_port(), free_port());
        let wait = Duration::from_secs(60);
        std::fs::create_dir(d.join("rabbitmq")).expect("broker dir");
        let rabbit = harness::RabbitMq::start(&d.join("rabbitmq")).await;

        let mut redis = Proc::spawn(
            "redis",
            &d,
            Command::new(redis_bin)
                .args([
                    "--port",
                    &redis_port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(&d),
        );
        let mut nats = Proc::spawn(
            "nats",
            &d,
            Command::new(nats_bin).args(["-a", "127.0.0.1", "-p", &nats_port.to_string()]),
        );
        // The default pipelines, plus a `debug` exporter printing each log
        // record the services export over OTLP (there is no log query API
        // yet to read them back).
        let config = d.join("sightline.toml");
        std::fs::write(&config, SIGHTLINE_CONFIG).expect("config");
        let mut sl = Proc::spawn(
            "sightline",
            &d,
            Command::new(sightline)
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .arg("--data-dir")
                .arg(d.join("sightline-data"))
                .args(["--otlp-grpc-addr", &format!("127.0.0.1:{grpc}")])
                .args(["--otlp-http-addr", &format!("127.0.0.1:{otlp}")])
                .args(["--http-addr", &format!("127.0.0.1:{api_port}")])
                .args(["--zipkin-addr", &format!("127.0.0.1:{zipkin}")])
                .env_remove("SIGHTLINE_CONFIG"),
        );
        wait_port(redis_port, &mut redis, wait).await;
        wait_port(nats_port, &mut nats, wait).await;
        let api = format!("http://127.0.0.1:{api_port}");
        wait_ok(&format!("{api}/ready"), &mut sl, wait).await;

        let service = |name: &str, args: &[String]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_sightline-demo"));
            cmd.arg(name)
                .args(args)
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{otlp}"))
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
                .env("OTEL_BSP_SCHEDULE_DELAY", "100")
                .env("REDIS_URL", format!("redis://127.0.0.1:{redis_port}"))
                .env("NATS_URL", format!("nats://127.0.0.1:{nats_port}"))
                .env("RUST_LOG", "info")
                .env_remove("OTLP_ENDPOINT")
                .env_remove("TELEMETRY_ENABLED")
                .env_remove("OTEL_SERVICE_NAME")
                .env_remove("OTEL_TRACES_SAMPLER");
            Proc::spawn(name, &d, &mut cmd)
        };
        let mut w = service(
            "worker",
            &[
                "--listen".into(),
                format!("127.0.0.1:{worker}"),
                "--database".into(),
                d.join("worker.db").display().to_string(),
                "--amqp-url".into(),
                rabbit.url(),
            ],
        );
        let mut o = service("orders", &["--listen".into(), format!("127.0.0.1:{orders}")]);
        let mut g = service(
            "gateway",
            &[
                "--listen".into(),
                format!("127.0.0.1:{gw}"),
                "--orders-url".into(),
                format!("http://127.0.0.1:{orders}"),
            ],
        );
        wait_ok(&format!("http://127.0.0.1:{worker}/health"), &mut w, wait).await;
        wait_ok(&format!("http://127.0.0.1:{orders}/health"), &mut o, wait).await;
        wait_ok(&format!("http://127.0.0.1:{gw}/health"), &mut g, wait).await;
        System {
            _rabbit: rabbit,
            _dir: dir,
            api,
            gateway: format!("http://127.0.0.1:{gw}"),
            otlp: format!("http://127.0.0.1:{otlp}"),
            procs: vec![g, o, w, sl, nats, redis],
        }
    }

    fn log(&self, name: &str) -> String {
        self.procs.iter().find(|p| p.name() == name).map(Proc::log).unwrap_or_default()
    }

    /// The traces of `service` + `operation`, waiting until `done` holds
    /// for the first of them (spans arrive as each service exports).
    async fn wait_traces(
        &self,
        service: &str,
        operation: &str,
        done: impl Fn(&[JSpan]) -> bool,
    ) -> Vec<Value> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/traces", self.api),
            &[("service", service), ("operation", operation), ("limit", "20"), ("lookback", "1h")],
        )
        .expect("url");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let body = get_json(url.as_str()).await;
            let traces = body["data"].as_array().cloned().unwrap_or_default();
            if let Some(first) = traces.first()
                && done(&spans_of(first))
            {
                return traces;
            }
            assert!(
                Instant::now() < deadline,
                "no complete trace for {service} / {operation} in 30s: {body}\ngateway log:\n{}\nworker log:\n{}",
                self.log("gateway"),
                self.log("worker")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn one<'a>(spans: &'a [JSpan], service: &str, name: &str) -> &'a JSpan {
    let found: Vec<&JSpan> = spans.iter().filter(|s| s.service == service && s.name == name).collect();
    assert_eq!(found.len(), 1, "expected one {service} span {name:?} in {spans:#?}");
    found[0]
}

fn child_of<'a>(spans: &'a [JSpan], parent: &JSpan, service: &str, name: &str) -> &'a JSpan {
    let s = one(spans, service, name);
    assert_eq!(
        s.parent.as_deref(),
        Some(parent.id.as_str()),
        "{service} {name:?} should be a child of {} {:?}",
        parent.service,
        parent.name
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end() {
    let sys = System::start().await;
    let client = http();

    let login = client
        .post(format!("{}/auth/login", sys.gateway))
        .json(&json!({"user": "alice", "tenant": "acme"}))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 200);
    let session =
        login.json::<Value>().await.expect("login body")["session"].as_str().expect("session id").to_owned();
    let orders =
        client.get(format!("{}/api/orders", sys.gateway)).bearer_auth(&session).send().await.expect("orders");
    assert_eq!(orders.status(), 200);
    let body: Value = orders.json().await.expect("orders body");
    assert_eq!(body["tenant"], "acme", "orders saw the tenant from the gateway's baggage: {body}");

    // A failing order: the warning logged inside the request is an event
    // of its server span, and its log line has seed 002's shape.
    let huge = client
        .post(format!("{}/api/orders", sys.gateway))
        .bearer_auth(&session)
        .json(&json!({"item": "anvil", "qty": 500}))
        .send()
        .await
        .expect("huge order");
    assert_eq!(huge.status(), 503);
    let failed =
        sys.wait_traces("orders", "POST /orders", |s| s.iter().any(|s| s.name == "check stock")).await;
    let failed_spans = spans_of(&failed[0]);
    let post = one(&failed_spans, "orders", "POST /orders");
    assert!(post.events.iter().any(|e| e == "stock check failed"), "{post:?}");
    let check = child_of(&failed_spans, post, "orders", "check stock");
    assert!(check.events.iter().any(|e| e == "exception"), "{check:?}");
    let orders_log = sys.log("orders");
    let warning = orders_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "stock check failed")
        .unwrap_or_else(|| panic!("no warning line:\n{orders_log}"));
    assert_eq!(warning["level"], "WARNING", "{warning}");
    assert!(warning["exception"].as_str().is_some_and(|e| e.contains("not enough stock")), "{warning}");
    assert!(warning.get("target").is_none(), "{warning}");
    assert_eq!(warning["trace_id"], post.trace_id.as_str());

    // The seed 000 check: the login trace is there, with its Redis call.
    let logins = sys
        .wait_traces("gateway", "POST /auth/login", |s| {
            s.iter().any(|s| s.name == "SETEX" || s.name == "SET")
        })
        .await;
    assert_eq!(logins.len(), 1);

    // GET /api/orders: one trace, gateway → orders → worker.
    let complete = |s: &[JSpan]| s.iter().any(|s| s.service == "worker" && s.name.starts_with("INSERT"));
    let traces = sys.wait_traces("gateway", "GET /api/{*path}", complete).await;
    assert_eq!(traces.len(), 1, "one request, one trace");
    let spans = spans_of(&traces[0]);
    let trace_id = spans[0].trace_id.clone();
    assert!(spans.iter().all(|s| s.trace_id == trace_id));
    for svc in ["gateway", "orders", "worker"] {
        assert!(spans.iter().any(|s| s.service == svc), "no {svc} span in {spans:#?}");
    }

    let root = one(&spans, "gateway", "GET /api/{*path}");
    assert_eq!(root.parent, None, "the gateway's server span is the root");
    assert_eq!(root.tag("span.kind"), Some(&json!("server")));
    let session_check = spans
        .iter()
        .find(|s| s.service == "gateway" && s.parent.as_deref() == Some(root.id.as_str()) && s.name == "GET")
        .expect("the session lookup under the gateway's server span");
    assert_eq!(session_check.tag("db.system"), Some(&json!("redis")));
    assert_eq!(session_check.tag("db.query.text"), Some(&json!("GET ?")), "keys are not recorded");
    let forward = child_of(&spans, root, "gateway", "forward to orders");
    let gw_client = spans
        .iter()
        .find(|s| s.service == "gateway" && s.parent.as_deref() == Some(forward.id.as_str()))
        .expect("gateway client span under the forward span");
    assert_eq!(gw_client.tag("span.kind"), Some(&json!("client")));
    assert_eq!(gw_client.tag("http.response.status_code"), Some(&json!(200)));
    let orders_server = child_of(&spans, gw_client, "orders", "GET /orders");
    assert_eq!(orders_server.tag("tenant"), Some(&json!("acme")));
    let publish = child_of(&spans, orders_server, "orders", "publish orders.listed");
    assert_eq!(publish.tag("span.kind"), Some(&json!("producer")));
    assert_eq!(publish.tag("messaging.system"), Some(&json!("nats")));
    let process = child_of(&spans, publish, "worker", "process orders.listed");
    assert_eq!(process.tag("span.kind"), Some(&json!("consumer")));
    assert_eq!(process.tag("tenant"), Some(&json!("acme")), "the baggage reached the worker");
    let insert = child_of(&spans, process, "worker", "INSERT order_events");
    assert_eq!(insert.tag("tenant"), Some(&json!("acme")));
    assert_eq!(insert.tag("db.system"), Some(&json!("sqlite")));
    let statement = insert.tag("db.query.text").and_then(Value::as_str).unwrap_or_default().to_owned();
    assert!(statement.starts_with("INSERT INTO order_events"), "{statement}");

    // The worker's trace is also found by searching the worker service.
    let by_worker = get_json(&format!("{}/api/traces?service=worker&limit=50&lookback=1h", sys.api)).await;
    let ids: Vec<&str> =
        by_worker["data"].as_array().expect("data").iter().filter_map(|t| t["traceID"].as_str()).collect();
    assert!(ids.contains(&trace_id.as_str()), "{ids:?} lacks {trace_id}");
    let fetched = get_json(&format!("{}/api/traces/{trace_id}", sys.api)).await;
    assert_eq!(spans_of(&fetched["data"][0]).len(), spans.len());

    // The worker's JSON log line for that event carries the trace id.
    let worker_log = sys.log("worker");
    let line = worker_log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "event stored" && l["trace_id"] == trace_id.as_str())
        .unwrap_or_else(|| panic!("no 'event stored' log line with trace {trace_id}:\n{worker_log}"));
    assert_eq!(line["service"], "worker");
    assert_eq!(line["tenant"], "acme");

    // The same event reached Sightline as an OTLP log record, with the ids
    // of the span it was logged in (the SDK's tracing → OTLP logs bridge).
    let span_id = line["span_id"].as_str().expect("span_id in the JSON line").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let record = loop {
        let log = strip_ansi(&sys.log("sightline"));
        if let Some(l) = log.lines().find(|l| {
            l.contains("log record")
                && l.contains("body=event stored")
                && l.contains(&format!("trace_id={trace_id}"))
        }) {
            break l.to_owned();
        }
        assert!(Instant::now() < deadline, "no OTLP log record 'event stored' of trace {trace_id}:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(record.contains(&format!("span_id={span_id}")), "{record}");
    assert!(record.contains(r#"service="worker""#), "{record}");

    // Health probes (wait_ok polled /health of every service) ping Redis
    // and check NATS: none of that may start a trace of its own.
    for svc in ["gateway", "orders", "worker"] {
        let pings =
            get_json(&format!("{}/api/traces?service={svc}&operation=PING&limit=5&lookback=1h", sys.api))
                .await;
        assert_eq!(pings["data"].as_array().map(Vec::len), Some(0), "{svc}: probe traces: {pings}");
    }

    // The traffic driver: one user action, one trace, named for the action.
    let out = Command::new(env!("CARGO_BIN_EXE_sightline-demo"))
        .args(["drive", "--gateway", &sys.gateway, "--rounds", "1", "--interval-ms", "0"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &sys.otlp)
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTLP_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .output()
        .expect("running the driver");
    assert!(out.status.success(), "driver: {}", String::from_utf8_lossy(&out.stderr));
    let placed = sys
        .wait_traces("traffic-driver", "user places an order", |s| {
            s.iter()
                .filter(|s| s.service == "gateway" && s.tag("span.kind") == Some(&json!("server")))
                .count()
                >= 4
                && s.iter().any(|s| s.name == "process order.audit")
        })
        .await;
    assert_eq!(placed.len(), 1, "one action, one trace");
    let spans = spans_of(&placed[0]);
    let root = one(&spans, "traffic-driver", "user places an order");
    assert_eq!(root.parent, None);
    for op in ["POST /auth/login", "GET /api/{*path}", "POST /api/{*path}"] {
        assert!(
            spans.iter().any(|s| s.service == "gateway" && s.name == op),
            "{op} in the action's trace: {spans:#?}"
        );
    }

    // The RabbitMQ hop: worker -> notifier -> auditor, in the same trace;
    // the notifier's baggage change reached the auditor without re-attach.
    let notified = one(&spans, "worker", "process order.notifications");
    assert_eq!(notified.tag("messaging.system"), Some(&json!("rabbitmq")));
    assert_eq!(notified.tag("messaging.consumer.group.name"), Some(&json!("order.notifications")));
    assert!(
        notified.tag("messaging.message.id").and_then(Value::as_str).is_some_and(|s| s.starts_with("order-"))
    );
    assert!(notified.events.iter().any(|e| e == "notification_sent"), "{notified:?}");
    let to_audit = child_of(&spans, notified, "worker", "publish order.audit");
    let audited = child_of(&spans, to_audit, "worker", "process order.audit");
    assert_eq!(audited.tag("notification.channel"), Some(&json!("email")));
    assert_eq!(audited.tag("tenant"), notified.tag("tenant"), "the gateway's tenant made both hops");
    assert!(audited.events.iter().any(|e| e == "audit_recorded"), "{audited:?}");
    drop(sys);
}
