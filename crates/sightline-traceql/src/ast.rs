//! The typed syntax tree [`crate::parse`] produces.
//!
//! Only trees the parser can produce are meaningful: constant
//! sub-expressions are folded (`{ 1 + 1 = 2 }` is `{ true }`), negative
//! numbers are literals, a pipeline has at least two stages or one stage
//! that is not a spanset expression, and every tree has passed the type
//! checks Tempo's validation performs. `Display` writes a tree back as
//! TraceQL that parses to the same tree.

use sightline_model::{SpanKind, StatusCode};

/// A spanset expression: what selects spans from one trace.
#[derive(Debug, Clone, PartialEq)]
pub enum SpansetExpr {
    /// `{ condition }`: the spans for which the condition is true.
    Filter(FieldExpr),
    /// Two spanset expressions joined by a spanset operator.
    Op(SpansetOp, Box<SpansetExpr>, Box<SpansetExpr>),
    /// `stage | stage | …`.
    Pipeline(Vec<Stage>),
}

/// One stage of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Filters and spanset operators (never containing a pipeline).
    Spansets(SpansetExpr),
    /// `aggregate OP number`, e.g. `count() > 3`.
    ScalarFilter(ScalarFilter),
    /// `by(expr)`: splits each spanset into one spanset per value.
    By(FieldExpr),
    /// `select(attr, …)`: adds attributes to the spans returned.
    Select(Vec<Attribute>),
    /// `coalesce()`: merges all spansets of a trace into one.
    Coalesce,
}

/// `aggregate OP number`, the only scalar filter Tempo evaluates.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarFilter {
    /// The comparison.
    pub op: CmpOp,
    /// What is computed over each spanset.
    pub aggregate: Aggregate,
    /// The number (integer, float or duration) it is compared with.
    pub value: Literal,
}

/// An aggregate over the spans of a spanset.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// Which aggregate.
    pub func: AggregateFn,
    /// The expression aggregated; `None` only for `count()`.
    pub arg: Option<FieldExpr>,
}

/// Aggregate functions of pipelines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateFn {
    /// `count()`
    Count,
    /// `avg(x)`
    Avg,
    /// `min(x)`
    Min,
    /// `max(x)`
    Max,
    /// `sum(x)`
    Sum,
}

impl AggregateFn {
    /// The function's name.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFn::Count => "count",
            AggregateFn::Avg => "avg",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
            AggregateFn::Sum => "sum",
        }
    }
}

/// Comparison operators of scalar filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `>`
    Gt,
    /// `>=`
    Gte,
}

impl CmpOp {
    /// The operator as written.
    pub fn text(self) -> &'static str {
        self.binary().text()
    }

    pub(crate) fn binary(self) -> BinaryOp {
        match self {
            CmpOp::Eq => BinaryOp::Eq,
            CmpOp::Neq => BinaryOp::Neq,
            CmpOp::Lt => BinaryOp::Lt,
            CmpOp::Lte => BinaryOp::Lte,
            CmpOp::Gt => BinaryOp::Gt,
            CmpOp::Gte => BinaryOp::Gte,
        }
    }
}

/// Operators between spansets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpansetOp {
    /// `&&`: both sides found spans; returns the spans of both.
    And,
    /// `||`: either side found spans; returns the spans of both.
    Or,
    /// `>`: right-hand spans that are children of a left-hand span.
    Child,
    /// `<`: right-hand spans that are parents of a left-hand span.
    Parent,
    /// `>>`: right-hand spans that are descendants of a left-hand span.
    Descendant,
    /// `<<`: right-hand spans that are ancestors of a left-hand span.
    Ancestor,
    /// `~`: right-hand spans that have a sibling among the left-hand spans.
    Sibling,
    /// `!>`: right-hand spans that are not children of any left-hand span.
    NotChild,
    /// `!<`: right-hand spans that are not parents of any left-hand span.
    NotParent,
    /// `!>>`: right-hand spans that are not descendants of any left-hand span.
    NotDescendant,
    /// `!<<`: right-hand spans that are not ancestors of any left-hand span.
    NotAncestor,
    /// `!~`: right-hand spans without a sibling among the left-hand spans.
    NotSibling,
    /// `&>`: parents and children from both sides that are related.
    UnionChild,
    /// `&<`: like `&>` with the sides' roles swapped.
    UnionParent,
    /// `&>>`: ancestors and descendants from both sides that are related.
    UnionDescendant,
    /// `&<<`: like `&>>` with the sides' roles swapped.
    UnionAncestor,
    /// `&~`: siblings from both sides.
    UnionSibling,
}

