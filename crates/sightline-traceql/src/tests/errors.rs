//! Rejected queries: the kind of error, its position, and that the message
//! names the construct. Also the runtime errors Tempo reports.

use super::fixtures::fixture;
use crate::{ErrorKind, parse};

use ErrorKind::*;

/// (query, kind, line, column, a fragment of the message)
const CASES: &[(&str, ErrorKind, u32, u32, &str)] = &[
    // ---- syntax ----
    ("{ .a = }", Syntax, 1, 8, "found `}`"),
    ("{ .a < 3", Syntax, 1, 9, "found end of query"),
    ("{ (.a < 3 }", Syntax, 1, 11, "expected `)`"),
    ("{ attribute = 4 }", Syntax, 1, 3, "unknown identifier `attribute`"),
    ("{ span. }", Syntax, 1, 3, "attribute name after `span.`"),
    ("{ . }", Syntax, 1, 3, "attribute name after `.`"),
    ("{ .attribute == 4 }", Syntax, 1, 15, "found `=`"),
    ("true", Syntax, 1, 1, "expected a spanset filter"),
    ("( true )", Syntax, 1, 3, "found `true`"),
    ("[ true ]", Syntax, 1, 1, "unexpected character `[`"),
    ("{ true } + { true }", Syntax, 1, 10, "`+` applies to numbers"),
    ("{ true } = { true }", Syntax, 1, 10, "`=` compares numbers"),
    ("{ true } >= { true }", Syntax, 1, 10, "`>=` compares numbers"),
    ("{ } > 10", Syntax, 1, 5, "`>` combines spansets, not a number"),
    ("{ .a } { .b }", Syntax, 1, 8, "expected an operator or the end of the query"),
    ("{ trace:status = error }", Syntax, 1, 3, "`trace:status` is not an intrinsic"),
    ("{ span:rootName = \"x\" }", Syntax, 1, 3, "`span:rootName` is not an intrinsic"),
    ("{ trace:rootServiceName = \"a\" }", Syntax, 1, 3, "`trace:rootServiceName`"),
    ("{ id = 1 }", Syntax, 1, 3, "unknown identifier `id`"),
    ("{ .a = 'x' }", Syntax, 1, 8, "single-quoted"),
    ("{ .a = \"x }", Syntax, 1, 8, "string not terminated"),
    ("{ .a = \"\\q\" }", Syntax, 1, 9, "unknown escape sequence"),
    ("{ span.\"a b = 1 }", Syntax, 1, 8, "quoted attribute name not terminated"),
    ("{ .a = 99999999999999999999 }", Syntax, 1, 8, "out of range"),
    ("{ duration > 5sm }", Syntax, 1, 14, "invalid duration `5sm`"),
    ("{ .a > 1e }", Syntax, 1, 9, "exponent has no digits"),
    // `(.a = nil) + 1`, as Tempo groups it.
    ("{ .a = nil + 1 }", Invalid, 1, 12, "must operate on the same type"),
    ("{ nil > .a }", Syntax, 1, 3, "nil can only be compared with = or !="),
    ("{ .a } /* open", Syntax, 1, 8, "comment not terminated"),
    ("{ true } | count()", Syntax, 1, 1, "a query must select spans"),
    ("{ true } | count() | { true }", Syntax, 1, 20, "must be compared"),
    ("avg(.field) + 1", Syntax, 1, 1, "a query must select spans"),
    ("2 * 3", Syntax, 1, 1, "a query must select spans"),
    ("3 = 2", Syntax, 1, 3, "needs an aggregate"),
    ("{ .foo = \"a\" } | 3 > 2", Syntax, 1, 20, "needs an aggregate"),
    ("count() > 3 && { true }", Syntax, 1, 13, "`&&` combines spansets, not a scalar filter"),
    ("max(name) = \"foo\"", Syntax, 1, 13, "found a string"),
    ("max(duration) < ok", Syntax, 1, 17, "found `ok`"),
    ("{ true } | count = 1", Syntax, 1, 18, "expected `(`"),
    ("{ true } | max() = 1", Syntax, 1, 16, "the field max() aggregates"),
    ("{ true } | by()", Syntax, 1, 15, "found `)`"),
    ("select()", Syntax, 1, 8, "expected an attribute or intrinsic"),
    ("select(1 + \"string\")", Syntax, 1, 8, "expected an attribute or intrinsic"),
    ("coalesce() | { true }", Syntax, 1, 12, "cannot start with coalesce()"),
    ("{ true } | notAnAggregate() = 1", Syntax, 1, 12, "found `notAnAggregate`"),
    ("({ true } | count() > 1) | { true }", Syntax, 1, 26, "parenthesized pipeline"),
    ("{ a } ", Syntax, 1, 3, "unknown identifier `a`"),
    ("{\n  .a =\n}", Syntax, 3, 1, "found `}`"),
    ("{ .a = 1 } with(sample=foo)", Syntax, 1, 24, "unknown identifier `foo`"),
    // ---- invalid (Tempo's validation) ----
    ("{ 1 + 1 }", Invalid, 1, 1, "must resolve to a boolean"),
    ("{ status }", Invalid, 1, 1, "must resolve to a boolean"),
    ("{ \"foo\" }", Invalid, 1, 1, "must resolve to a boolean"),
    ("{ 1 = \"foo\" }", Invalid, 1, 5, "must operate on the same type"),
    ("{ 1 + \"foo\" = 1 }", Invalid, 1, 5, "must operate on the same type"),
    ("{ status > ok }", Invalid, 1, 10, "illegal operation for the given types"),
    ("{ kind < consumer }", Invalid, 1, 8, "illegal operation"),
    ("{ 1 =~ 2 }", Invalid, 1, 5, "illegal operation"),
    ("{ traceDuration > \"test\" }", Invalid, 1, 17, "same type"),
    ("{ rootServiceName = 1 }", Invalid, 1, 19, "same type"),
    ("{ \"foo\" = span:childCount }", Invalid, 1, 9, "same type"),
    ("{ nestedSetLeft = \"foo\" }", Invalid, 1, 17, "same type"),
    ("{ span.foo =~ \"[\" }", Invalid, 1, 12, "invalid regex"),
    ("{ span.foo !~ \"(\" }", Invalid, 1, 12, "invalid regex"),
    ("{ .a =~ .b }", Invalid, 1, 6, "must be a string literal"),
    ("{ span:status = nil }", Invalid, 1, 15, "intrinsics cannot be nil"),
    ("{ nil = span:status }", Invalid, 1, 7, "intrinsics cannot be nil"),
    ("{ resource.service.name = nil }", Invalid, 1, 25, "cannot be nil"),
    ("{ -true }", Invalid, 1, 3, "illegal operation for the given type"),
    ("{ -name = \"foo\" }", Invalid, 1, 3, "illegal operation for the given type"),
    ("{ !\"foo\" = \"bar\" }", Invalid, 1, 3, "illegal operation for the given type"),
    ("{ !1 = 1 }", Invalid, 1, 3, "illegal operation"),
    ("{ 5 / 0 = 1 }", Invalid, 1, 5, "integer division by zero"),
    ("{ .a = 1 % 0 }", Invalid, 1, 10, "integer modulo by zero"),
    ("max(name) = 1", Invalid, 1, 1, "must resolve to a number type"),
    ("min(1 = 3) = 1", Invalid, 1, 1, "must resolve to a number type"),
    ("sum(3) = 2", Invalid, 1, 1, "must reference the span"),
    ("min(2h) < max(duration)", Invalid, 1, 1, "must reference the span"),
    ("{ true } | by(1)", Invalid, 1, 12, "grouping field expressions must reference the span"),
    ("{ true } | by(\"foo\")", Invalid, 1, 12, "must reference the span"),
    // ---- unsupported, as in Tempo ----
    ("{ parent.a != 3 }", Unsupported, 1, 3, "parent scope"),
    ("{ parent.resource.a && true }", Unsupported, 1, 3, "parent scope"),
    ("{ parent.span.a > 3 }", Unsupported, 1, 3, "parent scope"),
    ("{ parent }", Unsupported, 1, 3, "parent intrinsic"),
    ("{ 1 % parent = 1 }", Unsupported, 1, 7, "parent intrinsic"),
    ("{ true } | max(parent.a) = 1", Unsupported, 1, 16, "parent scope"),
    ("min(.field) < max(duration)", Unsupported, 1, 13, "scalar filters are supported only"),
    ("min(.field) + max(.field) > 1", Unsupported, 1, 27, "scalar filters"),
    ("{ true } | count() + count() = 1", Unsupported, 1, 30, "scalar filters"),
    ("({ true } | count()) + ({ true } | count()) = 1", Unsupported, 1, 45, "scalar filters"),
    ("({ .a } | count()) > ({ .b } | count())", Unsupported, 1, 20, "scalar filters"),
    ("2 < count()", Unsupported, 1, 3, "numbers on the left"),
    // ---- metrics ----
    ("{ } | rate()", Metrics, 1, 7, "rate() is a TraceQL metrics function"),
    ("{ } | count_over_time() by (resource.service.name)", Metrics, 1, 7, "count_over_time()"),
    ("{ } | quantile_over_time(duration, .9)", Metrics, 1, 7, "quantile_over_time()"),
    ("{ } | histogram_over_time(duration)", Metrics, 1, 7, "histogram_over_time()"),
    ("{ } | rate() | topk(10)", Metrics, 1, 7, "rate()"),
    ("{} | topk(10)", Metrics, 1, 6, "topk()"),
    ("({ } | rate()) + ({ } | rate())", Metrics, 1, 8, "rate()"),
    ("{ } | compare({ status = error })", Metrics, 1, 7, "compare()"),
];

