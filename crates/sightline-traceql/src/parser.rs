//! A precedence-climbing parser for Tempo's grammar (`pkg/traceql/expr.y`),
//! with Tempo's validation (`ast_validate.go`) and constant folding done
//! as each node is built.
//!
//! Two expression levels share one operator table: field expressions
//! inside `{ }` and pipeline expressions outside. At the pipeline level the
//! same token means different things by operand kind (`>` is "child" between
//! spansets and "greater than" after an aggregate), so the parser builds
//! [`Node`]s that remember their kind and checks the combination.
//!
//! Syntax errors stop parsing at once. Validation problems (types,
//! unsupported constructs) are remembered and reported after the whole
//! query has parsed, so a query with both reports its syntax error first —
//! the order Tempo reports them in.

use regex::Regex;
use sightline_model::{SpanKind, StatusCode};

use crate::ast::*;
use crate::error::{ErrorKind, ParseError};
use crate::lexer::{ColonScope, Op, Tok, Token, lex};
use crate::value::{self, Type, Val};

/// How deeply parentheses and prefix operators may nest.
const MAX_NESTING: usize = 128;
/// How many nodes a query may have; bounds the depth of every tree walk.
const MAX_NODES: usize = 1000;

/// The functions of TraceQL metrics queries.
const METRICS_FUNCTIONS: [&str; 11] = [
    "rate",
    "count_over_time",
    "min_over_time",
    "max_over_time",
    "avg_over_time",
    "sum_over_time",
    "quantile_over_time",
    "histogram_over_time",
    "compare",
    "topk",
    "bottomk",
];

/// A parsed, validated query.
pub(crate) struct Parsed {
    pub(crate) root: SpansetExpr,
    pub(crate) hints: Vec<Hint>,
    pub(crate) regexes: Vec<(String, Regex)>,
}

pub(crate) fn parse(text: &str) -> Result<Parsed, ParseError> {
    let tokens = lex(text)?;
    let mut p = Parser { text, tokens, at: 0, deferred: None, regexes: Vec::new(), nesting: 0, nodes: 0 };
    let root = p.root()?;
    let hints = p.hints()?;
    if p.peek() != &Tok::Eof {
        return Err(p.unexpected("an operator or the end of the query"));
    }
    if let Some(err) = p.deferred {
        return Err(err);
    }
    Ok(Parsed { root, hints, regexes: p.regexes })
}

/// A field expression with its static type.
struct Typed {
    expr: FieldExpr,
    ty: Type,
}

/// A scalar at the pipeline level.
#[derive(Clone)]
enum Scalar {
    Literal(Literal),
    Aggregate(Aggregate),
    /// Arithmetic or a parenthesized pipeline; only its having an
    /// aggregate matters, since Tempo supports none of these in filters.
    Compound {
        has_aggregate: bool,
    },
}

impl Scalar {
    fn has_aggregate(&self) -> bool {
        match self {
            Scalar::Literal(_) => false,
            Scalar::Aggregate(_) => true,
            Scalar::Compound { has_aggregate } => *has_aggregate,
        }
    }
}

/// A pipeline-level expression, by kind.
enum Node {
    /// Filters joined by spanset operators. `has_pipeline` when an operand
    /// is a parenthesized pipeline: allowed only at the top level.
    Spansets {
        expr: SpansetExpr,
        has_pipeline: bool,
    },
    /// `a | b | …`, not parenthesized.
    Pipeline(Vec<Stage>),
    /// `( pipeline )`.
    Wrapped(Vec<Stage>),
    ScalarFilter(ScalarFilter),
    /// `by()`, `select()`, `coalesce()`.
    Stage(Stage),
    Scalar(Scalar),
    /// `… | aggregate`: only meaningful parenthesized and compared.
    ScalarPipeline,
}

impl Node {
    fn describe(&self) -> &'static str {
        match self {
            Node::Spansets { .. } | Node::Wrapped(_) => "a spanset",
            Node::Pipeline(_) => "a pipeline",
            Node::ScalarFilter(_) => "a scalar filter",
            Node::Stage(Stage::By(_)) => "by()",
            Node::Stage(Stage::Select(_)) => "select()",
            Node::Stage(_) => "coalesce()",
            Node::Scalar(_) | Node::ScalarPipeline => "a number",
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    at: usize,
    deferred: Option<ParseError>,
    regexes: Vec<(String, Regex)>,
    nesting: usize,
    nodes: usize,
}

impl Parser<'_> {
    // ---- tokens ----

    fn peek(&self) -> &Tok {
        &self.tokens[self.at.min(self.tokens.len() - 1)].tok
    }

    fn offset(&self) -> usize {
        self.tokens[self.at.min(self.tokens.len() - 1)].offset
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        tok
    }

