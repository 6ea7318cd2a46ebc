//! Redaction: keeps secrets and personal data out of storage.
//!
//! Seed 001 rejects PII and secrets at the edge; this makes sure nothing
//! that slipped through is stored. Three mechanisms, like the Collector's
//! `redaction` processor:
//! - **blocked keys**: attributes whose key has a segment (split on `.`,
//!   `_`, `-`) in the block list — `password`, `secret`, `token`,
//!   `authorization`, `cookie`, `email`, `card`… — are deleted;
//! - **masked values**: text matching value patterns — email addresses,
//!   card numbers (13–19 digits passing the Luhn check), bearer/basic
//!   credentials — is replaced by `****`, in attribute values (nested ones
//!   too), span and event names, status messages, and log bodies (text or
//!   structured: a secret in a log line is the commonest leak);
//! - **allow-list mode**: only listed keys survive.
//!
//! Cheap byte checks run before any regex (`@` before the email pattern, a
//! digit run before the card pattern), so clean spans and records cost
//! little; a batch with nothing to redact passes through without
//! re-encoding.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use regex::Regex;
use sightline_model::{
    Batch, ConsumeError, KeyValue, LogBatch, LogRecord, LogsConsumer, Resource, Scope, Span, TracesConsumer,
    Value,
};

use super::FastMap;
use crate::Component;
use crate::metrics::{Metrics, labels};

/// Key segments blocked by default.
pub const DEFAULT_BLOCKED_KEY_SEGMENTS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "secret",
    "token",
    "authorization",
    "auth",
    "cookie",
    "email",
    "card",
    "ssn",
    "credential",
    "credentials",
];

/// What to mask in values; each is on by default.
#[derive(Debug, Clone, PartialEq)]
pub struct Masks {
    /// Email addresses.
    pub emails: bool,
    /// Card numbers (Luhn-valid runs of 13–19 digits).
    pub card_numbers: bool,
    /// `Bearer …` / `Basic …` credentials.
    pub bearer_tokens: bool,
}

/// Settings of a redaction processor.
#[derive(Debug, Clone)]
pub struct Config {
    /// Key segments (lower-case) that delete an attribute.
    pub blocked_key_segments: Vec<String>,
    /// Extra key regexes that delete an attribute.
    pub blocked_key_patterns: Vec<Regex>,
    /// Extra value regexes whose matches are masked.
    pub blocked_values: Vec<Regex>,
    /// Built-in value masks.
    pub masks: Masks,
    /// When set, only these keys survive (allow-list mode).
    pub allowed_keys: Option<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            blocked_key_segments: DEFAULT_BLOCKED_KEY_SEGMENTS.iter().map(|s| (*s).to_owned()).collect(),
            blocked_key_patterns: Vec::new(),
            blocked_values: Vec::new(),
            masks: Masks { emails: true, card_numbers: true, bearer_tokens: true },
            allowed_keys: None,
        }
    }
}

/// Two-segment keys blocked as a pair or when written as one segment
/// (`api_key`, `apikey`, `set-cookie`, `credit_card`…).
const JOINED: &[(&str, &str)] = &[
    ("api", "key"),
    ("private", "key"),
    ("set", "cookie"),
    ("credit", "card"),
    ("card", "number"),
    ("access", "key"),
];

/// The text that replaces masked values.
pub const MASK: &str = "****";

struct Patterns {
    email: Regex,
    card: Regex,
    bearer: Regex,
}

/// The rules, compiled; usable without the processor (tests, other stages).
pub struct Redactor {
    config: Config,
    patterns: Patterns,
    /// Verdicts per attribute key: keys repeat on every span, and the
    /// segment rules cost several string compares each (6–11 % of server
    /// CPU at saturation before this cache).
    verdicts: parking_lot::RwLock<FastMap<String, bool>>,
}

/// Distinct keys remembered; beyond, keys are checked without caching.
const MAX_CACHED_KEYS: usize = 10_000;

