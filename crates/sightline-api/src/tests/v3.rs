//! Jaeger API v3 (`/api/v3/*`): shapes checked against Jaeger's own
//! gateway snapshots (`testdata/jaeger-apiv3/`), parameters against its
//! `query_parser.go`.

use super::*;

fn snapshot(name: &str) -> Json {
    let path = format!("{}/testdata/jaeger-apiv3/{name}.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Jaeger's `makeTestTrace`: one SERVER span `foobar`, trace id 1, span id
/// 2, status ERROR, nothing else set.
fn jaeger_test_trace() -> Vec<Span> {
    let resource = Arc::new(Resource::new(vec![], 0, String::new()));
    let mut s = span("1", "2", &resource, &Arc::new(Scope::default()));
    s.name = "foobar".into();
    s.kind = SpanKind::Server;
    s.start_time_unix_nano = 0;
    s.end_time_unix_nano = 0;
    s.status = Status { code: OtelStatus::Error, message: String::new() };
    vec![s]
}

/// The query string Jaeger's gateway test searches with, in both
/// spellings.
fn find_query(snake: bool) -> String {
    let names = if snake {
        ["query.service_name", "query.operation_name", "query.start_time_min", "query.start_time_max"]
    } else {
        ["query.serviceName", "query.operationName", "query.startTimeMin", "query.startTimeMax"]
    };
    format!(
        "{}=foo&{}=bar&{}={}&{}={}&query.duration_min=1s&query.durationMax=2s&query.searchDepth=10",
        names[0],
        names[1],
        names[2],
        enc("2023-11-14T22:13:20.000000001Z"),
        names[3],
        enc("2023-11-14T23:13:20+01:00"),
    )
}

#[tokio::test]
async fn services_and_operations_match_jaegers_snapshots() {
    let h = harness(Fake {
        services: vec!["foo".into()],
        operations: vec![Operation { name: "get_users".into(), kind: SpanKind::Server }],
        ..Fake::default()
    });
    let r = h.get("/api/v3/services").await;
    assert_eq!((r.status, r.content_type.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(r.json(), snapshot("GetServices"));
    let r = h.get("/api/v3/operations?service=foo&spanKind=server").await;
    assert_eq!(r.json(), snapshot("GetOperations"));
    assert_eq!(*h.reader.last_operations.lock().unwrap(), Some(("foo".into(), Some(SpanKind::Server))));
    // The old spelling, any case; an unknown kind lists nothing.
    h.get("/api/v3/operations?service=foo&span_kind=SERVER").await;
    assert_eq!(*h.reader.last_operations.lock().unwrap(), Some(("foo".into(), Some(SpanKind::Server))));
    assert_eq!(h.get("/api/v3/operations?service=foo&spanKind=nope").await.json(), json!({"operations": []}));
    // Empty lists are written, not left out: Jaeger UI requires them.
    let empty = harness(Fake::default());
    assert_eq!(empty.get("/api/v3/services").await.text(), r#"{"services":[]}"#);
}

#[tokio::test]
async fn an_operation_of_unspecified_kind_is_listed_as_internal() {
    let h = harness(operations_fixture());
    let r = h.get("/api/v3/operations?service=frontend").await;
    assert_eq!(
        r.json(),
        json!({"operations": [
            {"name": "GET /checkout", "spanKind": "client"},
            {"name": "GET /checkout", "spanKind": "server"},
            {"name": "background", "spanKind": "internal"},
            {"name": "render", "spanKind": "internal"}
        ]})
    );
}

#[tokio::test]
async fn get_trace_and_find_traces_match_jaegers_snapshots() {
    let h = harness(Fake { traces: vec![jaeger_test_trace()], ..Fake::default() });
    let r = h.get("/api/v3/traces/1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), snapshot("GetTrace"));
    let window = find_query(false).replace("22%3A13%3A20.000000001Z", "21%3A13%3A20Z");
    let r = h.get(&format!("/api/v3/traces?{window}")).await;
    assert_eq!(r.json(), snapshot("FindTraces"));
}

#[tokio::test]
async fn find_parameters_in_both_spellings_become_one_query() {
    let h = harness(Fake::default());
    let want = TraceQuery {
        service: Some("foo".into()),
        operation: Some("bar".into()),
        tags: vec![],
        min_duration_nanos: Some(1_000_000_000),
        max_duration_nanos: Some(2_000_000_000),
        start_min_unix_nanos: Some(1_700_000_000_000_000_001),
        // 23:13:20+01:00 is 22:13:20Z.
        start_max_unix_nanos: Some(1_700_000_000_000_000_000),
        limit: 10,
    };
    // Jaeger requires min < max; these are 1 ns apart the wrong way.
    let r = h.get(&format!("/api/v3/traces?{}", find_query(true))).await;
    assert_eq!(
        r.text(),
        "{\"error\":{\"httpCode\":400,\"message\":\"query.startTimeMin must be before query.startTimeMax\"}}\n"
    );
    assert_eq!(r.content_type, "text/plain; charset=utf-8");
    let fixed = |snake| find_query(snake).replace("22%3A13%3A20.000000001Z", "21%3A13%3A20Z");
    for snake in [false, true] {
        let r = h.get(&format!("/api/v3/trace-summaries?{}", fixed(snake))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let mut want = want.clone();
        want.start_min_unix_nanos = Some(1_700_000_000_000_000_000 - 3_600_000_000_000);
        assert_eq!(h.last_query(), want, "snake_case: {snake}");
    }
    // Attributes, the num_traces alias, a non-positive depth, raw traces.
    let attrs = enc(r#"{"http.status_code":"500","error":"true"}"#);
    let no_depth = fixed(false).replace("&query.searchDepth=10", "");
    h.get(&format!(
        "/api/v3/traces?{no_depth}&query.attributes={attrs}&query.searchDepth=&query.num_traces=7"
    ))
    .await;
    let q = h.last_query();
    assert_eq!((q.limit, q.tags), (7, vec![tag("error", "true"), tag("http.status_code", "500")]));
    h.get(&format!("/api/v3/traces?{no_depth}&query.searchDepth=0")).await;
    assert_eq!(h.last_query().limit, 100);
    let minimal = "query.startTimeMin=2023-11-14T21:00:00Z&query.startTimeMax=2023-11-14T22:00:00Z";
    h.get(&format!("/api/v3/traces?{minimal}")).await;
    assert_eq!((h.last_query().service, h.last_query().limit), (None, 100));
}

#[tokio::test]
async fn bad_find_parameters_are_400s_in_the_gateway_envelope() {
    let h = harness(Fake::default());
    let ok_times = "query.startTimeMin=2023-11-14T21:00:00Z&query.startTimeMax=2023-11-14T22:00:00Z";
    let cases = [
        ("query.serviceName=a".to_owned(), "query.startTimeMin and query.startTimeMax are required"),
        (
            "query.startTimeMin=2023-11-14T21:00:00Z".to_owned(),
            "query.startTimeMin and query.startTimeMax are required",
        ),
        (
            "query.start_time_min=yesterday&query.startTimeMax=2023-11-14T22:00:00Z".to_owned(),
            "malformed parameter query.start_time_min: parsing time \"yesterday\" as RFC 3339: cannot parse year",
        ),
        (
            "query.startTimeMin=2023-02-29T21:00:00Z&query.startTimeMax=2023-11-14T22:00:00Z".to_owned(),
            "malformed parameter query.startTimeMin: parsing time \"2023-02-29T21:00:00Z\" as RFC 3339: day out of range",
        ),
        (
            format!("{ok_times}&query.searchDepth=ten"),
            "malformed parameter query.searchDepth: strconv.Atoi: parsing \"ten\": invalid syntax",
        ),
        (
            format!("{ok_times}&query.durationMin=10"),
            "malformed parameter query.durationMin: time: missing unit in duration \"10\"",
        ),
        (
            format!("{ok_times}&query.raw_traces=yes"),
            "malformed parameter query.raw_traces: strconv.ParseBool: parsing \"yes\": invalid syntax",
        ),
        (
            format!("{ok_times}&query.attributes=%5B%5D"),
            "malformed parameter query.attributes: invalid type: sequence, expected a map at line 1 column 0",
        ),
        (
            format!("{ok_times}&query.filter=%7B%7D"),
            "malformed parameter query.filter: structured filters are not supported; use query.attributes",
        ),
    ];
    for (query, msg) in cases {
        for route in ["traces", "trace-summaries"] {
            let r = h.get(&format!("/api/v3/{route}?{query}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{route}?{query}");
            assert_eq!(r.json(), json!({"error": {"httpCode": 400, "message": msg}}), "{route}?{query}");
        }
    }
    assert!(h.reader.last_query.lock().unwrap().is_none(), "no bad query reaches the reader");
}

#[tokio::test]
async fn nothing_found_is_jaegers_404_envelope() {
    let h = harness(Fake::default());
    let not_found = "{\"error\":{\"httpCode\":404,\"message\":\"No traces found\"}}\n";
    let r = h.get(&format!("/api/v3/traces/{T1}")).await;
    assert_eq!((r.status, r.text()), (StatusCode::NOT_FOUND, not_found));
    let r = h
        .get("/api/v3/traces?query.startTimeMin=2023-11-14T21:00:00Z&query.startTimeMax=2023-11-14T22:00:00Z")
        .await;
    assert_eq!((r.status, r.text()), (StatusCode::NOT_FOUND, not_found));
    // Summaries of nothing are an empty list.
    let r = h
        .get("/api/v3/trace-summaries?query.startTimeMin=2023-11-14T21:00:00Z&query.startTimeMax=2023-11-14T22:00:00Z")
        .await;
    assert_eq!((r.status, r.text()), (StatusCode::OK, r#"{"summaries":[]}"#));
    // Ids: 0 is not found; garbage, times and raw flags are checked.
    let r = h.get("/api/v3/traces/0").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for (query, msg) in [
        ("zz!", "malformed parameter trace_id: trace id is not hex: \"zz!\""),
        (
            &format!("{T1}?startTime=now") as &str,
            "malformed parameter startTime: parsing time \"now\" as RFC 3339: missing year",
        ),
        (
            &format!("{T1}?end_time=2023-11-14T25:00:00Z"),
            "malformed parameter end_time: parsing time \"2023-11-14T25:00:00Z\" as RFC 3339: time out of range",
        ),
        (
            &format!("{T1}?rawTraces=2"),
            "malformed parameter rawTraces: strconv.ParseBool: parsing \"2\": invalid syntax",
        ),
    ] {
        let r = h.get(&format!("/api/v3/traces/{query}")).await;
        assert_eq!(r.json(), json!({"error": {"httpCode": 400, "message": msg}}), "{query}");
    }
}

#[tokio::test]
async fn traces_are_otlp_json_with_adjuster_warnings_in_jaegers_attribute() {
    let mut trace = two_service_trace();
    // The backend span starts 10 ms before its parent on another host.
    trace[1].start_time_unix_nano = START - 10_000_000;
    let h = harness(Fake { traces: vec![trace], ..Fake::default() });
    let body = h.get(&format!("/api/v3/traces/{T1}?start_time=2023-11-14T22:13:20Z")).await.json();
    let rs = &body["result"]["resourceSpans"];
    assert_eq!(rs.as_array().unwrap().len(), 3, "frontend, backend, frontend again (another allocation)");
    assert_eq!(
        rs[0]["resource"]["attributes"][1],
        json!({"key": "host.name", "value": {"stringValue": "web-1"}})
    );
    let root = &rs[0]["scopeSpans"][0]["spans"][0];
    assert_eq!(rs[0]["scopeSpans"][0]["scope"], json!({"name": "io.opentelemetry.http", "version": "1.2.0"}));
    assert_eq!(root["traceId"], json!(T1));
    assert_eq!(root["spanId"], json!(ROOT));
    assert_eq!(root["flags"], json!(0x301));
    assert_eq!(root["kind"], json!(2));
    assert_eq!(root["startTimeUnixNano"], json!(START.to_string()));
    assert_eq!(root["status"], json!({"message": "boom", "code": 2}));
    let attrs = root["attributes"].as_array().unwrap();
    assert_eq!(attrs[1], json!({"key": "http.status_code", "value": {"intValue": "500"}}));
    assert_eq!(attrs[4], json!({"key": "payload", "value": {"bytesValue": "AQID"}}));
    assert_eq!(
        attrs[6],
        json!({"key": "list", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}})
    );
    assert_eq!(attrs[8], json!({"key": "nothing", "value": {}}));
    assert_eq!(
        root["events"][1],
        json!({"timeUnixNano": "1700000000300000999", "attributes": [{"key": "note", "value": {"stringValue": "hi"}}]})
    );
    let child = &rs[1]["scopeSpans"][0]["spans"][0];
    assert_eq!(child["parentSpanId"], json!(ROOT));
    assert_eq!(child["links"][1], json!({"traceId": T_OTHER, "spanId": "0000000000000aaa"}));
    let warnings = child["attributes"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(warnings["key"], json!("@jaeger@warnings"));
    assert_eq!(
        warnings["value"]["arrayValue"]["values"][0]["stringValue"],
        json!("clock skew adjustment disabled; not applying calculated delta of 122.500499ms")
    );
    // raw: as stored.
    let body = h.get(&format!("/api/v3/traces/{T1}?raw_traces=true")).await.json();
    let child = &body["result"]["resourceSpans"][1]["scopeSpans"][0]["spans"][0];
    assert!(child.get("attributes").is_none(), "{child}");
    assert_eq!(child["startTimeUnixNano"], json!((START - 10_000_000).to_string()));
}

#[tokio::test]
async fn trace_summaries_match_jaegers_snapshot() {
    // Jaeger's runGatewayFindTraceSummaries trace: a root and an erring
    // child in service "frontend".
    let resource = Arc::new(Resource::new(vec![KeyValue::new("service.name", "frontend")], 0, String::new()));
    let scope = Arc::new(Scope::default());
    let mut root = span("1", "1", &resource, &scope);
    root.name = "HTTP GET /".into();
    root.start_time_unix_nano = 1_000_000_000_000;
    root.end_time_unix_nano = 1_001_000_000_000;
    let mut child = span("1", "2", &resource, &scope);
    child.parent_span_id = Some(sid("1"));
    child.status = Status { code: OtelStatus::Error, message: String::new() };
    child.start_time_unix_nano = 1_000_000_000_100;
    child.end_time_unix_nano = 1_000_000_000_900;
    let h = harness(Fake { traces: vec![vec![root, child]], ..Fake::default() });
    let r = h
        .get(&format!(
            "/api/v3/trace-summaries?{}",
            find_query(false).replace("22%3A13%3A20.000000001Z", "21%3A13%3A20Z")
        ))
        .await;
    assert_eq!(r.json(), snapshot("FindTraceSummaries"));
}

#[tokio::test]
async fn summaries_count_orphans_and_pick_the_earliest_root() {
    let scope = Arc::new(Scope::default());
    let mut late_root = span(T1, "0000000000000001", &frontend(), &scope);
    late_root.name = "late".into();
    late_root.start_time_unix_nano = START + 5;
    late_root.end_time_unix_nano = START + 50;
    let mut early_root = span(T1, "0000000000000002", &frontend(), &scope);
    early_root.name = "early".into();
    let mut orphan = span(T1, "0000000000000003", &frontend(), &scope);
    orphan.parent_span_id = Some(sid("0000000000000009"));
    let h = harness(Fake { traces: vec![vec![late_root, early_root, orphan]], ..Fake::default() });
    let r = h.get("/api/v3/trace-summaries?query.startTimeMin=2023-11-14T21:00:00Z&query.startTimeMax=2023-11-14T23:00:00Z").await;
    assert_eq!(
        r.json(),
        json!({"summaries": [{
            "traceId": T1,
            "rootServiceName": "frontend",
            "rootOperationName": "early",
            "minStartTimeUnixNano": START.to_string(),
            "maxEndTimeUnixNano": (START + 50).to_string(),
            "spanCount": 3,
            "orphanSpanCount": 1,
            "services": [{"name": "frontend", "spanCount": 3}]
        }]})
    );
}
