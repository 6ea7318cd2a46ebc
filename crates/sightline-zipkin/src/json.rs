//! The Zipkin v2 JSON body (`zipkin2-api.yaml`'s `ListOfSpans`) and its
//! decoding into [`WireSpan`]s.
//!
//! Lenient where Zipkin is (unknown fields ignored, `null` for any optional
//! field, invalid IP addresses dropped, scalar tag values taken as text) and
//! strict about what identifies a span: a missing or malformed id fails the
//! request, naming the span and field.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use sightline_model::SpanKind;

use crate::translate::{WireAnnotation, WireEndpoint, WireSpan};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    name: Option<String>,
    kind: Option<String>,
    timestamp: Option<u64>,
    duration: Option<u64>,
    local_endpoint: Option<JsonEndpoint>,
    remote_endpoint: Option<JsonEndpoint>,
    annotations: Option<Vec<JsonAnnotation>>,
    tags: Option<BTreeMap<String, TagValue>>,
    debug: Option<bool>,
    shared: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<i64>,
}

#[derive(Deserialize)]
struct JsonAnnotation {
    timestamp: Option<u64>,
    value: Option<String>,
}

/// A tag value: Zipkin's are strings; numbers and booleans are taken as
/// their JSON text and `null` as empty (the Python exporter sends `null`
/// for an unset scope version).
struct TagValue(String);

impl<'de> Deserialize<'de> for TagValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TagValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string tag value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TagValue, E> {
                Ok(TagValue(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<TagValue, E> {
                Ok(TagValue(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<TagValue, E> {
                Ok(TagValue(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TagValue, E> {
                Ok(TagValue(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TagValue, E> {
                Ok(TagValue(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TagValue, E> {
                Ok(TagValue(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TagValue, E> {
                Ok(TagValue(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<TagValue, E> {
                Ok(TagValue(String::new()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Decodes a JSON list of spans; the error names the span and field.
pub(crate) fn decode(body: &[u8]) -> Result<Vec<WireSpan>, String> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let spans: Vec<JsonSpan> = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            format!("invalid Zipkin JSON (expected a list of spans): {inner}")
        } else {
            format!("invalid Zipkin JSON at spans{path}: {inner}")
        }
    })?;
    de.end().map_err(|e| format!("invalid Zipkin JSON after the list of spans: {e}"))?;
    spans.into_iter().enumerate().map(|(i, s)| wire_span(s).map_err(|e| format!("spans[{i}].{e}"))).collect()
}

fn wire_span(s: JsonSpan) -> Result<WireSpan, String> {
    let trace_id = hex_id::<16>(s.trace_id.as_deref()).map_err(|e| format!("traceId: {e}"))?;
    let id = hex_id::<8>(s.id.as_deref()).map_err(|e| format!("id: {e}"))?;
    let parent_id = match s.parent_id.as_deref() {
        None | Some("") => None,
        Some(p) => Some(hex_id::<8>(Some(p)).map_err(|e| format!("parentId: {e}"))?),
    };
    Ok(WireSpan {
        trace_id,
        id,
        parent_id,
        kind: s.kind.as_deref().and_then(kind),
        name: s.name.unwrap_or_default(),
        timestamp_us: s.timestamp.unwrap_or(0),
        duration_us: s.duration.unwrap_or(0),
        local: s.local_endpoint.map(endpoint),
        remote: s.remote_endpoint.map(endpoint),
        annotations: s
            .annotations
            .unwrap_or_default()
            .into_iter()
            .map(|a| WireAnnotation {
                timestamp_us: a.timestamp.unwrap_or(0),
                value: a.value.unwrap_or_default(),
            })
            .collect(),
        tags: s.tags.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect(),
        debug: s.debug.unwrap_or(false),
        shared: s.shared.unwrap_or(false),
    })
}

/// `CLIENT`/`SERVER`/`PRODUCER`/`CONSUMER`, any case; anything else is no
/// kind.
pub(crate) fn kind(text: &str) -> Option<SpanKind> {
    [
        ("CLIENT", SpanKind::Client),
        ("SERVER", SpanKind::Server),
        ("PRODUCER", SpanKind::Producer),
        ("CONSUMER", SpanKind::Consumer),
    ]
    .into_iter()
    .find(|(name, _)| text.eq_ignore_ascii_case(name))
    .map(|(_, kind)| kind)
}

fn endpoint(e: JsonEndpoint) -> WireEndpoint {
    WireEndpoint {
        service_name: e.service_name.unwrap_or_default(),
        ipv4: e.ipv4.and_then(|ip| ip.trim().parse().ok()),
        ipv6: e.ipv6.and_then(|ip| ip.trim().parse().ok()),
        port: e.port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0),
    }
}

/// 1 to `2 * N` hex digits, left-padded with zeros to `N` bytes (zero ids
/// pass here; the model rejects them per span).
fn hex_id<const N: usize>(text: Option<&str>) -> Result<[u8; N], String> {
    let text = text.ok_or("missing")?;
    if text.is_empty() {
        return Err("empty".to_owned());
    }
    if text.len() > 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let shown: String = text.chars().take(40).collect();
        return Err(format!("{shown:?} is not 1 to {} hex digits", 2 * N));
    }
    let mut out = [0u8; N];
    // Walk from the last digit: pairs fill bytes from the end, an odd
    // leading digit fills the low half of the first byte used.
    for (i, b) in text.bytes().rev().enumerate() {
        let nibble = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => b - b'A' + 10,
        };
        if let Some(byte) = out.get_mut(N - 1 - i / 2) {
            *byte |= if i % 2 == 0 { nibble } else { nibble << 4 };
        }
    }
    Ok(out)
}
