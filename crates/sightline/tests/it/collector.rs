//! The collector role: forwarding with a persistent queue through a
//! downstream outage and a restart, redaction of everything stored, and the
//! memory limiter holding RSS under overload.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Ports, Server, encode, hex, now_ns, request, span, string_kv};

fn trace_batch(n: u32) -> ([u8; 16], Vec<u8>) {
    let mut t = [0u8; 16];
    t[0] = 0xf0;
    t[1..5].copy_from_slice(&n.to_be_bytes());
    t[15] = 7;
    let start = now_ns();
    let spans =
        (1..=5u8).map(|i| span(t, [i; 8], (i > 1).then_some([1; 8]), &format!("fwd-{i}"), start)).collect();
    (t, encode(&request("forwarded-svc", spans)))
}

/// A forwarder (exporting only to OTLP) in front of a backend that is down
/// for 30 s; the forwarder is restarted once during the outage. Every
/// acknowledged trace reaches the backend complete. Delivery is
/// at-least-once: a batch may be sent twice around a restart, and the
/// backend's span-id dedupe makes that invisible in queries.
#[test]
fn forwarding_survives_a_30s_outage_and_a_forwarder_restart() {
    let dir = tempfile::tempdir().unwrap();
    let backend_ports = Ports::free();
    let config = dir.path().join("forwarder.toml");
    std::fs::write(
        &config,
        format!(
            "[exporters.otlp]\nendpoint = \"http://127.0.0.1:{}\"\nretry_max_interval = \"2s\"\n\n\
             [processors.batch]\ntimeout = \"100ms\"\n\n\
             [service.pipelines.traces]\nreceivers = [\"otlp\"]\nprocessors = [\"memory_limiter\", \"batch\"]\nexporters = [\"otlp\"]\n",
            backend_ports.grpc
        ),
    )
    .unwrap();
    let fwd_data = dir.path().join("forwarder");
    let cfg = config.to_str().unwrap();
    let outage = Instant::now();
    let mut forwarder = Server::start_with(&fwd_data, &["--config", cfg]);
    let mut sent = Vec::new();
    for n in 0..20 {
        let (t, body) = trace_batch(n);
        let reply = forwarder.post_traces("application/x-protobuf", None, &body);
        assert_eq!(reply.status, 200, "{}", reply.text());
        sent.push(t);
    }
    assert_eq!(forwarder.terminate().code(), Some(0), "{}", forwarder.stderr());
    let forwarder = Server::start_with(&fwd_data, &["--config", cfg]);
    for n in 20..40 {
        let (t, body) = trace_batch(n);
        assert_eq!(forwarder.post_traces("application/x-protobuf", None, &body).status, 200);
        sent.push(t);
    }
    let (status, health) = forwarder.get_json("/health");
    assert_eq!(status, 200, "{health}");
    let queued = health["checks"].as_array().unwrap().iter().find(|c| c["name"] == "exporter otlp").cloned();
    assert!(queued.is_some_and(|q| !q["detail"].as_str().unwrap_or("").starts_with("0 batches")), "{health}");
    let (_, local) = forwarder.get_json("/api/services");
    assert_eq!(local["data"], serde_json::json!([]), "a forward-only pipeline stores nothing locally");

    std::thread::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed()));
    let backend = Server::start_on(&dir.path().join("backend"), backend_ports, &[]);
    for t in &sent {
        let trace = backend.wait_trace(&hex(t), 5, Duration::from_secs(60));
        assert_eq!(
            trace["spans"].as_array().unwrap().len(),
            5,
            "trace {} arrived incomplete or twice",
            hex(t)
        );
    }
    let (_, traces) = backend.get_json("/api/traces?service=forwarded-svc&limit=100");
    assert_eq!(traces["data"].as_array().unwrap().len(), sent.len());
}

/// A forwarder keeps each batch's tenant: spans and log records sent to
/// it as `team-a`, `team-b` and the default tenant land in those tenants
/// of the Sightline it forwards to (traces over gRPC, logs over
/// OTLP/HTTP), each only there.
#[test]
fn forwarded_data_lands_in_its_own_tenant_downstream() {
    let dir = tempfile::tempdir().unwrap();
    let backend = Server::start(&dir.path().join("backend"));
    let grpc = backend.grpc.rsplit_once(':').map(|(_, p)| p.to_owned()).unwrap();
    let config = dir.path().join("forwarder.toml");
    std::fs::write(
        &config,
        format!(
            "[exporters.otlp]\nendpoint = \"http://127.0.0.1:{grpc}\"\nretry_max_interval = \"1s\"\n\n\
             [exporters.otlphttp]\nendpoint = \"{}\"\nretry_max_interval = \"1s\"\n\n\
             [service.pipelines.traces]\nreceivers = [\"otlp\"]\nexporters = [\"otlp\"]\n\n\
             [service.pipelines.logs]\nreceivers = [\"otlp\"]\nexporters = [\"otlphttp\"]\n",
            backend.otlp_http
        ),
    )
    .unwrap();
    let forwarder =
        Server::start_with(&dir.path().join("forwarder"), &["--config", config.to_str().unwrap()]);
    let tenants = [Some("team-a"), Some("team-b"), None];
    let mut ids = Vec::new();
    for (n, tenant) in tenants.iter().enumerate() {
        let (t, body) = trace_batch(1000 + n as u32);
        let mut req = crate::harness::agent()
            .post(&format!("{}/v1/traces", forwarder.otlp_http))
            .header("content-type", "application/x-protobuf");
        if let Some(tenant) = tenant {
            req = req.header("X-Scope-OrgID", *tenant);
        }
        let resp = req.send(&body[..]).expect("POST");
        assert_eq!(resp.status().as_u16(), 200);
        let header = tenant.map(|t| ("X-Scope-OrgID", t));
        crate::tenants::post_log(&forwarder, header, &format!("svc-{}", tenant.unwrap_or("default")));
        ids.push(hex(&t));
    }
    let get = |tenant: Option<&str>, path: &str| {
        let mut req = crate::harness::agent().get(&format!("{}{path}", backend.api));
        if let Some(tenant) = tenant {
            req = req.header("X-Scope-OrgID", tenant);
        }
        let mut resp = req.call().expect("GET");
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        (status, serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default())
    };
    for (i, tenant) in tenants.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (status, _) = get(*tenant, &format!("/api/traces/{}", ids[i]));
            let (_, logs) = get(*tenant, "/api/logs?limit=100");
            let services: Vec<&str> = logs["data"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r["service"].as_str()).collect())
                .unwrap_or_default();
            if status == 200 && !services.is_empty() {
                assert_eq!(services, [format!("svc-{}", tenant.unwrap_or("default"))], "{tenant:?}: {logs}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{tenant:?}: trace {status}, logs {logs}: {}",
                forwarder.stderr()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // Each trace is in its own tenant only.
        for (j, other) in tenants.iter().enumerate().filter(|(j, _)| *j != i) {
            let (status, _) = get(*other, &format!("/api/traces/{}", ids[i]));
            assert_eq!(status, 404, "trace of {tenant:?} (#{j}) visible to {other:?}");
        }
    }
}

