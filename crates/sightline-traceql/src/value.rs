//! Values during evaluation, their types, and the operators on them —
//! Tempo's `Static` and `BinaryOperation.execute` rules. Constant folding
//! at parse time uses the same functions, so a folded query means what the
//! unfolded one would.

use std::borrow::Cow;
use std::cmp::Ordering;

use regex::Regex;
use sightline_model::{SpanKind, StatusCode, Value};

use crate::ast::{BinaryOp, Literal, UnaryOp};
use crate::display::{kind_name, status_name};
use crate::duration;
use crate::error::EvalError;

/// The static type of an expression or the type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Type {
    /// Unknown until evaluated: an attribute.
    Any,
    Nil,
    Int,
    Float,
    Str,
    Bool,
    Duration,
    Status,
    Kind,
    IntArray,
    FloatArray,
    StrArray,
    BoolArray,
}

impl Type {
    fn is_numeric(self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Duration)
    }

    pub(crate) fn is_array(self) -> bool {
        matches!(self, Type::IntArray | Type::FloatArray | Type::StrArray | Type::BoolArray)
    }

    fn element(self) -> Type {
        match self {
            Type::IntArray => Type::Int,
            Type::FloatArray => Type::Float,
            Type::StrArray => Type::Str,
            Type::BoolArray => Type::Bool,
            t => t,
        }
    }
}

/// Whether two types can meet in a binary operation (Tempo's
/// `isMatchingOperand`): same type, both numeric, nil or unknown on one
/// side, or an array and its element type.
pub(crate) fn types_match(a: Type, b: Type) -> bool {
    if a == Type::Any || b == Type::Any || a == b || a == Type::Nil || b == Type::Nil {
        return true;
    }
    if a.is_numeric() && b.is_numeric() {
        return true;
    }
    match (a.is_array(), b.is_array()) {
        (true, false) => types_match(a.element(), b),
        (false, true) => types_match(a, b.element()),
        _ => false,
    }
}

/// Whether `op` applies to a value of type `t` (Tempo's `binaryTypeValid`).
pub(crate) fn op_applies(op: BinaryOp, t: Type) -> bool {
    use BinaryOp::*;
    match t.element() {
        Type::Any => true,
        Type::Bool => matches!(op, And | Or | Eq | Neq),
        Type::Int | Type::Float | Type::Duration => {
            matches!(op, Add | Sub | Mul | Div | Mod | Pow | Eq | Neq | Gt | Gte | Lt | Lte)
        }
        Type::Str => matches!(op, Eq | Neq | Re | Nre | Gt | Gte | Lt | Lte),
        Type::Nil | Type::Status | Type::Kind => matches!(op, Eq | Neq),
        _ => false,
    }
}

/// Element type of a homogeneous array attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    Int,
    Float,
    Str,
    Bool,
}