#[derive(Default)]
struct Counts {
    keys: u64,
    values: u64,
}

/// One pass of "does this batch need redacting": the key verdicts are
/// read under one lock for the whole batch (taking it per attribute was
/// most of redaction's cost at 10k spans/s: two receiver threads bouncing
/// the lock's cache line ~15 times a span); keys first seen here are
/// checked by the rules and cached after the pass.
struct Check<'r> {
    redactor: &'r Redactor,
    known: parking_lot::RwLockReadGuard<'r, FastMap<String, bool>>,
    /// Verdicts of keys not in `known`, added to the cache afterwards.
    learned: FastMap<String, bool>,
}

impl Check<'_> {
    fn key_blocked(&mut self, key: &str) -> bool {
        if let Some(known) = self.known.get(key).or_else(|| self.learned.get(key)) {
            return *known;
        }
        let blocked = self.redactor.key_rules(key);
        if self.known.len() + self.learned.len() < MAX_CACHED_KEYS {
            self.learned.insert(key.to_owned(), blocked);
        }
        blocked
    }

    fn text_needs(&self, s: &str) -> bool {
        self.redactor.text_needs(s)
    }

    fn value_needs(&mut self, v: &Value) -> bool {
        match v {
            Value::Str(s) => self.text_needs(s),
            Value::Array(items) => items.iter().any(|i| self.value_needs(i)),
            Value::Map(kvs) => self.attributes_need(kvs),
            _ => false,
        }
    }

    fn attributes_need(&mut self, kvs: &[KeyValue]) -> bool {
        kvs.iter().any(|kv| self.key_blocked(&kv.key) || self.value_needs(&kv.value))
    }

    /// Whether anything in `span` itself (not its resource or scope) needs
    /// redacting.
    fn span_needs(&mut self, span: &Span) -> bool {
        self.attributes_need(&span.attributes)
            || self.text_needs(&span.name)
            || self.text_needs(&span.status.message)
            || span.events.iter().any(|e| self.text_needs(&e.name) || self.attributes_need(&e.attributes))
            || span.links.iter().any(|l| self.attributes_need(&l.attributes))
    }

    /// Whether anything in a log record itself needs redacting.
    fn record_needs(&mut self, record: &LogRecord) -> bool {
        self.attributes_need(&record.attributes) || self.value_needs(&record.body)
    }
}

