//! The conformance table: query → the spans it returns over the fixture
//! traces (see `fixtures.rs` for the traces and their labels).
//!
//! Expectations follow Tempo's semantics — its TraceQL docs, its engine
//! (`ast_execute.go`) and its block format (`vparquet5`: nested sets,
//! root span, trace duration) — worked out by hand for each row, not
//! taken from this crate's output. Rows that exercise a documented
//! difference from Tempo say so.

use sightline_model::span_matches;

use super::fixtures::{Fixture, fixture};
use crate::{AttributePushdown, Candidates, parse};

const ALL: &[&str] = &[
    "A", "B", "C", "D", "E", "P", "Q", "R", "L", "M1", "M2", "N1", "N2", "N3", "S1", "S2", "S3", "S4", "S5",
];
const T1: &[&str] = &["A", "B", "C", "D", "E"];
const T4: &[&str] = &["M1", "M2", "N1", "N2", "N3"];
const T5: &[&str] = &["S1", "S2", "S3", "S4", "S5"];

fn cat(parts: &[&[&'static str]]) -> Vec<&'static str> {
    parts.iter().flat_map(|p| p.iter().copied()).collect()
}

fn all_but(excluded: &[&str]) -> Vec<&'static str> {
    ALL.iter().copied().filter(|l| !excluded.contains(l)).collect()
}

/// Runs `query` over every fixture trace; the labels of all returned spans.
fn run(fx: &Fixture, query: &str) -> Vec<&'static str> {
    let q = parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
    let mut out = Vec::new();
    for trace in &fx.traces {
        let m = q.evaluate(trace, usize::MAX).unwrap_or_else(|e| panic!("{query}: {e}"));
        if let Some(m) = m {
            for set in &m.spansets {
                assert_eq!(set.matched, set.spans.len(), "{query}");
                out.extend(set.spans.iter().map(|s| fx.label(&trace[s.index])));
            }
        }
    }
    out
}

fn table() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        // ---- filters, intrinsics ----
        ("{ }", ALL.to_vec()),
        ("{ true }", ALL.to_vec()),
        ("{ false }", vec![]),
        ("{ 1 = 2 }", vec![]),
        ("{ 1 + 1 = 2 }", ALL.to_vec()),
        (r#"{ "a" =~ "a|b" }"#, ALL.to_vec()),
        ("{ nil = nil }", vec![]),
        (r#"{ name = "charge" }"#, vec!["C"]),
        (r#"{ name = "SELECT\u0020c\x61rds" }"#, vec!["D"]),
        (r#"{ span:name = "charge" }"#, vec!["C"]),
        (r#"{ resource.service.name = "frontend" }"#, vec!["A", "B", "E"]),
        (r#"{ .service.name = "payments" }"#, vec!["C", "D"]),
        ("{ status = error }", vec!["B", "C", "R", "N2", "S1", "S2", "S3"]),
        ("{ status = ok }", vec!["D", "E", "Q", "M1", "M2", "S4"]),
        ("{ span:status = unset }", vec!["A", "P", "L", "N1", "N3", "S5"]),
        ("{ status != error }", all_but(&["B", "C", "R", "N2", "S1", "S2", "S3"])),
        ("{ span:status = error && kind = client }", vec!["B", "S2", "S3"]),
        ("{ kind = server }", vec!["A", "C", "S1"]),
        ("{ span:kind = unspecified }", vec!["L"]),
        ("{ kind = producer }", vec!["P"]),
        ("{ kind = consumer }", vec!["Q"]),
        ("{ kind = internal }", vec!["E", "R", "M1", "M2", "N1", "N2", "N3", "S4"]),
        (r#"{ statusMessage = "card declined" }"#, vec!["B"]),
        (r#"{ span:statusMessage != "" }"#, vec!["B", "R"]),
        ("{ duration > 250ms }", vec!["A", "B", "L", "S1", "S2"]),
        ("{ span:duration >= 250ms }", vec!["A", "B", "C", "L", "S1", "S2"]),
        ("{ duration <= 10ms }", vec!["P", "R", "S5"]),
        ("{ duration = 300ms }", vec!["B", "S2"]),
        ("{ duration > 2 * 100ms }", vec!["A", "B", "C", "L", "S1", "S2"]),
        ("{ duration < 0.01s }", vec!["R"]),
        ("{ traceDuration > 500ms }", cat(&[T1, &["L"]])),
        ("{ trace:duration < 100ms }", vec!["P", "Q", "R"]),
        // The root is the last span without a parent: job-b.
        (r#"{ rootName = "job-b" }"#, T4.to_vec()),
        (r#"{ trace:rootName = "job-a" }"#, vec![]),
        (r#"{ rootServiceName = "frontend" }"#, T1.to_vec()),
        // A root without a string `service.name` is `unknown_service`, as
        // search results show it (Tempo: `""`).
        (r#"{ trace:rootService = "unknown_service" }"#, vec!["L"]),
        (r#"{ trace:rootService = "" }"#, vec![]),
        (r#"{ trace:id = "a01" }"#, T1.to_vec()),
        (r#"{ trace:id = "00000000000000000000000000000A01" }"#, T1.to_vec()),
        (r#"{ trace:id != "a01" }"#, all_but(T1)),
        (r#"{ span:id = "00000000000000c1" }"#, vec!["C"]),
        (r#"{ span:id = "c1" }"#, vec!["C"]),
        (r#"{ span:parentID = "b1" }"#, vec!["C"]),
        (r#"{ span:parentID = "0000000000000000" }"#, vec!["A", "P", "L", "M1", "M2", "S1"]),
        ("{ span:childCount = 0 }", vec!["D", "E", "Q", "R", "L", "N1", "N2", "N3", "S4", "S5"]),
        ("{ span:childCount > 1 }", vec!["A", "M1", "S1"]),
        ("{ nestedSetParent = -1 }", vec!["A", "P", "L", "M1", "M2", "S1"]),
        ("{ nestedSetLeft = 0 }", vec!["R"]),
        ("{ nestedSetLeft = 3 && nestedSetRight = 6 }", vec!["C", "S3"]),
        ("{ nestedSetLeft = 7 && nestedSetParent = -1 }", vec!["M2"]),
        // ---- events, links, instrumentation ----
        (r#"{ event:name = "exception" }"#, vec!["B"]),
        (r#"{ event.exception.message = "declined" }"#, vec!["B"]),
        ("{ event.exception.escaped = true }", vec!["B"]),
        (r#"{ event:name = "retry" && event.attempt = 2 }"#, vec!["B"]),
        // One event must satisfy the whole condition.
        (r#"{ event:name = "exception" && event.attempt = 2 }"#, vec![]),
        ("{ event:timeSinceStart > 100ms }", vec!["B"]),
        ("{ event:timeSinceStart < 10ms }", vec!["Q"]),
        (r#"{ link:traceID = "b002" }"#, vec!["C"]),
        (r#"{ link:spanID = "0000000000000021" }"#, vec!["C"]),
        (r#"{ link.kind = "follows" }"#, vec!["C"]),
        (r#"{ instrumentation:name = "grpc" }"#, vec!["C"]),
        (r#"{ instrumentation:version = "1.2.0" }"#, vec!["A", "B", "E"]),
        (r#"{ instrumentation.lang = "rust" }"#, vec!["A", "B", "E"]),
        // ---- attribute types ----
        (r#"{ span.http.method = "GET" }"#, vec!["A"]),
        (r#"{ .http.method =~ "P.*" }"#, vec!["B"]),
        (r#"{ .http.method =~ "G" }"#, vec![]),
        (r#"{ .http.method !~ "G.*" }"#, vec!["B"]),
        ("{ span.http.status_code >= 500 }", vec!["B", "C", "R"]),
        ("{ .http.status_code = 200 }", vec!["A", "L"]),
        ("{ span.ratio < 1 }", vec!["A"]),
        ("{ span.ratio = 0.5 }", vec!["A"]),
        ("{ span.cached = false }", vec!["A"]),
        ("{ .retry = true }", vec!["R"]),
        ("{ .retry }", vec!["R"]),
        ("{ !.cached }", vec!["A"]),
        (r#"{ span.tags = "b" }"#, vec!["A"]),
        (r#"{ span.tags != "c" }"#, vec!["A"]),
        (r#"{ span.tags != "a" }"#, vec![]),
        (r#"{ span.tags =~ "[ab]" }"#, vec!["A"]),
        ("{ span.codes = 404 }", vec!["A"]),
        ("{ span.codes > 300 }", vec!["A"]),
        ("{ span.codes < 100 }", vec![]),
        ("{ .floats > 2 }", vec!["L"]),
        ("{ .flags = false }", vec!["L"]),
        ("{ .blob != nil }", vec![]),
        ("{ .blob = nil }", ALL.to_vec()),
        ("{ .mixed = 1 }", vec![]),
        (r#"{ span."attribute with space" = "x" }"#, vec!["B"]),
        (r#"{ ."attribute with space" = "x" }"#, vec!["B"]),
        ("{ resource.host.cpus = 4 }", vec!["A", "B", "E"]),
        ("{ span.missing = nil }", ALL.to_vec()),
        ("{ .http.method != nil }", vec!["A", "B"]),
        ("{ nil != .http.method }", vec!["A", "B"]),
        (r#"{ .deployment.environment = "production" }"#, T1.to_vec()),
        (r#"{ resource.deployment.environment = "staging" }"#, vec!["P", "Q", "R"]),
        (r#"{ span.deployment.environment = "production" }"#, vec![]),
        ("{ .http.status_code < maxInt && .http.status_code > minInt }", vec!["A", "B", "C", "R", "L"]),
        // ---- arithmetic ----
        ("{ .http.status_code - 2 = 500 }", vec!["B"]),
        ("{ span.http.status_code / 100 = 5 }", vec!["B", "C", "R"]),
        ("{ .http.status_code % 100 = 0 }", vec!["A", "C", "L"]),
        ("{ .db.rows * 2 = 6 }", vec!["D"]),
        ("{ .db.rows + 1 = 4 }", vec!["D"]),
        // 3 ^ 2; Tempo's integer `^` swaps its operands (see value.rs).
        ("{ .db.rows ^ 2 = 9 }", vec!["D"]),
        ("{ -.db.rows = -3 }", vec!["D"]),
        ("{ .ratio * 4 = 2 }", vec!["A"]),
        // ---- logic; && and || bind equally, left to right ----
        (r#"{ .http.method = "GET" || .db.system = "postgresql" }"#, vec!["A", "D"]),
        (r#"{ .http.method = "POST" && status = error }"#, vec!["B"]),
        ("{ status = ok || kind = server && duration > 100ms }", vec!["A", "C", "S1"]),
        ("{ !(status = error) && kind = client }", vec!["D", "S5"]),
        // ---- spanset operators ----
        (r#"{ .db.system = "postgresql" } && { .http.method = "GET" }"#, vec!["A", "D"]),
        (r#"{ name = "charge" } || { name = "publish" }"#, vec!["C", "P"]),
        (
            r#"{ resource.deployment.environment = "production" } && { resource.deployment.environment = "staging" }"#,
            vec![],
        ),
        (r#"{ name = "GET /checkout" } > { }"#, vec!["B", "E"]),
        ("{ } > { status = error }", vec!["B", "C", "N2", "S2", "S3"]),
        ("{ status = error } < { }", vec!["A", "B", "M1", "S1", "S2"]),
        (r#"{ resource.service.name = "frontend" } >> { status = error }"#, vec!["B", "C"]),
        ("{ status = error } << { }", vec!["A", "B", "M1", "S1", "S2"]),
        (r#"{ } !< { resource.service.name = "payments" }"#, vec!["D"]),
        (r#"{ name = "step-1" } ~ { }"#, vec!["N2"]),
        // Roots count as siblings of each other (both have parent -1).
        ("{ } ~ { }", vec!["B", "E", "M1", "M2", "N1", "N2", "S2", "S5"]),
        (r#"{ name = "job-a" } ~ { name = "job-b" }"#, vec!["M2"]),
        ("{ } !~ { }", vec!["A", "C", "D", "P", "Q", "R", "L", "N3", "S1", "S3", "S4"]),
        ("{ } !> { }", vec!["A", "P", "R", "L", "M1", "M2", "S1"]),
        ("{ } !>> { status = error }", vec!["R", "S1"]),
        ("{ status = error } !<< { }", all_but(&["A", "B", "M1", "S1", "S2"])),
        ("{ status = error } !< { status = error }", vec!["C", "R", "N2", "S3"]),
        (r#"{ name = "no such span" } !< { name = "charge" }"#, vec!["C"]),
        (r#"{ name = "POST /pay" } &> { }"#, vec!["B", "C"]),
        (r#"{ name = "charge" } &< { }"#, vec!["B", "C"]),
        (r#"{ name = "GET /checkout" } &>> { status = error }"#, vec!["A", "B", "C"]),
        ("{ status = error } &<< { kind = server }", vec!["A", "B", "C", "S1", "S2", "S3"]),
        (r#"{ name = "step-1" } &~ { }"#, vec!["N1", "N2"]),
        // ---- pipelines ----
        ("{ status = error } | count() > 1", vec!["B", "C", "S1", "S2", "S3"]),
        ("{ } | count() = 1", vec!["L"]),
        ("count() > 4", cat(&[T1, T4, T5])),
        ("{ } | avg(duration) > 200ms", cat(&[T1, &["L"], T5])),
        ("avg(duration) > 200ms", cat(&[T1, &["L"], T5])),
        ("{ } | max(duration) >= 2s", vec!["L"]),
        ("{ } | min(duration) < 10ms", vec!["P", "Q", "R"]),
        ("{ } | sum(duration) = 35ms", vec!["P", "Q", "R"]),
        ("{ .http.status_code != nil } | sum(.http.status_code) > 1000", vec!["A", "B", "C"]),
        ("{ } | max(.http.status_code) > 500", cat(&[T1, &["P", "Q", "R"]])),
        ("{ status = error } | by(resource.service.name) | count() > 1", vec!["S1", "S2", "S3"]),
        ("{ } | by(kind) | count() >= 3", cat(&[T4, &["S2", "S3", "S5"]])),
        (
            "{ status = error } | by(resource.service.name) | coalesce() | count() > 1",
            vec!["B", "C", "S1", "S2", "S3"],
        ),
        ("by(resource.service.name) | count() = 2", vec!["C", "D"]),
        ("{ } | select(span.http.method)", ALL.to_vec()),
        ("{ status = error } | { kind = client }", vec!["B", "S2", "S3"]),
        ("({ status = error } | count() > 1) && { kind = server }", vec!["A", "B", "C", "S1", "S2", "S3"]),
        ("({ } | by(kind)) && { }", ALL.to_vec()),
        (r#"{ name = "charge" } with(most_recent=true)"#, vec!["C"]),
        // Comments are skipped, as Go's scanner does.
        ("{ name = `charge` } // the payment", vec!["C"]),
    ]
}

#[test]
fn conformance_table() {
    let fx = fixture();
    let mut failures = Vec::new();
    for (query, expected) in table() {
        let mut got = run(&fx, query);
        let mut want = expected;
        got.sort_unstable();
        want.sort_unstable();
        if got != want {
            failures.push(format!("{query}\n  want {want:?}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{} rows differ:\n{}", failures.len(), failures.join("\n"));
}

/// Every spanset operator and every intrinsic appears in the table.
#[test]
fn table_covers_operators_and_intrinsics() {
    let queries: Vec<crate::Query> = table().iter().map(|(q, _)| parse(q).expect("parses")).collect();
    for op in crate::SpansetOp::ALL {
        let used = queries.iter().any(|q| uses_op(q.root(), op));
        assert!(used, "no row uses {}", op.text());
    }
    for intrinsic in crate::Intrinsic::ALL {
        let mut used = false;
        for q in &queries {
            q.root().visit_attributes(&mut |a| used |= *a == crate::Attribute::Intrinsic(intrinsic));
        }
        assert!(used, "no row reads {}", intrinsic.name());
    }
}

fn uses_op(e: &crate::SpansetExpr, op: crate::SpansetOp) -> bool {
    match e {
        crate::SpansetExpr::Filter(_) => false,
        crate::SpansetExpr::Op(o, l, r) => *o == op || uses_op(l, op) || uses_op(r, op),
        crate::SpansetExpr::Pipeline(stages) => stages.iter().any(|s| match s {
            crate::Stage::Spansets(e) => uses_op(e, op),
            _ => false,
        }),
    }
}

/// The pre-filter never loses a match: every trace the query matches is
/// found by one of the candidate store searches (`span_matches` is the
/// store's definition of a search hit).
#[test]
fn prefilter_keeps_every_match() {
    let fx = fixture();
    for (query, _) in table() {
        let q = parse(query).expect("parses");
        for trace in &fx.traces {
            let matched = q.evaluate(trace, 1).expect("evaluates").is_some();
            for mode in [AttributePushdown::Never, AttributePushdown::ScalarValues] {
                let found = match q.prefilter().candidates(mode) {
                    Candidates::Nothing => false,
                    Candidates::Everything => true,
                    Candidates::Queries(qs) => qs.iter().any(|tq| trace.iter().any(|s| span_matches(s, tq))),
                };
                // Tag search compares whole values, so an array holding
                // the value is missed; that mode documents it.
                let arrays = ["tags", "codes", "flags", "floats"].iter().any(|a| query.contains(a));
                if matched && !found && !(mode == AttributePushdown::ScalarValues && arrays) {
                    panic!("{query}: {mode:?} candidates miss trace {}", trace[0].trace_id);
                }
            }
            if let Some(ids) = q.prefilter().trace_ids() {
                assert!(!matched || ids.contains(&trace[0].trace_id), "{query}");
            }
        }
    }
}

/// An exact pre-filter finds only matches: every trace a candidate search
/// finds is one the query matches (the converse of
/// [`prefilter_keeps_every_match`]), so a search may fetch just `limit`.
#[test]
fn exact_prefilters_find_only_matches() {
    let fx = fixture();
    let mut exact = 0;
    for (query, _) in table() {
        let q = parse(query).expect("parses");
        if !q.prefilter().exact {
            continue;
        }
        exact += 1;
        for trace in &fx.traces {
            let matched = q.evaluate(trace, 1).expect("evaluates").is_some();
            for mode in [AttributePushdown::Never, AttributePushdown::ScalarValues] {
                let found = match q.prefilter().candidates(mode) {
                    Candidates::Nothing => false,
                    Candidates::Everything => true,
                    Candidates::Queries(qs) => qs.iter().any(|tq| trace.iter().any(|s| span_matches(s, tq))),
                };
                assert_eq!(found, matched, "{query}: {mode:?} on trace {}", trace[0].trace_id);
            }
        }
    }
    assert!(exact >= 3, "the table has {exact} exact queries");
}
