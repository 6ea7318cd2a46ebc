//! The process's memory budget: every bound derived from `--memory-limit`,
//! in one place, and the memory pressure the limiter measures.
//!
//! Three stages spend memory on data that is not yet durable or not yet
//! sent: receivers decoding requests, the store's head, and queries
//! building results. Each gets a share of the limit here; the memory
//! limiter measures the whole process (RSS) against the soft and hard
//! limits and publishes what it sees as [`Pressure`] on a watch channel,
//! which the store follows (it cuts its head and defers merges while the
//! process is under pressure).
//!
//! The shares, for a limit L:
//!
//! | what | share | why |
//! |---|---|---|
//! | request bytes admitted per receiver | L/16 | decoded spans are ~4× their wire size, and decoded requests wait in the pipeline |
//! | live head | L/16 | a frozen head and the block being written from it need about as much again |
//! | live log head | L/32 | beside the trace head; up to two frozen log heads wait for their flush |
//! | query results being built, all queries | L/16 | results are serialised to JSON afterwards, which takes as much again |
//! | one query's results | L/64 | so four queries run at once; 4 MiB of spans at 256 MiB is ~3,000 realistic spans |
//! | open blocks' footers, page indexes, tables and bloom filters (the store's footer cache) | L/8 | ~2.4 B per stored realistic span: 32 MiB holds them for ~13M spans; beyond, what it does not hold is read again on demand (scan-resistant eviction keeps a fixed part of a cyclic read resident) |
//! | open log blocks' footers and trace id filters (the log store's block cache) | L/16 | what a trace lookup reads, ~1.2 B per stored record: 16 MiB holds ~13M records' worth |
//! | open log blocks' body word filters (the log store's word cache) | L/32 | ~4 B per stored record; apart, so body searches cannot evict what trace lookups need |
//! | soft limit (refusals start) | 0.7 L | flushes and decodes already admitted keep growing memory after refusals start |
//! | hard limit | L | |

use tokio::sync::watch;

/// How close the process is to its memory limit, as last measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Pressure {
    /// Below the soft limit.
    #[default]
    Normal,
    /// At or above the soft limit: new data is refused, buffers should
    /// be released, optional work deferred.
    Soft,
    /// At or above the hard limit.
    Hard,
}

/// The memory budget derived from one limit, and the pressure channel.
///
/// Built once by the binary and shared (`Arc`) by the memory limiter,
/// which publishes [`Pressure`], and the store, which subscribes.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    pressure: watch::Sender<Pressure>,
}

impl MemoryBudget {
    /// A budget for a process limited to `limit_bytes`.
    pub fn new(limit_bytes: u64) -> MemoryBudget {
        MemoryBudget { limit: limit_bytes, pressure: watch::Sender::new(Pressure::Normal) }
    }

    /// The limit itself (`--memory-limit`).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Where the memory limiter starts refusing data: 0.7 of the limit.
    pub fn soft_limit(&self) -> u64 {
        soft_limit_of(self.limit)
    }

    /// The hard limit: the limit itself.
    pub fn hard_limit(&self) -> u64 {
        self.limit
    }

    /// Bytes all receivers together admit at once: request bodies as they
    /// arrive plus the decoded size estimated before decoding (the front
    /// charges both, so a body of many empty spans cannot decode into
    /// gigabytes), half the limit.
    pub fn inflight_bytes(&self) -> usize {
        share(self.limit, 2)
    }

    /// The store's live head size: the default of `--head-max-size`.
    pub fn head_bytes(&self) -> usize {
        share(self.limit, 16)
    }

    /// The log store's live head size: logs arrive beside traces, so
    /// their head gets half the trace head's share. At L/64 (4 MiB, ~13k
    /// records at the default limit) a flush ran every ~0.3 s at 38k
    /// records/s, on one thread, and appends were refused while it ran;
    /// at L/32 a head is flushed as two blocks of about that size on two
    /// threads. The log store holds up to three heads (live + two frozen).
    pub fn log_head_bytes(&self) -> usize {
        share(self.limit, 32)
    }

    /// Bytes the store's cache of block footers (with page index),
    /// resource/scope tables and bloom filters may hold. These grow with
    /// the retained data (~2.4 B per realistic span, measured), so without
    /// a bound 100M stored spans would need more than the default limit;
    /// L/8 keeps ~13M spans' worth at the default 256 MiB.
    pub fn block_cache_bytes(&self) -> usize {
        share(self.limit, 8)
    }

    /// Bytes the log store's cache of block footers (with offset index)
    /// and trace id filters may hold: what a trace lookup reads (the
    /// filters of every block, the footer of the blocks that may hold the
    /// trace). Apart from the trace store's cache (a trace query must not
    /// evict log parts, nor the reverse) and from the body word filters'
    /// ([`MemoryBudget::log_word_cache_bytes`]: a body search reads every
    /// block's, ~4 B per record, and with them in one cache it pushed out
    /// what lookups need; logs of one trace p99 went 10 → 18 ms at 10M
    /// records). These parts take ~1.2 B per stored record (footer 0.7,
    /// trace id filters 0.5, measured); L/16 keeps ~13M records' worth at
    /// the default 256 MiB, beyond which the parts not held are read again
    /// (the cache keeps a fixed part of what lookups cycle through).
    pub fn log_block_cache_bytes(&self) -> usize {
        share(self.limit, 16)
    }

    /// Bytes the log store's cache of body word filters may hold (~4 B per
    /// stored record, measured): L/32 keeps ~2M records' worth at the
    /// default 256 MiB, beyond which body searches read the filters again
    /// (a small file per block).
    pub fn log_word_cache_bytes(&self) -> usize {
        share(self.limit, 32)
    }

    /// Bytes of query results all queries may build at once.
    pub fn query_bytes(&self) -> usize {
        share(self.limit, 16)
    }

    /// Bytes of results one query may build. Measured: 20 parallel
    /// `limit=100000` searches over 900k stored spans, while 4 senders
    /// ingested, peaked at 265 MiB with L/32 (8 MiB) per query under a
    /// 256 MiB limit; JSON rendering of finished results comes on top.
    pub fn query_bytes_each(&self) -> usize {
        share(self.limit, 64)
    }

    /// The pressure last published.
    pub fn pressure(&self) -> Pressure {
        *self.pressure.borrow()
    }

    /// A receiver that sees every change of pressure.
    pub fn subscribe(&self) -> watch::Receiver<Pressure> {
        self.pressure.subscribe()
    }

    /// Publishes a new reading; subscribers wake only when it changes.
    pub fn set_pressure(&self, pressure: Pressure) {
        self.pressure.send_if_modified(|current| {
            let changed = *current != pressure;
            *current = pressure;
            changed
        });
    }
}

/// The soft limit for a limit: 70 %. The headroom is larger than the
/// Collector's 20 %: a block flush or decodes already admitted keep
/// growing memory after refusals start.
pub fn soft_limit_of(limit_bytes: u64) -> u64 {
    limit_bytes - limit_bytes * 3 / 10
}

fn share(limit: u64, parts: u64) -> usize {
    usize::try_from(limit / parts).unwrap_or(usize::MAX)
}
