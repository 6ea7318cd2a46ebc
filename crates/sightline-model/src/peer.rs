//! How a service map names what a span calls when that side sends no spans
//! of its own: a database, a message broker, an external API.
//!
//! One helper, so the live service graph, the stored dependencies and any
//! UI agree on the name. The rule: `peer.service` when the caller set it
//! (it is the name the caller's owners chose); else the database or
//! messaging system (`db.system.name`/`db.system`, `messaging.system`), with
//! the database name appended only where it says something. A bare index
//! (Redis's `0`) or a file (SQLite's `/tmp/…/worker.db`) says nothing a
//! reader of the map can use, and would make one node per file or index.

use crate::{KeyValue, Span, Value};

/// Attributes naming the database product, newest convention first.
const DB_SYSTEM: [&str; 2] = ["db.system.name", "db.system"];

/// Attributes naming the database inside that product.
const DB_NAMESPACE: [&str; 2] = ["db.namespace", "db.name"];

/// Whether `span` carries any database attribute (system or name): such a
/// CLIENT span is a call to a database, which sends no spans of its own.
pub fn is_database_call(span: &Span) -> bool {
    DB_SYSTEM.iter().chain(DB_NAMESPACE.iter()).any(|key| text(span, key).is_some())
}

/// The node name of the peer `span` calls, when the span says what it is:
/// `peer.service`, else `<db system>` or `<db system>/<database>`, else
/// `messaging.system`; `None` when it names nothing usable.
pub fn virtual_node_name(span: &Span) -> Option<String> {
    if let Some(peer) = text(span, "peer.service") {
        return Some(peer);
    }
    if let Some(system) = DB_SYSTEM.iter().find_map(|key| text(span, key)) {
        return Some(match DB_NAMESPACE.iter().find_map(|key| text(span, key)) {
            Some(namespace) if says_something(&namespace) => format!("{system}/{namespace}"),
            _ => system,
        });
    }
    if let Some(system) = text(span, "messaging.system") {
        return Some(system);
    }
    // A database name without its system: only a meaningful name will do.
    DB_NAMESPACE.iter().find_map(|key| text(span, key)).filter(|n| says_something(n))
}

/// Whether a database name identifies something on its own: not a bare
/// number (Redis's db index) and not a file or address (`/`, `\`, `:` and
/// `.` appear in paths, SQLite file names and `:memory:`).
fn says_something(namespace: &str) -> bool {
    !namespace.is_empty()
        && !namespace.bytes().all(|b| b.is_ascii_digit())
        && !namespace.contains(['/', '\\', ':', '.'])
}

/// A non-empty attribute as text, from the span first, then its resource.
fn text(span: &Span, key: &str) -> Option<String> {
    fn find<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
        kvs.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
    }
    let value = find(&span.attributes, key).or_else(|| find(span.resource.attributes(), key))?;
    match value {
        Value::Empty => None,
        Value::Str(s) if s.trim().is_empty() => None,
        v => Some(v.to_text()),
    }
}
