//! Reading OTLP trace protobuf in place, without decoding it into structs.
//!
//! The store keeps accepted batches as the protobuf bytes it logged, and
//! builds block columns from them; decoding every span into `prost`
//! structs and then the model (one allocation per string and attribute)
//! was a large part of its CPU. These readers walk the wire format and
//! hand out borrowed slices instead.
//!
//! They follow `prost`'s decoding rules exactly where they apply: a
//! repeated scalar field's last occurrence wins, repeated fields append, a
//! singular message field that occurs twice is merged (parsing the
//! occurrences in order, field by field, is that merge), unknown fields
//! and groups are skipped, strings must be UTF-8. Where matching `prost`
//! would need buffering — an attribute with two values, a value with two
//! kinds set — they report [`WireError::Irregular`], and callers decode
//! that span with `prost` instead (see [`super::decode_span`]); no SDK
//! writes such spans, so it costs nothing in practice.

use crate::{SpanId, TraceId};

/// Why bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not valid protobuf (or not valid OTLP: wrong wire type for a known
    /// field, invalid UTF-8 in a string).
    #[error("malformed protobuf: {0}")]
    Malformed(&'static str),
    /// Valid, but in a shape these readers leave to `prost` (see the module
    /// docs).
    #[error("irregular protobuf: {0}")]
    Irregular(&'static str),
}

/// One field's value as it is on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1 (fixed64, sfixed64, double).
    I64(u64),
    /// Wire type 2 (strings, bytes, messages, packed).
    Len(&'a [u8]),
    /// Wire type 5 (fixed32, sfixed32, float).
    I32(u32),
}

impl<'a> Field<'a> {
    /// The value of a varint field (ints, enums, bools).
    pub fn varint(self) -> Result<u64, WireError> {
        match self {
            Field::Varint(v) => Ok(v),
            _ => Err(WireError::Malformed("expected a varint field")),
        }
    }

    /// The value of a fixed64 field.
    pub fn fixed64(self) -> Result<u64, WireError> {
        match self {
            Field::I64(v) => Ok(v),
            _ => Err(WireError::Malformed("expected a fixed64 field")),
        }
    }

    /// The value of a fixed32 field.
    pub fn fixed32(self) -> Result<u32, WireError> {
        match self {
            Field::I32(v) => Ok(v),
            _ => Err(WireError::Malformed("expected a fixed32 field")),
        }
    }

    /// The bytes of a length-delimited field.
    pub fn bytes(self) -> Result<&'a [u8], WireError> {
        match self {
            Field::Len(b) => Ok(b),
            _ => Err(WireError::Malformed("expected a length-delimited field")),
        }
    }

    /// A string field, checked to be UTF-8 as `prost` checks it.
    pub fn str(self) -> Result<&'a str, WireError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| WireError::Malformed("string is not UTF-8"))
    }
}

/// The fields of one message, in wire order; unknown groups are skipped.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    /// See [`strict_fields`].
    strict: bool,
}

/// The fields of `message`.
pub fn fields(message: &[u8]) -> Fields<'_> {
    Fields { buf: message, strict: false }
}

/// The fields of `message`, for a decoder that must accept no more than
/// `prost` accepts: a group is an error here (`prost` skips unknown
/// groups but rejects a group in a known field, and these readers cannot
/// tell the two apart), and so is a key above `u32::MAX` (which `prost`
/// calls invalid). Such inputs are left to `prost`.
pub fn strict_fields(message: &[u8]) -> Fields<'_> {
    Fields { buf: message, strict: true }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Field<'a>), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let item = self.read();
        if item.is_err() {
            // Stop after an error: the rest cannot be framed.
            self.buf = &[];
        }
        Some(item)
    }
}

