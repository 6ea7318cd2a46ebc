//! OTLP trace messages (as `sightline_model::otlp` encodes spans) written as
//! JSON, in the two spellings query clients expect.
//!
//! * [`Dialect::Otlp`] is the OTLP/JSON of the OTLP specification, as the
//!   Collector's `pdata` writes it and Jaeger API v3 serves it: hex ids,
//!   enums as numbers.
//! * [`Dialect::Proto3`] is protobuf's canonical JSON, as Go's `jsonpb`
//!   writes Tempo's responses: base64 ids, enums by name.
//!
//! Both write 64-bit integers as strings, leave out fields at their default
//! (empty strings and lists, zero numbers) and always write the `resource`,
//! `scope` and `status` objects, as both writers do. opentelemetry-proto's
//! own serde writes every default field and `null`s, which is valid but
//! not what these clients were tested against.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// How ids and enums are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OTLP/JSON: hex ids, numeric enums.
    Otlp,
    /// Protobuf canonical JSON: base64 ids, enum names.
    Proto3,
}

/// `{"resourceSpans": [...]}`: an OTLP `TracesData` (also Tempo's `Trace`).
pub(crate) struct TracesData<'a> {
    pub resource_spans: &'a [ResourceSpans],
    pub dialect: Dialect,
}

impl Serialize for TracesData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if !self.resource_spans.is_empty() {
            map.serialize_entry("resourceSpans", &List(self.resource_spans, self.dialect))?;
        }
        map.end()
    }
}

/// A list of attributes (`[{"key", "value"}]`), e.g. the attributes of a
/// span in Tempo's search results.
pub(crate) struct Attributes<'a>(pub &'a [KeyValue], pub Dialect);

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        List(self.0, self.1).serialize(s)
    }
}

/// A repeated field.
struct List<'a, T>(&'a [T], Dialect);

/// One message in a dialect.
struct Msg<'a, T>(&'a T, Dialect);

impl<'a, T> Serialize for List<'a, T>
where
    Msg<'a, T>: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for item in self.0 {
            seq.serialize_element(&Msg(item, self.1))?;
        }
        seq.end()
    }
}

/// Writes `key: value` unless the value is its type's default.
trait Entries: SerializeMap {
    fn string(&mut self, key: &str, v: &str) -> Result<(), Self::Error> {
        if v.is_empty() { Ok(()) } else { self.serialize_entry(key, v) }
    }
    fn uint(&mut self, key: &str, v: u32) -> Result<(), Self::Error> {
        if v == 0 { Ok(()) } else { self.serialize_entry(key, &v) }
    }
    fn int64(&mut self, key: &str, v: u64) -> Result<(), Self::Error> {
        if v == 0 { Ok(()) } else { self.serialize_entry(key, &v.to_string()) }
    }
    fn id(&mut self, key: &str, v: &[u8], d: Dialect) -> Result<(), Self::Error> {
        if v.is_empty() {
            return Ok(());
        }
        match d {
            Dialect::Otlp => self.serialize_entry(key, &hex::encode(v)),
            Dialect::Proto3 => self.serialize_entry(key, &STANDARD.encode(v)),
        }
    }
    fn list<'a, T>(&mut self, key: &str, v: &'a [T], d: Dialect) -> Result<(), Self::Error>
    where
        Msg<'a, T>: Serialize,
    {
        if v.is_empty() { Ok(()) } else { self.serialize_entry(key, &List(v, d)) }
    }
    fn enumeration(&mut self, key: &str, v: i32, names: &[&str], d: Dialect) -> Result<(), Self::Error> {
        if v == 0 {
            return Ok(());
        }
        match (d, usize::try_from(v).ok().and_then(|i| names.get(i))) {
            (Dialect::Proto3, Some(name)) => self.serialize_entry(key, name),
            // jsonpb writes an unknown enum value as its number too.
            _ => self.serialize_entry(key, &v),
        }
    }
}

impl<M: SerializeMap> Entries for M {}

const SPAN_KINDS: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

impl Serialize for Msg<'_, ResourceSpans> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (rs, d) = (self.0, self.1);
        let mut map = s.serialize_map(None)?;
        let empty = Resource::default();
        map.serialize_entry("resource", &Msg(rs.resource.as_ref().unwrap_or(&empty), d))?;
        map.list("scopeSpans", &rs.scope_spans, d)?;
        map.string("schemaUrl", &rs.schema_url)?;
        map.end()
    }
}

impl Serialize for Msg<'_, Resource> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.list("attributes", &self.0.attributes, self.1)?;
        map.uint("droppedAttributesCount", self.0.dropped_attributes_count)?;
        map.end()
    }
}