impl Redactor {
    /// Compiles the rules.
    pub fn new(config: Config) -> Redactor {
        // NOTE: these patterns are constants and known to compile.
        #[allow(clippy::expect_used)]
        let patterns = Patterns {
            email: Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}").expect("email pattern"),
            card: Regex::new(r"\d(?:[ \-]?\d){12,18}").expect("card pattern"),
            bearer: Regex::new(r"(?i)\b(?:bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*").expect("bearer pattern"),
        };
        Redactor { config, patterns, verdicts: parking_lot::RwLock::new(HashMap::default()) }
    }

    fn key_blocked(&self, key: &str) -> bool {
        if let Some(known) = self.verdicts.read().get(key) {
            return *known;
        }
        let blocked = self.key_rules(key);
        let mut verdicts = self.verdicts.write();
        if verdicts.len() < MAX_CACHED_KEYS {
            verdicts.insert(key.to_owned(), blocked);
        }
        blocked
    }

    fn key_rules(&self, key: &str) -> bool {
        if let Some(allowed) = &self.config.allowed_keys {
            return !allowed.iter().any(|k| k == key);
        }
        // Compare segments in place: keys repeat on every span, so this
        // must not allocate.
        let mut previous = "";
        for seg in key.split(['.', '_', '-', '/']) {
            let blocked = self.config.blocked_key_segments.iter().any(|b| b.eq_ignore_ascii_case(seg))
                || JOINED
                    .iter()
                    .any(|(a, b)| a.eq_ignore_ascii_case(previous) && b.eq_ignore_ascii_case(seg))
                || JOINED.iter().any(|(a, b)| {
                    seg.len() == a.len() + b.len()
                        && seg.get(..a.len()).is_some_and(|head| head.eq_ignore_ascii_case(a))
                        && seg.get(a.len()..).is_some_and(|rest| rest.eq_ignore_ascii_case(b))
                });
            if blocked {
                return true;
            }
            previous = seg;
        }
        self.config.blocked_key_patterns.iter().any(|p| p.is_match(key))
    }

    /// Whether `s` holds text a mask would replace (no allocation).
    fn text_needs(&self, s: &str) -> bool {
        let m = &self.config.masks;
        (m.emails && s.contains('@') && self.patterns.email.is_match(s))
            || (m.card_numbers
                && s.bytes().filter(u8::is_ascii_digit).count() >= 13
                && self.patterns.card.find_iter(s).any(|hit| luhn_valid(hit.as_str())))
            || (m.bearer_tokens && may_hold_credentials(s) && self.patterns.bearer.is_match(s))
            || self.config.blocked_values.iter().any(|re| re.is_match(s))
    }

    /// Whether anything in `items`, their resources or scopes needs
    /// redacting. A batch's items share a few resource and scope `Arc`s,
    /// usually in runs, so each run's resource and scope is checked once.
    fn batch_needs<T: Item>(&self, items: &[T]) -> bool {
        let mut check = Check { redactor: self, known: self.verdicts.read(), learned: FastMap::default() };
        let mut last: Option<(*const Resource, *const Scope)> = None;
        let needs = items.iter().any(|item| {
            let shared = (Arc::as_ptr(item.resource()), Arc::as_ptr(item.scope()));
            let shared_need = last != Some(shared)
                && (check.attributes_need(item.resource().attributes())
                    || check.attributes_need(&item.scope().attributes));
            last = Some(shared);
            shared_need || item.needs(&mut check)
        });
        let Check { known, learned, .. } = check;
        drop(known);
        if !learned.is_empty() {
            let mut verdicts = self.verdicts.write();
            for (key, blocked) in learned {
                if verdicts.len() >= MAX_CACHED_KEYS {
                    break;
                }
                verdicts.insert(key, blocked);
            }
        }
        needs
    }

    /// Masks sensitive text in `s` (a `String` or an attribute's
    /// `CompactString`); returns whether anything changed.
    fn mask_text<S>(&self, s: &mut S, counts: &mut Counts) -> bool
    where
        S: std::ops::Deref<Target = str> + From<String>,
    {
        let m = &self.config.masks;
        let mut changed = false;
        let mut replace = |re: &Regex, s: &mut S, luhn: bool| {
            if !re.is_match(s) {
                return;
            }
            let out = re.replace_all(s, |caps: &regex::Captures<'_>| {
                let hit = &caps[0];
                if luhn && !luhn_valid(hit) {
                    hit.to_owned()
                } else {
                    counts.values += 1;
                    changed = true;
                    MASK.to_owned()
                }
            });
            if let std::borrow::Cow::Owned(o) = out {
                *s = S::from(o);
            }
        };
        if m.emails && s.contains('@') {
            replace(&self.patterns.email, s, false);
        }
        if m.card_numbers && s.bytes().filter(u8::is_ascii_digit).count() >= 13 {
            replace(&self.patterns.card, s, true);
        }
        if m.bearer_tokens && s.len() > 6 && may_hold_credentials(s) {
            replace(&self.patterns.bearer, s, false);
        }
        for re in &self.config.blocked_values {
            replace(re, s, false);
        }
        changed
    }

    fn value(&self, v: &mut Value, counts: &mut Counts) -> bool {
        match v {
            Value::Str(s) => self.mask_text(s, counts),
            Value::Array(items) => items.iter_mut().fold(false, |acc, i| self.value(i, counts) | acc),
            Value::Map(kvs) => self.attributes(kvs, counts),
            _ => false,
        }
    }

    fn attributes(&self, kvs: &mut Vec<KeyValue>, counts: &mut Counts) -> bool {
        let before = kvs.len();
        kvs.retain(|kv| !self.key_blocked(&kv.key));
        let removed = before - kvs.len();
        counts.keys += removed as u64;
        kvs.iter_mut().fold(removed > 0, |acc, kv| self.value(&mut kv.value, counts) | acc)
    }

    /// Redacts one span in place (not its resource or scope); returns
    /// whether anything changed.
    fn span(&self, span: &mut Span, counts: &mut Counts) -> bool {
        let mut changed = self.attributes(&mut span.attributes, counts);
        changed |= self.mask_text(&mut span.name, counts);
        changed |= self.mask_text(&mut span.status.message, counts);
        for e in &mut span.events {
            changed |= self.mask_text(&mut e.name, counts);
            changed |= self.attributes(&mut e.attributes, counts);
        }
        for l in &mut span.links {
            changed |= self.attributes(&mut l.attributes, counts);
        }
        changed
    }

    /// Redacts one log record in place (not its resource or scope): its
    /// attributes and its body, text or structured.
    fn record(&self, record: &mut LogRecord, counts: &mut Counts) -> bool {
        let changed = self.attributes(&mut record.attributes, counts);
        self.value(&mut record.body, counts) | changed
    }

    /// Redacts a batch of spans or log records; `None` when nothing needed
    /// redacting.
    fn batch<T: Item>(&self, items: &[T], counts: &mut Counts) -> Option<Vec<T>> {
        // Most batches are clean: check without copying first.
        if !self.batch_needs(items) {
            return None;
        }
        let mut resources: HashMap<*const Resource, Arc<Resource>> = HashMap::new();
        let mut scopes: HashMap<*const Scope, Arc<Scope>> = HashMap::new();
        let mut out = Vec::with_capacity(items.len());
        let mut changed = false;
        for original in items {
            let mut item = original.clone();
            changed |= item.redact(self, counts);
            let current = Arc::clone(item.resource());
            let resource = resources.entry(Arc::as_ptr(&current)).or_insert_with(|| {
                let mut attrs = current.attributes().to_vec();
                if self.attributes(&mut attrs, counts) {
                    Arc::new(Resource::new(
                        attrs,
                        current.dropped_attributes_count(),
                        current.schema_url().to_owned(),
                    ))
                } else {
                    Arc::clone(&current)
                }
            });
            if !Arc::ptr_eq(resource, &current) {
                changed = true;
                *item.resource_mut() = Arc::clone(resource);
            }
            let current = Arc::clone(item.scope());
            let scope = scopes.entry(Arc::as_ptr(&current)).or_insert_with(|| {
                let mut s = (*current).clone();
                if self.attributes(&mut s.attributes, counts) { Arc::new(s) } else { Arc::clone(&current) }
            });
            if !Arc::ptr_eq(scope, &current) {
                changed = true;
                *item.scope_mut() = Arc::clone(scope);
            }
            out.push(item);
        }
        changed.then_some(out)
    }
}

