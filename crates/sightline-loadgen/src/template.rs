//! Encoded requests that can be re-sent as new data.
//!
//! A [`Template`] is an encoded `ExportTraceServiceRequest` (or
//! `ExportLogsServiceRequest`: log records carry the same ids and fixed64
//! times, so they are patched the same way) plus the byte
//! offsets of every id and timestamp in it. OTLP encodes ids as fixed-length
//! bytes and times as `fixed64`, so a copy of the template becomes a request
//! of *new* traces by XOR-ing one per-request mask into every trace id (and
//! another into every span and parent id, which keeps parent links intact)
//! and shifting every time by the same delta. That costs a `memcpy` and a
//! few writes per span, so the load generator spends its CPU on sending,
//! not on building protobuf, and leaves the cores to the server under test.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use crate::generate::{Rng, TraceSample};

/// Where the ids and times of an encoded request are.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Bytes,
    spans: usize,
    trace_ids: Vec<usize>,
    span_ids: Vec<usize>,
    times: Vec<usize>,
    samples: Vec<TraceSample>,
    min_start: u64,
}

/// Why a template could not be built (an encoding this module does not
/// understand; never expected from prost output).
#[derive(Debug, thiserror::Error)]
#[error("cannot index the encoded request: {0}")]
pub struct TemplateError(&'static str);

/// The per-request changes applied to a template copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    /// XOR-ed into every trace id.
    pub trace_mask: [u8; 16],
    /// XOR-ed into every span id and parent span id.
    pub span_mask: [u8; 8],
    /// Added to every timestamp (wrapping).
    pub time_delta: u64,
}

impl Patch {
    /// No change.
    pub const IDENTITY: Patch = Patch { trace_mask: [0; 16], span_mask: [0; 8], time_delta: 0 };

    /// The masks for request `k` of the stream named by `seed`.
    pub fn for_request(seed: u64, k: u64, time_delta: u64) -> Patch {
        let mut rng = Rng::for_item(seed ^ 0x0005_EED0_F1D5, k);
        Patch { trace_mask: rng.id(), span_mask: rng.id(), time_delta }
    }

    /// A trace id after this patch.
    pub fn trace_id(&self, id: &[u8; 16]) -> [u8; 16] {
        let mut out = *id;
        for (b, m) in out.iter_mut().zip(self.trace_mask) {
            *b ^= m;
        }
        out
    }
}

impl Template {
    /// Encodes `request` and indexes it.
    pub fn new(
        request: &ExportTraceServiceRequest,
        samples: Vec<TraceSample>,
    ) -> Result<Template, TemplateError> {
        let bytes = request.encode_to_vec();
        let mut t = Template {
            bytes: Bytes::new(),
            spans: 0,
            trace_ids: Vec::new(),
            span_ids: Vec::new(),
            times: Vec::new(),
            samples,
            min_start: u64::MAX,
        };
        for range in leaves(&bytes)? {
            t.index_span(&bytes, range)?;
        }
        t.bytes = Bytes::from(bytes);
        Ok(t)
    }

    /// Encodes a logs `request` and indexes it: [`Template::spans`] then
    /// counts log records and [`Template::min_start`] is the earliest record
    /// time. Records of one trace keep one trace id after a patch.
    pub fn for_logs(request: &ExportLogsServiceRequest) -> Result<Template, TemplateError> {
        let bytes = request.encode_to_vec();
        let mut t = Template {
            bytes: Bytes::new(),
            spans: 0,
            trace_ids: Vec::new(),
            span_ids: Vec::new(),
            times: Vec::new(),
            samples: Vec::new(),
            min_start: u64::MAX,
        };
        for range in leaves(&bytes)? {
            t.index_record(&bytes, range)?;
        }
        t.bytes = Bytes::from(bytes);
        Ok(t)
    }

