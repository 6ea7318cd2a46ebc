//! Issue 13: the listings a UI fills its drop-downs from (Jaeger's
//! services and operations, Tempo's tag names and values, the log
//! services) include what live peers hold only in their heads (logs: on
//! the node that received them), merged and each name once; a peer
//! that does not answer is named in the `sightline-warnings` header, the
//! listing still answers. Three real nodes on SeaweedFS, nothing flushed.

use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Ports, Server, encode, now_ns, request, span, string_kv};
use crate::peers::{get, node, post, trace_id};
use crate::tenants::post_log;

/// A body of one span named `op` of `service`, carrying the span attribute
/// `key` = `value`.
fn tagged(t: [u8; 16], n: u8, service: &str, op: &str, key: &str, value: &str) -> Vec<u8> {
    let mut s = span(t, [t[1], n, 0, 0, 0, 0, 0, 1], None, op, now_ns());
    s.attributes.push(string_kv(key, value));
    encode(&request(service, vec![s]))
}

/// Every string under `field` in the array at `pointer` (or the strings
/// themselves when `field` is empty).
fn strings(body: &Value, pointer: &str, field: &str) -> Vec<String> {
    let items = body.pointer(pointer).and_then(Value::as_array).cloned().unwrap_or_default();
    let mut out: Vec<String> = items
        .iter()
        .filter_map(|v| if field.is_empty() { v.as_str() } else { v[field].as_str() })
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

/// Tempo's tag names of scope `scope`.
fn tempo_tags(body: &Value, scope: &str) -> Vec<String> {
    let scopes = body["scopes"].as_array().cloned().unwrap_or_default();
    let found = scopes.iter().find(|s| s["name"] == scope).cloned().unwrap_or_default();
    strings(&found, "/tags", "")
}

/// Waits up to 30 s for `check` to accept `path` on `server` (200, no
/// warning); each name must come back once.
fn wait_listing(server: &Server, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, warnings, body) = get(server, path);
        if status == 200 && warnings.is_none() && check(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path}: {status} {warnings:?} {body}: {}", server.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn listings_on_any_node_include_live_peers_heads() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-peer-listings");
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb, pc) = (Ports::free(), Ports::free(), Ports::free());
    let a = node(&s3, &url, &dir.path().join("a"), pa, "node-a", &[]);
    let b = node(&s3, &url, &dir.path().join("b"), pb, "node-b", &[]);
    let listed = format!("127.0.0.1:{},127.0.0.1:{}", pa.api, pb.api);
    let c = node(&s3, &url, &dir.path().join("c"), pc, "node-c", &["--peers", &listed]);

    // Before any flush: A and B each hold a service, an operation and a
    // tag only in their heads; both hold `shared` (listed once).
    post(&a, tagged(trace_id(1), 1, "svc-a", "op-a", "only.a", "value-a"));
    post(&a, tagged(trace_id(1), 2, "shared", "op-shared", "common", "x"));
    post(&b, tagged(trace_id(2), 1, "svc-b", "op-b", "only.b", "value-b"));
    post(&b, tagged(trace_id(2), 2, "shared", "op-shared", "common", "y"));
    post(&c, tagged(trace_id(3), 1, "svc-c", "op-c", "only.c", "value-c"));
    for (server, service) in [(&a, "logs-a"), (&b, "logs-b"), (&c, "logs-c")] {
        post_log(server, None, service);
    }

    let services = wait_listing(&c, "/api/services", |b| strings(b, "/data", "").len() == 4);
    assert_eq!(strings(&services, "/data", ""), ["shared", "svc-a", "svc-b", "svc-c"], "{services}");
    let ops = wait_listing(&c, "/api/operations?service=shared", |b| !strings(b, "/data", "name").is_empty());
    assert_eq!(strings(&ops, "/data", "name"), ["op-shared"], "{ops}");
    let ops = wait_listing(&c, "/api/operations?service=svc-a&spanKind=server", |b| {
        strings(b, "/data", "name") == ["op-a"]
    });
    assert_eq!(ops["data"][0]["spanKind"], "server", "{ops}");
    let (status, _, none) = get(&c, "/api/operations?service=svc-a&spanKind=client");
    assert_eq!((status, strings(&none, "/data", "name").len()), (200, 0), "{none}");
    wait_listing(&c, "/api/services/svc-b/operations", |b| strings(b, "/data", "") == ["op-b"]);
    // Tempo's tags: names from every node's head, values merged.
    let tags = wait_listing(&c, "/api/v2/search/tags?scope=span", |b| tempo_tags(b, "span").len() >= 5);
    let names = tempo_tags(&tags, "span");
    for name in ["common", "http.route", "only.a", "only.b", "only.c"] {
        assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name} once in {tags}");
    }
    let values = wait_listing(&c, "/api/v2/search/tag/span.common/values", |b| {
        strings(b, "/tagValues", "value").len() == 2
    });
    assert_eq!(strings(&values, "/tagValues", "value"), ["x", "y"], "{values}");
    let values = wait_listing(&c, "/api/v2/search/tag/resource.service.name/values", |b| {
        strings(b, "/tagValues", "value").len() == 4
    });
    assert_eq!(strings(&values, "/tagValues", "value"), ["shared", "svc-a", "svc-b", "svc-c"]);
    let logs = wait_listing(&c, "/api/logs/services", |b| strings(b, "/data", "").len() == 3);
    assert_eq!(strings(&logs, "/data", ""), ["logs-a", "logs-b", "logs-c"], "{logs}");
    // ... from the peers' heads, not the bucket: nothing was flushed.
    let (_, _, listing) = get(&a, "/api/services");
    assert_eq!(strings(&listing, "/data", ""), ["shared", "svc-a"], "A lists its own only: {listing}");

    // A killed: C's listings answer with what B and C hold, naming A.
    let a_addr = format!("127.0.0.1:{}", pa.api);
    let mut a = a;
    a.kill9();
    for path in [
        "/api/services",
        "/api/operations?service=shared",
        "/api/v2/search/tags",
        "/api/v2/search/tag/span.common/values",
        "/api/logs/services",
    ] {
        let (status, warnings, body) = get(&c, path);
        assert_eq!(status, 200, "{path}: {body}");
        let warning = warnings.unwrap_or_default();
        assert!(warning.contains(&a_addr) && warning.contains("did not answer"), "{path}: {warning}");
    }
    let (_, _, services) = get(&c, "/api/services");
    assert_eq!(strings(&services, "/data", ""), ["shared", "svc-b", "svc-c"], "{services}");
    let (_, _, logs) = get(&c, "/api/logs/services");
    assert_eq!(strings(&logs, "/data", ""), ["logs-b", "logs-c"], "{logs}");
}
