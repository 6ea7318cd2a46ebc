//! Memory limiter: refuses data, retryably, while the process uses too
//! much memory — backpressure instead of growth.
//!
//! Like the Collector's `memory_limiter`, it measures the process (here:
//! resident set size from `/proc/self/status`) on an interval rather than
//! per batch. Above the soft limit (`limit - spike`) new batches get
//! `Overloaded`; above the hard limit too, and a warning says memory is
//! not falling. Refusal never drops data: the sender retries it.
//!
//! Just over the soft limit a batch first waits up to [`SOFT_WAIT`] for
//! memory to fall (a flush or merge finishing frees tens of MiB within
//! moments), and is refused only if it does not. Refusing at once sent
//! every sender away for its whole retry delay (a second), and a server
//! hovering at the soft limit sat idle: 0.85 of 2 cores busy at realistic
//! saturation. A waiting batch is already decoded and counted in the
//! receiver's in-flight budget, and at most four wait; the upper half of
//! the headroom refuses at once.
//!
//! Refusing alone cannot lower memory that buffers already hold (the
//! store's head waits for more data or its age before it is flushed), so
//! while over the soft limit the limiter also calls an `on_pressure` hook
//! at most once a second — the Collector forces a GC at that point; here
//! the store cuts and flushes its head.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sightline_model::{
    Batch, ComponentHealth, ConsumeError, LogBatch, LogsConsumer, MetricBatch, MetricsConsumer,
    TracesConsumer,
};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::Component;
use crate::metrics::{Metrics, labels};

/// Settings of a memory limiter.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// How often memory is measured.
    pub check_interval: Duration,
    /// Hard limit in bytes.
    pub limit_bytes: u64,
    /// Headroom below the hard limit where refusals start (soft = limit - spike).
    pub spike_bytes: u64,
}

impl Config {
    /// Defaults relative to a limit: refuse from 70 % on (a spike headroom
    /// of 30 %, more than the Collector's 20 %: a block flush or a batch of
    /// decodes already admitted keeps growing memory after refusals start),
    /// checking every 50 ms.
    pub fn for_limit(limit_bytes: u64) -> Config {
        Config { check_interval: Duration::from_millis(50), limit_bytes, spike_bytes: limit_bytes * 3 / 10 }
    }
}

/// How long a batch waits just over the soft limit before it is refused.
pub const SOFT_WAIT: Duration = Duration::from_millis(500);

/// Batches waiting at once; more are refused at once. Waiting batches are
/// decoded, so this bounds the memory they hold, and a sender beyond it
/// still gets a refusal it can back off on.
const MAX_WAITING: usize = 4;

/// Reads the process's memory in bytes; `None` when it cannot.
pub(crate) type MemoryReader = Arc<dyn Fn() -> Option<u64> + Send + Sync>;

/// The processor, in front of `next` (of any signal: it implements each
/// signal's consumer trait that `N` does).
pub struct MemoryLimiter<N: ?Sized = dyn TracesConsumer> {
    id: String,
    next: Arc<N>,
    soft: u64,
    hard: u64,
    current: Arc<AtomicU64>,
    /// Notified by the measuring task when memory is below the soft limit.
    relief: Arc<Notify>,
    /// Batches in [`MemoryLimiter::settled`]'s wait.
    waiting: AtomicUsize,
    metrics: Arc<Metrics>,
    task: JoinHandle<()>,
}

/// Reads the resident set size of this process, in bytes.
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

impl<N: ?Sized + Send + Sync> MemoryLimiter<N> {
    /// Starts the measuring task; must run inside a tokio runtime.
    pub fn new(
        id: &str,
        config: &Config,
        next: Arc<N>,
        metrics: Arc<Metrics>,
        on_pressure: Option<Arc<dyn Fn() + Send + Sync>>,
    ) -> MemoryLimiter<N> {
        MemoryLimiter::with_reader(id, config, next, metrics, on_pressure, Arc::new(resident_bytes))
    }

