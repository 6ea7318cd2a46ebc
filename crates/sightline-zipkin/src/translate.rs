//! Zipkin v2 spans → model spans.
//!
//! Both wire formats are first decoded into [`WireSpan`]s (ids already
//! checked for form, tags in key order); this module holds the one mapping
//! from there to the model, documented in the crate docs.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use sightline_model::{
    Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, TraceId, Value,
};

/// One span as either wire format carries it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WireSpan {
    /// 128-bit trace id (64-bit ids left-padded); may be all zeros.
    pub(crate) trace_id: [u8; 16],
    /// Span id; may be all zeros.
    pub(crate) id: [u8; 8],
    /// Parent span id, if given.
    pub(crate) parent_id: Option<[u8; 8]>,
    /// `None` when the span has no (known) kind.
    pub(crate) kind: Option<SpanKind>,
    /// Operation name.
    pub(crate) name: String,
    /// Epoch µs; 0 when absent.
    pub(crate) timestamp_us: u64,
    /// µs; 0 when absent.
    pub(crate) duration_us: u64,
    /// The recording host.
    pub(crate) local: Option<WireEndpoint>,
    /// The other side.
    pub(crate) remote: Option<WireEndpoint>,
    /// Annotations in order.
    pub(crate) annotations: Vec<WireAnnotation>,
    /// Tags in key order.
    pub(crate) tags: BTreeMap<String, String>,
    /// Force-sampled (not mapped).
    pub(crate) debug: bool,
    /// Reuses the span id of a span started by another tracer.
    pub(crate) shared: bool,
}

/// An endpoint with its address fields already validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WireEndpoint {
    /// Service name, possibly empty.
    pub(crate) service_name: String,
    /// A valid IPv4 address, if given.
    pub(crate) ipv4: Option<Ipv4Addr>,
    /// A valid IPv6 address, if given.
    pub(crate) ipv6: Option<Ipv6Addr>,
    /// A port in 1..=65535, if given.
    pub(crate) port: Option<u16>,
}

impl WireEndpoint {
    /// The address as text, IPv4 preferred.
    fn address(&self) -> Option<String> {
        match (self.ipv4, self.ipv6) {
            (Some(v4), _) => Some(v4.to_string()),
            (None, Some(v6)) => Some(v6.to_string()),
            (None, None) => None,
        }
    }
}

/// One annotation.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct WireAnnotation {
    /// Epoch µs.
    pub(crate) timestamp_us: u64,
    /// The value (event name, possibly with encoded attributes).
    pub(crate) value: String,
}

/// The mapped spans of one request.
#[derive(Debug, Default)]
pub(crate) struct Translated {
    /// Valid spans, grouped by resource then scope.
    pub(crate) spans: Vec<Span>,
    /// Spans skipped for an all-zero trace or span id.
    pub(crate) rejected: u64,
    /// Why (the first few), empty if none were.
    pub(crate) error_message: String,
}

/// Attribute set on spans whose Zipkin timestamp was absent (the
/// translator's `zipkin.StartTimeAbsent`).
pub(crate) const START_TIME_ABSENT: &str = "otel.zipkin.absentField.startTime";

/// How many rejection reasons a message lists.
const MAX_REASONS: usize = 3;

