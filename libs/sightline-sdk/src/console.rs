//! The console exporter: one human-readable line per span, used when no
//! OTLP endpoint is configured (the seeds' `ConsoleSpanExporter` role).

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

type Sink = Arc<Mutex<dyn Write + Send>>;

/// Writes `service kind name trace=… span=… parent=… 12.3ms status k=v…`
/// lines to stdout, or to any writer (tests).
#[derive(Clone)]
pub struct ConsoleExporter {
    service: String,
    sink: Sink,
}

impl std::fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleExporter").field("service", &self.service).finish_non_exhaustive()
    }
}

impl ConsoleExporter {
    /// Writes to stdout.
    pub fn stdout(service: impl Into<String>) -> ConsoleExporter {
        ConsoleExporter { service: service.into(), sink: Arc::new(Mutex::new(std::io::stdout())) }
    }

    /// Writes to `sink`.
    pub fn to_writer(service: impl Into<String>, sink: Arc<Mutex<dyn Write + Send>>) -> ConsoleExporter {
        ConsoleExporter { service: service.into(), sink }
    }

    /// The line for one span (no trailing newline).
    pub fn format(service: &str, span: &SpanData) -> String {
        let kind = match span.span_kind {
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
            SpanKind::Internal => "internal",
        };
        let dur = span.end_time.duration_since(span.start_time).unwrap_or_default();
        let mut line = format!(
            "[{service}] {kind} {:?} trace={} span={} parent={} {:.3}ms",
            span.name,
            span.span_context.trace_id(),
            span.span_context.span_id(),
            span.parent_span_id,
            dur.as_secs_f64() * 1e3,
        );
        match &span.status {
            Status::Error { description } => {
                let _ = write!(line, " ERROR({description})");
            }
            Status::Ok => line.push_str(" OK"),
            Status::Unset => {}
        }
        for kv in &span.attributes {
            let _ = write!(line, " {}={}", kv.key, kv.value);
        }
        for ev in span.events.iter() {
            let _ = write!(line, " event:{}", ev.name);
        }
        line
    }
}

impl SpanExporter for ConsoleExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut out = String::new();
        for span in &batch {
            out.push_str(&ConsoleExporter::format(&self.service, span));
            out.push('\n');
        }
        let mut sink =
            self.sink.lock().map_err(|_| OTelSdkError::InternalFailure("console sink poisoned".into()))?;
        sink.write_all(out.as_bytes())
            .and_then(|()| sink.flush())
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))
    }
}