    /// [`MemoryLimiter::new`] measuring with `read` instead of the RSS
    /// (tests set the memory they need).
    pub(crate) fn with_reader(
        id: &str,
        config: &Config,
        next: Arc<N>,
        metrics: Arc<Metrics>,
        on_pressure: Option<Arc<dyn Fn() + Send + Sync>>,
        read: MemoryReader,
    ) -> MemoryLimiter<N> {
        let current = Arc::new(AtomicU64::new(read().unwrap_or(0)));
        let relief = Arc::new(Notify::new());
        let task = {
            let (current, relief, metrics, every) =
                (Arc::clone(&current), Arc::clone(&relief), Arc::clone(&metrics), config.check_interval);
            let hard = config.limit_bytes;
            let soft = config.limit_bytes.saturating_sub(config.spike_bytes);
            tokio::spawn(async move {
                let mut last_pressure: Option<std::time::Instant> = None;
                let mut warned = false;
                loop {
                    tokio::time::sleep(every).await;
                    let Some(rss) = read() else { continue };
                    current.store(rss, Ordering::Relaxed);
                    if rss < soft {
                        relief.notify_waiters();
                    }
                    metrics.memory_bytes.set(rss as i64);
                    if rss >= hard && !warned {
                        tracing::warn!(
                            rss,
                            hard,
                            "memory above the hard limit; refusing data until it falls"
                        );
                    }
                    warned = rss >= hard;
                    if rss >= soft
                        && let Some(hook) = &on_pressure
                        && last_pressure.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
                    {
                        last_pressure = Some(std::time::Instant::now());
                        hook();
                    }
                }
            })
        };
        MemoryLimiter {
            id: id.to_owned(),
            next,
            soft: config.limit_bytes.saturating_sub(config.spike_bytes),
            hard: config.limit_bytes,
            current,
            relief,
            waiting: AtomicUsize::new(0),
            metrics,
            task,
        }
    }

    /// The memory to decide on: the latest reading, or, if that is just
    /// over the soft limit, the first reading below it within
    /// [`SOFT_WAIT`] (else the latest).
    async fn settled(&self) -> u64 {
        let rss = self.current.load(Ordering::Relaxed);
        let midway = self.soft + (self.hard - self.soft) / 2;
        if rss < self.soft || rss >= midway {
            return rss;
        }
        // Released on drop, also when the caller gives up mid-wait.
        let slot = WaitSlot::take(&self.waiting);
        if slot.taken_before >= MAX_WAITING {
            return rss;
        }
        self.wait_for_relief(midway).await
    }

    async fn wait_for_relief(&self, midway: u64) -> u64 {
        let deadline = tokio::time::Instant::now() + SOFT_WAIT;
        loop {
            let relieved = self.relief.notified();
            tokio::pin!(relieved);
            // Registered before the check, so a reading in between is not
            // missed.
            relieved.as_mut().enable();
            let rss = self.current.load(Ordering::Relaxed);
            if rss < self.soft || rss >= midway {
                return rss;
            }
            if tokio::time::timeout_at(deadline, relieved).await.is_err() {
                return self.current.load(Ordering::Relaxed);
            }
        }
    }
}

/// One place among the waiting batches, held until dropped.
struct WaitSlot<'a> {
    count: &'a AtomicUsize,
    /// Places held by others when this one was taken.
    taken_before: usize,
}

impl<'a> WaitSlot<'a> {
    fn take(count: &'a AtomicUsize) -> WaitSlot<'a> {
        WaitSlot { count, taken_before: count.fetch_add(1, Ordering::AcqRel) }
    }
}

impl Drop for WaitSlot<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<N: ?Sized + Send + Sync> MemoryLimiter<N> {
    /// `Ok` when a batch may pass, else the refusal to return.
    async fn admit(&self) -> Result<(), ConsumeError> {
        let rss = self.settled().await;
        if rss >= self.soft {
            let limit = if rss >= self.hard { "hard" } else { "soft" };
            self.metrics.refused.get_or_create(&labels(&[("component", &self.id), ("reason", limit)])).inc();
            return Err(ConsumeError::Overloaded {
                reason: format!("memory {} MiB is above the {limit} limit", rss >> 20),
                retry_after: Duration::from_secs(1),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl<N: ?Sized + TracesConsumer> TracesConsumer for MemoryLimiter<N> {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.admit().await?;
        self.next.consume_traces(batch).await
    }
}

#[async_trait]
impl<N: ?Sized + LogsConsumer> LogsConsumer for MemoryLimiter<N> {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        self.admit().await?;
        self.next.consume_logs(batch).await
    }
}

#[async_trait]
impl<N: ?Sized + MetricsConsumer> MetricsConsumer for MemoryLimiter<N> {
    async fn consume_metrics(&self, batch: MetricBatch) -> Result<(), ConsumeError> {
        self.admit().await?;
        self.next.consume_metrics(batch).await
    }
}

#[async_trait]
impl<N: ?Sized + Send + Sync> Component for MemoryLimiter<N> {
    fn id(&self) -> &str {
        &self.id
    }

    async fn shutdown(&self) {
        self.task.abort();
    }

    fn health(&self) -> Option<ComponentHealth> {
        let rss = self.current.load(Ordering::Relaxed);
        Some(ComponentHealth {
            name: self.id.clone(),
            healthy: true,
            detail: format!(
                "{} MiB resident; refusing above {} MiB (hard limit {} MiB){}",
                rss >> 20,
                self.soft >> 20,
                self.hard >> 20,
                if rss >= self.soft { "; refusing now" } else { "" }
            ),
        })
    }
}