/// Maps a request's spans.
pub(crate) fn translate(input: Vec<WireSpan>) -> Translated {
    let mut out = Translated::default();
    let mut groups = Groups::default();
    let mut entries: Vec<Entry> = Vec::with_capacity(input.len());
    let mut reasons = 0usize;
    for (i, wire) in input.into_iter().enumerate() {
        let shared = wire.shared;
        match map_span(wire, &mut groups) {
            Ok((span, group)) => entries.push(Entry { span, group, shared }),
            Err(why) => {
                out.rejected += 1;
                if reasons < MAX_REASONS {
                    if reasons > 0 {
                        out.error_message.push_str("; ");
                    }
                    let _ = write!(out.error_message, "spans[{i}]: {why}");
                }
                reasons += 1;
            }
        }
    }
    if out.rejected > 0 {
        out.error_message = format!(
            "{} span(s) skipped for invalid ids: {}{}",
            out.rejected,
            out.error_message,
            if reasons > MAX_REASONS { "; …" } else { "" }
        );
    }
    uniquify_shared(&mut entries);
    // Consecutive spans of one resource and scope encode as one
    // ResourceSpans/ScopeSpans; keep the request order within a group.
    entries.sort_by_key(|e| e.group);
    out.spans = entries.into_iter().map(|e| e.span).collect();
    out
}

struct Entry {
    span: Span,
    /// (resource index, scope index) in first-seen order.
    group: (usize, usize),
    shared: bool,
}

/// The resources and scopes of one request, deduplicated by content.
#[derive(Default)]
struct Groups {
    resources: Vec<Arc<Resource>>,
    resource_index: HashMap<(String, Vec<(String, String)>), usize>,
    scopes: Vec<Arc<Scope>>,
    scope_index: HashMap<(usize, String, String), usize>,
}

impl Groups {
    fn resource(&mut self, service: String, attrs: Vec<(String, String)>) -> usize {
        let key = (service, attrs);
        if let Some(&i) = self.resource_index.get(&key) {
            return i;
        }
        let (service, attrs) = key.clone();
        let mut kvs = Vec::with_capacity(attrs.len() + 1);
        if !service.is_empty() {
            kvs.push(KeyValue::new("service.name", service));
        }
        kvs.extend(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)));
        let i = self.resources.len();
        self.resources.push(Arc::new(Resource::new(kvs, 0, String::new())));
        self.resource_index.insert(key, i);
        i
    }

    fn scope(&mut self, resource: usize, name: String, version: String) -> usize {
        let key = (resource, name, version);
        if let Some(&i) = self.scope_index.get(&key) {
            return i;
        }
        let i = self.scopes.len();
        self.scopes.push(Arc::new(Scope { name: key.1.clone(), version: key.2.clone(), ..Scope::default() }));
        self.scope_index.insert(key, i);
        i
    }
}

/// Maps one span; `Err` says why it is skipped.
fn map_span(wire: WireSpan, groups: &mut Groups) -> Result<(Span, (usize, usize)), String> {
    let trace_id = TraceId::from_bytes(wire.trace_id).map_err(|e| e.to_string())?;
    let span_id = SpanId::from_bytes(wire.id).map_err(|e| e.to_string())?;
    // A zero parent (the translator's empty id) or a self-reference is a root.
    let parent_span_id = wire.parent_id.and_then(|p| SpanId::from_bytes(p).ok()).filter(|p| *p != span_id);
    let mut tags = wire.tags;

    // Resource: the local service plus the tags that are resource attributes.
    let tag_service = tags.remove("service.name").unwrap_or_default();
    tags.remove(SERVICE_NAME_SOURCE);
    let service = match wire.local.as_ref().map(|l| l.service_name.as_str()) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => tag_service,
    };
    let mut resource_attrs = Vec::new();
    tags.retain(|k, v| {
        if is_resource_key(k) {
            resource_attrs.push((k.clone(), std::mem::take(v)));
            false
        } else {
            true
        }
    });
    let resource = groups.resource(service, resource_attrs);

    // Scope: the current keys win over the deprecated ones; all are consumed.
    let scope_name = tags.remove("otel.scope.name");
    let library_name = tags.remove("otel.library.name");
    let scope_version = tags.remove("otel.scope.version");
    let library_version = tags.remove("otel.library.version");
    let scope = groups.scope(
        resource,
        scope_name.or(library_name).unwrap_or_default(),
        scope_version.or(library_version).unwrap_or_default(),
    );

    let trace_state = tags.remove("w3c.tracestate").unwrap_or_default();
    let kind = match wire.kind {
        Some(kind) => kind,
        None => kind_from_tag(&mut tags),
    };
    let status = status_from_tags(&mut tags);
    let links = links_from_tags(&mut tags);

    let start = wire.timestamp_us.saturating_mul(1000);
    let end = start.saturating_add(wire.duration_us.saturating_mul(1000));
    let attributes = attributes(tags, wire.local.as_ref(), wire.remote.as_ref(), wire.timestamp_us == 0);
    let events = wire.annotations.into_iter().map(event).collect();

    let span = Span {
        trace_id,
        span_id,
        parent_span_id,
        trace_state,
        flags: 0,
        name: wire.name,
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes,
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        links,
        dropped_links_count: 0,
        status,
        resource: Arc::clone(&groups.resources[resource]),
        scope: Arc::clone(&groups.scopes[scope]),
    };
    Ok((span, (resource, scope)))
}

