//! Probabilistic (head) sampler: keeps a fixed share of traces, decided
//! from the trace id alone so every node keeps the same traces.
//!
//! It follows OpenTelemetry's consistent probability sampling: the
//! trace's randomness is the low 56 bits of its id (W3C trace ids are
//! random there), or an explicit `rv` in the `ot` tracestate entry; the
//! rejection threshold is `(1 - p) · 2^56`; a span is kept when
//! randomness ≥ threshold. Kept spans carry the threshold as `ot=th:…` in
//! their tracestate, so later stages can adjust counts; a threshold already
//! there (an upstream sampler's) is respected: the larger one wins. A span
//! whose parent said "not sampled" (W3C flag 0 with the flags marked
//! known) is dropped.

use std::sync::Arc;

use async_trait::async_trait;
use sightline_model::{Batch, ConsumeError, Span, TraceId, TracesConsumer};

use super::Next;
use crate::Component;
use crate::metrics::{Metrics, labels};

/// 2^56: the randomness space of consistent probability sampling.
const MAX_THRESHOLD: u64 = 1 << 56;
/// OTLP span flags bit meaning "the W3C flags are known" (HAS_IS_REMOTE
/// is only set by SDKs that fill flags).
const FLAGS_KNOWN: u32 = 0x100;

/// Settings of the probabilistic sampler.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Share of traces kept, in percent (0–100).
    pub sampling_percentage: f64,
}

/// The processor.
pub struct ProbabilisticSampler {
    id: String,
    next: Next,
    threshold: u64,
    th_text: String,
    metrics: Arc<Metrics>,
}

/// Rejection threshold for keeping `percentage` % of traces.
pub fn threshold(percentage: f64) -> u64 {
    let p = (percentage / 100.0).clamp(0.0, 1.0);
    ((1.0 - p) * MAX_THRESHOLD as f64).round() as u64
}

/// The `th` value as the spec writes it: 14 hex digits, trailing zeros
/// removed (`0` for "keep everything").
pub fn threshold_text(th: u64) -> String {
    if th == 0 {
        return "0".into();
    }
    let full = format!("{th:014x}");
    full.trim_end_matches('0').to_owned()
}

fn parse_threshold(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 14 {
        return None;
    }
    let padded = format!("{text:0<14}");
    u64::from_str_radix(&padded, 16).ok()
}

/// The trace's 56-bit randomness: `rv` from the tracestate, else the id's
/// low 56 bits.
pub fn randomness(trace_id: TraceId, trace_state: &str) -> u64 {
    if let Some(rv) = ot_field(trace_state, "rv").and_then(|v| u64::from_str_radix(v, 16).ok()) {
        return rv & (MAX_THRESHOLD - 1);
    }
    let b = trace_id.as_bytes();
    let mut low = [0u8; 8];
    low[1..].copy_from_slice(&b[9..16]);
    u64::from_be_bytes(low)
}

/// A sub-key of the `ot` tracestate entry (`ot=th:8;rv:…`).
fn ot_field<'a>(trace_state: &'a str, key: &str) -> Option<&'a str> {
    let ot = trace_state.split(',').map(str::trim).find_map(|m| m.strip_prefix("ot="))?;
    ot.split(';').find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix(':')))
}

/// Returns `trace_state` with `ot=th:<th>` set (other `ot` sub-keys and
/// other vendors' entries kept; the `ot` entry moved first, as the spec
/// asks for modified entries).
pub fn with_threshold(trace_state: &str, th: &str) -> String {
    let mut ot_parts: Vec<String> = Vec::new();
    let mut others: Vec<&str> = Vec::new();
    for member in trace_state.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match member.strip_prefix("ot=") {
            Some(ot) => ot_parts.extend(ot.split(';').filter(|kv| !kv.starts_with("th:")).map(str::to_owned)),
            None => others.push(member),
        }
    }
    let mut ot = format!("ot=th:{th}");
    for p in ot_parts {
        ot.push(';');
        ot.push_str(&p);
    }
    std::iter::once(ot.as_str()).chain(others).collect::<Vec<_>>().join(",")
}

impl ProbabilisticSampler {
    /// Builds the sampler.
    pub fn new(id: &str, config: &Config, next: Next, metrics: Arc<Metrics>) -> ProbabilisticSampler {
        let threshold = threshold(config.sampling_percentage);
        ProbabilisticSampler {
            id: id.to_owned(),
            next,
            threshold,
            th_text: threshold_text(threshold),
            metrics,
        }
    }

    /// Whether to keep `span`, and the threshold to record.
    fn decide(&self, span: &Span) -> Option<u64> {
        if span.flags & FLAGS_KNOWN != 0 && span.flags & 1 == 0 {
            return None;
        }
        let upstream = ot_field(&span.trace_state, "th").and_then(parse_threshold).unwrap_or(0);
        let th = upstream.max(self.threshold);
        (randomness(span.trace_id, &span.trace_state) >= th).then_some(th)
    }
}

#[async_trait]
impl TracesConsumer for ProbabilisticSampler {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        let total = batch.len();
        let tenant = batch.tenant().clone();
        let (spans, _) = batch.into_parts();
        let mut kept = Vec::with_capacity(spans.len());
        for mut span in spans {
            if let Some(th) = self.decide(&span) {
                let text = if th == self.threshold { self.th_text.clone() } else { threshold_text(th) };
                if th > 0 {
                    span.trace_state = with_threshold(&span.trace_state, &text);
                }
                kept.push(span);
            }
        }
        let dropped = total - kept.len();
        self.metrics
            .sampled
            .get_or_create(&labels(&[("component", &self.id), ("decision", "kept")]))
            .inc_by(kept.len() as u64);
        self.metrics
            .sampled
            .get_or_create(&labels(&[("component", &self.id), ("decision", "dropped")]))
            .inc_by(dropped as u64);
        if kept.is_empty() {
            return Ok(());
        }
        self.next.consume_traces(Batch::from_spans(kept).with_tenant(tenant)).await
    }
}

#[async_trait]
impl Component for ProbabilisticSampler {
    fn id(&self) -> &str {
        &self.id
    }
}
