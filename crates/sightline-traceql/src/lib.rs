//! TraceQL, the trace query language of Grafana Tempo: a parser with
//! positions in its errors, a typed syntax tree, a planner that derives the
//! pre-filter a store can push down, and an evaluator that runs a query
//! over the spans of one trace and returns the matching spansets as Tempo's
//! search does.
//!
//! The language and its meaning follow Tempo (`pkg/traceql`: `expr.y`,
//! `lexer.go`, `ast_validate.go`, `ast_execute.go`, and the TraceQL docs);
//! `docs/traceql.md` is the user-facing reference, including the few
//! places where Sightline differs. This crate does no IO.
//!
//! # Example
//!
//! ```ignore
//! let query = sightline_traceql::parse(r#"{ resource.service.name = "api" } >> { status = error }"#)?;
//! // 1. Fetch candidates with the store's search (a superset of the matches).
//! match query.prefilter().candidates(AttributePushdown::Never) {
//!     Candidates::Nothing => { /* answer empty */ }
//!     Candidates::Everything => { /* scan the time range */ }
//!     Candidates::Queries(qs) => { /* union of store.find_traces(q) for q in qs */ }
//! }
//! // 2. Evaluate each candidate trace exactly.
//! if let Some(m) = query.evaluate(&spans, 3)? {
//!     for spanset in &m.spansets { /* spans, matched, attributes */ }
//! }
//! ```
//!
//! Errors render as `at LINE:COL: message`; [`ParseError::kind`] tells a
//! syntax error from a type error, an unsupported construct, or a metrics
//! query ([`ErrorKind::Metrics`], which search does not serve).
//!
//! # Grammar
//!
//! Operators bind as in Tempo, loosest first: `|`; then `&&` and `||`
//! (one level, left to right, also inside filters); then comparisons and
//! the structural operators; `+ -`; `!`; `* / %`; `^` (right to left).
//!
//! ```text
//! query     = pipeline [ "with" "(" hint { "," hint } ")" ]
//! pipeline  = element { "|" stage }
//!           | "(" pipeline ")" { spanset-op "(" pipeline ")" }   (top level only)
//! element   = spansets | scalar-filter | "by" "(" field ")" | "select" "(" attrs ")"
//! stage     = element | "coalesce" "(" ")"
//! spansets  = "{" [ field ] "}" | spansets spanset-op spansets | "(" spansets ")"
//! spanset-op = "&&" | "||" | ">" | "<" | ">>" | "<<" | "~"
//!           | "!>" | "!<" | "!>>" | "!<<" | "!~" | "&>" | "&<" | "&>>" | "&<<" | "&~"
//! scalar-filter = aggregate ( "=" | "!=" | "<" | "<=" | ">" | ">=" ) number
//! aggregate = "count" "(" ")" | ( "avg" | "min" | "max" | "sum" ) "(" field ")"
//! field     = literal | attribute | intrinsic | "(" field ")" | "!" field | "-" field
//!           | field ( "&&" | "||" | "=" | "!=" | "<" | "<=" | ">" | ">="
//!                   | "=~" | "!~" | "+" | "-" | "*" | "/" | "%" | "^" ) field
//!           | field ( "=" | "!=" ) "nil" | "nil" ( "=" | "!=" ) field
//! literal   = string | integer | float | duration | "true" | "false"
//!           | "ok" | "error" | "unset" | "unspecified" | "internal" | "server"
//!           | "client" | "producer" | "consumer" | "minInt" | "maxInt"
//! attribute = ( "." | "span." | "resource." | "event." | "link." | "instrumentation." ) name
//! intrinsic = "duration" | "name" | "status" | "statusMessage" | "kind"
//!           | "rootName" | "rootServiceName" | "traceDuration"
//!           | "nestedSetLeft" | "nestedSetRight" | "nestedSetParent"
//!           | "span:" ( "duration" | "name" | "kind" | "status" | "statusMessage"
//!                     | "id" | "parentID" | "childCount" )
//!           | "trace:" ( "duration" | "rootName" | "rootService" | "id" )
//!           | "event:" ( "name" | "timeSinceStart" ) | "link:" ( "traceID" | "spanID" )
//!           | "instrumentation:" ( "name" | "version" )
//! ```
//!
//! Names run to a space or one of `{}()=~!<>&|^,`; `"…"` parts quote any
//! character (`span."x y"`, with `\"` and `\\`). Strings are Go strings in
//! `"…"` (escapes) or `` `…` `` (raw). Durations take Prometheus' and Go's
//! units (`ns us µs ms s m h d w y`, `1h30m`, `1.5s`). `//` and `/* */` are
//! comments.
//!
//! Rejected with [`ErrorKind::Unsupported`], as Tempo rejects them: the
//! `parent.` scope and `parent` intrinsic, and scalar filters other than
//! `aggregate OP number` (arithmetic on aggregates, pipelines compared with
//! each other). Metrics functions (`rate`, `count_over_time`,
//! `min/max/avg/sum_over_time`, `quantile_over_time`,
//! `histogram_over_time`, `compare`, `topk`, `bottomk`) give
//! [`ErrorKind::Metrics`].
#![deny(missing_docs)]

