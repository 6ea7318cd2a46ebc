use std::sync::Arc;

use crate::{CompactString, KeyValue, SpanId, TraceId, Value};

/// The resource a span was produced by, shared by all spans of one
/// `ResourceSpans` (hence held in an `Arc`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resource {
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
    schema_url: String,
    service_name: String,
}

/// Service name used when a resource has no `service.name`, as the
/// OpenTelemetry SDKs default it.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

impl Resource {
    /// Builds a resource; the service name is read from `service.name`.
    ///
    /// The semantic conventions make `service.name` a string, and SDKs
    /// name a service without one `unknown_service`. A `service.name` that
    /// is empty or not a string (an array, a number) is read as missing:
    /// the span's service is [`UNKNOWN_SERVICE`] in every reader, the
    /// services list, the operations and search by service alike, while
    /// the attribute keeps its value (a tag search matches its text, and
    /// the Jaeger view shows it as a process tag). Jaeger's OTLP translator
    /// would show an empty name instead, which its UI cannot select.
    pub fn new(attributes: Vec<KeyValue>, dropped_attributes_count: u32, schema_url: String) -> Self {
        let service_name = attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match &kv.value {
                Value::Str(s) if !s.is_empty() => Some(s.as_str().to_owned()),
                _ => None,
            })
            .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned());
        Resource { attributes, dropped_attributes_count, schema_url, service_name }
    }

    /// The `service.name` attribute, or [`UNKNOWN_SERVICE`].
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// All resource attributes, `service.name` included.
    pub fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }

    /// Attributes the producer dropped.
    pub fn dropped_attributes_count(&self) -> u32 {
        self.dropped_attributes_count
    }

    /// The schema URL of the resource, possibly empty.
    pub fn schema_url(&self) -> &str {
        &self.schema_url
    }
}

/// The instrumentation scope (library) that produced a span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    /// Scope name, e.g. `opentelemetry.instrumentation.fastapi`.
    pub name: String,
    /// Scope version, possibly empty.
    pub version: String,
    /// Scope attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
    /// The schema URL of the `ScopeSpans`, possibly empty.
    pub schema_url: String,
}

/// Span kind, numbered as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum SpanKind {
    /// Unspecified (0).
    #[default]
    Unspecified = 0,
    /// Internal operation (1).
    Internal = 1,
    /// Server side of a synchronous call (2).
    Server = 2,
    /// Client side of a synchronous call (3).
    Client = 3,
    /// Sender of an asynchronous message (4).
    Producer = 4,
    /// Receiver of an asynchronous message (5).
    Consumer = 5,
}

impl SpanKind {
    /// Maps the OTLP enum number; unknown numbers become `Unspecified`.
    pub fn from_i32(n: i32) -> SpanKind {
        match n {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }

    /// The lower-case name Jaeger uses in the `span.kind` tag and in
    /// `/api/operations` (empty for unspecified).
    pub fn jaeger_name(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "",
            SpanKind::Internal => "internal",
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
        }
    }

    /// Parses a Jaeger kind name (case-insensitive); `""` is `Unspecified`.
    pub fn from_jaeger_name(s: &str) -> Option<SpanKind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "" | "unspecified" => SpanKind::Unspecified,
            "internal" => SpanKind::Internal,
            "server" => SpanKind::Server,
            "client" => SpanKind::Client,
            "producer" => SpanKind::Producer,
            "consumer" => SpanKind::Consumer,
            _ => return None,
        })
    }
}

/// Span status code, numbered as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum StatusCode {
    /// Not set (0).
    #[default]
    Unset = 0,
    /// Explicitly OK (1).
    Ok = 1,
    /// An error (2).
    Error = 2,
}

impl StatusCode {
    /// Maps the OTLP enum number; unknown numbers become `Unset`.
    pub fn from_i32(n: i32) -> StatusCode {
        match n {
            1 => StatusCode::Ok,
            2 => StatusCode::Error,
            _ => StatusCode::Unset,
        }
    }

    /// `OK` / `ERROR` as in `otel.status_code`; `None` for unset.
    pub fn otel_name(self) -> Option<&'static str> {
        match self {
            StatusCode::Unset => None,
            StatusCode::Ok => Some("OK"),
            StatusCode::Error => Some("ERROR"),
        }
    }
}

/// Span status.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Status {
    /// The status code.
    pub code: StatusCode,
    /// A developer-facing message, usually set only with `Error`.
    pub message: String,
}

