//! A flushed block's rows read straight from the OTLP bytes the head
//! holds, as `sightline-block` builds span rows: the columns of a log
//! block are mostly the record's own fields (times, severity, ids, the
//! body text) plus `rest`, the few fields without a column re-framed as
//! they came. Decoding every record into `prost` structs and then model
//! records (an allocation per string and attribute), only to encode them
//! again, was most of a flush's work before Parquet.
//!
//! Only resources and scopes (one per group of records) are decoded, for
//! the service name and the `origin` column. A record whose body is not a
//! plain string has its body decoded as before. Shapes this reader leaves
//! to `prost` (a singular message field sent twice, which `prost` merges)
//! make the caller fall back to decoding the whole head into records.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::logs::v1 as pl;
use opentelemetry_proto::tonic::resource::v1 as pr;
use prost::Message as _;
use prost::encoding::{WireType, encode_key, encode_varint};
use sightline_model::otlp::wire::{Field, WireError, strict_fields};
use sightline_model::{LogRecord, Resource, Scope, Value, otlp};

use super::write::NO_TIME_MARKER;

/// A record's body as the `body` column holds it.
pub(crate) enum Body<'a> {
    /// No body (or an empty value): null.
    None,
    /// A string body, borrowed from the batch.
    Str(&'a str),
    /// Another kind's text (the value itself is in `rest`).
    Text(String),
}

/// One record's row, borrowing from the batch bytes.
pub(crate) struct Row<'a> {
    /// Index into [`Rows::groups`].
    pub(crate) group: usize,
    pub(crate) time: u64,
    pub(crate) observed: u64,
    pub(crate) severity: i32,
    pub(crate) severity_text: &'a str,
    pub(crate) trace_id: Option<&'a [u8]>,
    pub(crate) span_id: Option<&'a [u8]>,
    pub(crate) body: Body<'a>,
    /// The `rest` column's bytes.
    pub(crate) rest: Vec<u8>,
    /// The record's own bytes (to compute its fingerprint on a tie).
    pub(crate) record: &'a [u8],
    /// Filled in only for rows that tie on service and time.
    pub(crate) fingerprint: u64,
}

/// A resource and scope the rows of one `ScopeLogs` share.
pub(crate) struct Group {
    pub(crate) resource: Arc<Resource>,
    pub(crate) scope: Arc<Scope>,
    /// The `origin` column's bytes for this group.
    pub(crate) origin: Vec<u8>,
}

/// The rows of a head's batches, and their groups.
#[derive(Default)]
pub(crate) struct Rows<'a> {
    pub(crate) rows: Vec<Row<'a>>,
    pub(crate) groups: Vec<Group>,
    /// Groups already made, by the bytes they were made from (see
    /// [`Rows::add_scope_logs`]).
    pub(super) seen: Vec<Seen<'a>>,
}

/// The encoded resource and scope (and their schema URLs) a group was
/// made from: the same bytes make the same group.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Source<'a> {
    resource: Option<&'a [u8]>,
    resource_schema_url: &'a str,
    scope: Option<&'a [u8]>,
    scope_schema_url: &'a str,
}

pub(super) struct Seen<'a> {
    source: Source<'a>,
    group: usize,
}

/// Distinct groups remembered for reuse: a head's sources (services ×
/// scopes) are few; a head of thousands is not scanned for each.
const MAX_SEEN: usize = 64;

impl Rows<'_> {
    /// The model record of `row` (for its fingerprint).
    pub(crate) fn record(&self, row: &Row<'_>) -> Result<LogRecord, WireError> {
        let rec = pl::LogRecord::decode(row.record).map_err(|_| WireError::Malformed("log record"))?;
        let g = &self.groups[row.group];
        otlp::decode_record(rec, &g.resource, &g.scope).map_err(|_| WireError::Malformed("log record ids"))
    }
}

impl<'a> Rows<'a> {
    /// Adds the records of one `ExportLogsServiceRequest`.
    pub(crate) fn add_request(&mut self, request: &'a [u8]) -> Result<(), WireError> {
        for f in strict_fields(request) {
            let (n, f) = f?;
            if n == 1 {
                self.add_resource_logs(f.bytes()?)?;
            }
        }
        Ok(())
    }

    fn add_resource_logs(&mut self, bytes: &'a [u8]) -> Result<(), WireError> {
        let mut resource: Option<&[u8]> = None;
        let mut scopes: Vec<&'a [u8]> = Vec::new();
        let mut schema_url = "";
        for f in strict_fields(bytes) {
            match f? {
                (1, f) => once(&mut resource, f.bytes()?)?,
                (2, f) => scopes.push(f.bytes()?),
                (3, f) => schema_url = f.str()?,
                _ => {}
            }
        }
        // Decoded when a scope's group is not one seen before.
        let mut decoded: Option<Arc<Resource>> = None;
        for scope_logs in scopes {
            self.add_scope_logs(resource, schema_url, &mut decoded, scope_logs)?;
        }
        Ok(())
    }

