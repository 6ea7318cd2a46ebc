//! Issue 13: a query on any node of a shared bucket includes the heads of
//! live peers (what they acknowledged but have not flushed), merged with
//! the blocks once per span; a peer that does not answer is named in the
//! answer's warnings, never an error. Three real nodes on a real S3
//! server (SeaweedFS), heads kept for 10 minutes so nothing is flushed
//! unless a node stops.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Ports, Server, agent, encode, hex, now_ns, request, span};

/// How a response names what a partial answer left out.
pub(crate) const WARNINGS: &str = "sightline-warnings";

/// A node that keeps its head for 10 minutes (so only a stop flushes it)
/// and polls the manifest every 200 ms. Peer timeout generous: a busy CI
/// machine must not turn a slow answer into a warning.
pub(crate) fn node(s3: &SeaweedFs, url: &str, data: &Path, ports: Ports, id: &str, extra: &[&str]) -> Server {
    let mut flags =
        vec!["--storage", url, "--max-block-age", "10m", "--poll-interval", "200ms", "--node-id", id];
    flags.extend(["--peer-timeout", "20s"]);
    // Heartbeats every 2.5 s: nodes find each other soon.
    flags.extend(["--lease-ttl", "10s"]);
    flags.extend(extra);
    Server::start_env(data, ports, &flags, &s3.env())
}

pub(crate) fn trace_id(n: u8) -> [u8; 16] {
    let mut t = [0u8; 16];
    t[0] = 0x7a;
    t[1] = n;
    t[15] = 1;
    t
}

/// Spans `range` of trace `t` from `service`, as an OTLP/HTTP body.
fn spans(t: [u8; 16], range: std::ops::Range<u8>, service: &str) -> Vec<u8> {
    let start = now_ns();
    let spans = range
        .map(|i| span(t, [t[1], 0, 0, 0, 0, 0, 0, i + 1], None, &format!("op-{i}"), start + u64::from(i)));
    encode(&request(service, spans.collect()))
}

