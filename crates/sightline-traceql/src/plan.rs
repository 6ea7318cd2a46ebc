//! The store pre-filter: conditions every trace a query matches must
//! satisfy, derived from the query's structure, so candidate traces can be
//! fetched with the store's existing search and then evaluated exactly.
//!
//! The derivation is conservative: it may keep traces that do not match
//! (evaluation drops them), never the reverse. It tracks two things per
//! spanset expression: *requirements* ("the trace has a span satisfying
//! one of these alternatives") and the condition every span the
//! expression returns satisfies. `{A} && {B}` needs a span for A and one
//! for B; `{A} || {B}` needs a span for A or B; a structural operator
//! returns right-hand spans and needs a left-hand span unless negated; a
//! pipeline's stages only ever remove or regroup spans, so its result
//! spans satisfy every stage's condition at once.
//!
//! A query that is one filter of conditions the store search checks
//! itself on one span (service, span name, duration: `{ resource.service.name
//! = "a" && name = "b" && duration > 1s }`) is *exact*: every candidate
//! matches. A caller then fetches exactly the traces it will return, as
//! Tempo's second pass fetches only matched traces, instead of a surplus
//! to make up for candidates that fail evaluation.

use std::str::FromStr;

use sightline_model::{SpanKind, StatusCode, TagFilter, TraceId, TraceQuery, UNKNOWN_SERVICE, Value};

use crate::ast::*;

/// Alternatives kept per requirement; beyond this a requirement is
/// dropped (any trace qualifies), which is always safe.
const MAX_ALTERNATIVES: usize = 16;

/// Integers and floats beyond this lose precision as floats, where Tempo
/// compares ints with floats; equalities on them are not pushed down.
const EXACT_FLOAT_INT: f64 = 9_007_199_254_740_992.0;

/// What every trace a query matches satisfies. See the module docs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prefilter {
    /// Each requirement holds for every matching trace. No requirements:
    /// any trace may match.
    pub requirements: Vec<Requirement>,
    /// Whether every trace the [`Prefilter::candidates`] searches find
    /// matches the query (see the module docs). Only ever a hint for how
    /// many candidates to fetch: callers still evaluate each one, so a
    /// wrong `true` would cost a second round, never a wrong answer.
    pub exact: bool,
}

/// "The trace has at least one span satisfying one of the alternatives."
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// The alternatives. Empty: no trace can match the query.
    pub alternatives: Vec<SpanConditions>,
}

/// Conditions that hold together on one span, with TraceQL's meaning.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpanConditions {
    /// The span's resource `service.name` (`resource.service.name = "x"`).
    pub service: Option<String>,
    /// The span name (`name = "x"`).
    pub name: Option<String>,
    /// Inclusive lower bound of the span duration.
    pub min_duration_nanos: Option<u64>,
    /// Inclusive upper bound of the span duration.
    pub max_duration_nanos: Option<u64>,
    /// The span status (`status = error`).
    pub status: Option<StatusCode>,
    /// The span kind (`kind = server`).
    pub kind: Option<SpanKind>,
    /// Attribute equalities (`span.http.method = "GET"`), only for scopes
    /// the store's tag search reads: span, resource, event, unscoped.
    pub attributes: Vec<AttributeEquality>,
    /// The trace id (`trace:id = "…"`).
    pub trace_id: Option<TraceId>,
}

/// `scope.key = value` with TraceQL's meaning: the attribute is a scalar
/// equal to the value, or an array with an element equal to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeEquality {
    /// Where the attribute is looked up.
    pub scope: Scope,
    /// Its key.
    pub key: String,
    /// The value as [`Value::to_text`] writes a scalar attribute equal to
    /// it (numbers compare across ints and floats, so `200` and `200.0`
    /// both read `200`).
    pub value: String,
}