impl SpansetOp {
    /// Every spanset operator.
    pub const ALL: [SpansetOp; 17] = [
        SpansetOp::And,
        SpansetOp::Or,
        SpansetOp::Child,
        SpansetOp::Parent,
        SpansetOp::Descendant,
        SpansetOp::Ancestor,
        SpansetOp::Sibling,
        SpansetOp::NotChild,
        SpansetOp::NotParent,
        SpansetOp::NotDescendant,
        SpansetOp::NotAncestor,
        SpansetOp::NotSibling,
        SpansetOp::UnionChild,
        SpansetOp::UnionParent,
        SpansetOp::UnionDescendant,
        SpansetOp::UnionAncestor,
        SpansetOp::UnionSibling,
    ];

    /// The operator as written.
    pub fn text(self) -> &'static str {
        match self {
            SpansetOp::And => "&&",
            SpansetOp::Or => "||",
            SpansetOp::Child => ">",
            SpansetOp::Parent => "<",
            SpansetOp::Descendant => ">>",
            SpansetOp::Ancestor => "<<",
            SpansetOp::Sibling => "~",
            SpansetOp::NotChild => "!>",
            SpansetOp::NotParent => "!<",
            SpansetOp::NotDescendant => "!>>",
            SpansetOp::NotAncestor => "!<<",
            SpansetOp::NotSibling => "!~",
            SpansetOp::UnionChild => "&>",
            SpansetOp::UnionParent => "&<",
            SpansetOp::UnionDescendant => "&>>",
            SpansetOp::UnionAncestor => "&<<",
            SpansetOp::UnionSibling => "&~",
        }
    }

    /// Binding strength: `&&` and `||` bind looser than the structural
    /// operators, as in Tempo's grammar.
    pub(crate) fn precedence(self) -> u8 {
        match self {
            SpansetOp::And | SpansetOp::Or => 2,
            _ => 3,
        }
    }
}

/// An expression evaluated on one span (inside `{ }`, `by()`, aggregates).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldExpr {
    /// A constant.
    Literal(Literal),
    /// An attribute or intrinsic of the span.
    Attr(Attribute),
    /// A binary operation.
    Binary(BinaryOp, Box<FieldExpr>, Box<FieldExpr>),
    /// A unary operation.
    Unary(UnaryOp, Box<FieldExpr>),
}

/// Binary operators inside field expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `&&`
    And,
    /// `||`
    Or,
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `=~`: full match of a regular expression.
    Re,
    /// `!~`: no full match of a regular expression.
    Nre,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
}

impl BinaryOp {
    /// The operator as written.
    pub fn text(self) -> &'static str {
        match self {
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
            BinaryOp::Eq => "=",
            BinaryOp::Neq => "!=",
            BinaryOp::Re => "=~",
            BinaryOp::Nre => "!~",
            BinaryOp::Gt => ">",
            BinaryOp::Gte => ">=",
            BinaryOp::Lt => "<",
            BinaryOp::Lte => "<=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
        }
    }

    /// Binding strength, Tempo's: `&&` = `||` < comparisons < `+ -` <
    /// `* / %` < `^` (right-associative).
    pub(crate) fn precedence(self) -> u8 {
        match self {
            BinaryOp::And | BinaryOp::Or => 2,
            BinaryOp::Eq
            | BinaryOp::Neq
            | BinaryOp::Re
            | BinaryOp::Nre
            | BinaryOp::Gt
            | BinaryOp::Gte
            | BinaryOp::Lt
            | BinaryOp::Lte => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => 6,
            BinaryOp::Pow => 7,
        }
    }

    /// Whether the result is a boolean.
    pub(crate) fn is_boolean(self) -> bool {
        self.precedence() <= 3
    }
}

/// Unary operators inside field expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `!x`
    Not,
    /// `-x`
    Neg,
    /// `x != nil`: the value exists.
    Exists,
    /// `x = nil`: the value does not exist.
    NotExists,
}

/// A constant.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// A string.
    Str(String),
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit float (always finite).
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A duration in nanoseconds.
    Duration(i64),
    /// `ok`, `error`, `unset`.
    Status(StatusCode),
    /// `unspecified`, `internal`, `server`, `client`, `producer`, `consumer`.
    Kind(SpanKind),
}

/// Where an attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `.name`: the span's attributes, then its resource's.
    Unscoped,
    /// `span.name`
    Span,
    /// `resource.name`
    Resource,
    /// `event.name`: an attribute of one of the span's events.
    Event,
    /// `link.name`: an attribute of one of the span's links.
    Link,
    /// `instrumentation.name`: an attribute of the instrumentation scope.
    Instrumentation,
}