pub(crate) fn post(server: &Server, body: Vec<u8>) {
    let reply = server.post_traces("application/x-protobuf", None, &body);
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// GET on `server`'s API: status, the warnings header, the body as JSON.
pub(crate) fn get(server: &Server, path: &str) -> (u16, Option<String>, Value) {
    get_as(server, path, None)
}

/// [`get`] with `Authorization: Bearer <token>`.
pub(crate) fn get_as(server: &Server, path: &str, token: Option<&str>) -> (u16, Option<String>, Value) {
    let mut request = agent().get(&format!("{}{path}", server.api));
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let resp = request.call().expect("GET");
    let status = resp.status().as_u16();
    let warnings = resp.headers().get(WARNINGS).map(|v| v.to_str().unwrap_or_default().to_owned());
    let mut body = String::new();
    resp.into_body().into_reader().read_to_string(&mut body).expect("body");
    (status, warnings, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Every `spanID`/`spanId` in a JSON document.
fn span_ids(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("spanID" | "spanId", Value::String(s)) => out.push(s.clone()),
                    _ => span_ids(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| span_ids(v, out)),
        _ => {}
    }
}

/// Waits up to 30 s for trace `t` on `server` to have `count` spans, each
/// once (a span twice fails at once), with a warning when `warned` says
/// and none otherwise; returns the last warning header.
fn wait_trace(server: &Server, t: [u8; 16], count: usize, warned: bool) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, warnings, body) = get(server, &format!("/api/traces/{}", hex(&t)));
        let mut ids = Vec::new();
        span_ids(&body["data"], &mut ids);
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len(), "trace {} has a span twice: {ids:?}", hex(&t));
        if status == 200 && ids.len() == count && warnings.is_some() == warned {
            if warned {
                // Jaeger UI shows a trace's warnings above it.
                let shown = body["data"][0]["warnings"].to_string();
                assert!(shown.contains("did not answer"), "{shown}");
            }
            return warnings;
        }
        assert!(
            Instant::now() < deadline,
            "trace {} on {}: {status}, {} of {count} spans, warnings {warnings:?} (wanted: {warned}): {}",
            hex(&t),
            server.api,
            ids.len(),
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The store check's detail in `/health`, e.g. "3 spans in head, …".
fn store_health(server: &Server) -> String {
    let (_, _, health) = get(server, "/health");
    let checks = health["checks"].as_array().cloned().unwrap_or_default();
    let store = checks.iter().find(|c| c["name"] == "store").cloned().unwrap_or_default();
    store["detail"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn queries_on_any_node_include_live_peers_heads() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-peers");
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pc) = (Ports::free(), Ports::free(), Ports::free());
    let data_a = dir.path().join("a");
    let mut a = node(&s3, &url, &data_a, pa, "node-a", &[]);
    // B finds A through A's heartbeat only; C is also told of both.
    let b = node(&s3, &url, &dir.path().join("b"), pb, "node-b", &[]);
    let listed = format!("127.0.0.1:{},127.0.0.1:{}", pa.api, pb.api);
    let c = node(&s3, &url, &dir.path().join("c"), pc, "node-c", &["--peers", &listed]);
    let a_addr = format!("127.0.0.1:{}", pa.api);

    // Before any flush: a trace split over A and B, one only on A.
    let (split, only_a, later) = (trace_id(1), trace_id(2), trace_id(3));
    post(&a, spans(split, 0..2, "svc-a"));
    post(&b, spans(split, 2..4, "svc-b"));
    post(&a, spans(only_a, 0..3, "svc-a"));
    wait_trace(&c, split, 4, false);
    wait_trace(&c, only_a, 3, false);
    wait_trace(&b, only_a, 3, false);
    // ... found through the peers, not the bucket: nothing was flushed.
    for server in [&a, &b] {
        let health = store_health(server);
        assert!(health.contains(" 0 blocks"), "{health}");
    }
    // A search on C finds the trace by A's service and returns it whole.
    let (status, warnings, body) = get(&c, "/api/traces?service=svc-a&limit=20");
    assert_eq!((status, warnings), (200, None), "{body}");
    let found: Vec<&Value> = body["data"].as_array().unwrap().iter().collect();
    let whole = found.iter().find(|t| t["traceID"] == hex(&split)).expect("split trace found");
    let mut ids = Vec::new();
    span_ids(whole, &mut ids);
    assert_eq!(ids.len(), 4, "{whole}");
    assert!(found.iter().any(|t| t["traceID"] == hex(&only_a)), "{body}");
    // Tempo's by-id and search APIs see the same.
    let (status, warnings, tempo) = get(&c, &format!("/api/v2/traces/{}", hex(&split)));
    let mut ids = Vec::new();
    span_ids(&tempo, &mut ids);
    assert_eq!((status, warnings, ids.len()), (200, None, 4), "{tempo}");
    let (status, _, search) = get(&c, "/api/search?q=%7Bresource.service.name%3D%22svc-b%22%7D");
    assert_eq!(status, 200, "{search}");
    assert!(search.to_string().contains(&hex(&split)), "{search}");

    // A stops (flushing its head into the bucket): C serves A's spans from
    // the blocks, B's from B's head, and says A did not answer.
    assert!(a.terminate().success());
    // `sightline bucket list` shows what A flushed: its 5 spans, listed.
    let listing = std::process::Command::new(crate::harness::binary())
        .args(["bucket", "list", "--storage", &url])
        .envs(s3.env())
        .output()
        .expect("sightline bucket list");
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{text}{}", String::from_utf8_lossy(&listing.stderr));
    assert!(text.contains("listed blocks, 5 spans"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("single-tenant\tnode-a")), "{text}");
    let warning = wait_trace(&c, split, 4, true).unwrap_or_default();
    assert!(warning.contains(&a_addr), "{warning}");
    wait_trace(&c, only_a, 3, true);

    // A back: every span once, no warning.
    a = node(&s3, &url, &data_a, pa, "node-a", &[]);
    wait_trace(&c, split, 4, false);
    wait_trace(&c, only_a, 3, false);

    // kill -9 A with a trace only in its head: C still answers from A's
    // blocks with a warning naming A; the trace in A's head is missing
    // (404, with the warning) until A is back and replays its WAL.
    post(&a, spans(later, 0..3, "svc-a"));
    wait_trace(&c, later, 3, false);
    a.kill9();
    let warning = wait_trace(&c, split, 4, true).unwrap_or_default();
    assert!(warning.contains(&a_addr), "{warning}");
    let (status, warnings, body) = get(&c, &format!("/api/traces/{}", hex(&later)));
    assert_eq!(status, 404, "{body}");
    assert!(warnings.unwrap_or_default().contains(&a_addr));
    let (_, _, metrics) = {
        let resp = agent().get(&format!("{}/metrics", c.api)).call().expect("GET");
        let mut text = String::new();
        resp.into_body().into_reader().read_to_string(&mut text).expect("body");
        (0, None::<String>, text)
    };
    for outcome in ["ok", "error"] {
        let line = format!("sightline_objstore_peer_requests_total{{op=\"traces\",outcome=\"{outcome}\"}}");
        assert!(metrics.contains(&line), "no {line} in {metrics}");
    }

    let _a = node(&s3, &url, &data_a, pa, "node-a", &[]);
    for (t, count) in [(split, 4), (only_a, 3), (later, 3)] {
        wait_trace(&c, t, count, false);
    }

    // `sightline bucket verify` checks every block's bytes: intact, then
    // one flipped byte in A's block is found and named.
    let verify = || {
        let out = std::process::Command::new(crate::harness::binary())
            .args(["bucket", "verify", "--storage", &url])
            .envs(s3.env())
            .output()
            .expect("sightline bucket verify");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = verify();
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("\tintact") && text.contains(" 0 damaged"), "{text}");
    let store = s3.store();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use futures_util::TryStreamExt as _;
        use object_store::ObjectStoreExt as _;
        let keys: Vec<object_store::ObjectMeta> = store
            .list(Some(&object_store::path::Path::from("it-peers/single-tenant/blocks")))
            .try_collect()
            .await
            .unwrap();
        let data = keys.iter().find(|m| m.location.as_ref().ends_with("data.parquet")).expect("a block");
        let mut bytes = store.get(&data.location).await.unwrap().bytes().await.unwrap().to_vec();
        bytes[100] ^= 0xff;
        store.put(&data.location, bytes.into()).await.unwrap();
    });
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("DAMAGED: 1 damaged chunk(s) of data.parquet, first at bytes 0..4096"), "{text}");
}

