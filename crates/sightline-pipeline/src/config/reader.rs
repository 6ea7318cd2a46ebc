//! Reading settings from TOML tables: typed getters that record every
//! problem with its key path (and a suggestion for typos) instead of
//! stopping at the first, and that notice keys nobody asked for.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::Duration;

use regex::Regex;
use toml::{Table, Value};

use super::Problem;

pub(crate) fn unknown_type(problems: &Problems, path: &str, ty: &str, known: &[&str]) {
    problems.push(
        path,
        &format!(
            "unknown type {ty:?}{}; known: {}",
            suggest(ty, known).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default(),
            known.join(", ")
        ),
    );
}

/// The known name closest to `word`, if close enough to be a typo.
pub(crate) fn suggest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb { prev } else { 1 + prev.min(row[j]).min(cur) };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Problems found so far.
#[derive(Default)]
pub(crate) struct Problems(RefCell<Vec<Problem>>);

impl Problems {
    pub(crate) fn push(&self, path: &str, message: &str) {
        self.0.borrow_mut().push(Problem { path: path.to_owned(), message: message.to_owned() });
    }

    pub(crate) fn into_inner(self) -> Vec<Problem> {
        self.0.into_inner()
    }

    pub(crate) fn table<'v>(&self, path: &str, value: &'v Value) -> Option<&'v Table> {
        match value {
            Value::Table(t) => Some(t),
            other => {
                self.push(path, &format!("expected a table, found {}", other.type_str()));
                None
            }
        }
    }
}