const SECRETS: &[&str] =
    &["hunter2-pass", "sk_live_51Hsecret", "alice@example.com", "4111111111111111", "eyJhbGciOiJIUzI1NiJ9"];

/// Spans full of secrets and emails: after ingest, neither the WAL nor the
/// blocks nor the API hold any of them.
#[test]
fn redaction_keeps_secrets_out_of_everything_stored() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let t = [0x5e; 16];
    let mut s = span(t, [1; 8], None, "login alice@example.com", now_ns());
    s.attributes = vec![
        string_kv("user.password", "hunter2-pass"),
        string_kv("stripe.api_key", "sk_live_51Hsecret"),
        string_kv("user.email", "alice@example.com"),
        string_kv("http.request.header.authorization", "Bearer eyJhbGciOiJIUzI1NiJ9"),
        string_kv("note", "card 4111111111111111 for alice@example.com"),
        string_kv("http.route", "/login"),
    ];
    let mut req = request("secretive-svc", vec![s]);
    req.resource_spans[0]
        .resource
        .as_mut()
        .unwrap()
        .attributes
        .push(string_kv("deploy.token", "sk_live_51Hsecret"));
    assert_eq!(server.post_traces("application/x-protobuf", None, &encode(&req)).status, 200);

    let scan = |what: &str, bytes: &[u8]| {
        for secret in SECRETS {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} found in {what}");
        }
    };
    // 1. The WAL (uncompressed protobuf) right after the acknowledgement.
    server.kill9();
    let mut wal_bytes = 0;
    for entry in std::fs::read_dir(data.join("wal")).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        wal_bytes += bytes.len();
        scan("the WAL", &bytes);
    }
    assert!(wal_bytes > 100, "the span was logged");
    // 2. The blocks, decoded, after a flush.
    let mut server = Server::start(&data);
    let trace = server.wait_trace(&hex(&t), 1, Duration::from_secs(5));
    scan("the API", trace.to_string().as_bytes());
    assert_eq!(trace["spans"][0]["operationName"], "login ****");
    assert_eq!(server.terminate().code(), Some(0));
    let mut blocks = 0;
    for entry in std::fs::read_dir(data.join("blocks")).unwrap() {
        let block = sightline_block::Block::open(&entry.unwrap().path()).unwrap();
        for span in block.read_all().unwrap() {
            scan("a block", format!("{span:?}").as_bytes());
        }
        blocks += 1;
    }
    assert_eq!(blocks, 1);
}

/// A load generator pushing as hard as it can against a small memory limit
/// sees retryable refusals, never errors, while the server's RSS stays under
/// the limit. (144 MiB stopped being small once freed pages were returned at
/// once: 16 debug-build senders then never reached its soft limit.)
#[test]
fn memory_limiter_holds_rss_under_overload() {
    let dir = tempfile::tempdir().unwrap();
    let limit: u64 = 96 << 20;
    let server = Server::start_with(&dir.path().join("data"), &["--memory-limit", "96MiB"]);
    let mut load = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["loadgen", "--protocol", "grpc", "--endpoint", &server.grpc, "--profile", "realistic"])
        .args(["--concurrency", "16", "--duration", "8s", "--retry-timeout", "30s", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = 0;
    while load.try_wait().unwrap().is_none() {
        peak = peak.max(server.rss_bytes());
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = load.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(report["spans_acked"].as_u64().unwrap() > 0, "{report}");
    assert!(report["retries"].as_u64().unwrap() > 0, "the limit must push back: {report}");
    assert_eq!(report["spans_dropped"], 0, "refusals are retryable, not errors: {report}");
    assert_eq!(report["spans_rejected"], 0, "{report}");
    assert!(peak > 0 && peak <= limit, "peak RSS {} MiB over the {} MiB limit", peak >> 20, limit >> 20);
    eprintln!("peak RSS {} MiB under a {} MiB limit: {report}", peak >> 20, limit >> 20);
}
