//! The propagation formats `OTEL_PROPAGATORS` names besides the W3C ones:
//! Zipkin B3 (single `b3` header and multi `X-B3-*` headers) and Jaeger
//! (`uber-trace-id`, `uberctx-*` baggage).
//!
//! Why written here: `opentelemetry-zipkin` carries its exporter's HTTP
//! client and serde stack along with the propagator, and the Jaeger
//! propagator crate trails the 0.33 API this crate is built on; each
//! format is a few dozen lines over `TextMapPropagator`, tested against the
//! formats' specifications (`openzipkin/b3-propagation`, Jaeger's
//! "Propagation Format" page).

use opentelemetry::baggage::BaggageExt as _;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

use crate::config::PropagatorKind;

const B3_SINGLE: &str = "b3";
const B3_TRACE_ID: &str = "x-b3-traceid";
const B3_SPAN_ID: &str = "x-b3-spanid";
const B3_SAMPLED: &str = "x-b3-sampled";
const B3_FLAGS: &str = "x-b3-flags";

/// A 64- or 128-bit hex trace id (64-bit ids are left-padded, as B3 and
/// Jaeger allow); all-zero is invalid.
fn trace_id(s: &str, max_len: usize) -> Option<TraceId> {
    let s = s.trim();
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = u128::from_str_radix(s, 16).ok()?;
    (id != 0).then(|| TraceId::from(id))
}

fn span_id(s: &str, max_len: usize) -> Option<SpanId> {
    let s = s.trim();
    if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = u64::from_str_radix(s, 16).ok()?;
    (id != 0).then(|| SpanId::from(id))
}

fn remote(trace: TraceId, span: SpanId, sampled: bool) -> SpanContext {
    let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
    SpanContext::new(trace, span, flags, true, TraceState::default())
}

/// B3 in one of its two encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B3Encoding {
    /// One `b3: {trace}-{span}-{sampled}` header.
    Single,
    /// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
    Multi,
}

/// Zipkin's B3 propagation. Injects the configured encoding; extracts the
/// single header first, then the multi headers (the OTel spec's rule for
/// the `b3` propagator). `d` / `X-B3-Flags: 1` (debug) counts as sampled.
#[derive(Debug)]
pub struct B3Propagator {
    encoding: B3Encoding,
    fields: Vec<String>,
}

impl B3Propagator {
    /// A propagator writing `encoding`.
    pub fn new(encoding: B3Encoding) -> B3Propagator {
        let fields = match encoding {
            B3Encoding::Single => vec![B3_SINGLE.to_owned()],
            B3Encoding::Multi => {
                [B3_TRACE_ID, B3_SPAN_ID, B3_SAMPLED, B3_FLAGS].iter().map(|s| (*s).to_owned()).collect()
            }
        };
        B3Propagator { encoding, fields }
    }

    fn extract_single(value: &str) -> Option<SpanContext> {
        let parts: Vec<&str> = value.trim().split('-').collect();
        // `b3: 0|1|d` alone carries a sampling decision but no ids: nothing to continue.
        if parts.len() < 2 || parts.len() > 4 {
            return None;
        }
        let trace = trace_id(parts[0], 32)?;
        let span = span_id(parts[1], 16)?;
        let sampled = match parts.get(2).copied() {
            None => true, // deferred: the receiver decides; we record
            Some("1") | Some("d") => true,
            Some("0") => false,
            Some(_) => return None,
        };
        if let Some(parent) = parts.get(3) {
            span_id(parent, 16)?;
        }
        Some(remote(trace, span, sampled))
    }

