//! Property-based fuzzing of the query API's parameters against the real
//! binary (issue 16 item 6): every request gets a 2xx/4xx/501 answer in
//! Jaeger's JSON envelope — never a 500, a hang or a dead server. Bounded
//! in `cargo test`; `bench/fuzz.sh` runs it longer (`PROPTEST_CASES`).

use proptest::prelude::*;

use crate::harness::{Server, encode, now_ns, request, span};

fn config(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Values that are almost right, plainly wrong, or hostile.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,22}",
        "-?[0-9]{1,6}(ns|us|µs|ms|s|m|h|d|)",
        "[0-9a-fA-F]{0,40}",
        r#"\{"[a-z.]{0,8}":"[a-z0-9]{0,8}"\}"#,
        "[a-z.]{0,10}:[a-z0-9]{0,10}",
        "(server|client|producer|consumer|internal|unspecified|true|false)",
        ".{0,40}",
        Just("9".repeat(400)),
        Just("%".to_owned()),
        Just(String::new()),
    ]
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const PATHS: &[&str] = &[
    "/api/traces",
    "/api/services",
    "/api/operations",
    "/api/dependencies",
    "/api/metrics/latencies",
    "/api/metrics/calls",
    "/api/metrics/errors",
    "/api/metrics/minstep",
];

const KEYS: &[&str] = &[
    "service",
    "operation",
    "tags",
    "tag",
    "minDuration",
    "maxDuration",
    "start",
    "end",
    "limit",
    "lookback",
    "traceID",
    "spanKind",
    "endTs",
    "step",
    "ratePer",
    "quantile",
    "groupByOperation",
    "raw",
];

fn query() -> impl Strategy<Value = String> {
    let path = prop_oneof![
        4 => proptest::sample::select(PATHS).prop_map(str::to_owned),
        1 => value().prop_map(|v| format!("/api/traces/{}", percent_encode(&v))),
        1 => value().prop_map(|v| format!("/api/services/{}/operations", percent_encode(&v))),
    ];
    let params = proptest::collection::vec((proptest::sample::select(KEYS), value()), 0..6);
    (path, params).prop_map(|(path, params)| {
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect();
        if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) }
    })
}

#[test]
fn query_parameters_never_break_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let body = encode(&request("fuzz-svc", vec![span([0x61; 16], [1; 8], None, "GET /fuzz", now_ns())]));
    assert_eq!(server.post_traces("application/x-protobuf", None, &body).status, 200);
    let mut runner = proptest::test_runner::TestRunner::new(config(64));
    runner
        .run(&query(), |path| {
            let mut response = server
                .client()
                .get(&format!("{}{path}", server.api))
                .call()
                .map_err(|e| TestCaseError::fail(format!("{path}: {e}")))?;
            let status = response.status().as_u16();
            let text = response.body_mut().read_to_string().unwrap_or_default();
            prop_assert!(matches!(status, 200 | 400 | 404 | 501), "{path}: {status} {text}");
            if path.starts_with("/api/") && status != 404 {
                prop_assert!(
                    serde_json::from_str::<serde_json::Value>(&text).is_ok(),
                    "{path}: not JSON: {text}"
                );
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", server.stderr()));
    assert_eq!(server.get_json("/health").0, 200);
}
