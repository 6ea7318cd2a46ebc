//! Property tests: printing a syntax tree and parsing the text gives the
//! same tree, for generated trees of every construct; and arbitrary token
//! soup never panics the parser or the evaluator, and whatever parses
//! prints to text that parses back to the same query.

use proptest::prelude::*;
use proptest::sample::select;
use sightline_model::{SpanKind, StatusCode};

use super::fixtures::fixture;
use crate::ast::*;
use crate::parse;

/// Names that stress quoting: spaces, quotes, backslashes, leading digits,
/// operator characters, non-ASCII.
const NAMES: &[&str] = &[
    "a",
    "http.method",
    "http.status_code",
    "service.name",
    "x-y+z",
    "a/b",
    "a:b",
    "foo bar",
    "a\"b",
    "a\\b",
    "5xx",
    "ünï",
    "a=b",
    ".lead",
    "tab\there",
    "name",
    "duration",
    "parent",
];

fn name() -> impl Strategy<Value = String> {
    select(NAMES).prop_map(str::to_owned)
}

fn scope() -> impl Strategy<Value = Scope> {
    select(
        &[Scope::Unscoped, Scope::Span, Scope::Resource, Scope::Event, Scope::Link, Scope::Instrumentation][..],
    )
}

fn named() -> impl Strategy<Value = Attribute> {
    (scope(), name()).prop_map(|(scope, name)| Attribute::Named { scope, name })
}

fn attr(a: Attribute) -> FieldExpr {
    FieldExpr::Attr(a)
}

fn bin(op: BinaryOp, l: FieldExpr, r: FieldExpr) -> FieldExpr {
    FieldExpr::Binary(op, Box::new(l), Box::new(r))
}

fn num_literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        any::<i64>().prop_map(Literal::Int),
        (-1e12f64..1e12).prop_map(Literal::Float),
        select(&[0.1, 1e300, -2.5e-7, 1e16][..]).prop_map(Literal::Float),
        (i64::MIN + 1..=i64::MAX).prop_map(Literal::Duration),
        (0i64..10_000).prop_map(|ms| Literal::Duration(ms * 1_000_000)),
    ]
}

fn str_literal() -> impl Strategy<Value = Literal> {
    select(&["", "GET", "a`b", "line\nbreak", "quote\"d", "back\\slash", "cr\rlf", "ünï", "\u{1}"][..])
        .prop_map(|s| Literal::Str(s.to_owned()))
}

/// A numeric expression that reads the span (never a constant).
fn num_term() -> impl Strategy<Value = FieldExpr> {
    let leaf = prop_oneof![
        named().prop_map(attr),
        select(
            &[
                Intrinsic::Duration,
                Intrinsic::ChildCount,
                Intrinsic::TraceDuration,
                Intrinsic::NestedSetLeft,
                Intrinsic::NestedSetRight,
                Intrinsic::NestedSetParent,
                Intrinsic::EventTimeSinceStart,
            ][..]
        )
        .prop_map(|i| attr(Attribute::Intrinsic(i))),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        let any = prop_oneof![inner.clone(), num_literal().prop_map(FieldExpr::Literal)];
        let op = select(
            &[BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Mod, BinaryOp::Pow][..],
        );
        prop_oneof![
            (op.clone(), inner.clone(), any.clone()).prop_map(|(op, l, r)| bin(op, l, r)),
            (op, any, inner.clone()).prop_map(|(op, l, r)| bin(op, l, r)),
            inner.prop_map(|e| FieldExpr::Unary(UnaryOp::Neg, Box::new(e))),
        ]
    })
}

fn str_term() -> impl Strategy<Value = FieldExpr> {
    prop_oneof![
        named().prop_map(attr),
        select(
            &[
                Intrinsic::Name,
                Intrinsic::StatusMessage,
                Intrinsic::SpanId,
                Intrinsic::ParentId,
                Intrinsic::RootName,
                Intrinsic::RootServiceName,
                Intrinsic::TraceId,
                Intrinsic::EventName,
                Intrinsic::LinkTraceId,
                Intrinsic::LinkSpanId,
                Intrinsic::InstrumentationName,
                Intrinsic::InstrumentationVersion,
            ][..]
        )
        .prop_map(|i| attr(Attribute::Intrinsic(i))),
    ]
}

fn cmp_op() -> impl Strategy<Value = BinaryOp> {
    select(&[BinaryOp::Eq, BinaryOp::Neq, BinaryOp::Gt, BinaryOp::Gte, BinaryOp::Lt, BinaryOp::Lte][..])
}

