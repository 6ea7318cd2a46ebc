//! Turns query text into tokens, as Tempo's lexer (Go's `text/scanner` plus
//! TraceQL's attribute rules) does.
//!
//! Attribute names are context dependent: after `.` or a scope prefix such
//! as `span.`, everything up to a space or one of `{}()=~!<>&|^,` belongs to
//! the name (so `.http.status_code` and `.foo-bar` are single names), and
//! `"…"` parts may hold any character. The lexer therefore emits a whole
//! attribute reference as one [`Tok::Attr`] token.

use crate::ast::Scope;
use crate::duration;
use crate::error::{ErrorKind, ParseError};

/// Scopes written with a colon before an intrinsic (`span:duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColonScope {
    Trace,
    Span,
    Event,
    Link,
    Instrumentation,
}

impl ColonScope {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ColonScope::Trace => "trace",
            ColonScope::Span => "span",
            ColonScope::Event => "event",
            ColonScope::Link => "link",
            ColonScope::Instrumentation => "instrumentation",
        }
    }
}

/// Punctuation and operators, named after what they mean in a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    LBrace,
    RBrace,
    LParen,
    RParen,
    Comma,
    Eq,
    Neq,
    Re,
    /// `!~`: "does not match" in a filter, "not sibling" between spansets.
    Nre,
    Gt,
    Gte,
    Lt,
    Lte,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    And,
    Or,
    Not,
    Pipe,
    Desc,
    Ance,
    Sibl,
    NotChild,
    NotParent,
    NotDesc,
    NotAnce,
    UnionChild,
    UnionParent,
    UnionDesc,
    UnionAnce,
    UnionSibl,
}

/// Operator spellings; the lexer takes the longest that matches.
const OPS: [(&str, Op); 35] = [
    ("!>>", Op::NotDesc),
    ("!<<", Op::NotAnce),
    ("&>>", Op::UnionDesc),
    ("&<<", Op::UnionAnce),
    ("&&", Op::And),
    ("||", Op::Or),
    ("!=", Op::Neq),
    ("=~", Op::Re),
    ("!~", Op::Nre),
    (">=", Op::Gte),
    ("<=", Op::Lte),
    (">>", Op::Desc),
    ("<<", Op::Ance),
    ("!>", Op::NotChild),
    ("!<", Op::NotParent),
    ("&>", Op::UnionChild),
    ("&<", Op::UnionParent),
    ("&~", Op::UnionSibl),
    ("{", Op::LBrace),
    ("}", Op::RBrace),
    ("(", Op::LParen),
    (")", Op::RParen),
    (",", Op::Comma),
    ("=", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("+", Op::Add),
    ("-", Op::Sub),
    ("*", Op::Mul),
    ("/", Op::Div),
    ("%", Op::Mod),
    ("^", Op::Pow),
    ("!", Op::Not),
    ("|", Op::Pipe),
    ("~", Op::Sibl),
];

impl Op {
    pub(crate) fn text(self) -> &'static str {
        OPS.iter().find(|(_, op)| *op == self).map_or("?", |(text, _)| text)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Op(Op),
    Str(String),
    Int(i64),
    Float(f64),
    Duration(i64),
    /// A word: keyword, intrinsic or (invalid) bare identifier.
    Ident(String),
    /// `span:`, `trace:`, … (the intrinsic name follows as an `Ident`).
    ColonScope(ColonScope),
    /// An attribute reference. `parent` is set for Tempo's `parent.` prefix.
    Attr {
        scope: Scope,
        parent: bool,
        name: String,
    },
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Op(op) => format!("`{}`", op.text()),
            Tok::Str(_) => "a string".to_owned(),
            Tok::Int(n) => format!("`{n}`"),
            Tok::Float(f) => format!("`{f}`"),
            Tok::Duration(d) => format!("`{}`", duration::literal(*d)),
            Tok::Ident(word) => format!("`{word}`"),
            Tok::ColonScope(scope) => format!("`{}:`", scope.name()),
            Tok::Attr { .. } => "an attribute".to_owned(),
            Tok::Eof => "end of query".to_owned(),
        }
    }
}

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) offset: usize,
}

/// Whether `c` can be part of an unquoted attribute name (Tempo's
/// `isAttributeRune`).
pub(crate) fn is_attribute_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(c, '{' | '}' | '(' | ')' | '=' | '~' | '!' | '<' | '>' | '&' | '|' | '^' | ',')
}