/// With `--auth-tokens`, the caller's token goes to the peer: the peer
/// answers for the token's tenant only, so tenants stay apart through a
/// peer query as on one node.
#[test]
fn peer_queries_carry_the_callers_token_and_tenant() {
    const ACME: &str = "acme-token-aaaaaaaaaaaaaaaaaaaa";
    const GLOBEX: &str = "globex-token-bbbbbbbbbbbbbbbbbb";
    let s3 = SeaweedFs::start();
    let url = s3.url("it-peer-auth");
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{ACME} acme read,write\n{GLOBEX} globex read,write\n")).unwrap();
    std::fs::set_permissions(&tokens, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let auth = ["--auth-tokens", tokens.to_str().unwrap()];
    let a = node(&s3, &url, &dir.path().join("a"), Ports::free(), "node-a", &auth);
    let c = node(&s3, &url, &dir.path().join("c"), Ports::free(), "node-c", &auth);
    let t = trace_id(9);
    let reply = crate::harness::agent()
        .post(&format!("{}/v1/traces", a.otlp_http))
        .header("content-type", "application/x-protobuf")
        .header("authorization", &format!("Bearer {ACME}"))
        .send(&spans(t, 0..3, "svc-acme")[..])
        .expect("POST");
    assert_eq!(reply.status(), 200);
    let path = format!("/api/traces/{}", hex(&t));
    // C knows A from its heartbeat; A answers C only with the token.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, warnings, body) = get_as(&c, &path, Some(ACME));
        let mut ids = Vec::new();
        span_ids(&body["data"], &mut ids);
        if status == 200 && ids.len() == 3 {
            assert_eq!(warnings, None);
            break;
        }
        assert!(Instant::now() < deadline, "{status} {warnings:?} {body}: {}", c.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, warnings, _) = get_as(&c, &path, Some(GLOBEX));
    assert_eq!((status, warnings), (404, None), "another tenant's token finds nothing, and A answered it");
    let (status, _, _) = get_as(&c, &path, None);
    assert_eq!(status, 401);
}