/// What redaction needs from a span or a log record.
trait Item: Clone {
    fn resource(&self) -> &Arc<Resource>;
    fn resource_mut(&mut self) -> &mut Arc<Resource>;
    fn scope(&self) -> &Arc<Scope>;
    fn scope_mut(&mut self) -> &mut Arc<Scope>;
    /// Whether the item itself (not its resource or scope) needs redacting.
    fn needs(&self, c: &mut Check<'_>) -> bool;
    /// Redacts the item itself; whether anything changed.
    fn redact(&mut self, r: &Redactor, counts: &mut Counts) -> bool;
}

impl Item for Span {
    fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }
    fn resource_mut(&mut self) -> &mut Arc<Resource> {
        &mut self.resource
    }
    fn scope(&self) -> &Arc<Scope> {
        &self.scope
    }
    fn scope_mut(&mut self) -> &mut Arc<Scope> {
        &mut self.scope
    }
    fn needs(&self, c: &mut Check<'_>) -> bool {
        c.span_needs(self)
    }
    fn redact(&mut self, r: &Redactor, counts: &mut Counts) -> bool {
        r.span(self, counts)
    }
}

impl Item for LogRecord {
    fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }
    fn resource_mut(&mut self) -> &mut Arc<Resource> {
        &mut self.resource
    }
    fn scope(&self) -> &Arc<Scope> {
        &self.scope
    }
    fn scope_mut(&mut self) -> &mut Arc<Scope> {
        &mut self.scope
    }
    fn needs(&self, c: &mut Check<'_>) -> bool {
        c.record_needs(self)
    }
    fn redact(&mut self, r: &Redactor, counts: &mut Counts) -> bool {
        r.record(self, counts)
    }
}