impl Scope {
    /// The prefix as written (`span.`, or `.` when unscoped).
    pub fn prefix(self) -> &'static str {
        match self {
            Scope::Unscoped => ".",
            Scope::Span => "span.",
            Scope::Resource => "resource.",
            Scope::Event => "event.",
            Scope::Link => "link.",
            Scope::Instrumentation => "instrumentation.",
        }
    }
}

/// Something read from a span: an intrinsic or a named attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Attribute {
    /// A built-in field.
    Intrinsic(Intrinsic),
    /// An attribute looked up by name.
    Named {
        /// Where it is looked up.
        scope: Scope,
        /// Its key, e.g. `http.request.method`.
        name: String,
    },
}

/// Built-in fields. Unscoped and colon forms that mean the same thing
/// (`duration`, `span:duration`) are one intrinsic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intrinsic {
    /// `duration`, `span:duration`
    Duration,
    /// `name`, `span:name`
    Name,
    /// `status`, `span:status`
    Status,
    /// `statusMessage`, `span:statusMessage`
    StatusMessage,
    /// `kind`, `span:kind`
    Kind,
    /// `span:childCount`: number of direct children.
    ChildCount,
    /// `span:id`, as 16 hex digits.
    SpanId,
    /// `span:parentID`, as 16 hex digits.
    ParentId,
    /// `rootName`, `trace:rootName`
    RootName,
    /// `rootServiceName`, `trace:rootService`
    RootServiceName,
    /// `traceDuration`, `trace:duration`
    TraceDuration,
    /// `trace:id`, as hex.
    TraceId,
    /// `nestedSetLeft`: pre-order number of the span in its trace tree.
    NestedSetLeft,
    /// `nestedSetRight`: post-order bound of the span's subtree.
    NestedSetRight,
    /// `nestedSetParent`: the parent's `nestedSetLeft` (-1 for roots).
    NestedSetParent,
    /// `event:name`
    EventName,
    /// `event:timeSinceStart`
    EventTimeSinceStart,
    /// `link:traceID`
    LinkTraceId,
    /// `link:spanID`
    LinkSpanId,
    /// `instrumentation:name`
    InstrumentationName,
    /// `instrumentation:version`
    InstrumentationVersion,
}

impl Intrinsic {
    /// Every intrinsic.
    pub const ALL: [Intrinsic; 21] = [
        Intrinsic::Duration,
        Intrinsic::Name,
        Intrinsic::Status,
        Intrinsic::StatusMessage,
        Intrinsic::Kind,
        Intrinsic::ChildCount,
        Intrinsic::SpanId,
        Intrinsic::ParentId,
        Intrinsic::RootName,
        Intrinsic::RootServiceName,
        Intrinsic::TraceDuration,
        Intrinsic::TraceId,
        Intrinsic::NestedSetLeft,
        Intrinsic::NestedSetRight,
        Intrinsic::NestedSetParent,
        Intrinsic::EventName,
        Intrinsic::EventTimeSinceStart,
        Intrinsic::LinkTraceId,
        Intrinsic::LinkSpanId,
        Intrinsic::InstrumentationName,
        Intrinsic::InstrumentationVersion,
    ];

    /// The name Tempo writes (and uses as the attribute key in search
    /// results), e.g. `duration`, `span:childCount`, `event:name`.
    pub fn name(self) -> &'static str {
        match self {
            Intrinsic::Duration => "duration",
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::StatusMessage => "statusMessage",
            Intrinsic::Kind => "kind",
            Intrinsic::ChildCount => "span:childCount",
            Intrinsic::SpanId => "span:id",
            Intrinsic::ParentId => "span:parentID",
            Intrinsic::RootName => "rootName",
            Intrinsic::RootServiceName => "rootServiceName",
            Intrinsic::TraceDuration => "traceDuration",
            Intrinsic::TraceId => "trace:id",
            Intrinsic::NestedSetLeft => "nestedSetLeft",
            Intrinsic::NestedSetRight => "nestedSetRight",
            Intrinsic::NestedSetParent => "nestedSetParent",
            Intrinsic::EventName => "event:name",
            Intrinsic::EventTimeSinceStart => "event:timeSinceStart",
            Intrinsic::LinkTraceId => "link:traceID",
            Intrinsic::LinkSpanId => "link:spanID",
            Intrinsic::InstrumentationName => "instrumentation:name",
            Intrinsic::InstrumentationVersion => "instrumentation:version",
        }
    }

    /// The intrinsic an unscoped word names (`duration`, `rootName`, …).
    pub(crate) fn unscoped(word: &str) -> Option<Intrinsic> {
        Some(match word {
            "duration" => Intrinsic::Duration,
            "name" => Intrinsic::Name,
            "status" => Intrinsic::Status,
            "statusMessage" => Intrinsic::StatusMessage,
            "kind" => Intrinsic::Kind,
            "rootName" => Intrinsic::RootName,
            "rootServiceName" => Intrinsic::RootServiceName,
            "traceDuration" => Intrinsic::TraceDuration,
            "nestedSetLeft" => Intrinsic::NestedSetLeft,
            "nestedSetRight" => Intrinsic::NestedSetRight,
            "nestedSetParent" => Intrinsic::NestedSetParent,
            _ => return None,
        })
    }

    /// Whether the value comes from the span's events (`event:…`).
    pub(crate) fn is_event(self) -> bool {
        matches!(self, Intrinsic::EventName | Intrinsic::EventTimeSinceStart)
    }

    /// Whether the value comes from the span's links (`link:…`).
    pub(crate) fn is_link(self) -> bool {
        matches!(self, Intrinsic::LinkTraceId | Intrinsic::LinkSpanId)
    }

    /// Whether the value needs the trace's tree (nested sets, children).
    pub(crate) fn needs_tree(self) -> bool {
        matches!(
            self,
            Intrinsic::ChildCount
                | Intrinsic::NestedSetLeft
                | Intrinsic::NestedSetRight
                | Intrinsic::NestedSetParent
        )
    }
}

