//! The log store's own metrics, registered under `sightline_logstore_`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Log store metrics, and the log WAL's under `sightline_log_wal_*` (the
/// trace WAL has `sightline_wal_*`).
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) wal: std::sync::Arc<sightline_wal::Metrics>,
    pub(crate) records_appended: Counter,
    pub(crate) refused: Counter,
    pub(crate) head_records: Gauge,
    pub(crate) head_bytes: Gauge,
    pub(crate) blocks: Gauge,
    pub(crate) block_bytes: Gauge,
    pub(crate) block_records: Gauge,
    pub(crate) flushes: Counter,
    pub(crate) compactions: Counter,
    pub(crate) retention_deleted_blocks: Counter,
    pub(crate) searches: Counter,
    pub(crate) searches_refused: Counter,
    pub(crate) damaged_block_reads: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let wal = std::sync::Arc::new(sightline_wal::Metrics::with_prefix(registry, "sightline_log_wal"));
        let m = Metrics { wal, ..Metrics::default() };
        let r = registry.sub_registry_with_prefix("sightline_logstore");
        r.register("records_appended", "Log records acknowledged (in the WAL)", m.records_appended.clone());
        r.register("refused", "Log batches refused (overload, failure, shutdown)", m.refused.clone());
        r.register("head_records", "Log records in live and frozen heads", m.head_records.clone());
        r.register("head_bytes", "Bytes held by the live and frozen heads", m.head_bytes.clone());
        r.register("blocks", "Live log blocks", m.blocks.clone());
        r.register("block_bytes", "Bytes of live log blocks' data files", m.block_bytes.clone());
        r.register("block_records", "Log records in live blocks", m.block_records.clone());
        r.register("flushes", "Heads flushed into log blocks", m.flushes.clone());
        r.register("compactions", "Log block merges", m.compactions.clone());
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
