//! The Tempo HTTP API, as Grafana's Tempo data source calls it.

use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message as _;

use super::*;

/// `tempopb.TraceByIDResponse`, typed again from Tempo's
/// `pkg/tempopb/tempo.proto` (field numbers 1–4) so the test does not read
/// the response with the code that wrote it.
#[derive(Clone, PartialEq, prost::Message)]
struct TempoTraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TracesData>,
    #[prost(message, optional, tag = "2")]
    metrics: Option<TempoMetrics>,
    #[prost(int32, tag = "3")]
    status: i32,
    #[prost(string, tag = "4")]
    message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct TempoMetrics {
    #[prost(uint64, tag = "1")]
    inspected_bytes: u64,
}

fn accepting(uri: &str, accept: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, accept)
        .header("X-Scope-OrgID", "team-a")
        .body(Body::empty())
        .unwrap()
}

fn span_ids(data: &TracesData) -> Vec<String> {
    data.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| hex::encode(&s.span_id))
        .collect()
}

#[tokio::test]
async fn echo_and_buildinfo() {
    let h = harness(Fake::default());
    let r = h.get("/api/echo").await;
    assert_eq!(
        (r.status, r.content_type.as_str(), r.text()),
        (StatusCode::OK, "text/plain; charset=utf-8", "echo\n")
    );
    let r = h.get("/api/status/buildinfo").await;
    assert_eq!(r.status, StatusCode::OK);
    let info = r.json();
    assert_eq!(info["version"], json!(env!("CARGO_PKG_VERSION")));
    for key in ["revision", "branch", "buildUser", "buildDate", "goVersion"] {
        assert!(info.get(key).is_some(), "{key} in {info}");
    }
}