impl Attribute {
    /// Whether the value comes from the span's events.
    pub(crate) fn is_event(&self) -> bool {
        match self {
            Attribute::Intrinsic(i) => i.is_event(),
            Attribute::Named { scope, .. } => *scope == Scope::Event,
        }
    }

    /// Whether the value comes from the span's links.
    pub(crate) fn is_link(&self) -> bool {
        match self {
            Attribute::Intrinsic(i) => i.is_link(),
            Attribute::Named { scope, .. } => *scope == Scope::Link,
        }
    }

    /// The key Tempo gives this attribute in search results: the bare
    /// attribute name, or the intrinsic's name.
    pub fn result_key(&self) -> &str {
        match self {
            Attribute::Intrinsic(i) => i.name(),
            Attribute::Named { name, .. } => name,
        }
    }
}

impl FieldExpr {
    /// Calls `f` on every attribute the expression reads, left to right.
    pub fn visit_attributes<'a>(&'a self, f: &mut impl FnMut(&'a Attribute)) {
        match self {
            FieldExpr::Literal(_) => {}
            FieldExpr::Attr(a) => f(a),
            FieldExpr::Binary(_, l, r) => {
                l.visit_attributes(f);
                r.visit_attributes(f);
            }
            FieldExpr::Unary(_, e) => e.visit_attributes(f),
        }
    }

    /// Whether the expression reads anything from the span.
    pub(crate) fn references_span(&self) -> bool {
        let mut any = false;
        self.visit_attributes(&mut |_| any = true);
        any
    }
}

impl SpansetExpr {
    /// Calls `f` on every attribute the expression reads, left to right
    /// (filters, `by()`, aggregates and `select()`).
    pub fn visit_attributes<'a>(&'a self, f: &mut impl FnMut(&'a Attribute)) {
        match self {
            SpansetExpr::Filter(e) => e.visit_attributes(f),
            SpansetExpr::Op(_, l, r) => {
                l.visit_attributes(f);
                r.visit_attributes(f);
            }
            SpansetExpr::Pipeline(stages) => {
                for stage in stages {
                    match stage {
                        Stage::Spansets(e) => e.visit_attributes(f),
                        Stage::ScalarFilter(sf) => {
                            if let Some(arg) = &sf.aggregate.arg {
                                arg.visit_attributes(f);
                            }
                        }
                        Stage::By(e) => e.visit_attributes(f),
                        Stage::Select(attrs) => attrs.iter().for_each(&mut *f),
                        Stage::Coalesce => {}
                    }
                }
            }
        }
    }

    /// Whether evaluation needs the trace's tree: structural operators or
    /// tree intrinsics.
    pub(crate) fn needs_tree(&self) -> bool {
        let mut needs = self.has_structural_op();
        self.visit_attributes(&mut |a| {
            if let Attribute::Intrinsic(i) = a {
                needs |= i.needs_tree();
            }
        });
        needs
    }

    fn has_structural_op(&self) -> bool {
        match self {
            SpansetExpr::Filter(_) => false,
            SpansetExpr::Op(op, l, r) => {
                !matches!(op, SpansetOp::And | SpansetOp::Or)
                    || l.has_structural_op()
                    || r.has_structural_op()
            }
            SpansetExpr::Pipeline(stages) => stages.iter().any(|s| match s {
                Stage::Spansets(e) => e.has_structural_op(),
                _ => false,
            }),
        }
    }
}

/// A query hint: `with(name = value, …)` after the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Hint {
    /// Hint name, e.g. `most_recent`.
    pub name: String,
    /// Its value.
    pub value: Literal,
}