/// A value while evaluating: borrowed from the query or the span when it
/// can be.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Nil,
    Int(i64),
    Float(f64),
    Duration(i64),
    Bool(bool),
    Status(StatusCode),
    Kind(SpanKind),
    Str(Cow<'a, str>),
    /// A span or trace id as hex. Compares with a string as an id:
    /// case-insensitive, leading zeros ignored (Tempo compares the bytes).
    Id(String),
    /// A homogeneous array attribute.
    Array(&'a [Value], Elem),
}

impl<'a> Val<'a> {
    pub(crate) fn from_literal(l: &'a Literal) -> Val<'a> {
        match l {
            Literal::Str(s) => Val::Str(Cow::Borrowed(s)),
            Literal::Int(n) => Val::Int(*n),
            Literal::Float(x) => Val::Float(*x),
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Duration(d) => Val::Duration(*d),
            Literal::Status(s) => Val::Status(*s),
            Literal::Kind(k) => Val::Kind(*k),
        }
    }

    /// An attribute value as TraceQL sees it. Arrays count only when all
    /// elements are strings, ints, floats or booleans alike (Tempo's
    /// storage keeps only those); bytes, maps, empty values and mixed or
    /// empty arrays are not comparable and read as nil.
    pub(crate) fn from_attribute(v: &'a Value) -> Val<'a> {
        match v {
            Value::Str(s) => Val::Str(Cow::Borrowed(s)),
            Value::Int(n) => Val::Int(*n),
            Value::Double(x) => Val::Float(*x),
            Value::Bool(b) => Val::Bool(*b),
            Value::Array(items) => {
                let elem = match items.first() {
                    Some(Value::Str(_)) => Elem::Str,
                    Some(Value::Int(_)) => Elem::Int,
                    Some(Value::Double(_)) => Elem::Float,
                    Some(Value::Bool(_)) => Elem::Bool,
                    _ => return Val::Nil,
                };
                let same = items.iter().all(|item| {
                    matches!(
                        (item, elem),
                        (Value::Str(_), Elem::Str)
                            | (Value::Int(_), Elem::Int)
                            | (Value::Double(_), Elem::Float)
                            | (Value::Bool(_), Elem::Bool)
                    )
                });
                if same { Val::Array(items, elem) } else { Val::Nil }
            }
            Value::Empty | Value::Bytes(_) | Value::Map(_) => Val::Nil,
        }
    }

    /// The value as a literal, when it is one (constant folding).
    pub(crate) fn into_literal(self) -> Option<Literal> {
        Some(match self {
            Val::Int(n) => Literal::Int(n),
            Val::Float(x) if x.is_finite() => Literal::Float(x),
            Val::Duration(d) => Literal::Duration(d),
            Val::Bool(b) => Literal::Bool(b),
            Val::Status(s) => Literal::Status(s),
            Val::Kind(k) => Literal::Kind(k),
            Val::Str(s) => Literal::Str(s.into_owned()),
            _ => return None,
        })
    }

    pub(crate) fn ty(&self) -> Type {
        match self {
            Val::Nil => Type::Nil,
            Val::Int(_) => Type::Int,
            Val::Float(_) => Type::Float,
            Val::Duration(_) => Type::Duration,
            Val::Bool(_) => Type::Bool,
            Val::Status(_) => Type::Status,
            Val::Kind(_) => Type::Kind,
            Val::Str(_) | Val::Id(_) => Type::Str,
            Val::Array(_, Elem::Int) => Type::IntArray,
            Val::Array(_, Elem::Float) => Type::FloatArray,
            Val::Array(_, Elem::Str) => Type::StrArray,
            Val::Array(_, Elem::Bool) => Type::BoolArray,
        }
    }

    pub(crate) fn is_nil(&self) -> bool {
        matches!(self, Val::Nil)
    }

    pub(crate) fn is_true(&self) -> bool {
        matches!(self, Val::Bool(true))
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            Val::Id(s) => Some(s),
            _ => None,
        }
    }

    /// Numeric value as a float; NaN for non-numbers (Tempo's `Float()`).
    pub(crate) fn to_f64(&self) -> f64 {
        match self {
            Val::Int(n) | Val::Duration(n) => *n as f64,
            Val::Float(x) => *x,
            _ => f64::NAN,
        }
    }

    /// The value as Tempo writes it into search results (`AsAnyValue`):
    /// durations as Go duration text, status and kind as their names, nil
    /// as the text `nil`.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Val::Nil => Value::Str("nil".into()),
            Val::Int(n) => Value::Int(*n),
            Val::Float(x) => Value::Double(*x),
            Val::Duration(d) => Value::Str(duration::go_string(*d).into()),
            Val::Bool(b) => Value::Bool(*b),
            Val::Status(s) => Value::Str(status_name(*s).into()),
            Val::Kind(k) => Value::Str(kind_name(*k).into()),
            Val::Str(s) => Value::Str(s.as_ref().into()),
            Val::Id(s) => Value::Str(s.as_str().into()),
            Val::Array(items, _) => Value::Array(items.to_vec()),
        }
    }
}

