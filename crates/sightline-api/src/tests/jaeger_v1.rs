//! Issue 15's Jaeger v1 fixes: `prettyPrint`, by-id parameter checks that
//! never filter, 64-bit and base64 ids, id 0, span kinds, Jaeger UI routes
//! Sightline does not serve, `POST /api/transform`, and the adjusters.

use super::*;

fn host(service: &str, host: &str) -> Arc<Resource> {
    Arc::new(Resource::new(
        vec![KeyValue::new("service.name", service), KeyValue::new("host.name", host)],
        0,
        String::new(),
    ))
}

/// A root on host `a` from 10 ms to 110 ms and a child on host `b` that its
/// clock puts 10 ms before the root: Jaeger moves it by 35 ms.
fn skewed_trace() -> Vec<Span> {
    let scope = Arc::new(Scope::default());
    let mut root = span(T1, ROOT, &host("frontend", "a"), &scope);
    root.start_time_unix_nano = START + 10_000_000;
    root.end_time_unix_nano = START + 110_000_000;
    let mut child = span(T1, CHILD, &host("backend", "b"), &scope);
    child.parent_span_id = Some(sid(ROOT));
    child.end_time_unix_nano = START + 50_000_000;
    vec![root, child]
}

#[tokio::test]
async fn pretty_print_indents_with_four_spaces_unless_false() {
    let h = harness(Fake { services: vec!["a".into()], ..Fake::default() });
    let r = h.get("/api/services?prettyPrint=true").await;
    assert_eq!(
        r.text(),
        "{\n    \"data\": [\n        \"a\"\n    ],\n    \"total\": 1,\n    \"limit\": 0,\n    \"offset\": 0,\n    \"errors\": null\n}"
    );
    for uri in ["/api/services?prettyPrint=false", "/api/services?prettyPrint="] {
        assert_eq!(h.get(uri).await.text(), r#"{"data":["a"],"total":1,"limit":0,"offset":0,"errors":null}"#);
    }
    let h = harness(Fake { traces: vec![small_trace(T1)], ..Fake::default() });
    assert!(
        h.get(&format!("/api/traces/{T1}?prettyPrint=1")).await.text().starts_with("{\n    \"data\": [\n")
    );
}

#[tokio::test]
async fn trace_by_id_checks_start_end_and_raw_but_never_filters_by_them() {
    let h = harness(Fake { traces: vec![skewed_trace()], ..Fake::default() });
    // Grafana sends milliseconds, so "start" lies far after the trace.
    let r = h.get(&format!("/api/traces/{T1}?start=1700000000000&end=1700000001000")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["data"][0]["spans"].as_array().unwrap().len(), 2);
    for (query, msg) in [
        ("start=abc", "unable to parse param 'start': strconv.ParseInt: parsing \"abc\": invalid syntax"),
        ("end=1.5", "unable to parse param 'end': strconv.ParseInt: parsing \"1.5\": invalid syntax"),
        ("raw=maybe", "unable to parse param 'raw': strconv.ParseBool: parsing \"maybe\": invalid syntax"),
    ] {
        let r = h.get(&format!("/api/traces/{T1}?{query}")).await;
        assert_eq!((r.status, r.json()), (StatusCode::BAD_REQUEST, error_envelope(400, msg)), "{query}");
    }
}

#[tokio::test]
async fn clock_skew_is_reported_as_jaeger_does_by_default_unless_raw() {
    let h = harness(Fake { traces: vec![skewed_trace()], ..Fake::default() });
    let body = h.get(&format!("/api/traces/{T1}")).await.json();
    let child = &body["data"][0]["spans"][1];
    assert_eq!(child["spanID"], json!(CHILD));
    // Jaeger's default bound is 0: the delta is reported, not applied.
    assert_eq!(child["startTime"], json!(START / 1_000));
    assert_eq!(
        child["warnings"],
        json!(["clock skew adjustment disabled; not applying calculated delta of 35ms"])
    );
    assert_eq!(body["data"][0]["spans"][0]["warnings"], json!(null));

    let body = h.get(&format!("/api/traces/{T1}?raw=true")).await.json();
    assert_eq!(body["data"][0]["spans"][1]["warnings"], json!(null));

    // Search results go through the adjusters too, as Jaeger's.
    let body = h.get("/api/traces?service=frontend").await.json();
    assert_eq!(body["data"][0]["spans"][1]["warnings"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn sixty_four_bit_ids_are_sixteen_hex_digits_and_base64_ids_are_read() {
    const SHORT: &str = "00000000000000004bf92f3577b34da6";
    let mut trace = small_trace(SHORT);
    let mut child = trace[0].clone();
    child.span_id = sid(CHILD);
    child.parent_span_id = Some(sid(ROOT));
    trace.push(child);
    let h = harness(Fake { traces: vec![trace, small_trace(T1)], ..Fake::default() });
    for id in ["4bf92f3577b34da6", SHORT, "4BF92F3577B34DA6"] {
        let body = h.get(&format!("/api/traces/{id}")).await.json();
        let t = &body["data"][0];
        assert_eq!(t["traceID"], json!("4bf92f3577b34da6"), "{id}");
        assert_eq!(t["spans"][1]["traceID"], json!("4bf92f3577b34da6"));
        assert_eq!(t["spans"][1]["references"][0]["traceID"], json!("4bf92f3577b34da6"));
    }
    // Base64 of the 16 bytes, standard and URL-safe, padded or not; and of
    // the 8 bytes of a 64-bit id.
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    let long = hex::decode(T1).unwrap();
    let short = hex::decode("4bf92f3577b34da6").unwrap();
    for encoded in [STANDARD.encode(&long), URL_SAFE_NO_PAD.encode(&long), STANDARD.encode(&short)] {
        let r = h.get(&format!("/api/traces/{}", enc(&encoded))).await;
        assert_eq!(r.status, StatusCode::OK, "{encoded}");
    }
    let r = h.get(&format!("/api/traces/{}", URL_SAFE_NO_PAD.encode(&long))).await;
    assert_eq!(r.json()["data"][0]["traceID"], json!(T1));
}

#[tokio::test]
async fn trace_id_zero_is_not_found_rather_than_malformed() {
    let h = harness(Fake { traces: vec![small_trace(T1)], ..Fake::default() });
    for id in ["0", "00000000000000000000000000000000", "AAAAAAAAAAAAAAAAAAAAAA%3D%3D"] {
        let r = h.get(&format!("/api/traces/{id}")).await;
        assert_eq!(
            (r.status, r.json()),
            (StatusCode::NOT_FOUND, error_envelope(404, "trace not found")),
            "{id}"
        );
    }
    let r = h.get(&format!("/api/traces?traceID=0&traceID={T1}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["errors"], json!([{"msg": "trace not found", "traceID": "0"}]));
    assert_eq!(r.json()["total"], json!(1));
}

#[tokio::test]
async fn span_kinds_ignore_case_and_an_unknown_kind_lists_no_operations() {
    let h = harness(operations_fixture());
    let r = h.get("/api/operations?service=frontend&spanKind=SERVER").await;
    assert_eq!(r.json(), envelope(json!([{"name": "GET /checkout", "spanKind": "server"}]), 1));
    *h.reader.last_operations.lock().unwrap() = None;
    let r = h.get("/api/operations?service=frontend&spanKind=bogus").await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, envelope(json!([]), 0)));
    assert!(h.reader.last_operations.lock().unwrap().is_none(), "no kind to ask the reader for");

    let (h, fake) = spm_harness(FakeMetrics::default());
    let r = h.get("/api/metrics/calls?service=a&spanKind=SERVER&spanKind=Client").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(fake.asked()[0].1.span_kinds, [SpanKind::Server, SpanKind::Client]);
}

#[tokio::test]
async fn jaeger_ui_routes_sightline_does_not_serve_answer_json_errors() {
    let h = harness(Fake::default());
    let post = |uri: &str| Request::post(uri).body(Body::empty()).unwrap();
    let r = h.send(post(&format!("/api/archive/{T1}"))).await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::NOT_IMPLEMENTED,
            error_envelope(
                501,
                "archive storage is not configured: Sightline keeps every trace for the same retention"
            )
        )
    );
    for path in ["/api/quality-metrics", "/api/deep-dependencies"] {
        let r = h.get(&format!("{path}?service=a")).await;
        let msg = format!("{path} is not implemented by Sightline");
        assert_eq!((r.status, r.json()), (StatusCode::NOT_IMPLEMENTED, error_envelope(501, &msg)), "{path}");
    }
    for path in ["/api", "/api/nope", "/api/v3/nope", "/analytics", "/analytics/v1/dependencies"] {
        let r = h.get(path).await;
        assert_eq!(r.content_type, "application/json", "{path}");
        let msg = format!("no API route {path}");
        assert_eq!((r.status, r.json()), (StatusCode::NOT_FOUND, error_envelope(404, &msg)), "{path}");
    }
    // A known route with another method is a 405, not a 404.
    assert_eq!(h.send(post("/api/services")).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// OTLP/JSON as Jaeger UI's upload sends it: two traces, one span with an
/// event, snake_case keys accepted.
const UPLOAD: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"shop"}}]},
  "scope_spans":[{"scope":{"name":"lib"},"spans":[
    {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b7","name":"GET /",
     "kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000",
     "events":[{"timeUnixNano":"1700000000000500000","name":"retry"}]},
    {"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"00f067aa0ba902b8","name":"other"},
    {"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"00f067aa0ba902b9",
     "parentSpanId":"00f067aa0ba902b7","name":"child"}]}]}]}"#;

