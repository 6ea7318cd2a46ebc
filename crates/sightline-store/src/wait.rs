//! Waiting on a condition that a [`Notify`] announces changes of.

use tokio::sync::Notify;

/// Waits until `done()` holds or `deadline` passes, re-checking whenever
/// `notify` fires; returns `done()`.
pub(crate) async fn until(notify: &Notify, deadline: tokio::time::Instant, done: impl Fn() -> bool) -> bool {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        // Registered before the check, so a notification in between is not
        // missed.
        notified.as_mut().enable();
        if done() {
            return true;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return done();
        }
    }
}