impl<'a> Fields<'a> {
    fn read(&mut self) -> Result<(u32, Field<'a>), WireError> {
        loop {
            let key = varint(&mut self.buf)?;
            if self.strict && key > u64::from(u32::MAX) {
                return Err(WireError::Irregular("a key prost rejects"));
            }
            let number =
                u32::try_from(key >> 3).map_err(|_| WireError::Malformed("field number too large"))?;
            if number == 0 {
                return Err(WireError::Malformed("field number 0"));
            }
            let field = match key & 7 {
                0 => Field::Varint(varint(&mut self.buf)?),
                1 => Field::I64(u64::from_le_bytes(take::<8>(&mut self.buf)?)),
                2 => {
                    let len = usize::try_from(varint(&mut self.buf)?)
                        .map_err(|_| WireError::Malformed("length too large"))?;
                    if len > self.buf.len() {
                        return Err(WireError::Malformed("length past the end"));
                    }
                    let (value, rest) = self.buf.split_at(len);
                    self.buf = rest;
                    Field::Len(value)
                }
                3 if self.strict => return Err(WireError::Irregular("a group")),
                3 => {
                    skip_group(&mut self.buf, number)?;
                    continue;
                }
                5 => Field::I32(u32::from_le_bytes(take::<4>(&mut self.buf)?)),
                _ => return Err(WireError::Malformed("unexpected wire type")),
            };
            return Ok((number, field));
        }
    }
}

fn varint(buf: &mut &[u8]) -> Result<u64, WireError> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(WireError::Malformed("varint past the end"));
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            // The tenth byte may only carry the top bit.
            if i == 9 && byte > 1 {
                return Err(WireError::Malformed("varint overflows 64 bits"));
            }
            return Ok(value);
        }
    }
    Err(WireError::Malformed("varint longer than 10 bytes"))
}

fn take<const N: usize>(buf: &mut &[u8]) -> Result<[u8; N], WireError> {
    let Some((head, rest)) = buf.split_first_chunk::<N>() else {
        return Err(WireError::Malformed("fixed-size field past the end"));
    };
    *buf = rest;
    Ok(*head)
}

/// Skips a group's fields up to its end marker (nested groups included),
/// as `prost` skips unknown groups.
fn skip_group(buf: &mut &[u8], number: u32) -> Result<(), WireError> {
    let mut open = vec![number];
    while let Some(&current) = open.last() {
        if open.len() > 100 {
            return Err(WireError::Malformed("groups nested too deep"));
        }
        let key = varint(buf)?;
        let n = u32::try_from(key >> 3).map_err(|_| WireError::Malformed("field number too large"))?;
        match key & 7 {
            0 => {
                varint(buf)?;
            }
            1 => {
                take::<8>(buf)?;
            }
            2 => {
                let len =
                    usize::try_from(varint(buf)?).map_err(|_| WireError::Malformed("length too large"))?;
                if len > buf.len() {
                    return Err(WireError::Malformed("length past the end"));
                }
                *buf = &buf[len..];
            }
            3 => open.push(n),
            4 if n == current => {
                open.pop();
            }
            5 => {
                take::<4>(buf)?;
            }
            _ => return Err(WireError::Malformed("unbalanced group")),
        }
    }
    Ok(())
}

/// Field numbers of `opentelemetry.proto.trace.v1.Span` and its parts.
pub mod span {
    /// `trace_id` (bytes).
    pub const TRACE_ID: u32 = 1;
    /// `span_id` (bytes).
    pub const SPAN_ID: u32 = 2;
    /// `trace_state` (string).
    pub const TRACE_STATE: u32 = 3;
    /// `parent_span_id` (bytes).
    pub const PARENT_SPAN_ID: u32 = 4;
    /// `name` (string).
    pub const NAME: u32 = 5;
    /// `kind` (enum).
    pub const KIND: u32 = 6;
    /// `start_time_unix_nano` (fixed64).
    pub const START: u32 = 7;
    /// `end_time_unix_nano` (fixed64).
    pub const END: u32 = 8;
    /// `attributes` (repeated KeyValue).
    pub const ATTRIBUTES: u32 = 9;
    /// `dropped_attributes_count` (uint32).
    pub const DROPPED_ATTRIBUTES: u32 = 10;
    /// `events` (repeated Event).
    pub const EVENTS: u32 = 11;
    /// `dropped_events_count` (uint32).
    pub const DROPPED_EVENTS: u32 = 12;
    /// `links` (repeated Link).
    pub const LINKS: u32 = 13;
    /// `dropped_links_count` (uint32).
    pub const DROPPED_LINKS: u32 = 14;
    /// `status` (Status).
    pub const STATUS: u32 = 15;
    /// `flags` (fixed32).
    pub const FLAGS: u32 = 16;

