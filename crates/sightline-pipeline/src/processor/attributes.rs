//! Attributes processor: insert, update, upsert, delete or hash span or
//! log record attributes, for items selected by include/exclude rules —
//! the Collector's `attributes` processor for traces and logs.

use std::sync::Arc;

use async_trait::async_trait;
use regex::Regex;
use sha2::{Digest, Sha256};
use sightline_model::{
    Batch, ConsumeError, KeyValue, LogBatch, LogRecord, LogsConsumer, Span, TracesConsumer, Value,
};

use crate::Component;
use crate::metrics::Metrics;

/// What an action does to its key.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Add the key if absent.
    Insert(Value),
    /// Replace the value if the key is present.
    Update(Value),
    /// Insert or replace.
    Upsert(Value),
    /// Remove the key.
    Delete,
    /// Replace the value by the hex SHA-256 of its text.
    Hash,
}

/// One action on one key, or on every key matching a pattern (delete and
/// hash only).
#[derive(Debug, Clone)]
pub struct KeyAction {
    /// The exact key.
    pub key: Option<String>,
    /// A regex over keys (delete and hash only).
    pub pattern: Option<Regex>,
    /// What to do.
    pub action: Action,
}

/// Which spans or log records an include/exclude rule selects: all listed
/// conditions must hold (an empty rule selects everything). `span_names`
/// only applies to spans and `log_bodies`/`log_severity_texts` only to log
/// records; config validation keeps each out of the other signal's
/// pipelines.
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// Resource `service.name` equal to one of these.
    pub services: Vec<String>,
    /// Span name matching one of these regexes (full match).
    pub span_names: Vec<Regex>,
    /// Log body (as text) matching one of these regexes (full match).
    pub log_bodies: Vec<Regex>,
    /// Log severity text equal to one of these.
    pub log_severity_texts: Vec<String>,
    /// Attributes that must be present with these values (as text).
    pub attributes: Vec<(String, String)>,
}

impl Match {
    fn common(&self, service: &str, attributes: &[KeyValue]) -> bool {
        (self.services.is_empty() || self.services.iter().any(|s| s == service))
            && self
                .attributes
                .iter()
                .all(|(k, v)| attributes.iter().any(|kv| kv.key == *k && kv.value.text_eq(v)))
    }

    fn matches_span(&self, span: &Span) -> bool {
        self.common(span.service_name(), &span.attributes)
            && (self.span_names.is_empty() || self.span_names.iter().any(|r| r.is_match(&span.name)))
    }

    fn matches_log(&self, record: &LogRecord) -> bool {
        self.common(record.service_name(), &record.attributes)
            && (self.log_bodies.is_empty()
                || self.log_bodies.iter().any(|r| r.is_match(&record.body.to_text())))
            && (self.log_severity_texts.is_empty() || self.log_severity_texts.contains(&record.severity_text))
    }

    /// Conditions this rule sets that do not apply to `signal`'s items.
    pub(crate) fn foreign_conditions(&self, signal: crate::Signal) -> Vec<&'static str> {
        let mut out = Vec::new();
        if signal != crate::Signal::Traces && !self.span_names.is_empty() {
            out.push("span_names");
        }
        if signal != crate::Signal::Logs {
            if !self.log_bodies.is_empty() {
                out.push("log_bodies");
            }
            if !self.log_severity_texts.is_empty() {
                out.push("log_severity_texts");
            }
        }
        out
    }
}

/// Settings of an attributes processor.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Actions, applied in order.
    pub actions: Vec<KeyAction>,
    /// Only spans this selects are changed.
    pub include: Option<Match>,
    /// Spans this selects are left alone.
    pub exclude: Option<Match>,
}

/// The processor, in front of `next` (spans or log records: it implements
/// each signal's consumer trait that `N` does).
pub struct AttributesProcessor<N: ?Sized = dyn TracesConsumer> {
    id: String,
    config: Config,
    next: Arc<N>,
}

impl<N: ?Sized> AttributesProcessor<N> {
    /// Builds the processor.
    pub fn new(id: &str, config: Config, next: Arc<N>, _metrics: Arc<Metrics>) -> AttributesProcessor<N> {
        AttributesProcessor { id: id.to_owned(), config, next }
    }

    fn applies(&self, matches: impl Fn(&Match) -> bool) -> bool {
        self.config.include.as_ref().is_none_or(&matches)
            && !self.config.exclude.as_ref().is_some_and(matches)
    }

    fn applies_to_span(&self, span: &Span) -> bool {
        self.applies(|m| m.matches_span(span))
    }

    fn applies_to_log(&self, record: &LogRecord) -> bool {
        self.applies(|m| m.matches_log(record))
    }
}

/// Applies `actions` to one attribute list.
pub fn apply(actions: &[KeyAction], attrs: &mut Vec<KeyValue>) {
    for a in actions {
        let hits = |kv: &KeyValue| {
            a.key.as_deref().is_some_and(|k| k == kv.key)
                || a.pattern.as_ref().is_some_and(|p| p.is_match(&kv.key))
        };
        match &a.action {
            Action::Delete => attrs.retain(|kv| !hits(kv)),
            Action::Hash => {
                for kv in attrs.iter_mut().filter(|kv| hits(kv)) {
                    kv.value = Value::from(hex(&Sha256::digest(kv.value.to_text().as_bytes())));
                }
            }
            Action::Insert(v) | Action::Update(v) | Action::Upsert(v) => {
                let Some(key) = a.key.as_deref() else { continue };
                match attrs.iter_mut().find(|kv| kv.key == key) {
                    Some(kv) if !matches!(a.action, Action::Insert(_)) => kv.value = v.clone(),
                    None if !matches!(a.action, Action::Update(_)) => {
                        attrs.push(KeyValue::new(key, v.clone()))
                    }
                    _ => {}
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
impl<N: ?Sized + TracesConsumer> TracesConsumer for AttributesProcessor<N> {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        if !batch.spans().iter().any(|s| self.applies_to_span(s)) {
            return self.next.consume_traces(batch).await;
        }
        let tenant = batch.tenant().clone();
        let (mut spans, _) = batch.into_parts();
        for span in spans.iter_mut().filter(|s| self.applies_to_span(s)) {
            apply(&self.config.actions, &mut span.attributes);
        }
        self.next.consume_traces(Batch::from_spans(spans).with_tenant(tenant)).await
    }
}

#[async_trait]
impl<N: ?Sized + LogsConsumer> LogsConsumer for AttributesProcessor<N> {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        if !batch.records().iter().any(|r| self.applies_to_log(r)) {
            return self.next.consume_logs(batch).await;
        }
        let tenant = batch.tenant().clone();
        let (mut records, _) = batch.into_parts();
        for record in records.iter_mut().filter(|r| self.applies_to_log(r)) {
            apply(&self.config.actions, &mut record.attributes);
        }
        self.next.consume_logs(LogBatch::from_records(records).with_tenant(tenant)).await
    }
}

#[async_trait]
impl<N: ?Sized + Send + Sync> Component for AttributesProcessor<N> {
    fn id(&self) -> &str {
        &self.id
    }
}
