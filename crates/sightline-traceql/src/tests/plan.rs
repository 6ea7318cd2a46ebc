//! What the pre-filter pushes down for typical queries. (That it never
//! loses a match is checked over the whole conformance table in
//! `conformance.rs`.)

use sightline_model::{TagFilter, TraceQuery};

use super::fixtures::trace_id;
use crate::{AttributePushdown, Candidates, parse};

use AttributePushdown::{Never, ScalarValues};

fn candidates(query: &str, mode: AttributePushdown) -> Candidates {
    parse(query).expect("parses").prefilter().candidates(mode)
}

fn tag(key: &str, value: &str) -> TagFilter {
    TagFilter { key: key.into(), value: value.into() }
}

#[test]
fn one_span_conditions_become_one_search() {
    let got = candidates(
        r#"{ resource.service.name = "frontend" && name = "GET /checkout" && duration > 100ms && kind = server }"#,
        Never,
    );
    let want = TraceQuery {
        service: Some("frontend".into()),
        operation: Some("GET /checkout".into()),
        min_duration_nanos: Some(100_000_001),
        tags: vec![tag("span.kind", "server")],
        ..TraceQuery::default()
    };
    assert_eq!(got, Candidates::Queries(vec![want]));
    let got = candidates("{ status = error && duration <= 2s && duration >= 1s }", Never);
    let want = TraceQuery {
        tags: vec![tag("error", "true")],
        min_duration_nanos: Some(1_000_000_000),
        max_duration_nanos: Some(2_000_000_000),
        ..TraceQuery::default()
    };
    assert_eq!(got, Candidates::Queries(vec![want]));
}

#[test]
fn alternatives_become_several_searches() {
    let Candidates::Queries(qs) = candidates(r#"{ name = "a" || name = "b" }"#, Never) else {
        panic!("queries")
    };
    let ops: Vec<_> = qs.iter().map(|q| q.operation.as_deref()).collect();
    assert_eq!(ops, vec![Some("a"), Some("b")]);
    // Too many alternatives: no narrowing rather than a flood of searches.
    let many: Vec<String> = (0..20).map(|i| format!("name = \"{i}\"")).collect();
    assert_eq!(candidates(&format!("{{ {} }}", many.join(" || ")), Never), Candidates::Everything);
}

