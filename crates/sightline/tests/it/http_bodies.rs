//! Raw OTLP/HTTP bodies: JSON as the spec defines it, gzip, partial
//! success, and bad input that must get a 4xx and leave the server serving.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message as _;

use crate::harness::{Server, encode, gzip, hex, now_ns, request, span};

#[test]
fn otlp_json_with_uppercase_hex_and_string_int64_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let start = now_ns();
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"json-svc"}}}}]}},
        "scopeSpans":[{{"scope":{{"name":"raw"}},"spans":[
          {{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","name":"json-root","kind":2,
           "startTimeUnixNano":"{start}","endTimeUnixNano":{end},
           "attributes":[{{"key":"http.response.status_code","value":{{"intValue":"201"}}}},
                         {{"key":"ratio","value":{{"doubleValue":0.5}}}}],
           "status":{{"code":2,"message":"bad"}},"unknownField":{{"ignored":true}}}},
          {{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"EEE19B7EC3C1B174",
           "name":"json-child","kind":3,"startTimeUnixNano":{start},"endTimeUnixNano":"{end}"}}]}}]}}]}}"#,
        end = start + 2_000_000
    );
    let reply = server.post_traces("application/json", None, body.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.content_type.starts_with("application/json"), "{}", reply.content_type);
    assert_eq!(reply.text(), "{}");

    let trace = server.wait_trace("5b8efff798038103d269b633813fc60c", 2, Duration::from_secs(5));
    let root = trace["spans"].as_array().unwrap().iter().find(|s| s["operationName"] == "json-root").unwrap();
    assert_eq!(root["spanID"], "eee19b7ec3c1b174");
    assert_eq!(root["startTime"], start / 1000);
    assert_eq!(root["duration"], 2000);
    let tags = root["tags"].as_array().unwrap();
    assert!(
        tags.contains(
            &serde_json::json!({"key": "http.response.status_code", "type": "int64", "value": 201})
        )
    );
    assert!(tags.contains(&serde_json::json!({"key": "error", "type": "bool", "value": true})));
    let child =
        trace["spans"].as_array().unwrap().iter().find(|s| s["operationName"] == "json-child").unwrap();
    assert_eq!(child["references"][0]["spanID"], "eee19b7ec3c1b174");
}

#[test]
fn gzip_protobuf_is_stored_and_bad_ids_are_partially_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let t = [7u8; 16];
    let mut bad_trace = span([0; 16], [2; 8], None, "zero-trace", now_ns());
    bad_trace.trace_id = vec![0; 16];
    let mut short_span = span(t, [3; 8], None, "short-span", now_ns());
    short_span.span_id = vec![3; 5];
    let req = request(
        "gz-svc",
        vec![
            span(t, [1; 8], None, "gz-root", now_ns()),
            bad_trace,
            short_span,
            span(t, [4; 8], Some([1; 8]), "gz-child", now_ns()),
        ],
    );
    let reply = server.post_traces("application/x-protobuf", Some("gzip"), &gzip(&encode(&req)));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type, "application/x-protobuf");
    let resp = ExportTraceServiceResponse::decode(reply.body.as_slice()).unwrap();
    let partial = resp.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(partial.error_message.contains("trace id is all zeros"), "{}", partial.error_message);
    assert!(partial.error_message.contains("span id must be 8 bytes, got 5"), "{}", partial.error_message);
    let trace = server.wait_trace(&hex(&t), 2, Duration::from_secs(5));
    assert_eq!(trace["spans"].as_array().unwrap().len(), 2);
}

#[test]
fn bad_input_gets_4xx_with_a_message_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let valid = encode(&request("ok-svc", vec![span([9; 16], [1; 8], None, "after", now_ns())]));
    // A gzip bomb: 64 MiB of zeros, a few dozen KiB compressed.
    let bomb = crate::harness::gzip_level(&vec![0u8; 64 << 20], flate2::Compression::best());
    assert!(bomb.len() < 200_000);
    // (what, content type, content encoding, body, expected status)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("random protobuf", "application/x-protobuf", None, random, 400),
        ("truncated json", "application/json", None, br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8e"#.to_vec(), 400),
        ("bad gzip", "application/x-protobuf", Some("gzip"), b"\x1f\x8bnot really gzip".to_vec(), 400),
        ("gzip bomb", "application/x-protobuf", Some("gzip"), bomb, 413),
        ("wrong content type", "text/plain", None, valid.clone(), 415),
        (
            "non-hex id",
            "application/json",
            None,
            br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x"}]}]}]}"#.to_vec(),
            400,
        ),
    ];
    for (what, ct, enc, body, want) in cases {
        let reply = server.post_traces(ct, enc, &body);
        assert_eq!(reply.status, want, "{what}: {}", reply.text());
        assert!(!reply.body.is_empty(), "{what}: the reply must say what is wrong");
        if ct == "application/json" {
            let status: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
            assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {status}");
        }
    }
    let get = crate::harness::agent().get(&format!("{}/v1/traces", server.otlp_http)).call().unwrap();
    assert_eq!(get.status(), 405);

    let reply = server.post_traces("application/x-protobuf", None, &valid);
    assert_eq!(reply.status, 200);
    server.wait_trace(&hex(&[9; 16]), 1, Duration::from_secs(5));
    let (status, health) = server.get_json("/health");
    assert_eq!(status, 200, "{health}");
}
