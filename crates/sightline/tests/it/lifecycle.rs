//! Start, stop and restart: config errors, SIGTERM, persistence, health,
//! the data-directory lock, and metrics.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::{Server, encode, hex, now_ns, request, span};

/// `sightline serve` on `data` with `extra` flags and every listener on
/// port 0, run to its exit: for starts that must be refused.
fn serve_to_exit(data: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sightline"))
        .arg("serve")
        .args(extra)
        .args(["--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0"])
        .args(["--http-addr", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .output()
        .unwrap()
}

/// The server's `/metrics` page.
fn metrics_page(server: &Server) -> String {
    let resp = crate::harness::agent().get(&format!("{}/metrics", server.api)).call().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut resp.into_body().into_reader(), &mut text).unwrap();
    text
}

#[test]
fn bad_config_exits_2_with_one_line_before_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("never-created");
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve", "--retention", "forever", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--retention") && stderr.contains("7d"), "{stderr}");
    assert!(!data.exists(), "nothing may be created before the config is valid");

    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "http_addr = \"127.0.0.1:1\"\nflush_sometimes = true\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("flush_sometimes"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve", "--http-addr", "nonsense"])
        .env("SIGHTLINE_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve"])
        .env("SIGHTLINE_LOG_FORMAT", "xml")
        .env("SIGHTLINE_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIGHTLINE_LOG_FORMAT"));
}

#[test]
fn sigterm_exits_0_and_data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let t = [0x42u8; 16];
    let req = request("restart-svc", vec![span(t, [1; 8], None, "before-restart", now_ns())]);
    assert_eq!(server.post_traces("application/x-protobuf", None, &encode(&req)).status, 200);
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let stderr = server.stderr();
    assert!(stderr.contains("stopped"), "{stderr}");

    let server = Server::start_with(&data, &["--log-format", "json"]);
    let trace = server.wait_trace(&hex(&t), 1, Duration::from_secs(5));
    assert_eq!(trace["spans"][0]["operationName"], "before-restart");
    // JSON logs: every line is an object.
    std::thread::sleep(Duration::from_millis(200));
    for line in server.stderr().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(v["level"].is_string(), "{line}");
    }
}

#[test]
fn health_ready_metrics_and_data_dir_lock() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let (status, health) = server.get_json("/health");
    assert_eq!(status, 200, "{health}");
    let names: Vec<&str> =
        health["checks"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(
        names,
        vec![
            "store",
            "logstore",
            "otlp_grpc",
            "otlp_http",
            "zipkin",
            "memory_limiter",
            "exporter prometheus"
        ]
    );
    assert!(data.join("logs").join("wal").is_dir(), "the log store keeps its own WAL under <data-dir>/logs");

    // The logs API is served by the log store (records reach it through a
    // logs pipeline; an empty store answers an empty page).
    let (status, logs) = server.get_json("/api/logs?service=nobody&limit=5");
    assert_eq!(status, 200, "{logs}");
    assert_eq!(logs["data"], serde_json::json!([]));
    assert_eq!(logs["limit"], 5);
    let (status, logs) = server.get_json("/api/logs?minSeverity=loud");
    assert_eq!(status, 400, "{logs}");
    assert!(logs["errors"][0]["msg"].as_str().unwrap().contains("minSeverity"), "{logs}");

    let req = request("metrics-svc", vec![span([5; 16], [1; 8], None, "m", now_ns())]);
    assert_eq!(server.post_traces("application/x-protobuf", None, &encode(&req)).status, 200);
    let _ = server.get_json("/api/services");
    let text = metrics_page(&server);
    for needle in [
        "sightline_receive_spans_total",
        "sightline_store_spans_appended_total 1",
        "sightline_wal_fsync_seconds",
        "sightline_store_head_spans",
        "sightline_logstore_records_appended_total 0",
        "sightline_logstore_blocks 0",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}:\n{text}");
    }

    let out = serve_to_exit(&data, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another sightline process"));
}

#[test]
fn wal_damage_costs_only_the_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    for i in 1..=3u8 {
        let req = request("wal-svc", vec![span([i; 16], [i; 8], None, "w", now_ns())]);
        assert_eq!(server.post_traces("application/x-protobuf", None, &encode(&req)).status, 200);
    }
    server.kill9();
    let mut segments: Vec<_> = std::fs::read_dir(data.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    let newest = segments.last().unwrap();
    let mut bytes = std::fs::read(newest).unwrap();
    assert!(bytes.len() > 100, "three records were logged");
    bytes[30] ^= 0xff; // inside the first record; two valid records follow
    std::fs::write(newest, &bytes).unwrap();

    // Strict recovery is the operator's way to stop and look first.
    let out = serve_to_exit(&data, &["--wal-recovery", "tolerate-torn-tail"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt") && stderr.contains("--wal-recovery skip-damaged"), "{stderr}");
    assert_eq!(std::fs::read(newest).unwrap(), bytes, "a refused start changes nothing");

    // By default the damaged record is skipped and the two after it kept
    // (they used to be given up with the rest of the segment).
    let server = Server::start(&data);
    let (status, _) = server.get_json(&format!("/api/traces/{}", hex(&[1; 16])));
    assert_eq!(status, 404, "the damaged record's trace is lost");
    for i in 2..=3u8 {
        let trace = server.wait_trace(&hex(&[i; 16]), 1, Duration::from_secs(5));
        assert_eq!(trace["spans"][0]["operationName"], "w");
    }
    let name = newest.file_name().unwrap().to_string_lossy().into_owned();
    let stderr = server.stderr();
    assert!(stderr.contains("skipped a damaged stretch") && stderr.contains(&name), "{stderr}");
    let text = metrics_page(&server);
    assert!(text.lines().any(|l| l == "sightline_wal_recovery_skipped_total 1"), "{text}");
}

#[test]
fn verify_and_repair_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    for i in 1..=3u8 {
        let req = request("repair-svc", vec![span([i; 16], [i; 8], None, "r", now_ns())]);
        assert_eq!(server.post_traces("application/x-protobuf", None, &encode(&req)).status, 200);
    }
    // Repair refuses to run beside a server.
    let run = |cmd: &str| {
        Command::new(env!("CARGO_BIN_EXE_sightline")).args([cmd, "--data-dir"]).arg(&data).output().unwrap()
    };
    let out = run("repair");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
    assert_eq!(server.terminate().code(), Some(0)); // flushes the head into a block

    let out = run("verify");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no damage found"));
    let block = std::fs::read_dir(data.join("blocks")).unwrap().next().unwrap().unwrap().path();
    let file = block.join("data.parquet");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[200] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();

    let out = run("verify");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("DAMAGED: checksum mismatch in data.parquet bytes 0..4096"), "{stdout}");
    let out = run("repair");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("set aside in") && stdout.contains("quarantine"), "{stdout}");
    assert_eq!(run("verify").status.code(), Some(0));

    let server = Server::start(&data);
    let req = request("repair-svc", vec![span([9; 16], [9; 8], None, "after", now_ns())]);
    assert_eq!(server.post_traces("application/x-protobuf", None, &encode(&req)).status, 200);
    server.wait_trace(&hex(&[9; 16]), 1, Duration::from_secs(5));
}
