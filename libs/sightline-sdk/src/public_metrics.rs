//! Public client-metrics ingestion (seed 001): `POST /api/v1/metrics`
//! takes events from browsers, validates a small schema, rejects payloads
//! whose keys look like personal or secret data with 400 and the offending
//! key, and counts accepted events as `public_metrics_total{event}`.
//!
//! Schema: one event `{"event": "page_view", "value": 1.5, "labels": {"page": "home"}, "timestamp": 1700000000000}`
//! (only `event` required) or `{"events": [event, ...]}` (at most 100).
//! Event names match `[A-Za-z0-9_.:-]{1,64}`; labels are at most 16
//! strings, numbers or booleans of at most 256 characters. Any other key
//! is refused, so a client cannot smuggle data through. Set
//! [`PublicMetrics::allow`] to bound the event names (they become label
//! values, so an open set lets any client grow the metric's cardinality).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use http::StatusCode;
use serde_json::{Value, json};

use crate::Telemetry;

/// Words that mark a key as personal or secret data (compared with the
/// key's words: `userEmail`, `user_email` and `Email` all contain `email`).
const PII_WORDS: &[&str] = &[
    "email",
    "mail",
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "token",
    "secret",
    "authorization",
    "auth",
    "bearer",
    "cookie",
    "apikey",
    "ssn",
    "card",
    "cvv",
    "cvc",
    "iban",
    "phone",
    "dob",
    "birthdate",
];
/// Substrings that mark a key whatever its word split (`creditcardnumber`).
const PII_FRAGMENTS: &[&str] = &[
    "email",
    "password",
    "secret",
    "token",
    "authorization",
    "apikey",
    "creditcard",
    "cardnumber",
    "socialsecurity",
    "privatekey",
];

/// Whether `key` looks like personal or secret data.
pub fn is_sensitive_key(key: &str) -> bool {
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                words.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            words.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    let joined: String = words.concat();
    words.iter().any(|w| PII_WORDS.contains(&w.as_str())) || PII_FRAGMENTS.iter().any(|f| joined.contains(f))
}

/// The first key anywhere in `v` (depth first) that looks sensitive.
pub fn find_sensitive_key(v: &Value) -> Option<&str> {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if is_sensitive_key(k) {
                    return Some(k);
                }
                if let Some(found) = find_sensitive_key(v) {
                    return Some(found);
                }
            }
            None
        }
        Value::Array(a) => a.iter().find_map(find_sensitive_key),
        _ => None,
    }
}

/// Why a payload was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Human-readable reason.
    pub error: String,
    /// The offending key, when one is to blame.
    pub key: Option<String>,
}

fn reject(error: impl Into<String>, key: Option<&str>) -> Rejection {
    Rejection { error: error.into(), key: key.map(str::to_owned) }
}

fn valid_event_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

fn validate_event<'a>(v: &'a Value, allowed: &BTreeSet<String>) -> Result<&'a str, Rejection> {
    let Value::Object(m) = v else {
        return Err(reject("an event must be a JSON object", None));
    };
    for k in m.keys() {
        if !matches!(k.as_str(), "event" | "value" | "labels" | "timestamp") {
            return Err(reject("unknown field", Some(k)));
        }
    }
    let event = match m.get("event") {
        Some(Value::String(s)) if valid_event_name(s) => s.as_str(),
        Some(_) => {
            return Err(reject("event must be a name of 1-64 characters [A-Za-z0-9_.:-]", Some("event")));
        }
        None => return Err(reject("missing field", Some("event"))),
    };
    if !allowed.is_empty() && !allowed.contains(event) {
        return Err(reject(format!("event {event:?} is not accepted"), Some("event")));
    }
    if let Some(v) = m.get("value")
        && !v.is_number()
    {
        return Err(reject("value must be a number", Some("value")));
    }
    if let Some(v) = m.get("timestamp")
        && !v.is_number()
    {
        return Err(reject("timestamp must be a number (ms since the epoch)", Some("timestamp")));
    }
    if let Some(labels) = m.get("labels") {
        let Value::Object(l) = labels else {
            return Err(reject("labels must be an object", Some("labels")));
        };
        if l.len() > 16 {
            return Err(reject("at most 16 labels", Some("labels")));
        }
        for (k, v) in l {
            let ok = match v {
                Value::String(s) => s.chars().count() <= 256,
                Value::Number(_) | Value::Bool(_) => true,
                _ => false,
            };
            if !ok || k.is_empty() || k.len() > 64 {
                return Err(reject(
                    "a label is a short name with a string (<= 256), number or boolean value",
                    Some(k),
                ));
            }
        }
    }
    Ok(event)
}

/// Validates a payload; on success the event names, in order.
pub fn validate<'a>(payload: &'a Value, allowed: &BTreeSet<String>) -> Result<Vec<&'a str>, Rejection> {
    if let Some(key) = find_sensitive_key(payload) {
        return Err(reject("payload contains a key that looks like personal or secret data", Some(key)));
    }
    match payload {
        Value::Object(m) if m.contains_key("events") => {
            if m.len() != 1 {
                let other = m.keys().find(|k| k.as_str() != "events").map(String::as_str);
                return Err(reject("unknown field", other));
            }
            let Some(Value::Array(events)) = m.get("events") else {
                return Err(reject("events must be an array", Some("events")));
            };
            if events.is_empty() || events.len() > 100 {
                return Err(reject("events must hold 1 to 100 events", Some("events")));
            }
            events.iter().map(|e| validate_event(e, allowed)).collect()
        }
        other => validate_event(other, allowed).map(|e| vec![e]),
    }
}

/// The ingestion route.
#[derive(Clone, Debug)]
pub struct PublicMetrics {
    telemetry: Telemetry,
    allowed: Arc<BTreeSet<String>>,
}

impl PublicMetrics {
    /// Accepts any well-formed event name.
    pub fn new(telemetry: &Telemetry) -> PublicMetrics {
        PublicMetrics { telemetry: telemetry.clone(), allowed: Arc::default() }
    }

    /// Accepts only these event names.
    pub fn allow<I: IntoIterator<Item = S>, S: Into<String>>(mut self, events: I) -> PublicMetrics {
        self.allowed = Arc::new(events.into_iter().map(Into::into).collect());
        self
    }

    /// `POST /api/v1/metrics` (bodies up to 64 KiB): 202 `{"accepted": n}`
    /// or 400 `{"error": ..., "key": ...}`.
    pub fn router<S: Clone + Send + Sync + 'static>(self) -> axum::Router<S> {
        let this = Arc::new(self);
        axum::Router::new()
            .route(
                "/api/v1/metrics",
                axum::routing::post(move |body: Bytes| {
                    let this = this.clone();
                    async move { this.ingest(&body) }
                }),
            )
            .layer(DefaultBodyLimit::max(64 * 1024))
    }

    fn ingest(&self, body: &[u8]) -> (StatusCode, Json<Value>) {
        let payload: Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": format!("invalid JSON: {e}"), "key": null})),
                );
            }
        };
        match validate(&payload, &self.allowed) {
            Ok(events) => {
                for e in &events {
                    self.telemetry.metrics().record_public_event(e);
                }
                (StatusCode::ACCEPTED, Json(json!({"accepted": events.len()})))
            }
            Err(r) => (StatusCode::BAD_REQUEST, Json(json!({"error": r.error, "key": r.key}))),
        }
    }
}
