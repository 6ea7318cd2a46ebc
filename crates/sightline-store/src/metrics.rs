//! The store's own metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use sightline_block::FooterCache;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Store metrics, registered under `sightline_store_`.
#[derive(Debug)]
pub struct Metrics {
    pub(crate) wal: std::sync::Arc<sightline_wal::Metrics>,
    pub(crate) spans_appended: Counter,
    pub(crate) refused: Family<Vec<(String, String)>, Counter>,
    pub(crate) head_spans: Gauge,
    pub(crate) head_bytes: Gauge,
    pub(crate) frozen_heads: Gauge,
    pub(crate) blocks: Gauge,
    pub(crate) block_bytes: Gauge,
    pub(crate) block_spans: Gauge,
    pub(crate) block_memory: Gauge,
    pub(crate) flushes: Family<Vec<(String, String)>, Counter>,
    pub(crate) flush_seconds: Histogram,
    pub(crate) compactions: Family<Vec<(String, String)>, Counter>,
    pub(crate) compaction_debt: Gauge,
    pub(crate) flush_stall_seconds: Counter<f64, AtomicU64>,
    pub(crate) flush_stalled: Gauge,
    pub(crate) compactions_deferred: Counter,
    pub(crate) retention_deleted_blocks: Counter,
    pub(crate) queries_running: Gauge,
    pub(crate) queries_refused: Counter,
    pub(crate) query_results_truncated: Counter,
    pub(crate) replayed_spans: Counter,
    pub(crate) damaged_blocks: Gauge,
    pub(crate) damaged_block_reads: Counter,
    pub(crate) unreadable_block_reads: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let wal = std::sync::Arc::new(sightline_wal::Metrics::new(registry));
        let m = Metrics {
            wal,
            spans_appended: Counter::default(),
            refused: Family::default(),
            head_spans: Gauge::default(),
            head_bytes: Gauge::default(),
            frozen_heads: Gauge::default(),
            blocks: Gauge::default(),
            block_bytes: Gauge::default(),
            block_spans: Gauge::default(),
            block_memory: Gauge::default(),
            flushes: Family::default(),
            flush_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            compactions: Family::default(),
            compaction_debt: Gauge::default(),
            flush_stall_seconds: Counter::default(),
            flush_stalled: Gauge::default(),
            compactions_deferred: Counter::default(),
            retention_deleted_blocks: Counter::default(),
            queries_running: Gauge::default(),
            queries_refused: Counter::default(),
            query_results_truncated: Counter::default(),
            replayed_spans: Counter::default(),
            damaged_blocks: Gauge::default(),
            damaged_block_reads: Counter::default(),
            unreadable_block_reads: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("sightline_store");
        r.register("spans_appended", "Spans made durable and added to the head", m.spans_appended.clone());
        r.register("refused", "Batches refused for backpressure, by reason", m.refused.clone());
        r.register("head_spans", "Spans in the live head", m.head_spans.clone());
        r.register("head_bytes", "Estimated bytes in the live head", m.head_bytes.clone());
        r.register("frozen_heads", "Heads cut and waiting to be flushed", m.frozen_heads.clone());
        r.register("blocks", "Live blocks", m.blocks.clone());
        r.register("block_bytes", "Bytes of live blocks on disk", m.block_bytes.clone());
        r.register("block_spans", "Spans in live blocks", m.block_spans.clone());
        r.register(
            "block_memory_bytes",
            "Memory held for live blocks: per-block summaries plus their Parquet footers, page indexes, tables and trace-id filters in the footer cache (at most --memory-limit/8), as of the last block-list change",
            m.block_memory.clone(),
        );
        r.register("flushes", "Head flushes into blocks, by outcome", m.flushes.clone());
        r.register("flush_seconds", "Time to write one block from a head", m.flush_seconds.clone());
        r.register("compactions", "Block compactions, by outcome", m.compactions.clone());
        r.register(
            "compaction_debt_blocks",
            "Fresh (level-0) blocks waiting to be merged; flushes stall at compaction_stall_blocks",
            m.compaction_debt.clone(),
        );
        r.register(
            "flush_stall_seconds",
            "Time flushes waited for compaction to catch up (the write stall)",
            m.flush_stall_seconds.clone(),
        );
        r.register(
            "flush_stalled",
            "1 while a flush waits for compaction to catch up, else 0",
            m.flush_stalled.clone(),
        );
        r.register(
            "compactions_deferred",
            "Times a due full-width merge waited because the memory limiter reported pressure",
            m.compactions_deferred.clone(),
        );
        r.register(
            "retention_deleted_blocks",
            "Blocks deleted by age or size retention",
            m.retention_deleted_blocks.clone(),
        );
        r.register(
            "queries_running",
            "Queries building span results now (bounded by the memory budget's query slots)",
            m.queries_running.clone(),
        );
        r.register(
            "queries_refused",
            "Queries refused because every query slot stayed busy",
            m.queries_refused.clone(),
        );
        r.register(
            "query_results_truncated",
            "Queries whose results were cut to one query's memory budget",
            m.query_results_truncated.clone(),
        );
        r.register("replayed_spans", "Spans recovered from the WAL at start", m.replayed_spans.clone());
        r.register(
            "damaged_blocks",
            "Blocks found damaged (checksum mismatch, unreadable or missing); not merged, set aside by sightline repair",
            m.damaged_blocks.clone(),
        );
        r.register(
            "damaged_block_reads",
            "Block reads that failed on damage; the query skipped that block",
            m.damaged_block_reads.clone(),
        );
        r.register(
            "unreadable_block_reads",
            "Block reads that failed in IO (e.g. the object store unreachable or slow); the query skipped \
             that block, which is not damaged and is read again by the next query",
            m.unreadable_block_reads.clone(),
        );
        m
    }

