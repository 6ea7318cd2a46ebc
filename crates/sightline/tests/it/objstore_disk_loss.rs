//! A node's disk lost for good (kill -9, its `--data-dir` deleted, never
//! restarted) on a real S3 server (SeaweedFS): with `--durability bucket`
//! every acknowledged span is readable from the node that holds the lease
//! once it has replayed the dead node's WAL copies; with the default
//! durability the loss stays within what the README states, the spans
//! younger than `--max-block-age` (plus the flush's upload).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Ports, Server, encode, hex, now_ns, request, span};

fn trace_id(tag: u8, n: u32) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[0] = 0xd1;
    t[1] = tag;
    t[2..6].copy_from_slice(&n.to_be_bytes());
    t[15] = 1;
    t
}

fn spans(t: [u8; 16], count: u8) -> Vec<u8> {
    let start = now_ns();
    let spans = (0..count)
        .map(|i| span(t, [t[1], t[2], t[3], t[4], t[5], 0, 0, i + 1], None, &format!("op-{i}"), start))
        .collect();
    encode(&request("svc-disk-loss", spans))
}

fn node(s3: &SeaweedFs, url: &str, data: &Path, extra: &[&str]) -> Server {
    let mut flags = vec!["--storage", url, "--poll-interval", "200ms", "--peer-timeout", "500ms"];
    flags.extend_from_slice(extra);
    Server::start_env(data, Ports::free(), &flags, &s3.env())
}

/// Distinct span ids of trace `t` on `server` (asserting none twice).
fn span_count(server: &Server, t: [u8; 16]) -> usize {
    let (_, body) = server.get_json(&format!("/api/traces/{}", hex(&t)));
    let ids: Vec<&str> = body["data"][0]["spans"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["spanID"].as_str()).collect())
        .unwrap_or_default();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "trace {} has a span twice", hex(&t));
    ids.len()
}

fn holds_lease(server: &Server) -> bool {
    let (_, health) = server.get_json("/health");
    health["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "object_storage"))
        .and_then(|c| c["detail"].as_str())
        .is_some_and(|d| d.contains("(this node)"))
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = server
        .client()
        .get(&format!("{}/metrics", server.api))
        .call()
        .expect("GET /metrics")
        .into_body()
        .read_to_string()
        .expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Acknowledged traces (10 spans each) with the time of their OK.
type Acked = Arc<Mutex<Vec<([u8; 16], Instant)>>>;

/// Sends 10-span traces to `a` for `how_long`, then kills it with -9 and
/// deletes its data directory. Returns what `a` acknowledged and when it
/// died.
fn ingest_then_lose_disk(
    mut a: Server,
    data: &Path,
    tag: u8,
    how_long: Duration,
) -> (Vec<([u8; 16], Instant)>, Instant) {
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU32::new(0));
    let writer = {
        let (url, acked, stop, seq) =
            (format!("{}/v1/traces", a.otlp_http), Arc::clone(&acked), Arc::clone(&stop), Arc::clone(&seq));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t = trace_id(tag, seq.fetch_add(1, Ordering::Relaxed));
                let sent = crate::harness::agent()
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .send(&spans(t, 10)[..]);
                match sent {
                    Ok(resp) if resp.status() == 200 => acked.lock().unwrap().push((t, Instant::now())),
                    Ok(resp) => {
                        assert!([429, 503].contains(&resp.status().as_u16()), "status {}", resp.status())
                    }
                    Err(_) => return,
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(how_long);
    a.kill9();
    let died = Instant::now();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    std::fs::remove_dir_all(data).unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 20, "only {} traces acknowledged", acked.len());
    (acked, died)
}

#[test]
fn lossless_mode_a_lost_disk_loses_no_acknowledged_span() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-lossless");
    let dir = tempfile::tempdir().unwrap();
    // Heartbeats every second: a node is dead after 5 s, well past the 3 s
    // liveness window.
    let lossless = ["--durability", "bucket", "--dead-node-after", "5s", "--lease-ttl", "4s"];
    // B first, so it takes the lease and is the one that replays.
    let b = node(&s3, &url, &dir.path().join("b"), &[&lossless[..], &["--max-block-age", "2s"]].concat());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !holds_lease(&b) {
        assert!(Instant::now() < deadline, "B never took the lease: {}", b.stderr());
        std::thread::sleep(Duration::from_millis(200));
    }
    // A cuts every 2 s: at the kill some of its spans are in blocks, some
    // only in its head and WAL (and their copies).
    let data_a = dir.path().join("a");
    let a = node(&s3, &url, &data_a, &[&lossless[..], &["--max-block-age", "2s"]].concat());
    let (acked, _) = ingest_then_lose_disk(a, &data_a, 1, Duration::from_secs(5));

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut missing: Vec<[u8; 16]> = acked.iter().map(|(t, _)| *t).collect();
    while !missing.is_empty() {
        missing.retain(|t| span_count(&b, *t) < 10);
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged traces incomplete on B 90 s after A's disk was lost (first {}): {}",
            missing.len(),
            acked.len(),
            hex(&missing[0]),
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Some of it came from the replay (not everything had been flushed),
    // and no copy was unreadable.
    let (_, health) = b.get_json("/health");
    assert!(health.to_string().contains("durability: bucket"), "{health}");
    assert!(metric(&b, "sightline_objstore_wal_replayed_spans") > 0.0, "{}", b.stderr());
    assert_eq!(metric(&b, "sightline_objstore_wal_copies_bad"), 0.0);
    // Exactly once, also after B flushes what it replayed.
    std::thread::sleep(Duration::from_secs(3));
    for (t, _) in &acked {
        assert_eq!(span_count(&b, *t), 10);
    }
    eprintln!("{} acknowledged traces all on B after A's disk was lost", acked.len());
}

#[test]
fn default_mode_a_lost_disk_loses_at_most_the_unflushed_spans() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-disk-loss");
    let dir = tempfile::tempdir().unwrap();
    let b = node(&s3, &url, &dir.path().join("b"), &["--max-block-age", "2s"]);
    let data_a = dir.path().join("a");
    let age = Duration::from_secs(2);
    let a = node(&s3, &url, &data_a, &["--max-block-age", "2s"]);
    let (acked, died) = ingest_then_lose_disk(a, &data_a, 2, Duration::from_secs(10));
    // The README's bound: what A acknowledged more than --max-block-age
    // before it died was flushed. A margin of 4 s covers the cutter's tick
    // and the upload on a busy machine.
    let bound = age + Duration::from_secs(4);
    let older: Vec<[u8; 16]> =
        acked.iter().filter(|(_, at)| died.duration_since(*at) > bound).map(|(t, _)| *t).collect();
    assert!(older.len() > 10, "only {} traces older than the bound", older.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut missing = older.clone();
    while !missing.is_empty() {
        missing.retain(|t| span_count(&b, *t) < 10);
        assert!(
            Instant::now() < deadline,
            "{} of {} traces acknowledged more than {bound:?} before the disk loss are missing (first {}): {}",
            missing.len(),
            older.len(),
            hex(&missing[0]),
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let lost = acked.iter().filter(|(t, _)| span_count(&b, *t) < 10).count();
    eprintln!(
        "default durability: {} of {} acknowledged traces lost with A's disk, all younger than {bound:?}",
        lost,
        acked.len()
    );
}
