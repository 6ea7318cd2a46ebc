//! NATS (async-nats): publish with a PRODUCER span and the context in the
//! message headers; process a received message under a CONSUMER span that
//! continues its trace and carries its baggage.
//!
//! ```no_run
//! # async fn demo(telemetry: sightline_sdk::Telemetry, client: async_nats::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt as _;
//! sightline_sdk::nats::publish(&telemetry, &client, "orders.created", "{}".into()).await?;
//!
//! let mut sub = client.subscribe("orders.>").await?;
//! while let Some(msg) = sub.next().await {
//!     sightline_sdk::nats::process(&telemetry, &msg, async {
//!         let tenant = sightline_sdk::baggage::CurrentBaggage::current().get("tenant").map(str::to_owned);
//!         Ok::<_, std::io::Error>(tenant)
//!     }).await?;
//! }
//! # Ok(()) }
//! ```

use std::fmt::Display;
use std::future::Future;

use opentelemetry::{Context, KeyValue};

use crate::Telemetry;
use crate::messaging::Operation;
use crate::propagation::{NatsExtractor, NatsInjector};

/// `messaging.system` for NATS.
pub const SYSTEM: &str = "nats";

/// Publishes `payload` on `subject` with the current context (span and
/// baggage) in the headers, under a `publish {subject}` PRODUCER span.
pub async fn publish(
    telemetry: &Telemetry,
    client: &async_nats::Client,
    subject: &str,
    payload: bytes::Bytes,
) -> Result<(), async_nats::PublishError> {
    publish_with_headers(telemetry, client, subject, async_nats::HeaderMap::new(), payload).await
}

/// Like [`publish`], adding the trace headers to `headers`.
pub async fn publish_with_headers(
    telemetry: &Telemetry,
    client: &async_nats::Client,
    subject: &str,
    mut headers: async_nats::HeaderMap,
    payload: bytes::Bytes,
) -> Result<(), async_nats::PublishError> {
    let op = Operation::publish(telemetry, SYSTEM, subject);
    op.inject(&mut NatsInjector(&mut headers));
    op.set_attribute(KeyValue::new("messaging.message.body.size", payload.len() as i64));
    op.run(client.publish_with_headers(subject.to_owned(), headers, payload)).await
}

/// The context a message carries (remote parent span and baggage).
pub fn context(telemetry: &Telemetry, msg: &async_nats::Message) -> Context {
    match &msg.headers {
        Some(h) => telemetry.extract(&NatsExtractor(h)),
        None => Context::current(),
    }
}

/// Runs `handler` under a `process {subject}` CONSUMER span whose parent
/// is the message's context; the message's baggage is current inside.
pub async fn process<F, T, E>(telemetry: &Telemetry, msg: &async_nats::Message, handler: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    let parent = context(telemetry, msg);
    let op = Operation::process(telemetry, SYSTEM, msg.subject.as_str(), &parent);
    op.set_attribute(KeyValue::new("messaging.message.body.size", msg.payload.len() as i64));
    op.run(handler).await
}

/// Runs `handler` under one CONSUMER span for a batch of messages from
/// `subject`, linked to each message; the merged baggage is current and
/// each message's own is in `CurrentBaggage::get_all_batch`.
pub async fn process_batch<F, T, E>(
    telemetry: &Telemetry,
    subject: &str,
    msgs: &[async_nats::Message],
    handler: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    let parents: Vec<Context> = msgs.iter().map(|m| context(telemetry, m)).collect();
    Operation::process_batch(telemetry, SYSTEM, subject, &parents).run(handler).await
}