#[test]
fn the_most_selective_requirement_is_pushed() {
    let Candidates::Queries(qs) =
        candidates(r#"{ status = error } >> { resource.service.name = "db" && name = "query" }"#, Never)
    else {
        panic!("queries")
    };
    assert_eq!((qs[0].service.as_deref(), qs[0].operation.as_deref()), (Some("db"), Some("query")));
    // Negated structural operators need only the right-hand side.
    let Candidates::Queries(qs) = candidates(r#"{ name = "x" } !> { name = "y" }"#, Never) else {
        panic!("queries")
    };
    assert_eq!(qs[0].operation.as_deref(), Some("y"));
    assert_eq!(candidates(r#"{ name = "x" } !> { }"#, Never), Candidates::Everything);
    // A pipeline stage after a wrapped pipeline still narrows.
    let Candidates::Queries(qs) = candidates(r#"({ name = "a" } | count() > 1) && { name = "b" }"#, Never)
    else {
        panic!("queries")
    };
    assert_eq!(qs.len(), 1);
}

#[test]
fn attribute_equalities_only_when_asked() {
    let q = r#"{ span.http.method = "GET" && .http.status_code = 200 && span.ok = true }"#;
    assert_eq!(candidates(q, Never), Candidates::Everything);
    let want = TraceQuery {
        tags: vec![tag("http.method", "GET"), tag("http.status_code", "200"), tag("ok", "true")],
        ..TraceQuery::default()
    };
    assert_eq!(candidates(q, ScalarValues), Candidates::Queries(vec![want]));
    // Links and instrumentation scopes are not in the tag search.
    assert_eq!(
        candidates(r#"{ link.kind = "x" && instrumentation.y = "z" }"#, ScalarValues),
        Candidates::Everything
    );
}

#[test]
fn impossible_queries_fetch_nothing() {
    for q in [
        "{ false }",
        r#"{ name = "a" && name = "b" }"#,
        "{ duration < 0s }",
        "{ duration > 2s && duration < 1s }",
        "{ status = ok && status = error }",
        "{ false } >> { }",
    ] {
        let parsed = parse(q).expect("parses");
        assert!(parsed.matches_nothing(), "{q}");
        assert_eq!(parsed.prefilter().candidates(Never), Candidates::Nothing, "{q}");
    }
    // Attribute equalities never contradict: arrays hold several values.
    assert!(!parse(r#"{ .tags = "a" && .tags = "b" }"#).expect("parses").matches_nothing());
}

#[test]
fn conditions_that_narrow_nothing() {
    for q in [
        "{ }",
        r#"{ !(name = "a") }"#,
        r#"{ name != "a" }"#,
        r#"{ name =~ "a.*" }"#,
        "{ status = unset }",
        r#"{ name = "a" || .x > 1 }"#,
        "count() > 2",
    ] {
        assert_eq!(candidates(q, ScalarValues), Candidates::Everything, "{q}");
    }
}

#[test]
fn trace_ids_are_exposed() {
    let q = parse(r#"{ trace:id = "a01" } && { }"#).expect("parses");
    assert_eq!(q.prefilter().trace_ids(), Some(vec![trace_id("00000000000000000000000000000a01")]));
    assert_eq!(parse("{ }").expect("parses").prefilter().trace_ids(), None);
}

#[test]
fn single_filters_of_store_conditions_are_exact() {
    for q in [
        "{ }",
        r#"{ resource.service.name = "checkout" && name = "PlaceOrder" && duration > 200ms }"#,
        r#"{ name = "a" }"#,
        r#"{ "a" = name && 1s <= duration && duration < 2s }"#,
        r#"{ span:name = "a" && span:duration = 5ms }"#,
        r#"{ resource.service.name = "a" } | select(span.x)"#,
    ] {
        assert!(parse(q).expect("parses").prefilter().exact, "{q}");
    }
}

#[test]
fn queries_the_store_search_only_narrows_are_not_exact() {
    for q in [
        // The store's synthetic tags also match attributes named so.
        "{ status = error }",
        "{ kind = server }",
        // Tag search looks in every scope and compares arrays as text.
        r#"{ span.http.method = "GET" }"#,
        r#"{ .x = "a" }"#,
        // The store stands in `unknown_service` for a missing name.
        r#"{ resource.service.name = "unknown_service" }"#,
        r#"{ resource.service.name = "" }"#,
        // Alternatives, several spans, structure, aggregates, grouping.
        r#"{ name = "a" || name = "b" }"#,
        r#"{ name = "a" } && { name = "b" }"#,
        r#"{ name = "a" } >> { name = "b" }"#,
        r#"{ name = "a" } | count() > 2"#,
        r#"{ name = "a" } | by(span.x)"#,
        r#"{ name != "a" }"#,
        r#"{ name =~ "a.*" }"#,
        r#"{ trace:duration > 1s }"#,
        r#"{ rootName = "a" }"#,
    ] {
        assert!(!parse(q).expect("parses").prefilter().exact, "{q}");
    }
}

/// The store reads a missing or empty `service.name` as `unknown_service`,
/// so `resource.service.name = ""` must not become a store service search,
/// which would find nothing while TraceQL matches the span.
#[test]
fn an_empty_service_name_is_not_a_store_service_search() {
    use std::sync::Arc;

    use sightline_model::{KeyValue, Resource, Span, SpanId, SpanKind, span_matches};

    let resource = Arc::new(Resource::new(vec![KeyValue::new("service.name", "")], 0, String::new()));
    let span = Span::test(
        trace_id("00000000000000000000000000000e01"),
        SpanId::from_bytes(1u64.to_be_bytes()).expect("non-zero"),
        "op",
    )
    .with_flags(1)
    .with_kind(SpanKind::Server)
    .with_times(1_700_000_000_000_000_000, 1_700_000_000_100_000_000)
    .with_resource(&resource);
    let trace = [span];
    let q = parse(r#"{ resource.service.name = "" }"#).expect("parses");
    assert!(q.evaluate(&trace, 3).expect("evaluates").is_some(), "TraceQL matches the empty name");
    for mode in [Never, ScalarValues] {
        let found = match q.prefilter().candidates(mode) {
            Candidates::Nothing => false,
            Candidates::Everything => true,
            Candidates::Queries(qs) => qs.iter().any(|tq| trace.iter().any(|s| span_matches(s, tq))),
        };
        assert!(found, "{mode:?}: {:?}", q.prefilter().candidates(mode));
    }
}