/// Whether [`Prefilter::candidates`] turns attribute equalities into tag
/// filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributePushdown {
    /// Never: exact. Queries narrow by service, span name, duration,
    /// status and kind only.
    Never,
    /// As tag filters. The store's tag search compares whole values as
    /// text, so an array attribute that merely *contains* the value (which
    /// TraceQL matches) is missed: use this when array-valued attributes
    /// are not searched for.
    ScalarValues,
}

/// What to fetch from the store for a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Candidates {
    /// No trace can match; fetch nothing.
    Nothing,
    /// No narrowing found; every trace in the time range is a candidate.
    Everything,
    /// The union of these searches' results holds every matching trace.
    /// Each has `limit` 0 and no time bounds: the caller sets them (and
    /// must fetch past its own limit, since candidates may not match).
    Queries(Vec<TraceQuery>),
}

impl Prefilter {
    /// Whether the query can match no trace at all (`{ false }`,
    /// `{ name = "a" && name = "b" }`).
    pub fn matches_nothing(&self) -> bool {
        self.requirements.iter().any(|r| r.alternatives.is_empty())
    }

    /// The store searches whose results hold every matching trace: the
    /// most selective requirement, one search per alternative.
    pub fn candidates(&self, attributes: AttributePushdown) -> Candidates {
        if self.matches_nothing() {
            return Candidates::Nothing;
        }
        let best = self
            .requirements
            .iter()
            .map(|r| {
                let queries: Vec<TraceQuery> =
                    r.alternatives.iter().map(|a| a.trace_query(attributes)).collect();
                let score = queries.iter().map(query_score).min().unwrap_or(0);
                (score, queries)
            })
            .filter(|(score, _)| *score > 0)
            .max_by(|(a, qa), (b, qb)| a.cmp(b).then(qb.len().cmp(&qa.len())));
        match best {
            Some((_, queries)) => Candidates::Queries(queries),
            None => Candidates::Everything,
        }
    }

    /// The trace ids a matching trace must have, when the query pins them
    /// (`{ trace:id = "…" }`): fetch these directly.
    pub fn trace_ids(&self) -> Option<Vec<TraceId>> {
        self.requirements
            .iter()
            .find_map(|r| r.alternatives.iter().map(|a| a.trace_id).collect::<Option<Vec<_>>>())
    }
}

impl SpanConditions {
    /// These conditions as a store search: a superset of the spans that
    /// satisfy them (statuses and kinds become Jaeger's synthetic tags).
    pub fn trace_query(&self, attributes: AttributePushdown) -> TraceQuery {
        let mut tags = Vec::new();
        match self.status {
            Some(StatusCode::Error) => tags.push(tag("error", "true")),
            Some(StatusCode::Ok) => tags.push(tag("otel.status_code", "OK")),
            _ => {}
        }
        if let Some(kind) = self.kind.filter(|k| *k != SpanKind::Unspecified) {
            tags.push(tag("span.kind", kind.jaeger_name()));
        }
        if attributes == AttributePushdown::ScalarValues {
            tags.extend(self.attributes.iter().map(|a| tag(&a.key, &a.value)));
        }
        TraceQuery {
            service: self.service.clone(),
            operation: self.name.clone(),
            tags,
            min_duration_nanos: self.min_duration_nanos,
            max_duration_nanos: self.max_duration_nanos,
            ..TraceQuery::default()
        }
    }

    fn is_unconstrained(&self) -> bool {
        *self == SpanConditions::default()
    }