mod ast;
mod display;
mod duration;
mod error;
mod eval;
mod lexer;
mod parser;
mod plan;
mod trace;
mod value;

use std::fmt;
use std::str::FromStr;

use regex::Regex;
use sightline_model::{KeyValue, Span};

pub use ast::{
    Aggregate, AggregateFn, Attribute, BinaryOp, CmpOp, FieldExpr, Hint, Intrinsic, Literal, ScalarFilter,
    Scope, SpansetExpr, SpansetOp, Stage, UnaryOp,
};
pub use error::{ErrorKind, EvalError, ParseError, Pos};
pub use plan::{AttributeEquality, AttributePushdown, Candidates, Prefilter, Requirement, SpanConditions};

/// Parses and validates a TraceQL search query.
pub fn parse(text: &str) -> Result<Query, ParseError> {
    let parsed = parser::parse(text)?;
    Ok(Query::new(parsed.root, parsed.hints, parsed.regexes))
}

/// A parsed, validated query, ready to plan and evaluate. `Display` writes
/// it back as TraceQL (normalized: constants folded, parentheses where
/// needed).
#[derive(Debug, Clone)]
pub struct Query {
    root: SpansetExpr,
    hints: Vec<Hint>,
    regexes: Vec<(String, Regex)>,
    /// The attributes results carry (each a `FieldExpr::Attr`).
    result_attrs: Vec<FieldExpr>,
    needs_tree: bool,
    prefilter: Prefilter,
}

impl PartialEq for Query {
    fn eq(&self, other: &Query) -> bool {
        self.root == other.root && self.hints == other.hints
    }
}

impl Query {
    fn new(root: SpansetExpr, hints: Vec<Hint>, regexes: Vec<(String, Regex)>) -> Query {
        // Tempo returns the attributes a query reads with each span, except
        // those its search response has fields for.
        let mut result_attrs: Vec<FieldExpr> = Vec::new();
        root.visit_attributes(&mut |a| {
            let skip = matches!(
                a,
                Attribute::Intrinsic(
                    Intrinsic::Name
                        | Intrinsic::Duration
                        | Intrinsic::TraceDuration
                        | Intrinsic::RootServiceName
                        | Intrinsic::RootName
                        | Intrinsic::TraceId
                        | Intrinsic::SpanId
                )
            );
            let e = FieldExpr::Attr(a.clone());
            if !skip && !result_attrs.contains(&e) {
                result_attrs.push(e);
            }
        });
        let needs_tree = root.needs_tree();
        let prefilter = plan::prefilter(&root);
        Query { root, hints, regexes, result_attrs, needs_tree, prefilter }
    }

    /// The syntax tree.
    pub fn root(&self) -> &SpansetExpr {
        &self.root
    }

    /// The hints of `with(…)`, in order.
    pub fn hints(&self) -> &[Hint] {
        &self.hints
    }

    /// The value of a hint, if given.
    pub fn hint(&self, name: &str) -> Option<&Literal> {
        self.hints.iter().find(|h| h.name == name).map(|h| &h.value)
    }