    fn extract_multi(extractor: &dyn Extractor) -> Option<SpanContext> {
        let trace = trace_id(extractor.get(B3_TRACE_ID)?, 32)?;
        let span = span_id(extractor.get(B3_SPAN_ID)?, 16)?;
        let debug = extractor.get(B3_FLAGS).map(str::trim) == Some("1");
        let sampled = match extractor.get(B3_SAMPLED).map(str::trim) {
            _ if debug => true,
            None => true,
            Some("1") | Some("true") => true,
            Some("0") | Some("false") => false,
            Some(_) => return None,
        };
        Some(remote(trace, span, sampled))
    }
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let sampled = if sc.is_sampled() { "1" } else { "0" };
        match self.encoding {
            B3Encoding::Single => {
                injector.set(B3_SINGLE, format!("{}-{}-{sampled}", sc.trace_id(), sc.span_id()));
            }
            B3Encoding::Multi => {
                injector.set(B3_TRACE_ID, sc.trace_id().to_string());
                injector.set(B3_SPAN_ID, sc.span_id().to_string());
                injector.set(B3_SAMPLED, sampled.to_owned());
            }
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let found = extractor
            .get(B3_SINGLE)
            .and_then(B3Propagator::extract_single)
            .or_else(|| B3Propagator::extract_multi(extractor));
        match found {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

const UBER_TRACE_ID: &str = "uber-trace-id";
const UBER_BAGGAGE_PREFIX: &str = "uberctx-";

/// Jaeger's native propagation: `uber-trace-id: {trace}:{span}:{parent}:{flags}`
/// (flags bit 1 sampled, bit 2 debug; the value may arrive URL-encoded) and
/// one `uberctx-{key}` header per baggage entry.
#[derive(Debug)]
pub struct JaegerPropagator {
    fields: [String; 1],
}

impl Default for JaegerPropagator {
    fn default() -> Self {
        JaegerPropagator { fields: [UBER_TRACE_ID.to_owned()] }
    }
}

impl JaegerPropagator {
    /// The propagator.
    pub fn new() -> JaegerPropagator {
        JaegerPropagator::default()
    }

    fn extract_span(value: &str) -> Option<SpanContext> {
        let decoded = value.replace("%3A", ":").replace("%3a", ":");
        let parts: Vec<&str> = decoded.trim().split(':').collect();
        if parts.len() != 4 {
            return None;
        }
        let trace = trace_id(parts[0], 32)?;
        let span = span_id(parts[1], 16)?;
        let flags = u8::from_str_radix(parts[3].trim(), 16).ok()?;
        Some(remote(trace, span, flags & 0x03 != 0))
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl TextMapPropagator for JaegerPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            let flags = if sc.is_sampled() { 1 } else { 0 };
            injector.set(UBER_TRACE_ID, format!("{}:{}:0:{flags}", sc.trace_id(), sc.span_id()));
        }
        for (k, (v, _)) in cx.baggage().iter() {
            injector.set(&format!("{UBER_BAGGAGE_PREFIX}{}", k.as_str()), percent_encode(v.as_str()));
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let mut out = match extractor.get(UBER_TRACE_ID).and_then(JaegerPropagator::extract_span) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        };
        let entries: Vec<KeyValue> = extractor
            .keys()
            .into_iter()
            .filter_map(|k| {
                let lower = k.to_ascii_lowercase();
                let key = lower.strip_prefix(UBER_BAGGAGE_PREFIX)?.to_owned();
                let v = extractor.get(k)?;
                (!key.is_empty()).then(|| KeyValue::new(key, percent_decode(v.trim())))
            })
            .collect();
        if !entries.is_empty() {
            let mut all: Vec<KeyValue> =
                out.baggage().iter().map(|(k, (v, _))| KeyValue::new(k.clone(), v.clone())).collect();
            all.extend(entries);
            out = out.with_baggage(all);
        }
        out
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// The composite propagator for `kinds`, in order (later extractors see
/// what earlier ones found; all inject).
pub(crate) fn composite(kinds: &[PropagatorKind]) -> TextMapCompositePropagator {
    let list: Vec<Box<dyn TextMapPropagator + Send + Sync>> = kinds
        .iter()
        .map(|k| -> Box<dyn TextMapPropagator + Send + Sync> {
            match k {
                PropagatorKind::TraceContext => Box::new(TraceContextPropagator::new()),
                PropagatorKind::Baggage => Box::new(BaggagePropagator::new()),
                PropagatorKind::B3 => Box::new(B3Propagator::new(B3Encoding::Single)),
                PropagatorKind::B3Multi => Box::new(B3Propagator::new(B3Encoding::Multi)),
                PropagatorKind::Jaeger => Box::new(JaegerPropagator::new()),
            }
        })
        .collect();
    TextMapCompositePropagator::new(list)
}