    /// Both sets of conditions at once; `None` when they contradict.
    fn merge(&self, other: &SpanConditions) -> Option<SpanConditions> {
        fn same<T: Clone + PartialEq>(a: &Option<T>, b: &Option<T>) -> Option<Option<T>> {
            match (a, b) {
                (Some(x), Some(y)) if x != y => None,
                (Some(x), _) | (_, Some(x)) => Some(Some(x.clone())),
                (None, None) => Some(None),
            }
        }
        let min = self.min_duration_nanos.max(other.min_duration_nanos);
        let max = match (self.max_duration_nanos, other.max_duration_nanos) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            return None;
        }
        let mut attributes = self.attributes.clone();
        for a in &other.attributes {
            if !attributes.contains(a) {
                attributes.push(a.clone());
            }
        }
        Some(SpanConditions {
            service: same(&self.service, &other.service)?,
            name: same(&self.name, &other.name)?,
            min_duration_nanos: min,
            max_duration_nanos: max,
            status: same(&self.status, &other.status)?,
            kind: same(&self.kind, &other.kind)?,
            // Attribute equalities never contradict: an array can hold
            // both values.
            attributes,
            trace_id: same(&self.trace_id, &other.trace_id)?,
        })
    }

    fn score(&self) -> u32 {
        let mut score = 0;
        score += 4 * u32::from(self.service.is_some()) + 4 * u32::from(self.name.is_some());
        score += 2 * self.attributes.len() as u32;
        score += u32::from(self.status.is_some()) + u32::from(self.kind.is_some());
        score += u32::from(self.min_duration_nanos.is_some() || self.max_duration_nanos.is_some());
        score += 8 * u32::from(self.trace_id.is_some());
        score
    }
}

fn tag(key: &str, value: &str) -> TagFilter {
    TagFilter { key: key.to_owned(), value: value.to_owned() }
}

/// How much a store search narrows: 0 when it does not.
fn query_score(q: &TraceQuery) -> u32 {
    4 * u32::from(q.service.is_some())
        + 4 * u32::from(q.operation.is_some())
        + 2 * q.tags.len() as u32
        + u32::from(q.min_duration_nanos.is_some() || q.max_duration_nanos.is_some())
}

/// Alternatives, any of which may hold; empty is "false".
type Dnf = Vec<SpanConditions>;

fn any() -> Dnf {
    vec![SpanConditions::default()]
}

fn is_any(d: &Dnf) -> bool {
    d.iter().any(SpanConditions::is_unconstrained)
}

fn or(mut a: Dnf, b: Dnf) -> Dnf {
    if is_any(&a) || is_any(&b) {
        return any();
    }
    for alt in b {
        if !a.contains(&alt) {
            a.push(alt);
        }
    }
    if a.len() > MAX_ALTERNATIVES { any() } else { a }
}

fn and(a: Dnf, b: Dnf) -> Dnf {
    if a.len() * b.len() > MAX_ALTERNATIVES {
        // Either side alone is a weaker but valid condition.
        let score = |d: &Dnf| d.iter().map(SpanConditions::score).min().unwrap_or(u32::MAX);
        return if score(&a) >= score(&b) { a } else { b };
    }
    let mut out = Dnf::new();
    for x in &a {
        for y in &b {
            if let Some(m) = x.merge(y)
                && !out.contains(&m)
            {
                out.push(m);
            }
        }
    }
    out
}

struct Derived {
    /// Requirements on the trace.
    requirements: Vec<Dnf>,
    /// What every returned span satisfies.
    spans: Dnf,
}

pub(crate) fn prefilter(root: &SpansetExpr) -> Prefilter {
    let d = derive(root);
    let mut requirements: Vec<Requirement> = Vec::new();
    for dnf in d.requirements.into_iter().chain([d.spans]) {
        if is_any(&dnf) {
            continue;
        }
        let r = Requirement { alternatives: dnf };
        if !requirements.contains(&r) {
            requirements.push(r);
        }
    }
    Prefilter { requirements, exact: exact(root) }
}

/// Whether the store search for `root` finds exactly its matches: a single
/// filter (alone, or first in a pipeline of `select()` stages, which only
/// add attributes) that is a conjunction of conditions
/// [`span_matches`](sightline_model::span_matches) checks with TraceQL's
/// meaning.
fn exact(root: &SpansetExpr) -> bool {
    match root {
        SpansetExpr::Filter(cond) => exact_condition(cond),
        SpansetExpr::Pipeline(stages) => match stages.split_first() {
            Some((Stage::Spansets(e), rest)) => {
                exact(e) && rest.iter().all(|s| matches!(s, Stage::Select(_)))
            }
            _ => false,
        },
        SpansetExpr::Op(..) => false,
    }
}