/// A boolean condition that reads the span.
fn condition() -> impl Strategy<Value = FieldExpr> {
    let status = select(&[StatusCode::Ok, StatusCode::Error, StatusCode::Unset][..]);
    let kind = select(&[SpanKind::Unspecified, SpanKind::Server, SpanKind::Client, SpanKind::Consumer][..]);
    let eq = select(&[BinaryOp::Eq, BinaryOp::Neq][..]);
    let leaf = prop_oneof![
        (num_term(), cmp_op(), num_literal()).prop_map(|(l, op, r)| bin(op, l, FieldExpr::Literal(r))),
        (num_literal(), cmp_op(), num_term()).prop_map(|(l, op, r)| bin(op, FieldExpr::Literal(l), r)),
        (num_term(), cmp_op(), num_term()).prop_map(|(l, op, r)| bin(op, l, r)),
        (str_term(), cmp_op(), str_literal()).prop_map(|(l, op, r)| bin(op, l, FieldExpr::Literal(r))),
        (
            str_term(),
            select(&[BinaryOp::Re, BinaryOp::Nre][..]),
            select(&["a.*", "GET|POST", "x\\d+", ""][..])
        )
            .prop_map(|(l, op, re)| bin(op, l, FieldExpr::Literal(Literal::Str(re.to_owned())))),
        (eq.clone(), status).prop_map(|(op, s)| bin(
            op,
            attr(Attribute::Intrinsic(Intrinsic::Status)),
            FieldExpr::Literal(Literal::Status(s))
        )),
        (eq.clone(), kind).prop_map(|(op, k)| bin(
            op,
            FieldExpr::Literal(Literal::Kind(k)),
            attr(Attribute::Intrinsic(Intrinsic::Kind))
        )),
        (named(), eq, prop_oneof![num_literal(), str_literal(), any::<bool>().prop_map(Literal::Bool)])
            .prop_map(|(a, op, l)| bin(op, attr(a), FieldExpr::Literal(l))),
        named().prop_map(attr),
        prop_oneof![num_term(), str_term()].prop_map(|e| FieldExpr::Unary(UnaryOp::Exists, Box::new(e))),
        prop_oneof![num_term(), named().prop_map(attr)]
            .prop_filter("intrinsics and resource.service.name cannot be nil", |e| match e {
                FieldExpr::Attr(Attribute::Intrinsic(_)) => false,
                FieldExpr::Attr(Attribute::Named { scope, name }) => {
                    !(*scope == Scope::Resource && name == "service.name")
                }
                _ => true,
            })
            .prop_map(|e| FieldExpr::Unary(UnaryOp::NotExists, Box::new(e))),
    ];
    leaf.prop_recursive(3, 16, 2, |inner| {
        let with_constant =
            prop_oneof![inner.clone(), any::<bool>().prop_map(|b| FieldExpr::Literal(Literal::Bool(b)))];
        prop_oneof![
            (
                select(&[BinaryOp::And, BinaryOp::Or, BinaryOp::Eq, BinaryOp::Neq][..]),
                inner.clone(),
                with_constant
            )
                .prop_map(|(op, l, r)| bin(op, l, r)),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| bin(BinaryOp::Or, l, r)),
            inner.clone().prop_map(|e| FieldExpr::Unary(UnaryOp::Not, Box::new(e))),
            inner.prop_map(|e| FieldExpr::Unary(UnaryOp::Exists, Box::new(e))),
        ]
    })
}

fn filter() -> impl Strategy<Value = SpansetExpr> {
    prop_oneof![
        1 => any::<bool>().prop_map(|b| SpansetExpr::Filter(FieldExpr::Literal(Literal::Bool(b)))),
        6 => condition().prop_map(SpansetExpr::Filter),
    ]
}

fn spanset_op() -> impl Strategy<Value = SpansetOp> {
    select(&SpansetOp::ALL[..])
}

/// Filters and operators: what a pipeline stage may hold.
fn spansets() -> impl Strategy<Value = SpansetExpr> {
    filter().prop_recursive(3, 8, 2, |inner| {
        (spanset_op(), inner.clone(), inner)
            .prop_map(|(op, l, r)| SpansetExpr::Op(op, Box::new(l), Box::new(r)))
    })
}

fn aggregate() -> impl Strategy<Value = Aggregate> {
    prop_oneof![
        Just(Aggregate { func: AggregateFn::Count, arg: None }),
        (select(&[AggregateFn::Avg, AggregateFn::Min, AggregateFn::Max, AggregateFn::Sum][..]), num_term())
            .prop_map(|(func, e)| Aggregate { func, arg: Some(e) }),
    ]
}

