//! The pipeline between receivers and storage: processors that limit,
//! batch, sample, rewrite and redact spans or derive metrics from them
//! (span metrics, service graph), and exporters that store or forward them
//! — built from a Collector-style config.
//!
//! Every stage is a [`TracesConsumer`] wrapping the next one, so a chain is
//! just nested consumers and the acknowledgement contract flows through it
//! unchanged: a stage returns `Ok` only when everything downstream did. The
//! one exception is tail sampling, which must hold spans until a trace is
//! complete; it says so in its docs and in `ARCHITECTURE.md`.
//!
//! Config is read by [`config::parse`], which reports *every* problem with
//! its key path and a fix instead of stopping at the first, so
//! `sightline validate-config` can print them all. Every component type is
//! one factory in [`registry::FACTORIES`]; parsing, building and the docs
//! all read that table.
#![deny(missing_docs)]

mod build;
mod component;
pub mod config;
pub mod exporter;
mod metrics;
pub mod processor;
pub mod receiver;
pub mod registry;
mod signal;

pub use build::{Built, Entries, Exporters, build};
pub use component::Component;
pub use metrics::Metrics;
pub use signal::{Consumer, Signal};

#[cfg(test)]
mod tests;
