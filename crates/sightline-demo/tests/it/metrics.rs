//! Seed 001's metrics as real tools read them: the SDK's `/metrics` (with
//! the `bff_*` families and `Options::metrics_prefix("bff_")`) passes
//! `promtool check metrics`, and a real Prometheus (Debian `prometheus`,
//! exemplar storage on) scrapes it: the families are queryable by the
//! seed's names and the latency histogram's exemplar is the trace id of
//! the request that was measured.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use sightline_sdk::bff::{Bff, CircuitState, SessionEvent};
use sightline_sdk::http_server::{HttpServerLayer, metrics_router};
use sightline_sdk::{Options, init_with_env};

use crate::harness::{Proc, free_port, http, server_binary, wait_ok};

/// `promtool check metrics` on `text`: its complaints, one per line.
fn promtool(text: &str) -> Vec<String> {
    use std::io::Write as _;
    let mut child = Command::new(server_binary("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() || out.status.code() == Some(3), "promtool failed to run: {said}");
    said.lines().map(str::to_owned).filter(|l| !l.trim().is_empty()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_metrics_pass_promtool_and_a_real_prometheus_scrape() {
    let exporter = InMemorySpanExporter::default();
    let guard = init_with_env(
        Options::new("bff").span_exporter(exporter.clone()).install_globals(false).metrics_prefix("bff_"),
        |_| None,
    )
    .expect("init");
    let telemetry = guard.telemetry();
    let bff = Bff::register(&telemetry);
    let b2 = bff.clone();
    let t2 = telemetry.clone();
    let app: Router = Router::new()
        .route(
            "/verify",
            get(move || {
                let (bff, t) = (b2.clone(), t2.clone());
                async move {
                    bff.record_forwardauth_metrics(Duration::from_millis(7), "allowed");
                    let _ =
                        sightline_sdk::spans::background_task(&t, "cleanup", async { Ok::<_, String>(()) })
                            .await;
                    "ok"
                }
            }),
        )
        .merge(metrics_router(&telemetry))
        .layer(HttpServerLayer::new(&telemetry));
    bff.record_session_metrics(SessionEvent::Created);
    bff.record_session_metrics(SessionEvent::Created);
    bff.record_session_metrics(SessionEvent::Destroyed("logout"));
    bff.record_session_binding_failure("fingerprint_mismatch");
    bff.record_oauth_flow("authorization_code", Duration::from_millis(120));
    bff.record_token_refresh("orders", Ok("u1"), Duration::from_millis(30));
    bff.record_token_refresh("orders", Err("invalid_grant"), Duration::from_millis(30));
    bff.record_token_exchange("authorization_code", true);
    bff.record_token_validation("access", false);
    bff.record_token_expiry("orders");
    bff.record_authz("orders", "read", "allow", Duration::from_millis(2));
    bff.record_redis_operation("GET", true, Duration::from_micros(300));
    bff.record_idp_request("/token", "200", Duration::from_millis(40));
    bff.record_kafka_message("audit", "sent");
    bff.set_circuit_breaker("idp", CircuitState::Open);
    bff.record_circuit_break("idp");
    bff.record_csrf_violation("missing_token");
    bff.record_rate_limit_violation("spa");
    bff.record_security_event("login_failed", "medium");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let base = format!("http://127.0.0.1:{port}");
    let verify = http().get(format!("{base}/verify")).send().await.expect("verify");
    assert_eq!(verify.status(), 200);
    let spans = exporter.get_finished_spans().expect("spans");
    let verify_trace = spans
        .iter()
        .find(|s| s.name == "GET /verify")
        .expect("server span")
        .span_context
        .trace_id()
        .to_string();

    // The text format, as curl and promtool read it.
    let text =
        http().get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text");
    for line in [
        "bff_active_sessions_total 1",
        "bff_sessions_created_total 2",
        r#"bff_sessions_destroyed_total{reason="logout"} 1"#,
        r#"bff_verify_duration_seconds_count{status="allowed"} 1"#,
        r#"bff_oauth_flow_duration_seconds_count{flow_type="authorization_code"} 1"#,
        r#"bff_session_binding_failures_total{reason="fingerprint_mismatch"} 1"#,
        r#"bff_token_refresh_success_total{user_id="u1"} 1"#,
        r#"bff_token_refresh_failed_total{reason="invalid_grant"} 1"#,
        r#"bff_token_refresh_total{service="orders",status="success"} 1"#,
        r#"bff_token_exchange_total{grant_type="authorization_code",status="success"} 1"#,
        r#"bff_token_validation_total{token_type="access",status="failure"} 1"#,
        r#"bff_token_expiry_total{service="orders"} 1"#,
        r#"bff_authz_requests_total{resource="orders",action="read",decision="allow"} 1"#,
        r#"bff_authz_latency_seconds_count{resource="orders"} 1"#,
        r#"bff_redis_operations_total{operation="GET",status="success"} 1"#,
        r#"bff_idp_requests_total{endpoint="/token",status="200"} 1"#,
        r#"bff_kafka_messages_total{topic="audit",status="sent"} 1"#,
        r#"circuit_breaker_status{service="idp"} 1"#,
        r#"circuit_breaks_total{service="idp"} 1"#,
        r#"bff_csrf_violations_total{reason="missing_token"} 1"#,
        r#"bff_rate_limit_violations_total{client_id="spa"} 1"#,
        r#"bff_security_events_total{event_type="login_failed",severity="medium"} 1"#,
        r#"bff_background_tasks_total{task_type="cleanup",status="ok"} 1"#,
        r#"bff_background_task_duration_seconds_count{task_type="cleanup"} 1"#,
        r#"http_requests_total{method="GET",endpoint="/verify",status="200"} 1"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("# {"), "no exemplars in the text format");
    // The one complaint allowed: the seed names a gauge `..._total`.
    let complaints = promtool(&text);
    assert_eq!(
        complaints,
        vec![r#"bff_active_sessions_total non-counter metrics should not have "_total" suffix"#.to_owned()],
        "{text}"
    );

    // OpenMetrics, as Prometheus asks for it: exemplars with trace ids.
    let om = http()
        .get(format!("{base}/metrics"))
        .header("accept", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains(&format!(r#"# {{trace_id="{verify_trace}"}}"#)),
        "exemplar of the request's trace:\n{om}"
    );

    // A real Prometheus scrape.
    let dir = tempfile::tempdir().expect("tempdir");
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: bff\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("config");
    let mut prom = Proc::spawn(
        "prometheus",
        dir.path(),
        Command::new(server_binary("prometheus"))
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--enable-feature=exemplar-storage"),
    );
    let api = format!("http://127.0.0.1:{prom_port}/api/v1");
    wait_ok(&format!("http://127.0.0.1:{prom_port}/-/ready"), &mut prom, Duration::from_secs(60)).await;
    let query = |q: &'static str| {
        let api = api.clone();
        async move {
            let url = reqwest::Url::parse_with_params(&format!("{api}/query"), &[("query", q)]).expect("url");
            http().get(url).send().await.expect("query").json::<serde_json::Value>().await.expect("json")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = query("bff_sessions_created_total").await;
        if v["data"]["result"][0]["value"][1] == "2" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape the seed families: {v}\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let v = query(r#"sum(bff_verify_duration_seconds_count{status="allowed"})"#).await;
    assert_eq!(v["data"]["result"][0]["value"][1], "1", "{v}");
    let up = query(r#"up{job="bff"}"#).await;
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let url = reqwest::Url::parse_with_params(
        &format!("{api}/query_exemplars"),
        &[
            ("query", "http_request_duration_seconds_bucket"),
            ("start", &(now - 300).to_string()),
            ("end", &(now + 60).to_string()),
        ],
    )
    .expect("url");
    let ex: serde_json::Value = http().get(url).send().await.expect("exemplars").json().await.expect("json");
    let ids: Vec<&str> = ex["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["exemplars"].as_array().into_iter().flatten())
        .filter_map(|e| e["labels"]["trace_id"].as_str())
        .collect();
    assert!(ids.contains(&verify_trace.as_str()), "Prometheus stored the exemplar: {ex}");
    server.abort();
    drop(prom);
    drop(guard);
}
