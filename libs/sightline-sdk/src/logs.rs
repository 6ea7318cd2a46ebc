//! Log lines with trace context (seed 002): a `tracing-subscriber` layer
//! writing one JSON object per event.
//!
//! The default [`LogShape::Seed`] is seed 002's `_json_sink` exactly:
//! `timestamp` (UTC, microseconds, `Z`), `level` with loguru's names
//! (`WARNING`, not `WARN`), `service`, `message`, `trace_id`, `span_id`
//! (zeros when no span is current), then `exception` when the event
//! carries an error (a field named `error` or `exception`, or any error
//! value: its whole `source()` chain, `outer: cause: root`); the event's
//! other fields follow (loguru would have formatted them into the
//! message). [`LogShape::Extended`] is the earlier shape: tracing's level
//! names, the `target`, and errors under their own field names
//! (`LOG_FORMAT=json-extended`).
//!
//! The ids come from the current OpenTelemetry context, which this crate's
//! helpers attach while they run and `tracing-opentelemetry` attaches when
//! a `tracing` span is entered; so a log line written anywhere inside a
//! request carries that request's trace id.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt as _;
//! let subscriber = tracing_subscriber::registry()
//!     .with(sightline_sdk::logs::JsonLayer::new("orders", std::io::stderr));
//! tracing::subscriber::with_default(subscriber, || tracing::info!(order = 7, "created"));
//! // {"timestamp":"2026-...Z","level":"INFO","service":"orders","message":"created",
//! //  "trace_id":"000...0","span_id":"0000000000000000","order":7}
//! ```

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context as LayerContext, Layer};

/// Which keys a JSON log line has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogShape {
    /// Seed 002's keys and level names, errors under `exception`.
    #[default]
    Seed,
    /// tracing's level names, plus `target`; errors keep their field name.
    Extended,
}

/// The layer; `W` is where lines go (`std::io::stderr`, a file, a buffer).
#[derive(Debug)]
pub struct JsonLayer<W> {
    service: String,
    make_writer: W,
    shape: LogShape,
}

impl<W> JsonLayer<W> {
    /// Lines for `service` in the seed's shape, written to `make_writer`.
    pub fn new(service: impl Into<String>, make_writer: W) -> JsonLayer<W> {
        JsonLayer { service: service.into(), make_writer, shape: LogShape::Seed }
    }

    /// The same layer writing lines of `shape`.
    pub fn with_shape(mut self, shape: LogShape) -> JsonLayer<W> {
        self.shape = shape;
        self
    }
}

/// loguru's name for a level (the seed's sink prints `record["level"].name`).
fn seed_level(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARNING",
        tracing::Level::INFO => "INFO",
        tracing::Level::DEBUG => "DEBUG",
        tracing::Level::TRACE => "TRACE",
    }
}

/// An error and its causes on one line: `outer: cause: root`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        // Some errors repeat their source in their own message.
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

struct Fields {
    map: Map<String, Value>,
    /// Fields recorded as error values (`record_error`), by name.
    errors: Vec<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.map.insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.map.insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.map.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.map.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.map.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.map.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.map.insert(field.name().to_owned(), Value::String(error_chain(value)));
        self.errors.push(field.name().to_owned());
    }
}

/// `SystemTime` as RFC 3339 UTC with microseconds (`2026-11-22T03:49:10.123456Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// The current trace and span ids as hex, zeros when there is no valid span.
pub fn current_ids() -> (String, String) {
    let cx = Context::current();
    let span = cx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        (sc.trace_id().to_string(), sc.span_id().to_string())
    } else {
        ("0".repeat(32), "0".repeat(16))
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: tracing::Subscriber,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: LayerContext<'_, S>) {
        let mut fields = Fields { map: Map::new(), errors: Vec::new() };
        event.record(&mut fields);
        let Fields { map: mut fields, errors } = fields;
        let message = fields.remove("message").unwrap_or(Value::String(String::new()));
        let (trace_id, span_id) = current_ids();
        let seed = self.shape == LogShape::Seed;
        // The seed puts one error under `exception`: an `exception` or
        // `error` field, else the first error value.
        let exception = if seed {
            ["exception", "error"]
                .into_iter()
                .map(str::to_owned)
                .chain(errors)
                .find_map(|k| fields.remove(&k))
        } else {
            None
        };
        // Written by hand to keep the seed's key order (a serde_json Map sorts keys).
        let mut line = String::with_capacity(256);
        let mut push = |k: &str, v: &Value| {
            line.push(if line.is_empty() { '{' } else { ',' });
            line.push_str(&Value::String(k.to_owned()).to_string());
            line.push(':');
            line.push_str(&v.to_string());
        };
        let level = event.metadata().level();
        push("timestamp", &Value::String(rfc3339(SystemTime::now())));
        push("level", &Value::String(if seed { seed_level(level).to_owned() } else { level.to_string() }));
        push("service", &Value::String(self.service.clone()));
        push("message", &message);
        push("trace_id", &Value::String(trace_id));
        push("span_id", &Value::String(span_id));
        if let Some(e) = &exception {
            push("exception", e);
        }
        if !seed {
            push("target", &Value::String(event.metadata().target().to_owned()));
        }
        for (k, v) in &fields {
            if !matches!(k.as_str(), "timestamp" | "level" | "service" | "trace_id" | "span_id" | "target") {
                push(k, v);
            }
        }
        line.push_str("}\n");
        let bytes = line.into_bytes();
        let _ = self.make_writer.make_writer().write_all(&bytes);
    }
}

/// Puts `tracing` events at WARN and above on the current OpenTelemetry
/// span as span events (name: the message; attributes `level`, `target`
/// and the event's fields), so a warning logged inside a request shows in
/// its trace.
///
/// Why: `tracing-opentelemetry` does this only for events inside a
/// `tracing` span; this crate's helpers make an OTel context current
/// instead (no `tracing` span), and such events were lost. Events inside a
/// `tracing` span are left to `tracing-opentelemetry` (no duplicates).
#[derive(Debug, Default, Clone, Copy)]
pub struct SpanEventsLayer;

impl<S> Layer<S> for SpanEventsLayer
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: LayerContext<'_, S>) {
        let level = *event.metadata().level();
        if level > tracing::Level::WARN || ctx.event_span(event).is_some() {
            return;
        }
        let cx = Context::current();
        let span = cx.span();
        if !span.is_recording() {
            return;
        }
        let mut fields = Fields { map: Map::new(), errors: Vec::new() };
        event.record(&mut fields);
        let name = match fields.map.remove("message") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => event.metadata().name().to_owned(),
        };
        let mut attrs = vec![
            opentelemetry::KeyValue::new("level", level.as_str()),
            opentelemetry::KeyValue::new("target", event.metadata().target().to_owned()),
        ];
        for (k, v) in fields.map {
            let v: opentelemetry::Value = match v {
                Value::String(s) => s.into(),
                Value::Bool(b) => b.into(),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => i.into(),
                    None => n.as_f64().unwrap_or_default().into(),
                },
                other => other.to_string().into(),
            };
            attrs.push(opentelemetry::KeyValue::new(k, v));
        }
        span.add_event(name, attrs);
    }
}
