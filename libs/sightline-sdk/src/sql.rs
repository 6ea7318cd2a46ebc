//! SQL client spans for any driver (sqlx, or anything returning a future
//! of `Result`): span `{OPERATION} {table}` of kind CLIENT with
//! `db.system.name` (and the older `db.system`), `db.operation.name`,
//! `db.collection.name`, `db.namespace` and `db.query.text` *sanitised*
//! (string and number literals replaced by `?`); errors set ERROR status;
//! `db_operations_total{system,operation,status}` and
//! `db_operation_duration_seconds{system,operation}`.
//!
//! Why not an sqlx `Executor` wrapper: sqlx's executor traits are generic
//! over lifetimes and databases in a way that makes a wrapper as large as
//! the driver; wrapping the *call* covers every sqlx function (`execute`,
//! `fetch_all`, transactions) and costs this crate no sqlx dependency.
//!
//! ```
//! # async fn demo(telemetry: sightline_sdk::Telemetry) -> Result<(), std::io::Error> {
//! let db = sightline_sdk::sql::Db::new(&telemetry, "sqlite").namespace("orders.db");
//! const INSERT: &str = "INSERT INTO events (kind, tenant) VALUES (?, ?)";
//! // with sqlx: db.run(INSERT, sqlx::query(INSERT).bind("created").bind("acme").execute(&pool)).await?;
//! let rows = db.run(INSERT, async { Ok::<u64, std::io::Error>(1) }).await?;
//! # let _ = rows; Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

use crate::Telemetry;
use crate::metrics::DbSeries;

/// What is derived from a statement once: name, attributes, metric series.
#[derive(Debug)]
struct Prepared {
    name: String,
    attributes: Vec<KeyValue>,
    series: DbSeries,
}

/// Statements remembered per [`Db`]; beyond this many distinct ones
/// (statements built with literals inside), each call derives its own.
const MAX_PREPARED: usize = 256;

/// Spans for one database. Cheap to clone (clones share the statement cache).
#[derive(Clone, Debug)]
pub struct Db {
    telemetry: Telemetry,
    system: String,
    namespace: Option<String>,
    prepared: Arc<Mutex<HashMap<String, Arc<Prepared>>>>,
}

impl Db {
    /// A database of `system` (`sqlite`, `postgresql`, `mysql`...).
    pub fn new(telemetry: &Telemetry, system: impl Into<String>) -> Db {
        Db { telemetry: telemetry.clone(), system: system.into(), namespace: None, prepared: Arc::default() }
    }

    /// `db.namespace` (database name or file).
    pub fn namespace(mut self, ns: impl Into<String>) -> Db {
        self.namespace = Some(ns.into());
        self
    }

    /// Runs `fut` (the driver call executing `statement`) under a client span.
    pub async fn run<F, T, E>(&self, statement: &str, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: Display,
    {
        let started = Instant::now();
        let prepared = self.prepare(statement);
        let cx = crate::spans::start(
            &self.telemetry,
            prepared.name.clone(),
            SpanKind::Client,
            &Context::current(),
            prepared.attributes.clone(),
        );
        let result = fut.with_context(cx.clone()).await;
        if let Err(e) = &result {
            cx.span().set_attribute(KeyValue::new("error.type", "db_error"));
            crate::spans::record_exception(&cx.span(), e);
        }
        cx.span().end();
        prepared.series.record(result.is_ok(), started.elapsed().as_secs_f64());
        result
    }

    fn prepare(&self, statement: &str) -> Arc<Prepared> {
        if let Ok(cache) = self.prepared.lock()
            && let Some(p) = cache.get(statement)
        {
            return p.clone();
        }
        let operation = operation(statement);
        let table = collection(statement);
        let name = match &table {
            Some(t) => format!("{operation} {t}"),
            None => operation.clone(),
        };
        let mut attributes = vec![
            KeyValue::new("db.system.name", self.system.clone()),
            KeyValue::new("db.system", self.system.clone()),
            KeyValue::new("db.operation.name", operation.clone()),
            KeyValue::new("db.query.text", sanitize(statement)),
        ];
        if let Some(t) = table {
            attributes.push(KeyValue::new("db.collection.name", t));
        }
        if let Some(ns) = &self.namespace {
            attributes.push(KeyValue::new("db.namespace", ns.clone()));
        }
        let series = self.telemetry.metrics().db_series(&self.system, &operation);
        let p = Arc::new(Prepared { name, attributes, series });
        if let Ok(mut cache) = self.prepared.lock()
            && cache.len() < MAX_PREPARED
        {
            cache.insert(statement.to_owned(), p.clone());
        }
        p
    }
}

/// The statement's first keyword, uppercase (`SELECT`, `INSERT`...).
pub fn operation(statement: &str) -> String {
    statement
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .find(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| "QUERY".to_owned())
}

/// The table a simple statement works on (`INSERT INTO t`, `UPDATE t`,
/// `DELETE FROM t`, `SELECT ... FROM t`), if it can be told.
pub fn collection(statement: &str) -> Option<String> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    let after = |kw: &str| {
        words
            .iter()
            .position(|w| w.eq_ignore_ascii_case(kw))
            .and_then(|i| words.get(i + 1))
            .map(|t| t.trim_matches(|c: char| c == '(' || c == ';' || c == '"' || c == '`').to_owned())
            .filter(|t| !t.is_empty() && !t.starts_with('('))
    };
    match operation(statement).as_str() {
        "INSERT" | "REPLACE" => after("INTO"),
        "UPDATE" => after("UPDATE"),
        "DELETE" | "SELECT" => after("FROM"),
        "CREATE" => after("TABLE"),
        _ => None,
    }
}

/// Replaces string literals (`'...'`, with `''` escapes) and numeric
/// literals by `?`; identifiers (also those containing digits), quoted
/// identifiers and placeholders (`?`, `$1`) are kept.
pub fn sanitize(statement: &str) -> String {
    let chars: Vec<char> = statement.chars().collect();
    let mut out = String::with_capacity(statement.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i += 1;
            out.push('?');
            continue;
        }
        if c == '$' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            // positional placeholder: keep
            out.push(c);
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                out.push(chars[i]);
                i += 1;
            }
            continue;
        }
        let prev_is_ident =
            out.chars().last().is_some_and(|p| p.is_alphanumeric() || p == '_' || p == '"' || p == '`');
        if (c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit) && !prev_is_ident))
            && !prev_is_ident
        {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            out.push('?');
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                out.push(chars[i]);
                i += 1;
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}
