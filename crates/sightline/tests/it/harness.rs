//! Starts the real `sightline` binary on free loopback ports and talks to it.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::Value;

/// The four listener ports of a server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ports {
    pub(crate) grpc: u16,
    pub(crate) http: u16,
    pub(crate) api: u16,
    pub(crate) zipkin: u16,
}

impl Ports {
    pub(crate) fn free() -> Ports {
        Ports { grpc: free_port(), http: free_port(), api: free_port(), zipkin: free_port() }
    }
}

/// A running server. Killed (SIGKILL) on drop if still running.
pub(crate) struct Server {
    child: Option<Child>,
    pub(crate) grpc: String,
    pub(crate) otlp_http: String,
    pub(crate) api: String,
    pub(crate) zipkin: String,
    stderr_path: PathBuf,
    tls: Option<Tls>,
}

/// How to start a server beyond its ports.
#[derive(Default)]
pub(crate) struct Launch<'a> {
    /// Extra flags.
    pub(crate) extra: &'a [&'a str],
    /// Shell commands to run before `exec` (e.g. `ulimit`).
    pub(crate) shell: Option<&'a str>,
    /// Extra environment variables.
    pub(crate) env: Vec<(&'a str, String)>,
    /// The server speaks TLS: how clients trust it.
    pub(crate) tls: Option<Tls>,
}

/// What a client needs to talk TLS to a test server.
#[derive(Debug, Clone)]
pub(crate) struct Tls {
    /// The CA certificate to trust.
    pub(crate) ca: PathBuf,
    /// A client certificate and key (mutual TLS).
    pub(crate) client: Option<(PathBuf, PathBuf)>,
}

impl Tls {
    /// A client trusting only the test CA.
    pub(crate) fn agent(&self) -> ureq::Agent {
        use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};
        let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ca = Certificate::from_pem(&read(&self.ca)).expect("CA PEM").to_owned();
        let mut config = TlsConfig::builder().root_certs(RootCerts::new_with_certs(&[ca]));
        if let Some((cert, key)) = &self.client {
            let chain = [Certificate::from_pem(&read(cert)).expect("cert PEM").to_owned()];
            let key = PrivateKey::from_pem(&read(key)).expect("key PEM").to_owned();
            config = config.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
        }
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .tls_config(config.build())
            .build()
            .into()
    }
}

/// The binary under test: this build's, or `SIGHTLINE_BIN` (to run a test
/// against an older build and see it fail).
pub(crate) fn binary() -> PathBuf {
    std::env::var_os("SIGHTLINE_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sightline")), PathBuf::from)
}