impl Serialize for Msg<'_, ScopeSpans> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (ss, d) = (self.0, self.1);
        let mut map = s.serialize_map(None)?;
        let empty = InstrumentationScope::default();
        map.serialize_entry("scope", &Msg(ss.scope.as_ref().unwrap_or(&empty), d))?;
        map.list("spans", &ss.spans, d)?;
        map.string("schemaUrl", &ss.schema_url)?;
        map.end()
    }
}

impl Serialize for Msg<'_, InstrumentationScope> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.string("name", &self.0.name)?;
        map.string("version", &self.0.version)?;
        map.list("attributes", &self.0.attributes, self.1)?;
        map.uint("droppedAttributesCount", self.0.dropped_attributes_count)?;
        map.end()
    }
}

impl Serialize for Msg<'_, Span> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (span, d) = (self.0, self.1);
        let mut map = s.serialize_map(None)?;
        map.id("traceId", &span.trace_id, d)?;
        map.id("spanId", &span.span_id, d)?;
        map.string("traceState", &span.trace_state)?;
        map.id("parentSpanId", &span.parent_span_id, d)?;
        map.uint("flags", span.flags)?;
        map.string("name", &span.name)?;
        map.enumeration("kind", span.kind, &SPAN_KINDS, d)?;
        map.int64("startTimeUnixNano", span.start_time_unix_nano)?;
        map.int64("endTimeUnixNano", span.end_time_unix_nano)?;
        map.list("attributes", &span.attributes, d)?;
        map.uint("droppedAttributesCount", span.dropped_attributes_count)?;
        map.list("events", &span.events, d)?;
        map.uint("droppedEventsCount", span.dropped_events_count)?;
        map.list("links", &span.links, d)?;
        map.uint("droppedLinksCount", span.dropped_links_count)?;
        let unset = Status::default();
        map.serialize_entry("status", &Msg(span.status.as_ref().unwrap_or(&unset), d))?;
        map.end()
    }
}

impl Serialize for Msg<'_, Status> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.string("message", &self.0.message)?;
        map.enumeration("code", self.0.code, &STATUS_CODES, self.1)?;
        map.end()
    }
}

impl Serialize for Msg<'_, span::Event> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.int64("timeUnixNano", self.0.time_unix_nano)?;
        map.string("name", &self.0.name)?;
        map.list("attributes", &self.0.attributes, self.1)?;
        map.uint("droppedAttributesCount", self.0.dropped_attributes_count)?;
        map.end()
    }
}

impl Serialize for Msg<'_, span::Link> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (link, d) = (self.0, self.1);
        let mut map = s.serialize_map(None)?;
        map.id("traceId", &link.trace_id, d)?;
        map.id("spanId", &link.span_id, d)?;
        map.string("traceState", &link.trace_state)?;
        map.list("attributes", &link.attributes, d)?;
        map.uint("droppedAttributesCount", link.dropped_attributes_count)?;
        map.uint("flags", link.flags)?;
        map.end()
    }
}

impl Serialize for Msg<'_, KeyValue> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.string("key", &self.0.key)?;
        let empty = AnyValue::default();
        map.serialize_entry("value", &Msg(self.0.value.as_ref().unwrap_or(&empty), self.1))?;
        map.end()
    }
}

impl Serialize for Msg<'_, AnyValue> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use any_value::Value as V;
        let d = self.1;
        let mut map = s.serialize_map(Some(1))?;
        match &self.0.value {
            None | Some(V::StringValueStrindex(_)) => {}
            // The chosen member of a oneof is written even at its default.
            Some(V::StringValue(v)) => map.serialize_entry("stringValue", v)?,
            Some(V::BoolValue(v)) => map.serialize_entry("boolValue", v)?,
            Some(V::IntValue(v)) => map.serialize_entry("intValue", &v.to_string())?,
            Some(V::DoubleValue(v)) => map.serialize_entry("doubleValue", &Double(*v))?,
            Some(V::BytesValue(v)) => map.serialize_entry("bytesValue", &STANDARD.encode(v))?,
            Some(V::ArrayValue(a)) => map.serialize_entry("arrayValue", &Values(&a.values, d))?,
            Some(V::KvlistValue(kv)) => map.serialize_entry("kvlistValue", &Pairs(&kv.values, d))?,
        }
        map.end()
    }
}

/// `{"values": [AnyValue…]}`.
struct Values<'a>(&'a [AnyValue], Dialect);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.list("values", self.0, self.1)?;
        map.end()
    }
}

/// `{"values": [KeyValue…]}`.
struct Pairs<'a>(&'a [KeyValue], Dialect);

impl Serialize for Pairs<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.list("values", self.0, self.1)?;
        map.end()
    }
}

/// A double as proto3 JSON writes it: a number, or `"NaN"`,
/// `"Infinity"`, `"-Infinity"`.
struct Double(f64);

impl Serialize for Double {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if v > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            s.serialize_f64(v)
        }
    }
}
