//! Issue 13: nodes sharing a bucket behind `--tls-cert` ask each other
//! over https and verify the peer against `--peer-ca`; a peer whose
//! certificate does not chain to it is named in the answer's warnings, the
//! query still answers (no hang, no 500). Real nodes on SeaweedFS, a test
//! PKI made with the openssl CLI.

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Launch, Ports, Server, Tls, encode, hex, now_ns, request, span};
use crate::peers::{WARNINGS, trace_id};
use crate::security::{leaf, make_pki};

/// A node speaking TLS with `pki`'s server certificate, trusting `pki`'s CA
/// for its peers; heads kept for 10 minutes so nothing is flushed.
fn tls_node(s3: &SeaweedFs, url: &str, data: &Path, id: &str, pki: &Path, extra: &[&str]) -> Server {
    tls_node_as(s3, url, data, id, pki, "server", None, extra)
}

/// [`tls_node`] with certificate `name`; the test's client presents
/// `client` (mutual TLS).
#[allow(clippy::too_many_arguments)]
fn tls_node_as(
    s3: &SeaweedFs,
    url: &str,
    data: &Path,
    id: &str,
    pki: &Path,
    name: &str,
    client: Option<&str>,
    extra: &[&str],
) -> Server {
    let file = |name: &str| pki.join(name).to_str().unwrap().to_owned();
    let (cert, key, ca) = (file(&format!("{name}.pem")), file(&format!("{name}.key")), file("ca.pem"));
    let mut flags = vec!["--storage", url, "--max-block-age", "10m", "--poll-interval", "200ms"];
    flags.extend(["--node-id", id, "--peer-timeout", "20s", "--peer-ca", &ca]);
    // Heartbeats every 2.5 s: nodes find each other soon.
    flags.extend(["--lease-ttl", "10s"]);
    flags.extend(["--tls-cert", &cert, "--tls-key", &key]);
    flags.extend(extra);
    let vars = s3.env();
    let env = vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let client = client.map(|c| (pki.join(format!("{c}.pem")), pki.join(format!("{c}.key"))));
    let tls = Some(Tls { ca: pki.join("ca.pem"), client });
    Server::launch(data, Ports::free(), Launch { extra: &flags, env, tls, ..Launch::default() })
}

fn post(server: &Server, t: [u8; 16], service: &str) {
    let spans = (0..3u8).map(|i| span(t, [t[1], 0, 0, 0, 0, 0, 0, i + 1], None, "op", now_ns())).collect();
    let reply = server.post_traces("application/x-protobuf", None, &encode(&request(service, spans)));
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// GET over https: status, warnings header, JSON body.
fn get(server: &Server, path: &str) -> (u16, Option<String>, Value) {
    let resp = server.client().get(&format!("{}{path}", server.api)).call().expect("GET");
    let status = resp.status().as_u16();
    let warnings = resp.headers().get(WARNINGS).map(|v| v.to_str().unwrap_or_default().to_owned());
    let mut body = String::new();
    resp.into_body().into_reader().read_to_string(&mut body).expect("body");
    (status, warnings, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn span_count(body: &Value) -> usize {
    body["data"][0]["spans"].as_array().map_or(0, Vec::len)
}

#[test]
fn tls_peers_verify_each_other_and_an_untrusted_one_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let (trusted, rogue) = (dir.path().join("pki"), dir.path().join("rogue"));
    for pki in [&trusted, &rogue] {
        std::fs::create_dir(pki).unwrap();
        make_pki(pki);
    }
    let s3 = SeaweedFs::start();
    let url = s3.url("it-peers-tls");
    let a = tls_node(&s3, &url, &dir.path().join("a"), "node-a", &trusted, &[]);
    // R's certificate is signed by a CA the others do not trust.
    let r = tls_node(&s3, &url, &dir.path().join("r"), "node-r", &rogue, &[]);
    let c = tls_node(&s3, &url, &dir.path().join("c"), "node-c", &trusted, &[]);
    let r_addr = r.api.replace("https://localhost", "127.0.0.1");

    let (on_a, on_r) = (trace_id(21), trace_id(22));
    post(&a, on_a, "svc-a");
    post(&r, on_r, "svc-r");
    // C finds A and R through their heartbeats and asks both over https:
    // A's head answers; R fails verification and is named.
    let deadline = Instant::now() + Duration::from_secs(30);
    let warning = loop {
        let (status, warnings, body) = get(&c, &format!("/api/traces/{}", hex(&on_a)));
        let warning = warnings.unwrap_or_default();
        if status == 200 && span_count(&body) == 3 && warning.contains(&r_addr) {
            break warning;
        }
        assert!(Instant::now() < deadline, "{status} {warning:?} {body}: {}", c.stderr());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(warning.contains("did not answer") && warning.contains("certificate"), "{warning}");
    assert!(!warning.contains("node-a"), "A is trusted and answered: {warning}");
    // R's head is not read (its spans are not in the bucket either): a 404
    // carrying the warning, not an error.
    let (status, warnings, body) = get(&c, &format!("/api/traces/{}", hex(&on_r)));
    assert_eq!(status, 404, "{body}");
    assert!(warnings.unwrap_or_default().contains(&r_addr));
    // A listing likewise.
    let (status, warnings, body) = get(&c, "/api/services");
    assert_eq!(status, 200, "{body}");
    assert!(body["data"].as_array().unwrap().iter().any(|s| s == "svc-a"), "{body}");
    assert!(warnings.unwrap_or_default().contains(&r_addr));
}

/// With `--tls-client-ca` (mutual TLS) every node requires a client
/// certificate, so a node presents its own to its peers: a trace in A's
/// head is whole through C, with no warning.
#[test]
fn mutual_tls_peers_present_their_own_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    make_pki(&pki);
    // One certificate per node good for both ends of a connection.
    leaf(&pki, "node", "ca", "localhost", "serverAuth,clientAuth");
    let ca = pki.join("ca.pem").to_str().unwrap().to_owned();
    let mutual = ["--tls-client-ca", ca.as_str()];
    let s3 = SeaweedFs::start();
    let url = s3.url("it-peers-mtls");
    let start =
        |id: &str| tls_node_as(&s3, &url, &dir.path().join(id), id, &pki, "node", Some("node"), &mutual);
    let (a, c) = (start("node-a"), start("node-c"));
    let t = trace_id(23);
    post(&a, t, "svc-a");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, warnings, body) = get(&c, &format!("/api/traces/{}", hex(&t)));
        if status == 200 && span_count(&body) == 3 {
            assert_eq!(warnings, None, "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "{status} {warnings:?} {body}: {}", c.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}