/// Compiled regular expressions by pattern. Patterns are compiled (and
/// rejected when invalid) at parse time.
pub(crate) trait Regexes {
    fn get(&self, pattern: &str) -> Option<&Regex>;
}

impl Regexes for [(String, Regex)] {
    fn get(&self, pattern: &str) -> Option<&Regex> {
        self.iter().find(|(p, _)| p == pattern).map(|(_, re)| re)
    }
}

/// Compiles a TraceQL regular expression: a full match (`^(?s:…)$`), as
/// Tempo's Prometheus-derived matcher does.
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?s:{pattern})$")).size_limit(1 << 20).build()
}

/// Equality as Tempo's `Static.Equals`: nil equals nothing; ints and
/// durations compare exactly, mixed with floats as floats.
fn equals(l: &Val<'_>, r: &Val<'_>) -> bool {
    match (l, r) {
        (Val::Nil, _) | (_, Val::Nil) => false,
        (Val::Int(a) | Val::Duration(a), Val::Int(b) | Val::Duration(b)) => a == b,
        (Val::Int(_) | Val::Duration(_) | Val::Float(_), Val::Int(_) | Val::Duration(_) | Val::Float(_)) => {
            l.to_f64() == r.to_f64()
        }
        (Val::Bool(a), Val::Bool(b)) => a == b,
        (Val::Status(a), Val::Status(b)) => a == b,
        (Val::Kind(a), Val::Kind(b)) => a == b,
        (Val::Id(a), b) | (b, Val::Id(a)) => b.as_str().is_some_and(|b| id_eq(a, b)),
        (Val::Str(a), Val::Str(b)) => a == b,
        _ => false,
    }
}

/// Ids compare as numbers written in hex.
fn id_eq(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
    norm(a) == norm(b)
}

/// Integer power; negative exponents round toward zero and overflow
/// saturates. (Tempo's integer `^` evaluates `rhs ^ lhs`, a bug its tests
/// do not catch because they use `2 ^ 2`; this computes `lhs ^ rhs`.)
fn int_pow(base: i64, exp: i64) -> i64 {
    if exp < 0 {
        return match base {
            1 => 1,
            -1 => {
                if exp % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        };
    }
    let saturated = if base < 0 && exp % 2 == 1 { i64::MIN } else { i64::MAX };
    match u32::try_from(exp) {
        Ok(e) => base.checked_pow(e).unwrap_or(saturated),
        Err(_) => match base {
            0 | 1 => base,
            -1 => {
                if exp % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => saturated,
        },
    }
}

/// Applies a binary operator. Operands of types the operator does not take
/// give `false`, as in Tempo; `&&` and `||` take any value and treat only
/// `true` as true.
pub(crate) fn binary<'a>(
    op: BinaryOp,
    l: Val<'a>,
    r: Val<'a>,
    regexes: &(impl Regexes + ?Sized),
) -> Result<Val<'a>, EvalError> {
    match op {
        BinaryOp::And => return Ok(Val::Bool(l.is_true() && r.is_true())),
        BinaryOp::Or => return Ok(Val::Bool(l.is_true() || r.is_true())),
        _ => {}
    }
    let (lt, rt) = (l.ty(), r.ty());
    if !types_match(lt, rt) || !op_applies(op, lt) || !op_applies(op, rt) {
        return Ok(Val::Bool(false));
    }
    if lt.is_array() || rt.is_array() {
        return Ok(array_op(op, l, r, regexes));
    }
    scalar(op, &l, &r, regexes)
}

