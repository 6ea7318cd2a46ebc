//! Issue 16 item 1: the data of different tenants never mixes — in trace
//! results, service and operation lists, dependencies, span metrics,
//! search results and tag values — whether the tenant comes from
//! `X-Scope-OrgID` or from an `--auth-tokens` token, over OTLP/HTTP and
//! OTLP/gRPC (the stock Python SDK), across a restart, and in a bucket
//! (one `<tenant>/` prefix each).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_objstore::testing::SeaweedFs;

use crate::harness::{Ports, Server, agent, encode, hex, now_ns, request, span, string_kv};
use crate::security::export;

/// The same trace id in every tenant: each must see only its own spans.
const SHARED_TRACE: [u8; 16] = [0x7e, 0x4a, 0x47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// The token of tenant `acme` in [`start_with_two_tokens`].
const ACME: &str = "acme-token-aaaaaaaaaaaaaaaaaaaa";
/// The token of tenant `umbrella` in [`start_with_two_tokens`].
const UMBRELLA: &str = "umbrella-token-bbbbbbbbbbbbbbbb";

/// A server under `dir` whose `--auth-tokens` file gives [`ACME`] tenant
/// `acme` and [`UMBRELLA`] tenant `umbrella`, both to read and write.
fn start_with_two_tokens(dir: &Path) -> (Server, Ports) {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("{ACME} acme read,write\n{UMBRELLA} umbrella read,write\n")).unwrap();
    let ports = Ports::free();
    let server = Server::start_on(&dir.join("data"), ports, &["--auth-tokens", tokens.to_str().unwrap()]);
    (server, ports)
}

fn now_ms() -> u64 {
    now_ns() / 1_000_000
}

/// POSTs an OTLP/HTTP protobuf body as `tenant` (`X-Scope-OrgID`; none:
/// the default tenant) or with `authorization`.
fn post_as(server: &Server, header: Option<(&str, &str)>, body: &[u8]) {
    let mut request = agent()
        .post(&format!("{}/v1/traces", server.otlp_http))
        .header("content-type", "application/x-protobuf");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let mut response = request.send(body).expect("POST");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 200, "{text}");
}