/// The Collector's tag naming the resource key the service name came from;
/// Sightline always uses `service.name`, so it is dropped.
const SERVICE_NAME_SOURCE: &str = "otlp.service.name.source";

/// Whether a tag is a resource attribute by semantic convention (the
/// OpenTelemetry Zipkin exporters copy resource attributes into tags).
fn is_resource_key(key: &str) -> bool {
    const EXACT: &[&str] = &[
        "service.namespace",
        "service.instance.id",
        "service.version",
        "faas.id",
        "faas.name",
        "faas.version",
        "faas.instance",
        "faas.max_memory",
        "opencensus.starttime",
        "opencensus.exporterversion",
        "opencensus.resourcetype",
    ];
    const PREFIXES: &[&str] = &[
        "telemetry.",
        "host.",
        "os.",
        "process.",
        "container.",
        "k8s.",
        "cloud.",
        "deployment.",
        "device.",
        "browser.",
        "webengine.",
        "heroku.",
        "aws.ecs.",
        "aws.eks.",
        "aws.log.",
    ];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Kind from a `span.kind` tag when the span has none (the tag is consumed
/// only when it names a kind).
fn kind_from_tag(tags: &mut BTreeMap<String, String>) -> SpanKind {
    let Some(kind) = tags.get("span.kind").and_then(|v| SpanKind::from_jaeger_name(v)) else {
        return SpanKind::Unspecified;
    };
    if kind != SpanKind::Unspecified {
        tags.remove("span.kind");
    }
    kind
}

/// `OK`/`ERROR`/`UNSET`, with or without the `STATUS_CODE_` prefix, any case.
fn parse_status_code(text: &str) -> Option<StatusCode> {
    let t = text.trim();
    let t = match t.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("STATUS_CODE_") => t.get(12..).unwrap_or_default(),
        _ => t,
    };
    if t.eq_ignore_ascii_case("OK") {
        Some(StatusCode::Ok)
    } else if t.eq_ignore_ascii_case("ERROR") {
        Some(StatusCode::Error)
    } else if t.eq_ignore_ascii_case("UNSET") {
        Some(StatusCode::Unset)
    } else {
        None
    }
}

fn status_from_tags(tags: &mut BTreeMap<String, String>) -> Status {
    let mut status = Status::default();
    let declared = tags.get("otel.status_code").and_then(|v| parse_status_code(v));
    if let Some(code) = declared {
        tags.remove("otel.status_code");
        status.code = code;
        if code == StatusCode::Error {
            status.message = tags.remove("otel.status_description").unwrap_or_default();
        }
    }
    if declared != Some(StatusCode::Ok)
        && let Some(value) = tags.get("error")
        && !value.trim().eq_ignore_ascii_case("false")
    {
        let value = tags.remove("error").unwrap_or_default();
        status.code = StatusCode::Error;
        if status.message.is_empty() && !value.trim().eq_ignore_ascii_case("true") {
            status.message = value;
        }
    }
    status
}

/// Links from the Collector's `otlp.link.N` tags
/// (`traceid|spanid|tracestate|{json attributes}|dropped`); a tag that does
/// not parse stays an attribute.
fn links_from_tags(tags: &mut BTreeMap<String, String>) -> Vec<Link> {
    let mut links = Vec::new();
    for i in 0..128 {
        let key = format!("otlp.link.{i}");
        let Some(text) = tags.get(&key) else { break };
        if let Some(link) = parse_link(text) {
            links.push(link);
            tags.remove(&key);
        }
    }
    links
}

fn parse_link(text: &str) -> Option<Link> {
    let parts: Vec<&str> = text.split('|').collect();
    let [trace, span, state, .., dropped] = parts.as_slice() else { return None };
    if parts.len() < 5 {
        return None;
    }
    let json = parts.get(3..parts.len() - 1)?.join("|");
    let attributes = json_object_attributes(&json)?;
    Some(Link {
        trace_id: trace.parse().ok()?,
        span_id: span.parse().ok()?,
        trace_state: (*state).to_owned(),
        attributes,
        dropped_attributes_count: dropped.parse().ok()?,
        flags: 0,
    })
}

/// Remaining tags as string attributes, then what the endpoints say (a tag
/// of the same key wins), then the absent-timestamp marker.
fn attributes(
    tags: BTreeMap<String, String>,
    local: Option<&WireEndpoint>,
    remote: Option<&WireEndpoint>,
    start_absent: bool,
) -> Vec<KeyValue> {
    let mut extra: Vec<KeyValue> = Vec::new();
    let mut add = |key: &'static str, value: Value| {
        if !tags.contains_key(key) {
            extra.push(KeyValue::new(key, value));
        }
    };
    if let Some(local) = local {
        if let Some(addr) = local.address() {
            add("network.local.address", Value::Str(addr.into()));
        }
        if let Some(port) = local.port {
            add("network.local.port", Value::Int(i64::from(port)));
        }
    }
    if let Some(remote) = remote {
        if !remote.service_name.is_empty() {
            add("peer.service", Value::Str(remote.service_name.clone().into()));
        }
        if let Some(addr) = remote.address() {
            add("network.peer.address", Value::Str(addr.into()));
        }
        if let Some(port) = remote.port {
            add("network.peer.port", Value::Int(i64::from(port)));
        }
    }
    if start_absent {
        add(START_TIME_ABSENT, Value::Bool(true));
    }
    let mut out = Vec::with_capacity(tags.len() + extra.len());
    out.extend(tags.into_iter().map(|(k, v)| KeyValue::new(k, v)));
    out.extend(extra);
    out
}