/// Whether `s` contains "bearer" or "basic" in any case: the bearer
/// pattern's prefilter. One `memchr2` pass for the `b`s both start with
/// instead of two window-by-window comparisons of the whole text; most
/// values have no `b` at all.
fn may_hold_credentials(s: &str) -> bool {
    let bytes = s.as_bytes();
    memchr::memchr2_iter(b'b', b'B', bytes).any(|at| {
        let rest = bytes.get(at..).unwrap_or_default();
        let starts = |word: &[u8]| rest.get(..word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word));
        starts(b"bearer") || starts(b"basic")
    })
}

/// Luhn checksum over the digits of `s`.
pub fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The processor, in front of `next` (spans or log records: it implements
/// each signal's consumer trait that `N` does).
pub struct RedactionProcessor<N: ?Sized = dyn TracesConsumer> {
    id: String,
    redactor: Redactor,
    next: Arc<N>,
    metrics: Arc<Metrics>,
}

impl<N: ?Sized> RedactionProcessor<N> {
    /// Builds the processor.
    pub fn new(id: &str, config: Config, next: Arc<N>, metrics: Arc<Metrics>) -> RedactionProcessor<N> {
        RedactionProcessor { id: id.to_owned(), redactor: Redactor::new(config), next, metrics }
    }

    /// Redacts `items`, counting what it removed and masked.
    fn redact<T: Item>(&self, items: &[T]) -> Option<Vec<T>> {
        let mut counts = Counts::default();
        let redacted = self.redactor.batch(items, &mut counts);
        if counts.keys > 0 {
            self.metrics
                .redacted
                .get_or_create(&labels(&[("component", &self.id), ("kind", "key")]))
                .inc_by(counts.keys);
        }
        if counts.values > 0 {
            self.metrics
                .redacted
                .get_or_create(&labels(&[("component", &self.id), ("kind", "value")]))
                .inc_by(counts.values);
        }
        redacted
    }
}

#[async_trait]
impl<N: ?Sized + TracesConsumer> TracesConsumer for RedactionProcessor<N> {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        match self.redact(batch.spans()) {
            None => self.next.consume_traces(batch).await,
            Some(spans) => {
                let tenant = batch.tenant().clone();
                self.next.consume_traces(Batch::from_spans(spans).with_tenant(tenant)).await
            }
        }
    }
}

#[async_trait]
impl<N: ?Sized + LogsConsumer> LogsConsumer for RedactionProcessor<N> {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        match self.redact(batch.records()) {
            None => self.next.consume_logs(batch).await,
            Some(records) => {
                let tenant = batch.tenant().clone();
                self.next.consume_logs(LogBatch::from_records(records).with_tenant(tenant)).await
            }
        }
    }
}

#[async_trait]
impl<N: ?Sized + Send + Sync> Component for RedactionProcessor<N> {
    fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use sightline_model::{Event, SpanId, SpanKind, TraceId};

