//! The Zipkin v2 protobuf messages (`zipkin.proto3`), as prost structs.
//!
//! Written by hand to match
//! <https://github.com/openzipkin/zipkin-api/blob/master/zipkin.proto>
//! field for field (numbers and wire types are what matter), so no
//! `protoc` or build script is needed. Only decoding is used; `tags` is a
//! `BTreeMap` so attributes come out in a stable (key) order.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use sightline_model::SpanKind;

use crate::translate::{WireAnnotation, WireEndpoint, WireSpan};

/// `zipkin.proto3.Span`: a single-host view of an operation.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Span {
    /// 8 or 16 bytes, big endian.
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) trace_id: Vec<u8>,
    /// Absent (empty) for a root span, else 8 bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) parent_id: Vec<u8>,
    /// 8 bytes.
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) id: Vec<u8>,
    /// `Kind`: 0 unspecified, 1 client, 2 server, 3 producer, 4 consumer.
    #[prost(enumeration = "Kind", tag = "4")]
    pub(crate) kind: i32,
    /// Operation name.
    #[prost(string, tag = "5")]
    pub(crate) name: String,
    /// Epoch microseconds of the start; 0 when absent.
    #[prost(fixed64, tag = "6")]
    pub(crate) timestamp: u64,
    /// Duration in microseconds; 0 when absent.
    #[prost(uint64, tag = "7")]
    pub(crate) duration: u64,
    /// The host that recorded the span.
    #[prost(message, optional, tag = "8")]
    pub(crate) local_endpoint: Option<Endpoint>,
    /// The other side of an RPC or messaging span.
    #[prost(message, optional, tag = "9")]
    pub(crate) remote_endpoint: Option<Endpoint>,
    /// Timestamped events.
    #[prost(message, repeated, tag = "10")]
    pub(crate) annotations: Vec<Annotation>,
    /// String tags.
    #[prost(btree_map = "string, string", tag = "11")]
    pub(crate) tags: BTreeMap<String, String>,
    /// Force-sampled.
    #[prost(bool, tag = "12")]
    pub(crate) debug: bool,
    /// Contributes to a span started by another tracer (same span id).
    #[prost(bool, tag = "13")]
    pub(crate) shared: bool,
}

/// `zipkin.proto3.Span.Kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum Kind {
    /// Absent.
    SpanKindUnspecified = 0,
    /// Client side of an RPC.
    Client = 1,
    /// Server side of an RPC.
    Server = 2,
    /// Message producer.
    Producer = 3,
    /// Message consumer.
    Consumer = 4,
}

/// `zipkin.proto3.Endpoint`: the network context of a node.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Endpoint {
    /// Service name, possibly empty.
    #[prost(string, tag = "1")]
    pub(crate) service_name: String,
    /// 4 bytes when present.
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) ipv4: Vec<u8>,
    /// 16 bytes when present.
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) ipv6: Vec<u8>,
    /// Port; 0 when absent.
    #[prost(int32, tag = "4")]
    pub(crate) port: i32,
}

/// `zipkin.proto3.Annotation`: an event with a timestamp.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Annotation {
    /// Epoch microseconds.
    #[prost(fixed64, tag = "1")]
    pub(crate) timestamp: u64,
    /// Usually a short code, e.g. `ws`.
    #[prost(string, tag = "2")]
    pub(crate) value: String,
}

/// `zipkin.proto3.ListOfSpans`: the body of `POST /api/v2/spans`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListOfSpans {
    /// Spans of possibly different traces, in no particular order.
    #[prost(message, repeated, tag = "1")]
    pub(crate) spans: Vec<Span>,
}

/// Decodes a `ListOfSpans`; the error names the span and field.
pub(crate) fn decode(body: bytes::Bytes) -> Result<Vec<WireSpan>, String> {
    let list = <ListOfSpans as prost::Message>::decode(body)
        .map_err(|e| format!("invalid Zipkin protobuf (expected zipkin.proto3.ListOfSpans): {e}"))?;
    list.spans
        .into_iter()
        .enumerate()
        .map(|(i, s)| wire_span(s).map_err(|e| format!("spans[{i}].{e}")))
        .collect()
}

fn wire_span(s: Span) -> Result<WireSpan, String> {
    let trace_id: [u8; 16] = match s.trace_id.len() {
        16 => s.trace_id.as_slice().try_into().map_err(|_| "trace_id: bad length".to_owned())?,
        8 => {
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&s.trace_id);
            id
        }
        n => return Err(format!("trace_id: must be 8 or 16 bytes, got {n}")),
    };
    let id: [u8; 8] =
        s.id.as_slice().try_into().map_err(|_| format!("id: must be 8 bytes, got {}", s.id.len()))?;
    let parent_id = match s.parent_id.len() {
        0 => None,
        n => Some(
            <[u8; 8]>::try_from(s.parent_id.as_slice())
                .map_err(|_| format!("parent_id: must be empty or 8 bytes, got {n}"))?,
        ),
    };
    let kind = match Kind::try_from(s.kind) {
        Ok(Kind::Client) => Some(SpanKind::Client),
        Ok(Kind::Server) => Some(SpanKind::Server),
        Ok(Kind::Producer) => Some(SpanKind::Producer),
        Ok(Kind::Consumer) => Some(SpanKind::Consumer),
        Ok(Kind::SpanKindUnspecified) | Err(_) => None,
    };
    Ok(WireSpan {
        trace_id,
        id,
        parent_id,
        kind,
        name: s.name,
        timestamp_us: s.timestamp,
        duration_us: s.duration,
        local: s.local_endpoint.map(endpoint),
        remote: s.remote_endpoint.map(endpoint),
        annotations: s
            .annotations
            .into_iter()
            .map(|a| WireAnnotation { timestamp_us: a.timestamp, value: a.value })
            .collect(),
        tags: s.tags,
        debug: s.debug,
        shared: s.shared,
    })
}

/// Addresses of the wrong length are ignored, as Zipkin does.
fn endpoint(e: Endpoint) -> WireEndpoint {
    WireEndpoint {
        service_name: e.service_name,
        ipv4: <[u8; 4]>::try_from(e.ipv4.as_slice()).ok().map(Ipv4Addr::from),
        ipv6: <[u8; 16]>::try_from(e.ipv6.as_slice()).ok().map(Ipv6Addr::from),
        port: u16::try_from(e.port).ok().filter(|p| *p > 0),
    }
}