    /// Whether the query asks for the most recent traces first
    /// (`with(most_recent=true)`).
    pub fn most_recent(&self) -> bool {
        self.hint("most_recent") == Some(&Literal::Bool(true))
    }

    /// The conditions every matching trace satisfies, for the store.
    pub fn prefilter(&self) -> &Prefilter {
        &self.prefilter
    }

    /// Whether no trace can match (e.g. `{ false }`); callers can answer
    /// without reading anything.
    pub fn matches_nothing(&self) -> bool {
        self.prefilter.matches_nothing()
    }

    /// Runs the query over all spans of one trace (in any order, without
    /// duplicates). `None` when the trace does not match; otherwise its
    /// spansets, each listing at most `spans_per_spanset` spans (Tempo's
    /// `spss`, whose default is 3) with the total in `matched`.
    ///
    /// Fails only where Tempo fails too: integer division or modulo by
    /// zero, and spanset operators after `by()` split the trace.
    pub fn evaluate(
        &self,
        spans: &[Span],
        spans_per_spanset: usize,
    ) -> Result<Option<TraceMatch>, EvalError> {
        if spans.is_empty() || self.matches_nothing() {
            return Ok(None);
        }
        let ev =
            eval::Evaluator { trace: trace::TraceCtx::new(spans, self.needs_tree), regexes: &self.regexes };
        let all = eval::Set { spans: (0..spans.len() as u32).collect(), attrs: Vec::new() };
        let sets = ev.spanset(&self.root, vec![all])?;
        if sets.is_empty() {
            return Ok(None);
        }
        let spansets = sets
            .into_iter()
            .map(|set| SpansetMatch {
                matched: set.spans.len(),
                spans: set
                    .spans
                    .iter()
                    .take(spans_per_spanset)
                    .map(|&i| SpanMatch {
                        index: i as usize,
                        attributes: ev.result_attributes(&self.result_attrs, i as usize),
                    })
                    .collect(),
                attributes: set.attrs,
            })
            .collect();
        Ok(Some(TraceMatch {
            spansets,
            root_service_name: ev.trace.root_service().map(str::to_owned),
            root_span_name: ev.trace.root_name().map(str::to_owned),
            start_time_unix_nano: ev.trace.start,
            duration_nanos: ev.trace.duration(),
        }))
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.root)?;
        if !self.hints.is_empty() {
            f.write_str(" with(")?;
            for (i, h) in self.hints.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{h}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl FromStr for Query {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Query, ParseError> {
        parse(s)
    }
}

/// A trace that matched, as one entry of Tempo's search response.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceMatch {
    /// The matching spansets (several after `by()`).
    pub spansets: Vec<SpansetMatch>,
    /// The root span's `service.name` (`""` when it has none); `None`
    /// without a root span. Tempo's frontend shows both `""` and a missing
    /// root as `<root span not yet received>`.
    pub root_service_name: Option<String>,
    /// The root span's name; `None` without a root span.
    pub root_span_name: Option<String>,
    /// The earliest span start, ns since the epoch.
    pub start_time_unix_nano: u64,
    /// Latest span end minus earliest start.
    pub duration_nanos: u64,
}

/// One spanset of a match.
#[derive(Debug, Clone, PartialEq)]
pub struct SpansetMatch {
    /// Up to `spans_per_spanset` spans, in the order they were given.
    pub spans: Vec<SpanMatch>,
    /// How many spans the spanset holds in total.
    pub matched: usize,
    /// Attributes of the spanset: `by(…)` values and aggregate results,
    /// keyed as Tempo keys them (`by(resource.service.name)`, `count()`).
    pub attributes: Vec<KeyValue>,
}

/// One span of a spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanMatch {
    /// The span's position in the slice passed to [`Query::evaluate`].
    pub index: usize,
    /// The attributes the query reads (filters, `by()`, aggregates,
    /// `select()`) that the span has, keyed by attribute name or intrinsic
    /// name (`http.method`, `status`, `event:name`). Name, duration and
    /// ids are left out: responses carry them as fields.
    pub attributes: Vec<KeyValue>,
}

#[cfg(test)]
mod tests;