fn exact_condition(e: &FieldExpr) -> bool {
    match e {
        // `{ }`: every trace with a span in the window.
        FieldExpr::Literal(Literal::Bool(true)) => true,
        FieldExpr::Binary(BinaryOp::And, l, r) => exact_condition(l) && exact_condition(r),
        FieldExpr::Binary(op, l, r) => match (&**l, &**r) {
            (FieldExpr::Attr(a), FieldExpr::Literal(lit)) => exact_comparison(*op, a, lit),
            (FieldExpr::Literal(lit), FieldExpr::Attr(a)) => {
                flip(*op).is_some_and(|op| exact_comparison(op, a, lit))
            }
            _ => false,
        },
        _ => false,
    }
}

/// Whether [`comparison`] turns `a op lit` into a store condition that
/// holds on exactly the spans the comparison holds on. Statuses and kinds
/// are not: the store's synthetic tags also match span attributes named
/// `error` or `span.kind`. A service name is not when it is empty or the
/// store's stand-in for a missing one.
fn exact_comparison(op: BinaryOp, a: &Attribute, lit: &Literal) -> bool {
    match (a, lit) {
        (Attribute::Intrinsic(Intrinsic::Name), Literal::Str(_)) => op == BinaryOp::Eq,
        (Attribute::Intrinsic(Intrinsic::Duration), Literal::Duration(_) | Literal::Int(_)) => {
            matches!(op, BinaryOp::Eq | BinaryOp::Gt | BinaryOp::Gte | BinaryOp::Lt | BinaryOp::Lte)
        }
        (Attribute::Named { scope: Scope::Resource, name }, Literal::Str(s)) => {
            op == BinaryOp::Eq && name == "service.name" && !s.is_empty() && s != UNKNOWN_SERVICE
        }
        _ => false,
    }
}

fn derive(e: &SpansetExpr) -> Derived {
    match e {
        SpansetExpr::Filter(cond) => {
            let d = condition(cond);
            Derived { requirements: vec![d.clone()], spans: d }
        }
        SpansetExpr::Op(op, l, r) => {
            let (l, r) = (derive(l), derive(r));
            match op {
                SpansetOp::And
                | SpansetOp::UnionChild
                | SpansetOp::UnionParent
                | SpansetOp::UnionDescendant
                | SpansetOp::UnionAncestor
                | SpansetOp::UnionSibling => Derived {
                    requirements: l.requirements.into_iter().chain(r.requirements).collect(),
                    spans: or(l.spans, r.spans),
                },
                SpansetOp::Or => {
                    let spans = or(l.spans, r.spans);
                    Derived { requirements: vec![spans.clone()], spans }
                }
                SpansetOp::Child
                | SpansetOp::Parent
                | SpansetOp::Descendant
                | SpansetOp::Ancestor
                | SpansetOp::Sibling => Derived {
                    requirements: l.requirements.into_iter().chain(r.requirements).collect(),
                    spans: r.spans,
                },
                SpansetOp::NotChild
                | SpansetOp::NotParent
                | SpansetOp::NotDescendant
                | SpansetOp::NotAncestor
                | SpansetOp::NotSibling => Derived { requirements: r.requirements, spans: r.spans },
            }
        }
        SpansetExpr::Pipeline(stages) => {
            let mut requirements = Vec::new();
            let mut spans = any();
            for stage in stages {
                if let Stage::Spansets(e) = stage {
                    let d = derive(e);
                    requirements.extend(d.requirements);
                    spans = and(spans, d.spans);
                }
            }
            requirements.push(spans.clone());
            Derived { requirements, spans }
        }
    }
}