    fn peek_word(&self) -> Option<&str> {
        match self.peek() {
            Tok::Ident(w) => Some(w),
            _ => None,
        }
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(ErrorKind::Syntax, self.text, offset, message)
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        self.error(self.offset(), format!("expected {expected}, found {}", self.peek().describe()))
    }

    fn expect(&mut self, op: Op) -> Result<(), ParseError> {
        if self.peek() == &Tok::Op(op) {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{}`", op.text())))
        }
    }

    /// Remembers a validation problem; the first one is reported if the
    /// query parses.
    fn defer(&mut self, kind: ErrorKind, offset: usize, message: String) {
        if self.deferred.is_none() {
            self.deferred = Some(ParseError::new(kind, self.text, offset, message));
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(self.error(self.offset(), format!("query nests deeper than {MAX_NESTING} levels")));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn count_node(&mut self) -> Result<(), ParseError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(self.error(self.offset(), format!("query has more than {MAX_NODES} terms")));
        }
        Ok(())
    }

    // ---- pipeline level ----

    fn root(&mut self) -> Result<SpansetExpr, ParseError> {
        let offset = self.offset();
        let node = self.pipe_expr(0)?;
        match node {
            Node::Spansets { expr, .. } => Ok(expr),
            Node::Pipeline(stages) => Ok(SpansetExpr::Pipeline(stages)),
            Node::Wrapped(stages) => Ok(SpansetExpr::Pipeline(stages)),
            Node::ScalarFilter(sf) => Ok(SpansetExpr::Pipeline(vec![Stage::ScalarFilter(sf)])),
            Node::Stage(Stage::Coalesce) => {
                Err(self.error(offset, "a pipeline cannot start with coalesce()"))
            }
            Node::Stage(stage) => Ok(SpansetExpr::Pipeline(vec![stage])),
            Node::Scalar(_) | Node::ScalarPipeline => Err(self.error(
                offset,
                "a query must select spans: compare aggregates with a number (`{ } | count() > 2`)",
            )),
        }
    }

    fn hints(&mut self) -> Result<Vec<Hint>, ParseError> {
        if self.peek_word() != Some("with") {
            return Ok(Vec::new());
        }
        self.bump();
        self.expect(Op::LParen)?;
        let mut hints = Vec::new();
        loop {
            let Tok::Ident(name) = self.peek().clone() else {
                return Err(self.unexpected("a hint name"));
            };
            self.bump();
            self.expect(Op::Eq)?;
            let value = match self.peek().clone() {
                Tok::Str(s) => Literal::Str(s),
                Tok::Int(n) => Literal::Int(n),
                Tok::Float(x) => Literal::Float(x),
                Tok::Duration(d) => Literal::Duration(d),
                Tok::Ident(word) => match keyword_literal(&word) {
                    Some(lit) => lit,
                    None => return Err(self.error(self.offset(), format!("unknown identifier `{word}`"))),
                },
                _ => return Err(self.unexpected("a hint value")),
            };
            self.bump();
            hints.push(Hint { name, value });
            if self.peek() == &Tok::Op(Op::Comma) {
                self.bump();
                continue;
            }
            self.expect(Op::RParen)?;
            return Ok(hints);
        }
    }

    /// Operators at the pipeline level: (precedence, right-associative).
    fn pipe_op(tok: &Tok) -> Option<(u8, bool)> {
        let Tok::Op(op) = tok else { return None };
        Some(match op {
            Op::Pipe => (1, false),
            Op::And | Op::Or => (2, false),
            Op::Eq
            | Op::Neq
            | Op::Gt
            | Op::Gte
            | Op::Lt
            | Op::Lte
            | Op::Re
            | Op::Nre
            | Op::Desc
            | Op::Ance
            | Op::Sibl
            | Op::NotChild
            | Op::NotParent
            | Op::NotDesc
            | Op::NotAnce
            | Op::UnionChild
            | Op::UnionParent
            | Op::UnionDesc
            | Op::UnionAnce
            | Op::UnionSibl => (3, false),
            Op::Add | Op::Sub => (4, false),
            Op::Mul | Op::Div | Op::Mod => (6, false),
            Op::Pow => (7, true),
            _ => return None,
        })
    }

    fn pipe_expr(&mut self, min: u8) -> Result<Node, ParseError> {
        self.enter()?;
        let mut lhs = self.pipe_prefix()?;
        while let Some((prec, right)) = Self::pipe_op(self.peek()) {
            if prec < min {
                break;
            }
            let offset = self.offset();
            let Tok::Op(op) = self.bump() else { unreachable!("pipe_op only matches operators") };
            let rhs = self.pipe_expr(if right { prec } else { prec + 1 })?;
            lhs = self.combine(op, offset, lhs, rhs)?;
        }
        self.leave();
        Ok(lhs)
    }

    fn pipe_prefix(&mut self) -> Result<Node, ParseError> {
        let offset = self.offset();
        match self.peek().clone() {
            Tok::Op(Op::LBrace) => {
                self.bump();
                let expr = self.filter_body(offset)?;
                Ok(Node::Spansets { expr, has_pipeline: false })
            }
            Tok::Op(Op::LParen) => {
                self.bump();
                let inner = self.pipe_expr(0)?;
                self.expect(Op::RParen)?;
                Ok(match inner {
                    Node::Pipeline(stages) | Node::Wrapped(stages) => Node::Wrapped(stages),
                    Node::ScalarFilter(sf) => Node::Wrapped(vec![Stage::ScalarFilter(sf)]),
                    Node::Stage(Stage::Coalesce) => {
                        return Err(self.error(offset + 1, "a pipeline cannot start with coalesce()"));
                    }
                    Node::Stage(stage) => Node::Wrapped(vec![stage]),
                    Node::ScalarPipeline => Node::Scalar(Scalar::Compound { has_aggregate: true }),
                    other @ (Node::Spansets { .. } | Node::Scalar(_)) => other,
                })
            }
            Tok::Op(Op::Sub) => {
                self.bump();
                let operand = self.pipe_expr(8)?;
                match operand {
                    Node::Scalar(Scalar::Literal(lit)) => {
                        let negated = value::unary(UnaryOp::Neg, Val::from_literal(&lit)).into_literal();
                        Ok(Node::Scalar(Scalar::Literal(negated.unwrap_or(lit))))
                    }
                    _ => Err(self.error(offset, "`-` applies only to numbers outside of `{ }`")),
                }
            }
            Tok::Int(n) => {
                self.bump();
                Ok(Node::Scalar(Scalar::Literal(Literal::Int(n))))
            }
            Tok::Float(x) => {
                self.bump();
                Ok(Node::Scalar(Scalar::Literal(Literal::Float(x))))
            }
            Tok::Duration(d) => {
                self.bump();
                Ok(Node::Scalar(Scalar::Literal(Literal::Duration(d))))
            }
            Tok::Ident(word) => self.pipe_word(&word, offset),
            _ => Err(self.unexpected("a spanset filter `{ … }`, an aggregate or a pipeline stage")),
        }
    }

    fn pipe_word(&mut self, word: &str, offset: usize) -> Result<Node, ParseError> {
        let func = match word {
            "count" => Some(AggregateFn::Count),
            "avg" => Some(AggregateFn::Avg),
            "min" => Some(AggregateFn::Min),
            "max" => Some(AggregateFn::Max),
            "sum" => Some(AggregateFn::Sum),
            _ => None,
        };
        if let Some(func) = func {
            self.bump();
            return Ok(Node::Scalar(Scalar::Aggregate(self.aggregate(func, offset)?)));
        }
        if let Some(lit @ Literal::Int(_)) = keyword_literal(word) {
            // Not in Tempo's scalar grammar, but printing a folded
            // `i64::MIN` yields it.
            self.bump();
            return Ok(Node::Scalar(Scalar::Literal(lit)));
        }
        if METRICS_FUNCTIONS.contains(&word) {
            return Err(ParseError::new(
                ErrorKind::Metrics,
                self.text,
                offset,
                format!(
                    "{word}() is a TraceQL metrics function; metrics queries compute time series and are not served by trace search"
                ),
            ));
        }
        match word {
            "by" => {
                self.bump();
                self.expect(Op::LParen)?;
                let e = self.field_expr(0)?;
                self.expect(Op::RParen)?;
                if !e.expr.references_span() {
                    self.defer(
                        ErrorKind::Invalid,
                        offset,
                        format!("grouping field expressions must reference the span: by({})", e.expr),
                    );
                }
                self.count_node()?;
                Ok(Node::Stage(Stage::By(e.expr)))
            }
            "select" => {
                self.bump();
                self.expect(Op::LParen)?;
                let mut attrs = vec![self.select_attribute()?];
                while self.peek() == &Tok::Op(Op::Comma) {
                    self.bump();
                    attrs.push(self.select_attribute()?);
                }
                self.expect(Op::RParen)?;
                self.count_node()?;
                Ok(Node::Stage(Stage::Select(attrs)))
            }
            "coalesce" => {
                self.bump();
                self.expect(Op::LParen)?;
                self.expect(Op::RParen)?;
                Ok(Node::Stage(Stage::Coalesce))
            }
            _ => Err(self.unexpected("a spanset filter `{ … }`, an aggregate or a pipeline stage")),
        }
    }

    fn aggregate(&mut self, func: AggregateFn, offset: usize) -> Result<Aggregate, ParseError> {
        self.expect(Op::LParen)?;
        if func == AggregateFn::Count {
            self.expect(Op::RParen)?;
            self.count_node()?;
            return Ok(Aggregate { func, arg: None });
        }
        if self.peek() == &Tok::Op(Op::RParen) {
            return Err(self.unexpected(&format!("the field {}() aggregates", func.name())));
        }
        let arg = self.field_expr(0)?;
        self.expect(Op::RParen)?;
        self.count_node()?;
        let numeric = matches!(arg.ty, Type::Any | Type::Int | Type::Float | Type::Duration);
        let references = arg.expr.references_span();
        let agg = Aggregate { func, arg: Some(arg.expr) };
        if !numeric {
            self.defer(
                ErrorKind::Invalid,
                offset,
                format!("aggregate field expressions must resolve to a number type: {agg}"),
            );
        } else if !references {
            self.defer(
                ErrorKind::Invalid,
                offset,
                format!("aggregate field expressions must reference the span: {agg}"),
            );
        }
        Ok(agg)
    }

    fn select_attribute(&mut self) -> Result<Attribute, ParseError> {
        let offset = self.offset();
        let typed = match self.peek() {
            Tok::Attr { .. } | Tok::ColonScope(_) => self.field_prefix()?,
            Tok::Ident(w) if Intrinsic::unscoped(w).is_some() || w == "parent" => self.field_prefix()?,
            _ => return Err(self.unexpected("an attribute or intrinsic")),
        };
        match typed.expr {
            FieldExpr::Attr(a) => Ok(a),
            _ => Err(self.error(offset, "select() takes attributes and intrinsics only")),
        }
    }

    fn combine(&mut self, op: Op, offset: usize, lhs: Node, rhs: Node) -> Result<Node, ParseError> {
        self.count_node()?;
        let structural = match op {
            Op::And => Some(SpansetOp::And),
            Op::Or => Some(SpansetOp::Or),
            Op::Desc => Some(SpansetOp::Descendant),
            Op::Ance => Some(SpansetOp::Ancestor),
            Op::Sibl => Some(SpansetOp::Sibling),
            Op::NotChild => Some(SpansetOp::NotChild),
            Op::NotParent => Some(SpansetOp::NotParent),
            Op::NotDesc => Some(SpansetOp::NotDescendant),
            Op::NotAnce => Some(SpansetOp::NotAncestor),
            Op::Nre => Some(SpansetOp::NotSibling),
            Op::UnionChild => Some(SpansetOp::UnionChild),
            Op::UnionParent => Some(SpansetOp::UnionParent),
            Op::UnionDesc => Some(SpansetOp::UnionDescendant),
            Op::UnionAnce => Some(SpansetOp::UnionAncestor),
            Op::UnionSibl => Some(SpansetOp::UnionSibling),
            Op::Gt if is_spanset(&lhs) => Some(SpansetOp::Child),
            Op::Lt if is_spanset(&lhs) => Some(SpansetOp::Parent),
            _ => None,
        };
        if let Some(sop) = structural {
            return self.spanset_op(sop, offset, lhs, rhs);
        }
        match op {
            Op::Pipe => self.pipe(offset, lhs, rhs),
            Op::Eq | Op::Neq | Op::Gt | Op::Gte | Op::Lt | Op::Lte => {
                self.scalar_filter(op, offset, lhs, rhs)
            }
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Mod | Op::Pow => {
                self.scalar_arith(op, offset, lhs, rhs)
            }
            _ => Err(self.error(
                offset,
                format!("`{}` cannot be used between {} and {}", op.text(), lhs.describe(), rhs.describe()),
            )),
        }
    }

    fn spanset_op(&mut self, op: SpansetOp, offset: usize, lhs: Node, rhs: Node) -> Result<Node, ParseError> {
        let mismatch = |p: &Self, node: &Node| {
            p.error(offset, format!("`{}` combines spansets, not {}", op.text(), node.describe()))
        };
        let (l, lp) = match lhs {
            Node::Spansets { expr, has_pipeline } => (expr, has_pipeline),
            Node::Wrapped(stages) => (SpansetExpr::Pipeline(stages), true),
            other => return Err(mismatch(self, &other)),
        };
        let (r, rp) = match rhs {
            Node::Spansets { expr, has_pipeline } => (expr, has_pipeline),
            Node::Wrapped(stages) => (SpansetExpr::Pipeline(stages), true),
            other => return Err(mismatch(self, &other)),
        };
        Ok(Node::Spansets { expr: SpansetExpr::Op(op, Box::new(l), Box::new(r)), has_pipeline: lp || rp })
    }

    fn stage(&self, offset: usize, node: Node, first: bool) -> Result<Stage, ParseError> {
        match node {
            Node::Spansets { expr, has_pipeline: false } => Ok(Stage::Spansets(expr)),
            Node::Spansets { has_pipeline: true, .. } | Node::Wrapped(_) => Err(self.error(
                offset,
                "a parenthesized pipeline can only be combined with spanset operators at the top level of a query",
            )),
            Node::ScalarFilter(sf) => Ok(Stage::ScalarFilter(sf)),
            Node::Stage(Stage::Coalesce) if first => Err(self.error(offset, "a pipeline cannot start with coalesce()")),
            Node::Stage(stage) => Ok(stage),
            Node::Scalar(_) | Node::ScalarPipeline | Node::Pipeline(_) => {
                Err(self.error(offset, "an aggregate in a pipeline must be compared with a number, e.g. `| count() > 2`"))
            }
        }
    }

    fn pipe(&mut self, offset: usize, lhs: Node, rhs: Node) -> Result<Node, ParseError> {
        let mut stages = match lhs {
            Node::Pipeline(stages) => stages,
            other => vec![self.stage(offset, other, true)?],
        };
        if let Node::Scalar(s) = &rhs
            && s.has_aggregate()
        {
            return Ok(Node::ScalarPipeline);
        }
        stages.push(self.stage(offset, rhs, false)?);
        Ok(Node::Pipeline(stages))
    }

    fn scalar_filter(&mut self, op: Op, offset: usize, lhs: Node, rhs: Node) -> Result<Node, ParseError> {
        let (Node::Scalar(l), Node::Scalar(r)) = (lhs, rhs) else {
            return Err(self.error(offset, format!("`{}` compares numbers; spansets are joined with && || > < >> << ~ and their negated and union forms", op.text())));
        };
        if !l.has_aggregate() && !r.has_aggregate() {
            return Err(
                self.error(offset, "a scalar filter needs an aggregate such as count() or avg(duration)")
            );
        }
        let cmp = match op {
            Op::Eq => CmpOp::Eq,
            Op::Neq => CmpOp::Neq,
            Op::Gt => CmpOp::Gt,
            Op::Gte => CmpOp::Gte,
            Op::Lt => CmpOp::Lt,
            _ => CmpOp::Lte,
        };
        match (l, r) {
            (Scalar::Aggregate(aggregate), Scalar::Literal(value)) => {
                Ok(Node::ScalarFilter(ScalarFilter { op: cmp, aggregate, value }))
            }
            _ => {
                self.defer(
                    ErrorKind::Unsupported,
                    offset,
                    "scalar filters are supported only as an aggregate compared with a number (`count() > 2`, `avg(duration) > 1s`); arithmetic on aggregates, numbers on the left and pipelines compared with each other are not".to_owned(),
                );
                Ok(Node::ScalarFilter(ScalarFilter {
                    op: cmp,
                    aggregate: Aggregate { func: AggregateFn::Count, arg: None },
                    value: Literal::Int(0),
                }))
            }
        }
    }

    fn scalar_arith(&mut self, op: Op, offset: usize, lhs: Node, rhs: Node) -> Result<Node, ParseError> {
        let (Node::Scalar(l), Node::Scalar(r)) = (lhs, rhs) else {
            return Err(self.error(offset, format!("`{}` applies to numbers, not spansets", op.text())));
        };
        let bop = arith_op(op);
        if let (Scalar::Literal(a), Scalar::Literal(b)) = (&l, &r) {
            match value::binary(bop, Val::from_literal(a), Val::from_literal(b), &self.regexes[..]) {
                Ok(v) => {
                    if let Some(lit) = v.into_literal() {
                        return Ok(Node::Scalar(Scalar::Literal(lit)));
                    }
                }
                Err(e) => self.defer(ErrorKind::Invalid, offset, format!("{e}: {a} {} {b}", op.text())),
            }
        }
        Ok(Node::Scalar(Scalar::Compound { has_aggregate: l.has_aggregate() || r.has_aggregate() }))
    }

    // ---- field level ----

    /// `{ … }` after the brace; the filter's expression must be boolean.
    fn filter_body(&mut self, offset: usize) -> Result<SpansetExpr, ParseError> {
        self.count_node()?;
        if self.peek() == &Tok::Op(Op::RBrace) {
            self.bump();
            return Ok(SpansetExpr::Filter(FieldExpr::Literal(Literal::Bool(true))));
        }
        let e = self.field_expr(0)?;
        if self.peek() != &Tok::Op(Op::RBrace) {
            return Err(self.unexpected("an operator or `}`"));
        }
        self.bump();
        if !matches!(e.ty, Type::Any | Type::Bool) {
            self.defer(
                ErrorKind::Invalid,
                offset,
                format!("span filter field expressions must resolve to a boolean: {{ {} }}", e.expr),
            );
        }
        Ok(SpansetExpr::Filter(e.expr))
    }

    fn field_op(tok: &Tok) -> Option<BinaryOp> {
        let Tok::Op(op) = tok else { return None };
        Some(match op {
            Op::And => BinaryOp::And,
            Op::Or => BinaryOp::Or,
            Op::Eq => BinaryOp::Eq,
            Op::Neq => BinaryOp::Neq,
            Op::Re => BinaryOp::Re,
            Op::Nre => BinaryOp::Nre,
            Op::Gt => BinaryOp::Gt,
            Op::Gte => BinaryOp::Gte,
            Op::Lt => BinaryOp::Lt,
            Op::Lte => BinaryOp::Lte,
            Op::Add => BinaryOp::Add,
            Op::Sub => BinaryOp::Sub,
            Op::Mul => BinaryOp::Mul,
            Op::Div => BinaryOp::Div,
            Op::Mod => BinaryOp::Mod,
            Op::Pow => BinaryOp::Pow,
            _ => return None,
        })
    }

    fn field_expr(&mut self, min: u8) -> Result<Typed, ParseError> {
        self.enter()?;
        let mut lhs = self.field_prefix()?;
        while let Some(op) = Self::field_op(self.peek()) {
            let prec = op.precedence();
            if prec < min {
                break;
            }
            let offset = self.offset();
            self.bump();
            if matches!(op, BinaryOp::Eq | BinaryOp::Neq) && self.peek_word() == Some("nil") {
                self.bump();
                let uop = if op == BinaryOp::Eq { UnaryOp::NotExists } else { UnaryOp::Exists };
                lhs = self.make_unary(uop, offset, lhs)?;
                continue;
            }
            let rhs = self.field_expr(if op == BinaryOp::Pow { prec } else { prec + 1 })?;
            lhs = self.make_binary(op, offset, lhs, rhs)?;
        }
        self.leave();
        Ok(lhs)
    }

    fn field_prefix(&mut self) -> Result<Typed, ParseError> {
        let offset = self.offset();
        match self.peek().clone() {
            Tok::Op(Op::LParen) => {
                self.bump();
                let e = self.field_expr(0)?;
                self.expect(Op::RParen)?;
                Ok(e)
            }
            Tok::Op(Op::Not) => {
                self.bump();
                self.enter()?;
                let operand = self.field_expr(BinaryOp::Mul.precedence())?;
                self.leave();
                self.make_unary(UnaryOp::Not, offset, operand)
            }
            Tok::Op(Op::Sub) => {
                self.bump();
                self.enter()?;
                let operand = self.field_expr(BinaryOp::Add.precedence() + 1)?;
                self.leave();
                self.make_unary(UnaryOp::Neg, offset, operand)
            }
            Tok::Str(s) => {
                self.bump();
                self.literal(Literal::Str(s))
            }
            Tok::Int(n) => {
                self.bump();
                self.literal(Literal::Int(n))
            }
            Tok::Float(x) => {
                self.bump();
                self.literal(Literal::Float(x))
            }
            Tok::Duration(d) => {
                self.bump();
                self.literal(Literal::Duration(d))
            }
            Tok::Ident(word) => {
                self.bump();
                if word == "nil" {
                    return self.nil_comparison(offset);
                }
                if let Some(lit) = keyword_literal(&word) {
                    return self.literal(lit);
                }
                if let Some(i) = Intrinsic::unscoped(&word) {
                    return self.attribute(Attribute::Intrinsic(i));
                }
                if word == "parent" {
                    self.defer(
                        ErrorKind::Unsupported,
                        offset,
                        "the parent intrinsic is not supported".to_owned(),
                    );
                    return self.attribute(Attribute::Named { scope: Scope::Unscoped, name: word });
                }
                Err(self.error(offset, format!("unknown identifier `{word}`")))
            }
            Tok::ColonScope(scope) => {
                self.bump();
                let word = match self.peek() {
                    Tok::Ident(w) => w.clone(),
                    _ => return Err(self.unexpected(&format!("an intrinsic after `{}:`", scope.name()))),
                };
                self.bump();
                let Some(i) = scoped_intrinsic(scope, &word) else {
                    return Err(self.error(offset, format!("`{}:{word}` is not an intrinsic", scope.name())));
                };
                self.attribute(Attribute::Intrinsic(i))
            }
            Tok::Attr { scope, parent, name } => {
                self.bump();
                if parent {
                    self.defer(
                        ErrorKind::Unsupported,
                        offset,
                        "the parent scope (`parent.`) is not supported".to_owned(),
                    );
                }
                self.attribute(Attribute::Named { scope, name })
            }
            _ => Err(self.unexpected("a value, an attribute or an intrinsic")),
        }
    }

    fn literal(&mut self, lit: Literal) -> Result<Typed, ParseError> {
        self.count_node()?;
        let ty = Val::from_literal(&lit).ty();
        Ok(Typed { expr: FieldExpr::Literal(lit), ty })
    }

    fn attribute(&mut self, a: Attribute) -> Result<Typed, ParseError> {
        self.count_node()?;
        let ty = match &a {
            Attribute::Intrinsic(i) => intrinsic_type(*i),
            Attribute::Named { .. } => Type::Any,
        };
        Ok(Typed { expr: FieldExpr::Attr(a), ty })
    }

    /// `nil = x`, `nil != x`, `nil = nil` (always false, as in Tempo).
    fn nil_comparison(&mut self, offset: usize) -> Result<Typed, ParseError> {
        let op_offset = self.offset();
        let op = match self.peek() {
            Tok::Op(Op::Eq) => UnaryOp::NotExists,
            Tok::Op(Op::Neq) => UnaryOp::Exists,
            _ => return Err(self.error(offset, "nil can only be compared with = or !=")),
        };
        self.bump();
        if self.peek_word() == Some("nil") {
            self.bump();
            return self.literal(Literal::Bool(false));
        }
        let operand = self.field_expr(BinaryOp::Eq.precedence() + 1)?;
        self.make_unary(op, op_offset, operand)
    }

    fn make_unary(&mut self, op: UnaryOp, offset: usize, operand: Typed) -> Result<Typed, ParseError> {
        self.count_node()?;
        let before = self.deferred.is_some();
        if op == UnaryOp::NotExists {
            match &operand.expr {
                FieldExpr::Attr(a @ Attribute::Intrinsic(_)) => self.defer(
                    ErrorKind::Invalid,
                    offset,
                    format!("{a} = nil is not valid because intrinsics cannot be nil"),
                ),
                FieldExpr::Attr(a @ Attribute::Named { scope: Scope::Resource, name })
                    if name == "service.name" =>
                {
                    self.defer(
                        ErrorKind::Invalid,
                        offset,
                        format!("{a} = nil is not valid because {a} cannot be nil"),
                    )
                }
                _ => {}
            }
        }
        let valid = match op {
            UnaryOp::Exists | UnaryOp::NotExists => true,
            UnaryOp::Neg => matches!(operand.ty, Type::Any | Type::Int | Type::Float | Type::Duration),
            UnaryOp::Not => matches!(operand.ty, Type::Any | Type::Bool),
        };
        let ty = match op {
            UnaryOp::Exists | UnaryOp::NotExists => Type::Bool,
            _ => operand.ty,
        };
        let expr = FieldExpr::Unary(op, Box::new(operand.expr));
        if !valid {
            self.defer(ErrorKind::Invalid, offset, format!("illegal operation for the given type: {expr}"));
        }
        if !before
            && self.deferred.is_none()
            && let FieldExpr::Unary(_, inner) = &expr
            && let FieldExpr::Literal(lit) = &**inner
            && let Some(folded) = value::unary(op, Val::from_literal(lit)).into_literal()
        {
            return Ok(Typed { expr: FieldExpr::Literal(folded), ty });
        }
        Ok(Typed { expr, ty })
    }

    fn make_binary(&mut self, op: BinaryOp, offset: usize, l: Typed, r: Typed) -> Result<Typed, ParseError> {
        self.count_node()?;
        let before = self.deferred.is_some();
        let ty = if op.is_boolean() {
            Type::Bool
        } else if l.ty != Type::Any {
            l.ty
        } else {
            r.ty
        };
        let expr = FieldExpr::Binary(op, Box::new(l.expr), Box::new(r.expr));
        let FieldExpr::Binary(_, lhs, rhs) = &expr else { unreachable!("just built") };
        if !value::types_match(l.ty, r.ty) {
            self.defer(
                ErrorKind::Invalid,
                offset,
                format!("binary operations must operate on the same type: {expr}"),
            );
        } else if !value::op_applies(op, l.ty) || !value::op_applies(op, r.ty) {
            self.defer(ErrorKind::Invalid, offset, format!("illegal operation for the given types: {expr}"));
        } else if matches!(op, BinaryOp::Re | BinaryOp::Nre) {
            match &**rhs {
                FieldExpr::Literal(Literal::Str(pattern)) => {
                    if self.regexes.iter().all(|(p, _)| p != pattern) {
                        match value::compile_regex(pattern) {
                            Ok(re) => self.regexes.push((pattern.clone(), re)),
                            Err(e) => {
                                let reason = e.to_string();
                                let reason = reason.lines().last().unwrap_or_default().trim().to_owned();
                                self.defer(
                                    ErrorKind::Invalid,
                                    offset,
                                    format!("invalid regex {}: {reason}", rhs),
                                );
                            }
                        }
                    }
                }
                _ => self.defer(
                    ErrorKind::Invalid,
                    offset,
                    format!("the right side of {} must be a string literal: {expr}", op.text()),
                ),
            }
        }
        if !before
            && self.deferred.is_none()
            && let (FieldExpr::Literal(a), FieldExpr::Literal(b)) = (&**lhs, &**rhs)
        {
            match value::binary(op, Val::from_literal(a), Val::from_literal(b), &self.regexes[..]) {
                Ok(v) => {
                    if let Some(folded) = v.into_literal() {
                        return Ok(Typed { expr: FieldExpr::Literal(folded), ty });
                    }
                }
                Err(e) => self.defer(ErrorKind::Invalid, offset, format!("{e}: {expr}")),
            }
        }
        Ok(Typed { expr, ty })
    }
}

fn is_spanset(node: &Node) -> bool {
    matches!(node, Node::Spansets { .. } | Node::Wrapped(_))
}

fn arith_op(op: Op) -> BinaryOp {
    match op {
        Op::Add => BinaryOp::Add,
        Op::Sub => BinaryOp::Sub,
        Op::Mul => BinaryOp::Mul,
        Op::Div => BinaryOp::Div,
        Op::Mod => BinaryOp::Mod,
        _ => BinaryOp::Pow,
    }
}

/// Keywords that are constants.
fn keyword_literal(word: &str) -> Option<Literal> {
    Some(match word {
        "true" => Literal::Bool(true),
        "false" => Literal::Bool(false),
        "ok" => Literal::Status(StatusCode::Ok),
        "error" => Literal::Status(StatusCode::Error),
        "unset" => Literal::Status(StatusCode::Unset),
        "unspecified" => Literal::Kind(SpanKind::Unspecified),
        "internal" => Literal::Kind(SpanKind::Internal),
        "server" => Literal::Kind(SpanKind::Server),
        "client" => Literal::Kind(SpanKind::Client),
        "producer" => Literal::Kind(SpanKind::Producer),
        "consumer" => Literal::Kind(SpanKind::Consumer),
        "minInt" => Literal::Int(i64::MIN),
        "maxInt" => Literal::Int(i64::MAX),
        _ => return None,
    })
}

/// The intrinsics the colon forms name (Tempo's `scopedIntrinsicField`).
fn scoped_intrinsic(scope: ColonScope, word: &str) -> Option<Intrinsic> {
    Some(match (scope, word) {
        (ColonScope::Trace, "duration") => Intrinsic::TraceDuration,
        (ColonScope::Trace, "rootName") => Intrinsic::RootName,
        (ColonScope::Trace, "rootService") => Intrinsic::RootServiceName,
        (ColonScope::Trace, "id") => Intrinsic::TraceId,
        (ColonScope::Span, "duration") => Intrinsic::Duration,
        (ColonScope::Span, "name") => Intrinsic::Name,
        (ColonScope::Span, "kind") => Intrinsic::Kind,
        (ColonScope::Span, "status") => Intrinsic::Status,
        (ColonScope::Span, "statusMessage") => Intrinsic::StatusMessage,
        (ColonScope::Span, "id") => Intrinsic::SpanId,
        (ColonScope::Span, "parentID") => Intrinsic::ParentId,
        (ColonScope::Span, "childCount") => Intrinsic::ChildCount,
        (ColonScope::Event, "name") => Intrinsic::EventName,
        (ColonScope::Event, "timeSinceStart") => Intrinsic::EventTimeSinceStart,
        (ColonScope::Link, "traceID") => Intrinsic::LinkTraceId,
        (ColonScope::Link, "spanID") => Intrinsic::LinkSpanId,
        (ColonScope::Instrumentation, "name") => Intrinsic::InstrumentationName,
        (ColonScope::Instrumentation, "version") => Intrinsic::InstrumentationVersion,
        _ => return None,
    })
}

/// Intrinsic types as Tempo declares them (`Attribute.impliedType`); the
/// instrumentation intrinsics have none there, so they type-check as any.
fn intrinsic_type(i: Intrinsic) -> Type {
    match i {
        Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::EventTimeSinceStart => Type::Duration,
        Intrinsic::Name
        | Intrinsic::StatusMessage
        | Intrinsic::SpanId
        | Intrinsic::ParentId
        | Intrinsic::RootName
        | Intrinsic::RootServiceName
        | Intrinsic::TraceId
        | Intrinsic::EventName
        | Intrinsic::LinkTraceId
        | Intrinsic::LinkSpanId => Type::Str,
        Intrinsic::Status => Type::Status,
        Intrinsic::Kind => Type::Kind,
        Intrinsic::ChildCount
        | Intrinsic::NestedSetLeft
        | Intrinsic::NestedSetRight
        | Intrinsic::NestedSetParent => Type::Int,
        Intrinsic::InstrumentationName | Intrinsic::InstrumentationVersion => Type::Any,
    }
}
