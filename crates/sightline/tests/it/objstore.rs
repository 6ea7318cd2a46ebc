//! Several nodes on one bucket of a real S3 server (SeaweedFS on free
//! ports, see `sightline_objstore::testing`): each answers for all; a
//! node killed with -9 loses nothing it acknowledged.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Ports, Server, encode, hex, now_ns, request, span};

/// A node on `url`: blocks cut every second, the manifest polled every
/// 200 ms, so what one node receives is on the others within seconds.
fn node(s3: &SeaweedFs, url: &str, data: &Path, ports: Ports) -> Server {
    node_cutting_every(s3, url, data, ports, "1s")
}

fn node_cutting_every(s3: &SeaweedFs, url: &str, data: &Path, ports: Ports, age: &str) -> Server {
    let flags = ["--storage", url, "--max-block-age", age, "--poll-interval", "200ms"];
    Server::start_env(data, ports, &flags, &s3.env())
}

fn trace_id(tag: u8, n: u32) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[0] = 0x5e;
    t[1] = tag;
    t[2..6].copy_from_slice(&n.to_be_bytes());
    t[15] = 1;
    t
}

/// Spans `first..last` of a trace, as an OTLP/HTTP body.
fn spans(t: [u8; 16], range: std::ops::Range<u8>, service: &str) -> Vec<u8> {
    let start = now_ns();
    let spans = range
        .map(|i| {
            span(
                t,
                [t[1], t[2], t[3], t[4], t[5], 0, 0, i + 1],
                None,
                &format!("op-{i}"),
                start + u64::from(i),
            )
        })
        .collect();
    encode(&request(service, spans))
}

/// Waits up to 30 s for trace `t` to have exactly `count` distinct spans
/// on `server`.
fn wait_whole(server: &Server, t: [u8; 16], count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.get_json(&format!("/api/traces/{}", hex(&t)));
        let ids: Vec<&str> = body["data"][0]["spans"]
            .as_array()
            .map(|s| s.iter().filter_map(|s| s["spanID"].as_str()).collect())
            .unwrap_or_default();
        let distinct: HashSet<&str> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "trace {} has a span twice: {ids:?}", hex(&t));
        if status == 200 && ids.len() == count {
            return;
        }
        assert!(ids.len() <= count, "trace {} has {} spans, expected {count}", hex(&t), ids.len());
        assert!(
            Instant::now() < deadline,
            "trace {} on {} has {} of {count} spans after 30 s: {}",
            hex(&t),
            server.api,
            ids.len(),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_nodes_on_one_bucket_each_answer_for_both() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-two");
    let dir = tempfile::tempdir().unwrap();
    let a = node(&s3, &url, &dir.path().join("a"), Ports::free());
    let b = node(&s3, &url, &dir.path().join("b"), Ports::free());
    let (to_a, to_b, split) = (trace_id(1, 1), trace_id(1, 2), trace_id(1, 3));
    let post = |server: &Server, body: Vec<u8>| {
        let reply = server.post_traces("application/x-protobuf", None, &body);
        assert_eq!(reply.status, 200, "{}", reply.text());
    };
    post(&a, spans(to_a, 0..4, "svc-a"));
    post(&b, spans(to_b, 0..4, "svc-b"));
    // One trace whose spans went to different nodes comes back whole, once.
    post(&a, spans(split, 0..2, "svc-a"));
    post(&b, spans(split, 2..4, "svc-b"));
    for server in [&a, &b] {
        for t in [to_a, to_b, split] {
            wait_whole(server, t, 4);
        }
    }
    // Exactly one node holds the compaction lease, and /health says which.
    let holds = |server: &Server| {
        let (_, health) = server.get_json("/health");
        let checks = health["checks"].as_array().cloned().unwrap_or_default();
        let object =
            checks.iter().find(|c| c["name"] == "object_storage").cloned().expect("object_storage check");
        assert_eq!(object["status"], "ok", "{object}");
        object["detail"].as_str().unwrap_or_default().contains("(this node)")
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while holds(&a) == holds(&b) {
        assert!(Instant::now() < deadline, "not exactly one lease holder");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_killed_with_9_loses_nothing_it_acknowledged() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-kill");
    let dir = tempfile::tempdir().unwrap();
    // B cuts its head every 100 ms while it ingests first, so its WAL
    // segment numbers run far ahead of A's: each node's replay point in
    // the shared manifest is its own (a shared one would make A skip its
    // unflushed segments at restart).
    let b = node_cutting_every(&s3, &url, &dir.path().join("b"), Ports::free(), "100ms");
    let early = trace_id(3, 0);
    for n in 0..30 {
        let reply = b.post_traces("application/x-protobuf", None, &spans(trace_id(3, n), 0..3, "svc-b"));
        assert_eq!(reply.status, 200, "{}", reply.text());
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_whole(&b, early, 3);
    let (data_a, ports_a) = (dir.path().join("a"), Ports::free());
    let mut a = node(&s3, &url, &data_a, ports_a);

    // One writer keeps sending 10-span traces to A until A dies.
    let acked: Arc<Mutex<Vec<[u8; 16]>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU32::new(0));
    let writer = {
        let (url, acked, stop, seq) =
            (format!("{}/v1/traces", a.otlp_http), Arc::clone(&acked), Arc::clone(&stop), Arc::clone(&seq));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t = trace_id(2, seq.fetch_add(1, Ordering::Relaxed));
                let body = spans(t, 0..10, "svc-kill");
                let sent = crate::harness::agent()
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .send(&body[..]);
                match sent {
                    Ok(resp) if resp.status() == 200 => acked.lock().unwrap().push(t),
                    Ok(resp) => {
                        assert!([429, 503].contains(&resp.status().as_u16()), "status {}", resp.status())
                    }
                    Err(_) => return, // A is gone
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // A flushes while it runs: B serves A's first traces from the bucket.
    let first = loop {
        if let Some(t) = acked.lock().unwrap().first().copied() {
            break t;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    wait_whole(&b, first, 10);
    std::thread::sleep(Duration::from_millis(700));
    a.kill9();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "only {} traces acknowledged before the kill", acked.len());
    // A's flushed blocks stay readable through B while A is down.
    wait_whole(&b, first, 10);

    // A restarts on its disk, replays its WAL and flushes the rest: B then
    // has every acknowledged trace, whole and once.
    let a = node(&s3, &url, &data_a, ports_a);
    for t in &acked {
        wait_whole(&b, *t, 10);
    }
    wait_whole(&a, *acked.last().unwrap(), 10);
    eprintln!("{} acknowledged traces all on the other node after kill -9", acked.len());
}