/// GET on the query API with one extra header: (status, JSON body).
fn get_as(server: &Server, header: Option<(&str, &str)>, path: &str) -> (u16, Value) {
    let mut request = agent().get(&format!("{}{path}", server.api));
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let mut response = request.call().expect("GET");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

/// A request of `{p}-front` (CLIENT) calling `{p}-back` (SERVER) in
/// [`SHARED_TRACE`], each span carrying `team = {p}-team`: two
/// bodies, one per service.
fn call(p: &str) -> [Vec<u8>; 2] {
    let start = now_ns();
    let tag = p.as_bytes()[0];
    let mut client = span(SHARED_TRACE, [tag, 1, 0, 0, 0, 0, 0, 1], None, &format!("{p} calls"), start);
    client.kind = 3;
    let mut server = span(
        SHARED_TRACE,
        [tag, 2, 0, 0, 0, 0, 0, 2],
        Some([tag, 1, 0, 0, 0, 0, 0, 1]),
        &format!("{p} serves"),
        start,
    );
    for s in [&mut client, &mut server] {
        s.attributes.push(string_kv("team", &format!("{p}-team")));
    }
    [
        encode(&request(&format!("{p}-front"), vec![client])),
        encode(&request(&format!("{p}-back"), vec![server])),
    ]
}

fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// Everything tenant `p` can read (through `header`) is its own: what it
/// wrote, nothing of `others`. Span metrics live in memory: `live` says
/// whether this process received the spans.
fn sees_only_its_own(server: &Server, header: Option<(&str, &str)>, p: &str, others: &[&str]) {
    sees_only_its_own_as(server, header, p, others, true);
}

fn sees_only_its_own_as(server: &Server, header: Option<(&str, &str)>, p: &str, others: &[&str], live: bool) {
    let get = |path: &str| {
        let (status, body) = get_as(server, header, path);
        assert_eq!(status, 200, "{p}: {path}: {body}");
        body
    };
    let (front, back) = (format!("{p}-front"), format!("{p}-back"));
    let services = strings(&get("/api/services")["data"]);
    assert!(services.contains(&front) && services.contains(&back), "{p}: {services:?}");
    assert!(services.iter().all(|s| s.starts_with(&format!("{p}-"))), "{p} sees {services:?}");
    let v3 = get("/api/v3/services");
    assert_eq!(strings(&v3["services"]), services, "{p}: v3");
    assert_eq!(
        strings(&get(&format!("/api/services/{front}/operations"))["data"]),
        vec![format!("{p} calls")]
    );

    // The shared trace id holds only this tenant's two spans.
    let trace = get(&format!("/api/traces/{}", hex(&SHARED_TRACE)));
    let spans = trace["data"][0]["spans"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = spans.iter().filter_map(|s| s["operationName"].as_str()).collect();
    assert_eq!(spans.len(), 2, "{p}: {names:?}");
    assert!(names.iter().all(|n| n.starts_with(&format!("{p} "))), "{p}: {names:?}");
    let found = get(&format!("/api/traces?service={front}&lookback=1h&limit=20"));
    assert_eq!(found["data"].as_array().map(Vec::len), Some(1), "{p}: search");

    let deps = get(&format!("/api/dependencies?endTs={}&lookback=3600000", now_ms()));
    let links: Vec<(String, String)> = deps["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["parent"].as_str().unwrap().to_owned(), l["child"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(links, vec![(front.clone(), back.clone())], "{p}: dependencies");

    let metrics = |service: &str| {
        get(&format!(
            "/api/metrics/calls?service={service}&spanKind=client&endTs={}&lookback=3600000&step=60000&ratePer=600000",
            now_ms()
        ))["metrics"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(metrics(&front), usize::from(live), "{p}: span metrics of its own service");

    // Tempo: TraceQL search, trace by id, tag values.
    let end = now_ms() / 1000 + 60;
    let search = get(&format!("/api/search?q=%7B%7D&start={}&end={end}&limit=50", end - 3600));
    let roots: Vec<&str> =
        search["traces"].as_array().unwrap().iter().filter_map(|t| t["rootServiceName"].as_str()).collect();
    assert!(!roots.is_empty() && roots.iter().all(|r| r.starts_with(&format!("{p}-"))), "{p}: {roots:?}");
    let tempo = get(&format!("/api/v2/traces/{}", hex(&SHARED_TRACE)));
    let text = tempo.to_string();
    assert!(text.contains(&format!("{p}-team")), "{p}: {text}");
    let teams = get("/api/v2/search/tag/span.team/values");
    let values: Vec<&str> =
        teams["tagValues"].as_array().unwrap().iter().filter_map(|v| v["value"].as_str()).collect();
    assert_eq!(values, vec![format!("{p}-team")], "{p}: tag values");
    let service_values = strings(&get("/api/search/tag/service.name/values")["tagValues"]);
    assert_eq!(service_values, services, "{p}: service.name values");

    for other in others {
        assert!(!text.contains(&format!("{other}-")), "{p} sees {other}'s data: {text}");
        let ops = get(&format!("/api/operations?service={other}-front"));
        assert_eq!(ops["data"].as_array().map(Vec::len), Some(0), "{p} lists {other}'s operations");
        let found = get(&format!("/api/traces?service={other}-front&lookback=1h&limit=20"));
        assert_eq!(found["data"].as_array().map(Vec::len), Some(0), "{p} finds {other}'s traces");
        assert_eq!(metrics(&format!("{other}-front")), 0, "{p} reads {other}'s span metrics");
    }
}

/// Waits until `tenant` (through `header`) finds trace `id`.
fn wait_for(server: &Server, header: Option<(&str, &str)>, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_as(server, header, &format!("/api/traces/{id}"));
        if status == 200 {
            return body;
        }
        assert!(Instant::now() < deadline, "trace {id} not found: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn scope(tenant: &str) -> Option<(&'static str, &str)> {
    Some(("x-scope-orgid", tenant))
}

/// Two tenants by `X-Scope-OrgID` and the default one (no header) write
/// over OTLP/HTTP and, through the stock Python SDK, over gRPC and HTTP;
/// each reads only its own data, before and after a restart, and the
/// default tenant's data stays where a server without tenants keeps it.
#[test]
fn tenants_by_x_scope_orgid_never_see_each_others_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ports = Ports::free();
    let mut server = Server::start_on(&data, ports, &[]);
    for (tenant, p) in [(None, "dflt"), (scope("team-a"), "aaa"), (scope("team-b"), "bbb")] {
        for body in call(p) {
            post_as(&server, tenant, &body);
        }
    }
    // The stock SDK names the tenant with OTEL_EXPORTER_OTLP_HEADERS.
    let sdk = |protocol: &str, tenant: &str, port: u16| {
        let out = export(
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
                ("OTEL_EXPORTER_OTLP_HEADERS", format!("x-scope-orgid={tenant}")),
                ("OTEL_SERVICE_NAME", format!("{tenant}-sdk")),
            ],
        );
        assert_eq!(out["result"], "SUCCESS", "{out}");
        out["trace_id"].as_str().unwrap().to_owned()
    };
    let a_grpc = sdk("grpc", "team-a", ports.grpc);
    let b_http = sdk("http/protobuf", "team-b", ports.http);
    wait_for(&server, scope("team-a"), &a_grpc);
    wait_for(&server, scope("team-b"), &b_http);

    let check = |server: &Server| {
        // Each tenant's list holds its SDK service and its own raw ones.
        for (tenant, p, others, sdk_trace, foreign) in [
            (scope("team-a"), "aaa", ["bbb", "dflt"], &a_grpc, &b_http),
            (scope("team-b"), "bbb", ["aaa", "dflt"], &b_http, &a_grpc),
        ] {
            let (status, _) = get_as(server, tenant, &format!("/api/traces/{sdk_trace}"));
            assert_eq!(status, 200);
            let (status, _) = get_as(server, tenant, &format!("/api/traces/{foreign}"));
            assert_eq!(status, 404, "another tenant's SDK trace is readable");
            let services = strings(&get_as(server, tenant, "/api/services").1["data"]);
            let team = tenant.unwrap().1;
            assert!(services.contains(&format!("{team}-sdk")), "{services:?}");
            let own: Vec<&String> = services.iter().filter(|s| !s.ends_with("-sdk")).collect();
            assert!(own.iter().all(|s| s.starts_with(&format!("{p}-"))), "{services:?}");
            assert!(!services.iter().any(|s| others.iter().any(|o| s.starts_with(&format!("{o}-")))));
        }
        // The default tenant (no header, or its name) sees only its own.
        sees_only_its_own(server, None, "dflt", &["aaa", "bbb"]);
        sees_only_its_own(server, scope("single-tenant"), "dflt", &["aaa", "bbb"]);
        // A tenant that never wrote reads nothing, and gets no folder.
        let (_, services) = get_as(server, scope("nobody"), "/api/services");
        assert_eq!(services["data"], serde_json::json!([]));
        assert!(!data.join("tenants/nobody").exists());
    };
    check(&server);
    let (_, health) = server.get_json("/health");
    let store = health["checks"].as_array().unwrap().iter().find(|c| c["name"] == "store").unwrap().clone();
    let detail = store["detail"].as_str().unwrap();
    assert!(detail.contains("single-tenant, team-a, team-b"), "/health lists the tenants: {detail}");

    server.terminate();
    // The default tenant's data is where a server without tenants keeps it.
    assert!(data.join("manifest.json").is_file() && data.join("wal").is_dir());
    assert!(data.join("tenants/team-a/manifest.json").is_file());
    assert!(data.join("tenants/team-b/wal").is_dir());
    assert!(!data.join("tenants/single-tenant").exists());
    // verify checks every tenant's folder.
    let verify = std::process::Command::new(crate::harness::binary())
        .args(["verify", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "{report}{}", String::from_utf8_lossy(&verify.stderr));
    assert!(report.contains("tenant team-a (") && report.contains("tenant team-b ("), "{report}");
    let server = Server::start_on(&data, ports, &[]);
    let (status, _) = get_as(&server, scope("team-a"), &format!("/api/traces/{a_grpc}"));
    assert_eq!(status, 200, "team-a's trace survives the restart");
    let (status, _) = get_as(&server, scope("team-b"), &format!("/api/traces/{a_grpc}"));
    assert_eq!(status, 404);
    let trace = get_as(&server, scope("team-b"), &format!("/api/traces/{}", hex(&SHARED_TRACE))).1;
    assert_eq!(trace["data"][0]["spans"].as_array().map(Vec::len), Some(2), "{trace}");
    assert!(!trace.to_string().contains("aaa"), "{trace}");
    let services = strings(&get_as(&server, None, "/api/services").1["data"]);
    assert_eq!(services, vec!["dflt-back", "dflt-front"], "the default tenant after a restart");
}

/// Pure per-tenant checks on fresh data: every endpoint, for two tenants
/// named by `X-Scope-OrgID`.
#[test]
fn every_query_endpoint_answers_from_the_requests_tenant_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    for (tenant, p) in [(scope("team-a"), "aaa"), (scope("team-b"), "bbb"), (None, "dflt")] {
        for body in call(p) {
            post_as(&server, tenant, &body);
        }
    }
    sees_only_its_own(&server, scope("team-a"), "aaa", &["bbb", "dflt"]);
    sees_only_its_own(&server, scope("team-b"), "bbb", &["aaa", "dflt"]);
    sees_only_its_own(&server, None, "dflt", &["aaa", "bbb"]);
}

/// With --auth-tokens the token names the tenant: the stock SDK writes
/// with each tenant's token over gRPC and HTTP, and each token reads only
/// its tenant's traces, services and dependencies (an `X-Scope-OrgID`
/// naming the other tenant changes nothing).
#[test]
fn tenants_by_token_never_see_each_others_data() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ports) = start_with_two_tokens(dir.path());
    let sdk = |protocol: &str, token: &str, port: u16, service: &str| {
        let out = export(
            protocol,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}")),
                ("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization=Bearer%20{token}")),
                ("OTEL_SERVICE_NAME", service.to_owned()),
            ],
        );
        assert_eq!(out["result"], "SUCCESS", "{out}");
        out["trace_id"].as_str().unwrap().to_owned()
    };
    let acme_grpc = sdk("grpc", ACME, ports.grpc, "acme-grpc");
    let acme_http = sdk("http/protobuf", ACME, ports.http, "acme-http");
    let umbrella_grpc = sdk("grpc", UMBRELLA, ports.grpc, "umbrella-grpc");
    let umbrella_http = sdk("http/protobuf", UMBRELLA, ports.http, "umbrella-http");
    let bearer = |token: &str| format!("Bearer {token}");
    let (acme, umbrella) = (bearer(ACME), bearer(UMBRELLA));
    for body in call("acm") {
        post_as(&server, Some(("authorization", &acme)), &body);
    }
    for body in call("umb") {
        post_as(&server, Some(("authorization", &umbrella)), &body);
    }
    for (token, own, foreign, prefix) in [
        (&acme, [&acme_grpc, &acme_http], [&umbrella_grpc, &umbrella_http], "acm"),
        (&umbrella, [&umbrella_grpc, &umbrella_http], [&acme_grpc, &acme_http], "umb"),
    ] {
        let auth = Some(("authorization", token.as_str()));
        for id in own {
            wait_for(&server, auth, id);
        }
        for id in foreign {
            assert_eq!(get_as(&server, auth, &format!("/api/traces/{id}")).0, 404, "{prefix} reads {id}");
        }
        let services = strings(&get_as(&server, auth, "/api/services").1["data"]);
        let name = if prefix == "acm" { "acme" } else { "umbrella" };
        assert_eq!(
            services,
            vec![
                format!("{prefix}-back"),
                format!("{prefix}-front"),
                format!("{name}-grpc"),
                format!("{name}-http"),
            ],
        );
        let deps = get_as(&server, auth, &format!("/api/dependencies?endTs={}&lookback=3600000", now_ms())).1;
        assert_eq!(deps["data"].as_array().map(Vec::len), Some(1), "{deps}");
        assert_eq!(deps["data"][0]["parent"], format!("{prefix}-front"));
    }
    // The token decides; the header cannot widen what it reads.
    let mut request = agent().get(&format!("{}/api/traces/{umbrella_grpc}", server.api));
    request = request.header("authorization", &acme).header("x-scope-orgid", "umbrella");
    assert_eq!(request.call().unwrap().status().as_u16(), 404);
}

