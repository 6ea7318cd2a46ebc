//! Issue 14: a live tail (`/api/logs/tail`) on any node of a shared bucket
//! shows the records every live node acknowledges, not only its own: a
//! node that joins after the tail opened is followed (`peer` event), a
//! record sent to it arrives on the tail, a peer that hangs does not hold
//! up this node's records, and when it dies the tail says so and goes on
//! with this node's records. Two real nodes on SeaweedFS.

use std::io::{BufRead as _, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Ports, Server};
use crate::objstore_logs::{batch, post_logs};
use crate::peers::node;

/// How long each expected event may take (peers are found by their
/// heartbeats, every 2.5 s; a busy CI machine is slow).
const WAIT: Duration = Duration::from_secs(40);

/// One server-sent event: its name and its data as JSON.
type SseEvent = (String, Value);

/// Opens `path` on `server` as an event stream; its events arrive on the
/// returned channel (read by a thread until the stream or the test ends).
fn open_tail(server: &Server, path: &str) -> mpsc::Receiver<SseEvent> {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(300))).build().into();
    let response = agent.get(&format!("{}{path}", server.api)).call().expect("GET tail");
    assert_eq!(response.status().as_u16(), 200);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let reader = BufReader::new(response.into_body().into_reader());
        let mut name = String::new();
        for line in reader.lines() {
            let Ok(line) = line else { return };
            if let Some(event) = line.strip_prefix("event:") {
                name = event.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:") {
                let data = serde_json::from_str(data.trim()).unwrap_or(Value::Null);
                if tx.send((std::mem::take(&mut name), data)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Reads events until one `pick`s something; panics after [`WAIT`].
fn wait_for<T>(
    events: &mpsc::Receiver<SseEvent>,
    what: &str,
    mut pick: impl FnMut(&SseEvent) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let event = events.recv_timeout(left).unwrap_or_else(|e| panic!("no {what} within {WAIT:?}: {e}"));
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

/// Sends `server` a signal (`-STOP`, `-CONT`).
fn signal(server: &Server, which: &str) {
    let status = std::process::Command::new("kill").args([which, &server.pid().to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill {which}");
}

/// A `log` event's body when it is one of `bodies`.
fn log_body(event: &SseEvent, bodies: &[String]) -> Option<String> {
    let (name, data) = event;
    let body = data["body"].as_str()?;
    (name == "log" && bodies.iter().any(|b| b == body)).then(|| body.to_owned())
}

/// A `peer` event about `node` with `connected`.
fn peer_event(event: &SseEvent, node: &str, connected: bool) -> Option<Value> {
    let (name, data) = event;
    let about = data["peer"].as_str().is_some_and(|p| p.contains(node));
    (name == "peer" && about && data["connected"] == connected).then(|| data.clone())
}

#[test]
fn a_tail_on_one_node_shows_records_sent_to_its_peers() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-peer-tail");
    let dir = tempfile::tempdir().unwrap();
    let marker = "pk4peertail";
    let a = node(&s3, &url, &dir.path().join("a"), Ports::free(), "node-a", &[]);
    // A's log store for the default tenant exists before the tail opens.
    post_logs(&a, "svc-a", &batch(marker, "a", 0, 1));
    let events = open_tail(&a, &format!("/api/logs/tail?q={marker}"));

    // B joins after the tail opened: A follows it once it sees B's
    // heartbeat.
    let mut b = node(&s3, &url, &dir.path().join("b"), Ports::free(), "node-b", &[]);
    wait_for(&events, "peer event for node-b", |e| peer_event(e, "node-b", true));

    // A record sent to B reaches the tail on A, and so does A's own.
    let from_b = batch(marker, "b", 1, 3);
    post_logs(&b, "svc-b", &from_b);
    let from_a = batch(marker, "a", 1, 2);
    post_logs(&a, "svc-a", &from_a);
    let mut seen: Vec<String> = Vec::new();
    let all: Vec<String> = from_b.iter().chain(&from_a).cloned().collect();
    while seen.len() < all.len() {
        let body = wait_for(&events, "the records sent to B and A", |e| log_body(e, &all));
        assert!(!seen.contains(&body), "{body} arrived twice");
        seen.push(body);
    }
    // A record from B that the filter leaves out never arrives: the next
    // record seen below is A's.
    post_logs(&b, "svc-b", &["not the marker".to_owned()]);

    // B hangs (SIGSTOP: connected, silent): A's records are not held up
    // behind it.
    signal(&b, "-STOP");
    let while_stopped = batch(marker, "a", 2, 1);
    post_logs(&a, "svc-a", &while_stopped);
    let next = wait_for(&events, "A's record while B hangs", |(name, data)| {
        (name == "log").then(|| data["body"].as_str().unwrap_or_default().to_owned())
    });
    assert_eq!(next, while_stopped[0], "only A's record; nothing unfiltered from B");
    signal(&b, "-CONT");

    // B dies: the tail says so, and A's records still arrive.
    b.kill9();
    let lost = wait_for(&events, "lost event for node-b", |e| peer_event(e, "node-b", false));
    assert!(lost["reason"].as_str().is_some_and(|r| r.contains("node-b")), "{lost}");
    let after = batch(marker, "a", 3, 1);
    post_logs(&a, "svc-a", &after);
    let next = wait_for(&events, "A's record after B died", |(name, data)| {
        (name == "log").then(|| data["body"].as_str().unwrap_or_default().to_owned())
    });
    assert_eq!(next, after[0], "{}", a.stderr());
}
