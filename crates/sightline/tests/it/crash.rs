//! kill -9 while exports are in flight: every span the server acknowledged
//! must be queryable after a restart on the same data directory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};

use crate::harness::{Server, encode, hex, now_ns, request, span};

const SPANS_PER_BATCH: u8 = 40;

/// One batch = one trace: `SPANS_PER_BATCH` spans, ids derived from
/// (writer, sequence) so every acknowledged trace is known exactly.
fn batch(writer: u8, seq: u32) -> ([u8; 16], Vec<u8>) {
    let mut t = [0u8; 16];
    t[0] = 0xc0 | writer;
    t[1..5].copy_from_slice(&seq.to_be_bytes());
    t[15] = 1;
    let start = now_ns();
    let spans = (0..SPANS_PER_BATCH)
        .map(|i| {
            let parent = (i > 0).then_some([i; 8]);
            let mut s = span(t, [i + 1; 8], parent, &format!("op-{}", i % 7), start + u64::from(i) * 1000);
            s.attributes.push(crate::harness::string_kv("payload", &"x".repeat(200)));
            s
        })
        .collect();
    (t, encode(&request(&format!("crash-svc-{writer}"), spans)))
}

#[test]
fn acknowledged_spans_survive_kill_9_at_random_moments() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acked: Arc<Mutex<Vec<[u8; 16]>>> = Arc::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let seq = Arc::new(AtomicU64::new(0));
    for round in 0..4 {
        // A small head makes heads cut and flush into blocks during the
        // run, so kills also land mid-flush.
        let mut server = Server::start_with(&data, &["--head-max-size", "1MiB"]);
        let url = format!("{}/v1/traces", server.otlp_http);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3u8)
            .map(|w| {
                let (url, stop, acked, seq) =
                    (url.clone(), Arc::clone(&stop), Arc::clone(&acked), Arc::clone(&seq));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = seq.fetch_add(1, Ordering::Relaxed) as u32;
                        let (t, body) = batch(w, n);
                        let agent = crate::harness::agent();
                        let sent =
                            agent.post(&url).header("content-type", "application/x-protobuf").send(&body[..]);
                        match sent {
                            Ok(resp) if resp.status() == 200 => acked.lock().unwrap().push(t),
                            Ok(resp) => assert!(
                                resp.status() == 429 || resp.status() == 503,
                                "unexpected status {}",
                                resp.status()
                            ),
                            Err(_) => return, // the server is gone
                        }
                    }
                })
            })
            .collect();
        let delay = rng.random_range(150..1500);
        std::thread::sleep(Duration::from_millis(delay));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        let count = acked.lock().unwrap().len();
        assert!(count > 0, "round {round}: nothing was acknowledged in {delay} ms");
    }

    let server = Server::start(&data);
    let acked = acked.lock().unwrap().clone();
    for t in &acked {
        let (status, body) = server.get_json(&format!("/api/traces/{}", hex(t)));
        assert_eq!(status, 200, "acknowledged trace {} lost after kill -9", hex(t));
        let spans = body["data"][0]["spans"].as_array().unwrap().len();
        assert_eq!(spans, usize::from(SPANS_PER_BATCH), "trace {} incomplete", hex(t));
    }
    eprintln!("{} acknowledged traces all survived 4 kill -9 rounds", acked.len());
}