/// On object storage each tenant's blocks and manifest live under its
/// `<tenant>/` prefix; a node started on the bucket with a fresh data
/// directory finds the tenants there and keeps them apart.
#[test]
fn tenants_in_a_bucket_live_under_their_own_prefix() {
    let s3 = SeaweedFs::start();
    let url = s3.url("it-tenants");
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--storage", url.as_str(), "--poll-interval", "200ms"];
    let start = |data: &Path| Server::start_env(data, Ports::free(), &flags, &s3.env());
    let mut first = start(&dir.path().join("one"));
    for (tenant, p) in [(scope("team-a"), "aaa"), (scope("team-b"), "bbb"), (None, "dflt")] {
        for body in call(p) {
            post_as(&first, tenant, &body);
        }
    }
    // Shutdown flushes every tenant's head into blocks in the bucket.
    first.terminate();
    let keys = list_keys(&s3);
    for prefix in ["team-a", "team-b", "single-tenant"] {
        assert!(keys.contains(&format!("it-tenants/{prefix}/manifest.json")), "{prefix}: {keys:?}");
        assert!(
            keys.iter()
                .any(|k| k.starts_with(&format!("it-tenants/{prefix}/blocks/"))
                    && k.ends_with("/data.parquet")),
            "{prefix} has no block: {keys:?}"
        );
    }
    let second = start(&dir.path().join("two"));
    let (_, health) = second.get_json("/health");
    assert!(
        health.to_string().contains("single-tenant, team-a, team-b"),
        "tenants found in the bucket: {health}"
    );
    sees_only_its_own_as(&second, scope("team-a"), "aaa", &["bbb", "dflt"], false);
    let trace = get_as(&second, scope("team-b"), &format!("/api/traces/{}", hex(&SHARED_TRACE))).1;
    assert_eq!(trace["data"][0]["spans"].as_array().map(Vec::len), Some(2), "{trace}");
    assert!(trace.to_string().contains("bbb-team") && !trace.to_string().contains("aaa-"));
    let services = strings(&get_as(&second, None, "/api/services").1["data"]);
    assert_eq!(services, vec!["dflt-back", "dflt-front"]);
}

