//! Attributes processor: insert, update, upsert, delete or hash span
//! attributes, for spans selected by include/exclude rules — the
//! Collector's `attributes` processor for traces.

use std::sync::Arc;

use async_trait::async_trait;
use regex::Regex;
use sha2::{Digest, Sha256};
use sightline_model::{Batch, ConsumeError, KeyValue, Span, TracesConsumer, Value};

use super::Next;
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

/// Which spans an include/exclude rule selects: all listed conditions must
/// hold (an empty rule selects everything).
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// Resource `service.name` equal to one of these.
    pub services: Vec<String>,
    /// Span name matching one of these regexes (full match).
    pub span_names: Vec<Regex>,
    /// Attributes that must be present with these values (as text).
    pub attributes: Vec<(String, String)>,
}

impl Match {
    fn matches(&self, span: &Span) -> bool {
        (self.services.is_empty() || self.services.iter().any(|s| s == span.service_name()))
            && (self.span_names.is_empty() || self.span_names.iter().any(|r| r.is_match(&span.name)))
            && self
                .attributes
                .iter()
                .all(|(k, v)| span.attributes.iter().any(|kv| kv.key == *k && kv.value.text_eq(v)))
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

/// The processor.
pub struct AttributesProcessor {
    id: String,
    config: Config,
    next: Next,
}

impl AttributesProcessor {
    /// Builds the processor.
    pub fn new(id: &str, config: Config, next: Next, _metrics: Arc<Metrics>) -> AttributesProcessor {
        AttributesProcessor { id: id.to_owned(), config, next }
    }

    fn applies(&self, span: &Span) -> bool {
        self.config.include.as_ref().is_none_or(|m| m.matches(span))
            && !self.config.exclude.as_ref().is_some_and(|m| m.matches(span))
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
                    kv.value = Value::Str(hex(&Sha256::digest(kv.value.to_text().as_bytes())));
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
impl TracesConsumer for AttributesProcessor {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        if !batch.spans().iter().any(|s| self.applies(s)) {
            return self.next.consume_traces(batch).await;
        }
        let (mut spans, _) = batch.into_parts();
        for span in spans.iter_mut().filter(|s| self.applies(s)) {
            apply(&self.config.actions, &mut span.attributes);
        }
        self.next.consume_traces(Batch::from_spans(spans)).await
    }
}

#[async_trait]
impl Component for AttributesProcessor {
    fn id(&self) -> &str {
        &self.id
    }
}
