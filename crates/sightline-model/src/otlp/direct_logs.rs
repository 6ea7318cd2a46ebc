//! Decoding an OTLP logs request straight from its protobuf bytes into
//! the model, as [`super::direct`] does for traces.
//!
//! `prost` then [`super::decode_logs_request`] decoded every record twice:
//! once into `prost`'s structs (an allocation per id, string and list,
//! lists grown by doubling) and again into the model's. Reading the wire
//! format in place allocates only what the model keeps.
//!
//! The result must be exactly what `prost` plus
//! [`super::decode_logs_request`] give, so the rules are the traces
//! decoder's: anything not plainly valid (malformed, irregular in the
//! ways [`super::wire`] describes, a body given twice, values nested too
//! deep) makes [`decode_logs_request_bytes`] return `None`, and
//! [`decode_logs_protobuf`] then decodes with `prost`, which also gives
//! the error message. Attribute and body values are read by the traces
//! decoder's value reader, so both signals follow one set of rules.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message as _;

use super::MAX_REASONS;
use super::direct::Decoder as ValueDecoder;
use super::logs::{DecodedLogs, optional_span_id, optional_trace_id};
use super::note_reason;
use super::wire::{self, WireError};
use crate::{KeyValue, LogRecord, Resource, Scope, Value};

/// Field numbers of `opentelemetry.proto.logs.v1.LogRecord`.
mod record {
    pub(super) const TIME: u32 = 1;
    pub(super) const SEVERITY_NUMBER: u32 = 2;
    pub(super) const SEVERITY_TEXT: u32 = 3;
    pub(super) const BODY: u32 = 5;
    pub(super) const ATTRIBUTES: u32 = 6;
    pub(super) const DROPPED_ATTRIBUTES: u32 = 7;
    pub(super) const FLAGS: u32 = 8;
    pub(super) const TRACE_ID: u32 = 9;
    pub(super) const SPAN_ID: u32 = 10;
    pub(super) const OBSERVED_TIME: u32 = 11;
    pub(super) const EVENT_NAME: u32 = 12;
}

/// Decodes an `ExportLogsServiceRequest`'s protobuf bytes: the same result
/// (or the same error) as `prost` decoding and
/// [`super::decode_logs_request`], in one pass over the bytes where it can.
pub fn decode_logs_protobuf(bytes: &[u8]) -> Result<DecodedLogs, prost::DecodeError> {
    match decode_logs_request_bytes(bytes) {
        Some(decoded) => Ok(decoded),
        None => ExportLogsServiceRequest::decode(bytes).map(super::decode_logs_request),
    }
}

/// The direct path of [`decode_logs_protobuf`]; `None` where it leaves the
/// request to `prost`.
pub fn decode_logs_request_bytes(bytes: &[u8]) -> Option<DecodedLogs> {
    let mut d = LogsDecoder::default();
    d.request(bytes).ok()?;
    if d.out.rejected > 0 {
        d.out.error_message = format!(
            "{} log record(s) rejected for invalid ids: {}{}",
            d.out.rejected,
            d.out.error_message,
            if d.reasons > MAX_REASONS { "; …" } else { "" }
        );
    }
    Some(d.out)
}

type Wire<T> = Result<T, WireError>;

#[derive(Default)]
struct LogsDecoder {
    out: DecodedLogs,
    reasons: usize,
    /// Reads attribute and body values (and owns their scratch stacks).
    values: ValueDecoder,
    /// A record's attributes as read, moved into a list of exact length.
    kvs: Vec<KeyValue>,
}

/// A resource decoded earlier in the request, found again by its bytes.
struct SeenResource<'a> {
    bytes: &'a [u8],
    schema_url: &'a str,
    resource: Arc<Resource>,
}

/// Distinct resources a request's decoding remembers: services in one
/// export are few; a request of thousands of distinct resources is not
/// scanned for each.
const MAX_SEEN: usize = 16;

