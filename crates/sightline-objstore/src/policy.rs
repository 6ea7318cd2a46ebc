//! How long a request to the object store may take and how often it is
//! retried, stated here rather than left to object_store's defaults (retry
//! up to 10 times over up to 3 minutes, 30 s per attempt): with those, a
//! query that needs a block range while the bucket is down would hang for
//! minutes.
//!
//! Two kinds of caller wait on the store, and they want opposite things:
//!
//! * a **query** reading a block range it has not cached: someone waits for
//!   the answer, and the block can be skipped (the result says less, the
//!   log and `/metrics` say why). It gets [`Policy::QUERY`], short and
//!   bounded as a whole by [`Policy::deadline`];
//! * **background work** — uploads, manifest swaps and polls, heartbeats,
//!   the lease, clean-up: nobody waits on it, and giving up early only
//!   means trying again later (the flusher retries with its own backoff and
//!   keeps the WAL until the manifest lists the block). It gets
//!   [`Policy::BACKGROUND`], patient per request but still bounded, so a
//!   failure reaches the log and `/health` within a minute.

use std::time::Duration;

/// Timeouts and retries of one kind of request. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long one attempt may take, response body included.
    pub request_timeout: Duration,
    /// How many times a failed attempt is retried (5xx, 429, a connection
    /// refused or reset; a timeout only for idempotent requests).
    pub max_retries: usize,
    /// First pause before a retry; it doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest pause between retries.
    pub max_backoff: Duration,
    /// No retry starts later than this after the first attempt.
    pub retry_timeout: Duration,
    /// The whole request, retries included, is given up after this (only
    /// enforced for query reads, where someone waits; `None`: the bounds
    /// above are the limit).
    pub deadline: Option<Duration>,
}

impl Policy {
    /// A query's read of a block range: one retry, at most 5 s in all.
    pub const QUERY: Policy = Policy {
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(3),
        max_retries: 1,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        retry_timeout: Duration::from_secs(3),
        deadline: Some(Duration::from_secs(5)),
    };

    /// Uploads, manifest reads and swaps, heartbeats, lease, clean-up: 30 s
    /// per attempt (an 8 MiB upload part at 300 KB/s), up to 4 retries
    /// started within 30 s. At worst about 2.5 minutes (every attempt
    /// timing out); a store that refuses or answers 5xx fails within 30 s.
    pub const BACKGROUND: Policy = Policy {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(30),
        max_retries: 4,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(8),
        retry_timeout: Duration::from_secs(30),
        deadline: None,
    };

    /// The settings as object_store config keys (`connect_timeout`,
    /// `timeout`), applied before the caller's own so an explicit setting
    /// wins.
    pub(crate) fn client_config(&self) -> [(String, String); 2] {
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        [
            ("connect_timeout".to_owned(), ms(self.connect_timeout)),
            ("timeout".to_owned(), ms(self.request_timeout)),
        ]
    }

    /// object_store's retry settings.
    #[cfg(any(feature = "aws", feature = "gcp", feature = "azure"))]
    pub(crate) fn retry(&self) -> object_store::RetryConfig {
        object_store::RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }
}
