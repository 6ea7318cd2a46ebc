//! Real OpenTelemetry clients: the stock Python SDK and its exporters.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Server, python, python_script};

fn run_python(script: &str, arg: &str) -> Value {
    let out = Command::new(python()).arg(python_script(script)).arg(arg).output().expect("run python");
    assert!(
        out.status.success(),
        "{script} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{script} printed {stdout:?}: {e}"))
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"].as_array()?.iter().find(|t| t["key"] == key)
}

fn service_of<'a>(trace: &'a Value, span: &Value) -> &'a str {
    let pid = span["processID"].as_str().unwrap_or_default();
    trace["processes"][pid]["serviceName"].as_str().unwrap_or_default()
}

fn find<'a>(trace: &'a Value, service: &str, operation: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .and_then(|spans| {
            spans.iter().find(|s| s["operationName"] == operation && service_of(trace, s) == service)
        })
        .unwrap_or_else(|| panic!("no span {service}/{operation} in {trace:#}"))
}

fn parent_of(span: &Value) -> Option<&str> {
    span["references"]
        .as_array()?
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")
        .and_then(|r| r["spanID"].as_str())
}

/// Seed 002: caller (FastAPI) → httpx → server (FastAPI), OTLP/HTTP, health
/// probes excluded: exactly one trace of three spans with correct parents.
#[test]
fn seed002_fastapi_caller_and_server_make_one_three_span_trace() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let out = run_python("seed002_fastapi_pair.py", &server.otlp_http);
    let trace_id = out["trace_id"].as_str().unwrap();
    let trace = server.wait_trace(trace_id, 3, Duration::from_secs(30));
    assert_eq!(trace["spans"].as_array().unwrap().len(), 3, "{trace:#}");

    let entry = find(&trace, "my-caller", "POST /dispatch");
    let server_span = find(&trace, "my-server", "POST /command");
    let client = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            service_of(&trace, s) == "my-caller"
                && tag(s, "span.kind").is_some_and(|k| k["value"] == "client")
        })
        .unwrap_or_else(|| panic!("no client span in {trace:#}"));
    assert_eq!(tag(entry, "span.kind").unwrap()["value"], "server");
    assert_eq!(tag(server_span, "span.kind").unwrap()["value"], "server");
    assert_eq!(parent_of(entry), None, "the caller's server span is the root");
    assert_eq!(parent_of(client), entry["spanID"].as_str());
    assert_eq!(parent_of(server_span), client["spanID"].as_str());
    for s in trace["spans"].as_array().unwrap() {
        assert_eq!(s["traceID"], trace_id);
    }

    // Health probes created no traces: each service has only its one operation.
    let (status, ops) = server.get_json("/api/services/my-server/operations");
    assert_eq!(status, 200);
    assert_eq!(ops["data"], serde_json::json!(["POST /command"]));
    let (_, traces) = server.get_json("/api/traces?service=my-server&limit=20");
    assert_eq!(traces["data"].as_array().unwrap().len(), 1);
    let (_, services) = server.get_json("/api/services");
    assert_eq!(services["data"], serde_json::json!(["my-caller", "my-server"]));
}

