use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use prost::Message as _;
use sightline_model::{
    Batch, ConsumeError, Event, KeyValue, Resource, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
    TracesConsumer, Value, otlp,
};

use crate::Metrics;
use crate::config::{Context, Problem, parse};
use crate::processor::{attributes, batch, probabilistic, redaction, tail};
use crate::signal::Unit;

/// Records batches; can be told to refuse.
#[derive(Default)]
struct Recorder {
    batches: Mutex<Vec<Batch>>,
    refuse: Mutex<Option<ConsumeError>>,
}

impl Recorder {
    fn spans(&self) -> Vec<Span> {
        self.batches.lock().iter().flat_map(|b| b.spans().to_vec()).collect()
    }
}

#[async_trait]
impl TracesConsumer for Recorder {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        if let Some(e) = self.refuse.lock().clone() {
            return Err(e);
        }
        // The WAL relies on this invariant: check it at every stage's output.
        let decoded = otlp::decode_request(
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(
                batch.otlp_bytes().clone(),
            )
            .expect("batch bytes decode"),
        );
        assert_eq!(decoded.spans, batch.spans(), "otlp bytes must encode exactly the spans");
        self.batches.lock().push(batch);
        Ok(())
    }
}

fn tid(n: u64) -> TraceId {
    // Spread ids over the whole randomness space (splitmix64).
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.wrapping_add(1).to_be_bytes());
    b[8..].copy_from_slice(&z.to_be_bytes());
    TraceId::from_bytes(b).unwrap()
}

fn span(trace: u64, id: u64, parent: Option<u64>, attrs: Vec<KeyValue>) -> Span {
    Span::test(tid(trace), SpanId::from_bytes((id + 1).to_be_bytes()).unwrap(), "op")
        .with_parent(parent.map(|p| SpanId::from_bytes((p + 1).to_be_bytes()).unwrap()))
        .with_flags(0x101)
        .with_kind(SpanKind::Server)
        .with_times(1_000, 2_000)
        .with_attributes(attrs)
        .with_resource(&Arc::new(Resource::new(vec![KeyValue::new("service.name", "svc")], 0, String::new())))
}

pub(crate) fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::default())
}

/// A batch processor config with room for 8 queued batches, 2 in flight.
pub(crate) fn batch_config(send_batch_size: usize, timeout: Duration) -> batch::Config {
    batch::Config { send_batch_size, timeout, queue_batches: 8, max_in_flight: 2 }
}

/// An attributes processor config that deletes `key` from every item.
pub(crate) fn delete_attribute(key: &str) -> attributes::Config {
    attributes::Config {
        actions: vec![attributes::KeyAction {
            key: Some(key.into()),
            pattern: None,
            action: attributes::Action::Delete,
        }],
        include: None,
        exclude: None,
    }
}

/// (tenant, items) of each unit, sorted: what the tenant tests compare.
pub(crate) fn tenants_of<U: Unit>(units: &[U]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = units.iter().map(|u| (u.tenant().to_string(), u.count())).collect();
    out.sort();
    out
}

fn ctx() -> Context {
    Context { data_dir: "/tmp/sl".into(), memory_limit: 256 << 20, max_tenants: 64 }
}

fn problems(text: &str) -> Vec<String> {
    let table: toml::Table = toml::from_str(text).unwrap();
    parse(&table, &ctx()).err().unwrap_or_default().iter().map(Problem::to_string).collect()
}