fn is_duration_char(c: char) -> bool {
    c.is_ascii_digit() || c == '.' || matches!(c, 'n' | 's' | 'u' | 'm' | 'h' | 'µ' | 'μ' | 'd' | 'w' | 'y')
}

/// Splits `text` into tokens, ending with [`Tok::Eof`].
pub(crate) fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    Lexer { text, pos: 0 }.run()
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(ErrorKind::Syntax, self.text, offset, message)
    }

    fn run(mut self) -> Result<Vec<Token>, ParseError> {
        let mut out = Vec::new();
        loop {
            self.skip_space_and_comments()?;
            let offset = self.pos;
            let Some(c) = self.peek() else {
                out.push(Token { tok: Tok::Eof, offset });
                return Ok(out);
            };
            let tok = if c.is_ascii_digit() || (c == '.' && self.peek2().is_some_and(|d| d.is_ascii_digit()))
            {
                self.number()?
            } else if c == '.' {
                self.pos += 1;
                self.attribute(offset, Scope::Unscoped, false, ".")?
            } else if c == '"' {
                Tok::Str(self.quoted_string()?)
            } else if c == '`' {
                Tok::Str(self.raw_string()?)
            } else if c == '\'' {
                return Err(
                    self.error(offset, "single-quoted literals are not TraceQL; quote strings with \" or `")
                );
            } else if c.is_alphabetic() || c == '_' {
                self.word(offset)?
            } else if let Some((text, op)) = OPS.iter().find(|(text, _)| self.rest().starts_with(text)) {
                self.pos += text.len();
                Tok::Op(*op)
            } else {
                return Err(self.error(offset, format!("unexpected character `{c}`")));
            };
            out.push(Token { tok, offset });
        }
    }

    fn skip_space_and_comments(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if let Some(comment) = trimmed.strip_prefix("//") {
                self.pos += 2 + comment.find('\n').unwrap_or(comment.len());
            } else if let Some(comment) = trimmed.strip_prefix("/*") {
                let Some(end) = comment.find("*/") else {
                    return Err(self.error(self.pos, "comment not terminated"));
                };
                self.pos += 2 + end + 2;
            } else {
                return Ok(());
            }
        }
    }

    /// Integers, floats (`1.5`, `.5`, `1e3`) and durations (`1.5s`,
    /// `1h30m`). A number directly followed by duration characters must be
    /// a valid duration.
    fn number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut end = start;
        let digits = |from: usize| bytes[from..].iter().take_while(|b| b.is_ascii_digit()).count();
        end += digits(end);
        let mut is_float = false;
        if bytes.get(end) == Some(&b'.') {
            is_float = true;
            end += 1;
            end += digits(end);
        }
        if matches!(bytes.get(end), Some(b'e' | b'E')) {
            let mut exp = end + 1;
            if matches!(bytes.get(exp), Some(b'+' | b'-')) {
                exp += 1;
            }
            if digits(exp) == 0 {
                return Err(self.error(end, "exponent has no digits"));
            }
            is_float = true;
            end = exp + digits(exp);
        }
        let number = &self.text[start..end];
        let unit_len = self.text[end..].find(|c: char| !is_duration_char(c)).unwrap_or(self.text.len() - end);
        self.pos = end + unit_len;
        if unit_len > 0 {
            let text = &self.text[start..end + unit_len];
            return match duration::parse(text) {
                Some(nanos) => Ok(Tok::Duration(nanos)),
                None => Err(self.error(start, format!("invalid duration `{text}`"))),
            };
        }
        if is_float {
            let value: f64 =
                number.parse().map_err(|_| self.error(start, format!("invalid number `{number}`")))?;
            Ok(Tok::Float(value))
        } else {
            let value: i64 = number
                .parse()
                .map_err(|_| self.error(start, format!("integer `{number}` is out of range")))?;
            Ok(Tok::Int(value))
        }
    }

    /// A Go string literal in double quotes, with Go's escapes.
    fn quoted_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(start, "string not terminated"));
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\n' => return Err(self.error(start, "string not terminated")),
                '\\' => out.push(self.escape(at)?),
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, at: usize) -> Result<char, ParseError> {
        let Some(c) = self.peek() else {
            return Err(self.error(at, "string not terminated"));
        };
        self.pos += c.len_utf8();
        let simple = match c {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '"' => Some('"'),
            _ => None,
        };
        if let Some(c) = simple {
            return Ok(c);
        }
        let (len, radix) = match c {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => {
                self.pos -= 1;
                (3, 8)
            }
            _ => return Err(self.error(at, format!("unknown escape sequence `\\{c}`"))),
        };
        let digits = self.rest().get(..len).filter(|d| d.chars().all(|c| c.is_digit(radix)));
        let Some(digits) = digits else {
            return Err(self.error(at, "malformed escape sequence"));
        };
        self.pos += len;
        let code =
            u32::from_str_radix(digits, radix).map_err(|_| self.error(at, "malformed escape sequence"))?;
        // Go's \x and octal escapes are bytes; only ASCII ones make text.
        if matches!(c, 'x' | '0'..='7') && code > 0x7f {
            return Err(self.error(at, "byte escapes above \\x7f are not valid UTF-8 text; use \\u"));
        }
        char::from_u32(code).ok_or_else(|| self.error(at, "escape sequence is not a valid character"))
    }

    /// A Go raw string in backquotes: no escapes; carriage returns are
    /// dropped, as Go's `strconv.Unquote` does.
    fn raw_string(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        let body = &self.text[start + 1..];
        let Some(end) = body.find('`') else {
            return Err(self.error(start, "string not terminated"));
        };
        self.pos = start + 1 + end + 1;
        Ok(body[..end].replace('\r', ""))
    }

    /// A keyword or identifier; `span.`/`resource.`/… start an attribute,
    /// `span:`/`trace:`/… a scoped intrinsic.
    fn word(&mut self, offset: usize) -> Result<Tok, ParseError> {
        let len = self.rest().find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(self.rest().len());
        let word = &self.text[self.pos..self.pos + len];
        self.pos += len;
        let next = self.peek();
        if next == Some('.') {
            let scope = match word {
                "span" => Some(Scope::Span),
                "resource" => Some(Scope::Resource),
                "event" => Some(Scope::Event),
                "link" => Some(Scope::Link),
                "instrumentation" => Some(Scope::Instrumentation),
                _ => None,
            };
            if let Some(scope) = scope {
                self.pos += 1;
                return self.attribute(offset, scope, false, &format!("{word}."));
            }
            if word == "parent" {
                self.pos += 1;
                // `parent.span.x` and `parent.resource.x` narrow the scope.
                let mut scope = Scope::Unscoped;
                for (prefix, s) in [("span.", Scope::Span), ("resource.", Scope::Resource)] {
                    if self.rest().starts_with(prefix) {
                        self.pos += prefix.len();
                        scope = s;
                    }
                }
                return self.attribute(offset, scope, true, "parent.");
            }
        }
        if next == Some(':') {
            let scope = match word {
                "trace" => Some(ColonScope::Trace),
                "span" => Some(ColonScope::Span),
                "event" => Some(ColonScope::Event),
                "link" => Some(ColonScope::Link),
                "instrumentation" => Some(ColonScope::Instrumentation),
                _ => None,
            };
            if let Some(scope) = scope {
                self.pos += 1;
                return Ok(Tok::ColonScope(scope));
            }
        }
        Ok(Tok::Ident(word.to_owned()))
    }

    /// The name after a scope prefix: attribute characters and `"…"` parts.
    fn attribute(
        &mut self,
        offset: usize,
        scope: Scope,
        parent: bool,
        prefix: &str,
    ) -> Result<Tok, ParseError> {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '"' {
                self.quoted_name_part(&mut name)?;
            } else if is_attribute_char(c) {
                name.push(c);
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        if name.is_empty() {
            return Err(self.error(offset, format!("expected an attribute name after `{prefix}`")));
        }
        Ok(Tok::Attr { scope, parent, name })
    }

    /// `"…"` inside an attribute name; only `\"` and `\\` are escapes.
    fn quoted_name_part(&mut self, name: &mut String) -> Result<(), ParseError> {
        let start = self.pos;
        self.pos += 1;
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error(start, "quoted attribute name not terminated"));
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(()),
                '\\' => match self.peek() {
                    Some(e @ ('"' | '\\')) => {
                        name.push(e);
                        self.pos += 1;
                    }
                    _ => {
                        return Err(self
                            .error(at, "invalid escape in attribute name: only \\\" and \\\\ are allowed"));
                    }
                },
                c => name.push(c),
            }
        }
    }
}
