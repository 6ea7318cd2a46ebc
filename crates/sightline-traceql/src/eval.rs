//! Evaluation of a query over one trace, as Tempo's engine evaluates a
//! pipeline over the spansets of one trace (`ast_execute.go`).
//!
//! The input is one spanset holding every span of the trace; each stage
//! maps spansets to spansets, and the trace matches when spansets remain.
//! Spans are referred to by their index in the trace's span slice, and
//! results keep that (input) order.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::Regex;
use sightline_model::{Event, KeyValue, Link, Span, Value};

use crate::ast::*;
use crate::error::EvalError;
use crate::trace::{TraceCtx, Tree, trace_id_hex};
use crate::value::{self, Val};

/// A spanset during evaluation: span indices in trace order, plus the
/// attributes stages attached (`by(…)` values, aggregate results).
#[derive(Clone, Default)]
pub(crate) struct Set {
    pub(crate) spans: Vec<u32>,
    pub(crate) attrs: Vec<KeyValue>,
}

/// Which event and link a field expression sees for the span it is
/// evaluated on.
#[derive(Clone, Copy)]
struct Env<'a> {
    idx: usize,
    event: Option<&'a Event>,
    link: Option<&'a Link>,
}

pub(crate) struct Evaluator<'a> {
    pub(crate) trace: TraceCtx<'a>,
    pub(crate) regexes: &'a [(String, Regex)],
}

const MULTIPLE_SPANSETS: &str =
    "spanset operators are not supported for multiple spansets per trace. consider using coalesce()";

