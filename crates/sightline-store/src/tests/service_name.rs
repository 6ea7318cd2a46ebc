//! A resource whose `service.name` is not a string. OpenTelemetry's
//! semantic conventions make `service.name` a string; the SDKs default a
//! missing one to `unknown_service`. The store reads any other value as
//! missing too ([`sightline_model::Resource::new`]), so the span's service
//! as every reader shows it, the services list, the operations and search
//! by service agree on `unknown_service`, while the value itself stays a
//! resource attribute (searchable as a tag by its JSON text), in the head
//! and in blocks alike.

use sightline_model::{UNKNOWN_SERVICE, Value};

use super::*;

fn array_service_trace(n: u32, start: u64) -> Vec<Span> {
    let name = Value::Array(vec![Value::Str("a".into()), Value::Str("b".into())]);
    let resource = Arc::new(Resource::new(vec![KeyValue::new("service.name", name)], 0, String::new()));
    let mut spans = Gen::new().trace(n, start);
    for span in &mut spans {
        span.resource = Arc::clone(&resource);
    }
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_string_service_name_is_listed_and_searched_as_shown() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(options(dir.path())).await;
    store.consume_traces(Batch::from_spans(array_service_trace(1, now()))).await.unwrap();
    let check = async |store: &EmbeddedStore, place: &str| {
        let trace = store.trace(tid(1)).await.unwrap().expect("the trace");
        assert!(trace.iter().all(|s| s.service_name() == UNKNOWN_SERVICE), "{place}");
        assert_eq!(store.services().await.unwrap(), vec![UNKNOWN_SERVICE.to_owned()], "{place}");
        let names: Vec<String> =
            store.operations(UNKNOWN_SERVICE, None).await.unwrap().into_iter().map(|o| o.name).collect();
        assert_eq!(names, ["GET /", "load"], "{place}");
        let by_service = TraceQuery { service: Some(UNKNOWN_SERVICE.into()), ..query() };
        assert_eq!(found(store, &by_service).await, vec![tid(1)], "{place}");
        let by_tag = TraceQuery {
            tags: vec![TagFilter { key: "service.name".into(), value: r#"["a","b"]"#.into() }],
            ..query()
        };
        assert_eq!(found(store, &by_tag).await, vec![tid(1)], "{place}");
    };
    check(&store, "head").await;
    store.flush().await.unwrap();
    assert_eq!(store.block_count(), 1);
    check(&store, "block").await;
    store.shutdown().await;
}