/// Seed 003: manual spans over OTLP/gRPC — typed attributes, events, a
/// recorded exception with ERROR status, context through message headers,
/// and parent-based ratio sampling.
#[test]
fn seed003_manual_spans_over_grpc_keep_types_events_errors_and_context() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let out = run_python("seed003_manual_spans.py", &format!("http://{}", server.grpc));

    let loan = server.wait_trace(out["loan"]["trace_id"].as_str().unwrap(), 3, Duration::from_secs(30));
    assert_eq!(loan["spans"].as_array().unwrap().len(), 3, "{loan:#}");
    let root = find(&loan, "finance_lending_api", "process_loan_application");
    assert_eq!(root["spanID"], out["loan"]["root_span_id"]);
    let expect_tag = |span: &Value, key: &str, ty: &str, value: Value| {
        let t = tag(span, key).unwrap_or_else(|| panic!("no tag {key} in {span:#}"));
        assert_eq!((&t["type"], &t["value"]), (&Value::from(ty), &value), "tag {key}");
    };
    expect_tag(root, "loan.amount", "int64", 50000.into());
    expect_tag(root, "loan.rate", "float64", 3.75.into());
    expect_tag(root, "loan.approved", "bool", true.into());
    expect_tag(root, "loan.purpose", "string", "car".into());
    expect_tag(root, "loan.tags", "string", r#"["new","priority"]"#.into());
    expect_tag(root, "span.kind", "string", "server".into());
    let root_log = &root["logs"][0];
    assert!(root_log["timestamp"].is_u64());
    assert_eq!(
        root_log["fields"][0],
        serde_json::json!({"key": "event", "type": "string", "value": "loan_approved"})
    );

    let credit = find(&loan, "finance_lending_api", "credit_check");
    assert_eq!(parent_of(credit), root["spanID"].as_str());
    let fields = credit["logs"][0]["fields"].as_array().unwrap();
    assert!(
        fields.contains(&serde_json::json!({"key": "score", "type": "int64", "value": 750})),
        "{fields:?}"
    );

    let notify = find(&loan, "finance_lending_api", "notify");
    expect_tag(notify, "error", "bool", true.into());
    expect_tag(notify, "otel.status_code", "string", "ERROR".into());
    expect_tag(notify, "otel.status_description", "string", "smtp unreachable".into());
    let exception =
        notify["logs"].as_array().unwrap().iter().find(|l| l["fields"][0]["value"] == "exception");
    let exception = exception.unwrap_or_else(|| panic!("no exception event: {notify:#}"));
    let ex_fields = exception["fields"].as_array().unwrap();
    assert!(
        ex_fields.iter().any(|f| f["key"] == "exception.type" && f["value"] == "ValueError"),
        "{ex_fields:?}"
    );
    assert!(ex_fields.iter().any(|f| f["key"] == "exception.message" && f["value"] == "smtp unreachable"));
    // Searching by the error tag finds the trace.
    let (_, errors) =
        server.get_json("/api/traces?service=finance_lending_api&tags=%7B%22error%22%3A%22true%22%7D");
    let ids: Vec<&str> =
        errors["data"].as_array().unwrap().iter().filter_map(|t| t["traceID"].as_str()).collect();
    assert_eq!(ids, vec![out["loan"]["trace_id"].as_str().unwrap()]);

    let msg = &out["message"];
    let message = server.wait_trace(msg["trace_id"].as_str().unwrap(), 2, Duration::from_secs(30));
    let producer = find(&message, "finance_lending_api", "publish loans");
    let consumer = find(&message, "finance_lending_worker", "process_loan_event");
    assert_eq!(producer["spanID"], msg["producer_span_id"]);
    assert_eq!(consumer["spanID"], msg["consumer_span_id"]);
    assert_eq!(parent_of(consumer), msg["producer_span_id"].as_str());
    expect_tag(consumer, "span.kind", "string", "consumer".into());
    let (_, deps) = server.get_json(&format!(
        "/api/dependencies?endTs={}&lookback=3600000",
        crate::harness::now_ns() / 1_000_000 + 60_000
    ));
    assert!(
        deps["data"].as_array().unwrap().contains(&serde_json::json!({
            "parent": "finance_lending_api", "child": "finance_lending_worker", "callCount": 1
        })),
        "{deps}"
    );

    // Sampling: the SDK's sampled traces are stored, the others never sent.
    let decisions = out["sampling"].as_array().unwrap();
    let sampled = decisions.iter().filter(|d| d["sampled"] == true).count();
    assert!(sampled > 0 && sampled < decisions.len(), "ratio 0.5 over 40 traces sampled {sampled}");
    for d in decisions {
        let id = d["trace_id"].as_str().unwrap();
        if d["sampled"] == true {
            server.wait_trace(id, 1, Duration::from_secs(10));
        } else {
            let (status, _) = server.get_json(&format!("/api/traces/{id}"));
            assert_eq!(status, 404, "unsampled trace {id} must not be stored");
        }
    }
}

/// The stock Python Zipkin JSON exporter → Sightline's Zipkin receiver →
/// the same trace through the Jaeger API, with correct parents.
#[test]
fn zipkin_json_exporter_trace_is_queryable_with_parents() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let out = run_python("zipkin_json.py", &server.zipkin);
    let trace_id = out["trace_id"].as_str().unwrap();
    let trace = server.wait_trace(trace_id, 3, Duration::from_secs(10));
    assert_eq!(trace["spans"].as_array().unwrap().len(), 3, "{trace:#}");
    for expected in out["spans"].as_array().unwrap() {
        let span = find(&trace, "zipkin-checkout", expected["name"].as_str().unwrap());
        assert_eq!(span["spanID"], expected["span_id"]);
        assert_eq!(parent_of(span), expected["parent_span_id"].as_str(), "{}", expected["name"]);
    }
    let payments = find(&trace, "zipkin-checkout", "GET /payments");
    assert_eq!(tag(payments, "error").map(|t| &t["value"]), Some(&Value::Bool(true)), "{payments:#}");
}