/// A timestamped event on a span (a Jaeger "log").
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    /// Event time, ns since the Unix epoch.
    pub time_unix_nano: u64,
    /// Event name, e.g. `exception`.
    pub name: String,
    /// Event attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
}

/// A link from a span to another span (Jaeger `FOLLOWS_FROM`).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    /// Linked trace.
    pub trace_id: TraceId,
    /// Linked span.
    pub span_id: SpanId,
    /// W3C tracestate of the link.
    pub trace_state: String,
    /// Link attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
    /// W3C trace flags plus OTLP's remote bits.
    pub flags: u32,
}

/// One span, with its resource and scope.
///
/// Invariant: ids are valid (see [`TraceId`], [`SpanId`]); the OTLP decoder
/// rejects spans that would break it.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// Trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// Parent span, `None` for a root span.
    pub parent_span_id: Option<SpanId>,
    /// W3C tracestate, possibly empty.
    pub trace_state: String,
    /// W3C trace flags plus OTLP's remote bits.
    pub flags: u32,
    /// Span (operation) name.
    pub name: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, ns since the Unix epoch.
    pub start_time_unix_nano: u64,
    /// End, ns since the Unix epoch.
    pub end_time_unix_nano: u64,
    /// Span attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes the producer dropped.
    pub dropped_attributes_count: u32,
    /// Events, in the order received.
    pub events: Vec<Event>,
    /// Events the producer dropped.
    pub dropped_events_count: u32,
    /// Links to other spans.
    pub links: Vec<Link>,
    /// Links the producer dropped.
    pub dropped_links_count: u32,
    /// Status.
    pub status: Status,
    /// Producing resource (shared).
    pub resource: Arc<Resource>,
    /// Producing instrumentation scope (shared).
    pub scope: Arc<Scope>,
}

impl Span {
    /// Duration in ns; zero when the end precedes the start.
    pub fn duration_nanos(&self) -> u64 {
        self.end_time_unix_nano.saturating_sub(self.start_time_unix_nano)
    }

    /// The producing service's name.
    pub fn service_name(&self) -> &str {
        self.resource.service_name()
    }

    /// Heap and inline bytes this span holds, as mimalloc (the binary's
    /// allocator) sees them: each allocation's capacity rounded up to its
    /// size class, no per-allocation header. Used for memory budgets.
    /// Shared resources and scopes are not counted, nor strings held
    /// inline (up to 24 bytes). Checked against RSS before keys and short
    /// values were held inline: 1,436 B estimated per realistic span
    /// (loadgen), 1,489 B resident; not measured again since.
    pub fn estimated_size(&self) -> usize {
        /// An allocation of `n` bytes, rounded up to a multiple of 16.
        fn alloc(n: usize) -> usize {
            n.div_ceil(16) * 16
        }
        // `&Vec`, not a slice: the capacity is what is allocated.
        #[allow(clippy::ptr_arg)]
        fn list<T>(v: &Vec<T>) -> usize {
            alloc(v.capacity() * std::mem::size_of::<T>())
        }
        /// A string held inline (up to 24 bytes) allocates nothing.
        fn text(s: &CompactString) -> usize {
            if s.is_heap_allocated() { alloc(s.capacity()) } else { 0 }
        }
        #[allow(clippy::ptr_arg)]
        fn kvs(v: &Vec<KeyValue>) -> usize {
            list(v) + v.iter().map(|kv| text(&kv.key) + value_size(&kv.value)).sum::<usize>()
        }
        fn value_size(v: &Value) -> usize {
            match v {
                Value::Str(s) => text(s),
                Value::Bytes(b) => alloc(b.capacity()),
                Value::Array(a) => list(a) + a.iter().map(value_size).sum::<usize>(),
                Value::Map(m) => kvs(m),
                _ => 0,
            }
        }
        std::mem::size_of::<Span>()
            + alloc(self.trace_state.capacity())
            + alloc(self.name.capacity())
            + alloc(self.status.message.capacity())
            + kvs(&self.attributes)
            + list(&self.events)
            + self.events.iter().map(|e| alloc(e.name.capacity()) + kvs(&e.attributes)).sum::<usize>()
            + list(&self.links)
            + self.links.iter().map(|l| alloc(l.trace_state.capacity()) + kvs(&l.attributes)).sum::<usize>()
    }
}
