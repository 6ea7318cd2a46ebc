//! Processors: each wraps the next [`sightline_model::TracesConsumer`].
//!
//! Order matters and follows the Collector's advice: the memory limiter
//! first, then samplers and attribute rewriting, batching last before the
//! exporters.

pub mod attributes;
pub mod batch;
pub mod memory_limiter;
pub mod probabilistic;
pub mod redaction;
pub mod tail;

use std::sync::Arc;

use sightline_model::TracesConsumer;

/// The stage after a processor.
pub type Next = Arc<dyn TracesConsumer>;
