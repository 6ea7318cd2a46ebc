//! The SDK's RabbitMQ wrappers (`sightline_sdk::rabbitmq`, on lapin)
//! against a real `rabbitmq-server`: a message published under baggage
//! continues its trace in the consumer with the messaging attributes; the
//! consumer changes the baggage and publishes on (no re-attach), and the
//! next consumer sees the change; a message published without any context
//! gets a creation span. Spans are checked with the in-memory exporter.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use sightline_sdk::baggage::{Baggage, CurrentBaggage};
use sightline_sdk::opentelemetry::context::FutureExt as _;
use sightline_sdk::opentelemetry::trace::SpanKind;
use sightline_sdk::{Options, init_with_env, rabbitmq};

use crate::harness::RabbitMq;

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.as_str().into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_wrappers_carry_context_ids_and_live_baggage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = RabbitMq::start(dir.path()).await;
    let exporter = InMemorySpanExporter::default();
    let telemetry = init_with_env(
        Options::new("amqp-test").span_exporter(exporter.clone()).install_globals(false),
        |_| None,
    )
    .expect("telemetry");
    let t = telemetry.telemetry();

    let conn = Connection::connect(&broker.url(), ConnectionProperties::default()).await.expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    for q in ["orders", "audit", "bare"] {
        channel
            .queue_declare(q.into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .expect("declare queue");
    }
    let next = |queue: &'static str| {
        let channel = channel.clone();
        async move {
            let mut consumer = channel
                .basic_consume(
                    queue.into(),
                    format!("test-{queue}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("consume");
            let d = tokio::time::timeout(Duration::from_secs(30), consumer.next())
                .await
                .expect("a delivery within 30s")
                .expect("stream open")
                .expect("delivery");
            d.ack(BasicAckOptions::default()).await.expect("ack");
            d
        }
    };

    // Producer, under baggage tenant=acme.
    rabbitmq::publish(
        &t,
        &channel,
        "",
        "orders",
        BasicPublishOptions::default(),
        br#"{"id":1}"#,
        BasicProperties::default().with_message_id("m-1".into()).with_correlation_id("c-1".into()),
    )
    .with_context(Baggage::new([("tenant", "acme")]).context())
    .await
    .expect("publish");

    // First consumer: sees the baggage, changes it, publishes on.
    let delivery = next("orders").await;
    let tenant = rabbitmq::process(&t, &delivery, "orders", async {
        let mut b = CurrentBaggage::current();
        let tenant = b.get("tenant").map(str::to_owned);
        b.set("step", "audited");
        rabbitmq::publish(
            &t,
            &channel,
            "",
            "audit",
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await
        .map(|_| tenant)
    })
    .await
    .expect("process");
    assert_eq!(tenant.as_deref(), Some("acme"), "baggage crossed RabbitMQ");

    // Second consumer: the change travelled without any attach.
    let audit = next("audit").await;
    let seen = rabbitmq::process(&t, &audit, "audit", async { Ok::<_, String>(CurrentBaggage::current()) })
        .await
        .expect("process");
    assert_eq!(seen.get("step"), Some("audited"));
    assert_eq!(seen.get("tenant"), Some("acme"));

    // A message without any context (a plain client): a creation span.
    channel
        .basic_publish(
            "".into(),
            "bare".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let bare = next("bare").await;
    rabbitmq::process(&t, &bare, "bare", async { Ok::<_, String>(()) }).await.expect("process");
    let _ = conn.close(0, "done".into()).await;

    let spans = exporter.get_finished_spans().expect("spans");
    let find =
        |name: &str| spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name} in {spans:#?}"));
    let producer = find("publish orders");
    let consumer = find("process orders");
    assert_eq!(producer.span_kind, SpanKind::Producer);
    assert_eq!(consumer.span_kind, SpanKind::Consumer);
    assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
    assert_eq!(consumer.span_context.trace_id(), producer.span_context.trace_id());
    for s in [producer, consumer] {
        assert_eq!(attr(s, "messaging.system").as_deref(), Some("rabbitmq"));
        assert_eq!(attr(s, "messaging.message.id").as_deref(), Some("m-1"));
        assert_eq!(attr(s, "messaging.message.conversation_id").as_deref(), Some("c-1"));
        assert_eq!(attr(s, "messaging.rabbitmq.destination.routing_key").as_deref(), Some("orders"));
    }
    assert_eq!(attr(consumer, "messaging.consumer.group.name").as_deref(), Some("orders"));
    let hop = find("publish audit");
    assert_eq!(hop.parent_span_id, consumer.span_context.span_id());
    let audit_span = find("process audit");
    assert_eq!(
        audit_span.span_context.trace_id(),
        producer.span_context.trace_id(),
        "one trace over two hops"
    );
    let created = find("create bare");
    let bare_span = find("process bare");
    assert_eq!(bare_span.parent_span_id, created.span_context.span_id());
    drop(broker);
}
