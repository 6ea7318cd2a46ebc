//! Exporters: the ends of a pipeline.
//!
//! The embedded store is one (the binary passes it in); this module adds
//! [`Fanout`] to several, [`debug::DebugExporter`] that prints what passes,
//! [`otlp::OtlpExporter`] that forwards to another OTLP endpoint through a
//! persistent queue, and the Prometheus exporters ([`prometheus`]). The
//! queued ones (OTLP, remote write) share one delivery loop (`deliver`)
//! and keep each tenant's data in a lane of its own (`tenants`).

pub mod debug;
mod deliver;
pub mod otlp;
pub mod prometheus;
mod queue;
mod tenants;
pub(crate) mod unstored;

/// Settings of the `store` exporter: none; the binary passes the store in
/// ([`crate::Exporters`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig;

use std::sync::Arc;

use sightline_model::ConsumeError;

use crate::signal::{Unit, consumers_for_units};

/// Sends each unit to every target concurrently; `Ok` only when all
/// accepted it. When one refuses, the sender retries the whole unit, so
/// the others may see it twice: delivery is at-least-once, and the store
/// drops duplicate spans by id.
pub struct Fanout<U: Unit> {
    targets: Vec<Arc<U::Consumer>>,
}

impl<U: Unit> Fanout<U> {
    /// Fans out to `targets` (one target is passed through directly by the
    /// builder, without a `Fanout`).
    pub fn new(targets: Vec<Arc<U::Consumer>>) -> Fanout<U> {
        Fanout { targets }
    }

    async fn consume(&self, unit: U) -> Result<(), ConsumeError> {
        let sends = self.targets.iter().map(|t| U::send(t, unit.clone()));
        let results = futures_util::future::join_all(sends).await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }
}

consumers_for_units!(Fanout);
