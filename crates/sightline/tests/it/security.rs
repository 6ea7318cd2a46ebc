//! Issue 16's security items against the real binary: token
//! authentication with the stock Python SDK over both OTLP transports and
//! with the query API.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Server, agent, post, python, python_script};

const WRITER: &str = "writer-token-aaaaaaaaaaaaaaaa";
const READER: &str = "reader-token-bbbbbbbbbbbbbbbb";
const OTHER: &str = "other-tenant-cccccccccccccccc";

fn token_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("tokens");
    std::fs::write(
        &path,
        format!("# test tokens\n{WRITER} acme write\n{READER} acme read\n{OTHER} globex read,write\n"),
    )
    .unwrap();
    path
}

/// Runs the stock OTLP exporter configured by `env` (OTEL_* variables).
fn export(protocol: &str, env: &[(&str, String)]) -> Value {
    let mut command = Command::new(python());
    command.arg(python_script("otlp_env_export.py")).arg(protocol);
    command.env("OTEL_EXPORTER_OTLP_TIMEOUT", "10");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run python");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{stdout}: {e}"))
}

fn get(url: &str, authorization: Option<&str>) -> (u16, Vec<String>, String) {
    let mut request = agent().get(url);
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    let mut response = request.call().unwrap();
    let status = response.status().as_u16();
    let challenges = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, challenges, body)
}

fn basic(token: &str) -> String {
    use std::io::Write as _;
    let mut raw = Vec::new();
    write!(raw, "grafana:{token}").unwrap();
    // base64 without a dependency: the test only needs the standard alphabet.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// With --auth-tokens, the stock SDK exports over gRPC and HTTP only with a
/// write token (UNAUTHENTICATED / 401 without, refused with a read-only
/// token), queries need a read token (Bearer or Basic, 401 with both
/// challenges without one, 403 with a write-only token), /health and /ready
/// stay open, a reloaded file takes effect on SIGHUP, and no token is ever
/// logged.
#[test]
fn tokens_guard_otlp_zipkin_and_the_query_api() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_file(dir.path());
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--auth-tokens", tokens.to_str().unwrap(), "--log-level", "debug"],
    );
    let endpoints =
        [("grpc", format!("http://{}", server.grpc)), ("http/protobuf", server.otlp_http.clone())];
    let mut exported = Vec::new();
    for (protocol, endpoint) in &endpoints {
        let env = |token: Option<&str>| {
            let mut env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone())];
            if let Some(t) = token {
                env.push(("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization=Bearer%20{t}")));
            }
            env
        };
        assert_eq!(export(protocol, &env(None))["result"], "FAILURE", "{protocol} without a token");
        assert_eq!(export(protocol, &env(Some(READER)))["result"], "FAILURE", "{protocol} read-only token");
        let ok = export(protocol, &env(Some(WRITER)));
        assert_eq!(ok["result"], "SUCCESS", "{protocol}: {}", server.stderr());
        exported.push(ok["trace_id"].as_str().unwrap().to_owned());
    }
    // Raw HTTP: 401 without a token, on OTLP/HTTP and Zipkin alike.
    let reply = post(&format!("{}/v1/traces", server.otlp_http), "application/x-protobuf", None, b"");
    assert_eq!(reply.status, 401);
    assert_eq!(post(&server.zipkin, "application/json", None, b"[]").status, 401);

    // Queries.
    let trace_url = |id: &str| format!("{}/api/traces/{id}", server.api);
    let (status, challenges, _) = get(&trace_url(&exported[0]), None);
    assert_eq!(status, 401);
    assert!(
        challenges.iter().any(|c| c.starts_with("Basic"))
            && challenges.iter().any(|c| c.starts_with("Bearer"))
    );
    assert_eq!(get(&trace_url(&exported[0]), Some(&format!("Bearer {WRITER}"))).0, 403);
    for id in &exported {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _, body) = get(&trace_url(id), Some(&format!("Bearer {READER}")));
            if status == 200 {
                assert!(body.contains(id), "{body}");
                break;
            }
            assert!(Instant::now() < deadline, "trace {id}: {status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(get(&trace_url(id), Some(&basic(READER))).0, 200, "Basic with the token as password");
    }
    assert_eq!(get(&format!("{}/", server.api), None).0, 401, "the UI needs a token too");
    for open in ["/health", "/ready", "/metrics"] {
        assert_eq!(get(&format!("{}{open}", server.api), None).0, 200, "{open} stays open");
    }

    // Reload: the writer's token is revoked; SIGHUP applies it at once.
    std::fs::write(&tokens, format!("{READER} acme read\n")).unwrap();
    let pid = server.pid().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", server.otlp_http.clone()),
        ("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization=Bearer%20{WRITER}")),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while export("http/protobuf", &env)["result"] != "FAILURE" {
        assert!(Instant::now() < deadline, "the revoked token still works: {}", server.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = server.stderr();
    assert!(log.contains("reloaded the token file"), "{log}");
    for secret in [WRITER, READER, OTHER] {
        assert!(!log.contains(secret), "a token was logged");
    }
}

/// Without --auth-tokens, `X-Scope-OrgID` names the tenant; a malformed
/// one is refused instead of being stored under some other name.
#[test]
fn without_tokens_x_scope_orgid_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let reply = agent()
        .post(&format!("{}/v1/traces", server.otlp_http))
        .header("content-type", "application/json")
        .header("x-scope-orgid", "../../etc")
        .send(&b"{}"[..])
        .unwrap();
    assert_eq!(reply.status().as_u16(), 400);
    let reply = agent()
        .post(&format!("{}/v1/traces", server.otlp_http))
        .header("content-type", "application/json")
        .header("x-scope-orgid", "team-a")
        .send(&b"{}"[..])
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let (status, _, _) = get(&format!("{}/api/services", server.api), None);
    assert_eq!(status, 200);
}