    use super::*;

    #[test]
    fn the_credential_prefilter_finds_both_words_in_any_case() {
        for s in ["Bearer abc", "x bAsIc y", "bbearer", "Authorization: BEARER t", "b basic", "abasic"] {
            assert!(may_hold_credentials(s), "{s}");
        }
        for s in ["", "b", "bear", "basi", "beare r", "okhttp/4.12.0", "Go-http-client/1.1", "bbasi"] {
            assert!(!may_hold_credentials(s), "{s}");
        }
    }

    /// Verdicts of keys first seen during a batch's check are cached after
    /// it, with the verdict the rules give.
    #[test]
    fn keys_first_seen_in_a_check_are_cached_after_it() {
        let r = Redactor::new(Config::default());
        let clean = test_span(1, vec![KeyValue::new("http.route", "/a"), KeyValue::new("user.id", "u")]);
        assert!(!r.batch_needs(std::slice::from_ref(&clean)));
        let dirty = test_span(2, vec![KeyValue::new("http.route", "/a"), KeyValue::new("db.password", "p")]);
        assert!(r.batch_needs(&[clean, dirty]));
        let verdicts = r.verdicts.read();
        assert_eq!(verdicts.get("http.route"), Some(&false));
        assert_eq!(verdicts.get("user.id"), Some(&false));
        assert_eq!(verdicts.get("db.password"), Some(&true));
        assert_eq!(verdicts.len(), 3);
    }

    fn test_span(n: u64, attributes: Vec<KeyValue>) -> Span {
        let mut trace = [0u8; 16];
        trace[8..].copy_from_slice(&(n + 1).to_be_bytes());
        let trace = TraceId::from_bytes(trace).unwrap();
        let id = SpanId::from_bytes((n + 1).to_be_bytes()).unwrap();
        Span::test(trace, id, "GET /api/cart/{id}").with_kind(SpanKind::Server).with_attributes(attributes)
    }

    /// Checking a clean batch, in thread CPU time per span: 512 spans
    /// shaped like the load generator's realistic server spans
    /// (`cargo test --release -p sightline-pipeline --lib -- --ignored
    /// redaction_cost --nocapture`).
    #[test]
    #[ignore]
    fn redaction_cost() {
        let spans: Vec<Span> = (0..512u64)
            .map(|n| {
                let mut span = test_span(
                    n,
                    vec![
                        KeyValue::new("http.request.method", "GET"),
                        KeyValue::new("http.route", "/api/cart/{id}"),
                        KeyValue::new("http.response.status_code", 200i64),
                        KeyValue::new("url.path", format!("/api/cart/{}", n * 7919 % 10_000_000)),
                        KeyValue::new("url.scheme", "http"),
                        KeyValue::new("server.address", "cart"),
                        KeyValue::new("server.port", 8080i64),
                        KeyValue::new("client.address", format!("10.0.{}.{}", n % 4, n % 250)),
                        KeyValue::new("user_agent.original", "okhttp/4.12.0"),
                        KeyValue::new(
                            "app.request.id",
                            format!("{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                        ),
                        KeyValue::new("app.user.id", format!("user-{:06}", n * 31 % 5000)),
                    ],
                );
                span.events = vec![Event {
                    time_unix_nano: 1,
                    name: "message".into(),
                    attributes: vec![KeyValue::new("message.type", "RECEIVED")],
                    dropped_attributes_count: 0,
                }];
                span
            })
            .collect();
        let r = Redactor::new(Config::default());
        let cpu = || -> u64 {
            let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
            text.split_whitespace().next().unwrap().parse().unwrap()
        };
        let rounds = 400;
        let t = cpu();
        for _ in 0..rounds {
            assert!(!r.batch_needs(&spans));
        }
        let ns = cpu() - t;
        println!("redaction check: {:.3} µs/span", ns as f64 / (rounds * spans.len()) as f64 / 1e3);
    }
}
