//! Issue 13 follow-up: `/api/logs` on any node includes the records live
//! peers acknowledged and have not flushed (their log heads,
//! `/internal/logs/head`), each once and newest first, paged by cursor
//! across nodes; a peer that does not answer is named in the
//! `sightline-warnings` header and the search still answers. Two real
//! nodes on SeaweedFS, nothing flushed (10 minutes' block age).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Ports, Server};
use crate::objstore_logs::{batch, post_logs};
use crate::peers::{get, node};

/// The records of one page: (body, timestamp µs).
fn records(page: &Value) -> Vec<(String, u64)> {
    page["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| (r["body"].as_str().unwrap_or_default().to_owned(), r["timestamp"].as_u64().unwrap_or(0)))
        .collect()
}

/// How often each body is on `server`'s first page for `marker`, waiting
/// up to 30 s (peers are found by their heartbeats) for `want` of them
/// with no warning; fails at once on a record served twice.
fn wait_for(server: &Server, marker: &str, want: usize) -> HashMap<String, usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, warnings, page) = get(server, &format!("/api/logs?q={marker}&limit=1000"));
        assert_eq!(status, 200, "{page}");
        let mut found: HashMap<String, usize> = HashMap::new();
        for (body, _) in records(&page) {
            *found.entry(body).or_insert(0) += 1;
        }
        assert!(found.values().all(|n| *n == 1), "a record served twice: {found:?}");
        if warnings.is_none() && found.len() == want {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {want} records, {warnings:?}: {}",
            found.len(),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn log_searches_on_any_node_include_live_peers_log_heads() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-peer-logs");
    let dir = tempfile::tempdir().unwrap();
    let mut a = node(&s3, &url, &dir.path().join("a"), Ports::free(), "node-a", &[]);
    let b = node(&s3, &url, &dir.path().join("b"), Ports::free(), "node-b", &[]);
    let marker = "pk4peerlogs";
    let from_a = batch(marker, "a", 0, 25);
    let from_b = batch(marker, "b", 0, 15);
    post_logs(&a, "svc-a", &from_a);
    post_logs(&b, "svc-b", &from_b);

    // Nothing is flushed: each node sees the other's records only by
    // asking its log head.
    for server in [&b, &a] {
        let found = wait_for(server, marker, from_a.len() + from_b.len());
        for body in from_a.iter().chain(&from_b) {
            assert!(found.contains_key(body), "{body} missing: {found:?}");
        }
    }

    // Paged by 7 on B: every record once, newest first across the pages.
    let mut seen: Vec<(String, u64)> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let path = match &cursor {
            None => format!("/api/logs?q={marker}&limit=7"),
            Some(c) => format!("/api/logs?q={marker}&limit=7&cursor={c}"),
        };
        let (status, warnings, page) = get(&b, &path);
        assert_eq!((status, warnings), (200, None), "{page}");
        let this = records(&page);
        assert!(this.len() <= 7, "{page}");
        seen.extend(this);
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut bodies: Vec<&str> = seen.iter().map(|(b, _)| b.as_str()).collect();
    bodies.sort_unstable();
    let mut all: Vec<&str> = from_a.iter().chain(&from_b).map(String::as_str).collect();
    all.sort_unstable();
    assert_eq!(bodies, all, "the pages hold every record once");
    assert!(seen.windows(2).all(|w| w[0].1 >= w[1].1), "newest first across pages: {seen:?}");

    // A gone: B still answers with its own records and names A.
    a.kill9();
    let (status, warnings, page) = get(&b, &format!("/api/logs?q={marker}&limit=1000"));
    assert_eq!(status, 200, "{page}");
    let warnings = warnings.expect("a warning naming the peer that did not answer");
    assert!(warnings.contains("node-a") && warnings.contains("did not answer"), "{warnings}");
    let mut bodies: Vec<String> = records(&page).into_iter().map(|(b, _)| b).collect();
    bodies.sort_unstable();
    let mut own = from_b.clone();
    own.sort_unstable();
    assert_eq!(bodies, own);
}
