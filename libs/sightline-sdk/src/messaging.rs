//! Producer and consumer spans per the messaging semantic conventions, for
//! any broker: `publish {destination}` (kind PRODUCER) around a send,
//! `process {destination}` (kind CONSUMER) around handling, child of the
//! context extracted from the message; a batch gets one span with a link
//! to each message and the merged baggage ([`crate::baggage`]).
//!
//! The [`crate::nats`] helpers are this plus the NATS carrier. For AMQP or
//! Kafka use [`Operation`] with the carriers in [`crate::propagation`]:
//!
//! ```
//! # #[cfg(feature = "kafka")]
//! # async fn demo(telemetry: sightline_sdk::Telemetry) -> Result<(), std::io::Error> {
//! use sightline_sdk::messaging::Operation;
//! use sightline_sdk::propagation::{KafkaExtractor, KafkaInjector};
//!
//! // producer
//! let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
//! let op = Operation::publish(&telemetry, "kafka", "orders");
//! op.inject(&mut KafkaInjector(&mut headers));
//! op.run(async { /* producer.send(record with headers) */ Ok::<_, std::io::Error>(()) }).await?;
//!
//! // consumer
//! let parent = telemetry.extract(&KafkaExtractor(&headers));
//! Operation::process(&telemetry, "kafka", "orders", &parent)
//!     .run(async { /* handle; CurrentBaggage::current() has the baggage */ Ok::<_, std::io::Error>(()) })
//!     .await?;
//! # Ok(()) }
//! ```

use std::fmt::Display;
use std::future::Future;
use std::time::Instant;

use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};

use crate::Telemetry;
use crate::baggage::{self, Entries};

/// One messaging operation in flight. Ends (and is counted) by
/// [`Operation::run`] or [`Operation::end`]; dropping it ends the span
/// without a status.
#[derive(Debug)]
pub struct Operation {
    telemetry: Telemetry,
    cx: Context,
    system: String,
    destination: String,
    operation: &'static str,
    started: Instant,
    ended: bool,
}

fn attrs(system: &str, destination: &str, operation: &'static str, op_type: &'static str) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.system", system.to_owned()),
        KeyValue::new("messaging.destination.name", destination.to_owned()),
        KeyValue::new("messaging.operation.name", operation),
        KeyValue::new("messaging.operation.type", op_type),
    ]
}

impl Operation {
    fn new(
        telemetry: &Telemetry,
        cx: Context,
        system: &str,
        destination: &str,
        operation: &'static str,
    ) -> Operation {
        Operation {
            telemetry: telemetry.clone(),
            cx,
            system: system.to_owned(),
            destination: destination.to_owned(),
            operation,
            started: Instant::now(),
            ended: false,
        }
    }

    /// A `publish {destination}` PRODUCER span, child of the current context
    /// (so it carries the current baggage when injected).
    pub fn publish(telemetry: &Telemetry, system: &str, destination: &str) -> Operation {
        let parent = Context::current();
        let cx = crate::spans::start(
            telemetry,
            format!("publish {destination}"),
            SpanKind::Producer,
            &parent,
            attrs(system, destination, "publish", "send"),
        );
        Operation::new(telemetry, cx, system, destination, "publish")
    }

    /// A `process {destination}` CONSUMER span, child of `parent` (the
    /// context extracted from the message: its span and baggage).
    ///
    /// The handler's baggage is live: `CurrentBaggage` changes made while
    /// it runs travel on with what it sends ([`crate::baggage`]). A
    /// message that carried no trace context gets a `create {destination}`
    /// span as its parent, so its processing is not a root without origin.
    pub fn process(telemetry: &Telemetry, system: &str, destination: &str, parent: &Context) -> Operation {
        let parent = if parent.span().span_context().is_valid() {
            parent.clone()
        } else {
            let created = crate::spans::start(
                telemetry,
                format!("create {destination}"),
                SpanKind::Producer,
                parent,
                attrs(system, destination, "create", "create"),
            );
            created.span().end();
            created
        };
        let cx = crate::spans::start(
            telemetry,
            format!("process {destination}"),
            SpanKind::Consumer,
            &parent,
            attrs(system, destination, "process", "process"),
        )
        .with_value(crate::baggage::LiveBaggage::live());
        Operation::new(telemetry, cx, system, destination, "process")
    }

    /// One `process {destination}` CONSUMER span for a batch: a child of
    /// the current context with a link to each message's span, attribute
    /// `messaging.batch.message_count`, and as baggage the merge of every
    /// message's baggage (each message's own stays readable through
    /// [`crate::baggage::CurrentBaggage::get_all_batch`]).
    pub fn process_batch(
        telemetry: &Telemetry,
        system: &str,
        destination: &str,
        messages: &[Context],
    ) -> Operation {
        let batch: Vec<Entries> = messages.iter().map(baggage::entries).collect();
        let base = baggage::batch_context(&Context::current(), batch);
        let cx = match telemetry.tracer() {
            Some(tracer) => {
                let links: Vec<Link> = messages
                    .iter()
                    .map(|m| m.span().span_context().clone())
                    .filter(|sc| sc.is_valid())
                    .map(Link::with_context)
                    .collect();
                let mut a = attrs(system, destination, "process", "process");
                a.push(KeyValue::new("messaging.batch.message_count", messages.len() as i64));
                let span = tracer
                    .span_builder(format!("process {destination}"))
                    .with_kind(SpanKind::Consumer)
                    .with_attributes(a)
                    .with_links(links)
                    .start_with_context(tracer, &base);
                base.with_span(span)
            }
            None => base,
        };
        Operation::new(telemetry, cx, system, destination, "process")
    }

    /// The context holding this span (and the baggage).
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Writes this span's context and the baggage into a message carrier.
    pub fn inject(&self, carrier: &mut dyn Injector) {
        self.telemetry.inject(&self.cx, carrier);
    }

    /// Adds an attribute (e.g. `messaging.message.id`, body size).
    pub fn set_attribute(&self, kv: KeyValue) {
        self.cx.span().set_attribute(kv);
    }

    /// Ends the span: ERROR with the exception when `result` is an error; counts it.
    pub fn end<T, E: Display>(mut self, result: &Result<T, E>) {
        if let Err(e) = result {
            crate::spans::record_exception(&self.cx.span(), e);
        }
        self.finish(result.is_ok());
    }

    fn finish(&mut self, ok: bool) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.cx.span().end();
        self.telemetry.metrics().record_message(
            &self.system,
            self.operation,
            &self.destination,
            ok,
            self.started.elapsed().as_secs_f64(),
        );
    }

    /// Runs `fut` with this span current, then ends it.
    pub async fn run<F, T, E>(mut self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
        E: Display,
    {
        let result = fut.with_context(self.cx.clone()).await;
        if let Err(e) = &result {
            // Typed here: `exception.type` names E, not `dyn Display`.
            crate::spans::record_exception(&self.cx.span(), e);
        }
        self.finish(result.is_ok());
        result
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if !self.ended {
            self.ended = true;
            self.cx.span().end();
        }
    }
}