fn scalar<'a>(
    op: BinaryOp,
    l: &Val<'a>,
    r: &Val<'a>,
    regexes: &(impl Regexes + ?Sized),
) -> Result<Val<'a>, EvalError> {
    use BinaryOp::*;
    if let (Some(a), Some(b)) = (l.as_str(), r.as_str()) {
        let ord = a.cmp(b);
        match op {
            Gt => return Ok(Val::Bool(ord == Ordering::Greater)),
            Gte => return Ok(Val::Bool(ord != Ordering::Less)),
            Lt => return Ok(Val::Bool(ord == Ordering::Less)),
            Lte => return Ok(Val::Bool(ord != Ordering::Greater)),
            Re | Nre => {
                let matched = regexes.get(b).is_some_and(|re| re.is_match(a));
                return Ok(Val::Bool(matched == (op == Re)));
            }
            _ => {}
        }
    }
    if let (Val::Int(a), Val::Int(b)) = (l, r) {
        let (a, b) = (*a, *b);
        let zero = |what: &str| Err(EvalError::new(format!("integer {what} by zero")));
        return Ok(match op {
            Add => Val::Int(a.wrapping_add(b)),
            Sub => Val::Int(a.wrapping_sub(b)),
            Mul => Val::Int(a.wrapping_mul(b)),
            Div if b == 0 => return zero("division"),
            Div => Val::Int(a.wrapping_div(b)),
            Mod if b == 0 => return zero("modulo"),
            Mod => Val::Int(a.wrapping_rem(b)),
            Pow => Val::Int(int_pow(a, b)),
            Gt => Val::Bool(a > b),
            Gte => Val::Bool(a >= b),
            Lt => Val::Bool(a < b),
            Lte => Val::Bool(a <= b),
            Eq => Val::Bool(a == b),
            Neq => Val::Bool(a != b),
            And | Or | Re | Nre => Val::Bool(false),
        });
    }
    // Everything else: arithmetic and ordering as floats (so mixed ints,
    // floats and durations give floats), equality as `equals`.
    let (a, b) = (l.to_f64(), r.to_f64());
    Ok(match op {
        Add => Val::Float(a + b),
        Sub => Val::Float(a - b),
        Mul => Val::Float(a * b),
        Div => Val::Float(a / b),
        Mod => Val::Float(a % b),
        Pow => Val::Float(a.powf(b)),
        Gt => Val::Bool(a > b),
        Gte => Val::Bool(a >= b),
        Lt => Val::Bool(a < b),
        Lte => Val::Bool(a <= b),
        Eq => Val::Bool(equals(l, r)),
        Neq => Val::Bool(!l.is_nil() && !r.is_nil() && !equals(l, r)),
        And | Or | Re | Nre => Val::Bool(false),
    })
}

/// An array compared with a scalar: `=`, `=~` and orderings hold when they
/// hold for any element, `!=` and `!~` when they hold for every element
/// (no element equals / matches). Arithmetic on arrays gives nil; two
/// arrays never compare (Tempo reports an error there).
fn array_op<'a>(op: BinaryOp, l: Val<'a>, r: Val<'a>, regexes: &(impl Regexes + ?Sized)) -> Val<'a> {
    use BinaryOp::*;
    if !op.is_boolean() {
        return Val::Nil;
    }
    let (items, elem, scalar_val, elem_on_left) = match (&l, &r) {
        (Val::Array(..), Val::Array(..)) => return Val::Bool(false),
        (Val::Array(items, elem), _) => (*items, *elem, r, true),
        (_, Val::Array(items, elem)) => (*items, *elem, l, false),
        _ => return Val::Bool(false),
    };
    let match_all = matches!(op, Neq | Nre);
    let mut any = false;
    let mut all = true;
    for item in items {
        let e = Val::from_attribute(item);
        debug_assert!(matches!(
            (&e, elem),
            (Val::Str(_), Elem::Str)
                | (Val::Int(_), Elem::Int)
                | (Val::Float(_), Elem::Float)
                | (Val::Bool(_), Elem::Bool)
        ));
        let (a, b) = if elem_on_left { (e, scalar_val.clone()) } else { (scalar_val.clone(), e) };
        let ok = types_match(a.ty(), b.ty())
            && op_applies(op, a.ty())
            && op_applies(op, b.ty())
            && scalar(op, &a, &b, regexes).is_ok_and(|v| v.is_true());
        any |= ok;
        all &= ok;
    }
    Val::Bool(if match_all { all } else { any })
}

