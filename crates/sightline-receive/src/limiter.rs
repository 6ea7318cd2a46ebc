//! The in-flight byte budget shared by both protocols.
//!
//! A tokio [`Semaphore`] whose permits are bytes. Requests take permits as
//! their body arrives (and again as it is decompressed) with `try_acquire`,
//! never waiting: when the budget is spent the request is refused with a
//! retryable error at once, so memory stays bounded and senders back off
//! instead of piling up queued bodies.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The shared budget.
#[derive(Debug)]
pub(crate) struct Limiter {
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

impl Limiter {
    /// A budget of `bytes` (clamped to what a semaphore can count).
    pub(crate) fn new(bytes: usize) -> Self {
        let capacity = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Limiter { semaphore: Arc::new(Semaphore::new(capacity)), capacity }
    }

    /// An empty claim on the budget, grown as a request's bytes arrive.
    pub(crate) fn claim(&self) -> Inflight {
        Inflight { semaphore: Arc::clone(&self.semaphore), capacity: self.capacity, permit: None }
    }

    /// Bytes currently free (for tests).
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// Bytes one request holds; released when dropped.
#[derive(Debug)]
pub(crate) struct Inflight {
    semaphore: Arc<Semaphore>,
    capacity: usize,
    permit: Option<OwnedSemaphorePermit>,
}

impl Inflight {
    /// Bytes held.
    pub(crate) fn held(&self) -> usize {
        self.permit.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }

    /// Takes `bytes` more without waiting; false when the budget is spent.
    ///
    /// One request never holds more than the whole budget, so a request
    /// larger than the budget (a misconfiguration) still gets through when
    /// it is alone instead of being refused forever.
    pub(crate) fn try_grow(&mut self, bytes: usize) -> bool {
        let want = bytes.min(self.capacity.saturating_sub(self.held()));
        if want == 0 {
            return true;
        }
        let Ok(want) = u32::try_from(want) else { return false };
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
    pub(crate) fn release(&mut self, bytes: usize) {
        if let Some(permit) = &mut self.permit {
            let n = bytes.min(permit.num_permits());
            drop(permit.split(n));
        }
    }
}