    /// Fields of `Span.Event`.
    pub mod event {
        /// `time_unix_nano` (fixed64).
        pub const TIME: u32 = 1;
        /// `name` (string).
        pub const NAME: u32 = 2;
        /// `attributes` (repeated KeyValue).
        pub const ATTRIBUTES: u32 = 3;
        /// `dropped_attributes_count` (uint32).
        pub const DROPPED_ATTRIBUTES: u32 = 4;
    }

    /// Fields of `Span.Link`.
    pub mod link {
        /// `trace_id` (bytes).
        pub const TRACE_ID: u32 = 1;
        /// `span_id` (bytes).
        pub const SPAN_ID: u32 = 2;
        /// `trace_state` (string).
        pub const TRACE_STATE: u32 = 3;
        /// `attributes` (repeated KeyValue).
        pub const ATTRIBUTES: u32 = 4;
        /// `dropped_attributes_count` (uint32).
        pub const DROPPED_ATTRIBUTES: u32 = 5;
        /// `flags` (fixed32).
        pub const FLAGS: u32 = 6;
    }
}

/// The singular fields of a span: everything but attributes, events and
/// links. Absent fields have their protobuf defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanFields<'a> {
    /// `trace_id`, as on the wire (not validated).
    pub trace_id: &'a [u8],
    /// `span_id`, as on the wire.
    pub span_id: &'a [u8],
    /// `parent_span_id`, as on the wire.
    pub parent_span_id: &'a [u8],
    /// `trace_state`.
    pub trace_state: &'a str,
    /// `flags`.
    pub flags: u32,
    /// `name`.
    pub name: &'a str,
    /// `kind`, the OTLP enum number.
    pub kind: i32,
    /// `start_time_unix_nano`.
    pub start: u64,
    /// `end_time_unix_nano`.
    pub end: u64,
    /// `dropped_attributes_count`.
    pub dropped_attributes_count: u32,
    /// `dropped_events_count`.
    pub dropped_events_count: u32,
    /// `dropped_links_count`.
    pub dropped_links_count: u32,
    /// `status.code`, the OTLP enum number.
    pub status_code: i32,
    /// `status.message`.
    pub status_message: &'a str,
    /// Number of `links` (their ids are checked by [`SpanFields::ids`]'s
    /// caller through [`check_links`]).
    pub links: u32,
}

/// Reads a span's singular fields (one pass; attributes, events and links
/// are skipped, not read).
pub fn span_fields(span: &[u8]) -> Result<SpanFields<'_>, WireError> {
    let mut out = SpanFields::default();
    for item in fields(span) {
        let (number, field) = item?;
        match number {
            span::TRACE_ID => out.trace_id = field.bytes()?,
            span::SPAN_ID => out.span_id = field.bytes()?,
            span::TRACE_STATE => out.trace_state = field.str()?,
            span::PARENT_SPAN_ID => out.parent_span_id = field.bytes()?,
            span::NAME => out.name = field.str()?,
            span::KIND => out.kind = field.varint()? as i32,
            span::START => out.start = field.fixed64()?,
            span::END => out.end = field.fixed64()?,
            span::DROPPED_ATTRIBUTES => out.dropped_attributes_count = field.varint()? as u32,
            span::DROPPED_EVENTS => out.dropped_events_count = field.varint()? as u32,
            span::DROPPED_LINKS => out.dropped_links_count = field.varint()? as u32,
            span::FLAGS => out.flags = field.fixed32()?,
            // A repeated occurrence of the status merges into the first:
            // reading them in order, last value per field, is that merge.
            span::STATUS => {
                for item in fields(field.bytes()?) {
                    match item? {
                        (2, f) => out.status_message = f.str()?,
                        (3, f) => out.status_code = f.varint()? as i32,
                        _ => {}
                    }
                }
            }
            span::LINKS => {
                field.bytes()?;
                out.links += 1;
            }
            span::ATTRIBUTES | span::EVENTS => {
                field.bytes()?;
            }
            _ => {}
        }
    }
    Ok(out)
}