#[test]
fn rejected_queries_report_kind_position_and_construct() {
    let mut failures = Vec::new();
    for &(query, kind, line, column, fragment) in CASES {
        match parse(query) {
            Ok(q) => failures.push(format!("{query:?}: parsed as {q}")),
            Err(e) => {
                if e.kind != kind
                    || (e.pos.line, e.pos.column) != (line, column)
                    || !e.message.contains(fragment)
                {
                    failures.push(format!(
                        "{query:?}\n  want {kind:?} at {line}:{column} containing {fragment:?}\n  got  {:?} {e}",
                        e.kind
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} cases differ:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn errors_render_line_and_column() {
    let e = parse("{ .a = }").expect_err("invalid");
    assert_eq!(e.to_string(), "at 1:8: expected a value, an attribute or an intrinsic, found `}`");
    assert_eq!(e.pos.offset, 7);
    assert!(parse("{ } | rate()").expect_err("metrics").is_metrics());
}

/// A syntax error wins over a validation problem earlier in the text, as
/// Tempo reports parse errors before it validates.
#[test]
fn syntax_errors_come_before_validation_errors() {
    let e = parse("{ parent.a = 1 } && {").expect_err("invalid");
    assert_eq!((e.kind, e.pos.column), (Syntax, 22));
    let e = parse("{ 1 = \"a\" } && { parent.b = 1 }").expect_err("invalid");
    assert_eq!((e.kind, e.pos.column), (Invalid, 5), "the first validation problem in the text");
}

/// Deep nesting and huge queries are refused, not a stack overflow.
#[test]
fn nesting_and_size_are_bounded() {
    let deep = format!("{}{{ true }}{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(parse(&deep).expect_err("too deep").message.contains("nests deeper"));
    let deep_not = format!("{{ {}true }}", "!".repeat(10_000));
    assert!(parse(&deep_not).expect_err("too deep").message.contains("nests deeper"));
    let long = format!("{{ {} }}", vec![".a = 1"; 2000].join(" && "));
    assert!(parse(&long).expect_err("too long").message.contains("more than 1000 terms"));
    // Just under the bound: parses, evaluates and prints without trouble.
    let ok = format!("{{ {} }}", vec![".a = 1"; 200].join(" || "));
    let q = parse(&ok).expect("200 conditions");
    let fx = fixture();
    assert!(q.evaluate(&fx.traces[0], 3).expect("evaluates").is_none());
    assert_eq!(parse(&q.to_string()).expect("reparses"), q);
    let nested = format!("{{ {}.a = 1{} }}", "(".repeat(120), ")".repeat(120));
    parse(&nested).expect("120 parentheses");
}

/// Data-dependent failures Tempo reports as errors.
#[test]
fn runtime_errors() {
    let fx = fixture();
    let q = parse("{ .db.rows / 0 = 1 }").expect("parses");
    let e = q.evaluate(&fx.traces[0], 3).expect_err("D has db.rows");
    assert_eq!(e.message, "integer division by zero");
    assert!(q.evaluate(&fx.traces[1], 3).expect("no db.rows in T2").is_none());
    // Structural operators need one spanset per side; by() made several.
    let q = parse("({ } | by(kind)) > { }").expect("parses");
    let e = q.evaluate(&fx.traces[0], 3).expect_err("T1 has several kinds");
    assert!(e.message.contains("consider using coalesce()"), "{e}");
    assert!(q.evaluate(&fx.traces[3], 3).expect("T4 has one kind").is_some());
    let q = parse("({ } | by(kind) | coalesce()) > { }").expect("parses");
    assert!(q.evaluate(&fx.traces[0], 3).expect("coalesced").is_some());
}
