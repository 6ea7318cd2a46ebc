//! Starts the real processes (redis-server, nats-server, `sightline`, the
//! demo services) on free loopback ports and stops them on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A loopback port no other caller in this process was given. Ports are
/// walked from a per-process offset below the kernel's ephemeral range
/// (32768+), so neither two calls nor an outgoing connection can get the
/// same one between choosing and the server binding it; `bind(":0")` could
/// hand out one port twice once the probe socket closed.
pub(crate) fn free_port() -> u16 {
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

/// The path of a Debian-packaged server, or a failure that says how to
/// install it (never a silent skip).
pub(crate) fn server_binary(name: &str) -> PathBuf {
    let from_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    from_path.unwrap_or_else(|| {
        panic!(
            "{name} is not installed; this test needs it. Install with: \
             DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server nats-server rabbitmq-server \
             (or run demo/ci.sh, which .ci/run calls)"
        )
    })
}

/// `target/<profile>/sightline`, next to this crate's binary.
pub(crate) fn sightline_binary() -> PathBuf {
    let demo = Path::new(env!("CARGO_BIN_EXE_sightline-demo"));
    let path = demo.with_file_name(format!("sightline{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p sightline` (cargo test --workspace builds it)",
        path.display()
    );
    path
}

/// A child process, killed on drop; its output goes to a log file.
pub(crate) struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub(crate) fn spawn(name: &str, dir: &Path, cmd: &mut Command) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Proc { name: name.to_owned(), child: Some(child), log }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits up to `grace` for the exit (SIGKILL after it).
    /// For wrappers (rabbitmq-server) that stop their children on TERM.
    pub(crate) fn terminate(&mut self, grace: Duration) {
        let Some(mut c) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(c.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Fails with the log if the process has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            panic!("{} exited with {status}; its log:\n{}", self.name, self.log());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn http() -> reqwest::Client {
    // As the demo's main does: reqwest may come without a crypto provider
    // in a workspace build (the object-store client asks for none).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// Waits until `url` answers 2xx, failing with the process log.
pub(crate) async fn wait_ok(url: &str, proc: &mut Proc, within: Duration) {
    let deadline = Instant::now() + within;
    let client = http();
    loop {
        proc.assert_running();
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} not ready in {within:?}; log:\n{}", proc.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a TCP port accepts connections.
pub(crate) async fn wait_port(port: u16, proc: &mut Proc, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        proc.assert_running();
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "port {port} not open in {within:?}; log:\n{}", proc.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn get_json(url: &str) -> Value {
    let resp = http().get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert!(status.is_success(), "GET {url}: {status} {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

/// A span of a Jaeger-JSON trace, flattened for assertions.
#[derive(Debug, Clone)]
pub(crate) struct JSpan {
    pub(crate) service: String,
    pub(crate) name: String,
    pub(crate) id: String,
    pub(crate) trace_id: String,
    pub(crate) parent: Option<String>,
    pub(crate) tags: Vec<(String, Value)>,
    /// Span event names (Jaeger logs' `event` field).
    pub(crate) events: Vec<String>,
}

impl JSpan {
    pub(crate) fn tag(&self, key: &str) -> Option<&Value> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

pub(crate) fn spans_of(trace: &Value) -> Vec<JSpan> {
    let processes = &trace["processes"];
    trace["spans"]
        .as_array()
        .expect("spans")
        .iter()
        .map(|s| JSpan {
            service: processes[s["processID"].as_str().expect("processID")]["serviceName"]
                .as_str()
                .expect("serviceName")
                .to_owned(),
            name: s["operationName"].as_str().expect("operationName").to_owned(),
            id: s["spanID"].as_str().expect("spanID").to_owned(),
            trace_id: s["traceID"].as_str().expect("traceID").to_owned(),
            parent: s["references"]
                .as_array()
                .and_then(|r| r.iter().find(|r| r["refType"] == "CHILD_OF"))
                .map(|r| r["spanID"].as_str().expect("ref spanID").to_owned()),
            tags: s["tags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| (t["key"].as_str().unwrap_or("").to_owned(), t["value"].clone()))
                        .collect()
                })
                .unwrap_or_default(),
            events: s["logs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| {
                    l["fields"].as_array()?.iter().find(|f| f["key"] == "event")?["value"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect(),
        })
        .collect()
}

/// A RabbitMQ broker (Debian `rabbitmq-server`) on free loopback ports with
/// its own epmd, data and log directories under `dir`; stopped on drop.
pub(crate) struct RabbitMq {
    pub(crate) amqp_port: u16,
    proc: Option<Proc>,
    epmd: Option<Proc>,
    pid_file: PathBuf,
    node: String,
}

impl RabbitMq {
    pub(crate) async fn start(dir: &Path) -> RabbitMq {
        // The broker script itself: /usr/sbin/rabbitmq-server is a wrapper
        // that switches to the `rabbitmq` user, which cannot use our dir.
        let direct = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
        let rabbit = if direct.is_file() { direct } else { server_binary("rabbitmq-server") };
        {
            use std::os::unix::fs::PermissionsExt as _;
            // in case the broker runs as another user after all
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod dir");
        }
        let (amqp_port, dist_port, epmd_port) = (free_port(), free_port(), free_port());
        // Our own epmd on a free port, so nothing outlives the test.
        let mut epmd = Proc::spawn(
            "epmd",
            dir,
            Command::new(server_binary("epmd")).args(["-port", &epmd_port.to_string()]),
        );
        wait_port(epmd_port, &mut epmd, Duration::from_secs(20)).await;
        let node = format!("sightline{amqp_port}@localhost");
        let mut proc = Proc::spawn(
            "rabbitmq",
            dir,
            Command::new(rabbit)
                .env("ERL_EPMD_PORT", epmd_port.to_string())
                .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
                .env("RABBITMQ_NODE_PORT", amqp_port.to_string())
                .env("RABBITMQ_DIST_PORT", dist_port.to_string())
                .env("RABBITMQ_NODENAME", &node)
                .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
                .env("RABBITMQ_LOG_BASE", dir.join("log"))
                .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
                .env("RABBITMQ_PID_FILE", dir.join("rabbit.pid")),
        );
        let pid_file = dir.join("rabbit.pid");
        wait_port(amqp_port, &mut proc, Duration::from_secs(90)).await;
        RabbitMq { amqp_port, proc: Some(proc), epmd: Some(epmd), pid_file, node }
    }

    pub(crate) fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port)
    }
}

impl Drop for RabbitMq {
    /// The script stops the Erlang VM on TERM; the VM's own pid (from the
    /// pid file) is killed if it is still there after that.
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(Duration::from_secs(30));
        }
        if let Ok(pid) = std::fs::read_to_string(&self.pid_file) {
            let pid = pid.trim();
            // only if that pid is still our broker's VM
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&self.node) {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        drop(self.epmd.take());
    }
}