    pub(crate) fn outcome(label: &str) -> Vec<(String, String)> {
        vec![("outcome".to_owned(), label.to_owned())]
    }
}

/// One store's part of a gauge that every tenant's store adds to: `set`
/// moves the shared gauge by the difference from this store's last value,
/// so `/metrics` shows the sum over all tenants rather than whichever store
/// set it last. Dropping the part takes its value back out.
#[derive(Debug)]
pub(crate) struct GaugePart {
    gauge: Gauge,
    mine: AtomicI64,
}

impl GaugePart {
    pub(crate) fn new(gauge: &Gauge) -> GaugePart {
        GaugePart { gauge: gauge.clone(), mine: AtomicI64::new(0) }
    }

    pub(crate) fn set(&self, value: i64) {
        let old = self.mine.swap(value, Ordering::AcqRel);
        self.gauge.inc_by(value - old);
    }
}

impl Drop for GaugePart {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// One store's parts of the shared gauges.
#[derive(Debug)]
pub(crate) struct Gauges {
    pub(crate) head_spans: GaugePart,
    pub(crate) head_bytes: GaugePart,
    pub(crate) frozen_heads: GaugePart,
    pub(crate) blocks: GaugePart,
    pub(crate) block_bytes: GaugePart,
    pub(crate) block_spans: GaugePart,
    pub(crate) block_memory: GaugePart,
    pub(crate) compaction_debt: GaugePart,
    pub(crate) flush_stalled: GaugePart,
}

impl Gauges {
    pub(crate) fn new(metrics: &Metrics) -> Gauges {
        Gauges {
            head_spans: GaugePart::new(&metrics.head_spans),
            head_bytes: GaugePart::new(&metrics.head_bytes),
            frozen_heads: GaugePart::new(&metrics.frozen_heads),
            blocks: GaugePart::new(&metrics.blocks),
            block_bytes: GaugePart::new(&metrics.block_bytes),
            block_spans: GaugePart::new(&metrics.block_spans),
            block_memory: GaugePart::new(&metrics.block_memory),
            compaction_debt: GaugePart::new(&metrics.compaction_debt),
            flush_stalled: GaugePart::new(&metrics.flush_stalled),
        }
    }
}

/// Publishes a [`FooterCache`]'s size and counters on each scrape, under
/// `<prefix>_<name>_*` (`sightline_store_block_cache_*`): the cache is
/// shared by every tenant's store, and its hits and misses happen on query
/// paths that should not pay for updating a metric each time.
#[derive(Debug)]
struct FooterCacheCollector {
    cache: Arc<FooterCache>,
    /// The metrics' name before `_bytes`, `_hits` etc.
    name: &'static str,
    /// What the cache holds, for the help texts.
    holds: &'static str,
}

impl Collector for FooterCacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.cache.stats();
        let (name, holds) = (self.name, self.holds);
        let gauges = [
            ("bytes", format!("Bytes of {holds} held in the cache"), stats.used_bytes),
            (
                "capacity_bytes",
                "The cache's bound (a share of --memory-limit)".to_owned(),
                self.cache.capacity(),
            ),
            ("entries", format!("Entries ({holds}, by block) held in the cache"), stats.entries),
        ];
        for (suffix, help, value) in gauges {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(
                &format!("{name}_{suffix}"),
                &help,
                None,
                gauge.metric_type(),
            )?)?;
        }
        let counters = [
            ("hits", format!("Lookups of {holds} answered from the cache"), stats.hits),
            ("misses", format!("Lookups of {holds} read again from the block"), stats.misses),
            (
                "evictions",
                "Entries dropped from the cache to stay within its bound".to_owned(),
                stats.evictions,
            ),
        ];
        for (suffix, help, value) in counters {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                &format!("{name}_{suffix}"),
                &help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// Registers `cache`'s metrics (see [`FooterCacheCollector`]).
pub fn register_block_cache(registry: &mut Registry, cache: Arc<FooterCache>) {
    register_cache_as(registry, "sightline_store", "block_cache", "block footers and bloom filters", cache);
}

/// Registers `cache`'s metrics as `<prefix>_<name>_*`, `holds` saying
/// what it holds in their help (the log store's caches report as
/// `sightline_logstore_block_cache_*` and `sightline_logstore_word_cache_*`).
pub fn register_cache_as(
    registry: &mut Registry,
    prefix: &str,
    name: &'static str,
    holds: &'static str,
    cache: Arc<FooterCache>,
) {
    registry.sub_registry_with_prefix(prefix).register_collector(Box::new(FooterCacheCollector {
        cache,
        name,
        holds,
    }));
}