#[tokio::test]
async fn v2_trace_by_id_is_protobuf_for_grafana_and_jsonpb_otherwise() {
    let h = harness(Fake { traces: vec![two_service_trace()], ..Fake::default() });
    // Grafana's request: protobuf, its time range in seconds, the tenant.
    let r = h.send(accepting(&format!("/api/v2/traces/{T1}?start=1&end=2"), "application/protobuf")).await;
    assert_eq!((r.status, r.content_type.as_str()), (StatusCode::OK, "application/protobuf"));
    let response = TempoTraceByIdResponse::decode(r.body.clone()).unwrap();
    assert_eq!(response.status, 0, "COMPLETE");
    assert_eq!(span_ids(response.trace.as_ref().unwrap()), [ROOT, CHILD, RENDER]);

    // JSON as Tempo's jsonpb writes it: base64 ids, enum names.
    let r = h.get(&format!("/api/v2/traces/{T1}")).await;
    assert_eq!(r.content_type, "application/json");
    let body = r.json();
    let root = &body["trace"]["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(root["traceId"], json!("CvdlGRbNQ92ESOshHIAxnA=="));
    assert_eq!(root["spanId"], json!("APBnqgupArc="));
    assert_eq!(root["kind"], json!("SPAN_KIND_SERVER"));
    assert_eq!(root["status"], json!({"message": "boom", "code": "STATUS_CODE_ERROR"}));
    assert_eq!(root["startTimeUnixNano"], json!(START.to_string()));
    let render = &body["trace"]["resourceSpans"][2]["scopeSpans"][0]["spans"][0];
    assert_eq!(render["status"], json!({}), "an unset status is an empty object");
    assert!(render.get("kind").is_none(), "SPAN_KIND_UNSPECIFIED is the default: {render}");
}

#[tokio::test]
async fn unknown_traces_are_404_on_both_paths_so_grafana_can_fall_back() {
    let h = harness(Fake { traces: vec![small_trace(T1)], ..Fake::default() });
    for uri in [format!("/api/v2/traces/{T2}"), format!("/api/traces/{T2}"), "/api/v2/traces/0".to_owned()] {
        let r = h.send(accepting(&uri, "application/protobuf")).await;
        assert_eq!((r.status, r.body.len()), (StatusCode::NOT_FOUND, 0), "{uri}");
    }
    let r = h.get(&format!("/api/v2/traces/{T2}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_v1_trace_path_negotiates_tempo_protobuf_and_jaeger_json() {
    let h = harness(Fake { traces: vec![two_service_trace()], ..Fake::default() });
    let r = h
        .send(accepting(&format!("/api/traces/{T1}?start=1700000000&end=1700000100"), "application/protobuf"))
        .await;
    assert_eq!((r.status, r.content_type.as_str()), (StatusCode::OK, "application/protobuf"));
    assert_eq!(span_ids(&TracesData::decode(r.body.clone()).unwrap()), [ROOT, CHILD, RENDER]);
    for accept in ["application/json", "*/*"] {
        let r = h.send(accepting(&format!("/api/traces/{T1}"), accept)).await;
        assert_eq!(r.json()["data"][0]["traceID"], json!(T1), "{accept}");
    }
}

#[tokio::test]
async fn tempo_by_id_windows_are_checked_but_never_filter() {
    let h = harness(Fake { traces: vec![small_trace(T1)], ..Fake::default() });
    for (query, msg) in [
        ("start=x", "invalid start: strconv.ParseInt: parsing \"x\": invalid syntax\n"),
        ("start=10&end=5", "http parameter start must be before end. received start=10 end=5\n"),
        ("mode=fast", "invalid value for mode fast\n"),
    ] {
        let r = h.get(&format!("/api/v2/traces/{T1}?{query}")).await;
        assert_eq!(
            (r.status, r.content_type.as_str(), r.text()),
            (StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", msg)
        );
    }
    // A window years away from the trace still finds it.
    let r = h.get(&format!("/api/v2/traces/{T1}?start=100&end=200&mode=all")).await;
    assert_eq!(r.status, StatusCode::OK);
}

// ------------------------------------------------------------------ search

/// Three traces, most recent first as a reader returns them: `shop` calls
/// `cart` (300 ms, an error in cart), `shop` alone (5 ms), and a trace
/// whose root has not arrived.
fn search_fixture() -> Fake {
    let scope = Arc::new(Scope::default());
    let service =
        |name: &str| Arc::new(Resource::new(vec![KeyValue::new("service.name", name)], 0, String::new()));
    let mut root = span(T1, ROOT, &service("shop"), &scope);
    root.name = "GET /checkout".into();
    root.end_time_unix_nano = START + 300_000_000;
    root.attributes = vec![KeyValue::new("http.method", "GET")];
    let mut call = span(T1, CHILD, &service("cart"), &scope);
    call.name = "reserve".into();
    call.parent_span_id = Some(sid(ROOT));
    call.start_time_unix_nano = START + 1_000_000;
    call.end_time_unix_nano = START + 200_000_000;
    call.status = Status { code: OtelStatus::Error, message: String::new() };
    let mut quick = span(T2, ROOT, &service("shop"), &scope);
    quick.name = "GET /health".into();
    quick.end_time_unix_nano = START + 5_000_000;
    let mut orphan = span(T_OTHER, CHILD, &service("cart"), &scope);
    orphan.name = "late".into();
    orphan.parent_span_id = Some(sid(RENDER));
    Fake { traces: vec![vec![root, call], vec![quick], vec![orphan]], ..Fake::default() }
}

fn trace_ids(body: &Json) -> Vec<String> {
    body["traces"].as_array().unwrap().iter().map(|t| t["traceID"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn search_results_have_tempos_shape() {
    let h = harness(search_fixture());
    let r = h.get("/api/search?start=1699999000&end=1700001000").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["traces"][0],
        json!({
            "traceID": T1.trim_start_matches('0'),
            "rootServiceName": "shop",
            "rootTraceName": "GET /checkout",
            "startTimeUnixNano": START.to_string(),
            "durationMs": 300,
            "serviceStats": {"cart": {"spanCount": 1, "errorCount": 1}, "shop": {"spanCount": 1}}
        })
    );
    assert_eq!(body["traces"][2]["rootServiceName"], json!("<root span not yet received>"));
    assert!(body["traces"][2].get("rootTraceName").is_none());
    assert_eq!(body["metrics"], json!({"inspectedTraces": 3, "completedJobs": 1, "totalJobs": 1}));
    assert_eq!(
        h.last_query(),
        TraceQuery {
            start_min_unix_nanos: Some(1_699_999_000_000_000_000),
            start_max_unix_nanos: Some(1_700_001_000_000_000_000),
            limit: 20,
            ..TraceQuery::default()
        }
    );
}

#[tokio::test]
async fn legacy_tags_hold_anywhere_in_the_trace_and_durations_are_the_traces() {
    let h = harness(search_fixture());
    let search = |query: &str| {
        let h = &h;
        let uri = format!("/api/search?{query}");
        async move { h.get(&uri).await }
    };
    let ids = |body: Json| trace_ids(&body);
    let t1 = T1.trim_start_matches('0');
    let t2 = T2.trim_start_matches('0');
    // shop's root and cart's error are on different spans of one trace.
    let tags = enc(r#"service.name=shop status.code=error"#);
    assert_eq!(ids(search(&format!("tags={tags}")).await.json()), [t1]);
    // The store is asked for service.name, the rest is checked here.
    assert_eq!(h.last_query().service.as_deref(), Some("shop"));
    assert_eq!(h.last_query().limit, 1_000);
    let tags = enc(r#"root.name="GET /health""#);
    assert_eq!(ids(search(&format!("tags={tags}")).await.json()), [t2]);
    let tags = enc("http.method=GET");
    assert_eq!(ids(search(&format!("tags={tags}&limit=5")).await.json()), [t1]);
    assert_eq!(ids(search("minDuration=100ms").await.json()), [t1]);
    assert_eq!(ids(search("maxDuration=10ms&minDuration=1ms").await.json()), [t2]);
    assert_eq!(ids(search("limit=1").await.json()), [t1]);
    // The first Grafana versions sent tags as parameters of their own.
    assert_eq!(ids(search("name=reserve").await.json()), [t1]);
    assert_eq!(h.last_query().operation.as_deref(), Some("reserve"));
}

#[tokio::test]
async fn the_empty_spanset_lists_spans_per_trace() {
    let h = harness(search_fixture());
    let body = h.get(&format!("/api/search?q={}&spss=1&limit=1", enc("{ }"))).await.json();
    let trace = &body["traces"][0];
    let set = json!({
        "spans": [{
            "spanID": ROOT,
            "name": "GET /checkout",
            "startTimeUnixNano": START.to_string(),
            "durationNanos": "300000000"
        }],
        "matched": 2
    });
    assert_eq!((&trace["spanSet"], &trace["spanSets"]), (&set, &json!([set.clone()])));
    assert_eq!(trace["rootServiceName"], json!("shop"));
    assert_eq!(trace["serviceStats"]["cart"], json!({"spanCount": 1, "errorCount": 1}));
}

#[tokio::test]
async fn traceql_narrows_through_the_store_and_evaluates_exactly() {
    let h = harness(search_fixture());
    let q = enc(r#"{ resource.service.name = "cart" && status = error } | select(span.http.method)"#);
    let body = h.get(&format!("/api/search?q={q}&start=1699999000&end=1700001000")).await.json();
    assert_eq!(trace_ids(&body), [T1.trim_start_matches('0')]);
    let set = &body["traces"][0]["spanSets"][0];
    assert_eq!(set["matched"], json!(1));
    assert_eq!(set["spans"][0]["spanID"], json!(CHILD));
    // The store was asked for the pre-filter's conditions, in the window.
    let q = h.last_query();
    assert_eq!(q.service.as_deref(), Some("cart"));
    assert_eq!(q.tags, vec![tag("error", "true")]);
    assert_eq!(q.start_min_unix_nanos, Some(1_699_999_000_000_000_000));
    assert!(q.limit >= 20, "{q:?}");

    // Structural: a shop span with a cart child; and a trace-level count.
    let q = enc(r#"{ resource.service.name = "shop" } > { resource.service.name = "cart" }"#);
    assert_eq!(trace_ids(&h.get(&format!("/api/search?q={q}")).await.json()), [T1.trim_start_matches('0')]);
    let q = enc("{ } | by(resource.service.name) | count() > 1");
    let body = h.get(&format!("/api/search?q={q}")).await.json();
    assert_eq!(body["traces"], json!([]), "no service has two spans in one trace");
    let q = enc("{ } | by(resource.service.name)");
    let body = h.get(&format!("/api/search?q={q}&limit=1")).await.json();
    let sets = body["traces"][0]["spanSets"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{body}");
    assert_eq!(sets[0]["attributes"][0]["key"], json!("by(resource.service.name)"));
    // Trace durations still apply.
    let q = enc("{ }");
    let ids = trace_ids(&h.get(&format!("/api/search?q={q}&minDuration=100ms")).await.json());
    assert_eq!(ids, [T1.trim_start_matches('0')]);
}

/// A query the store search answers exactly reads `limit` traces, as the
/// Jaeger search does; others read a surplus to make up for candidates
/// that fail evaluation.
#[tokio::test]
async fn exact_traceql_reads_just_limit_candidates() {
    let h = harness(search_fixture());
    let read = |query: &str| {
        let h = &h;
        let uri = format!("/api/search?{query}");
        async move {
            let body = h.get(&uri).await.json();
            (h.last_query().limit, body["metrics"]["inspectedTraces"].clone(), trace_ids(&body))
        }
    };
    let exact = enc(r#"{ resource.service.name = "shop" && name = "GET /checkout" && duration > 100ms }"#);
    let t1 = T1.trim_start_matches('0').to_owned();
    assert_eq!(read(&format!("q={exact}&limit=1")).await, (1, json!(1), vec![t1.clone()]));
    // A trace-level duration bound is checked here: not exact.
    assert_eq!(read(&format!("q={exact}&limit=1&minDuration=1ms")).await.0, 50);
    // The store's `error` tag also matches attributes named `error`.
    assert_eq!(read(&format!("q={}&limit=1", enc("{ status = error }"))).await.0, 50);
}

/// `n` one-span traces, newest first, one second apart; `error(i)` says
/// which have an error status and `value(i)` their `k` attribute.
fn many_traces(n: usize, error: impl Fn(usize) -> bool, value: impl Fn(usize) -> i64) -> Fake {
    let scope = Arc::new(Scope::default());
    let traces = (0..n)
        .map(|i| {
            let mut s = span(&format!("{:032x}", i + 1), ROOT, &frontend(), &scope);
            s.start_time_unix_nano = START - i as u64 * 1_000_000_000;
            s.end_time_unix_nano = s.start_time_unix_nano + 1_000;
            s.attributes = vec![KeyValue::new("k", value(i))];
            if error(i) {
                s.status = Status { code: OtelStatus::Error, message: String::new() };
            }
            vec![s]
        })
        .collect();
    Fake { traces, ..Fake::default() }
}

/// A search that needs several rounds of candidates reads each candidate
/// trace once: later rounds ask for ids and read only the new ones (it
/// read 50 + 200 + 300 traces for 300 candidates when every round read
/// full traces).
#[tokio::test]
async fn later_traceql_rounds_do_not_read_earlier_candidates_again() {
    let h = harness(many_traces(300, |i| i == 299, |_| 1));
    let body = h.get(&format!("/api/search?q={}&limit=1", enc("{ status = error }"))).await.json();
    assert_eq!(trace_ids(&body), [format!("{:x}", 300)], "{body}");
    assert_eq!(body["metrics"]["inspectedTraces"], json!(300));
    assert_eq!(h.last_query().limit, 800, "three rounds: 50, 200, 800");
    assert_eq!(h.reader.traces_read.load(Ordering::Relaxed), 300);
}

/// A store answer cut short by its result budget is not the end of the
/// candidates: the search went on by id and found the match (it stopped at
/// the cut, 120 < 200 asked, and found nothing).
#[tokio::test]
async fn a_result_budget_cut_does_not_end_a_traceql_search() {
    let h = harness(Fake { find_cap: Some(120), ..many_traces(300, |i| i == 299, |_| 1) });
    let body = h.get(&format!("/api/search?q={}&limit=1", enc("{ status = error }"))).await.json();
    assert_eq!(trace_ids(&body), [format!("{:x}", 300)], "{body}");
    let body = h.get(&format!("/api/search?tags={}&limit=1", enc("error=true k=1"))).await.json();
    assert_eq!(trace_ids(&body), [format!("{:x}", 300)], "{body}");
}

/// A legacy search with tags the store cannot check reads candidates, most
/// recent first, only until `limit` of them match (it read all 1,000 the
/// store search allows).
#[tokio::test]
async fn legacy_tag_search_reads_until_limit_matches() {
    let h = harness(many_traces(300, |i| i % 2 == 1, |_| 1));
    let tags = enc("error=true k=1");
    let body = h.get(&format!("/api/search?tags={tags}&limit=5")).await.json();
    let want: Vec<String> = [2, 4, 6, 8, 10].iter().map(|n| format!("{n:x}")).collect();
    assert_eq!(trace_ids(&body), want, "{body}");
    assert_eq!(h.last_query().limit, 1000);
    assert_eq!(body["metrics"]["inspectedTraces"], json!(100), "one group of candidates");
    assert_eq!(h.reader.traces_read.load(Ordering::Relaxed), 100);
}

/// Round by round, a search finds what evaluating every trace finds: the
/// `limit` most recent matches.
#[tokio::test]
async fn traceql_rounds_find_the_most_recent_matches() {
    let n = 400;
    let fake = many_traces(n, |i| i % 7 == 3, |i| (i % 5) as i64);
    let traces = fake.traces.clone();
    let h = harness(fake);
    let queries =
        ["{ status = error }", "{ span.k = 2 }", "{ span.k >= 3 && status = error }", "{ span.k = 9 }"];
    for q in queries {
        for limit in [1, 3, 40, 120] {
            let parsed = sightline_traceql::parse(q).unwrap();
            let mut want: Vec<(u64, String)> = traces
                .iter()
                .filter(|t| parsed.evaluate(t, 3).unwrap().is_some())
                .map(|t| (t[0].start_time_unix_nano, hex::encode(t[0].trace_id.as_bytes())))
                .collect();
            want.sort_by_key(|w| std::cmp::Reverse(w.0));
            let want: Vec<String> =
                want.into_iter().take(limit).map(|(_, id)| id.trim_start_matches('0').to_owned()).collect();
            let body = h.get(&format!("/api/search?q={}&limit={limit}", enc(q))).await.json();
            assert_eq!(trace_ids(&body), want, "{q} limit={limit}");
        }
    }
}

#[tokio::test]
async fn traceql_errors_name_the_position() {
    let h = harness(search_fixture());
    let r = h.get(&format!("/api/search?q={}", enc(r#"{ span.http.method = "GET" "#))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().starts_with("invalid TraceQL query: at 1:"), "{}", r.text());
    let r = h.get(&format!("/api/search?q={}", enc("{ } | rate()"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("/api/metrics/query_range"), "{}", r.text());
    let r = h.get(&format!("/api/search?q={}", enc("{ parent.foo = 1 }"))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(h.reader.last_query.lock().unwrap().is_none(), "no bad query reaches the reader");
}

#[tokio::test]
async fn bad_search_parameters_are_400s_in_tempos_words() {
    let h = harness(search_fixture());
    let cases = [
        ("start=x", "invalid start: strconv.ParseUint: parsing \"x\": invalid syntax"),
        ("end=99999999999", "invalid end: strconv.ParseUint: parsing \"99999999999\": value out of range"),
        ("start=20&end=10", "http parameter start must be before end. received start=20 end=10"),
        ("q=%7B%7D&tags=a%3Db", "invalid request: can't specify tags and q in the same query"),
        ("tags=a%3Db%20a%3Dc", "invalid tags: tag a has been set twice"),
        ("tags=a%3D%22open", "invalid tags: unterminated quoted value at pos 8"),
        ("tags=a%3Db%3Dc", "invalid tags: unexpected '=' at pos 4"),
        ("minDuration=5", "invalid minDuration: time: missing unit in duration \"5\""),
        ("minDuration=2s&maxDuration=1s", "invalid maxDuration: must be greater than minDuration"),
        ("limit=0", "invalid limit: must be a positive number"),
        ("limit=-1", "invalid limit: strconv.ParseUint: parsing \"-1\": invalid syntax"),
        ("spss=x", "invalid spss: strconv.ParseUint: parsing \"x\": invalid syntax"),
    ];
    for (query, msg) in cases {
        let r = h.get(&format!("/api/search?{query}")).await;
        assert_eq!((r.status, r.text()), (StatusCode::BAD_REQUEST, format!("{msg}\n").as_str()), "{query}");
    }
}

// -------------------------------------------------------------------- tags

/// Unix seconds around the fixture's spans.
const WINDOW: &str = "start=1699999000&end=1700001000";

fn tag_fixture() -> Fake {
    let mut fake = search_fixture();
    fake.services = vec!["cart".into(), "shop".into()];
    fake.operations = vec![Operation { name: "GET /checkout".into(), kind: SpanKind::Server }];
    fake.traces[0][0].attributes.push(KeyValue::new("http.status_code", 200i64));
    fake.traces[1][0].attributes.push(KeyValue::new("http.status_code", "200"));
    fake
}

#[tokio::test]
async fn tag_names_per_scope_with_intrinsics() {
    let h = harness(tag_fixture());
    let body = h.get(&format!("/api/v2/search/tags?{WINDOW}")).await.json();
    let scopes = body["scopes"].as_array().unwrap();
    let names: Vec<&str> = scopes.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["resource", "span", "intrinsic"]);
    assert_eq!(scopes[0]["tags"], json!(["service.name"]));
    assert_eq!(scopes[1]["tags"], json!(["http.method", "http.status_code"]));
    let intrinsics = scopes[2]["tags"].as_array().unwrap();
    for name in ["duration", "name", "status", "kind", "rootServiceName", "span:name", "trace:rootService"] {
        assert!(intrinsics.contains(&json!(name)), "{name}");
    }
    assert_eq!(
        h.get(&format!("/api/v2/search/tags?scope=span&{WINDOW}")).await.json()["scopes"][0]["name"],
        json!("span")
    );
    assert_eq!(
        h.get(&format!("/api/v2/search/tags?scope=span&{WINDOW}")).await.json()["scopes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.get("/api/v2/search/tags?scope=intrinsic").await.json()["scopes"][0]["name"],
        json!("intrinsic")
    );
    let r = h.get("/api/v2/search/tags?scope=nope").await;
    assert_eq!((r.status, r.text()), (StatusCode::BAD_REQUEST, "invalid scope: nope\n"));
    let r = h.get(&format!("/api/search/tags?{WINDOW}")).await;
    assert_eq!(r.json(), json!({"tagNames": ["http.method", "http.status_code", "service.name"]}));
    // Without a window, the last hour: the fixture is from 2023.
    let body = h.get("/api/v2/search/tags").await.json();
    assert_eq!(body["scopes"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(h.get("/api/search/tags").await.json(), json!({"tagNames": []}));
}

#[tokio::test]
async fn tag_values_are_typed_and_the_tag_may_be_encoded_twice() {
    let h = harness(tag_fixture());
    let values = |uri: &str| {
        let h = &h;
        let uri = uri.to_owned();
        async move { h.get(&uri).await.json()["tagValues"].clone() }
    };
    assert_eq!(
        values(&format!("/api/v2/search/tag/span.http.status_code/values?{WINDOW}")).await,
        json!([{"type": "string", "value": "200"}, {"type": "int", "value": "200"}])
    );
    // Grafana's double encoding of `span."http.method"`.
    let twice = enc(&enc(r#"span."http.method""#));
    assert_eq!(
        values(&format!("/api/v2/search/tag/{twice}/values?{WINDOW}")).await,
        json!([{"type": "string", "value": "GET"}])
    );
    assert_eq!(
        values("/api/v2/search/tag/resource.service.name/values").await,
        json!([{"type": "string", "value": "cart"}, {"type": "string", "value": "shop"}])
    );
    assert_eq!(
        values("/api/v2/search/tag/name/values").await,
        json!([{"type": "string", "value": "GET /checkout"}])
    );
    assert_eq!(
        values("/api/v2/search/tag/status/values").await,
        json!([{"type": "keyword", "value": "ok"}, {"type": "keyword", "value": "error"}, {"type": "keyword", "value": "unset"}])
    );
    assert_eq!(values("/api/v2/search/tag/duration/values").await, json!([]));
    let r = h.get("/api/v2/search/tag/bogus/values").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().starts_with("please provide a valid tagName: "), "{}", r.text());
    // v1: bare names, text values, Tempo's virtual tags.
    assert_eq!(values(&format!("/api/search/tag/http.status_code/values?{WINDOW}")).await, json!(["200"]));
    assert_eq!(values("/api/search/tag/status.code/values").await, json!(["unset", "ok", "error"]));
    assert_eq!(values("/api/search/tag/service.name/values").await, json!(["cart", "shop"]));
}