/// Applies a unary operator. `-` of a non-number and `!` of a non-boolean
/// give nil (Tempo reports an error there).
pub(crate) fn unary(op: UnaryOp, v: Val<'_>) -> Val<'_> {
    match op {
        UnaryOp::Not => match v {
            Val::Bool(b) => Val::Bool(!b),
            _ => Val::Nil,
        },
        UnaryOp::Neg => match v {
            Val::Int(n) => Val::Int(n.wrapping_neg()),
            Val::Float(x) => Val::Float(-x),
            Val::Duration(d) => Val::Duration(d.wrapping_neg()),
            _ => Val::Nil,
        },
        UnaryOp::Exists => Val::Bool(!v.is_nil()),
        UnaryOp::NotExists => Val::Bool(v.is_nil()),
    }
}

/// Ordering for `min()`/`max()` (Tempo's `Static.compare`): numbers by
/// value across types, otherwise by type, then by value.
pub(crate) fn compare(a: &Val<'_>, b: &Val<'_>) -> Ordering {
    let (at, bt) = (a.ty(), b.ty());
    if at != bt {
        if at.is_numeric() && bt.is_numeric() {
            return a.to_f64().total_cmp(&b.to_f64());
        }
        return (at as u8).cmp(&(bt as u8));
    }
    match (a, b) {
        (Val::Int(x) | Val::Duration(x), Val::Int(y) | Val::Duration(y)) => x.cmp(y),
        (Val::Float(x), Val::Float(y)) => x.total_cmp(y),
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Status(x), Val::Status(y)) => (*x as u8).cmp(&(*y as u8)),
        (Val::Kind(x), Val::Kind(y)) => x.cmp(y),
        _ => match (a.as_str(), b.as_str()) {
            (Some(x), Some(y)) => x.cmp(y),
            _ => Ordering::Equal,
        },
    }
}

/// `a + b` for `sum()`/`avg()`: values of the first value's type add up;
/// others are skipped (Tempo's `sumInto`).
pub(crate) fn sum_into(acc: &mut Val<'_>, v: &Val<'_>) {
    match (acc, v) {
        (Val::Int(a), Val::Int(b)) => *a = a.wrapping_add(*b),
        (Val::Duration(a), Val::Duration(b)) => *a = a.wrapping_add(*b),
        (Val::Float(a), Val::Float(b)) => *a += b,
        _ => {}
    }
}

/// `sum / count` for `avg()`: ints become floats, durations stay
/// durations (integer division), floats stay floats.
pub(crate) fn divide<'a>(sum: Val<'a>, count: usize) -> Val<'a> {
    match sum {
        Val::Int(n) => Val::Float(n as f64 / count as f64),
        Val::Duration(d) => Val::Duration(d / count.max(1) as i64),
        Val::Float(x) => Val::Float(x / count as f64),
        other => other,
    }
}

/// The comparison of a scalar filter (Tempo's `binOp`): orderings as
/// floats, equality as `equals`, mismatched types false.
pub(crate) fn scalar_compare(op: BinaryOp, l: &Val<'_>, r: &Val<'_>) -> bool {
    let (lt, rt) = (l.ty(), r.ty());
    if !types_match(lt, rt) || !op_applies(op, lt) || !op_applies(op, rt) {
        return false;
    }
    let (a, b) = (l.to_f64(), r.to_f64());
    match op {
        BinaryOp::Gt => a > b,
        BinaryOp::Gte => a >= b,
        BinaryOp::Lt => a < b,
        BinaryOp::Lte => a <= b,
        BinaryOp::Eq => equals(l, r),
        BinaryOp::Neq => !l.is_nil() && !r.is_nil() && !equals(l, r),
        _ => false,
    }
}
