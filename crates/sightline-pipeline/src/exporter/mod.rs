//! Exporters: the ends of a pipeline.
//!
//! The embedded store is one (the binary passes it in); this module adds
//! [`Fanout`] to several, [`debug::DebugExporter`] that prints spans, and
//! [`otlp::OtlpExporter`] that forwards to another OTLP endpoint through a
//! persistent queue.

pub mod debug;
pub mod otlp;
mod queue;

/// Settings of the `store` exporter: none; the binary passes the store in
/// ([`crate::Exporters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig;

use std::sync::Arc;

use async_trait::async_trait;
use sightline_model::{Batch, ConsumeError, TracesConsumer};

/// Sends each batch to every exporter concurrently; `Ok` only when all
/// accepted it. When one refuses, the sender retries the whole batch, so
/// the others may see it twice: delivery is at-least-once, and the store
/// drops duplicate spans by id.
pub struct Fanout {
    targets: Vec<Arc<dyn TracesConsumer>>,
}

impl Fanout {
    /// Fans out to `targets` (one target is passed through directly by the
    /// builder, without a `Fanout`).
    pub fn new(targets: Vec<Arc<dyn TracesConsumer>>) -> Fanout {
        Fanout { targets }
    }
}

#[async_trait]
impl TracesConsumer for Fanout {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        let sends = self.targets.iter().map(|t| t.consume_traces(batch.clone()));
        let results = futures_util::future::join_all(sends).await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }
}