fn stage() -> impl Strategy<Value = Stage> {
    let cmp = select(&[CmpOp::Eq, CmpOp::Neq, CmpOp::Lt, CmpOp::Lte, CmpOp::Gt, CmpOp::Gte][..]);
    prop_oneof![
        3 => spansets().prop_map(Stage::Spansets),
        2 => (cmp, aggregate(), num_literal())
            .prop_map(|(op, aggregate, value)| Stage::ScalarFilter(ScalarFilter { op, aggregate, value })),
        1 => prop_oneof![num_term(), str_term(), condition()].prop_map(Stage::By),
        1 => prop::collection::vec(prop_oneof![named(), select(&Intrinsic::ALL[..]).prop_map(Attribute::Intrinsic)], 1..4)
            .prop_map(Stage::Select),
        1 => Just(Stage::Coalesce),
    ]
}

fn pipeline() -> impl Strategy<Value = SpansetExpr> {
    (stage(), prop::collection::vec(stage(), 0..3))
        .prop_filter("canonical pipelines", |(first, rest)| {
            *first != Stage::Coalesce && !(rest.is_empty() && matches!(first, Stage::Spansets(_)))
        })
        .prop_map(|(first, rest)| SpansetExpr::Pipeline(std::iter::once(first).chain(rest).collect()))
}

/// A whole query: spansets, a pipeline, or top-level operators between
/// (parenthesized) pipelines.
fn root() -> impl Strategy<Value = SpansetExpr> {
    prop_oneof![spansets(), pipeline()].prop_recursive(2, 6, 2, |inner| {
        (spanset_op(), inner.clone(), inner)
            .prop_map(|(op, l, r)| SpansetExpr::Op(op, Box::new(l), Box::new(r)))
    })
}

fn hints() -> impl Strategy<Value = Vec<Hint>> {
    let value = prop_oneof![
        (0i64..1000).prop_map(Literal::Int),
        Just(Literal::Bool(true)),
        Just(Literal::Float(0.5)),
        Just(Literal::Duration(30_000_000_000)),
        str_literal(),
    ];
    prop::collection::vec(
        (select(&["most_recent", "sample", "span_sample"][..]), value)
            .prop_map(|(name, value)| Hint { name: name.to_owned(), value }),
        0..3,
    )
}

/// Pieces of TraceQL, valid and not, for token soup.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    " ",
    ",",
    ".a",
    "span.b",
    "resource.service.name",
    "event.x",
    "link.y",
    "name",
    "duration",
    "status",
    "kind",
    "span:id",
    "trace:id",
    "event:name",
    "nestedSetLeft",
    "=",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "=~",
    "!~",
    ">>",
    "<<",
    "~",
    "!>",
    "&>>",
    "&~",
    "&&",
    "||",
    "|",
    "!",
    "-",
    "+",
    "*",
    "/",
    "%",
    "^",
    "0",
    "1",
    "2.5",
    "-3",
    "100ms",
    "1h30m",
    "\"x\"",
    "`y`",
    "\"a.*\"",
    "nil",
    "true",
    "false",
    "error",
    "ok",
    "server",
    "minInt",
    "count()",
    "avg(duration)",
    "max(.a)",
    "by(",
    "select(",
    "coalesce()",
    "with(most_recent=true)",
    "rate()",
    "parent.a",
    "'",
    "\"",
    "`",
    "µ",
    "/*",
    "//",
    "\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn display_parses_back_to_the_same_tree(root in root(), hints in hints()) {
        let mut text = root.to_string();
        if !hints.is_empty() {
            let list: Vec<String> = hints.iter().map(ToString::to_string).collect();
            text = format!("{text} with({})", list.join(", "));
        }
        let q = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(q.root(), &root, "{}", text);
        prop_assert_eq!(q.hints(), &hints[..]);
        prop_assert_eq!(q.to_string(), text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(parts in prop::collection::vec(select(FRAGMENTS), 1..16)) {
        let text: String = parts.concat();
        if let Ok(q) = parse(&text) {
            let printed = q.to_string();
            let again = parse(&printed).map_err(|e| TestCaseError::fail(format!("{text} printed as {printed}: {e}")))?;
            prop_assert_eq!(&again, &q, "{} printed as {}", text, printed);
            for trace in &fixture().traces {
                // Errors are fine (division by zero); panics are not.
                let _ = q.evaluate(trace, 3);
            }
        }
    }
}