/// Every object key in the test bucket.
fn list_keys(s3: &SeaweedFs) -> Vec<String> {
    use futures_util::TryStreamExt as _;
    let store = s3.store();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let listed: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await.unwrap();
        listed.into_iter().map(|m| m.location.to_string()).collect()
    })
}

/// The stock Python SDK's log exporter (three records, two in a span) as
/// `service`, with `headers` (OTEL_EXPORTER_OTLP_HEADERS): the trace id
/// of its span.
fn python_logs(protocol: &str, endpoint: &str, service: &str, headers: &str) -> String {
    let out = std::process::Command::new(crate::harness::python())
        .arg(crate::harness::python_script("otlp_logs_metrics.py"))
        .args([protocol, endpoint, service])
        .env("OTEL_EXPORTER_OTLP_HEADERS", headers)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let out: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(out["results"]["logs"], serde_json::json!(["SUCCESS", "SUCCESS", "SUCCESS"]), "{out}");
    out["trace_id"].as_str().unwrap().to_owned()
}

/// POSTs one OTLP/JSON log record of `service` with `header`: the reply.
pub(crate) fn post_log(server: &Server, header: Option<(&str, &str)>, service: &str) -> Value {
    let body = format!(
        r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},
        "scopeLogs":[{{"logRecords":[{{"timeUnixNano":"{}","severityNumber":9,"body":{{"stringValue":"hello from {service}"}}}}]}}]}}]}}"#,
        now_ms() * 1_000_000
    );
    let mut request =
        agent().post(&format!("{}/v1/logs", server.otlp_http)).header("content-type", "application/json");
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    let mut response = request.send(body.as_bytes()).expect("POST");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 200, "{text}");
    let reply = serde_json::from_str::<Value>(&text).unwrap_or(Value::Null);
    assert!(reply.get("partialSuccess").is_none_or(|p| p["rejectedLogRecords"].is_null()), "{reply}");
    reply
}