/// An annotation as an event: `{"name": {attributes}}` (the OpenTelemetry
/// Zipkin exporters' encoding) or `name|{attributes}|dropped` (the
/// Collector's) become a named event with attributes; any other value is
/// the name.
fn event(annotation: WireAnnotation) -> Event {
    let time_unix_nano = annotation.timestamp_us.saturating_mul(1000);
    let value = annotation.value;
    if let Some((name, attributes)) = otel_event(&value) {
        return Event { time_unix_nano, name, attributes, dropped_attributes_count: 0 };
    }
    if let Some((name, attributes, dropped)) = collector_event(&value) {
        return Event { time_unix_nano, name, attributes, dropped_attributes_count: dropped };
    }
    Event { time_unix_nano, name: value, attributes: Vec::new(), dropped_attributes_count: 0 }
}

fn otel_event(value: &str) -> Option<(String, Vec<KeyValue>)> {
    if !value.trim_start().starts_with('{') {
        return None;
    }
    let serde_json::Value::Object(map) = serde_json::from_str(value).ok()? else { return None };
    if map.len() != 1 {
        return None;
    }
    let (name, attrs) = map.into_iter().next()?;
    let serde_json::Value::Object(attrs) = attrs else { return None };
    Some((name, attrs.into_iter().map(|(k, v)| KeyValue { key: k.into(), value: json_value(v) }).collect()))
}

