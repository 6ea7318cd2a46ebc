//! What the stores of one process share when each tenant has its own
//! store: the head bytes and the query slots. Both are shares of the one
//! [`MemoryBudget`], so the process stays within `--memory-limit` however
//! many tenants write.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sightline_model::MemoryBudget;

use crate::Metrics;

/// The head bytes all stores of the process share: each store's head is
/// cut at `total / open stores`, but never below `total / max stores`. So
/// the live heads together stay within `total` (with `max` stores open,
/// each gets exactly its floor), and the one store of a process without
/// tenants keeps the whole share.
#[derive(Debug)]
pub struct HeadShare {
    total: usize,
    floor: usize,
    open: AtomicUsize,
}

impl HeadShare {
    /// `total` bytes shared by at most `max_stores` stores.
    pub fn new(total: usize, max_stores: usize) -> HeadShare {
        HeadShare { total, floor: (total / max_stores.max(1)).max(1), open: AtomicUsize::new(0) }
    }

    /// The bound of one store's head now.
    pub fn per_store(&self) -> usize {
        (self.total / self.open.load(Ordering::Acquire).max(1)).max(self.floor)
    }

    /// Counts a store in (at open) and out (at shutdown).
    pub(crate) fn join(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn leave(&self) {
        let _ = self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Stores counted in.
    pub fn stores(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

/// The query slots: as many as one query's result budget fits in the
/// budget for all queries (4 with the default shares), shared by every
/// store of the process.
#[derive(Debug)]
pub(crate) struct QueryGate {
    pub(crate) slots: Arc<tokio::sync::Semaphore>,
    pub(crate) total: usize,
    pub(crate) each: usize,
    pub(crate) metrics: Arc<Metrics>,
}

impl QueryGate {
    pub(crate) fn new(memory: &MemoryBudget, metrics: Arc<Metrics>) -> QueryGate {
        let each = memory.query_bytes_each().max(1);
        let total = (memory.query_bytes() / each).max(1);
        QueryGate { slots: Arc::new(tokio::sync::Semaphore::new(total)), total, each, metrics }
    }

    pub(crate) fn running(&self) -> usize {
        self.total - self.slots.available_permits()
    }
}

/// The shares one store takes part in. [`crate::EmbeddedStore::open`]
/// makes its own; [`crate::Tenants`] hands one to every tenant's store.
#[derive(Debug, Clone)]
pub struct Shared {
    pub(crate) heads: Arc<HeadShare>,
    pub(crate) queries: Arc<QueryGate>,
}

impl Shared {
    /// Shares for up to `max_stores` stores: the head bytes of `options`
    /// and the query slots of its memory budget.
    pub fn new(options: &crate::Options, max_stores: usize, metrics: Arc<Metrics>) -> Shared {
        Shared {
            heads: Arc::new(HeadShare::new(options.head_max_bytes, max_stores)),
            queries: Arc::new(QueryGate::new(&options.memory, metrics)),
        }
    }

    /// The head share.
    pub fn heads(&self) -> &Arc<HeadShare> {
        &self.heads
    }
}
