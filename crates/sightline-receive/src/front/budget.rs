//! The in-flight byte budget every receiver shares.
//!
//! A tokio [`Semaphore`] whose permits are bytes. A request takes permits
//! as its body arrives, again as it is inflated, and for the memory its
//! decoding will take (estimated before decoding, see [`super::cost`]),
//! always with `try_acquire`, never waiting: when the budget is spent the
//! request is refused with a retryable error at once, so memory stays
//! bounded and senders back off instead of piling up queued bodies.
//!
//! Charges follow bytes that exist, never what a request announces: a
//! sender that declares `Content-Length: 16777216` and stalls holds only
//! what it sent, and only until the body timeout.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Failure;

/// The shared budget.
#[derive(Debug)]
pub(crate) struct Budget {
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

impl Budget {
    /// A budget of `bytes` (clamped to what a semaphore can count).
    pub(crate) fn new(bytes: usize) -> Self {
        let capacity = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Budget { semaphore: Arc::new(Semaphore::new(capacity)), capacity }
    }

    /// An empty claim on the budget, grown as a request's bytes arrive.
    pub(crate) fn claim(&self) -> Claim {
        Claim { semaphore: Arc::clone(&self.semaphore), capacity: self.capacity, permit: None }
    }

    /// Bytes currently free.
    pub(crate) fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// The whole budget.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

/// Bytes one request holds; given back when dropped.
#[derive(Debug)]
pub struct Claim {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Claim {
    /// Bytes held.
    pub fn held(&self) -> usize {
        self.permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Takes `bytes` more without waiting. Fails with a retryable refusal
    /// when the budget is spent now, and with "too large" when this request
    /// alone would need more than the whole budget (waiting cannot help).
    pub fn grow(&mut self, bytes: usize) -> Result<(), Failure> {
        if bytes == 0 {
            return Ok(());
        }
        let total = self.held().saturating_add(bytes);
        if total > self.capacity {
            return Err(Failure::too_large(format!(
                "the request needs about {} MiB of memory in flight, more than all receivers may hold \
                 at once ({} MiB, half of --memory-limit); send smaller requests or raise --memory-limit",
                total.div_ceil(1 << 20),
                self.capacity >> 20
            )));
        }
        if self.try_grow(bytes) { Ok(()) } else { Err(Failure::inflight()) }
    }

    /// Takes `bytes` more without waiting; false when the budget is spent.
    pub(crate) fn try_grow(&mut self, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let Ok(want) = u32::try_from(bytes) else { return false };
        match Arc::clone(&self.semaphore).try_acquire_many_owned(want) {
            Ok(more) => {
                match &mut self.permit {
                    Some(permit) => permit.merge(more),
                    None => self.permit = Some(more),
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Gives back up to `bytes` (e.g. the compressed body once inflated).
    pub fn release(&mut self, bytes: usize) {
        if let Some(permit) = &mut self.permit {
            let n = bytes.min(permit.num_permits());
            drop(permit.split(n));
        }
    }

    /// Shrinks the claim to `bytes` once what it covers is known exactly
    /// (never grows it).
    pub fn shrink_to(&mut self, bytes: usize) {
        self.release(self.held().saturating_sub(bytes));
    }
}