#[test]
fn config_defaults_and_a_full_example_parse() {
    let c = parse(&toml::Table::new(), &ctx()).unwrap();
    assert_eq!(c.pipelines[0].processors, vec!["memory_limiter", "redaction", "spanmetrics", "servicegraph"]);
    assert_eq!(c.pipelines[0].exporters, vec!["store"]);

    let text = r#"
        [processors.batch]
        send_batch_size = 100
        timeout = "50ms"
        [processors."attributes/env"]
        actions = [{ key = "env", value = "prod", action = "upsert" }, { pattern = "^tmp\\.", action = "delete" }]
        include = { services = ["svc"] }
        [processors.tail_sampling]
        decision_wait = "2s"
        [[processors.tail_sampling.policies]]
        name = "errors"
        type = "status_code"
        status_codes = ["ERROR"]
        [[processors.tail_sampling.policies]]
        name = "both"
        type = "and"
        and_sub_policy = [{ type = "latency", threshold = "1s" }, { type = "probabilistic", sampling_percentage = 10 }]
        [exporters."otlp/backup"]
        endpoint = "http://127.0.0.1:4317"
        queue_max_size = "64MiB"
        headers = { "x-api-key" = "k" }
        [exporters.debug]
        verbosity = "detailed"
        [service.pipelines.traces]
        receivers = ["otlp"]
        processors = ["memory_limiter", "attributes/env", "tail_sampling", "batch"]
        exporters = ["store", "otlp/backup", "debug"]
    "#;
    let c = parse(&toml::from_str(text).unwrap(), &ctx()).unwrap();
    assert_eq!(c.pipelines.len(), 1);
    assert_eq!(c.pipelines[0].exporters, vec!["store", "otlp/backup", "debug"]);
    match c.exporters.get("otlp/backup").and_then(|e| e.settings::<crate::exporter::otlp::Config>()) {
        Some(o) => {
            assert_eq!(o.queue_max_bytes, 64 << 20);
            assert_eq!(o.queue_dir, std::path::PathBuf::from("/tmp/sl/queues/otlp_backup"));
            assert_eq!(o.headers, vec![("x-api-key".to_string(), "k".to_string())]);
            // Each tenant's requests name it in X-Scope-OrgID; as many
            // tenant queues as --max-tenants (the context's).
            assert_eq!(o.tenant_header, "X-Scope-OrgID");
            assert_eq!(o.max_tenants, 64);
        }
        other => panic!("{other:?}"),
    }
    let text = "[exporters.otlp]\nendpoint = \"http://h:4317\"\ntenant_header = \"X-Tenant\"\n";
    let small = parse(&toml::from_str(text).unwrap(), &Context { max_tenants: 5, ..ctx() }).unwrap();
    let o = small.exporters.get("otlp").and_then(|e| e.settings::<crate::exporter::otlp::Config>()).unwrap();
    assert_eq!((o.tenant_header.as_str(), o.max_tenants), ("X-Tenant", 5));
    let text = "[exporters.otlp]\nendpoint = \"http://h:4317\"\ntenant_header = \"no spaces\"\n";
    let problems = parse(&toml::from_str(text).unwrap(), &ctx()).unwrap_err();
    assert!(problems.iter().any(|p| p.to_string().contains("tenant_header")), "{problems:?}");
    match c.processors.get("tail_sampling").and_then(|p| p.settings::<tail::Config>()) {
        Some(t) => {
            assert_eq!(t.decision_wait, Duration::from_secs(2));
            assert_eq!(t.policies.len(), 2);
            assert!(matches!(&t.policies[1].1, tail::Policy::And(subs) if subs.len() == 2));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn config_reports_every_problem_with_its_path() {
    let got = problems(
        r#"
        [processors.batch]
        send_batch_sise = 10
        timeout = "soon"
        [processors.bach2]
        [processors.tail_sampling]
        [[processors.tail_sampling.policies]]
        type = "latancy"
        [exporters."otlp/x"]
        protocol = "carrier-pigeon"
        [service.pipelines.traces]
        receivers = ["otlp"]
        processors = ["batch", "memory_limiter", "redactoin"]
        exporters = []
    "#,
    );
    let expected = vec![
        "processors.bach2: unknown type \"bach2\" (did you mean \"batch\"?); known: memory_limiter, batch, probabilistic_sampler, tail_sampling, attributes, redaction, spanmetrics, servicegraph",
        "processors.batch.timeout: invalid duration \"soon\": expected e.g. \"200ms\", \"10s\", \"1m\"",
        "processors.batch.send_batch_sise: unknown setting; did you mean \"send_batch_size\"?",
        "processors.tail_sampling.policies[0].type: unknown type \"latancy\" (did you mean \"latency\"?); known: always_sample, status_code, latency, string_attribute, numeric_attribute, boolean_attribute, probabilistic, rate_limiting, slower_than_p99, and",
        "exporters.otlp/x.endpoint: required: the target, e.g. \"http://127.0.0.1:4317\"",
        "exporters.otlp/x.protocol: unknown type \"carrier-pigeon\"; known: grpc, http/protobuf",
        "service.pipelines.traces.processors[2]: unknown processor \"redactoin\" (did you mean \"redaction\"?); define it under [processors.\"redactoin\"] or use one of: batch, memory_limiter, redaction, servicegraph, spanmetrics, tail_sampling",
        "service.pipelines.traces.exporters: a pipeline needs at least one exporter, e.g. [\"store\"]",
        "service.pipelines.traces.processors[1]: memory_limiter must come first, so it refuses data before other processors spend memory on it",
    ];
    assert_eq!(got, expected);
}

#[tokio::test]
async fn batch_merges_waits_for_downstream_and_shares_its_answer() {
    let rec = Arc::new(Recorder::default());
    let cfg = batch_config(10, Duration::from_millis(50));
    let b = Arc::new(batch::BatchProcessor::<Batch>::new("batch", &cfg, rec.clone(), metrics()));
    let sends = (0..5u64).map(|i| {
        let b = Arc::clone(&b);
        async move {
            b.consume_traces(Batch::from_spans(vec![
                span(i, i * 10, None, vec![]),
                span(i, i * 10 + 1, Some(i * 10), vec![]),
            ]))
            .await
        }
    });
    let results = futures_util::future::join_all(sends).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(rec.batches.lock().len(), 1, "5 batches of 2 spans merge into one of 10");
    assert_eq!(rec.spans().len(), 10);

    // A refusal downstream reaches every sender of the merged batch.
    *rec.refuse.lock() =
        Some(ConsumeError::Unavailable { reason: "down".into(), retry_after: Duration::from_secs(3) });
    let a = b.consume_traces(Batch::from_spans(vec![span(50, 500, None, vec![])]));
    let c = b.consume_traces(Batch::from_spans(vec![span(51, 510, None, vec![])]));
    let (a, c) = tokio::join!(a, c);
    assert!(
        matches!(a, Err(ConsumeError::Unavailable { .. }))
            && matches!(c, Err(ConsumeError::Unavailable { .. }))
    );
    *rec.refuse.lock() = None;

    // Shutdown sends what waits.
    let pending = tokio::spawn({
        let b = Arc::clone(&b);
        async move { b.consume_traces(Batch::from_spans(vec![span(60, 600, None, vec![])])).await }
    });
    tokio::task::yield_now().await;
    crate::Component::shutdown(b.as_ref()).await;
    assert!(pending.await.unwrap().is_ok());
    assert_eq!(rec.spans().len(), 11);
    assert!(matches!(
        b.consume_traces(Batch::from_spans(vec![span(61, 610, None, vec![])])).await,
        Err(ConsumeError::Unavailable { .. })
    ));
}

#[test]
fn probabilistic_thresholds_are_written_the_otel_way() {
    assert_eq!(probabilistic::threshold(100.0), 0);
    assert_eq!(probabilistic::threshold(50.0), 1 << 55);
    assert_eq!(probabilistic::threshold_text(probabilistic::threshold(50.0)), "8");
    assert_eq!(probabilistic::threshold_text(probabilistic::threshold(25.0)), "c");
    assert_eq!(probabilistic::threshold_text(0), "0");
    assert_eq!(
        probabilistic::with_threshold("vendor=x,ot=rv:abcdef01234567;th:4", "c"),
        "ot=th:c;rv:abcdef01234567,vendor=x"
    );
    assert_eq!(probabilistic::with_threshold("", "8"), "ot=th:8");
}

#[tokio::test]
async fn probabilistic_keeps_the_share_consistently_and_honours_parents() {
    let run = |pct: f64| async move {
        let rec = Arc::new(Recorder::default());
        let s = probabilistic::ProbabilisticSampler::new(
            "p",
            &probabilistic::Config { sampling_percentage: pct },
            rec.clone(),
            metrics(),
        );
        let spans: Vec<Span> = (0..10_000).map(|i| span(i, i, None, vec![])).collect();
        s.consume_traces(Batch::from_spans(spans)).await.unwrap();
        rec.spans()
    };
    let kept = run(25.0).await;
    assert!((2_300..2_700).contains(&kept.len()), "kept {} of 10000 at 25%", kept.len());
    assert!(kept.iter().all(|s| s.trace_state == "ot=th:c"));
    let again = run(25.0).await;
    assert_eq!(
        kept.iter().map(|s| s.trace_id).collect::<Vec<_>>(),
        again.iter().map(|s| s.trace_id).collect::<Vec<_>>(),
        "same ids on every node"
    );
    let fewer = run(10.0).await;
    assert!(fewer.iter().all(|s| kept.iter().any(|k| k.trace_id == s.trace_id)), "10% ⊂ 25%");

    let rec = Arc::new(Recorder::default());
    let s = probabilistic::ProbabilisticSampler::new(
        "p",
        &probabilistic::Config { sampling_percentage: 100.0 },
        rec.clone(),
        metrics(),
    );
    let mut unsampled = span(1, 1, None, vec![]);
    unsampled.flags = 0x100;
    let mut upstream = span(2, 2, None, vec![]);
    upstream.trace_state = "ot=th:fffffffffffff".into(); // keep almost nothing upstream
    s.consume_traces(Batch::from_spans(vec![unsampled, upstream, span(3, 3, None, vec![])])).await.unwrap();
    assert_eq!(rec.spans().iter().map(|s| s.trace_id).collect::<Vec<_>>(), vec![tid(3)]);
}

fn trace_of(n: u64, error: bool, spans: u64) -> Vec<Span> {
    (0..spans)
        .map(|i| {
            let mut s = span(
                n,
                n * 100 + i,
                (i > 0).then_some(n * 100),
                vec![KeyValue::new("tier", if n.is_multiple_of(2) { "gold" } else { "free" })],
            );
            if error && i == spans - 1 {
                s.status = Status { code: StatusCode::Error, message: "x".into() };
            }
            s
        })
        .collect()
}

#[tokio::test]
async fn tail_sampling_keeps_every_error_and_the_configured_share() {
    let rec = Arc::new(Recorder::default());
    let cfg = tail::Config {
        decision_wait: Duration::from_secs(3600),
        num_traces: 100_000,
        policies: vec![
            ("errors".into(), tail::Policy::StatusCode(vec![StatusCode::Error])),
            ("some".into(), tail::Policy::Probabilistic { percentage: 20.0 }),
        ],
        max_outbox_spans: 1_000_000,
    };
    let t = tail::TailSampler::new("tail", cfg, rec.clone(), metrics());
    let mut errors = Vec::new();
    for n in 0..2_000u64 {
        let error = n.is_multiple_of(10);
        if error {
            errors.push(tid(n));
        }
        // Spans of a trace arrive in separate batches.
        for s in trace_of(n, error, 3) {
            t.consume_traces(Batch::from_spans(vec![s])).await.unwrap();
        }
    }
    assert!(rec.spans().is_empty(), "nothing decided before decision_wait");
    t.decide_all().await;
    let kept = rec.spans();
    let kept_traces: std::collections::HashSet<TraceId> = kept.iter().map(|s| s.trace_id).collect();
    assert!(errors.iter().all(|e| kept_traces.contains(e)), "every error trace kept");
    assert_eq!(kept.len(), kept_traces.len() * 3, "whole traces kept");
    let others = kept_traces.len() - errors.len();
    // 1800 non-error traces at 20 %: expect 360, allow ±4σ (σ ≈ 17).
    assert!((290..430).contains(&others), "kept {others} of 1800 non-error traces at 20%");

    // A late span follows its trace's decision.
    t.consume_traces(Batch::from_spans(vec![span(0, 99_999, Some(0), vec![])])).await.unwrap();
    t.decide_all().await;
    assert_eq!(rec.spans().len(), kept.len() + 1);
}

#[tokio::test]
async fn tail_policies_rate_limit_attributes_and_bounds() {
    let run = |policies: Vec<(String, tail::Policy)>, num_traces: usize| async move {
        let rec = Arc::new(Recorder::default());
        let cfg = tail::Config {
            decision_wait: Duration::from_secs(3600),
            num_traces,
            policies,
            max_outbox_spans: 1_000_000,
        };
        let t = tail::TailSampler::new("tail", cfg, rec.clone(), metrics());
        for n in 0..100u64 {
            t.consume_traces(Batch::from_spans(trace_of(n, false, 2))).await.unwrap();
        }
        t.decide_all().await;
        rec.spans().iter().map(|s| s.trace_id).collect::<std::collections::BTreeSet<_>>().len()
    };
    assert_eq!(run(vec![("r".into(), tail::Policy::RateLimiting { spans_per_second: 20 })], 1000).await, 10);
    let gold = tail::Policy::StringAttribute {
        key: "tier".into(),
        values: vec!["gold".into()],
        regex: None,
        invert: false,
    };
    assert_eq!(run(vec![("g".into(), gold.clone())], 1000).await, 50);
    let not_gold = tail::Policy::StringAttribute {
        key: "tier".into(),
        values: vec![],
        regex: Some(vec![regex::Regex::new("^go").unwrap()]),
        invert: true,
    };
    assert_eq!(run(vec![("ng".into(), not_gold)], 1000).await, 50);
    let both = tail::Policy::And(vec![gold, tail::Policy::RateLimiting { spans_per_second: 10 }]);
    assert_eq!(run(vec![("b".into(), both)], 1000).await, 5);
    // A tiny bound decides early instead of dropping: nothing is lost.
    assert_eq!(run(vec![("all".into(), tail::Policy::AlwaysSample)], 3).await, 100);
}

#[tokio::test]
async fn attributes_actions_apply_to_selected_spans_only() {
    let rec = Arc::new(Recorder::default());
    let cfg = attributes::Config {
        actions: vec![
            attributes::KeyAction {
                key: Some("env".into()),
                pattern: None,
                action: attributes::Action::Insert(Value::from("prod")),
            },
            attributes::KeyAction {
                key: Some("keep".into()),
                pattern: None,
                action: attributes::Action::Update(Value::Int(2)),
            },
            attributes::KeyAction {
                key: Some("missing".into()),
                pattern: None,
                action: attributes::Action::Update(Value::Int(2)),
            },
            attributes::KeyAction {
                key: Some("user".into()),
                pattern: None,
                action: attributes::Action::Hash,
            },
            attributes::KeyAction {
                key: None,
                pattern: Some(regex::Regex::new("^tmp\\.").unwrap()),
                action: attributes::Action::Delete,
            },
        ],
        include: None,
        exclude: Some(attributes::Match {
            attributes: vec![("skip".into(), "true".into())],
            ..Default::default()
        }),
    };
    let p = attributes::AttributesProcessor::new("attributes", cfg, rec.clone(), metrics());
    let a = span(
        1,
        1,
        None,
        vec![KeyValue::new("keep", 1i64), KeyValue::new("user", "bob"), KeyValue::new("tmp.x", "y")],
    );
    let b = span(2, 2, None, vec![KeyValue::new("skip", true), KeyValue::new("tmp.x", "y")]);
    p.consume_traces(Batch::from_spans(vec![a, b])).await.unwrap();
    let out = rec.spans();
    assert_eq!(
        out[0].attributes,
        vec![
            KeyValue::new("keep", 2i64),
            KeyValue::new("user", "81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9"),
            KeyValue::new("env", "prod"),
        ]
    );
    assert_eq!(
        out[1].attributes,
        vec![KeyValue::new("skip", true), KeyValue::new("tmp.x", "y")],
        "excluded span untouched"
    );
}

#[tokio::test]
async fn redaction_removes_secrets_everywhere_and_leaves_clean_batches_alone() {
    let rec = Arc::new(Recorder::default());
    let p =
        redaction::RedactionProcessor::new("redaction", redaction::Config::default(), rec.clone(), metrics());
    let clean = Batch::from_spans(vec![span(
        1,
        1,
        None,
        vec![KeyValue::new("http.route", "/users/{id}"), KeyValue::new("order.id", "4111-1111")],
    )]);
    let clean_bytes = clean.otlp_bytes().clone();
    p.consume_traces(clean).await.unwrap();
    assert_eq!(
        rec.batches.lock()[0].otlp_bytes().as_ptr(),
        clean_bytes.as_ptr(),
        "no re-encoding when nothing is redacted"
    );

    let mut dirty = span(
        2,
        2,
        None,
        vec![
            KeyValue::new("user.email", "a@b.io"),
            KeyValue::new("http.request.header.authorization", "Bearer abc.def"),
            KeyValue::new("db.password", "hunter2"),
            KeyValue::new("api_key", "k"),
            KeyValue::new("credit_card", "4111 1111 1111 1111"),
            KeyValue::new("note", "mail bob@example.com, card 4111 1111 1111 1111, not 1234 5678 9012 3456"),
            KeyValue::new("headers", Value::Array(vec![Value::from("Authorization: Bearer xyz123")])),
            KeyValue::new(
                "nested",
                Value::Map(vec![KeyValue::new("session_token", "t"), KeyValue::new("ok", "fine")]),
            ),
            KeyValue::new("author", "keeps"),
        ],
    );
    dirty.name = "login bob@example.com".into();
    dirty.status = Status { code: StatusCode::Error, message: "bad card 5500 0000 0000 0004".into() };
    dirty.events = vec![Event {
        time_unix_nano: 1,
        name: "exception".into(),
        attributes: vec![KeyValue::new("exception.message", "no user eve@corp.example")],
        dropped_attributes_count: 0,
    }];
    dirty.resource = Arc::new(Resource::new(
        vec![KeyValue::new("service.name", "svc"), KeyValue::new("deploy.secret", "s")],
        0,
        String::new(),
    ));
    p.consume_traces(Batch::from_spans(vec![dirty])).await.unwrap();
    let out = &rec.spans()[1];
    assert_eq!(
        out.attributes,
        vec![
            KeyValue::new("note", "mail ****, card ****, not 1234 5678 9012 3456"),
            KeyValue::new("headers", Value::Array(vec![Value::from("Authorization: ****")])),
            KeyValue::new("nested", Value::Map(vec![KeyValue::new("ok", "fine")])),
            KeyValue::new("author", "keeps"),
        ]
    );
    assert_eq!(out.name, "login ****");
    assert_eq!(out.status.message, "bad card ****");
    assert_eq!(out.events[0].attributes, vec![KeyValue::new("exception.message", "no user ****")]);
    assert_eq!(out.resource.attributes(), &[KeyValue::new("service.name", "svc")]);
    assert_eq!(out.service_name(), "svc");

    let allow =
        redaction::Config { allowed_keys: Some(vec!["http.route".into()]), ..redaction::Config::default() };
    let rec2 = Arc::new(Recorder::default());
    let p = redaction::RedactionProcessor::new("redaction", allow, rec2.clone(), metrics());
    p.consume_traces(Batch::from_spans(vec![span(
        3,
        3,
        None,
        vec![KeyValue::new("http.route", "/"), KeyValue::new("other", "x")],
    )]))
    .await
    .unwrap();
    assert_eq!(rec2.spans()[0].attributes, vec![KeyValue::new("http.route", "/")]);
    assert!(redaction::luhn_valid("4111 1111 1111 1111") && !redaction::luhn_valid("1234 5678 9012 3456"));
}

/// Resources and scopes are checked once per run of spans sharing them:
/// a secret only in a later span's resource (after the batch switched
/// resources and back) or only in a scope is still found.
#[tokio::test]
async fn redaction_checks_every_resource_and_scope_of_a_batch() {
    let resource = |attrs: Vec<KeyValue>| Arc::new(Resource::new(attrs, 0, String::new()));
    let clean = resource(vec![KeyValue::new("service.name", "a")]);
    let other = resource(vec![KeyValue::new("service.name", "b")]);
    let dirty = resource(vec![KeyValue::new("service.name", "c"), KeyValue::new("db.password", "p")]);
    let with = |n: u64, r: &Arc<Resource>| {
        let mut s = span(n, n, None, vec![KeyValue::new("http.route", "/")]);
        s.resource = Arc::clone(r);
        s
    };
    let rec = Arc::new(Recorder::default());
    let p =
        redaction::RedactionProcessor::new("redaction", redaction::Config::default(), rec.clone(), metrics());
    let spans = vec![with(1, &clean), with(2, &clean), with(3, &other), with(4, &clean), with(5, &dirty)];
    p.consume_traces(Batch::from_spans(spans)).await.unwrap();
    let out = rec.spans();
    assert_eq!(out.len(), 5);
    assert_eq!(out[4].resource.attributes(), &[KeyValue::new("service.name", "c")], "secret in the last run");
    assert!(Arc::ptr_eq(&out[0].resource, &out[3].resource), "clean resources stay shared");

    let mut scoped = with(6, &clean);
    let mut scope = (*scoped.scope).clone();
    scope.attributes = vec![KeyValue::new("auth_token", "t"), KeyValue::new("lib", "x")];
    scoped.scope = Arc::new(scope);
    p.consume_traces(Batch::from_spans(vec![with(7, &clean), scoped])).await.unwrap();
    assert_eq!(rec.spans()[6].scope.attributes, vec![KeyValue::new("lib", "x")], "secret in a scope only");
}

#[tokio::test]
async fn memory_limiter_refuses_retryably_above_its_limit() {
    let rec = Arc::new(Recorder::default());
    let cfg = crate::processor::memory_limiter::Config {
        check_interval: Duration::from_millis(10),
        limit_bytes: 1 << 20,
        spike_bytes: 0,
    };
    let m = crate::processor::memory_limiter::MemoryLimiter::new(
        "memory_limiter",
        &cfg,
        rec.clone(),
        metrics(),
        None,
    );
    let err = m.consume_traces(Batch::from_spans(vec![span(1, 1, None, vec![])])).await.unwrap_err();
    // Over the limit the budget's pressure says so, for buffers to let go.
    let budget = Arc::new(sightline_model::MemoryBudget::new(1 << 20));
    let mut pressure = budget.subscribe();
    let _pressured = crate::processor::memory_limiter::MemoryLimiter::new(
        "m",
        &cfg,
        rec.clone(),
        metrics(),
        Some(Arc::clone(&budget)),
    );
    tokio::time::timeout(Duration::from_secs(10), pressure.changed()).await.unwrap().unwrap();
    assert_eq!(*pressure.borrow(), sightline_model::Pressure::Hard);
    assert!(
        matches!(&err, ConsumeError::Overloaded { reason, .. } if reason.contains("hard limit")),
        "{err:?}"
    );
    assert!(rec.spans().is_empty());
    let roomy = crate::processor::memory_limiter::Config::for_limit(64 << 30);
    let m = crate::processor::memory_limiter::MemoryLimiter::new(
        "memory_limiter",
        &roomy,
        rec.clone(),
        metrics(),
        None,
    );
    m.consume_traces(Batch::from_spans(vec![span(1, 1, None, vec![])])).await.unwrap();
    assert_eq!(rec.spans().len(), 1);
}

/// Just over the soft limit a batch waits for memory to fall instead of
/// being refused at once; if memory stays up, or is in the upper half of
/// the headroom, it is refused. Paused time: the waits are measured in
/// tokio's virtual time, so the test does not depend on the machine's speed.
#[tokio::test(start_paused = true)]
async fn memory_limiter_waits_briefly_at_the_soft_limit() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let rec = Arc::new(Recorder::default());
    let mib = 1u64 << 20;
    // Soft limit 70 MiB, hard 100 MiB, refusing at once from 85 MiB.
    let cfg = crate::processor::memory_limiter::Config {
        check_interval: Duration::from_millis(10),
        limit_bytes: 100 * mib,
        spike_bytes: 30 * mib,
    };
    let memory = Arc::new(AtomicU64::new(75 * mib));
    let read: crate::processor::memory_limiter::MemoryReader = {
        let memory = Arc::clone(&memory);
        Arc::new(move || Some(memory.load(Ordering::Relaxed)))
    };
    let budget = Arc::new(sightline_model::MemoryBudget::new(100 * mib));
    let m = Arc::new(crate::processor::memory_limiter::MemoryLimiter::with_reader(
        "memory_limiter",
        &cfg,
        rec.clone(),
        metrics(),
        Some(Arc::clone(&budget)),
        read,
    ));
    let waiting = tokio::spawn({
        let m = Arc::clone(&m);
        async move { m.consume_traces(Batch::from_spans(vec![span(1, 1, None, vec![])])).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "refused without waiting for memory to fall");
    assert_eq!(budget.pressure(), sightline_model::Pressure::Soft);
    memory.store(60 * mib, Ordering::Relaxed);
    waiting.await.unwrap().unwrap();
    assert_eq!(rec.spans().len(), 1, "accepted once memory fell below the soft limit");
    assert_eq!(budget.pressure(), sightline_model::Pressure::Normal);

    memory.store(75 * mib, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = tokio::time::Instant::now();
    let err = m.consume_traces(Batch::from_spans(vec![span(1, 2, None, vec![])])).await.unwrap_err();
    assert!(
        matches!(&err, ConsumeError::Overloaded { reason, .. } if reason.contains("soft limit")),
        "{err:?}"
    );
    assert!(
        started.elapsed() >= crate::processor::memory_limiter::SOFT_WAIT,
        "gave up before the wait ended"
    );

    memory.store(90 * mib, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = tokio::time::Instant::now();
    m.consume_traces(Batch::from_spans(vec![span(1, 3, None, vec![])])).await.unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO, "waited in the upper half");
    assert_eq!(rec.spans().len(), 1);
}

async fn otlp_target(
    rec: Arc<Recorder>,
    http: bool,
    listener: tokio::net::TcpListener,
) -> tokio::sync::oneshot::Sender<()> {
    let receiver = sightline_receive::Receiver::new(
        rec,
        sightline_receive::Options::default(),
        Arc::new(sightline_receive::Metrics::new(&mut prometheus_client::registry::Registry::default())),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    tokio::spawn(async move {
        if http {
            let _ = sightline_receive::serve_http(listener, receiver, shutdown).await;
        } else {
            let _ = sightline_receive::serve_grpc(listener, receiver, shutdown).await;
        }
    });
    stop
}

async fn wait_for(rec: &Recorder, spans: usize) {
    for _ in 0..200 {
        if rec.spans().len() >= spans {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("only {} of {spans} spans arrived", rec.spans().len());
}

fn otlp_config(
    endpoint: String,
    protocol: crate::exporter::otlp::Protocol,
    dir: &std::path::Path,
) -> crate::exporter::otlp::Config {
    crate::exporter::otlp::Config {
        endpoint,
        protocol,
        timeout: Duration::from_secs(2),
        headers: vec![],
        queue_dir: dir.to_owned(),
        queue_max_bytes: 1 << 20,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        tenant_header: "X-Scope-OrgID".into(),
        max_tenants: 64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporter_queues_through_an_outage_and_a_restart() {
    use crate::Component as _;
    use crate::exporter::otlp::{OtlpExporter, Protocol};
    for (protocol, http) in [(Protocol::Grpc, false), (Protocol::HttpProtobuf, true)] {
        let dir = tempfile::tempdir().unwrap();
        // The target's port, reserved but nobody listening yet: an outage.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let endpoint = format!("http://{addr}");
        let exporter =
            OtlpExporter::new("otlp", otlp_config(endpoint.clone(), protocol, dir.path()), metrics())
                .unwrap();
        for n in 0..3 {
            exporter.consume_traces(Batch::from_spans(vec![span(n, n, None, vec![])])).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        exporter.shutdown().await;
        drop(exporter);

        // Restart the exporter and bring the target up: the queue delivers.
        let rec = Arc::new(Recorder::default());
        let stop = otlp_target(rec.clone(), http, tokio::net::TcpListener::bind(addr).await.unwrap()).await;
        let exporter =
            OtlpExporter::new("otlp", otlp_config(endpoint, protocol, dir.path()), metrics()).unwrap();
        exporter.consume_traces(Batch::from_spans(vec![span(9, 9, None, vec![])])).await.unwrap();
        wait_for(&rec, 4).await;
        let mut ids: Vec<TraceId> = rec.spans().iter().map(|s| s.trace_id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 4, "{protocol:?}: every queued batch delivered");
        // Delivered segments are deleted.
        for _ in 0..100 {
            if exporter.health().is_some_and(|h| h.detail.starts_with("0 batches")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(exporter.health().unwrap().detail.starts_with("0 batches"), "{:?}", exporter.health());
        exporter.shutdown().await;
        let _ = stop.send(());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_exporter_refuses_when_its_queue_is_full() {
    use crate::exporter::otlp::{OtlpExporter, Protocol};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = otlp_config("http://127.0.0.1:9".into(), Protocol::Grpc, dir.path());
    cfg.queue_max_bytes = 300;
    let exporter = OtlpExporter::new("otlp", cfg, metrics()).unwrap();
    let mut refused = None;
    for n in 0..20 {
        if let Err(e) = exporter.consume_traces(Batch::from_spans(vec![span(n, n, None, vec![])])).await {
            refused = Some(e);
            break;
        }
    }
    assert!(matches!(refused, Some(ConsumeError::Overloaded { .. })), "{refused:?}");
}

/// The README's component list is the registry's: a new component or a
/// new signal for one shows up in the docs or this test fails.
/// `SIGHTLINE_BLESS=1` rewrites the README's list instead.
#[test]
fn readme_lists_the_registry_components_and_the_default_pipeline() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme.find("<!-- components: generated").expect("start marker");
    let body_start = start + readme[start..].find('\n').unwrap() + 1;
    let end = readme.find("<!-- components: end -->").expect("end marker");
    let want = crate::registry::markdown();
    if readme[body_start..end] != want {
        if std::env::var_os("SIGHTLINE_BLESS").is_some() {
            std::fs::write(&path, format!("{}{want}{}", &readme[..body_start], &readme[end..])).unwrap();
        } else {
            panic!(
                "README.md's component list differs from the registry; run SIGHTLINE_BLESS=1 cargo test -p sightline-pipeline readme\n\nwant:\n{want}\nhave:\n{}",
                &readme[body_start..end]
            );
        }
    }
    let default = crate::config::default_config(&ctx());
    let chain: Vec<String> = default.pipelines[0]
        .processors
        .iter()
        .chain(&default.pipelines[0].exporters)
        .map(|id| format!("`{id}`"))
        .collect();
    let flat = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(&chain.join(" → ")),
        "README must name the default pipeline: {}",
        chain.join(" → ")
    );
}

#[test]
fn pipelines_are_named_after_a_signal_their_components_handle() {
    let got = problems(
        r#"
        [service.pipelines.trace]
        receivers = ["otlp"]
        exporters = ["store"]
        [service.pipelines."logs/app"]
        receivers = ["zipkin"]
        processors = ["tail_sampling"]
        exporters = ["store"]
        [processors.tail_sampling]
    "#,
    );
    assert_eq!(
        got,
        vec![
            "service.pipelines.logs/app.receivers[0]: receiver \"zipkin\" does not handle logs; it handles traces",
            "service.pipelines.logs/app.processors[0]: processor \"tail_sampling\" does not handle logs; it handles traces",
            "service.pipelines.trace: unknown signal \"trace\" (did you mean \"traces\"?): name a pipeline after its signal (traces, logs, metrics), optionally with /<name>",
        ]
    );
}

/// Every processor that rebuilds or merges batches keeps each batch's
/// tenant: the batch processor never merges two tenants' spans, and the
/// sampling, attributes and redaction processors pass the tenant on with
/// the spans they rebuild (losing it would file a tenant's spans under the
/// default tenant).
#[tokio::test]
async fn processors_keep_every_batch_with_its_tenant() {
    use sightline_model::Tenant;
    let acme = Tenant::new("acme").unwrap();
    let tenants = |rec: &Recorder| tenants_of(&rec.batches.lock());
    let secret = || vec![KeyValue::new("password", "hunter2"), KeyValue::new("tmp.x", "y")];

    let rec = Arc::new(Recorder::default());
    let cfg = batch_config(4, Duration::from_millis(50));
    let b = Arc::new(batch::BatchProcessor::<Batch>::new("batch", &cfg, rec.clone(), metrics()));
    let sends = (0..4u64).map(|i| {
        let b = Arc::clone(&b);
        let batch = Batch::from_spans(vec![span(i, i, None, vec![])]);
        let batch = if i % 2 == 0 { batch.with_tenant(acme.clone()) } else { batch };
        async move { b.consume_traces(batch).await }
    });
    assert!(futures_util::future::join_all(sends).await.iter().all(Result::is_ok));
    assert_eq!(tenants(&rec), vec![("acme".to_owned(), 2), ("single-tenant".to_owned(), 2)]);

    let rec = Arc::new(Recorder::default());
    let p =
        redaction::RedactionProcessor::new("redaction", redaction::Config::default(), rec.clone(), metrics());
    p.consume_traces(Batch::from_spans(vec![span(1, 1, None, secret())]).with_tenant(acme.clone()))
        .await
        .unwrap();
    assert_eq!(tenants(&rec), vec![("acme".to_owned(), 1)]);

    let rec = Arc::new(Recorder::default());
    let p =
        attributes::AttributesProcessor::new("attributes", delete_attribute("tmp.x"), rec.clone(), metrics());
    p.consume_traces(Batch::from_spans(vec![span(1, 1, None, secret())]).with_tenant(acme.clone()))
        .await
        .unwrap();
    assert_eq!(tenants(&rec), vec![("acme".to_owned(), 1)]);

    let rec = Arc::new(Recorder::default());
    let config = probabilistic::Config { sampling_percentage: 100.0 };
    let s = probabilistic::ProbabilisticSampler::new("p", &config, rec.clone(), metrics());
    s.consume_traces(Batch::from_spans(vec![span(1, 1, None, vec![])]).with_tenant(acme.clone()))
        .await
        .unwrap();
    assert_eq!(tenants(&rec), vec![("acme".to_owned(), 1)]);

    // Tail sampling: the same trace id in two tenants is two traces.
    let rec = Arc::new(Recorder::default());
    let cfg = tail::Config {
        decision_wait: Duration::from_secs(3600),
        num_traces: 100,
        policies: vec![("all".into(), tail::Policy::Probabilistic { percentage: 100.0 })],
        max_outbox_spans: 1000,
    };
    let t = tail::TailSampler::new("tail", cfg, rec.clone(), metrics());
    t.consume_traces(Batch::from_spans(trace_of(7, false, 3)).with_tenant(acme.clone())).await.unwrap();
    t.consume_traces(Batch::from_spans(trace_of(7, false, 2))).await.unwrap();
    t.decide_all().await;
    assert_eq!(tenants(&rec), vec![("acme".to_owned(), 3), ("single-tenant".to_owned(), 2)]);
}

#[test]
fn filelog_receiver_parses_with_defaults_and_reports_problems() {
    let text = r#"
        [receivers."filelog/app"]
        include = ["/var/log/app/*.log"]
        start_at = "beginning"
        fields = { message = "msg", trace_id = "traceId" }
        [service.pipelines.logs]
        receivers = ["filelog/app"]
        exporters = ["store"]
    "#;
    let config = crate::config::parse(&toml::from_str(text).unwrap(), &ctx()).unwrap();
    let c = config.receivers["filelog/app"].settings::<crate::receiver::FilelogConfig>().unwrap();
    assert!(c.start_at_beginning);
    assert_eq!(c.fields[3], "msg");
    assert_eq!(c.fields[4], "traceId");
    assert_eq!(c.fields[1], "level");
    assert_eq!(c.max_log_size, 1 << 20);
    assert!(c.state_path.ends_with("filelog/filelog_app.json"), "{}", c.state_path.display());
    let got = problems(
        r#"
        [receivers.filelog]
        start_at = "middle"
        fields = { msg = "m" }
        [service.pipelines.traces]
        receivers = ["filelog"]
        exporters = ["store"]
    "#,
    );
    assert_eq!(
        got,
        vec![
            "receivers.filelog.include: required: glob patterns of the files to read, e.g. [\"/var/log/app/*.log\"]",
            "receivers.filelog.start_at: \"middle\": use \"beginning\" or \"end\"",
            "receivers.filelog.fields.msg: unknown setting",
            "service.pipelines.traces.receivers[0]: receiver \"filelog\" does not handle traces; it handles logs",
        ]
    );
}

/// A filelog receiver's `tenant` is checked like `X-Scope-OrgID`; absent,
/// its records are the default tenant's.
#[test]
fn filelog_tenant_is_validated_like_the_tenant_header() {
    let parse = |tenant: &str| {
        let text = format!(
            "[receivers.filelog]\ninclude = [\"/var/log/app/*.log\"]\n{tenant}\n\
             [service.pipelines.logs]\nreceivers = [\"filelog\"]\nexporters = [\"store\"]\n"
        );
        let config = crate::config::parse(&toml::from_str(&text).unwrap(), &ctx()).unwrap();
        config.receivers["filelog"].settings::<crate::receiver::FilelogConfig>().unwrap().tenant.clone()
    };
    assert_eq!(parse("tenant = \"team-a\"").as_str(), "team-a");
    assert!(parse("").is_default());
    for bad in ["team a", "..", "", "a/b"] {
        let got = problems(&format!(
            "[receivers.filelog]\ninclude = [\"/x/*.log\"]\ntenant = {bad:?}\n\
             [service.pipelines.logs]\nreceivers = [\"filelog\"]\nexporters = [\"store\"]\n"
        ));
        assert_eq!(
            got,
            vec![format!(
                "receivers.filelog.tenant: invalid tenant {bad:?}: use 1-150 characters of letters, digits and \
                 !-_.*'() (not \".\" or \"..\")"
            )]
        );
    }
}
