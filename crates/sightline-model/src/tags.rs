//! Listing attribute names and values, for query languages' autocompletion
//! (Tempo's tag endpoints, TraceQL editors).
//!
//! The listing is defined here, over spans, so a reader without an index
//! can answer from a sample ([`crate::SpanReader`]'s default methods) and
//! one with dictionaries answers the same question faster.

use std::collections::{BTreeMap, BTreeSet};

use crate::{KeyValue, Span, Value};

/// Where an attribute lives, named as TraceQL names its scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AttributeScope {
    /// The span's resource (`resource.`).
    Resource,
    /// The span itself (`span.`).
    Span,
    /// One of the span's events (`event.`).
    Event,
    /// One of the span's links (`link.`).
    Link,
    /// The instrumentation scope that produced the span (`instrumentation.`).
    Instrumentation,
}

impl AttributeScope {
    /// Every scope, in the order tag listings report them.
    pub const ALL: [AttributeScope; 5] = [
        AttributeScope::Resource,
        AttributeScope::Span,
        AttributeScope::Event,
        AttributeScope::Link,
        AttributeScope::Instrumentation,
    ];

    /// The TraceQL name: `resource`, `span`, `event`, `link`,
    /// `instrumentation`.
    pub fn name(self) -> &'static str {
        match self {
            AttributeScope::Resource => "resource",
            AttributeScope::Span => "span",
            AttributeScope::Event => "event",
            AttributeScope::Link => "link",
            AttributeScope::Instrumentation => "instrumentation",
        }
    }

    /// Parses a TraceQL scope name.
    pub fn from_name(name: &str) -> Option<AttributeScope> {
        AttributeScope::ALL.into_iter().find(|s| s.name() == name)
    }

    /// This scope's attributes of `span`, in order (events' and links'
    /// attributes one list after another).
    pub fn attributes(self, span: &Span) -> Box<dyn Iterator<Item = &KeyValue> + '_> {
        match self {
            AttributeScope::Resource => Box::new(span.resource.attributes().iter()),
            AttributeScope::Span => Box::new(span.attributes.iter()),
            AttributeScope::Event => Box::new(span.events.iter().flat_map(|e| e.attributes.iter())),
            AttributeScope::Link => Box::new(span.links.iter().flat_map(|l| l.attributes.iter())),
            AttributeScope::Instrumentation => Box::new(span.scope.attributes.iter()),
        }
    }
}

/// Which spans a tag listing looks at, and how much it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagQuery {
    /// Only spans starting at or after this time (ns since the Unix epoch).
    pub start_min_unix_nanos: Option<u64>,
    /// Only spans starting at or before this time.
    pub start_max_unix_nanos: Option<u64>,
    /// At most this many names per scope, or this many values.
    pub limit: usize,
}

impl Default for TagQuery {
    fn default() -> Self {
        TagQuery { start_min_unix_nanos: None, start_max_unix_nanos: None, limit: DEFAULT_TAG_LIMIT }
    }
}

/// Names or values a listing returns when the caller sets no limit.
pub const DEFAULT_TAG_LIMIT: usize = 1_000;

impl TagQuery {
    /// Whether `span` starts inside the window.
    pub fn covers(&self, span: &Span) -> bool {
        let start = span.start_time_unix_nano;
        self.start_min_unix_nanos.is_none_or(|min| start >= min)
            && self.start_max_unix_nanos.is_none_or(|max| start <= max)
    }
}

/// Attribute names per scope, each list sorted and without duplicates.
pub type TagNames = BTreeMap<AttributeScope, Vec<String>>;

/// The attribute names of `spans` in the window, per scope (only `scope`
/// when given), at most `query.limit` per scope. Scopes without names are
/// absent.
pub fn collect_tag_names<'a>(
    spans: impl IntoIterator<Item = &'a Span>,
    scope: Option<AttributeScope>,
    query: &TagQuery,
) -> TagNames {
    let scopes: Vec<AttributeScope> = scope.map_or_else(|| AttributeScope::ALL.to_vec(), |s| vec![s]);
    let mut names: BTreeMap<AttributeScope, BTreeSet<&str>> = BTreeMap::new();
    for span in spans.into_iter().filter(|s| query.covers(s)) {
        for &scope in &scopes {
            let set = names.entry(scope).or_default();
            for kv in scope.attributes(span) {
                if set.len() >= query.limit {
                    break;
                }
                set.insert(&kv.key);
            }
        }
    }
    names
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(scope, set)| (scope, set.into_iter().map(str::to_owned).collect()))
        .collect()
}

/// The distinct values of attribute `key` in `spans` in the window: in
/// `scope`, or in the span's and its resource's attributes when `None` (an
/// unscoped TraceQL attribute). Sorted by type, then text; at most
/// `query.limit`.
pub fn collect_tag_values<'a>(
    spans: impl IntoIterator<Item = &'a Span>,
    scope: Option<AttributeScope>,
    key: &str,
    query: &TagQuery,
) -> Vec<Value> {
    let scopes: &[AttributeScope] = match &scope {
        Some(s) => std::slice::from_ref(s),
        None => &[AttributeScope::Span, AttributeScope::Resource],
    };
    // Values are keyed by (type, text): floats have no total order, and
    // `1` and `"1"` are different values.
    let mut seen: BTreeMap<(u8, String), Value> = BTreeMap::new();
    'spans: for span in spans.into_iter().filter(|s| query.covers(s)) {
        for scope in scopes {
            for kv in scope.attributes(span).filter(|kv| kv.key == key) {
                if matches!(kv.value, Value::Empty) {
                    continue;
                }
                if seen.len() >= query.limit {
                    break 'spans;
                }
                seen.entry((type_rank(&kv.value), kv.value.to_text())).or_insert_with(|| kv.value.clone());
            }
        }
    }
    seen.into_values().collect()
}

/// `values` from several listings (nodes sharing a bucket) as one, in
/// [`collect_tag_values`]' order: each value once, sorted by type, then
/// text; at most `limit`.
pub fn merge_tag_values(values: impl IntoIterator<Item = Value>, limit: usize) -> Vec<Value> {
    let mut seen: BTreeMap<(u8, String), Value> = BTreeMap::new();
    for value in values.into_iter().filter(|v| !matches!(v, Value::Empty)) {
        seen.entry((type_rank(&value), value.to_text())).or_insert(value);
    }
    seen.into_values().take(limit).collect()
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Str(_) => 0,
        Value::Int(_) => 1,
        Value::Double(_) => 2,
        Value::Bool(_) => 3,
        Value::Bytes(_) => 4,
        Value::Array(_) => 5,
        Value::Map(_) => 6,
        Value::Empty => 7,
    }
}