/// Alternatives implied by a filter condition on one span.
fn condition(e: &FieldExpr) -> Dnf {
    match e {
        FieldExpr::Literal(Literal::Bool(false)) => Dnf::new(),
        FieldExpr::Binary(BinaryOp::And, l, r) => and(condition(l), condition(r)),
        FieldExpr::Binary(BinaryOp::Or, l, r) => or(condition(l), condition(r)),
        FieldExpr::Binary(op, l, r) => match (&**l, &**r) {
            (FieldExpr::Attr(a), FieldExpr::Literal(lit)) => comparison(*op, a, lit),
            (FieldExpr::Literal(lit), FieldExpr::Attr(a)) => match flip(*op) {
                Some(op) => comparison(op, a, lit),
                None => any(),
            },
            _ => any(),
        },
        _ => any(),
    }
}

fn flip(op: BinaryOp) -> Option<BinaryOp> {
    Some(match op {
        BinaryOp::Eq => BinaryOp::Eq,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::Gte => BinaryOp::Lte,
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::Lte => BinaryOp::Gte,
        _ => return None,
    })
}

/// `attribute OP literal` as span conditions.
fn comparison(op: BinaryOp, a: &Attribute, lit: &Literal) -> Dnf {
    let mut c = SpanConditions::default();
    match (a, lit) {
        (Attribute::Intrinsic(Intrinsic::Name), Literal::Str(s)) if op == BinaryOp::Eq => {
            c.name = Some(s.clone())
        }
        (Attribute::Intrinsic(Intrinsic::Status), Literal::Status(s)) if op == BinaryOp::Eq => {
            c.status = Some(*s)
        }
        (Attribute::Intrinsic(Intrinsic::Kind), Literal::Kind(k)) if op == BinaryOp::Eq => c.kind = Some(*k),
        (Attribute::Intrinsic(Intrinsic::TraceId), Literal::Str(s)) if op == BinaryOp::Eq => {
            match TraceId::from_str(s) {
                Ok(id) => c.trace_id = Some(id),
                Err(_) => return any(),
            }
        }
        (Attribute::Intrinsic(Intrinsic::Duration), Literal::Duration(d) | Literal::Int(d)) => {
            // Span durations are never negative.
            let d = *d;
            let (min, max) = match op {
                BinaryOp::Eq => (Some(d), Some(d)),
                BinaryOp::Gt => (d.checked_add(1), None),
                BinaryOp::Gte => (Some(d), None),
                BinaryOp::Lt => (None, Some(d.saturating_sub(1))),
                BinaryOp::Lte => (None, Some(d)),
                _ => return any(),
            };
            if max.is_some_and(|m| m < 0) {
                return Dnf::new();
            }
            c.min_duration_nanos = min.filter(|m| *m > 0).map(|m| m as u64);
            c.max_duration_nanos = max.map(|m| m as u64);
        }
        // The store reads an empty `service.name` as `unknown_service`:
        // an empty one is searched as a plain attribute instead.
        (Attribute::Named { scope: Scope::Resource, name }, Literal::Str(s))
            if op == BinaryOp::Eq && name == "service.name" && !s.is_empty() =>
        {
            c.service = Some(s.clone())
        }
        (Attribute::Named { scope, name }, lit)
            if op == BinaryOp::Eq
                && matches!(scope, Scope::Span | Scope::Resource | Scope::Event | Scope::Unscoped) =>
        {
            let value = match lit {
                Literal::Str(s) => s.clone(),
                Literal::Bool(b) => Value::Bool(*b).to_text(),
                Literal::Int(n) if (*n as f64).abs() <= EXACT_FLOAT_INT => Value::Int(*n).to_text(),
                // `-0.0` equals integer 0 but writes as `-0`.
                Literal::Float(x) if x.abs() <= EXACT_FLOAT_INT => Value::Double(*x + 0.0).to_text(),
                _ => return any(),
            };
            c.attributes.push(AttributeEquality { scope: *scope, key: name.clone(), value });
        }
        _ => return any(),
    }
    vec![c]
}
