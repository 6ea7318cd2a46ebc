//! TraceQL text for syntax trees: what `Display` writes parses back to the
//! same tree (checked by a property test). Parentheses are added where
//! Tempo's precedence rules would otherwise regroup the text.

use std::fmt::{self, Display, Formatter, Write as _};

use sightline_model::{SpanKind, StatusCode};

use crate::ast::*;
use crate::duration;
use crate::lexer::is_attribute_char;

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => write_string(f, s),
            Literal::Int(i64::MIN) => f.write_str("minInt"),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Float(x) => {
                // `{:?}` is the shortest text that reads back as the same
                // float; it always has a `.` or an exponent.
                let text = format!("{x:?}");
                f.write_str(&text)
            }
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Duration(nanos) => f.write_str(&duration::literal(*nanos)),
            Literal::Status(code) => f.write_str(status_name(*code)),
            Literal::Kind(kind) => f.write_str(kind_name(*kind)),
        }
    }
}

/// TraceQL's name for a status.
pub(crate) fn status_name(code: StatusCode) -> &'static str {
    match code {
        StatusCode::Unset => "unset",
        StatusCode::Ok => "ok",
        StatusCode::Error => "error",
    }
}

/// TraceQL's name for a span kind.
pub(crate) fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Unspecified => "unspecified",
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// Backquotes when the text allows (no backquote, no carriage return, which
/// raw strings drop); otherwise a double-quoted string with Go escapes.
fn write_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    if !s.contains(['`', '\r']) {
        return write!(f, "`{s}`");
    }
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if c.is_control() => write!(f, "\\u{:04x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl Display for Attribute {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::Intrinsic(i) => f.write_str(i.name()),
            Attribute::Named { scope, name } => {
                f.write_str(scope.prefix())?;
                let plain = !name.is_empty()
                    && name.chars().all(|c| is_attribute_char(c) && c != '"')
                    && !(*scope == Scope::Unscoped && name.starts_with(|c: char| c.is_ascii_digit()));
                if plain {
                    return f.write_str(name);
                }
                f.write_char('"')?;
                for c in name.chars() {
                    if matches!(c, '"' | '\\') {
                        f.write_char('\\')?;
                    }
                    f.write_char(c)?;
                }
                f.write_char('"')
            }
        }
    }
}

/// How tightly a printed expression holds together, for deciding where a
/// parent needs parentheses around it.
fn field_precedence(e: &FieldExpr) -> u8 {
    match e {
        FieldExpr::Binary(op, ..) => op.precedence(),
        FieldExpr::Unary(UnaryOp::Exists | UnaryOp::NotExists, _) => 3,
        _ => u8::MAX,
    }
}

/// Prefix operators and negative numbers start with `!` or `-`, whose
/// operand extends over following `* / % ^`; they are parenthesized
/// whenever they are an operand, which is always safe.
fn is_prefixed(e: &FieldExpr) -> bool {
    match e {
        FieldExpr::Unary(UnaryOp::Not | UnaryOp::Neg, _) => true,
        FieldExpr::Literal(Literal::Int(n)) => *n < 0 && *n != i64::MIN,
        FieldExpr::Literal(Literal::Float(x)) => x.is_sign_negative(),
        FieldExpr::Literal(Literal::Duration(d)) => *d < 0,
        _ => false,
    }
}

fn write_operand(f: &mut Formatter<'_>, e: &FieldExpr, parens: bool) -> fmt::Result {
    if parens { write!(f, "({e})") } else { write!(f, "{e}") }
}

impl Display for FieldExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            FieldExpr::Literal(l) => write!(f, "{l}"),
            FieldExpr::Attr(a) => write!(f, "{a}"),
            FieldExpr::Unary(op, e) => {
                let atom = matches!(**e, FieldExpr::Attr(_))
                    || (matches!(**e, FieldExpr::Literal(_)) && !is_prefixed(e));
                match op {
                    UnaryOp::Not => {
                        f.write_char('!')?;
                        write_operand(f, e, !atom)
                    }
                    UnaryOp::Neg => {
                        f.write_char('-')?;
                        write_operand(f, e, !atom)
                    }
                    UnaryOp::Exists | UnaryOp::NotExists => {
                        write_operand(f, e, is_prefixed(e) || field_precedence(e) <= 3)?;
                        f.write_str(if *op == UnaryOp::Exists { " != nil" } else { " = nil" })
                    }
                }
            }
            FieldExpr::Binary(op, l, r) => {
                let p = op.precedence();
                let right_assoc = *op == BinaryOp::Pow;
                let l_parens =
                    is_prefixed(l) || field_precedence(l) < p || (right_assoc && field_precedence(l) == p);
                let r_parens =
                    is_prefixed(r) || field_precedence(r) < p || (!right_assoc && field_precedence(r) == p);
                write_operand(f, l, l_parens)?;
                write!(f, " {} ", op.text())?;
                write_operand(f, r, r_parens)
            }
        }
    }
}

impl Display for Aggregate {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.arg {
            Some(arg) => write!(f, "{}({arg})", self.func.name()),
            None => write!(f, "{}()", self.func.name()),
        }
    }
}

impl Display for ScalarFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.aggregate, self.op.text(), self.value)
    }
}

impl Display for Stage {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Spansets(e) => write!(f, "{e}"),
            Stage::ScalarFilter(sf) => write!(f, "{sf}"),
            Stage::By(e) => write!(f, "by({e})"),
            Stage::Select(attrs) => {
                f.write_str("select(")?;
                for (i, a) in attrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_char(')')
            }
            Stage::Coalesce => f.write_str("coalesce()"),
        }
    }
}

fn spanset_precedence(e: &SpansetExpr) -> u8 {
    match e {
        SpansetExpr::Op(op, ..) => op.precedence(),
        SpansetExpr::Pipeline(_) => 1,
        SpansetExpr::Filter(_) => u8::MAX,
    }
}

impl Display for SpansetExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SpansetExpr::Filter(FieldExpr::Literal(Literal::Bool(true))) => f.write_str("{ }"),
            SpansetExpr::Filter(e) => write!(f, "{{ {e} }}"),
            SpansetExpr::Op(op, l, r) => {
                let p = op.precedence();
                let l_parens = spanset_precedence(l) < p;
                let r_parens = spanset_precedence(r) <= p;
                if l_parens {
                    write!(f, "({l})")?
                } else {
                    write!(f, "{l}")?
                }
                write!(f, " {} ", op.text())?;
                if r_parens { write!(f, "({r})") } else { write!(f, "{r}") }
            }
            SpansetExpr::Pipeline(stages) => {
                for (i, stage) in stages.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{stage}")?;
                }
                Ok(())
            }
        }
    }
}

impl Display for Hint {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}
