use std::fmt;

/// Where in the query text something is: a byte offset plus the 1-based
/// line and column (in characters) people and editors count in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pos {
    /// Byte offset into the query.
    pub offset: usize,
    /// Line, starting at 1.
    pub line: u32,
    /// Column in characters, starting at 1.
    pub column: u32,
}

impl Pos {
    /// The position of byte `offset` in `text` (clamped to its length).
    pub(crate) fn at(text: &str, offset: usize) -> Pos {
        let offset = offset.min(text.len());
        let (mut line, mut column) = (1u32, 1u32);
        for (i, c) in text.char_indices() {
            if i >= offset {
                break;
            }
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        Pos { offset, line, column }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of problem a [`ParseError`] reports. An API maps all of them to
/// "bad request"; the kind lets it say more (metrics queries have their own
/// endpoint in Tempo).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The text is not TraceQL (Tempo's parser rejects it too).
    Syntax,
    /// Well-formed but meaningless: wrong operand types, an invalid regular
    /// expression, an aggregate that does not look at spans (Tempo's
    /// validation rejects these).
    Invalid,
    /// Valid TraceQL that Tempo does not support either (`parent.` scopes,
    /// scalar filters between pipelines).
    Unsupported,
    /// A TraceQL metrics query (`rate()`, `count_over_time()`, …): these
    /// compute time series, not spansets, and are not served by search.
    Metrics,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Syntax => "syntax error",
            ErrorKind::Invalid => "invalid query",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Metrics => "metrics query",
        })
    }
}

/// Why a query was rejected, and where. Renders as
/// `at LINE:COL: message`, e.g. ``at 1:14: expected `}`, found end of query``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {pos}: {message}")]
pub struct ParseError {
    /// The kind of problem.
    pub kind: ErrorKind,
    /// Where it starts: the offending token or operator.
    pub pos: Pos,
    /// A one-line explanation that names the construct.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, text: &str, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError { kind, pos: Pos::at(text, offset), message: message.into() }
    }

    /// Whether this is a metrics query rather than a broken search query.
    pub fn is_metrics(&self) -> bool {
        self.kind == ErrorKind::Metrics
    }
}

/// Why evaluating a query over one trace failed. Only data-dependent
/// failures Tempo also reports end up here: integer division or modulo by
/// zero, and spanset operators applied after `by()` split a trace into
/// several spansets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    /// What went wrong.
    pub message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> EvalError {
        EvalError { message: message.into() }
    }
}
