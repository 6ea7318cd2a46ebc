//! The shape of results: spansets, `matched`, the spans-per-spanset limit,
//! the attributes spans and spansets carry, and the trace summary — as
//! Tempo's search response has them.

use std::sync::Arc;

use sightline_model::{KeyValue, Resource, UNKNOWN_SERVICE, Value};

use super::fixtures::{fixture, span_id};
use crate::{TraceMatch, parse};

fn run(query: &str, trace: usize, spss: usize) -> TraceMatch {
    let fx = fixture();
    parse(query).expect("parses").evaluate(&fx.traces[trace], spss).expect("evaluates").expect("matches")
}

fn kv(key: &str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(key, value)
}

#[test]
fn spans_carry_the_attributes_the_query_reads() {
    let m = run(
        r#"{ span.http.method = "POST" && status = error } | select(resource.host.cpus, event:name, duration)"#,
        0,
        3,
    );
    assert_eq!(m.spansets.len(), 1);
    let span = &m.spansets[0].spans[0];
    assert_eq!(span.index, 1, "B");
    // In query order; keyed by bare name; duration is a response field.
    assert_eq!(
        span.attributes,
        vec![
            kv("http.method", "POST"),
            kv("status", "error"),
            kv("host.cpus", 4i64),
            kv("event:name", "exception")
        ]
    );
    // Absent attributes are left out, not written as nil.
    let m = run("{ .http.status_code >= 500 } | select(span.db.system, span:parentID, event.attempt)", 0, 3);
    let c = &m.spansets[0].spans[1];
    assert_eq!(c.index, 2, "C");
    assert_eq!(
        c.attributes,
        vec![kv("http.status_code", 500i64), kv("span:parentID", "00000000000000b1")],
        "C has no events"
    );
    let b = &m.spansets[0].spans[0];
    assert_eq!(b.attributes.last(), Some(&kv("attempt", 2i64)), "the first event that has it");
}

#[test]
fn values_render_as_tempo_renders_them() {
    let m = run(
        "{ kind = server } | select(event:timeSinceStart, link:traceID, span:childCount, nestedSetLeft, span.ratio, span.tags)",
        0,
        3,
    );
    let a = &m.spansets[0].spans[0].attributes;
    assert_eq!(
        a,
        &vec![
            kv("kind", "server"),
            kv("span:childCount", 2i64),
            kv("nestedSetLeft", 1i64),
            kv("ratio", 0.5),
            kv("tags", Value::Array(vec![Value::from("a"), Value::from("b")])),
        ]
    );
    let c = &m.spansets[0].spans[1].attributes;
    assert!(c.contains(&kv("link:traceID", "b002")), "trace ids without leading zeros: {c:?}");
    let m = run("{ event:timeSinceStart > 0s }", 0, 3);
    assert_eq!(
        m.spansets[0].spans[0].attributes,
        vec![kv("event:timeSinceStart", "50ms")],
        "Go duration text"
    );
}

#[test]
fn by_splits_spansets_and_labels_them() {
    let m = run("{ } | by(resource.service.name) | count() > 1", 0, 3);
    let sets: Vec<(Vec<usize>, usize, &Vec<KeyValue>)> = m
        .spansets
        .iter()
        .map(|s| (s.spans.iter().map(|sp| sp.index).collect(), s.matched, &s.attributes))
        .collect();
    assert_eq!(
        sets,
        vec![
            (vec![0, 1, 4], 3, &vec![kv("by(resource.service.name)", "frontend"), kv("count()", 3i64)]),
            (vec![2, 3], 2, &vec![kv("by(resource.service.name)", "payments"), kv("count()", 2i64)]),
        ]
    );
    // Spans without the value form their own group, labelled nil.
    let m = run("{ } | by(span.http.method)", 0, 3);
    let labels: Vec<&Value> = m.spansets.iter().map(|s| &s.attributes[0].value).collect();
    assert_eq!(labels, vec![&Value::from("GET"), &Value::from("POST"), &Value::from("nil")]);
    assert_eq!(m.spansets[2].spans.iter().map(|s| s.index).collect::<Vec<_>>(), vec![2, 3, 4]);
    // coalesce() merges the groups back and drops their labels.
    let m = run("{ } | by(span.http.method) | coalesce()", 0, 3);
    assert_eq!((m.spansets.len(), m.spansets[0].matched), (1, 5));
    assert!(m.spansets[0].attributes.is_empty());
}

