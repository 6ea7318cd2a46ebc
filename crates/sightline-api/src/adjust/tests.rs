//! The adjusters against Jaeger's own test tables (ported from
//! jaegertracing/jaeger `…/jaegerquery/internal/adjuster/clockskew_test.go`
//! and `spaniduniquifier_test.go`, Apache-2.0, The Jaeger Authors).

use std::sync::Arc;

use sightline_model::{Event, KeyValue, Resource, Scope, Span, SpanId, SpanKind, TraceId, Value};

use super::Adjusted;
use crate::duration::format_go_duration;

const MS: u64 = 1_000_000;

struct Proto {
    id: u8,
    parent: u8,
    start_ms: u64,
    duration_ms: u64,
    events_ms: Vec<u64>,
    host: &'static str,
    adjusted_ms: u64,
    adjusted_events_ms: Vec<u64>,
}

fn proto(id: u8, parent: u8, start_ms: u64, duration_ms: u64, host: &'static str, adjusted_ms: u64) -> Proto {
    Proto {
        id,
        parent,
        start_ms,
        duration_ms,
        events_ms: vec![],
        host,
        adjusted_ms,
        adjusted_events_ms: vec![],
    }
}

/// Jaeger's `[8]byte{n}`: the first byte set.
fn sid(n: u8) -> SpanId {
    let mut b = [0u8; 8];
    b[0] = n;
    SpanId::from_bytes(b).unwrap()
}