impl SpanFields<'_> {
    /// The span's ids, validated as [`super::decode_request`] validates
    /// them (same rules, same messages): a span failing this is one the
    /// decoder rejects.
    pub fn ids(&self) -> Result<(TraceId, SpanId, Option<SpanId>), String> {
        let trace_id = TraceId::from_slice(self.trace_id).map_err(|e| e.to_string())?;
        let span_id = SpanId::from_slice(self.span_id).map_err(|e| e.to_string())?;
        let parent = parent_id(self.parent_span_id)?;
        Ok((trace_id, span_id, parent))
    }
}

/// A parent span id as [`super::decode_request`] reads it: empty, or 8 zero
/// bytes, mean none.
pub fn parent_id(bytes: &[u8]) -> Result<Option<SpanId>, String> {
    match bytes.len() {
        0 => Ok(None),
        _ if bytes.len() == SpanId::LEN && bytes.iter().all(|b| *b == 0) => Ok(None),
        _ => SpanId::from_slice(bytes).map(Some).map_err(|e| format!("parent {e}")),
    }
}

/// Checks every link's ids as the decoder does: a span with a bad link is
/// rejected whole.
pub fn check_links(span: &[u8]) -> Result<(), String> {
    let mut i = 0usize;
    for item in fields(span) {
        let (number, field) = item.map_err(|e| e.to_string())?;
        if number != span::LINKS {
            continue;
        }
        let (mut trace, mut id): (&[u8], &[u8]) = (&[], &[]);
        for item in fields(field.bytes().map_err(|e| e.to_string())?) {
            match item.map_err(|e| e.to_string())? {
                (span::link::TRACE_ID, f) => trace = f.bytes().map_err(|e| e.to_string())?,
                (span::link::SPAN_ID, f) => id = f.bytes().map_err(|e| e.to_string())?,
                _ => {}
            }
        }
        TraceId::from_slice(trace).map_err(|e| format!("links[{i}]: {e}"))?;
        SpanId::from_slice(id).map_err(|e| format!("links[{i}]: {e}"))?;
        i += 1;
    }
    Ok(())
}

/// An attribute value as on the wire (`AnyValue`), borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AnyValue<'a> {
    /// No value set, or a string-table index (profiles only).
    Empty,
    /// `string_value`.
    Str(&'a str),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(&'a [u8]),
    /// `array_value`: the bytes of an `ArrayValue` message.
    Array(&'a [u8]),
    /// `kvlist_value`: the bytes of a `KeyValueList` message.
    Map(&'a [u8]),
}

/// Reads an `AnyValue`.
pub fn any_value(value: &[u8]) -> Result<AnyValue<'_>, WireError> {
    let mut out = AnyValue::Empty;
    let mut set = false;
    for item in fields(value) {
        let (number, field) = item?;
        let v = match number {
            1 => AnyValue::Str(field.str()?),
            2 => AnyValue::Bool(field.varint()? != 0),
            3 => AnyValue::Int(field.varint()? as i64),
            4 => AnyValue::Double(f64::from_bits(field.fixed64()?)),
            5 => AnyValue::Array(field.bytes()?),
            6 => AnyValue::Map(field.bytes()?),
            7 => AnyValue::Bytes(field.bytes()?),
            8 => {
                field.varint()?;
                AnyValue::Empty
            }
            _ => continue,
        };
        if set {
            // prost keeps the last kind, but merges two arrays or two
            // maps: leave it to prost.
            return Err(WireError::Irregular("a value with more than one kind set"));
        }
        set = true;
        out = v;
    }
    Ok(out)
}

