//! Whether the object store is answering, as this node's requests found:
//! for `/health` (degraded while requests fail) and so queries stop
//! waiting on a store that is down.
//!
//! Every request's outcome is recorded: an answer (even "not found" or a
//! lost conditional write) means the store works, a transport error, a
//! timeout or a 5xx means it does not. While it does not, a query's read
//! of an uncached range fails at once instead of waiting out its deadline
//! again ([`Availability::fail_fast`]) — a query touching twenty cold
//! blocks would otherwise wait twenty deadlines. Every [`PROBE_EVERY`] one
//! read is let through to find out whether the store is back; background
//! requests (manifest polls, heartbeats, uploads) keep trying on their own
//! schedule and clear the state as soon as one succeeds.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How long after a failure query reads fail at once before one is tried
/// again.
pub(crate) const PROBE_EVERY: Duration = Duration::from_secs(5);

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Availability {
    state: Mutex<Option<Failing>>,
}

/// The store has been failing since `since`.
#[derive(Debug, Clone)]
struct Failing {
    since: Instant,
    last: Instant,
    error: String,
    failures: u64,
}

impl Availability {
    /// A request got an answer.
    pub(crate) fn answered(&self) -> bool {
        let was = self.state.lock().take();
        if let Some(failing) = &was {
            tracing::info!(
                down_for = ?failing.since.elapsed(),
                failed_requests = failing.failures,
                "the object store answers again"
            );
        }
        was.is_some()
    }

    /// A request failed without an answer from the store (or with a 5xx).
    pub(crate) fn failed(&self, error: &dyn std::fmt::Display) {
        let now = Instant::now();
        let mut state = self.state.lock();
        match &mut *state {
            Some(failing) => {
                failing.last = now;
                failing.failures += 1;
                failing.error = error.to_string();
            }
            None => {
                tracing::warn!(
                    error = %error,
                    "the object store is not answering: queries skip block ranges they have not cached, \
                     ingest continues into the WAL and flushes are retried"
                );
                *state = Some(Failing { since: now, last: now, error: error.to_string(), failures: 1 });
            }
        }
    }

    /// Why a query's read should not wait on the store now: it failed less
    /// than [`PROBE_EVERY`] ago.
    pub(crate) fn fail_fast(&self) -> Option<String> {
        let state = self.state.lock();
        let failing = state.as_ref()?;
        (failing.last.elapsed() < PROBE_EVERY).then(|| {
            format!(
                "not asked: the object store has not answered for {:.0?} (last error: {})",
                failing.since.elapsed(),
                failing.error
            )
        })
    }

    /// `None` while the store answers; else since when it has not, how
    /// many requests failed, and the last error.
    pub(crate) fn degraded(&self) -> Option<String> {
        let state = self.state.lock();
        let failing = state.as_ref()?;
        Some(format!(
            "degraded: the object store has not answered for {:.0?} ({} failed requests; last: {})",
            failing.since.elapsed(),
            failing.failures,
            failing.error
        ))
    }
}
