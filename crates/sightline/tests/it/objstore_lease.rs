//! Issue 13: the compaction lease holder dies mid-compaction, and a stale
//! holder races a newer one. Three real nodes on SeaweedFS with the debug
//! build's test hooks (`SIGHTLINE_TEST_*_MS`): a 3 s lease, an 8 s delete
//! grace, and a pause between a merge's upload and its manifest commit, so
//! "mid-compaction" is a point the test sees in the node's log, not a
//! guess. Checked throughout: every span once through node C, and the
//! listed blocks' span total (`sightline bucket list`) equal to what was
//! sent: a lost block lowers it, a duplicated one raises it.

use crate::harness::strip_ansi;
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Launch, Ports, Server, encode, hex, now_ns, request, span};

/// What a node logs once a merge's output is in the bucket and the merge
/// waits (test hook) before swapping it into the manifest.
const PAUSED: &str = "test hook: merge output written, pausing before its commit";
const COMMITTED: &str = "compacted blocks";
const SUPERSEDED: &str = "a merge lost to another node's; dropped";
const PREFIX: &str = "it-lease";
/// Spans per trace sent.
const SPANS: usize = 2;

/// A node cutting a block every 500 ms; merges pause `pause_ms` before
/// their commit.
fn node(s3: &SeaweedFs, url: &str, data: &Path, id: &str, pause_ms: u64) -> Server {
    let flags = ["--storage", url, "--max-block-age", "500ms", "--poll-interval", "200ms", "--node-id", id];
    let flags = [&flags[..], &["--lease-ttl", "3s"]].concat();
    let mut env: Vec<(&str, String)> = Vec::new();
    let vars = s3.env();
    env.extend(vars.iter().map(|(k, v)| (k.as_str(), v.clone())));
    env.push(("SIGHTLINE_TEST_DELETE_GRACE_MS", "8000".into()));
    env.push(("SIGHTLINE_TEST_MERGE_COMMIT_PAUSE_MS", pause_ms.to_string()));
    Server::launch(data, Ports::free(), Launch { extra: &flags, env, ..Launch::default() })
}

fn trace_id(n: u32) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[0] = 0x1e;
    t[1..5].copy_from_slice(&n.to_be_bytes());
    t[15] = 1;
    t
}