/// Reads a `KeyValue`: its key and value (absent: empty).
pub fn key_value(kv: &[u8]) -> Result<(&str, AnyValue<'_>), WireError> {
    let mut key = "";
    let mut value: Option<&[u8]> = None;
    for item in fields(kv) {
        match item? {
            (1, f) => key = f.str()?,
            (2, f) => {
                if value.is_some() {
                    return Err(WireError::Irregular("an attribute with two values"));
                }
                value = Some(f.bytes()?);
            }
            (3, f) => {
                f.varint()?;
            }
            _ => {}
        }
    }
    Ok((key, value.map(any_value).transpose()?.unwrap_or(AnyValue::Empty)))
}

/// The kind of value an attribute ends up with, as `prost` decodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// `string_value`.
    Str,
    /// `int_value`.
    Int,
    /// Anything else, or no value.
    Other,
}

/// A `KeyValue`'s key and the kind of its value, for any encoding `prost`
/// accepts: the value's kind is that of the last kind field in any
/// occurrence of the value (a later field of another kind replaces the
/// value; one of the same kind replaces or, for arrays and maps, merges).
pub fn key_value_kind(kv: &[u8]) -> Result<(&str, ValueKind), WireError> {
    let mut key = "";
    let mut kind = ValueKind::Other;
    for item in fields(kv) {
        match item? {
            (1, f) => key = f.str()?,
            (2, f) => {
                for item in fields(f.bytes()?) {
                    kind = match item?.0 {
                        1 => ValueKind::Str,
                        3 => ValueKind::Int,
                        2 | 4..=8 => ValueKind::Other,
                        _ => continue,
                    };
                }
            }
            _ => {}
        }
    }
    Ok((key, kind))
}

/// Where a request's spans are, and what they share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group<'a> {
    /// Every occurrence of `ResourceSpans.resource`, in order (protobuf
    /// merges them).
    pub resource: Vec<&'a [u8]>,
    /// `ResourceSpans.schema_url`.
    pub resource_schema_url: &'a str,
    /// Every occurrence of `ScopeSpans.scope`, in order.
    pub scope: Vec<&'a [u8]>,
    /// `ScopeSpans.schema_url`.
    pub scope_schema_url: &'a str,
}

/// Walks an `ExportTraceServiceRequest`: calls `group` once per
/// `ScopeSpans` (with its resource), then `span` with that group's index
/// and each of its spans' bytes, in request order.
pub fn visit_request<'a>(
    request: &'a [u8],
    mut group: impl FnMut(Group<'a>),
    mut span: impl FnMut(usize, &'a [u8]),
) -> Result<(), WireError> {
    let mut groups = 0usize;
    for item in fields(request) {
        let (number, field) = item?;
        if number != 1 {
            continue;
        }
        let resource_spans = field.bytes()?;
        // The schema URL (field 3) follows the scope spans: read the
        // resource's parts first.
        let mut resource = Vec::new();
        let mut resource_schema_url = "";
        for item in fields(resource_spans) {
            match item? {
                (1, f) => resource.push(f.bytes()?),
                (3, f) => resource_schema_url = f.str()?,
                _ => {}
            }
        }
        for item in fields(resource_spans) {
            let (number, field) = item?;
            if number != 2 {
                continue;
            }
            let scope_spans = field.bytes()?;
            let mut scope = Vec::new();
            let mut scope_schema_url = "";
            for item in fields(scope_spans) {
                match item? {
                    (1, f) => scope.push(f.bytes()?),
                    (3, f) => scope_schema_url = f.str()?,
                    _ => {}
                }
            }
            group(Group { resource: resource.clone(), resource_schema_url, scope, scope_schema_url });
            for item in fields(scope_spans) {
                if let (2, f) = item? {
                    span(groups, f.bytes()?);
                }
            }
            groups += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests;
