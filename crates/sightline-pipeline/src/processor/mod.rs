//! Processors: each wraps the next [`sightline_model::TracesConsumer`].
//!
//! Order matters and follows the Collector's advice: the memory limiter
//! first, then samplers and attribute rewriting, batching last before the
//! exporters. Span metrics and the service graph go before any sampler, so
//! they count every span, and after redaction, so masked values never
//! become metric labels.

pub mod attributes;
pub mod batch;
pub mod memory_limiter;
pub mod probabilistic;
pub mod redaction;
pub mod servicegraph;
pub mod spanmetrics;
pub mod tail;

use std::sync::Arc;
use std::time::SystemTime;

use sightline_model::TracesConsumer;

/// The stage after a processor.
pub type Next = Arc<dyn TracesConsumer>;

/// Where time-keeping processors read the time; tests inject a fixed one.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// A `HashMap` with foldhash, for the per-span lookups of span metrics, the
/// service graph and redaction's key verdicts, where SipHash (and later a
/// byte-by-byte FNV-1a) showed in profiles. Seeded per map, and the maps it
/// serves are bounded (series limit, store size, cached keys).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