/// A record's fields as read, before its ids are validated.
#[derive(Default)]
struct RawRecord<'a> {
    time: u64,
    observed_time: u64,
    severity_number: i32,
    severity_text: &'a str,
    body: Option<&'a [u8]>,
    dropped_attributes_count: u32,
    flags: u32,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    event_name: &'a str,
}

impl LogsDecoder {
    fn request(&mut self, bytes: &[u8]) -> Wire<()> {
        let mut total = 0usize;
        for item in wire::strict_fields(bytes) {
            if let (1, f) = item? {
                total += count_records(f.bytes()?)?;
            }
        }
        self.out.records.reserve_exact(total);
        let mut seen = Vec::new();
        let mut ri = 0usize;
        for item in wire::strict_fields(bytes) {
            if let (1, f) = item? {
                self.resource_logs(f.bytes()?, ri, &mut seen)?;
                ri += 1;
            }
        }
        Ok(())
    }

    /// `seen`: resources already decoded in this request, by their bytes.
    fn resource_logs<'a>(
        &mut self,
        bytes: &'a [u8],
        ri: usize,
        seen: &mut Vec<SeenResource<'a>>,
    ) -> Wire<()> {
        // The resource and schema URL may follow the scope logs on the
        // wire: read them first, as `prost` has merged them all before the
        // request is mapped.
        let (mut occurrences, mut only, mut schema_url) = (0, &[][..], "");
        for item in wire::strict_fields(bytes) {
            match item? {
                (1, f) => {
                    only = f.bytes()?;
                    occurrences += 1;
                }
                (2, f) => {
                    f.bytes()?;
                }
                (3, f) => schema_url = f.str()?,
                _ => {}
            }
        }
        // Records that interleave services come as many `ResourceLogs` of
        // a few records each, repeating the same resource: decoding it
        // once (one `Arc`, the same value) saves an allocation per
        // attribute key and value of every repeat.
        let found = (occurrences == 1)
            .then(|| seen.iter().find(|s| s.bytes == only && s.schema_url == schema_url))
            .flatten()
            .map(|s| Arc::clone(&s.resource));
        let resource = match found {
            Some(resource) => resource,
            None => {
                let resource = Arc::new(self.resource(bytes, schema_url)?);
                if occurrences == 1 && seen.len() < MAX_SEEN {
                    seen.push(SeenResource { bytes: only, schema_url, resource: Arc::clone(&resource) });
                }
                resource
            }
        };
        let mut si = 0usize;
        for item in wire::strict_fields(bytes) {
            if let (2, f) = item? {
                self.scope_logs(f.bytes()?, &resource, ri, si)?;
                si += 1;
            }
        }
        Ok(())
    }

    /// The resource of a `ResourceLogs` (every occurrence, merged).
    fn resource(&mut self, bytes: &[u8], schema_url: &str) -> Wire<Resource> {
        let (mut attributes, mut dropped) = (Vec::new(), 0);
        for item in wire::strict_fields(bytes) {
            // Repeated occurrences merge: attributes append, the last
            // count wins.
            if let (1, f) = item? {
                for item in wire::strict_fields(f.bytes()?) {
                    match item? {
                        (1, f) => attributes.push(self.values.key_value(f.bytes()?, 0)?),
                        (2, f) => dropped = f.varint()? as u32,
                        // Entity references: their strings would need
                        // checking as `prost` checks them.
                        (3, _) => return Err(irregular()),
                        _ => {}
                    }
                }
            }
        }
        attributes.shrink_to_fit();
        Ok(Resource::new(attributes, dropped, schema_url.to_owned()))
    }

    fn scope_logs(&mut self, bytes: &[u8], resource: &Arc<Resource>, ri: usize, si: usize) -> Wire<()> {
        let mut scope = Scope::default();
        for item in wire::strict_fields(bytes) {
            match item? {
                (1, f) => {
                    for item in wire::strict_fields(f.bytes()?) {
                        match item? {
                            (1, f) => scope.name = f.str()?.to_owned(),
                            (2, f) => scope.version = f.str()?.to_owned(),
                            (3, f) => scope.attributes.push(self.values.key_value(f.bytes()?, 0)?),
                            (4, f) => scope.dropped_attributes_count = f.varint()? as u32,
                            _ => {}
                        }
                    }
                }
                (2, f) => {
                    f.bytes()?;
                }
                (3, f) => scope.schema_url = f.str()?.to_owned(),
                _ => {}
            }
        }
        scope.attributes.shrink_to_fit();
        let scope = Arc::new(scope);
        let mut li = 0usize;
        for item in wire::strict_fields(bytes) {
            if let (2, f) = item? {
                match self.record(f.bytes()?, resource, &scope)? {
                    Ok(record) => self.out.records.push(record),
                    Err(why) => {
                        self.out.rejected += 1;
                        note_reason(
                            &mut self.out.error_message,
                            &mut self.reasons,
                            format_args!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]: {why}"),
                        );
                    }
                }
                li += 1;
            }
        }
        Ok(())
    }

    /// Decodes one record: `Err` gives up on the request, `Ok(Err(why))`
    /// rejects the record as [`super::decode_record`] does (same checks,
    /// same order, same messages).
    fn record(
        &mut self,
        bytes: &[u8],
        resource: &Arc<Resource>,
        scope: &Arc<Scope>,
    ) -> Wire<Result<LogRecord, String>> {
        let mut r = RawRecord::default();
        self.kvs.clear();
        for item in wire::strict_fields(bytes) {
            let (number, field) = item?;
            match number {
                record::TIME => r.time = field.fixed64()?,
                record::SEVERITY_NUMBER => r.severity_number = field.varint()? as i32,
                record::SEVERITY_TEXT => r.severity_text = field.str()?,
                record::BODY => {
                    if r.body.is_some() {
                        // `prost` merges the two: leave it to `prost`.
                        return Err(irregular());
                    }
                    r.body = Some(field.bytes()?);
                }
                record::ATTRIBUTES => {
                    let kv = self.values.key_value(field.bytes()?, 0)?;
                    self.kvs.push(kv);
                }
                record::DROPPED_ATTRIBUTES => r.dropped_attributes_count = field.varint()? as u32,
                record::FLAGS => r.flags = field.fixed32()?,
                record::TRACE_ID => r.trace_id = field.bytes()?,
                record::SPAN_ID => r.span_id = field.bytes()?,
                record::OBSERVED_TIME => r.observed_time = field.fixed64()?,
                record::EVENT_NAME => r.event_name = field.str()?,
                _ => {}
            }
        }
        // The body is read even when the ids reject the record: a body
        // `prost` would fail on fails the request either way.
        let body = match r.body {
            Some(bytes) => self.values.any_value(bytes, 0)?,
            None => Value::Empty,
        };
        let ids = optional_trace_id(r.trace_id).and_then(|t| Ok((t, optional_span_id(r.span_id)?)));
        let (trace_id, span_id) = match ids {
            Ok(ids) => ids,
            Err(why) => return Ok(Err(why)),
        };
        Ok(Ok(LogRecord {
            trace_id,
            span_id,
            time_unix_nano: r.time,
            observed_time_unix_nano: r.observed_time,
            severity_number: r.severity_number,
            severity_text: r.severity_text.to_owned(),
            body,
            attributes: self.kvs.drain(..).collect(),
            dropped_attributes_count: r.dropped_attributes_count,
            flags: r.flags,
            event_name: r.event_name.to_owned(),
            resource: Arc::clone(resource),
            scope: Arc::clone(scope),
        }))
    }
}

fn irregular() -> WireError {
    WireError::Irregular("left to prost")
}

/// Records of a `ResourceLogs`, for reserving the output once.
fn count_records(resource_logs: &[u8]) -> Wire<usize> {
    let mut n = 0;
    for item in wire::strict_fields(resource_logs) {
        if let (2, f) = item? {
            for item in wire::strict_fields(f.bytes()?) {
                if let (2, f) = item? {
                    f.bytes()?;
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