impl<'a> Evaluator<'a> {
    fn span(&self, idx: usize) -> &'a Span {
        &self.trace.spans[idx]
    }

    fn tree(&self) -> Option<&Tree> {
        self.trace.tree.as_ref()
    }

    // ---- field expressions ----

    fn field(&self, e: &'a FieldExpr, env: Env<'a>) -> Result<Val<'a>, EvalError> {
        match e {
            FieldExpr::Literal(l) => Ok(Val::from_literal(l)),
            FieldExpr::Attr(a) => Ok(self.attribute(a, env)),
            FieldExpr::Binary(op, l, r) => {
                let lv = self.field(l, env)?;
                match op {
                    BinaryOp::And if !lv.is_true() => return Ok(Val::Bool(false)),
                    BinaryOp::Or if lv.is_true() => return Ok(Val::Bool(true)),
                    _ => {}
                }
                let rv = self.field(r, env)?;
                value::binary(*op, lv, rv, self.regexes)
            }
            FieldExpr::Unary(op, x) => Ok(value::unary(*op, self.field(x, env)?)),
        }
    }

    fn attribute(&self, a: &'a Attribute, env: Env<'a>) -> Val<'a> {
        let span = self.span(env.idx);
        match a {
            Attribute::Intrinsic(i) => self.intrinsic(*i, span, env),
            Attribute::Named { scope, name } => {
                let found = match scope {
                    Scope::Span => lookup(&span.attributes, name),
                    Scope::Resource => lookup(span.resource.attributes(), name),
                    Scope::Event => env.event.and_then(|e| lookup(&e.attributes, name)),
                    Scope::Link => env.link.and_then(|l| lookup(&l.attributes, name)),
                    Scope::Instrumentation => lookup(&span.scope.attributes, name),
                    Scope::Unscoped => {
                        lookup(&span.attributes, name).or_else(|| lookup(span.resource.attributes(), name))
                    }
                };
                found.unwrap_or(Val::Nil)
            }
        }
    }

    fn intrinsic(&self, i: Intrinsic, span: &'a Span, env: Env<'a>) -> Val<'a> {
        let tree_value = |f: fn(&Tree) -> &Vec<i64>| Val::Int(self.tree().map_or(0, |t| f(t)[env.idx]));
        match i {
            Intrinsic::Duration => Val::Duration(clamp(u128::from(span.duration_nanos()))),
            Intrinsic::Name => Val::Str(Cow::Borrowed(&span.name)),
            Intrinsic::Status => Val::Status(span.status.code),
            Intrinsic::StatusMessage => Val::Str(Cow::Borrowed(&span.status.message)),
            Intrinsic::Kind => Val::Kind(span.kind),
            Intrinsic::ChildCount => tree_value(|t| &t.child_count),
            Intrinsic::SpanId => Val::Id(span.span_id.to_hex()),
            Intrinsic::ParentId => {
                Val::Id(span.parent_span_id.map_or_else(|| "0".repeat(16), |p| p.to_hex()))
            }
            Intrinsic::RootName => Val::Str(Cow::Borrowed(self.trace.root_name().unwrap_or(""))),
            Intrinsic::RootServiceName => Val::Str(Cow::Borrowed(self.trace.root_service().unwrap_or(""))),
            Intrinsic::TraceDuration => Val::Duration(clamp(u128::from(self.trace.duration()))),
            Intrinsic::TraceId => Val::Id(trace_id_hex(span.trace_id.as_bytes())),
            Intrinsic::NestedSetLeft => tree_value(|t| &t.left),
            Intrinsic::NestedSetRight => tree_value(|t| &t.right),
            Intrinsic::NestedSetParent => tree_value(|t| &t.parent),
            Intrinsic::EventName => env.event.map_or(Val::Nil, |e| Val::Str(Cow::Borrowed(&e.name))),
            Intrinsic::EventTimeSinceStart => env.event.map_or(Val::Nil, |e| {
                let since = i128::from(e.time_unix_nano) - i128::from(span.start_time_unix_nano);
                Val::Duration(since.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
            }),
            Intrinsic::LinkTraceId => {
                env.link.map_or(Val::Nil, |l| Val::Id(trace_id_hex(l.trace_id.as_bytes())))
            }
            Intrinsic::LinkSpanId => env.link.map_or(Val::Nil, |l| Val::Id(l.span_id.to_hex())),
            Intrinsic::InstrumentationName => Val::Str(Cow::Borrowed(&span.scope.name)),
            Intrinsic::InstrumentationVersion => Val::Str(Cow::Borrowed(&span.scope.version)),
        }
    }

    /// Whether a filter's condition holds for a span. Conditions on event
    /// (link) fields hold when they hold for one of the span's events
    /// (links), all fields of one condition read from the same event.
    fn matches(&self, e: &'a FieldExpr, idx: usize, uses: Uses) -> Result<bool, EvalError> {
        let span = self.span(idx);
        let events: &'a [Event] = if uses.events { &span.events } else { &[] };
        let links: &'a [Link] = if uses.links { &span.links } else { &[] };
        // With no events (links), the fields read nil once.
        for i in 0..events.len().max(1) {
            for j in 0..links.len().max(1) {
                let env = Env { idx, event: events.get(i), link: links.get(j) };
                if self.field(e, env)?.is_true() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The value of an expression for `by()`, aggregates and results: event
    /// and link fields read the first event (link) that has them.
    fn value_of(&self, e: &'a FieldExpr, idx: usize) -> Result<Val<'a>, EvalError> {
        let span = self.span(idx);
        let env = Env { idx, event: span.events.first(), link: span.links.first() };
        if let FieldExpr::Attr(a) = e {
            if a.is_event() {
                return Ok(span
                    .events
                    .iter()
                    .map(|event| self.attribute(a, Env { event: Some(event), ..env }))
                    .find(|v| !v.is_nil())
                    .unwrap_or(Val::Nil));
            }
            if a.is_link() {
                return Ok(span
                    .links
                    .iter()
                    .map(|link| self.attribute(a, Env { link: Some(link), ..env }))
                    .find(|v| !v.is_nil())
                    .unwrap_or(Val::Nil));
            }
        }
        self.field(e, env)
    }

    /// The attributes a result span carries: those the query reads, with
    /// the span's values, under Tempo's keys.
    pub(crate) fn result_attributes(&self, attrs: &'a [FieldExpr], idx: usize) -> Vec<KeyValue> {
        let mut out = Vec::new();
        for e in attrs {
            let FieldExpr::Attr(a) = e else { continue };
            // Evaluating a single attribute cannot fail.
            if let Ok(v) = self.value_of(e, idx)
                && !v.is_nil()
            {
                out.push(KeyValue { key: a.result_key().into(), value: v.to_value() });
            }
        }
        out
    }

    // ---- spansets ----

    pub(crate) fn spanset(&self, e: &'a SpansetExpr, input: Vec<Set>) -> Result<Vec<Set>, EvalError> {
        match e {
            SpansetExpr::Filter(cond) => {
                let uses = Uses::of(cond);
                let mut out = Vec::with_capacity(input.len());
                for set in input {
                    let mut spans = Vec::new();
                    for &idx in &set.spans {
                        if self.matches(cond, idx as usize, uses)? {
                            spans.push(idx);
                        }
                    }
                    if !spans.is_empty() {
                        out.push(Set { spans, attrs: set.attrs });
                    }
                }
                Ok(out)
            }
            SpansetExpr::Op(op, l, r) => {
                let mut out = Vec::new();
                for set in input {
                    let lhs = self.spanset(l, vec![set.clone()])?;
                    let rhs = self.spanset(r, vec![set.clone()])?;
                    let spans = match op {
                        SpansetOp::And if lhs.is_empty() || rhs.is_empty() => continue,
                        SpansetOp::Or if lhs.is_empty() && rhs.is_empty() => continue,
                        SpansetOp::And | SpansetOp::Or => {
                            union(lhs.iter().chain(&rhs).map(|s| s.spans.as_slice()))
                        }
                        _ => {
                            if rhs.is_empty() {
                                continue;
                            }
                            if lhs.len() > 1 || rhs.len() > 1 {
                                return Err(EvalError::new(MULTIPLE_SPANSETS));
                            }
                            let left = lhs.first().map_or(&[][..], |s| s.spans.as_slice());
                            self.structural(*op, left, &rhs[0].spans)
                        }
                    };
                    if !spans.is_empty() {
                        out.push(Set { spans, attrs: set.attrs });
                    }
                }
                Ok(out)
            }
            SpansetExpr::Pipeline(stages) => {
                let mut sets = input;
                for stage in stages {
                    if sets.is_empty() {
                        break;
                    }
                    sets = self.stage(stage, sets)?;
                }
                Ok(sets)
            }
        }
    }

    fn stage(&self, stage: &'a Stage, input: Vec<Set>) -> Result<Vec<Set>, EvalError> {
        match stage {
            Stage::Spansets(e) => self.spanset(e, input),
            Stage::ScalarFilter(sf) => {
                let mut out = Vec::with_capacity(input.len());
                let limit = Val::from_literal(&sf.value);
                for mut set in input {
                    let Some(v) = self.aggregate(&sf.aggregate, &set)? else { continue };
                    if value::scalar_compare(sf.op.binary(), &v, &limit) {
                        set.attrs
                            .push(KeyValue { key: sf.aggregate.to_string().into(), value: v.to_value() });
                        out.push(set);
                    }
                }
                Ok(out)
            }
            Stage::By(e) => {
                let key_name = format!("by({e})");
                let mut out = Vec::new();
                for set in input {
                    let mut groups: Vec<Set> = Vec::new();
                    let mut index: HashMap<GroupKey, usize> = HashMap::new();
                    for &idx in &set.spans {
                        let v = self.value_of(e, idx as usize)?;
                        let slot = *index.entry(GroupKey::of(&v)).or_insert_with(|| {
                            let mut attrs = set.attrs.clone();
                            attrs.push(KeyValue { key: key_name.clone().into(), value: v.to_value() });
                            groups.push(Set { spans: Vec::new(), attrs });
                            groups.len() - 1
                        });
                        groups[slot].spans.push(idx);
                    }
                    out.extend(groups);
                }
                Ok(out)
            }
            Stage::Select(_) => Ok(input),
            Stage::Coalesce => {
                Ok(vec![Set { spans: input.into_iter().flat_map(|s| s.spans).collect(), attrs: Vec::new() }])
            }
        }
    }

    /// An aggregate over one spanset; `None` when no span has a value.
    fn aggregate(&self, agg: &'a Aggregate, set: &Set) -> Result<Option<Val<'a>>, EvalError> {
        let Some(arg) = &agg.arg else {
            return Ok(Some(Val::Int(set.spans.len() as i64)));
        };
        let mut acc: Option<Val<'a>> = None;
        let mut count = 0usize;
        for &idx in &set.spans {
            let v = self.value_of(arg, idx as usize)?;
            if v.is_nil() {
                continue;
            }
            count += 1;
            acc = Some(match (acc, agg.func) {
                (None, _) => v,
                (Some(mut sum), AggregateFn::Sum | AggregateFn::Avg) => {
                    value::sum_into(&mut sum, &v);
                    sum
                }
                (Some(cur), AggregateFn::Max) => {
                    if value::compare(&v, &cur).is_gt() {
                        v
                    } else {
                        cur
                    }
                }
                (Some(cur), AggregateFn::Min) => {
                    if value::compare(&v, &cur).is_lt() {
                        v
                    } else {
                        cur
                    }
                }
                (Some(cur), AggregateFn::Count) => cur,
            });
        }
        Ok(match (acc, agg.func) {
            (Some(sum), AggregateFn::Avg) => Some(value::divide(sum, count)),
            (acc, _) => acc,
        })
    }

    /// The spans a structural operator returns, in trace order.
    fn structural(&self, op: SpansetOp, lhs: &[u32], rhs: &[u32]) -> Vec<u32> {
        let Some(tree) = self.tree() else { return Vec::new() };
        let n = self.trace.spans.len();
        let keep = |side: &[u32], related: Vec<bool>, want: bool| -> Vec<u32> {
            side.iter().copied().filter(|&i| related[i as usize] == want).collect()
        };
        use Relation::*;
        match op {
            SpansetOp::Child => keep(rhs, relation(tree, n, Child, lhs), true),
            SpansetOp::Parent => keep(rhs, relation(tree, n, Parent, lhs), true),
            SpansetOp::Descendant => keep(rhs, relation(tree, n, Descendant, lhs), true),
            SpansetOp::Ancestor => keep(rhs, relation(tree, n, Ancestor, lhs), true),
            SpansetOp::Sibling => keep(rhs, relation(tree, n, Sibling, lhs), true),
            SpansetOp::NotChild => keep(rhs, relation(tree, n, Child, lhs), false),
            SpansetOp::NotParent => keep(rhs, relation(tree, n, Parent, lhs), false),
            SpansetOp::NotDescendant => keep(rhs, relation(tree, n, Descendant, lhs), false),
            SpansetOp::NotAncestor => keep(rhs, relation(tree, n, Ancestor, lhs), false),
            SpansetOp::NotSibling => keep(rhs, relation(tree, n, Sibling, lhs), false),
            SpansetOp::UnionChild => union([
                keep(rhs, relation(tree, n, Child, lhs), true).as_slice(),
                keep(lhs, relation(tree, n, Parent, rhs), true).as_slice(),
            ]),
            SpansetOp::UnionParent => union([
                keep(rhs, relation(tree, n, Parent, lhs), true).as_slice(),
                keep(lhs, relation(tree, n, Child, rhs), true).as_slice(),
            ]),
            SpansetOp::UnionDescendant => union([
                keep(rhs, relation(tree, n, Descendant, lhs), true).as_slice(),
                keep(lhs, relation(tree, n, Ancestor, rhs), true).as_slice(),
            ]),
            SpansetOp::UnionAncestor => union([
                keep(rhs, relation(tree, n, Ancestor, lhs), true).as_slice(),
                keep(lhs, relation(tree, n, Descendant, rhs), true).as_slice(),
            ]),
            SpansetOp::UnionSibling => union([
                keep(rhs, relation(tree, n, Sibling, lhs), true).as_slice(),
                keep(lhs, relation(tree, n, Sibling, rhs), true).as_slice(),
            ]),
            SpansetOp::And | SpansetOp::Or => Vec::new(),
        }
    }
}

/// Which bound fields a condition reads.
#[derive(Clone, Copy, Default)]
struct Uses {
    events: bool,
    links: bool,
}

impl Uses {
    fn of(e: &FieldExpr) -> Uses {
        let mut uses = Uses::default();
        e.visit_attributes(&mut |a| {
            uses.events |= a.is_event();
            uses.links |= a.is_link();
        });
        uses
    }
}

/// How a span relates to one of a set of other spans.
#[derive(Clone, Copy)]
enum Relation {
    /// Is a child of one of them.
    Child,
    /// Is the parent of one of them.
    Parent,
    /// Is below one of them.
    Descendant,
    /// Is above one of them.
    Ancestor,
    /// Has the same parent as one of them, other than itself.
    Sibling,
}

/// For every span of the trace, whether it stands in `rel` to some span
/// of `others` (only spans the tree walk reached relate at all). Linear in
/// the trace size.
fn relation(tree: &Tree, n: usize, rel: Relation, others: &[u32]) -> Vec<bool> {
    let mut in_others = vec![false; n];
    for &o in others {
        if tree.reached(o) {
            in_others[o as usize] = true;
        }
    }
    let mut out = vec![false; n];
    match rel {
        Relation::Child => {
            for &i in &tree.preorder {
                out[i as usize] = tree.parent_index[i as usize].is_some_and(|p| in_others[p as usize]);
            }
        }
        Relation::Parent => {
            for &o in others {
                if let Some(p) = tree.parent_index[o as usize].filter(|_| tree.reached(o)) {
                    out[p as usize] = true;
                }
            }
        }
        Relation::Descendant => {
            // Parents come before children in pre-order.
            for &i in &tree.preorder {
                out[i as usize] =
                    tree.parent_index[i as usize].is_some_and(|p| in_others[p as usize] || out[p as usize]);
            }
        }
        Relation::Ancestor => {
            for &o in others {
                if !tree.reached(o) {
                    continue;
                }
                let mut cur = tree.parent_index[o as usize];
                while let Some(p) = cur {
                    if out[p as usize] {
                        break;
                    }
                    out[p as usize] = true;
                    cur = tree.parent_index[p as usize];
                }
            }
        }
        Relation::Sibling => {
            // Grouped by the parent's number; roots (parent -1) count as
            // siblings of each other, as in Tempo.
            let mut per_parent: HashMap<i64, u32> = HashMap::new();
            for &o in others {
                if tree.reached(o) {
                    *per_parent.entry(tree.parent[o as usize]).or_default() += 1;
                }
            }
            for &i in &tree.preorder {
                let count = per_parent.get(&tree.parent[i as usize]).copied().unwrap_or(0);
                out[i as usize] = count > u32::from(in_others[i as usize]);
            }
        }
    }
    out
}

/// The union of span lists, in trace order without duplicates.
fn union<'s>(lists: impl IntoIterator<Item = &'s [u32]>) -> Vec<u32> {
    let mut all: Vec<u32> = lists.into_iter().flatten().copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn lookup<'a>(kvs: &'a [KeyValue], name: &str) -> Option<Val<'a>> {
    kvs.iter().filter(|kv| kv.key == name).map(|kv| Val::from_attribute(&kv.value)).find(|v| !v.is_nil())
}

fn clamp(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `by()` groups: values of equal type and content (Tempo's `MapKey`).
#[derive(Hash, PartialEq, Eq)]
enum GroupKey {
    Nil,
    Int(i64),
    Float(u64),
    Duration(i64),
    Bool(bool),
    Status(u8),
    Kind(u8),
    Str(String),
    Array(String),
}

impl GroupKey {
    fn of(v: &Val<'_>) -> GroupKey {
        match v {
            Val::Nil => GroupKey::Nil,
            Val::Int(n) => GroupKey::Int(*n),
            Val::Float(x) => GroupKey::Float(x.to_bits()),
            Val::Duration(d) => GroupKey::Duration(*d),
            Val::Bool(b) => GroupKey::Bool(*b),
            Val::Status(s) => GroupKey::Status(*s as u8),
            Val::Kind(k) => GroupKey::Kind(*k as u8),
            Val::Str(s) => GroupKey::Str(s.to_string()),
            Val::Id(s) => GroupKey::Str(s.clone()),
            Val::Array(items, _) => GroupKey::Array(Value::Array(items.to_vec()).to_json().to_string()),
        }
    }
}