    /// Adds a `ScopeLogs`' records. Their group is one made before from
    /// the same resource and scope bytes where there is one: records that
    /// interleave services come as many `ResourceLogs` of a few records
    /// each, and decoding each one's resource and encoding its `origin`
    /// again was a measurable part of a flush.
    fn add_scope_logs(
        &mut self,
        resource: Option<&'a [u8]>,
        resource_schema_url: &'a str,
        decoded: &mut Option<Arc<Resource>>,
        bytes: &'a [u8],
    ) -> Result<(), WireError> {
        let mut scope: Option<&[u8]> = None;
        let mut records: Vec<&'a [u8]> = Vec::new();
        let mut schema_url = "";
        for f in strict_fields(bytes) {
            match f? {
                (1, f) => once(&mut scope, f.bytes()?)?,
                (2, f) => records.push(f.bytes()?),
                (3, f) => schema_url = f.str()?,
                _ => {}
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        let source = Source { resource, resource_schema_url, scope, scope_schema_url: schema_url };
        let group = match self.seen.iter().find(|s| s.source == source) {
            Some(seen) => seen.group,
            None => {
                let resource = match decoded {
                    Some(resource) => Arc::clone(resource),
                    None => {
                        let r = resource
                            .map(|b| pr::Resource::decode(b).map_err(|_| WireError::Malformed("resource")))
                            .transpose()?;
                        let r = Arc::new(otlp::decode_resource(r, resource_schema_url.to_owned()));
                        decoded.insert(r).clone()
                    }
                };
                let scope = scope
                    .map(|b| pc::InstrumentationScope::decode(b).map_err(|_| WireError::Malformed("scope")))
                    .transpose()?;
                let scope = Arc::new(otlp::decode_scope(scope, schema_url.to_owned()));
                let origin = super::write::encode_origin(&resource, &scope);
                let group = self.groups.len();
                self.groups.push(Group { resource, scope, origin });
                if self.seen.len() < MAX_SEEN {
                    self.seen.push(Seen { source, group });
                }
                group
            }
        };
        for record in records {
            self.rows.push(row(group, record)?);
        }
        Ok(())
    }
}

/// A singular message field: a second occurrence (which `prost` merges) is
/// left to `prost`.
fn once<'a>(slot: &mut Option<&'a [u8]>, bytes: &'a [u8]) -> Result<(), WireError> {
    if slot.replace(bytes).is_some() {
        return Err(WireError::Irregular("a singular message field twice"));
    }
    Ok(())
}

/// An optional id: empty or all zeros is none; another length than `len`
/// cannot be in the WAL (the receiver rejected it).
fn optional_id(bytes: &[u8], len: usize) -> Result<Option<&[u8]>, WireError> {
    if bytes.is_empty() || (bytes.len() == len && bytes.iter().all(|b| *b == 0)) {
        return Ok(None);
    }
    if bytes.len() != len {
        return Err(WireError::Malformed("id of the wrong length"));
    }
    Ok(Some(bytes))
}

fn row(group: usize, record: &[u8]) -> Result<Row<'_>, WireError> {
    let mut time = 0;
    let mut observed = 0;
    let mut severity = 0;
    let mut severity_text = "";
    let mut trace_id: &[u8] = &[];
    let mut span_id: &[u8] = &[];
    let mut body: Option<&[u8]> = None;
    // The fields without a column, re-framed in wire order (the reader
    // decodes `rest` with `prost`, so order and repeats mean what they did).
    let mut kept = Vec::new();
    for f in strict_fields(record) {
        match f? {
            (1, f) => time = f.fixed64()?,
            (11, f) => observed = f.fixed64()?,
            // As `prost` reads an enum: the low 32 bits.
            (2, f) => severity = f.varint()? as i32,
            (3, f) => severity_text = f.str()?,
            (5, f) => once(&mut body, f.bytes()?)?,
            (9, f) => trace_id = f.bytes()?,
            (10, f) => span_id = f.bytes()?,
            (6, Field::Len(b)) => len_field(&mut kept, 6, b),
            (12, f) => len_field(&mut kept, 12, f.str()?.as_bytes()),
            (7, f) => {
                let v = f.varint()?;
                encode_key(7, WireType::Varint, &mut kept);
                encode_varint(v, &mut kept);
            }
            (8, f) => {
                let v = f.fixed32()?;
                encode_key(8, WireType::ThirtyTwoBit, &mut kept);
                kept.extend_from_slice(&v.to_le_bytes());
            }
            (6, _) => return Err(WireError::Malformed("attribute is not a message")),
            _ => {}
        }
    }
    let mut rest = Vec::with_capacity(kept.len() + 16);
    if time == 0 {
        encode_key(1, WireType::SixtyFourBit, &mut rest);
        rest.extend_from_slice(&NO_TIME_MARKER.to_le_bytes());
    }
    let body = match body {
        None => Body::None,
        Some(b) => match string_value(b)? {
            Some(s) => Body::Str(s),
            None => {
                let v = pc::AnyValue::decode(b).map_err(|_| WireError::Malformed("body"))?;
                match otlp::decode_value(v) {
                    Value::Empty => Body::None,
                    Value::Str(s) => Body::Text(s.into()),
                    other => {
                        let mut text = String::new();
                        other.write_text(&mut text);
                        let encoded = otlp::encode_value(&other).encode_to_vec();
                        len_field(&mut rest, 5, &encoded);
                        Body::Text(text)
                    }
                }
            }
        },
    };
    rest.extend_from_slice(&kept);
    Ok(Row {
        group,
        time: if time != 0 { time } else { observed },
        observed,
        severity,
        severity_text,
        trace_id: optional_id(trace_id, 16)?,
        span_id: optional_id(span_id, 8)?,
        body,
        rest,
        record,
        fingerprint: 0,
    })
}

/// The string of an `AnyValue` that is exactly one `string_value`;
/// `None` for any other shape.
fn string_value(any: &[u8]) -> Result<Option<&str>, WireError> {
    let mut fields = strict_fields(any);
    match (fields.next(), fields.next()) {
        (Some(Ok((1, f))), None) => f.str().map(Some),
        _ => Ok(None),
    }
}

fn len_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}