#[test]
fn aggregates_are_reported_with_their_value() {
    let m = run("{ } | avg(duration) > 100ms", 0, 3);
    assert_eq!(m.spansets[0].attributes, vec![kv("avg(duration)", "328ms")]);
    let m = run("{ .http.status_code != nil } | avg(.http.status_code) > 0", 0, 3);
    assert_eq!(
        m.spansets[0].attributes,
        vec![kv("avg(.http.status_code)", 1202.0 / 3.0)],
        "ints average to a float"
    );
    let m = run("{ } | max(span.db.rows) = 3", 0, 3);
    assert_eq!(m.spansets[0].attributes, vec![kv("max(span.db.rows)", 3i64)]);
    let m = run("{ } | sum(duration) > 1s | min(duration) < 50ms", 0, 3);
    assert_eq!(m.spansets[0].attributes, vec![kv("sum(duration)", "1.64s"), kv("min(duration)", "40ms")]);
}

#[test]
fn spans_per_spanset_limits_the_list_not_matched() {
    let m = run("{ }", 0, 2);
    assert_eq!(m.spansets[0].matched, 5);
    assert_eq!(m.spansets[0].spans.iter().map(|s| s.index).collect::<Vec<_>>(), vec![0, 1]);
    assert!(run("{ }", 0, 0).spansets[0].spans.is_empty());
}

#[test]
fn trace_summary() {
    let m = run("{ }", 0, 3);
    assert_eq!(m.root_service_name.as_deref(), Some("frontend"));
    assert_eq!(m.root_span_name.as_deref(), Some("GET /checkout"));
    assert_eq!(m.duration_nanos, 1_000_000_000);
    assert_eq!(m.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(
        run("{ }", 2, 3).root_service_name.as_deref(),
        Some(UNKNOWN_SERVICE),
        "root without service.name"
    );
    assert_eq!(run("{ }", 3, 3).root_span_name.as_deref(), Some("job-b"), "last root wins");
    // A trace whose root has not arrived yet.
    let fx = fixture();
    let orphans: Vec<_> = fx.traces[1].iter().filter(|s| s.span_id == span_id(0x23)).cloned().collect();
    let m = parse("{ }").expect("parses").evaluate(&orphans, 3).expect("evaluates").expect("matches");
    assert_eq!((m.root_service_name, m.root_span_name), (None, None));
    assert_eq!(
        parse("{ rootName = \"\" }")
            .expect("parses")
            .evaluate(&orphans, 3)
            .expect("ok")
            .map(|m| m.spansets.len()),
        Some(1)
    );
}

#[test]
fn span_order_and_empty_input() {
    let fx = fixture();
    let q = parse("{ status = error }").expect("parses");
    assert_eq!(q.evaluate(&[], 3).expect("ok"), None);
    // Spans in any order give the same spans (by index into the input).
    let mut reversed = fx.traces[4].clone();
    reversed.reverse();
    let m = q.evaluate(&reversed, 10).expect("ok").expect("matches");
    let names: Vec<&str> = m.spansets[0].spans.iter().map(|s| reversed[s.index].name.as_str()).collect();
    assert_eq!(names, vec!["db-query", "service-call", "api-request"]);
    let q = parse("{ } >> { status = error }").expect("parses");
    let m = q.evaluate(&reversed, 10).expect("ok").expect("matches");
    let names: Vec<&str> = m.spansets[0].spans.iter().map(|s| reversed[s.index].name.as_str()).collect();
    assert_eq!(names, vec!["db-query", "service-call"]);
}

#[test]
fn hints() {
    let q = parse("{ } with(most_recent=true, sample=0.1)").expect("parses");
    assert!(q.most_recent());
    assert_eq!(q.hint("sample"), Some(&crate::Literal::Float(0.1)));
    assert!(!parse("{ } with(most_recent=false)").expect("parses").most_recent());
}

/// A root whose `service.name` is missing or not a string: the intrinsic
/// is the service the search results show for it (`unknown_service`, as
/// `Resource::service_name` reads it), so a query for what a search
/// showed finds the trace.
#[test]
fn root_service_name_is_the_service_search_results_show() {
    let fx = fixture();
    // T3's root has no service.name; the copy's has a number.
    let mut numbered = fx.traces[2].clone();
    let resource = Arc::new(Resource::new(vec![kv("service.name", 5i64)], 0, String::new()));
    for span in &mut numbered {
        span.resource = Arc::clone(&resource);
    }
    for trace in [&fx.traces[2], &numbered] {
        let shown = trace[0].resource.service_name();
        assert_eq!(shown, UNKNOWN_SERVICE);
        let m = parse("{ }").expect("parses").evaluate(trace, 3).expect("evaluates").expect("matches");
        assert_eq!(m.root_service_name.as_deref(), Some(shown));
        let q = parse(r#"{ rootServiceName = "unknown_service" }"#).expect("parses");
        assert!(q.evaluate(trace, 3).expect("evaluates").is_some());
        assert!(
            parse(r#"{ rootServiceName = "" }"#)
                .expect("parses")
                .evaluate(trace, 3)
                .expect("evaluates")
                .is_none()
        );
    }
}
