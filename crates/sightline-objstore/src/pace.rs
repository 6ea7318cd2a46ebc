//! How often a node reads a shared manifest: every `--poll-interval`
//! while the cluster is busy, less and less often while it is idle.
//!
//! Every manifest poll is a request the bucket bills (a conditional GET
//! answered `304 Not Modified` is still a GET), and an idle node used to
//! poll each tenant's trace and log manifests every 5 s whatever happened.
//! A manifest only changes when some node flushes or merges, so while
//! polls keep finding it unchanged and nobody queries this node, the wait
//! between two polls doubles, up to `--idle-poll-interval`. It is back to
//! `--poll-interval` as soon as
//!
//! * a poll finds the manifest changed (another node is flushing);
//! * this node changes it itself (it is ingesting, so others may be too);
//! * a query arrives on this node (it is read, so it should be fresh; see
//!   [`Activity`]).
//!
//! The pace governs the stores' background pollers only
//! (`BlockStorage::poll_due`); an explicit refresh reads at once.
//!
//! The price: the first query after an idle stretch may see the manifest
//! as it was up to `--idle-poll-interval` ago (the next ones see it at
//! most `--poll-interval` old). Spans another node flushed in that window
//! are missing from that one answer: they left that node's head (which
//! queries also read, `peers.rs`) when its manifest listed them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// When this node was last queried, shared by all its manifests.
#[derive(Debug)]
pub(crate) struct Activity {
    base: Instant,
    /// Milliseconds since `base` of the last query, plus one; 0: never.
    last: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Activity {
        Activity { base: Instant::now(), last: AtomicU64::new(0) }
    }

    /// Records a query now.
    pub(crate) fn note(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// Whether a query came within `window` before `now`.
    fn within(&self, window: Duration, now: Instant) -> bool {
        match self.last.load(Ordering::Relaxed) {
            0 => false,
            last => {
                let now = u64::try_from(now.duration_since(self.base).as_millis()).unwrap_or(u64::MAX);
                now.saturating_sub(last - 1) <= u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
            }
        }
    }
}

/// One manifest's polling pace. See the module docs.
#[derive(Debug)]
pub(crate) struct Pace {
    /// `--poll-interval`: the pace while busy, and how often the store's
    /// poller asks.
    poll: Duration,
    /// `--idle-poll-interval`: the longest wait while idle.
    idle: Duration,
    activity: Arc<Activity>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the manifest was last read.
    checked: Option<Instant>,
    /// Polls in a row that found it unchanged.
    quiet: u32,
}

impl Pace {
    pub(crate) fn new(poll: Duration, idle: Duration, activity: Arc<Activity>) -> Pace {
        Pace { poll, idle: idle.max(poll), activity, state: Mutex::new(State::default()) }
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        self.poll
    }

    /// The wait between two reads of the manifest now.
    fn wait(&self, quiet: u32, now: Instant) -> Duration {
        if self.activity.within(self.idle, now) {
            return self.poll;
        }
        self.poll.saturating_mul(1u32 << quiet.min(16)).min(self.idle)
    }

    /// Whether the poller's call at `now` should read the manifest. The
    /// poller calls every `poll` (a little late, as sleeps are): half a
    /// `poll` of slack keeps a due read from slipping to the next call.
    pub(crate) fn due(&self, now: Instant) -> bool {
        let state = self.state.lock();
        let Some(checked) = state.checked else { return true };
        now.saturating_duration_since(checked) + self.poll / 2 >= self.wait(state.quiet, now)
    }

    /// The manifest was read at `now`; `changed`: it was not as last seen
    /// (or this node changed it).
    pub(crate) fn read(&self, changed: bool, now: Instant) {
        let mut state = self.state.lock();
        state.checked = Some(now);
        state.quiet = if changed { 0 } else { state.quiet.saturating_add(1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Times of the manifest reads over `secs` seconds of polls every
    /// second, `changed` telling whether each read found a change.
    fn reads(pace: &Pace, start: Instant, secs: u64, changed: impl Fn(u64) -> bool) -> Vec<u64> {
        let mut out = Vec::new();
        for t in 0..secs {
            let now = start + S * u32::try_from(t).unwrap();
            if pace.due(now) {
                pace.read(changed(t), now);
                out.push(t);
            }
        }
        out
    }

    #[test]
    fn an_unchanged_manifest_is_read_less_and_less_often_up_to_the_idle_interval() {
        let pace = Pace::new(S, S * 8, Arc::new(Activity::new()));
        let start = Instant::now();
        assert_eq!(reads(&pace, start, 40, |_| false), [0, 2, 6, 14, 22, 30, 38]);
    }

    #[test]
    fn a_change_brings_the_pace_back_to_the_poll_interval() {
        let pace = Pace::new(S, S * 8, Arc::new(Activity::new()));
        let start = Instant::now();
        assert_eq!(reads(&pace, start, 20, |t| t == 6), [0, 2, 6, 7, 9, 13]);
    }

    #[test]
    fn a_recent_query_keeps_the_poll_interval() {
        let activity = Arc::new(Activity::new());
        let pace = Pace::new(S, S * 8, Arc::clone(&activity));
        let start = Instant::now();
        activity.note();
        // Within the idle window after the query: every poll reads.
        assert_eq!(reads(&pace, start, 6, |_| false), [0, 1, 2, 3, 4, 5]);
        // Long after it: backing off again.
        let later = start + S * 100;
        assert!(pace.due(later));
        pace.read(false, later);
        assert!(!pace.due(later + S));
    }
}
