//! Manual spans: start one as a child of the current context, add
//! attributes and events, record an exception with ERROR status, and run
//! background tasks under a span with task-type metrics.
//!
//! ```
//! # async fn demo(telemetry: sightline_sdk::Telemetry) -> Result<(), std::io::Error> {
//! use sightline_sdk::opentelemetry::{KeyValue, trace::TraceContextExt as _};
//! use sightline_sdk::spans;
//!
//! // A span around a block of async work; the closure's error marks it ERROR.
//! let total = spans::in_span(&telemetry, "price_order", async {
//!     let cx = sightline_sdk::opentelemetry::Context::current();
//!     cx.span().set_attribute(KeyValue::new("order.items", 3));
//!     cx.span().add_event("priced", vec![KeyValue::new("currency", "EUR")]);
//!     Ok::<_, std::io::Error>(42)
//! }).await?;
//!
//! // A background job: span `task cleanup`, plus background_tasks_total{task_type,status}.
//! spans::background_task(&telemetry, "cleanup", async { Ok::<_, std::io::Error>(()) }).await?;
//! # let _ = total; Ok(()) }
//! ```

use std::fmt::Display;
use std::future::Future;
use std::time::Instant;

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, SpanRef, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue};

use crate::Telemetry;

/// Starts a span named `name` of `kind` as a child of `parent`, with
/// `attributes`, and returns the context holding it (or `parent` itself
/// when telemetry is disabled). End it with `cx.span().end()`.
pub fn start(
    telemetry: &Telemetry,
    name: impl Into<std::borrow::Cow<'static, str>>,
    kind: SpanKind,
    parent: &Context,
    attributes: Vec<KeyValue>,
) -> Context {
    match telemetry.tracer() {
        Some(tracer) => {
            // A handler's changed baggage is the baggage of what it starts.
            let parent = crate::baggage::effective(parent);
            let span = tracer
                .span_builder(name)
                .with_kind(kind)
                .with_attributes(attributes)
                .start_with_context(tracer, &parent);
            parent.with_span(span)
        }
        None => parent.clone(),
    }
}

/// Records `err` on `span` the way the OTel exception convention says: an
/// `exception` event with `exception.type` (the error's Rust type, e.g.
/// `std::io::Error`, `anyhow::Error`), `exception.message`, and, when the
/// error's alternate form shows more than its message (anyhow and eyre
/// print their cause chain with `{:#}`), that chain as
/// `exception.stacktrace`; status ERROR with the message. For a
/// `std::error::Error` prefer [`record_error`], which walks `source()`.
pub fn record_exception<E: Display + ?Sized>(span: &SpanRef<'_>, err: &E) {
    let message = err.to_string();
    let alternate = format!("{err:#}");
    let chain = (alternate != message).then_some(alternate);
    exception_event(span, std::any::type_name::<E>(), message, chain);
}

/// [`record_exception`] for a `std::error::Error`: the whole `source()`
/// chain goes to `exception.stacktrace` (`outer: cause: root`).
pub fn record_error<E: std::error::Error + 'static>(span: &SpanRef<'_>, err: &E) {
    let message = err.to_string();
    let chain = err.source().map(|_| crate::logs::error_chain(err));
    exception_event(span, std::any::type_name::<E>(), message, chain);
}

pub(crate) fn exception_event(span: &SpanRef<'_>, ty: &str, message: String, chain: Option<String>) {
    let mut attrs = vec![
        KeyValue::new("exception.type", ty.to_owned()),
        KeyValue::new("exception.message", message.clone()),
    ];
    if let Some(c) = chain {
        attrs.push(KeyValue::new("exception.stacktrace", c));
    }
    span.add_event("exception", attrs);
    span.set_status(Status::error(message));
}

/// Runs `fut` inside an internal span `name`, child of the current
/// context; the span is current while `fut` runs (so spans and log lines
/// inside nest under it), and an `Err` is recorded as an exception.
pub async fn in_span<F, T, E>(
    telemetry: &Telemetry,
    name: impl Into<std::borrow::Cow<'static, str>>,
    fut: F,
) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    let cx = start(telemetry, name, SpanKind::Internal, &Context::current(), Vec::new());
    let result = fut.with_context(cx.clone()).await;
    if let Err(e) = &result {
        record_exception(&cx.span(), e);
    }
    cx.span().end();
    result
}

/// Runs a background task under a root-or-child internal span
/// `task {task_type}` (attribute `task.type`), and counts it:
/// `background_tasks_total{task_type,status}` and
/// `background_task_duration_seconds{task_type}`.
pub async fn background_task<F, T, E>(telemetry: &Telemetry, task_type: &str, fut: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: Display,
{
    let started = Instant::now();
    let cx = start(
        telemetry,
        format!("task {task_type}"),
        SpanKind::Internal,
        &Context::current(),
        vec![KeyValue::new("task.type", task_type.to_owned())],
    );
    let result = fut.with_context(cx.clone()).await;
    if let Err(e) = &result {
        record_exception(&cx.span(), e);
    }
    cx.span().end();
    telemetry.metrics().record_task(task_type, result.is_ok(), started.elapsed().as_secs_f64());
    result
}