/// A loopback port no other caller in this process was given. Ports are
/// walked from a per-process offset below the kernel's ephemeral range
/// (32768+), so neither two calls nor an outgoing connection can get the
/// same one between choosing and the server binding it; `bind(":0")` could
/// hand out one port twice once the probe socket closed.
fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = (std::process::id() % 600) * 20;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(20_000 + (offset + n) % 12_000).expect("below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Server {
    /// Starts a server on `data_dir` and waits until `/ready` answers 200.
    pub(crate) fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// Like [`Server::start`] with extra flags.
    pub(crate) fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_on(data_dir, Ports::free(), extra)
    }

    /// Starts on the given ports (to restart a server where clients expect it).
    pub(crate) fn start_on(data_dir: &Path, ports: Ports, extra: &[&str]) -> Server {
        Server::launch(data_dir, ports, Launch { extra, ..Launch::default() })
    }

    /// Like [`Server::start_on`] with extra environment variables.
    pub(crate) fn start_env(
        data_dir: &Path,
        ports: Ports,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Server {
        let env = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        Server::launch(data_dir, ports, Launch { extra, env, ..Launch::default() })
    }

    /// Starts under `bash -c "SETUP; exec sightline serve …"`, e.g. with
    /// `ulimit` settings the server inherits.
    pub(crate) fn start_in_shell(data_dir: &Path, extra: &[&str], setup: &str) -> Server {
        Server::launch(data_dir, Ports::free(), Launch { extra, shell: Some(setup), ..Launch::default() })
    }

    /// Starts as `launch` says and waits until `/ready` answers 200.
    pub(crate) fn launch(data_dir: &Path, ports: Ports, launch: Launch<'_>) -> Server {
        let Ports { grpc: g, http: h, api: a, zipkin: z } = ports;
        let stderr_path = data_dir.with_extension(format!("stderr-{a}.log"));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr log");
        let mut command = match launch.shell {
            None => Command::new(binary()),
            Some(setup) => {
                let mut c = Command::new("bash");
                c.arg("-c").arg(format!("{{ {setup}; }} || exit 97; exec \"$0\" \"$@\"")).arg(binary());
                c
            }
        };
        command.envs(launch.env.iter().map(|(k, v)| (k, v)));
        let child = command
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--otlp-grpc-addr", &format!("127.0.0.1:{g}")])
            .args(["--otlp-http-addr", &format!("127.0.0.1:{h}")])
            .args(["--http-addr", &format!("127.0.0.1:{a}")])
            .args(["--zipkin-addr", &format!("127.0.0.1:{z}")])
            .args(launch.extra)
            .env_remove("SIGHTLINE_CONFIG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn sightline");
        // Under TLS the certificate names localhost.
        let (scheme, host) =
            if launch.tls.is_some() { ("https", "localhost") } else { ("http", "127.0.0.1") };
        let mut server = Server {
            child: Some(child),
            grpc: format!("{host}:{g}"),
            otlp_http: format!("{scheme}://{host}:{h}"),
            api: format!("{scheme}://{host}:{a}"),
            zipkin: format!("{scheme}://{host}:{z}/api/v2/spans"),
            stderr_path,
            tls: launch.tls,
        };
        server.wait_ready();
        server
    }

    /// An HTTP client for this server (trusting its test CA under TLS, with
    /// the client certificate when one is set).
    pub(crate) fn client(&self) -> ureq::Agent {
        match &self.tls {
            None => agent(),
            Some(tls) => tls.agent(),
        }
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("sightline exited during start with {status}: {}", self.stderr());
            }
            if let Ok(resp) = self.client().get(&format!("{}/ready", self.api)).call()
                && resp.status() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "sightline not ready after 60s: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Resident memory of the server process, from /proc.
    pub(crate) fn rss_bytes(&self) -> u64 {
        self.proc_status_bytes("VmRSS:")
    }

    /// The most the server process was ever resident, from /proc.
    pub(crate) fn peak_rss_bytes(&self) -> u64 {
        self.proc_status_bytes("VmHWM:")
    }

    fn proc_status_bytes(&self, field: &str) -> u64 {
        let Some(c) = &self.child else { return 0 };
        let status = std::fs::read_to_string(format!("/proc/{}/status", c.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| {
                l.trim_start_matches(field).trim().trim_end_matches("kB").trim().parse::<u64>().ok()
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// CPU time (user + system) the server used so far, from /proc.
    pub(crate) fn cpu_time(&self) -> Duration {
        let Some(c) = &self.child else { return Duration::ZERO };
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", c.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) in parentheses.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        // utime and stime are fields 14 and 15 of stat, 11 and 12 here; the
        // kernel's clock tick is 100 Hz on Linux.
        Duration::from_millis((ticks(11) + ticks(12)) * 10)
    }

    /// What the server wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for exit.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("server running");
        let status = Command::new("kill").args(["-TERM", &c.id().to_string()]).status().expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit 60s after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET on the query API: (status, parsed JSON body).
    pub(crate) fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.client().get(&format!("{}{path}", self.api)).call().expect("GET");
        let status = resp.status().as_u16();
        let mut body = String::new();
        resp.into_body().into_reader().read_to_string(&mut body).expect("body");
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
    }

    /// The Jaeger trace JSON of `trace_id`, waiting up to `wait` for it to
    /// have at least `min_spans` spans (exporters flush asynchronously).
    pub(crate) fn wait_trace(&self, trace_id: &str, min_spans: usize, wait: Duration) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let (status, body) = self.get_json(&format!("/api/traces/{trace_id}"));
            if status == 200 && body["data"][0]["spans"].as_array().map_or(0, Vec::len) >= min_spans {
                return body["data"][0].clone();
            }
            assert!(Instant::now() < deadline, "trace {trace_id} not complete in {wait:?}: {status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// POSTs raw bytes to OTLP/HTTP `/v1/traces`.
    pub(crate) fn post_traces(&self, content_type: &str, encoding: Option<&str>, body: &[u8]) -> Reply {
        post_with(&self.client(), &format!("{}/v1/traces", self.otlp_http), content_type, encoding, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An HTTP reply read fully.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client that reports 4xx/5xx as replies, not errors.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

pub(crate) fn post(url: &str, content_type: &str, encoding: Option<&str>, body: &[u8]) -> Reply {
    post_with(&agent(), url, content_type, encoding, body)
}

/// [`post`] with a given client (e.g. [`Server::client`] under TLS).
pub(crate) fn post_with(
    agent: &ureq::Agent,
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut req = agent.post(url).header("content-type", content_type);
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send(body).expect("POST");
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let status = resp.status().as_u16();
    let content_type = header("content-type").unwrap_or_default();
    let mut body = Vec::new();
    resp.into_body().into_reader().read_to_end(&mut body).expect("body");
    Reply { status, content_type, body }
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    gzip_level(bytes, flate2::Compression::fast())
}

pub(crate) fn gzip_level(bytes: &[u8], level: flate2::Compression) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

pub(crate) fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(any_value::Value::StringValue(value.into())) }),
        key_strindex: 0,
    }
}

/// An export request with `spans` from one service.
pub(crate) fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "it".into(), ..Default::default() }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A span with the given ids, starting `start_ns` and lasting 1 ms.
pub(crate) fn span(
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent: Option<[u8; 8]>,
    name: &str,
    start_ns: u64,
) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start_ns,
        end_time_unix_nano: start_ns + 1_000_000,
        attributes: vec![string_kv("http.route", "/it")],
        ..Default::default()
    }
}

pub(crate) fn encode(req: &ExportTraceServiceRequest) -> Vec<u8> {
    req.encode_to_vec()
}

pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Python interpreter of the venv `.ci/run` builds, or
/// `SIGHTLINE_PYTHON`. Panics with the fix when neither exists: these
/// tests must not pass by skipping.
pub(crate) fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SIGHTLINE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python venv at {}: run .ci/run once (it creates it) or set SIGHTLINE_PYTHON",
        venv.display()
    );
    venv
}

/// Path of a script under tests/python.
pub(crate) fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python").join(name)
}

/// `text` without terminal colour codes (`ESC [ … m`), for matching the
/// server's log lines.
pub(crate) fn strip_ansi(text: &str) -> String {
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
