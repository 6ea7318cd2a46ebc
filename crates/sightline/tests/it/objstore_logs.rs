//! Log blocks in a bucket shared by nodes (a real S3 server, SeaweedFS on
//! free ports): what one node flushed is served by the others, two nodes
//! flushing at once keep the log manifest whole, and a node killed with
//! -9 loses and doubles nothing it acknowledged.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Ports, Server, agent, now_ns};

/// A node on `url`: heads cut every second, the manifest polled every
/// 200 ms.
fn node(s3: &SeaweedFs, url: &str, data: &Path, ports: Ports) -> Server {
    let flags = ["--storage", url, "--max-block-age", "1s", "--poll-interval", "200ms"];
    Server::start_env(data, ports, &flags, &s3.env())
}

/// POSTs records `bodies` of `service` as one OTLP/JSON request; panics
/// unless acknowledged.
pub(crate) fn post_logs(server: &Server, service: &str, bodies: &[String]) {
    let now = now_ns();
    let records: Vec<String> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            format!(
                r#"{{"timeUnixNano":"{}","severityNumber":9,"body":{{"stringValue":"{body}"}}}}"#,
                now + i as u64
            )
        })
        .collect();
    let body = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeLogs":[{{"logRecords":[{}]}}]}}]}}"#,
        records.join(",")
    );
    let mut response = agent()
        .post(&format!("{}/v1/logs", server.otlp_http))
        .header("content-type", "application/json")
        .send(body.as_bytes())
        .expect("POST /v1/logs");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 200, "{text}");
}

/// How often each body containing `marker` is served by `server`.
fn bodies(server: &Server, marker: &str) -> HashMap<String, usize> {
    let (status, page) = server.get_json(&format!("/api/logs?q={marker}&limit=1000"));
    assert_eq!(status, 200, "{page}");
    let mut out = HashMap::new();
    for record in page["data"].as_array().cloned().unwrap_or_default() {
        let body = record["body"].as_str().map(str::to_owned).unwrap_or_else(|| record["body"].to_string());
        *out.entry(body).or_insert(0) += 1;
    }
    out
}

/// Waits up to 30 s for `server` to serve exactly `expected` (each once);
/// fails at once on a record served twice.
fn wait_exactly(server: &Server, marker: &str, expected: &[String], why: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = bodies(server, marker);
        let doubled: Vec<_> = found.iter().filter(|(_, n)| **n > 1).collect();
        assert!(doubled.is_empty(), "{why}: records served twice: {doubled:?}");
        let missing: Vec<&String> = expected.iter().filter(|b| !found.contains_key(*b)).collect();
        assert!(found.len() <= expected.len(), "{why}: unexpected records: {found:?}");
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{why}: {} of {} records missing after 30 s, e.g. {:?}\n{}",
            missing.len(),
            expected.len(),
            missing.first(),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn batch(marker: &str, node: &str, round: usize, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{marker} from {node} round {round} record {i}")).collect()
}

/// The log store's `/health` check.
fn log_health(server: &Server) -> Value {
    let (_, health) = server.get_json("/health");
    let checks = health["checks"].as_array().cloned().unwrap_or_default();
    checks.into_iter().find(|c| c["name"] == "logstore").expect("logstore check")
}

#[test]
fn log_blocks_in_a_bucket_are_served_by_every_node_and_survive_kill_9() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-logs");
    let dir = tempfile::tempdir().unwrap();
    let a_dir = dir.path().join("a");
    let a_ports = Ports::free();
    let mut a = node(&s3, &url, &a_dir, a_ports);
    let b = node(&s3, &url, &dir.path().join("b"), Ports::free());
    let marker = "mk7q3logs";

    // Both nodes ingest and flush at once (a head cut every second), so
    // their manifest commits race; each node's records must reach the
    // other (through the bucket, and its log head until flushed), each once.
    let mut expected = Vec::new();
    std::thread::scope(|scope| {
        for (server, name) in [(&a, "a"), (&b, "b")] {
            scope.spawn(move || {
                for round in 0..6 {
                    post_logs(server, &format!("svc-{name}"), &batch(marker, name, round, 20));
                    std::thread::sleep(Duration::from_millis(400));
                }
            });
        }
    });
    for name in ["a", "b"] {
        for round in 0..6 {
            expected.extend(batch(marker, name, round, 20));
        }
    }
    wait_exactly(&b, marker, &expected, "node B after both flushed");
    wait_exactly(&a, marker, &expected, "node A after both flushed");
    let detail = log_health(&b)["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("it-logs"), "the log store reports its bucket: {detail}");

    // Acknowledged, then kill -9 before (or while) it is flushed: the WAL
    // has it; after the restart everything is there exactly once.
    let late = batch(marker, "a", 99, 30);
    post_logs(&a, "svc-a", &late);
    a.kill9();
    expected.extend(late);
    let a = node(&s3, &url, &a_dir, a_ports);
    wait_exactly(&a, marker, &expected, "node A after kill -9 and restart");
    wait_exactly(&b, marker, &expected, "node B after node A's restart");

    // A node that stops (SIGTERM) flushes its log head into the bucket
    // first: with an hour's block age nothing else would have.
    let flags = ["--storage", url.as_str(), "--max-block-age", "1h", "--poll-interval", "200ms"];
    let mut c = Server::start_env(&dir.path().join("c"), Ports::free(), &flags, &s3.env());
    let from_c = batch(marker, "c", 0, 10);
    post_logs(&c, "svc-c", &from_c);
    assert!(c.terminate().success(), "{}", c.stderr());
    expected.extend(from_c);
    wait_exactly(&a, marker, &expected, "node A after node C stopped");

    // `sightline bucket list` and `verify` cover log blocks: listed with
    // their record counts, intact; then a flipped byte is found.
    let bucket = |command: &str| {
        let out = std::process::Command::new(crate::harness::binary())
            .args(["bucket", command, "--storage", &url])
            .envs(s3.env())
            .output()
            .expect("sightline bucket");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = bucket("list");
    assert_eq!(code, Some(0), "{text}");
    let listed: u64 = text
        .lines()
        .filter(|l| l.contains("\tlisted\t") && l.contains(" log records"))
        .filter_map(|l| l.split('\t').nth(3)?.split(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(listed >= expected.len() as u64 - 30, "listed log blocks hold {listed} records:\n{text}");
    assert!(text.contains("listed log blocks,"), "{text}");
    let (code, text) = bucket("verify");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("\tlog block intact") && text.contains(" 0 damaged"), "{text}");
    let store = s3.store();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use futures_util::TryStreamExt as _;
        use object_store::ObjectStoreExt as _;
        let prefix = object_store::path::Path::from("it-logs/single-tenant/logs/blocks");
        let keys: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await.unwrap();
        let data = keys.iter().find(|m| m.location.as_ref().ends_with("data.parquet")).expect("a log block");
        let mut bytes = store.get(&data.location).await.unwrap().bytes().await.unwrap().to_vec();
        bytes[100] ^= 0xff;
        store.put(&data.location, bytes.into()).await.unwrap();
    });
    let (code, text) = bucket("verify");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("\tlog block DAMAGED: 1 damaged chunk(s)"), "{text}");
}
