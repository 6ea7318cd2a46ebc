//! Issue 13: the node-to-node head routes, and how a partial answer (a
//! reader that left a peer out) is marked.

use prost::Message as _;
use sightline_model::TenantReaders;

use super::*;

fn heads(fake: Fake) -> (Router, Arc<Fake>) {
    let fake = Arc::new(fake);
    let readers: Arc<dyn TenantReaders> = Arc::new(Arc::clone(&fake) as Arc<dyn SpanReader>);
    (crate::internal::router(readers), fake)
}

async fn get(app: &Router, uri: &str) -> Reply {
    send_to(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn decode(reply: &Reply) -> Vec<Span> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.content_type, "application/x-protobuf");
    let request =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(&reply.body[..])
            .unwrap();
    sightline_model::otlp::decode_request(request).spans
}

#[tokio::test]
async fn head_routes_answer_otlp_and_refuse_bad_input_with_400() {
    let (app, fake) = heads(Fake { traces: vec![two_service_trace()], ..Fake::default() });
    let spans = decode(&get(&app, &format!("/internal/head/traces?traceID={T1}")).await);
    assert_eq!(spans.len(), two_service_trace().len());
    assert!(spans.iter().all(|s| s.trace_id == tid(T1)));
    let none = decode(&get(&app, &format!("/internal/head/traces?traceID={}", "1".repeat(32))).await);
    assert!(none.is_empty());

    let query = TraceQuery {
        service: Some("frontend".into()),
        tags: vec![sightline_model::TagFilter { key: "a=b".into(), value: "c&d".into() }],
        start_min_unix_nanos: Some(START + 1),
        limit: 5,
        ..TraceQuery::default()
    };
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for (name, value) in query.to_pairs() {
        pairs.append_pair(name, &value);
    }
    let found = decode(&get(&app, &format!("/internal/head/search?{}", pairs.finish())).await);
    assert_eq!(found.len(), two_service_trace().len());
    assert_eq!(*fake.last_query.lock().unwrap(), Some(query), "the search arrives exactly");

    for (uri, says) in [
        ("/internal/head/traces?traceID=xyz", "cannot parse traceID"),
        ("/internal/head/traces?trace=1", "unknown parameter"),
        ("/internal/head/search?startNs=soon", "startNs"),
        ("/internal/head/search?tagKey=a", "tagKey without its tagValue"),
    ] {
        let reply = get(&app, uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(reply.text().contains(says), "{uri}: {}", reply.text());
    }
}

/// The listing routes answer one protobuf `AnyValue` (here the services:
/// an array of strings, as the reader lists them) and refuse bad input
/// with a 400 naming it.
#[tokio::test]
async fn head_listings_answer_one_any_value_and_refuse_bad_input_with_400() {
    use sightline_model::Value;
    let services = vec!["svc-a".to_owned(), "svc-b".to_owned()];
    let (app, _) = heads(Fake { services: services.clone(), ..Fake::default() });
    let reply = get(&app, "/internal/head/services").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let listed = sightline_model::otlp::decode_value_bytes(&reply.body).unwrap();
    assert_eq!(listed, Value::Array(services.into_iter().map(Value::from).collect()));
    for (uri, says) in [
        ("/internal/head/services?x=1", "unknown parameter"),
        ("/internal/head/operations", "service is required"),
        ("/internal/head/operations?service=a&spanKind=sideways", "unknown spanKind"),
        ("/internal/head/tag-names?scope=nowhere", "unknown scope"),
        ("/internal/head/tag-values?scope=span", "key is required"),
        ("/internal/head/tag-values?key=a&limit=many", "limit must be a number"),
    ] {
        let reply = get(&app, uri).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(reply.text().contains(says), "{uri}: {}", reply.text());
    }
}

/// A reader that left something out, as a cluster reader whose peer did
/// not answer.
struct Partial(Fake);

#[async_trait]
impl SpanReader for Partial {
    async fn trace(&self, id: TraceId) -> Result<Option<Vec<Span>>, QueryError> {
        self.0.trace(id).await
    }
    async fn find_traces(&self, query: &TraceQuery) -> Result<Vec<Vec<Span>>, QueryError> {
        self.0.find_traces(query).await
    }
    async fn services(&self) -> Result<Vec<String>, QueryError> {
        self.0.services().await
    }
    async fn operations(&self, service: &str, kind: Option<SpanKind>) -> Result<Vec<Operation>, QueryError> {
        self.0.operations(service, kind).await
    }
    async fn dependencies(&self, end: u64, lookback: u64) -> Result<Vec<DependencyLink>, QueryError> {
        self.0.dependencies(end, lookback).await
    }
    fn warnings(&self) -> Vec<String> {
        vec!["peer n1 at 10.0.0.1:16686 did not answer: no answer within 2s".into()]
    }
}

#[tokio::test]
async fn a_partial_answer_names_what_it_left_out() {
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let reader: Arc<dyn SpanReader> =
        Arc::new(Partial(Fake { traces: vec![two_service_trace()], ..Fake::default() }));
    let app = router(ApiState {
        readers: Arc::new(reader),
        health: Arc::new(Vec::new),
        ready: Arc::new(AtomicBool::new(true)),
        registry: Arc::new(registry),
        metrics,
        span_metrics: None,
        service_graph: None,
        logs: None,
    });
    let want = "peer n1 at 10.0.0.1:16686 did not answer: no answer within 2s";
    for uri in [format!("/api/traces/{T1}"), "/api/traces?service=frontend".to_owned()] {
        let response = app.clone().oneshot(Request::get(&uri).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers().get(crate::WARNINGS_HEADER).unwrap(), want, "{uri}");
        let body: Json =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(body["data"][0]["warnings"], json!([want]), "{uri}");
    }
    // Tempo's API has no field for it: the header says it.
    let response = app
        .clone()
        .oneshot(Request::get(format!("/api/v2/traces/{T1}")).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.headers().get(crate::WARNINGS_HEADER).unwrap(), want);
}