fn collector_event(value: &str) -> Option<(String, Vec<KeyValue>, u32)> {
    let parts: Vec<&str> = value.split('|').collect();
    let [name, .., dropped] = parts.as_slice() else { return None };
    if parts.len() < 3 {
        return None;
    }
    let dropped = dropped.parse().ok()?;
    let attributes = json_object_attributes(&parts.get(1..parts.len() - 1)?.join("|"))?;
    Some(((*name).to_owned(), attributes, dropped))
}

/// A JSON object's entries as attributes; `None` if it is not an object.
fn json_object_attributes(json: &str) -> Option<Vec<KeyValue>> {
    let serde_json::Value::Object(map) = serde_json::from_str(json).ok()? else { return None };
    Some(map.into_iter().map(|(k, v)| KeyValue { key: k.into(), value: json_value(v) }).collect())
}

/// A JSON value as an attribute value: integers stay integers, other
/// numbers are doubles, arrays and objects nest.
fn json_value(v: serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Empty,
        J::Bool(b) => Value::Bool(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => n.as_f64().map_or(Value::Empty, Value::Double),
        },
        J::String(s) => Value::Str(s.into()),
        J::Array(items) => Value::Array(items.into_iter().map(json_value).collect()),
        J::Object(map) => Value::Map(
            map.into_iter().map(|(k, v)| KeyValue { key: k.into(), value: json_value(v) }).collect(),
        ),
    }
}

/// Gives each shared span (a server span reusing its client's id) an id of
/// its own, derived from trace and span id so that a retried request maps
/// to the same id, makes the client span its parent, and re-parents the
/// spans of the same service in this request that pointed at the shared id.
fn uniquify_shared(entries: &mut [Entry]) {
    let mut renamed: HashMap<(TraceId, SpanId, String), SpanId> = HashMap::new();
    for e in entries.iter_mut().filter(|e| e.shared) {
        let old = e.span.span_id;
        let new = derived_span_id(&e.span.trace_id, old);
        renamed.insert((e.span.trace_id, old, e.span.service_name().to_owned()), new);
        e.span.span_id = new;
        e.span.parent_span_id = Some(old);
    }
    if renamed.is_empty() {
        return;
    }
    for e in entries.iter_mut().filter(|e| !e.shared) {
        let Some(parent) = e.span.parent_span_id else { continue };
        let key = (e.span.trace_id, parent, e.span.service_name().to_owned());
        if let Some(new) = renamed.get(&key) {
            e.span.parent_span_id = Some(*new);
        }
    }
}

/// A non-zero span id derived from `(trace, span)`, different from `span`.
pub(crate) fn derived_span_id(trace: &TraceId, span: SpanId) -> SpanId {
    let t = trace.as_bytes();
    let (mut hi, mut lo) = ([0u8; 8], [0u8; 8]);
    hi.copy_from_slice(&t[..8]);
    lo.copy_from_slice(&t[8..]);
    let old = u64::from_be_bytes(*span.as_bytes());
    let mut x = mix(u64::from_be_bytes(hi) ^ mix(u64::from_be_bytes(lo) ^ mix(old ^ 0x5a49_504b_494e_5348)));
    for _ in 0..8 {
        if x != old
            && let Ok(id) = SpanId::from_bytes(x.to_be_bytes())
        {
            return id;
        }
        x = mix(x);
    }
    // NOTE: unreachable in practice (eight mixes in a row hitting 0 or the
    // old id); any fixed non-zero id other than `old` keeps the invariant.
    let fallback = if old == 1 { 2u64 } else { 1u64 };
    SpanId::from_bytes(fallback.to_be_bytes()).unwrap_or(span)
}

/// splitmix64's finaliser: a fast, well-distributed 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