/// Reads typed settings from one table, remembering which keys it used so
/// [`Reader::done`] can report the unknown ones.
pub(crate) struct Reader<'a> {
    /// Dotted key path of the table, e.g. `processors.batch`.
    pub(crate) path: String,
    pub(crate) table: &'a Table,
    used: RefCell<Vec<String>>,
    pub(crate) problems: &'a Problems,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(path: String, table: &'a Table, problems: &'a Problems) -> Reader<'a> {
        Reader { path, table, used: RefCell::new(Vec::new()), problems }
    }

    pub(crate) fn mark(&self, key: &str) {
        self.used.borrow_mut().push(key.to_owned());
    }

    pub(crate) fn at(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.mark(key);
        self.table.get(key)
    }

    pub(crate) fn wrong(&self, key: &str, expected: &str, found: &Value) {
        self.problems
            .push(&self.at(key), &format!("expected {expected}, found {} {found}", found.type_str()));
    }

    pub(crate) fn str(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong(key, "a string", other);
                None
            }
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                self.wrong(key, "true or false", other);
                None
            }
        }
    }

    pub(crate) fn number(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            other => {
                self.wrong(key, "a number", other);
                None
            }
        }
    }

    pub(crate) fn positive(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Integer(i) if *i > 0 => Some(*i as u64),
            other => {
                self.wrong(key, "a positive integer", other);
                None
            }
        }
    }

    pub(crate) fn percentage(&self, key: &str) -> Option<f64> {
        let v = self.number(key)?;
        if (0.0..=100.0).contains(&v) {
            Some(v)
        } else {
            self.problems.push(&self.at(key), "expected a percentage between 0 and 100");
            None
        }
    }

    pub(crate) fn duration(&self, key: &str) -> Option<Duration> {
        let s = self.str(key)?;
        match humantime::parse_duration(s.trim()) {
            Ok(d) => Some(d),
            Err(_) => {
                self.problems.push(
                    &self.at(key),
                    &format!("invalid duration {s:?}: expected e.g. \"200ms\", \"10s\", \"1m\""),
                );
                None
            }
        }
    }

    pub(crate) fn size(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Integer(i) if *i > 0 => Some(*i as u64),
            Value::String(s) => parse_size(s).or_else(|| {
                self.problems
                    .push(&self.at(key), &format!("invalid size {s:?}: expected e.g. \"512MiB\", \"2GiB\""));
                None
            }),
            other => {
                self.wrong(key, "a size like \"512MiB\"", other);
                None
            }
        }
    }

    pub(crate) fn addr(&self, key: &str) -> Option<SocketAddr> {
        let s = self.str(key)?;
        s.parse().ok().or_else(|| {
            self.problems.push(
                &self.at(key),
                &format!("invalid address {s:?}: expected host:port, e.g. \"127.0.0.1:9411\""),
            );
            None
        })
    }

    pub(crate) fn value(&self, key: &str) -> Option<sightline_model::Value> {
        Some(match self.get(key)? {
            Value::String(s) => sightline_model::Value::from(s.as_str()),
            Value::Integer(i) => sightline_model::Value::Int(*i),
            Value::Float(f) => sightline_model::Value::Double(*f),
            Value::Boolean(b) => sightline_model::Value::Bool(*b),
            other => {
                self.wrong(key, "a string, number or boolean", other);
                return None;
            }
        })
    }

    pub(crate) fn str_list(&self, key: &str) -> Option<Vec<String>> {
        match self.get(key)? {
            Value::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| match v {
                        Value::String(s) => Some(s.clone()),
                        other => {
                            self.wrong(&format!("{key}[{i}]"), "a string", other);
                            None
                        }
                    })
                    .collect(),
            ),
            other => {
                self.wrong(key, "a list of strings", other);
                None
            }
        }
    }

    /// A list of durations in increasing order, e.g. `["2ms", "1s"]`.
    pub(crate) fn durations(&self, key: &str) -> Option<Vec<Duration>> {
        let texts = self.str_list(key)?;
        let mut out = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            match humantime::parse_duration(text.trim()) {
                Ok(d) if !d.is_zero() => out.push(d),
                _ => {
                    self.problems.push(
                        &format!("{}[{i}]", self.at(key)),
                        &format!(
                            "invalid duration {text:?}: expected a positive duration like \"2ms\" or \"1s\""
                        ),
                    );
                    return None;
                }
            }
        }
        if out.is_empty() {
            self.problems
                .push(&self.at(key), "list at least one bucket bound, e.g. [\"10ms\", \"100ms\", \"1s\"]");
            return None;
        }
        if out.windows(2).any(|w| w[0] >= w[1]) {
            self.problems.push(&self.at(key), "bucket bounds must be in increasing order without repeats");
            return None;
        }
        Some(out)
    }

    pub(crate) fn compile(&self, path: &str, pattern: &str) -> Option<Regex> {
        Regex::new(pattern).map_err(|e| self.problems.push(path, &format!("invalid regex: {e}"))).ok()
    }

    pub(crate) fn regex_list(&self, key: &str) -> Vec<Regex> {
        self.str_list(key)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter_map(|(i, p)| self.compile(&format!("{}[{i}]", self.at(key)), p))
            .collect()
    }

    pub(crate) fn table(&self, key: &str) -> Option<Reader<'a>> {
        match self.get(key)? {
            Value::Table(t) => Some(Reader::new(self.at(key), t, self.problems)),
            other => {
                self.wrong(key, "a table", other);
                None
            }
        }
    }

    pub(crate) fn tables(&self, key: &str) -> Vec<Reader<'a>> {
        match self.get(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| match v {
                    Value::Table(t) => Some(Reader::new(format!("{}[{i}]", self.at(key)), t, self.problems)),
                    other => {
                        self.wrong(&format!("{key}[{i}]"), "a table", other);
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.wrong(key, "a list of tables", other);
                Vec::new()
            }
        }
    }

    /// Reports keys nobody asked for.
    pub(crate) fn done(&self) {
        let used = self.used.borrow();
        let known: Vec<&str> = used.iter().map(String::as_str).collect();
        for key in self.table.keys() {
            if !used.iter().any(|u| u == key) {
                let hint = suggest(key, &known).map(|s| format!("; did you mean {s:?}?")).unwrap_or_default();
                self.problems.push(&self.at(key), &format!("unknown setting{hint}"));
            }
        }
    }
}

/// Parses sizes like `512MiB`, `2GiB`, `500MB`, `64k` (binary for single
/// letters).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    let bytes = number * multiplier as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}
