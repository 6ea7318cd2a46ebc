//! Redaction of batches still in their bytes: the in-place check must
//! agree with the model's (a clean batch passes undecoded, anything to
//! redact goes down the decoding path).

use std::sync::Arc;

use regex::Regex;
use sightline_model::{
    Batch, Event, KeyValue, Link, Scope, Span, SpanKind, Status, StatusCode, TracesConsumer, Value,
};

use super::{Config, RedactionProcessor, Redactor};
use crate::metrics::Metrics;
use crate::processor::spanmetrics::tests::{Sink, on_the_wire, resource, span};

fn clean() -> Span {
    let mut s = span(
        &resource("svc", vec![KeyValue::new("host.name", "h1")]),
        "GET /users",
        SpanKind::Server,
        1,
        1,
        1,
    );
    s.attributes = vec![
        KeyValue::new("http.route", "/users/{id}"),
        KeyValue::new("order.id", "4111-1111"),
        KeyValue::new("tags", Value::Array(vec!["a".into(), Value::Int(3)])),
        KeyValue::new("ctx", Value::Map(vec![KeyValue::new("region", "eu")])),
    ];
    s.status = Status { code: StatusCode::Error, message: "timeout".into() };
    s.events = vec![Event {
        time_unix_nano: 5,
        name: "retry".into(),
        attributes: vec![KeyValue::new("attempt", 2i64)],
        dropped_attributes_count: 0,
    }];
    s.links = vec![Link {
        trace_id: s.trace_id,
        span_id: s.span_id,
        trace_state: String::new(),
        attributes: vec![KeyValue::new("link.kind", "retry")],
        dropped_attributes_count: 0,
        flags: 0,
    }];
    s
}

/// The clean span with one thing to redact in each place redaction looks.
fn dirty_variants() -> Vec<(&'static str, Span)> {
    let secret = "mail bob@example.com";
    let with = |f: &dyn Fn(&mut Span)| {
        let mut s = clean();
        f(&mut s);
        s
    };
    vec![
        ("span attribute value", with(&|s| s.attributes.push(KeyValue::new("note", secret)))),
        ("blocked span key", with(&|s| s.attributes.push(KeyValue::new("db.password", "x")))),
        ("joined key", with(&|s| s.attributes.push(KeyValue::new("apikey", "x")))),
        (
            "array element",
            with(&|s| s.attributes[2] = KeyValue::new("tags", Value::Array(vec![secret.into()]))),
        ),
        (
            "map key",
            with(&|s| {
                s.attributes[3] = KeyValue::new("ctx", Value::Map(vec![KeyValue::new("session_token", "t")]))
            }),
        ),
        (
            "card in a map value",
            with(&|s| {
                s.attributes[3] =
                    KeyValue::new("ctx", Value::Map(vec![KeyValue::new("c", "4111 1111 1111 1111")]))
            }),
        ),
        ("span name", with(&|s| s.name = "login bob@example.com".into())),
        ("status message", with(&|s| s.status.message = "Bearer abc.def".into())),
        ("event name", with(&|s| s.events[0].name = secret.into())),
        ("event attribute", with(&|s| s.events[0].attributes.push(KeyValue::new("auth", "x")))),
        ("link attribute", with(&|s| s.links[0].attributes.push(KeyValue::new("user.email", "x")))),
        (
            "resource attribute",
            with(&|s| s.resource = resource("svc", vec![KeyValue::new("deploy.secret", "s")])),
        ),
        (
            "scope attribute",
            with(&|s| {
                s.scope =
                    Arc::new(Scope { attributes: vec![KeyValue::new("note", secret)], ..Scope::default() })
            }),
        ),
    ]
}

fn configs() -> Vec<(&'static str, Config)> {
    vec![
        ("default", Config::default()),
        (
            "blocked value pattern",
            Config { blocked_values: vec![Regex::new("timeout").unwrap()], ..Config::default() },
        ),
        (
            "allow list",
            Config {
                allowed_keys: Some(vec!["http.route".into(), "service.name".into()]),
                ..Config::default()
            },
        ),
    ]
}

#[test]
fn the_check_in_place_agrees_with_the_model_check() {
    for (config_name, config) in configs() {
        let r = Redactor::new(config);
        let mut cases = vec![("clean", clean())];
        cases.extend(dirty_variants());
        for (case, s) in cases {
            // A clean span first: the secret is not in the first span.
            let spans = vec![clean(), s];
            let bytes = Batch::from_spans(spans.clone()).otlp_bytes().clone();
            let model = r.batch_needs(&spans);
            assert_eq!(r.request_needs(&bytes), model, "{config_name}: {case}");
            let expected = match (config_name, case) {
                ("default", "clean") => false,
                // The pattern matches the clean span's status message; the
                // allow list removes its other keys.
                _ => true,
            };
            assert_eq!(model, expected, "{config_name}: {case}");
        }
    }
}

#[tokio::test]
async fn batches_in_their_bytes_pass_undecoded_when_clean_and_redact_as_decoded_ones() {
    let sink = Arc::new(Sink::default());
    let p =
        RedactionProcessor::new("redaction", Config::default(), sink.clone(), Arc::new(Metrics::default()));
    let batch = on_the_wire(vec![clean(), clean()]);
    let bytes = batch.otlp_bytes().clone();
    p.consume_traces(batch).await.unwrap();
    {
        let out = &sink.batches.lock()[0];
        assert!(out.decoded_spans().is_none(), "a clean batch is not decoded");
        assert_eq!(out.otlp_bytes().as_ptr(), bytes.as_ptr(), "nor re-encoded");
    }
    for (case, dirty) in dirty_variants() {
        let spans = vec![clean(), dirty];
        p.consume_traces(Batch::from_spans(spans.clone())).await.unwrap();
        p.consume_traces(on_the_wire(spans)).await.unwrap();
        let batches = sink.batches.lock();
        let [.., model, wire] = batches.as_slice() else { unreachable!() };
        assert_eq!(format!("{:?}", wire.spans()), format!("{:?}", model.spans()), "{case}");
        assert!(wire.decoded_spans().is_some(), "{case}: redacted through the model");
    }
}
