//! Start, stop and restart: config errors, SIGTERM, persistence, health,
//! the data-directory lock, and metrics.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Server, encode, hex, now_ns, request, span};

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
            "otlp_grpc",
            "otlp_http",
            "zipkin",
            "memory_limiter",
            "exporter store (logs)",
            "exporter prometheus"
        ]
    );

    let req = request("metrics-svc", vec![span([5; 16], [1; 8], None, "m", now_ns())]);
    assert_eq!(server.post_traces("application/x-protobuf", None, &encode(&req)).status, 200);
    let _ = server.get_json("/api/services");
    let resp = crate::harness::agent().get(&format!("{}/metrics", server.api)).call().unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut resp.into_body().into_reader(), &mut text).unwrap();
    for needle in [
        "sightline_receive_spans_total",
        "sightline_store_spans_appended_total 1",
        "sightline_wal_fsync_seconds",
        "sightline_store_head_spans",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}:\n{text}");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args([
            "serve",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by another sightline process"));
}

#[test]
fn wal_corruption_stops_the_start_with_a_way_out() {
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

    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args([
            "serve",
            "--otlp-grpc-addr",
            "127.0.0.1:0",
            "--otlp-http-addr",
            "127.0.0.1:0",
            "--http-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt") && stderr.contains("--wal-recovery point-in-time"), "{stderr}");

    let server = Server::start_with(&data, &["--wal-recovery", "point-in-time"]);
    let (status, _) = server.get_json(&format!("/api/traces/{}", hex(&[3; 16])));
    assert_eq!(status, 404, "records after the damage are given up, as the operator chose");
}
