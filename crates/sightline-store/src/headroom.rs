//! Memory headroom: whether the process is within one head cycle's working
//! set of the memory limiter's soft limit, so the store shrinks that
//! working set *before* the limiter starts refusing.
//!
//! The limiter's pressure ([`sightline_model::Pressure`]) says "soft" only
//! once RSS has reached the soft limit, and by then exports are already
//! being refused: the store's reaction (cut the head at a quarter, defer
//! merges) comes one reading too late. At a steady load (the 10-minute
//! soak at half the sustained rate) the RSS peaks are one head cycle on top
//! of a floor that grows with the stored blocks: a full live head, the
//! frozen head being flushed and the flush's buffers (~50 MiB at the
//! default 16 MiB head), with a merge's ~30 MiB on top when one runs. So
//! the store watches the resident size itself, against an *early limit*
//! one eighth of the memory limit below the soft limit (147 MiB of 256):
//! above it, the head is cut at half its size (half a head cycle: ~25 MiB
//! less at the peak) and full-width merges wait, until the compaction debt
//! reaches half the write stall (merges must never be what stalls
//! flushes). Below it nothing changes: full heads, merges at once.
//!
//! The reading is the same VmRSS the limiter reads. It is taken by the
//! store's background tasks only when a decision depends on it (a head
//! past half its size, a merge due), not on a timer.

use std::fmt;
use std::sync::Arc;

use sightline_model::MemoryBudget;

/// Reads the process's resident size in bytes (`None`: cannot tell).
#[derive(Clone)]
pub struct Resident(Arc<dyn Fn() -> Option<u64> + Send + Sync>);

impl Resident {
    /// This process's resident set size, from `/proc/self/status`.
    pub fn process() -> Resident {
        Resident(Arc::new(process_resident_bytes))
    }

    /// Any other reading (tests set the memory they need).
    pub fn from_fn(read: impl Fn() -> Option<u64> + Send + Sync + 'static) -> Resident {
        Resident(Arc::new(read))
    }

    pub(crate) fn read(&self) -> Option<u64> {
        (self.0)()
    }
}

impl fmt::Debug for Resident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resident")
    }
}

impl Default for Resident {
    fn default() -> Self {
        Resident::process()
    }
}

/// The early limit for a budget: the soft limit less an eighth of the
/// limit. An eighth (32 MiB at the default 256 MiB) is what cutting heads
/// at half their size saves at the peak (half a live head, half a frozen
/// head, half a flush's buffers at L/16 heads: ~25 MiB), so a process that
/// reaches the early limit with full heads stays under the soft limit with
/// half ones.
pub(crate) fn early_limit(memory: &MemoryBudget) -> u64 {
    memory.soft_limit().saturating_sub(memory.limit() / 8)
}

/// Whether `resident` bytes leave less than one head cycle of headroom
/// under the soft limit. Unknown memory is never tight.
pub(crate) fn is_tight(resident: Option<u64>, memory: &MemoryBudget) -> bool {
    resident.is_some_and(|bytes| bytes >= early_limit(memory))
}

fn process_resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_early_limit_is_an_eighth_of_the_limit_below_the_soft_limit() {
        let memory = MemoryBudget::new(256 << 20);
        // Soft limit 0.7 L = 179.2 MiB; early 0.575 L = 147.2 MiB.
        assert_eq!(memory.soft_limit() - early_limit(&memory), 32 << 20);
        assert!(!is_tight(Some(early_limit(&memory) - 1), &memory));
        assert!(is_tight(Some(early_limit(&memory)), &memory));
        assert!(is_tight(Some(memory.soft_limit()), &memory));
        assert!(!is_tight(None, &memory), "unknown memory is not tight");
    }

    #[test]
    fn the_process_reading_is_plausible() {
        let bytes = Resident::process().read().expect("/proc/self/status has VmRSS on Linux");
        assert!(bytes > 1 << 20 && bytes < 64 << 30, "{bytes} bytes resident");
    }
}