/// A `service.name` that is no string is shown as the store lists it
/// (`unknown_service`) and kept as a process tag, so the value a tag search
/// on `service.name` matches is visible.
#[tokio::test]
async fn a_non_string_service_name_stays_a_process_tag() {
    let h = harness(Fake::default());
    let upload = UPLOAD.replace(
        r#"{"stringValue":"shop"}"#,
        r#"{"arrayValue":{"values":[{"stringValue":"a"},{"stringValue":"b"}]}}"#,
    );
    let request = Request::post("/api/transform")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(upload))
        .unwrap();
    let r = h.send(request).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let process = &r.json()["data"][0]["processes"]["p1"];
    assert_eq!(process["serviceName"], json!("unknown_service"));
    assert_eq!(process["tags"], json!([{"key": "service.name", "type": "string", "value": "[\"a\",\"b\"]"}]));
}

#[tokio::test]
async fn transform_turns_an_otlp_json_upload_into_jaeger_traces() {
    let h = harness(Fake::default());
    let post = |body: &str| {
        Request::post("/api/transform")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let r = h.send(post(UPLOAD)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(body["total"], json!(0), "Jaeger leaves total at 0 here");
    let traces = body["data"].as_array().unwrap();
    assert_eq!(traces.len(), 2);
    assert_eq!(traces[0]["traceID"], json!(T1));
    let spans: Vec<&str> =
        traces[0]["spans"].as_array().unwrap().iter().map(|s| s["operationName"].as_str().unwrap()).collect();
    assert_eq!(spans, ["GET /", "child"]);
    assert_eq!(traces[0]["processes"]["p1"]["serviceName"], json!("shop"));
    assert_eq!(traces[0]["spans"][0]["logs"][0]["fields"][0]["value"], json!("retry"));
    assert_eq!(traces[1]["traceID"], json!(T2));

    let r = h.send(post("{nope")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["errors"][0]["msg"].as_str().unwrap().starts_with("cannot unmarshal OTLP : invalid JSON")
    );
    let bad_id = UPLOAD.replace("00f067aa0ba902b8", "00f067aa");
    let r = h.send(post(&bad_id)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.json()["errors"][0]["msg"],
        json!(
            "1 span(s) rejected for invalid ids: resourceSpans[0].scopeSpans[0].spans[1]: span id must be 8 bytes, got 4"
        )
    );
}