/// The services of the log records `header`'s tenant reads (a search and
/// the service list must agree), and whether it finds records of `trace`.
fn log_services(server: &Server, header: Option<(&str, &str)>, trace: Option<&str>) -> (Vec<String>, usize) {
    let (status, logs) = get_as(server, header, "/api/logs?limit=100");
    assert_eq!(status, 200, "{logs}");
    let mut searched: Vec<String> = logs["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["service"].as_str().map(str::to_owned))
        .collect();
    searched.sort();
    searched.dedup();
    let (status, listed) = get_as(server, header, "/api/logs/services");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(strings(&listed["data"]), searched, "/api/logs/services and /api/logs disagree");
    let of_trace = trace.map_or(0, |t| {
        let (status, found) = get_as(server, header, &format!("/api/logs?traceID={t}"));
        assert_eq!(status, 200, "{found}");
        found["data"].as_array().map_or(0, Vec::len)
    });
    (searched, of_trace)
}

/// Waits until `header`'s tenant reads records of every service in `want`.
fn wait_for_logs(server: &Server, header: Option<(&str, &str)>, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (services, _) = log_services(server, header, None);
        if want.iter().all(|w| services.iter().any(|s| s == w)) {
            return;
        }
        assert!(Instant::now() < deadline, "{want:?} not found in {services:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Logs are kept per tenant like traces: two tenants by `X-Scope-OrgID`
/// (the stock Python SDK over gRPC and HTTP, and OTLP/JSON) and the
/// default tenant each read only their own records, service lists and
/// trace's logs, before and after a restart; other tenants' logs live
/// under `tenants/<tenant>/logs`. OTLP metrics of another tenant are
/// taken too, and scraped by that tenant alone.
#[test]
fn logs_of_tenants_by_x_scope_orgid_never_mix_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ports = Ports::free();
    let server = Server::start_on(&data, ports, &[]);
    let grpc = format!("http://127.0.0.1:{}", ports.grpc);
    let a_trace = python_logs("grpc", &grpc, "a-sdk", "x-scope-orgid=team-a");
    let b_trace = python_logs("http", &server.otlp_http, "b-sdk", "x-scope-orgid=team-b");
    post_log(&server, scope("team-a"), "a-json");
    post_log(&server, None, "dflt-json");

    let check = |server: &Server| {
        wait_for_logs(server, scope("team-a"), &["a-json", "a-sdk"]);
        wait_for_logs(server, scope("team-b"), &["b-sdk"]);
        wait_for_logs(server, None, &["dflt-json"]);
        assert_eq!(
            log_services(server, scope("team-a"), Some(&a_trace)),
            (vec!["a-json".into(), "a-sdk".into()], 2)
        );
        assert_eq!(
            log_services(server, scope("team-a"), Some(&b_trace)).1,
            0,
            "team-a reads team-b's trace logs"
        );
        assert_eq!(log_services(server, scope("team-b"), Some(&b_trace)), (vec!["b-sdk".into()], 2));
        assert_eq!(
            log_services(server, scope("team-b"), Some(&a_trace)).1,
            0,
            "team-b reads team-a's trace logs"
        );
        assert_eq!(log_services(server, None, Some(&a_trace)), (vec!["dflt-json".into()], 0));
        assert_eq!(log_services(server, scope("single-tenant"), None).0, vec!["dflt-json".to_owned()]);
        // A tenant that never wrote reads nothing and gets no folder.
        assert_eq!(log_services(server, scope("nobody"), None).0, Vec::<String>::new());
        assert!(!data.join("tenants/nobody").exists());
    };
    check(&server);

    // OTLP metrics are per tenant too: team-a's points are taken (no
    // partial success) and scraped by team-a alone.
    let metrics = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"team_a_orders","sum":{"aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{"asInt":"3","timeUnixNano":"1"}]}}]}]}]}"#;
    let mut response = agent()
        .post(&format!("{}/v1/metrics", server.otlp_http))
        .header("content-type", "application/json")
        .header("X-Scope-OrgID", "team-a")
        .send(metrics.as_bytes())
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let reply: Value =
        serde_json::from_str(&response.body_mut().read_to_string().unwrap_or_default()).unwrap();
    assert!(reply.get("partialSuccess").is_none(), "{reply}");
    let page = |tenant: Option<&str>| {
        let mut request = agent().get(&format!("{}/metrics/otlp", server.api));
        if let Some(tenant) = tenant {
            request = request.header("X-Scope-OrgID", tenant);
        }
        request.call().map(|mut r| r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default()
    };
    let has_orders =
        |page: String| page.lines().any(|l| l.starts_with("team_a_orders_total") && l.ends_with(" 3"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !has_orders(page(Some("team-a"))) {
        assert!(Instant::now() < deadline, "{}", page(Some("team-a")));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!page(None).contains("team_a_orders"), "{}", page(None));
    assert!(!page(Some("team-b")).contains("team_a_orders"), "{}", page(Some("team-b")));

    let mut server = server;
    server.terminate();
    assert!(data.join("logs/wal").is_dir(), "the default tenant's logs stay in <data>/logs");
    assert!(data.join("tenants/team-a/logs/wal").is_dir() && data.join("tenants/team-b/logs/wal").is_dir());
    let server = Server::start_on(&data, ports, &[]);
    check(&server);
}

/// With --auth-tokens the token names the tenant of log records written
/// (the stock SDK over gRPC, OTLP/JSON over HTTP) and read; an
/// `X-Scope-OrgID` naming the other tenant changes nothing.
#[test]
fn logs_of_tenants_by_token_never_mix() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ports) = start_with_two_tokens(dir.path());
    let (acme, umbrella) = (format!("Bearer {ACME}"), format!("Bearer {UMBRELLA}"));
    let acme_auth = Some(("authorization", acme.as_str()));
    let umbrella_auth = Some(("authorization", umbrella.as_str()));
    let grpc = format!("http://127.0.0.1:{}", ports.grpc);
    let acme_trace = python_logs("grpc", &grpc, "acme-sdk", &format!("authorization=Bearer%20{ACME}"));
    post_log(&server, umbrella_auth, "umbrella-json");
    wait_for_logs(&server, acme_auth, &["acme-sdk"]);
    wait_for_logs(&server, umbrella_auth, &["umbrella-json"]);
    assert_eq!(log_services(&server, acme_auth, Some(&acme_trace)), (vec!["acme-sdk".into()], 2));
    assert_eq!(log_services(&server, umbrella_auth, Some(&acme_trace)), (vec!["umbrella-json".into()], 0));
    let mut request = agent().get(&format!("{}/api/logs/services", server.api));
    request = request.header("authorization", &umbrella).header("x-scope-orgid", "acme");
    let listed: Value =
        serde_json::from_str(&request.call().unwrap().body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(strings(&listed["data"]), vec!["umbrella-json".to_owned()]);

    // OTLP metrics: the scrape page needs a read token, as the query APIs
    // do, and shows the token's tenant's series only.
    let metrics = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"umbrella_orders","gauge":{"dataPoints":[{"asInt":"5","timeUnixNano":"1"}]}}]}]}]}"#;
    let response = agent()
        .post(&format!("{}/v1/metrics", server.otlp_http))
        .header("content-type", "application/json")
        .header("authorization", &umbrella)
        .send(metrics.as_bytes())
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let scrape = |auth: Option<&str>| {
        let mut request =
            agent().get(&format!("{}/metrics/otlp", server.api)).header("x-scope-orgid", "umbrella");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let mut response = request.call().expect("GET");
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap_or_default())
    };
    assert_eq!(scrape(None).0, 401);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !scrape(Some(&umbrella)).1.lines().any(|l| l.starts_with("umbrella_orders") && l.ends_with(" 5")) {
        assert!(Instant::now() < deadline, "{:?}", scrape(Some(&umbrella)));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, page) = scrape(Some(&acme));
    assert_eq!(status, 200);
    assert!(!page.contains("umbrella_orders"), "acme reads umbrella's series: {page}");
}