    fn index_record(&mut self, bytes: &[u8], range: std::ops::Range<usize>) -> Result<(), TemplateError> {
        self.spans += 1;
        for (field, r) in fields(bytes, range)? {
            match field {
                // trace_id = 9, span_id = 10
                9 if r.len() == 16 => self.trace_ids.push(r.start),
                10 if r.len() == 8 => self.span_ids.push(r.start),
                // time_unix_nano = 1, observed_time_unix_nano = 11 (fixed64)
                1 | 11 if r.len() == 8 => {
                    if field == 1 {
                        self.min_start = self.min_start.min(read_u64(bytes, r.start));
                    }
                    self.times.push(r.start);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn index_span(&mut self, bytes: &[u8], range: std::ops::Range<usize>) -> Result<(), TemplateError> {
        self.spans += 1;
        for (field, r) in fields(bytes, range)? {
            match field {
                // trace_id = 1, span_id = 2, parent_span_id = 4
                1 if r.len() == 16 => self.trace_ids.push(r.start),
                2 | 4 if r.len() == 8 => self.span_ids.push(r.start),
                // start_time_unix_nano = 7, end_time_unix_nano = 8 (fixed64)
                7 | 8 if r.len() == 8 => {
                    if field == 7 {
                        let start = read_u64(bytes, r.start);
                        self.min_start = self.min_start.min(start);
                    }
                    self.times.push(r.start);
                }
                // events = 11; Event.time_unix_nano = 1 (fixed64)
                11 => {
                    for (f, er) in fields(bytes, r)? {
                        if f == 1 && er.len() == 8 {
                            self.times.push(er.start);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Number of spans (log records for a logs template).
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// Encoded size.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the template holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The unpatched encoding.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The traces as generated (before masks).
    pub fn samples(&self) -> &[TraceSample] {
        &self.samples
    }

    /// Earliest span start in the template.
    pub fn min_start(&self) -> u64 {
        self.min_start
    }

    /// A patched copy, written into `out` (cleared first).
    pub fn render_into(&self, patch: &Patch, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.bytes);
        if *patch == Patch::IDENTITY {
            return;
        }
        for &at in &self.trace_ids {
            if let Some(id) = out.get_mut(at..at + 16) {
                for (b, m) in id.iter_mut().zip(patch.trace_mask) {
                    *b ^= m;
                }
            }
        }
        for &at in &self.span_ids {
            if let Some(id) = out.get_mut(at..at + 8) {
                for (b, m) in id.iter_mut().zip(patch.span_mask) {
                    *b ^= m;
                }
            }
        }
        if patch.time_delta != 0 {
            for &at in &self.times {
                if let Some(t) = out.get_mut(at..at + 8) {
                    let v =
                        u64::from_le_bytes(t.try_into().unwrap_or_default()).wrapping_add(patch.time_delta);
                    t.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }

    /// A patched copy as `Bytes`.
    pub fn render(&self, patch: &Patch) -> Bytes {
        if *patch == Patch::IDENTITY {
            return self.bytes.clone();
        }
        let mut out = Vec::with_capacity(self.bytes.len());
        self.render_into(patch, &mut out);
        Bytes::from(out)
    }
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

fn varint(bytes: &[u8], pos: &mut usize) -> Result<u64, TemplateError> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos).ok_or(TemplateError("truncated varint"))?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(out);
        }
    }
    Err(TemplateError("varint too long"))
}

/// The fields of one message in `bytes[range]`: field number and the byte
/// range of the value (the payload for length-delimited fields).
fn fields(
    bytes: &[u8],
    range: std::ops::Range<usize>,
) -> Result<Vec<(u64, std::ops::Range<usize>)>, TemplateError> {
    let mut out = Vec::new();
    let mut pos = range.start;
    while pos < range.end {
        let key = varint(bytes, &mut pos)?;
        let (field, wire) = (key >> 3, key & 7);
        let start = pos;
        match wire {
            0 => {
                varint(bytes, &mut pos)?;
            }
            1 => pos += 8,
            2 => {
                let len = varint(bytes, &mut pos)? as usize;
                let payload = pos;
                pos = pos.saturating_add(len);
                if pos > range.end {
                    return Err(TemplateError("field runs past its message"));
                }
                out.push((field, payload..pos));
                continue;
            }
            5 => pos += 4,
            _ => return Err(TemplateError("unsupported wire type")),
        }
        if pos > range.end {
            return Err(TemplateError("field runs past its message"));
        }
        out.push((field, start..pos));
    }
    if pos != range.end {
        return Err(TemplateError("field runs past its message"));
    }
    Ok(out)
}

/// The spans (or log records) of an export request: traces and logs nest
/// alike — request field 1 (resource_spans / resource_logs), its field 2
/// (scope_spans / scope_logs), and that one's field 2 (spans / log_records).
fn leaves(bytes: &[u8]) -> Result<Vec<std::ops::Range<usize>>, TemplateError> {
    let mut out = Vec::new();
    for (field, resource) in fields(bytes, 0..bytes.len())? {
        if field != 1 {
            continue;
        }
        for (field, scope) in fields(bytes, resource)? {
            if field != 2 {
                continue;
            }
            out.extend(
                fields(bytes, scope)?.into_iter().filter(|(field, _)| *field == 2).map(|(_, range)| range),
            );
        }
    }
    Ok(out)
}
