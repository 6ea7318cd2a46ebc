//! Test doubles for receiver tests (feature `testing`): the OTLP receivers'
//! tests here and the Zipkin receiver's tests both drive a receiver into a
//! consumer that records, refuses or holds what it is given, and both read
//! the front's metrics back as text. Written once so the two suites test
//! the same double.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flate2::Compression;
use flate2::write::GzEncoder;
use prometheus_client::registry::Registry;
use sightline_model::{Batch, ConsumeError, Span, TracesConsumer};
use tokio::sync::{Semaphore, mpsc};

/// Records batches; can be told to fail, or to block until released.
#[derive(Default)]
pub struct RecordingConsumer {
    batches: Mutex<Vec<Batch>>,
    fail: Mutex<Option<ConsumeError>>,
    gate: Option<(mpsc::UnboundedSender<()>, Arc<Semaphore>)>,
}

/// The test's side of a gated [`RecordingConsumer`]: each call to the
/// consumer reports on `entered`, then waits for a permit on `release`.
pub struct Gate {
    /// One message per call that has reached the consumer.
    pub entered: mpsc::UnboundedReceiver<()>,
    /// Add one permit per call to let through.
    pub release: Arc<Semaphore>,
}

impl RecordingConsumer {
    /// A consumer that holds every call until the returned [`Gate`] lets it
    /// through, so a test can look at what is in flight meanwhile.
    pub fn gated() -> (Self, Gate) {
        let (entered_tx, entered) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        let consumer = Self { gate: Some((entered_tx, Arc::clone(&release))), ..Self::default() };
        (consumer, Gate { entered, release })
    }

    /// The batches consumed so far, in order.
    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().unwrap().clone()
    }

    /// The spans of all batches consumed so far, in order.
    pub fn spans(&self) -> Vec<Span> {
        self.batches().iter().flat_map(|b| b.spans().to_vec()).collect()
    }

    /// Refuses every later batch with `err`.
    pub fn fail_with(&self, err: ConsumeError) {
        *self.fail.lock().unwrap() = Some(err);
    }
}

#[async_trait]
impl TracesConsumer for RecordingConsumer {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        if let Some((entered, release)) = &self.gate {
            entered.send(()).unwrap();
            release.acquire().await.unwrap().forget();
        }
        if let Some(err) = self.fail.lock().unwrap().clone() {
            return Err(err);
        }
        self.batches.lock().unwrap().push(batch);
        Ok(())
    }
}

/// The registry in Prometheus text format.
pub fn metrics_text(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out
}

/// Panics, showing all metrics, unless `line` is one whole line of them.
pub fn assert_metric(registry: &Registry, line: &str) {
    let text = metrics_text(registry);
    assert!(text.lines().any(|l| l == line), "missing metric line {line:?} in:\n{text}");
}

/// `data` gzip-compressed.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}
