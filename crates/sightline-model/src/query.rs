use crate::{Span, StatusCode};

/// One `key=value` condition of a trace search. Values compare as text
/// (see [`crate::Value::to_text`]), as Jaeger compares tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFilter {
    /// Attribute key, or one of the synthetic Jaeger keys (`error`,
    /// `span.kind`, `otel.status_code`, `otel.status_description`,
    /// `otel.scope.name`, `otel.scope.version`).
    pub key: String,
    /// Expected value as text.
    pub value: String,
}

/// A trace search. A trace matches when one of its spans satisfies every
/// condition at once — Jaeger's semantics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceQuery {
    /// Service name of the span's resource.
    pub service: Option<String>,
    /// Span name.
    pub operation: Option<String>,
    /// Tag conditions, all of which must hold.
    pub tags: Vec<TagFilter>,
    /// Minimum span duration, inclusive.
    pub min_duration_nanos: Option<u64>,
    /// Maximum span duration, inclusive.
    pub max_duration_nanos: Option<u64>,
    /// Earliest span start, inclusive.
    pub start_min_unix_nanos: Option<u64>,
    /// Latest span start, inclusive.
    pub start_max_unix_nanos: Option<u64>,
    /// Maximum number of traces returned; backends clamp it to
    /// [`TraceQuery::MAX_LIMIT`].
    pub limit: usize,
}

impl TraceQuery {
    /// Traces a search returns when the request names no limit: what
    /// Jaeger's query service defaults to.
    pub const DEFAULT_LIMIT: usize = 100;

    /// The most traces one search returns, whatever it asks for: each
    /// trace is materialised in memory before it is serialised, and an
    /// uncapped `limit=100000` let 20 parallel queries take the process to
    /// 1 GiB. Backends also bound a search's result bytes (see
    /// [`crate::MemoryBudget::query_bytes_each`]).
    pub const MAX_LIMIT: usize = 1000;

    /// The limit to apply: `limit` clamped to [`TraceQuery::MAX_LIMIT`].
    pub fn effective_limit(&self) -> usize {
        self.limit.min(Self::MAX_LIMIT)
    }
}

/// Whether `span` satisfies every condition of `query` (the limit aside).
/// Backends may prune with indexes first, but this is the definition of a
/// match.
pub fn span_matches(span: &Span, query: &TraceQuery) -> bool {
    if query.service.as_deref().is_some_and(|s| s != span.service_name()) {
        return false;
    }
    if query.operation.as_deref().is_some_and(|o| o != span.name) {
        return false;
    }
    let duration = span.duration_nanos();
    if query.min_duration_nanos.is_some_and(|min| duration < min)
        || query.max_duration_nanos.is_some_and(|max| duration > max)
    {
        return false;
    }
    let start = span.start_time_unix_nano;
    if query.start_min_unix_nanos.is_some_and(|min| start < min)
        || query.start_max_unix_nanos.is_some_and(|max| start > max)
    {
        return false;
    }
    query.tags.iter().all(|tag| tag_lookup(span, &tag.key, &tag.value))
}

/// Whether `span` carries tag `key` with text `value`: in its attributes,
/// its resource's attributes, its events' attributes, or as one of the
/// synthetic tags the Jaeger translation adds.
pub fn tag_lookup(span: &Span, key: &str, value: &str) -> bool {
    let synthetic = match key {
        "error" => Some(span.status.code == StatusCode::Error && value == "true"),
        "span.kind" => Some(span.kind.jaeger_name() == value),
        "otel.status_code" => Some(span.status.code.otel_name() == Some(value)),
        "otel.status_description" => Some(!span.status.message.is_empty() && span.status.message == value),
        "otel.scope.name" => Some(span.scope.name == value),
        "otel.scope.version" => Some(span.scope.version == value),
        _ => None,
    };
    if synthetic == Some(true) {
        return true;
    }
    let hit = |kvs: &[crate::KeyValue]| kvs.iter().any(|kv| kv.key == key && kv.value.text_eq(value));
    hit(&span.attributes) || hit(span.resource.attributes()) || span.events.iter().any(|e| hit(&e.attributes))
}

/// A [`TraceQuery`] as URL query pairs, for a node asking a peer to search
/// its head (`/internal/head/search`): exact (times and durations in ns,
/// tags as ordered `tagKey`/`tagValue` pairs, so a key or value may hold
/// any character), unlike Jaeger's µs parameters. [`TraceQuery::from_pairs`]
/// reads them back.
impl TraceQuery {
    /// The query as `(name, value)` pairs; absent conditions are left out.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut opt = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((name, v));
            }
        };
        opt("service", self.service.clone());
        opt("operation", self.operation.clone());
        opt("minDurationNs", self.min_duration_nanos.map(|n| n.to_string()));
        opt("maxDurationNs", self.max_duration_nanos.map(|n| n.to_string()));
        opt("startNs", self.start_min_unix_nanos.map(|n| n.to_string()));
        opt("endNs", self.start_max_unix_nanos.map(|n| n.to_string()));
        out.push(("limit", self.limit.to_string()));
        for tag in &self.tags {
            out.push(("tagKey", tag.key.clone()));
            out.push(("tagValue", tag.value.clone()));
        }
        out
    }

    /// Reads [`TraceQuery::to_pairs`]' pairs back; `Err` names the pair
    /// that is wrong. Unknown names are an error too: a peer of another
    /// version must not silently search for less.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<TraceQuery, String> {
        let mut query = TraceQuery { limit: TraceQuery::DEFAULT_LIMIT, ..TraceQuery::default() };
        let mut key: Option<String> = None;
        let number =
            |name: &str, v: &str| v.parse::<u64>().map_err(|_| format!("{name}={v:?}: not a number"));
        for (name, value) in pairs {
            match name {
                "service" => query.service = Some(value.to_owned()),
                "operation" => query.operation = Some(value.to_owned()),
                "minDurationNs" => query.min_duration_nanos = Some(number(name, value)?),
                "maxDurationNs" => query.max_duration_nanos = Some(number(name, value)?),
                "startNs" => query.start_min_unix_nanos = Some(number(name, value)?),
                "endNs" => query.start_max_unix_nanos = Some(number(name, value)?),
                "limit" => {
                    query.limit =
                        usize::try_from(number(name, value)?).map_err(|_| "limit too large".to_owned())?
                }
                "tagKey" if key.is_none() => key = Some(value.to_owned()),
                "tagValue" => match key.take() {
                    Some(key) => query.tags.push(TagFilter { key, value: value.to_owned() }),
                    None => return Err("tagValue without a tagKey before it".to_owned()),
                },
                "tagKey" => return Err("tagKey followed by another tagKey".to_owned()),
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
        if key.is_some() {
            return Err("tagKey without its tagValue".to_owned());
        }
        Ok(query)
    }
}