/// Sends trace `n` (`SPANS` spans) to `server`.
fn send(server: &Server, n: u32) {
    let t = trace_id(n);
    let spans = (0..SPANS as u8)
        .map(|i| span(t, [t[1], t[2], t[3], t[4], 0, 0, 0, i + 1], None, "op", now_ns()))
        .collect();
    let reply = server.post_traces("application/x-protobuf", None, &encode(&request("svc", spans)));
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// The object-storage check's detail in `/health`.
fn lease_detail(server: &Server) -> String {
    let (_, health) = server.get_json("/health");
    let checks = health["checks"].as_array().cloned().unwrap_or_default();
    let check = checks.iter().find(|c| c["name"] == "object_storage").cloned().unwrap_or_default();
    check["detail"].as_str().unwrap_or_default().to_owned()
}

fn holds_lease(server: &Server) -> bool {
    lease_detail(server).contains("(this node)")
}

/// Waits up to `secs` for `what` to hold, naming `why` on timeout.
fn wait_for(secs: u64, why: &str, mut what: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !what() {
        assert!(Instant::now() < deadline, "timed out waiting for {why}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How often `line` is in `server`'s log.
fn logged(server: &Server, line: &str) -> usize {
    server.stderr().matches(line).count()
}

/// The output block id of the last paused merge in `server`'s log.
fn paused_output(server: &Server) -> String {
    let log = server.stderr();
    let line = log.lines().rev().find(|l| l.contains(PAUSED)).expect("a paused merge");
    let line = strip_ansi(line);
    let at = line.find("output=").unwrap_or_else(|| panic!("no output field in {line}")) + "output=".len();
    line[at..].split(|c: char| c.is_whitespace() || c == '"').find(|s| !s.is_empty()).unwrap().to_owned()
}

/// (listed blocks, their span total) from `sightline bucket list`.
fn bucket_totals(s3: &SeaweedFs, url: &str) -> (u64, u64) {
    let out = Command::new(crate::harness::binary())
        .args(["bucket", "list", "--storage", url])
        .envs(s3.env())
        .output()
        .expect("sightline bucket list");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    // `tenant single-tenant: N listed blocks, S spans, B bytes`
    let line = text.lines().find(|l| l.starts_with("tenant single-tenant:")).unwrap_or_default();
    let number = |after: &str| -> u64 {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        words.windows(2).find(|w| w[1] == after).and_then(|w| w[0].parse().ok()).unwrap_or(0)
    };
    (number("listed"), number("spans"))
}

/// Whether block `id` has any object in the bucket.
fn in_bucket(s3: &SeaweedFs, id: &str) -> bool {
    let store = s3.store();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use futures_util::TryStreamExt as _;
        let prefix = object_store::path::Path::from(format!("{PREFIX}/single-tenant/blocks/{id}"));
        let keys: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await.unwrap();
        !keys.is_empty()
    })
}

/// Every trace `0..sent` through `server`: `SPANS` spans each, each once.
fn assert_all_once(server: &Server, sent: u32) {
    for n in 0..sent {
        let (status, body) = server.get_json(&format!("/api/traces/{}", hex(&trace_id(n))));
        let ids: Vec<&str> = body["data"][0]["spans"]
            .as_array()
            .map(|s| s.iter().filter_map(|s| s["spanID"].as_str()).collect())
            .unwrap_or_default();
        let distinct: HashSet<&&str> = ids.iter().collect();
        assert_eq!((status, ids.len(), distinct.len()), (200, SPANS, SPANS), "trace {n}: {body}");
    }
}

/// Sends a trace to each of `to` in turn, every 100 ms, until `until`;
/// returns the next trace number.
fn send_until(to: &[&Server], mut n: u32, why: &str, until: impl Fn() -> bool) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !until() {
        assert!(Instant::now() < deadline, "timed out sending until {why}");
        send(to[n as usize % to.len()], n);
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    n
}

fn signal(server: &Server, sig: &str) {
    assert!(Command::new("kill").args([sig, &server.pid().to_string()]).status().unwrap().success());
}

#[test]
fn lease_holder_killed_mid_compaction_and_a_stale_holders_commit() {
    let s3 = SeaweedFs::start();
    let url = s3.url(PREFIX);
    let dir = tempfile::tempdir().unwrap();
    // A alone first: it takes the lease. Its merges pause a minute before
    // committing (it is killed in that minute); B's and C's pause 5 s.
    let mut a = node(&s3, &url, &dir.path().join("a"), "node-a", 60_000);
    wait_for(30, "A to take the lease", || holds_lease(&a));
    let b = node(&s3, &url, &dir.path().join("b"), "node-b", 5_000);
    let c = node(&s3, &url, &dir.path().join("c"), "node-c", 5_000);

    // Blocks from B and C until A (the only one allowed) merges 16 of
    // them: it uploads the output and pauses before the manifest swap.
    let sent = send_until(&[&b, &c], 0, "A pauses a merge", || logged(&a, PAUSED) > 0);
    let orphan = paused_output(&a);
    assert!(orphan.starts_with("node-a-"), "{orphan}");
    assert!(in_bucket(&s3, &orphan), "the merge output {orphan} is uploaded before the pause");
    a.kill9();

    // B or C takes the lease after the TTL and merges on its own (nothing
    // more is sent: taking the lease is what starts it).
    wait_for(60, "B or C to take the lease and commit a merge", || {
        logged(&b, COMMITTED) + logged(&c, COMMITTED) > 0
    });
    let (holder, other) = if holds_lease(&b) { (&b, &c) } else { (&c, &b) };
    assert!(holds_lease(holder), "{}", lease_detail(holder));
    // Nothing lost or doubled: the listed blocks hold each span sent once.
    wait_for(30, "every span sent in a listed block", || bucket_totals(&s3, &url).1 == u64::from(sent) * 2);
    assert_all_once(&c, sent);
    // A's upload was never listed: the holder deletes it after the grace.
    wait_for(60, "the dead holder's unlisted upload to be deleted", || !in_bucket(&s3, &orphan));

    // A stale holder: the holder pauses a merge and is stopped (SIGSTOP)
    // past the TTL; the other node takes the lease, merges the same blocks
    // and commits. Resumed, the stale holder's commit fails its
    // compare-and-swap and its output is dropped.
    let paused = logged(holder, PAUSED);
    let sent = send_until(&[other], sent, "the holder pauses a merge", || logged(holder, PAUSED) > paused);
    signal(holder, "-STOP");
    let committed = logged(other, COMMITTED);
    let stale_output = paused_output(holder);
    wait_for(60, "the other node to take the lease and commit", || logged(other, COMMITTED) > committed);
    signal(holder, "-CONT");
    wait_for(30, "the stale holder's commit to fail", || logged(holder, SUPERSEDED) > 0);
    wait_for(30, "the stale output to be deleted", || !in_bucket(&s3, &stale_output));
    let (blocks, spans) = bucket_totals(&s3, &url);
    assert_eq!(spans, u64::from(sent) * 2, "{blocks} listed blocks");
    assert_all_once(&c, sent);
}
