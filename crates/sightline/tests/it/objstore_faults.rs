//! Object-store faults, injected by a TCP proxy between one node and a real
//! S3 server (SeaweedFS): the store holding connections without answering,
//! answering 503, 500 or 409, and refusing connections. Meanwhile ingest keeps
//! acknowledging into the WAL up to its budget and then refuses retryably,
//! queries answer instead of hanging, `/health` reports the store degraded;
//! once the store is back every acknowledged span is on a second node,
//! once, and no block was taken for damaged.

use std::collections::HashSet;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Ports, Server, encode, hex, now_ns, request, span, string_kv};

/// What the proxy does with the requests it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forwards to the store.
    Pass,
    /// Answers every request with this status (an S3 error body).
    Fail(u16),
    /// Accepts connections, reads, never answers.
    Hold,
    /// Nothing listens: connections are refused.
    Down,
}

/// A TCP proxy in front of the store whose [`Mode`] the test switches. A
/// switch closes every open connection, so pooled connections cannot keep
/// passing requests through while the store is meant to be failing.
struct Proxy {
    port: u16,
    /// The mode and a generation bumped by every switch.
    mode: Arc<Mutex<(Mode, u64)>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        let port = listener.local_addr().expect("proxy addr").port();
        let mode = Arc::new(Mutex::new((Mode::Pass, 0)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (mode, stop) = (Arc::clone(&mode), Arc::clone(&stop));
            std::thread::spawn(move || accept_loop(listener, port, &upstream, &mode, &stop))
        };
        Proxy { port, mode, stop, thread: Some(thread) }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set(&self, mode: Mode) {
        let mut state = self.mode.lock().unwrap();
        *state = (mode, state.1 + 1);
        eprintln!("proxy: {mode:?}");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.set(Mode::Down);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    port: u16,
    upstream: &str,
    mode: &Arc<Mutex<(Mode, u64)>>,
    stop: &AtomicBool,
) {
    let mut listener = Some(listener);
    while !stop.load(Ordering::Relaxed) {
        let (current, generation) = *mode.lock().unwrap();
        if current == Mode::Down {
            listener = None;
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let bound = match listener.take() {
            Some(l) => l,
            // Back on the same port (std sets SO_REUSEADDR).
            None => match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => l,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        bound.set_nonblocking(true).expect("nonblocking listener");
        match bound.accept() {
            Ok((client, _)) => {
                let (mode, upstream) = (Arc::clone(mode), upstream.to_owned());
                std::thread::spawn(move || serve(client, current, generation, &upstream, &mode));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
        listener = Some(bound);
    }
}

/// One connection, in the mode it was accepted in, until the mode changes.
fn serve(client: TcpStream, mode: Mode, generation: u64, upstream: &str, state: &Arc<Mutex<(Mode, u64)>>) {
    let _ = client.set_nonblocking(false);
    let _ = client.set_read_timeout(Some(Duration::from_millis(50)));
    let switched = || state.lock().unwrap().1 != generation;
    match mode {
        Mode::Pass => {
            let Ok(server) = TcpStream::connect(upstream) else { return };
            let _ = server.set_read_timeout(Some(Duration::from_millis(50)));
            let (c2, s2) = (client.try_clone().expect("clone"), server.try_clone().expect("clone"));
            let state2 = Arc::clone(state);
            let back = std::thread::spawn(move || {
                pump(s2, c2, &|| state2.lock().unwrap().1 != generation);
            });
            pump(client, server, &switched);
            let _ = back.join();
        }
        Mode::Fail(status) => {
            let mut client = client;
            if read_request(&mut client, &switched) {
                let code = match status {
                    503 => "SlowDown",
                    409 => "OperationAborted",
                    _ => "InternalError",
                };
                let body = format!(
                    "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
                );
                let reply = format!(
                    "HTTP/1.1 {status} Injected\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = client.write_all(reply.as_bytes());
            }
            let _ = client.shutdown(Shutdown::Both);
        }
        Mode::Hold => {
            let mut client = client;
            let mut buf = [0u8; 16 << 10];
            while !switched() {
                match client.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            let _ = client.shutdown(Shutdown::Both);
        }
        Mode::Down => {}
    }
}

/// Copies `from` to `to` until either closes or `switched`; then closes
/// both.
fn pump(mut from: TcpStream, mut to: TcpStream, switched: &dyn Fn() -> bool) {
    let mut buf = [0u8; 64 << 10];
    loop {
        if switched() {
            break;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Reads one request's head and its `content-length` body; false if the
/// client went away or the mode changed first.
fn read_request(client: &mut TcpStream, switched: &dyn Fn() -> bool) -> bool {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let mut need: Option<usize> = None;
    loop {
        if need.is_some_and(|n| got.len() >= n) {
            return true;
        }
        if switched() {
            return false;
        }
        match client.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
        if need.is_none()
            && let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let body = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            need = Some(end + 4 + body);
        }
    }
}

fn trace_id(tag: u8, n: u32) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[0] = 0xfa;
    t[1] = tag;
    t[2..6].copy_from_slice(&n.to_be_bytes());
    t[15] = 1;
    t
}

/// `count` spans of trace `t`, each with a `payload` attribute of
/// `payload` random hex characters (incompressible, so blocks get large).
fn spans(t: [u8; 16], count: u8, service: &str, payload: usize) -> Vec<u8> {
    let start = now_ns();
    let spans = (0..count)
        .map(|i| {
            let mut s = span(
                t,
                [t[1], t[2], t[3], t[4], t[5], 0, 0, i + 1],
                None,
                &format!("op-{i}"),
                start + u64::from(i),
            );
            if payload > 0 {
                let hex: String =
                    (0..payload.div_ceil(16)).map(|_| format!("{:016x}", rand::random::<u64>())).collect();
                s.attributes.push(string_kv("payload", &hex[..payload]));
            }
            s
        })
        .collect();
    encode(&request(service, spans))
}

/// A client that gives up after `secs`: a query or export that does not
/// answer by then counts as hanging.
fn agent(secs: u64) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(secs)))
        .build()
        .into()
}

/// The distinct span ids of trace `t` on `server`, asserting no span is
/// there twice; the query must answer within 20 s.
fn span_ids(server: &Server, t: [u8; 16]) -> (u16, usize) {
    let url = format!("{}/api/traces/{}", server.api, hex(&t));
    let resp = agent(20).get(&url).call().unwrap_or_else(|e| panic!("GET {url} did not answer: {e}"));
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.into_body().read_json().unwrap_or_default();
    let ids: Vec<&str> = body["data"][0]["spans"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["spanID"].as_str()).collect())
        .unwrap_or_default();
    let distinct: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "trace {} has a span twice on {}", hex(&t), server.api);
    (status, ids.len())
}

/// Waits up to `secs` for trace `t` to have exactly `count` spans.
fn wait_whole(server: &Server, t: [u8; 16], count: usize, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, n) = span_ids(server, t);
        if status == 200 && n == count {
            return;
        }
        assert!(n <= count, "trace {} has {n} spans, expected {count}", hex(&t));
        assert!(
            Instant::now() < deadline,
            "trace {} on {} has {n} of {count} spans after {secs} s: {}",
            hex(&t),
            server.api,
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `object_storage` check of `/health`: (status, detail).
fn object_storage(server: &Server) -> (String, String) {
    let url = format!("{}/health", server.api);
    let resp = agent(20).get(&url).call().expect("/health answers");
    let body: serde_json::Value = resp.into_body().read_json().expect("health JSON");
    let check = body["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "object_storage").cloned())
        .expect("object_storage check");
    (
        check["status"].as_str().unwrap_or_default().to_owned(),
        check["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Sum of a metric's samples on `/metrics` (every label set).
fn metric(server: &Server, name: &str) -> f64 {
    let resp = agent(20).get(&format!("{}/metrics", server.api)).call().expect("/metrics");
    let text = resp.into_body().read_to_string().expect("metrics text");
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn node(env: &[(String, String)], url: &str, data: &Path, age: &str, head: &str) -> Server {
    let flags =
        ["--storage", url, "--max-block-age", age, "--poll-interval", "200ms", "--head-max-size", head];
    Server::start_env(data, Ports::free(), &flags, env)
}

#[test]
fn a_failing_object_store_degrades_queries_and_loses_nothing_acknowledged() {
    let s3 = SeaweedFs::start();
    let proxy = Proxy::start(&s3.endpoint);
    let url = s3.url("it-faults");
    let dir = tempfile::tempdir().unwrap();
    // B talks to the store directly and starts first, so it holds the
    // compaction lease: A never merges (and so never caches) B's blocks.
    let b = node(&s3.env(), &url, &dir.path().join("b"), "3s", "32MiB");
    wait_for("B holds the compaction lease", 20, || object_storage(&b).1.contains("(this node)"));
    let env_a: Vec<(String, String)> = s3
        .env()
        .into_iter()
        .map(|(k, v)| if k == "AWS_ENDPOINT_URL" { (k, proxy.endpoint()) } else { (k, v) })
        .collect();
    // A small head on A, so the outage outlasts its ingest budget.
    let a = node(&env_a, &url, &dir.path().join("a"), "1s", "256KiB");

    // Cold data: B's blocks, over 2 MiB (incompressible payloads), which A
    // opens (footer, page index: the last 1 MiB chunk) but never reads
    // further before the outage, so a lookup on A must fetch ranges.
    let cold: Vec<[u8; 16]> = (0..20).map(|n| trace_id(1, n)).collect();
    for t in &cold {
        let reply = b.post_traces("application/x-protobuf", None, &spans(*t, 100, "svc-cold", 4096));
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // (A's store lists a block: B's, as A received nothing yet. Not A's
    // service listing, which also holds what B's head has.)
    wait_for("A lists B's block", 60, || {
        let (_, health) = a.get_json("/health");
        let checks = health["checks"].as_array().cloned().unwrap_or_default();
        let store = checks.iter().find(|c| c["name"] == "store").cloned().unwrap_or_default();
        let detail = store["detail"].as_str().unwrap_or_default().to_owned();
        detail.contains(" blocks") && !detail.contains(" 0 blocks")
    });

    // One writer keeps sending 20-span traces to A throughout.
    let acked: Arc<Mutex<Vec<[u8; 16]>>> = Arc::default();
    let refused = Arc::new(AtomicU32::new(0));
    let outage = Arc::new(AtomicBool::new(false));
    let acked_in_outage = Arc::new(AtomicU32::new(0));
    let refused_in_outage = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let url = format!("{}/v1/traces", a.otlp_http);
        let (acked, refused, stop) = (Arc::clone(&acked), Arc::clone(&refused), Arc::clone(&stop));
        let (outage, acked_in_outage, refused_in_outage) =
            (Arc::clone(&outage), Arc::clone(&acked_in_outage), Arc::clone(&refused_in_outage));
        std::thread::spawn(move || {
            let client = agent(20);
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let t = trace_id(2, n);
                n += 1;
                let body = spans(t, 20, "svc-faults", 200);
                let sent = client.post(&url).header("content-type", "application/x-protobuf").send(&body[..]);
                let status = match sent {
                    Ok(resp) => resp.status().as_u16(),
                    Err(e) => panic!("an export did not get an answer within 20 s: {e}"),
                };
                let during = outage.load(Ordering::Relaxed);
                match status {
                    200 => {
                        acked.lock().unwrap().push(t);
                        if during {
                            acked_in_outage.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    429 | 503 => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        if during {
                            refused_in_outage.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    other => panic!("an export got {other}: refusals must be retryable (429/503)"),
                }
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    wait_for("A acknowledges", 20, || !acked.lock().unwrap().is_empty());

    // The faults, one after another: a store that holds connections
    // without answering (A's reads must give up on their own), then one
    // answering 503, 500, 409, then one that refuses connections.
    outage.store(true, Ordering::Relaxed);
    let mut cold_reads = cold.iter();
    for (mode, secs) in
        [(Mode::Hold, 7), (Mode::Fail(503), 4), (Mode::Fail(500), 2), (Mode::Fail(409), 2), (Mode::Down, 5)]
    {
        proxy.set(mode);
        let until = Instant::now() + Duration::from_secs(secs);
        // A query that needs a block range A has not cached answers (the
        // block skipped), within the client's 20 s: object_store's
        // defaults retried for up to 3 minutes.
        let t = *cold_reads.next().expect("a cold trace per mode");
        let (status, _) = span_ids(&a, t);
        assert!([200, 404].contains(&status), "a query during {mode:?}: {status}");
        // What A holds itself answers whole.
        let held = *acked.lock().unwrap().last().expect("acked");
        wait_whole(&a, held, 20, 20);
        let search = format!("{}/api/traces?service=svc-cold&limit=5", a.api);
        let resp = agent(20).get(&search).call().unwrap_or_else(|e| panic!("search during {mode:?}: {e}"));
        assert_eq!(resp.status().as_u16(), 200, "search during {mode:?}");
        if let Some(left) = until.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
    }
    let (status, detail) = object_storage(&a);
    assert!(
        status != "ok" && detail.contains("degraded"),
        "A's /health during the outage: {status} {detail}"
    );
    assert!(metric(&a, "sightline_store_unreadable_block_reads_total") > 0.0, "no block read was skipped");
    proxy.set(Mode::Pass);
    outage.store(false, Ordering::Relaxed);

    wait_for("A's /health reports the store answering again", 60, || object_storage(&a).0 == "ok");
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let acked = acked.lock().unwrap().clone();
    let (in_outage, refusals) =
        (acked_in_outage.load(Ordering::Relaxed), refused_in_outage.load(Ordering::Relaxed));
    eprintln!(
        "{} traces acknowledged ({in_outage} during the outage), {} refused ({refusals} during it)",
        acked.len(),
        refused.load(Ordering::Relaxed)
    );
    assert!(in_outage > 0, "nothing was acknowledged into the WAL while the store was failing");
    assert!(refusals > 0, "the outage never used up the ingest budget: the test does not reach the refusals");

    // Every acknowledged trace is on B, whole, once: A flushed it all once
    // the store was back.
    wait_whole(&b, *acked.last().unwrap(), 20, 90);
    for t in &acked {
        wait_whole(&b, *t, 20, 30);
    }
    // The blocks A could not read during the outage were not taken for
    // damaged: A reads them now.
    for t in &cold[..4] {
        wait_whole(&a, *t, 100, 30);
    }
    assert_eq!(metric(&a, "sightline_store_damaged_blocks"), 0.0, "{}", a.stderr());
}
