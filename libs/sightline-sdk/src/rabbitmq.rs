//! RabbitMQ through lapin (feature `lapin`): [`publish`] under a PRODUCER
//! span with the context and baggage in the message headers, and
//! [`process`] running a handler under a CONSUMER span that continues the
//! message's trace, with the message's baggage live (changes made in the
//! handler travel on with what it publishes, as in FastStream).
//!
//! Attributes follow the messaging semantic conventions:
//! `messaging.system=rabbitmq`, `messaging.destination.name` (the
//! exchange, or the routing key for the default exchange),
//! `messaging.rabbitmq.destination.routing_key`, `messaging.message.id`
//! and `messaging.message.conversation_id` (the AMQP `message_id` and
//! `correlation_id` properties), `messaging.consumer.group.name` (the
//! queue), `messaging.rabbitmq.message.delivery_tag`, the body size.
//!
//! ```no_run
//! # async fn demo(t: sightline_sdk::Telemetry, channel: lapin::Channel, delivery: lapin::message::Delivery) -> Result<(), lapin::Error> {
//! use lapin::BasicProperties;
//! use lapin::options::BasicPublishOptions;
//! sightline_sdk::rabbitmq::publish(&t, &channel, "", "orders", BasicPublishOptions::default(), b"{}",
//!     BasicProperties::default().with_message_id("m-1".into())).await?;
//! // in the consumer loop:
//! sightline_sdk::rabbitmq::process(&t, &delivery, "orders", async {
//!     let tenant = sightline_sdk::baggage::CurrentBaggage::current().get("tenant").map(str::to_owned);
//!     Ok::<_, std::io::Error>(tenant)
//! }).await.ok();
//! # Ok(()) }
//! ```

use std::fmt::Display;
use std::future::Future;

use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;

use lapin::{BasicProperties, Channel, Confirmation};
use opentelemetry::{Context, KeyValue};

use crate::Telemetry;
use crate::messaging::Operation;
use crate::propagation::{AmqpExtractor, AmqpInjector};

/// `messaging.system` for RabbitMQ.
pub const SYSTEM: &str = "rabbitmq";

/// The exchange, or the routing key when the default exchange is used
/// (there the routing key names the queue).
fn destination<'a>(exchange: &'a str, routing_key: &'a str) -> &'a str {
    if exchange.is_empty() { routing_key } else { exchange }
}

fn message_attributes(op: &Operation, routing_key: &str, properties: &BasicProperties, size: usize) {
    op.set_attribute(KeyValue::new("messaging.rabbitmq.destination.routing_key", routing_key.to_owned()));
    op.set_attribute(KeyValue::new("messaging.message.body.size", size as i64));
    if let Some(id) = properties.message_id() {
        op.set_attribute(KeyValue::new("messaging.message.id", id.as_str().to_owned()));
    }
    if let Some(id) = properties.correlation_id() {
        op.set_attribute(KeyValue::new("messaging.message.conversation_id", id.as_str().to_owned()));
    }
}

/// Publishes `payload` and waits for the broker's confirmation (when the
/// channel is in confirm mode), under a `publish {destination}` PRODUCER
/// span; the current context (span and baggage) goes into the message
/// headers, added to any headers `properties` has.
pub async fn publish(
    telemetry: &Telemetry,
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    options: BasicPublishOptions,
    payload: &[u8],
    properties: BasicProperties,
) -> Result<Confirmation, lapin::Error> {
    let op = Operation::publish(telemetry, SYSTEM, destination(exchange, routing_key));
    message_attributes(&op, routing_key, &properties, payload.len());
    let mut headers = properties.headers().clone().unwrap_or_default();
    op.inject(&mut AmqpInjector(&mut headers));
    let properties = properties.with_headers(headers);
    op.run(async {
        channel.basic_publish(exchange.into(), routing_key.into(), options, payload, properties).await?.await
    })
    .await
}

/// The context a delivery carries (remote parent span and baggage), on top
/// of the current one.
pub fn context(telemetry: &Telemetry, delivery: &Delivery) -> Context {
    match delivery.properties.headers() {
        Some(h) => telemetry.extract(&AmqpExtractor(h)),
        None => Context::current(),
    }
}

/// Runs `handler` for `delivery`, consumed from `queue`, under a
/// `process {destination}` CONSUMER span whose parent is the message's
/// context (a `create` span when it carried none); the message's baggage
/// is current and live inside. Acknowledging stays the caller's.
pub async fn process<F, T, E>(
    telemetry: &Telemetry,
    delivery: &Delivery,
    queue: &str,
    handler: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    let parent = context(telemetry, delivery);
    let dest = destination(delivery.exchange.as_str(), delivery.routing_key.as_str());
    let op = Operation::process(telemetry, SYSTEM, dest, &parent);
    message_attributes(&op, delivery.routing_key.as_str(), &delivery.properties, delivery.data.len());
    op.set_attribute(KeyValue::new("messaging.consumer.group.name", queue.to_owned()));
    op.set_attribute(KeyValue::new("messaging.rabbitmq.message.delivery_tag", delivery.delivery_tag as i64));
    op.run(handler).await
}
