use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;

use crate::*;

fn kv(key: &str, v: pc::any_value::Value) -> pc::KeyValue {
    pc::KeyValue { key: key.into(), value: Some(pc::AnyValue { value: Some(v) }), key_strindex: 0 }
}

fn wire_span(trace: &[u8], span: &[u8], parent: &[u8]) -> pt::Span {
    pt::Span {
        trace_id: trace.to_vec(),
        span_id: span.to_vec(),
        parent_span_id: parent.to_vec(),
        name: "GET /users/{id}".into(),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_250_000_000,
        attributes: vec![
            kv("http.response.status_code", pc::any_value::Value::IntValue(200)),
            kv("ratio", pc::any_value::Value::DoubleValue(0.25)),
        ],
        status: Some(pt::Status { code: 2, message: "boom".into() }),
        events: vec![pt::span::Event {
            time_unix_nano: 1_700_000_000_100_000_000,
            name: "exception".into(),
            attributes: vec![kv("exception.type", pc::any_value::Value::StringValue("ValueError".into()))],
            dropped_attributes_count: 0,
        }],
        ..Default::default()
    }
}

fn request(spans: Vec<pt::Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![pt::ResourceSpans {
            resource: Some(pr::Resource {
                attributes: vec![kv("service.name", pc::any_value::Value::StringValue("checkout".into()))],
                ..Default::default()
            }),
            scope_spans: vec![pt::ScopeSpans {
                scope: Some(pc::InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

const T: [u8; 16] = [1; 16];

#[test]
fn ids_parse_hex_case_insensitively_and_pad() {
    let id: TraceId = "0AF7651916CD43DD8448EB211C80319C".parse().unwrap();
    assert_eq!(id.to_hex(), "0af7651916cd43dd8448eb211c80319c");
    let short: TraceId = "af7651916cd43dd8448eb211c80319c".parse().unwrap();
    assert_eq!(short, id);
    assert!(matches!("zz".parse::<SpanId>(), Err(IdError::NotHex { .. })));
    assert!(matches!("0000000000000000".parse::<SpanId>(), Err(IdError::Zero { .. })));
    assert!(matches!("00112233445566778899".parse::<SpanId>(), Err(IdError::Length { got: 10, .. })));
    assert!(matches!(SpanId::from_slice(&[1; 7]), Err(IdError::Length { expected: 8, got: 7, .. })));
}

#[test]
fn decode_keeps_valid_spans_and_reports_invalid_ones() {
    let req = request(vec![
        wire_span(&T, &[2; 8], &[]),
        wire_span(&[0; 16], &[3; 8], &[]),
        wire_span(&T, &[4; 4], &[]),
        wire_span(&T, &[5; 8], &[2; 8]),
        wire_span(&T, &[6; 8], &[0; 8]),
    ]);
    let d = otlp::decode_request(req);
    assert_eq!(d.rejected, 2);
    assert_eq!(d.spans.len(), 3);
    assert!(d.error_message.contains("2 span(s) rejected"), "{}", d.error_message);
    assert!(d.error_message.contains("spans[1]: trace id is all zeros"), "{}", d.error_message);
    assert!(d.error_message.contains("spans[2]: span id must be 8 bytes, got 4"), "{}", d.error_message);
    assert_eq!(d.spans[1].parent_span_id, Some(SpanId::from_bytes([2; 8]).unwrap()));
    assert_eq!(d.spans[2].parent_span_id, None, "all-zero parent means root");
    let s = &d.spans[0];
    assert_eq!(s.service_name(), "checkout");
    assert_eq!(s.kind, SpanKind::Server);
    assert_eq!(s.duration_nanos(), 250_000_000);
    assert_eq!(s.status.code, StatusCode::Error);
    assert!(Arc::ptr_eq(&d.spans[0].resource, &d.spans[1].resource));
}

#[test]
fn encode_then_decode_round_trips() {
    let d = otlp::decode_request(request(vec![wire_span(&T, &[2; 8], &[]), wire_span(&T, &[3; 8], &[2; 8])]));
    let again = otlp::decode_request(otlp::encode_spans(&d.spans));
    assert_eq!(again.rejected, 0);
    assert_eq!(again.spans, d.spans);
    let batch = Batch::from_spans(d.spans.clone());
    use prost::Message as _;
    let decoded = ExportTraceServiceRequest::decode(batch.otlp_bytes().clone()).unwrap();
    assert_eq!(otlp::decode_request(decoded).spans, d.spans);
}

#[test]
fn missing_service_name_is_unknown_service() {
    let mut req = request(vec![wire_span(&T, &[2; 8], &[])]);
    req.resource_spans[0].resource = None;
    assert_eq!(otlp::decode_request(req).spans[0].service_name(), UNKNOWN_SERVICE);
}

#[test]
fn values_render_as_the_collector_does() {
    assert_eq!(Value::Int(-5).to_text(), "-5");
    assert_eq!(Value::Double(0.25).to_text(), "0.25");
    assert_eq!(Value::Double(3.0).to_text(), "3");
    assert_eq!(Value::Bool(true).to_text(), "true");
    assert_eq!(Value::Bytes(vec![1, 2, 3]).to_text(), "AQID");
    assert_eq!(Value::Array(vec![Value::from("a"), Value::Int(1)]).to_text(), r#"["a",1]"#);
    assert_eq!(Value::Map(vec![KeyValue::new("k", "v")]).to_text(), r#"{"k":"v"}"#);
    assert!(Value::Int(200).text_eq("200"));
    assert!(!Value::Int(200).text_eq("+200"));
    assert!(!Value::Str("200".into()).text_eq("201"));
}

#[test]
fn span_matching_follows_jaeger_semantics() {
    let d = otlp::decode_request(request(vec![wire_span(&T, &[2; 8], &[])]));
    let s = &d.spans[0];
    let q = |f: &dyn Fn(&mut TraceQuery)| {
        let mut q = TraceQuery { limit: 20, ..Default::default() };
        f(&mut q);
        span_matches(s, &q)
    };
    let tag = |k: &str, v: &str| TagFilter { key: k.into(), value: v.into() };
    assert!(q(&|q| q.service = Some("checkout".into())));
    assert!(!q(&|q| q.service = Some("other".into())));
    assert!(q(&|q| q.operation = Some("GET /users/{id}".into())));
    assert!(q(&|q| q.min_duration_nanos = Some(250_000_000)));
    assert!(!q(&|q| q.min_duration_nanos = Some(250_000_001)));
    assert!(!q(&|q| q.max_duration_nanos = Some(1)));
    assert!(q(&|q| q.tags = vec![tag("http.response.status_code", "200"), tag("error", "true")]));
    assert!(q(&|q| q.tags = vec![tag("span.kind", "server"), tag("otel.status_code", "ERROR")]));
    assert!(q(&|q| q.tags = vec![tag("service.name", "checkout"), tag("exception.type", "ValueError")]));
    assert!(q(&|q| q.tags = vec![tag("otel.scope.name", "lib"), tag("otel.status_description", "boom")]));
    assert!(!q(&|q| q.tags = vec![tag("http.response.status_code", "500")]));
    assert!(!q(&|q| q.tags = vec![tag("error", "false")]));
    assert!(!q(&|q| q.start_max_unix_nanos = Some(1)));
}

/// Decoded lists are exactly as long as their content: the head holds
/// spans as decoded, and prost grows lists by doubling while it decodes.
#[test]
fn decoded_lists_hold_no_spare_capacity() {
    use prost::Message as _;
    let mut span = wire_span(&T, &[2; 8], &[]);
    span.attributes = (0..11).map(|i| kv(&format!("attr.{i}"), pc::any_value::Value::IntValue(i))).collect();
    let items = (0..5).map(|i| pc::AnyValue { value: Some(pc::any_value::Value::IntValue(i)) }).collect();
    span.attributes.push(kv("list", pc::any_value::Value::ArrayValue(pc::ArrayValue { values: items })));
    span.events = (0..3).map(|_| span.events[0].clone()).collect();
    let wire = request(vec![span]).encode_to_vec();
    let decoded = otlp::decode_request(ExportTraceServiceRequest::decode(wire.as_slice()).unwrap());
    let span = &decoded.spans[0];
    assert_eq!((span.attributes.len(), span.attributes.capacity()), (12, 12));
    let Value::Array(items) = &span.attributes[11].value else { panic!("not an array") };
    assert_eq!((items.len(), items.capacity()), (5, 5));
    assert_eq!((span.events.len(), span.events.capacity()), (3, 3));
    assert_eq!(span.events[0].attributes.capacity(), span.events[0].attributes.len());
    assert_eq!(span.resource.attributes().len(), 1);
}

/// Keys and string values of up to 24 bytes are held inline: the memory
/// budget counts them as no heap bytes, a longer one as its allocation
/// (rounded up to mimalloc's 16-byte size classes).
#[test]
fn short_strings_cost_no_heap_bytes_in_the_size_estimate() {
    let span = |attributes: Vec<KeyValue>| {
        Span::test(TraceId::from_bytes(T).unwrap(), SpanId::from_bytes([2; 8]).unwrap(), "op")
            .with_attributes(attributes)
            .estimated_size()
    };
    let bare = span(vec![KeyValue::new("k", Value::Int(1))]);
    let decoded = decoded_span(vec![kv("http.request.method", s("GET")), kv("k", s(&"v".repeat(24)))]);
    assert!(decoded.attributes.iter().all(|kv| !kv.key.is_heap_allocated()));
    let two_inline = span(decoded.attributes.clone());
    let list = |n: usize| (n * std::mem::size_of::<KeyValue>()).div_ceil(16) * 16;
    // The second attribute adds its slot in the list, no more.
    assert_eq!(two_inline, bare - list(1) + list(2));
    let long = decoded_span(vec![kv(&"k".repeat(25), s(&"v".repeat(100)))]);
    assert_eq!(span(long.attributes.clone()), bare + 32 + 112);
}

/// Tenant names follow Cortex/Tempo's rules, so one is always a safe path
/// component and label value; batches belong to the default tenant unless
/// a receiver says otherwise.
#[test]
fn tenants_are_validated_and_batches_default_to_single_tenant() {
    use crate::{Batch, Tenant};
    for ok in ["acme", "team-1_prod", "a.b", "x!*'()", &"t".repeat(150)] {
        assert_eq!(Tenant::new(ok).map(|t| t.as_str().to_owned()), Ok(ok.to_owned()));
    }
    for bad in ["", ".", "..", "a/b", "a b", "ü", "a\n", &"t".repeat(151)] {
        let e = Tenant::new(bad).unwrap_err();
        assert!(e.to_string().contains("invalid tenant"), "{bad:?}: {e}");
    }
    assert_eq!(Tenant::default().as_str(), Tenant::DEFAULT);
    assert!(Tenant::default().is_default());
    let batch = Batch::default();
    assert!(batch.tenant().is_default());
    let batch = batch.with_tenant(Tenant::new("acme").unwrap());
    assert_eq!(batch.tenant().as_str(), "acme");
}

fn decoded_span(attributes: Vec<pc::KeyValue>) -> Span {
    let mut span = wire_span(&T, &[2; 8], &[]);
    span.attributes = attributes;
    otlp::decode_request(request(vec![span])).spans.remove(0)
}

fn s(v: &str) -> pc::any_value::Value {
    pc::any_value::Value::StringValue(v.into())
}

/// Issue 15: the demo's Redis showed up as a node called `0` and its SQLite
/// database as a file path.
#[test]
fn virtual_nodes_are_named_by_peer_service_then_system() {
    let name = |attrs: Vec<pc::KeyValue>| virtual_node_name(&decoded_span(attrs));
    assert_eq!(
        name(vec![kv("db.system.name", s("redis")), kv("db.namespace", s("0"))]).as_deref(),
        Some("redis")
    );
    assert_eq!(
        name(vec![kv("db.system", s("sqlite")), kv("db.namespace", s("/tmp/sightline-demo.x/worker.db"))])
            .as_deref(),
        Some("sqlite")
    );
    assert_eq!(
        name(vec![kv("db.system", s("sqlite")), kv("db.name", s("test.db"))]).as_deref(),
        Some("sqlite")
    );
    assert_eq!(
        name(vec![kv("db.system", s("postgresql")), kv("db.name", s("orders"))]).as_deref(),
        Some("postgresql/orders")
    );
    assert_eq!(
        name(vec![kv("peer.service", s("payments-db")), kv("db.system", s("postgresql"))]).as_deref(),
        Some("payments-db")
    );
    assert_eq!(name(vec![kv("messaging.system", s("nats"))]).as_deref(), Some("nats"));
    assert_eq!(name(vec![kv("db.name", s("inventory"))]).as_deref(), Some("inventory"));
    assert_eq!(name(vec![kv("db.name", s("C:\\data\\app.db"))]), None);
    assert_eq!(name(vec![kv("db.namespace", s("3"))]), None);
    assert_eq!(name(vec![kv("peer.service", s(" "))]), None);
    assert_eq!(name(vec![kv("http.method", s("GET"))]), None);
    assert!(is_database_call(&decoded_span(vec![kv("db.namespace", s("0"))])));
    assert!(!is_database_call(&decoded_span(vec![kv("messaging.system", s("nats"))])));
}

#[test]
fn tag_listings_cover_every_scope_and_the_window() {
    let mut span = decoded_span(vec![
        kv("http.method", s("GET")),
        kv("http.status_code", pc::any_value::Value::IntValue(200)),
    ]);
    span.links.push(Link {
        trace_id: TraceId::from_bytes([9; 16]).unwrap(),
        span_id: SpanId::from_bytes([9; 8]).unwrap(),
        trace_state: String::new(),
        attributes: vec![KeyValue::new("link.kind", "retry")],
        dropped_attributes_count: 0,
        flags: 0,
    });
    let mut late = span.clone();
    late.start_time_unix_nano += 1_000;
    late.attributes = vec![KeyValue::new("http.method", "POST"), KeyValue::new("http.status_code", "200")];
    let spans = [span, late];
    let all = TagQuery::default();
    let names = collect_tag_names(&spans, None, &all);
    let list = |scope| names.get(&scope).cloned().unwrap_or_default();
    assert_eq!(list(AttributeScope::Resource), ["service.name"]);
    assert_eq!(list(AttributeScope::Span), ["http.method", "http.status_code"]);
    assert_eq!(list(AttributeScope::Event), ["exception.type"]);
    assert_eq!(list(AttributeScope::Link), ["link.kind"]);
    assert!(!names.contains_key(&AttributeScope::Instrumentation));
    let only_span = collect_tag_names(&spans, Some(AttributeScope::Span), &all);
    assert_eq!(only_span.keys().collect::<Vec<_>>(), [&AttributeScope::Span]);

    // The int 200 and the string "200" are two values; sorted by type.
    assert_eq!(
        collect_tag_values(&spans, None, "http.status_code", &all),
        [Value::Str("200".into()), Value::Int(200)]
    );
    let early = TagQuery { start_max_unix_nanos: Some(spans[0].start_time_unix_nano), ..TagQuery::default() };
    assert_eq!(
        collect_tag_values(&spans, Some(AttributeScope::Span), "http.method", &early),
        [Value::from("GET")]
    );
    assert_eq!(collect_tag_values(&spans, Some(AttributeScope::Resource), "http.method", &all), []);
    let one = TagQuery { limit: 1, ..TagQuery::default() };
    assert_eq!(collect_tag_values(&spans, None, "http.method", &one).len(), 1);
    assert_eq!(AttributeScope::from_name("instrumentation"), Some(AttributeScope::Instrumentation));
    assert_eq!(AttributeScope::from_name("intrinsic"), None);
}

/// A search sent to a peer reads back exactly, tags with `=` and `&` in
/// them included; malformed pairs are refused with a reason.
#[test]
fn trace_query_pairs_round_trip() {
    let query = crate::TraceQuery {
        service: Some("checkout".into()),
        operation: Some("GET /a?b=c&d".into()),
        tags: vec![
            crate::TagFilter { key: "k=1".into(), value: "v&2".into() },
            crate::TagFilter { key: "error".into(), value: "true".into() },
        ],
        min_duration_nanos: Some(1),
        max_duration_nanos: Some(u64::MAX),
        start_min_unix_nanos: Some(1_700_000_000_123_456_789),
        start_max_unix_nanos: None,
        limit: 7,
    };
    let pairs = query.to_pairs();
    let back = crate::TraceQuery::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
    assert_eq!(back, query);
    assert!(crate::TraceQuery::from_pairs([("tagKey", "a")]).is_err());
    assert!(crate::TraceQuery::from_pairs([("tagValue", "a")]).is_err());
    assert!(crate::TraceQuery::from_pairs([("startNs", "x")]).is_err());
    assert!(crate::TraceQuery::from_pairs([("bogus", "1")]).is_err());
}
