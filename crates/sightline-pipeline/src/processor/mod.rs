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

/// FNV-1a: a fast hash for the per-span lookups of span metrics and the
/// service graph. Not flooding-resistant; the maps it serves are bounded
/// (series limit, store size), so a crafted collision costs at most a scan
/// of a bounded map.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A `HashMap` hashed with [`Fnv`].
pub(crate) type FnvMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;
