//! OTLP logs and metrics: a stock SDK pointed at Sightline gets success
//! for all three signals with no config file; log records keep their
//! span's ids; metrics are scraped from the API port and forwarded to a
//! real Prometheus with `--metrics-remote-write`.

use crate::harness::strip_ansi;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Launch, Ports, Server, agent, post, python, python_script};

fn run_python(protocol: &str, endpoint: &str, service: &str) -> Value {
    let out = Command::new(python())
        .arg(python_script("otlp_logs_metrics.py"))
        .args([protocol, endpoint, service])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{stdout}: {e}"))
}

fn get_text(url: &str) -> (u16, String) {
    let resp = agent().get(url).call().expect("GET");
    let status = resp.status().as_u16();
    (status, resp.into_body().read_to_string().unwrap_or_default())
}

/// The value of the one line of `/metrics` starting with `prefix`.
fn metric(server: &Server, prefix: &str) -> f64 {
    let (_, text) = get_text(&format!("{}/metrics", server.api));
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn stock_python_logs_and_metrics_get_success_over_grpc_and_http_and_bad_bodies_get_400() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    for (protocol, endpoint) in
        [("grpc", format!("http://{}", server.grpc)), ("http", server.otlp_http.clone())]
    {
        let out = run_python(protocol, &endpoint, &format!("shop-{protocol}"));
        // SimpleLogRecordProcessor exports each of the three records.
        assert_eq!(
            out["results"]["logs"],
            serde_json::json!(["SUCCESS", "SUCCESS", "SUCCESS"]),
            "{protocol}"
        );
        assert_eq!(out["results"]["metrics"][0], "SUCCESS", "{protocol}: {out}");
        let (proto_label, n) = if protocol == "grpc" { ("grpc", 3.0) } else { ("http_protobuf", 3.0) };
        let accepted = metric(
            &server,
            &format!(
                r#"sightline_receive_log_records_total{{receiver="otlp",protocol="{proto_label}",outcome="accepted"}}"#
            ),
        );
        assert_eq!(accepted, n, "{protocol}");
        let points = metric(
            &server,
            &format!(
                r#"sightline_receive_metric_points_total{{receiver="otlp",protocol="{proto_label}",outcome="accepted"}}"#
            ),
        );
        assert!(points >= 2.0, "{protocol}: {points}");
    }
    // The default metrics pipeline's series, on the API port.
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (status, page) = get_text(&format!("{}/metrics/otlp", server.api));
        assert_eq!(status, 200);
        if page.contains(r#"job="shop-http""#) || Instant::now() > deadline {
            break page;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        page.lines().any(|l| l.starts_with("orders_placed_total{")
            && l.contains(r#"job="shop-grpc""#)
            && l.ends_with(" 3")),
        "{page}"
    );
    assert!(page.contains("checkout_duration_milliseconds_bucket{"), "{page}");
    assert!(page.contains(r#"job="shop-http""#), "{page}");
    // The default logs pipeline ends in the log store: each service's three
    // records are served by /api/logs.
    for service in ["shop-grpc", "shop-http"] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, logs) = server.get_json(&format!("/api/logs?service={service}"));
            assert_eq!(status, 200, "{logs}");
            let n = logs["data"].as_array().map_or(0, Vec::len);
            if n == 3 {
                assert!(logs["data"].as_array().unwrap().iter().all(|r| r["service"] == service), "{logs}");
                break;
            }
            assert!(n < 3 && Instant::now() < deadline, "{service}: {logs}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    for path in ["/v1/logs", "/v1/metrics"] {
        let url = format!("{}{path}", server.otlp_http);
        let reply = post(&url, "application/x-protobuf", None, b"\xff\xff\xff");
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        let field = if path == "/v1/logs" { "resourceLogs" } else { "resourceMetrics" };
        let reply = post(&url, "application/json", None, format!("{{\"{field}\": 7}}").as_bytes());
        assert_eq!(reply.status, 400, "{path}");
        assert!(reply.text().contains("invalid OTLP/JSON"), "{path}: {}", reply.text());
    }
}

/// A config whose logs pipeline prints every record (`debug`, detailed):
/// the Python logging handler's records carry the span's ids.
#[test]
fn python_log_records_carry_their_span_ids_and_unconfigured_signals_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sightline.toml");
    std::fs::write(
        &config,
        r#"
[exporters.debug]
verbosity = "detailed"

[service.pipelines.traces]
receivers = ["otlp"]
exporters = ["store"]

[service.pipelines.logs]
receivers = ["otlp"]
processors = ["batch"]
exporters = ["debug"]
"#,
    )
    .unwrap();
    let config = config.display().to_string();
    let server = Server::launch(
        &dir.path().join("data"),
        Ports::free(),
        Launch { extra: &["--config", &config], ..Launch::default() },
    );
    let out = run_python("http", &server.otlp_http, "shop");
    assert_eq!(out["results"]["logs"], serde_json::json!(["SUCCESS", "SUCCESS", "SUCCESS"]));
    // No metrics pipeline takes from otlp: the Collector's answer, 404.
    assert_eq!(out["results"]["metrics"][0], "FAILURE", "{out}");
    let reply = post(&format!("{}/v1/metrics", server.otlp_http), "application/x-protobuf", None, b"");
    assert_eq!(reply.status, 404);
    let (trace_id, span_id) = (out["trace_id"].as_str().unwrap(), out["span_id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stderr = strip_ansi(&server.stderr());
        let lines: Vec<&str> =
            stderr.lines().filter(|l| l.contains("debug exporter") || l.contains("body=")).collect();
        let declined = lines.iter().find(|l| l.contains("payment declined for order A-17"));
        if let Some(line) = declined {
            assert!(line.contains(&format!("trace_id={trace_id}")), "{line}");
            assert!(line.contains(&format!("span_id={span_id}")), "{line}");
            assert!(line.contains("severity=17"), "{line}");
            let outside =
                lines.iter().find(|l| l.contains("no span here")).expect("the record outside the span");
            assert!(outside.contains("trace_id= "), "{outside}");
            break;
        }
        assert!(Instant::now() < deadline, "no debug line for the record:\n{stderr}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Prometheus server on a free port with the remote-write receiver on,
/// scraping Sightline's `/metrics/otlp`; killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(scrape_target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sightline-otlp\n    honor_labels: true\n    metrics_path: /metrics/otlp\n    static_configs:\n      - targets: [\"{scrape_target}\"]\n"
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run prometheus ({e}); .ci/run installs it"));
        let p = Prometheus { child, base: format!("http://127.0.0.1:{port}"), _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get_ok(&format!("{}/-/ready", p.base)).is_none() {
            assert!(Instant::now() < deadline, "prometheus not ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// Waits until `promql` returns one series with `want`; its labels.
    fn expect(&self, promql: &str, want: f64) -> serde_json::Map<String, Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let url = format!("{}/api/v1/query?query={}", self.base, percent(promql));
            if let Some(body) = get_ok(&url) {
                last = serde_json::from_str(&body).unwrap();
                let result = last["data"]["result"].as_array().cloned().unwrap_or_default();
                if result.len() == 1
                    && result[0]["value"][1].as_str().and_then(|v| v.parse().ok()) == Some(want)
                {
                    return result[0]["metric"].as_object().unwrap().clone();
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{promql}: want one series = {want}, have {last}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_ok(url: &str) -> Option<String> {
    let (status, body) = agent().get(url).call().ok().map(|r| {
        let status = r.status().as_u16();
        (status, r.into_body().read_to_string().unwrap_or_default())
    })?;
    (status == 200).then_some(body)
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `--metrics-remote-write` pushes the SDK's counter and histogram to a
/// real Prometheus, which also scrapes them from `/metrics/otlp`.
#[test]
fn metrics_reach_a_real_prometheus_by_remote_write_and_by_scraping_the_api_port() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let prometheus = Prometheus::start(&format!("127.0.0.1:{}", ports.api));
    let write = format!("{}/api/v1/write", prometheus.base);
    let server = Server::launch(
        &dir.path().join("data"),
        ports,
        Launch { extra: &["--metrics-remote-write", &write], ..Launch::default() },
    );
    let out = run_python("grpc", &format!("http://{}", server.grpc), "pay");
    assert_eq!(out["results"]["metrics"][0], "SUCCESS", "{out}");
    // Pushed: the remote-write exporter labels by job and instance.
    let pushed = prometheus.expect(r#"orders_placed_total{job="pay",payment_method="card"}"#, 3.0);
    assert!(pushed.contains_key("instance"), "{pushed:?}");
    prometheus.expect(r#"checkout_duration_milliseconds_count{job="pay"}"#, 1.0);
    prometheus.expect(r#"checkout_duration_milliseconds_bucket{job="pay",le="50"}"#, 1.0);
    // Scraped from the API port (honor_labels keeps job="pay"): two series
    // of the same name and labels would merge, so ask by scrape job.
    let (status, page) = get_text(&format!("{}/metrics/otlp", server.api));
    assert_eq!(status, 200);
    assert!(page.contains("orders_placed_total{"), "{page}");
    prometheus.expect(r#"count(up{job="sightline-otlp"} == 1)"#, 1.0);
    drop(server);
}

/// The `filelog` receiver in the binary: seed 002's JSON lines become log
/// records with their trace context, and a restart resumes without
/// repeating a line.
#[test]
fn filelog_tails_seed_002_lines_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let config = dir.path().join("sightline.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[receivers.filelog]
include = ["{}/*.log"]
start_at = "beginning"
poll_interval = "50ms"

[exporters.debug]
verbosity = "detailed"

[service.pipelines.traces]
receivers = ["otlp"]
exporters = ["store"]

[service.pipelines.logs]
receivers = ["filelog"]
exporters = ["debug"]
"#,
            logs.display()
        ),
    )
    .unwrap();
    let line = |i: usize| {
        format!(
            r#"{{"timestamp": "2026-03-01T12:00:00.{i:06}Z", "level": "ERROR", "service": "orders", "message": "line {i}", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}}"#
        )
    };
    let write = |from: usize, to: usize| {
        use std::io::Write as _;
        let mut f =
            std::fs::OpenOptions::new().create(true).append(true).open(logs.join("orders.log")).unwrap();
        for i in from..to {
            writeln!(f, "{}", line(i)).unwrap();
        }
    };
    let seen = |server: &Server, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let stderr = strip_ansi(&server.stderr());
            let records: Vec<String> =
                stderr.lines().filter(|l| l.contains("log record")).map(str::to_owned).collect();
            if records.len() >= n {
                return records;
            }
            assert!(Instant::now() < deadline, "{} of {n} records:\n{stderr}", records.len());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    write(0, 3);
    let config = config.display().to_string();
    let data = dir.path().join("data");
    let ports = Ports::free();
    let mut server =
        Server::launch(&data, ports, Launch { extra: &["--config", &config], ..Launch::default() });
    let records = seen(&server, 3);
    assert!(records[0].contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"), "{}", records[0]);
    assert!(records[0].contains("span_id=00f067aa0ba902b7"), "{}", records[0]);
    assert!(
        records[0].contains(r#"service="orders""#) && records[0].contains("severity=17"),
        "{}",
        records[0]
    );
    let (_, health) = server.get_json("/health");
    let check =
        health["checks"].as_array().unwrap().iter().find(|c| c["name"] == "receiver filelog").cloned();
    let check = check.unwrap_or_else(|| panic!("no filelog check in {health}"));
    assert_eq!(check["status"], "ok", "{check}");
    assert_eq!(check["detail"], "following 1 file(s)", "{check}");
    assert!(server.terminate().success());
    write(3, 5);
    // A new server (its stderr log starts empty) reads on from the saved
    // position: the lines written while it was down, then a last one. The
    // file is read in order, so a repeated line would come before it.
    let server = Server::launch(&data, ports, Launch { extra: &["--config", &config], ..Launch::default() });
    seen(&server, 2);
    write(5, 6);
    let records = seen(&server, 3);
    assert_eq!(records.len(), 3, "{records:#?}");
    for (record, i) in records.iter().zip(3..6) {
        assert!(record.contains(&format!("body=line {i} ")), "want line {i}: {record}");
    }
}

/// A remote-write endpoint with tenants, as Mimir or Cortex is one: a
/// proxy that records each request's `X-Scope-OrgID` and forwards it to
/// the real Prometheus of that tenant (`team-a` to one, anything else to
/// another), so a request carrying two tenants' series or the wrong
/// header lands where the test sees it.
struct TenantProxy {
    addr: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
}

impl TenantProxy {
    fn start(team_a: String, others: String) -> TenantProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (record, team_a, others) =
                    (std::sync::Arc::clone(&record), team_a.clone(), others.clone());
                std::thread::spawn(move || proxy_connection(stream, &record, &team_a, &others));
            }
        });
        TenantProxy { addr, seen }
    }

    /// The `X-Scope-OrgID` of every request so far, deduplicated.
    fn org_ids(&self) -> Vec<Option<String>> {
        let mut ids = self.seen.lock().unwrap().clone();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Serves one keep-alive connection of remote-write requests.
fn proxy_connection(
    stream: std::net::TcpStream,
    seen: &std::sync::Mutex<Vec<Option<String>>>,
    team_a: &str,
    others: &str,
) {
    use std::io::{BufRead as _, Read as _, Write as _};
    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut org_id = None;
        let mut length = 0usize;
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "x-scope-orgid" => org_id = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let target = if org_id.as_deref() == Some("team-a") { team_a } else { others };
        seen.lock().unwrap().push(org_id);
        let status = agent()
            .post(&format!("{target}/api/v1/write"))
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .header("x-prometheus-remote-write-version", "0.1.0")
            .send(&body[..])
            .map_or(502, |r| r.status().as_u16());
        let reply = format!("HTTP/1.1 {status} Forwarded\r\ncontent-length: 0\r\n\r\n");
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Metrics per tenant, as Mimir and Cortex users expect: the stock Python
/// SDK sends as `team-a`, `team-b` (`X-Scope-OrgID`) and the default
/// tenant; remote write sends each tenant's series in requests of their
/// own with the tenant's `X-Scope-OrgID` (none for the default tenant),
/// which reach real Prometheus servers; `/metrics/otlp` serves the
/// caller's tenant's series only.
#[test]
fn metrics_of_each_tenant_are_written_with_its_org_id_and_scraped_by_it_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    // They scrape nothing (port 1 is closed): only remote write fills them.
    let (prom_a, prom_others) = (Prometheus::start("127.0.0.1:1"), Prometheus::start("127.0.0.1:1"));
    let proxy = TenantProxy::start(prom_a.base.clone(), prom_others.base.clone());
    let write = format!("{}/api/v1/write", proxy.addr);
    let server = Server::launch(
        &dir.path().join("data"),
        ports,
        Launch { extra: &["--metrics-remote-write", &write], ..Launch::default() },
    );
    let grpc = format!("http://{}", server.grpc);
    for (protocol, endpoint, service, org_id) in [
        ("grpc", grpc.as_str(), "pay-a", Some("team-a")),
        ("http", server.otlp_http.as_str(), "pay-b", Some("team-b")),
        ("grpc", grpc.as_str(), "pay-default", None),
    ] {
        let mut python = Command::new(crate::harness::python());
        python.arg(python_script("otlp_logs_metrics.py")).args([protocol, endpoint, service]);
        if let Some(org_id) = org_id {
            python.env("OTEL_EXPORTER_OTLP_HEADERS", format!("x-scope-orgid={org_id}"));
        }
        let out = python.output().expect("run python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
        // No refusal: the points were taken.
        assert_eq!(out["results"]["metrics"][0], "SUCCESS", "{service}: {out}");
    }
    // Each tenant's series reached the Prometheus its header routes to.
    prom_a.expect(r#"orders_placed_total{job="pay-a",payment_method="card"}"#, 3.0);
    prom_a.expect(r#"checkout_duration_milliseconds_count{job="pay-a"}"#, 1.0);
    prom_others.expect(r#"orders_placed_total{job="pay-b",payment_method="card"}"#, 3.0);
    prom_others.expect(r#"orders_placed_total{job="pay-default",payment_method="card"}"#, 3.0);
    // …and nowhere else: no request mixed tenants.
    prom_a.expect(r#"count(orders_placed_total) or vector(0)"#, 1.0);
    prom_others.expect(r#"count(orders_placed_total{job="pay-a"}) or vector(0)"#, 0.0);
    assert_eq!(
        proxy.org_ids(),
        vec![None, Some("team-a".to_owned()), Some("team-b".to_owned())],
        "the default tenant sends no X-Scope-OrgID, the others their own"
    );

    // The scrape page shows the caller's tenant's series only.
    let scrape = |org_id: Option<&str>| {
        let mut request = agent().get(&format!("{}/metrics/otlp", server.api));
        if let Some(org_id) = org_id {
            request = request.header("X-Scope-OrgID", org_id);
        }
        let mut response = request.call().expect("GET /metrics/otlp");
        assert_eq!(response.status().as_u16(), 200);
        let page = response.body_mut().read_to_string().unwrap();
        ["pay-a", "pay-b", "pay-default"]
            .into_iter()
            .filter(|job| {
                page.lines()
                    .any(|l| l.starts_with("orders_placed_total{") && l.contains(&format!("job=\"{job}\"")))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(scrape(Some("team-a")), ["pay-a"]);
    assert_eq!(scrape(Some("team-b")), ["pay-b"]);
    assert_eq!(scrape(None), ["pay-default"]);
    assert_eq!(scrape(Some("single-tenant")), ["pay-default"]);
    assert_eq!(scrape(Some("nobody")), Vec::<&str>::new());
    drop(server);
}

/// A `filelog` receiver's `tenant`: its lines are that tenant's records
/// (`/api/logs` as that tenant finds them, the default tenant does not);
/// `validate-config` reports a tenant name `X-Scope-OrgID` would refuse.
#[test]
fn filelog_writes_to_its_configured_tenant_and_a_bad_tenant_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let config = |tenant: &str| {
        let path = dir.path().join("sightline.toml");
        std::fs::write(
            &path,
            format!(
                "[receivers.filelog]\ninclude = [\"{}/*.log\"]\nstart_at = \"beginning\"\npoll_interval = \"50ms\"\n\
                 tenant = \"{tenant}\"\n\n[service.pipelines.traces]\nreceivers = [\"otlp\"]\nexporters = [\"store\"]\n\n\
                 [service.pipelines.logs]\nreceivers = [\"filelog\"]\nexporters = [\"store\"]\n",
                logs.display()
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    let bad = config("team a");
    let out = Command::new(crate::harness::binary()).args(["validate-config", &bad]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("receivers.filelog.tenant: invalid tenant \"team a\""), "{stderr}");

    std::fs::write(
        logs.join("orders.log"),
        "{\"timestamp\": \"2026-03-01T12:00:00Z\", \"level\": \"ERROR\", \"service\": \"orders\", \"message\": \"card declined\"}\n",
    )
    .unwrap();
    let good = config("team-a");
    let server = Server::launch(
        &dir.path().join("data"),
        Ports::free(),
        Launch { extra: &["--config", &good], ..Launch::default() },
    );
    let services = |tenant: Option<&str>| {
        let mut request = agent().get(&format!("{}/api/logs?service=orders", server.api));
        if let Some(tenant) = tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        let body: Value =
            serde_json::from_str(&request.call().unwrap().body_mut().read_to_string().unwrap()).unwrap();
        body["data"].as_array().map_or(0, Vec::len)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while services(Some("team-a")) == 0 {
        assert!(Instant::now() < deadline, "no record for team-a:\n{}", server.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(services(Some("team-a")), 1);
    assert_eq!(services(None), 0, "the default tenant reads team-a's file records");
}