fn span_of(p: &Proto) -> Span {
    // Jaeger's test puts host.ip in a one-element list.
    let host = if p.host.is_empty() {
        vec![]
    } else {
        vec![KeyValue { key: "host.ip".into(), value: Value::Array(vec![Value::from(p.host)]) }]
    };
    Span {
        trace_id: TraceId::from_bytes([0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
        span_id: sid(p.id),
        parent_span_id: (p.parent != 0).then(|| sid(p.parent)),
        trace_state: String::new(),
        flags: 0,
        name: String::new(),
        kind: SpanKind::Unspecified,
        start_time_unix_nano: p.start_ms * MS,
        end_time_unix_nano: (p.start_ms + p.duration_ms) * MS,
        attributes: vec![],
        dropped_attributes_count: 0,
        events: p
            .events_ms
            .iter()
            .map(|t| Event {
                time_unix_nano: t * MS,
                name: String::new(),
                attributes: vec![],
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: 0,
        links: vec![],
        dropped_links_count: 0,
        status: Default::default(),
        resource: Arc::new(Resource::new(host, 0, String::new())),
        scope: Arc::new(Scope::default()),
    }
}

#[test]
fn clock_skew_follows_jaegers_table() {
    let second = 1_000 * MS;
    let cases: Vec<(&str, Vec<Proto>, &str, u64)> = vec![
        (
            "single span with bad parent",
            vec![proto(1, 99, 0, 100, "a", 0)],
            // Jaeger's [8]byte{0,…,0,99}; ours is [8]byte{99}.
            "parent span ID=6300000000000000 is not in the trace; skipping clock skew adjustment",
            0,
        ),
        ("single span with empty host key", vec![proto(1, 0, 0, 100, "", 0)], "", 0),
        (
            "two spans with the same ID",
            vec![proto(1, 0, 0, 100, "a", 0), proto(1, 0, 0, 100, "a", 0)],
            "duplicate span IDs; skipping clock skew adjustment",
            0,
        ),
        (
            "parent-child on the same host",
            vec![proto(1, 0, 0, 100, "a", 0), proto(2, 1, 10, 50, "a", 10)],
            "",
            0,
        ),
        (
            "do not adjust parent-child on the same host",
            vec![proto(1, 0, 10, 100, "a", 10), proto(2, 1, 0, 50, "a", 0)],
            "",
            0,
        ),
        (
            "do not adjust child that fits inside parent",
            vec![proto(1, 0, 10, 100, "a", 10), proto(2, 1, 20, 50, "b", 20)],
            "",
            0,
        ),
        (
            "do not adjust child that is longer than parent",
            vec![proto(1, 0, 10, 100, "a", 10), proto(2, 1, 20, 150, "b", 20)],
            "",
            0,
        ),
        (
            "do not apply positive adjustment due to max skew adjustment",
            vec![proto(1, 0, 10, 100, "a", 10), proto(2, 1, 0, 50, "b", 0)],
            "max clock skew adjustment delta of 10ms exceeded; not applying calculated delta of 35ms",
            10 * MS,
        ),
        (
            "do not apply negative adjustment due to max skew adjustment",
            vec![proto(1, 0, 10, 100, "a", 10), proto(2, 1, 80, 50, "b", 80)],
            "max clock skew adjustment delta of 10ms exceeded; not applying calculated delta of -45ms",
            10 * MS,
        ),
        (
            "do not apply adjustment due to disabled adjustment",
            vec![proto(1, 0, 10, 100, "a", 10), proto(2, 1, 0, 50, "b", 0)],
            "clock skew adjustment disabled; not applying calculated delta of 35ms",
            0,
        ),
        (
            "adjust child starting before parent",
            vec![
                proto(1, 0, 10, 100, "a", 10),
                Proto {
                    events_ms: vec![5, 10],
                    adjusted_events_ms: vec![40, 45],
                    ..proto(2, 1, 0, 50, "b", 35)
                },
            ],
            "",
            second,
        ),
        (
            "adjust child starting before parent even if it is longer",
            vec![proto(1, 0, 10, 100, "a", 10), proto(2, 1, 0, 150, "b", 10)],
            "",
            second,
        ),
        (
            "adjust child ending after parent but being shorter",
            vec![
                proto(1, 0, 10, 100, "a", 10),
                proto(2, 1, 50, 70, "b", 25),
                Proto {
                    events_ms: vec![65, 70],
                    adjusted_events_ms: vec![40, 45],
                    ..proto(3, 2, 60, 20, "b", 35)
                },
            ],
            "",
            second,
        ),
    ];
    for (description, protos, err, max) in cases {
        let mut adjusted = Adjusted::raw(protos.iter().map(span_of).collect());
        adjusted.correct_clock_skew(max);
        let mut got_err = String::new();
        for (i, p) in protos.iter().enumerate() {
            let span = &adjusted.spans[i];
            let warnings = &adjusted.warnings[i];
            assert_eq!(span.span_id, sid(p.id), "{description}");
            if err.is_empty() {
                if p.adjusted_ms == p.start_ms {
                    assert!(warnings.is_empty(), "{description}: {warnings:?}");
                } else {
                    assert_eq!(warnings.len(), 1, "{description}: {warnings:?}");
                }
            } else if let Some(w) = warnings.first() {
                got_err = w.clone();
            }
            assert_eq!(
                span.start_time_unix_nano,
                p.adjusted_ms * MS,
                "{description}: start of span {}",
                p.id
            );
            let events: Vec<u64> = span.events.iter().map(|e| e.time_unix_nano / MS).collect();
            let want = if p.adjusted_events_ms.is_empty() { &p.events_ms } else { &p.adjusted_events_ms };
            assert_eq!(&events, want, "{description}: events of span {}", p.id);
        }
        assert_eq!(got_err, err, "{description}");
    }
}

#[test]
fn shifts_are_reported_in_go_duration_text() {
    let mut adjusted =
        Adjusted::raw(vec![span_of(&proto(1, 0, 10, 100, "a", 10)), span_of(&proto(2, 1, 0, 50, "b", 35))]);
    adjusted.correct_clock_skew(1_000 * MS);
    assert_eq!(adjusted.warnings[1], ["This span's timestamps were adjusted by 35ms"]);
    for (nanos, text) in [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5\u{b5}s"),
        (35 * MS as i64, "35ms"),
        (-45 * MS as i64, "-45ms"),
        (1_000_000_001, "1.000000001s"),
        (120_000_000_000, "2m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (i64::MIN, "-2562047h47m16.854775808s"),
    ] {
        assert_eq!(format_go_duration(nanos), text);
    }
}

/// `spaniduniquifier_test.go`: a Zipkin-style client/server pair sharing
/// span id 1, with a child of the server that has 1 as its parent.
#[test]
fn a_server_span_sharing_its_clients_id_gets_a_new_one() {
    let client_id = SpanId::from_bytes([0, 0, 0, 0, 0, 0, 0, 1]).unwrap();
    let other_id = SpanId::from_bytes([0, 0, 0, 0, 0, 0, 0, 3]).unwrap();
    let mut client = span_of(&proto(9, 0, 0, 10, "", 0));
    client.span_id = client_id;
    client.kind = SpanKind::Client;
    let mut server = client.clone();
    server.kind = SpanKind::Server;
    server.name = "server".into();
    let mut child = client.clone();
    child.kind = SpanKind::Internal;
    child.span_id = other_id;
    child.parent_span_id = Some(client_id);
    let adjusted = Adjusted::new(vec![client, server, child], 0);
    let ids: Vec<String> = adjusted.spans.iter().map(|s| s.span_id.to_hex()).collect();
    let parents: Vec<Option<String>> =
        adjusted.spans.iter().map(|s| s.parent_span_id.map(|p| p.to_hex())).collect();
    // The server gets the next free id (2) and the shared id as parent;
    // the child follows the server.
    assert_eq!(ids, ["0000000000000001", "0000000000000002", "0000000000000003"]);
    assert_eq!(parents, [None, Some("0000000000000001".into()), Some("0000000000000002".into())]);
}

#[test]
fn identical_copies_of_a_span_are_removed_but_different_spans_with_one_id_are_kept() {
    let a = span_of(&proto(1, 0, 0, 10, "a", 0));
    let mut renamed = a.clone();
    renamed.name = "other".into();
    let adjusted = Adjusted::new(vec![a.clone(), a.clone(), renamed], 0);
    assert_eq!(adjusted.spans.len(), 2);
    assert_eq!(adjusted.warnings.len(), 2);
    assert_eq!(adjusted.warnings[1], ["duplicate span IDs; skipping clock skew adjustment"]);
    // `raw` keeps everything as stored.
    assert_eq!(Adjusted::raw(vec![a.clone(), a]).spans.len(), 2);
}
