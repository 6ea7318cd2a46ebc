//! The log store's own metrics, registered under `sightline_logstore_`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Log store metrics, and the log WAL's under `sightline_log_wal_*` (the
/// trace WAL has `sightline_wal_*`).
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) wal: std::sync::Arc<sightline_wal::Metrics>,
    pub(crate) records_appended: Counter,
    pub(crate) refused: Family<RefusedLabels, Counter>,
    pub(crate) head_records: Gauge,
    pub(crate) head_bytes: Gauge,
    pub(crate) blocks: Gauge,
    pub(crate) block_bytes: Gauge,
    pub(crate) block_records: Gauge,
    pub(crate) flushes: Counter,
    pub(crate) compactions: Counter,
    pub(crate) flush_stall_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
    pub(crate) flush_stalled: Gauge,
    pub(crate) retention_deleted_blocks: Counter,
    pub(crate) searches: Counter,
    pub(crate) searches_refused: Counter,
    pub(crate) damaged_block_reads: Counter,
}

/// Why the store refused a batch: the label operators read to tell a
/// store that cannot flush fast enough from a full or failing disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Refusal {
    /// Every frozen head waits for a flush and the live head is full.
    head_full,
    /// The WAL refused the append (its pending bytes are full, or a write
    /// or fsync failed).
    wal,
    /// Background work failed earlier; ingest is refused until a restart.
    failed,
    /// The store is shutting down.
    shutting_down,
}

/// The labels of `sightline_logstore_refused_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct RefusedLabels {
    pub(crate) reason: Refusal,
}

impl Metrics {
    /// Counts one refused batch.
    pub(crate) fn refuse(&self, reason: Refusal) {
        self.refused.get_or_create(&RefusedLabels { reason }).inc();
    }

    /// Refusals counted for `reason` (tests).
    #[cfg(test)]
    pub(crate) fn refusals(&self, reason: Refusal) -> u64 {
        self.refused.get_or_create(&RefusedLabels { reason }).get()
    }

    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let wal = std::sync::Arc::new(sightline_wal::Metrics::with_prefix(registry, "sightline_log_wal"));
        let m = Metrics { wal, ..Metrics::default() };
        let r = registry.sub_registry_with_prefix("sightline_logstore");
        r.register("records_appended", "Log records acknowledged (in the WAL)", m.records_appended.clone());
        r.register(
            "refused",
            "Log batches refused, by reason: head_full (flushes are behind), wal (the WAL is full or \
             failing), failed (background work failed), shutting_down",
            m.refused.clone(),
        );
        r.register("head_records", "Log records in live and frozen heads", m.head_records.clone());
        r.register("head_bytes", "Bytes held by the live and frozen heads", m.head_bytes.clone());
        r.register("blocks", "Live log blocks", m.blocks.clone());
        r.register("block_bytes", "Bytes of live log blocks' data files", m.block_bytes.clone());
        r.register("block_records", "Log records in live blocks", m.block_records.clone());
        r.register("flushes", "Heads flushed into log blocks", m.flushes.clone());
        r.register("compactions", "Log block merges", m.compactions.clone());
        r.register(
            "flush_stall_seconds",
            "Time log flushes waited for merges to catch up (the write stall)",
            m.flush_stall_seconds.clone(),
        );
        r.register(
            "flush_stalled",
            "1 while log flushes wait for merges to catch up",
            m.flush_stalled.clone(),
        );
        r.register(
            "retention_deleted_blocks",
            "Log blocks deleted by retention",
            m.retention_deleted_blocks.clone(),
        );
        r.register("searches", "Log searches answered", m.searches.clone());
        r.register(
            "searches_refused",
            "Log searches refused: all query slots busy",
            m.searches_refused.clone(),
        );
        r.register(
            "damaged_block_reads",
            "Log block reads that failed on damage (the block was skipped)",
            m.damaged_block_reads.clone(),
        );
        m
    }
}
