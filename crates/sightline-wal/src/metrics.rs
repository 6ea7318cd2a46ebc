//! The WAL's own Prometheus metrics. Updated once per write round, never per
//! record, so they cost nothing on the hot path.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// WAL metrics. `Default` gives an unregistered set (for tests or when the
/// caller does not export metrics).
#[derive(Debug)]
pub struct Metrics {
    /// `sightline_wal_appended_bytes_total`: bytes written to segments,
    /// record framing included.
    pub(crate) appended_bytes: Counter,
    /// `sightline_wal_records_total`: records written.
    pub(crate) records: Counter,
    /// `sightline_wal_fsyncs_total`: data fsyncs of segments.
    pub(crate) fsyncs: Counter,
    /// `sightline_wal_fsync_seconds`: duration of each data fsync.
    pub(crate) fsync_seconds: Histogram,
    /// `sightline_wal_group_commit_records`: records made durable per fsync.
    pub(crate) group_commit_records: Histogram,
    /// `sightline_wal_segments`: segment files on disk.
    pub(crate) segments: Gauge,
    /// `sightline_wal_disk_bytes`: bytes in segment files on disk.
    pub(crate) disk_bytes: Gauge,
    /// `sightline_wal_recovery_skipped_total`: damaged stretches recovery
    /// skipped (each held at least part of one record, or garbage).
    pub(crate) skipped: Counter,
    /// `sightline_wal_recovery_skipped_bytes_total`: bytes in them.
    pub(crate) skipped_bytes: Counter,
    /// `sightline_wal_write_failures_total`: writes or segment creations
    /// that failed and were undone (disk full, no descriptor free).
    pub(crate) write_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            appended_bytes: Counter::default(),
            records: Counter::default(),
            fsyncs: Counter::default(),
            // 50µs .. ~3.3s: an NVMe fdatasync to a struggling spinning disk.
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 17)),
            // 1 .. 4096 records per fsync.
            group_commit_records: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            segments: Gauge::default(),
            disk_bytes: Gauge::default(),
            skipped: Counter::default(),
            skipped_bytes: Counter::default(),
            write_failures: Counter::default(),
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them in `registry` as
    /// `sightline_wal_*` (the trace store's WAL).
    pub fn new(registry: &mut Registry) -> Self {
        Metrics::with_prefix(registry, "sightline_wal")
    }

    /// Creates the metrics and registers them as `<prefix>_*`: another
    /// WAL (the log store's, `sightline_log_wal`) reports under its own
    /// names, since one registry refuses a name twice.
    pub fn with_prefix(registry: &mut Registry, prefix: &str) -> Self {
        let m = Metrics::default();
        // prometheus-client appends `_total` to counter names.
        registry.register(
            format!("{prefix}_appended_bytes"),
            "Bytes written to WAL segments, record framing included",
            m.appended_bytes.clone(),
        );
        registry.register(format!("{prefix}_records"), "Records written to the WAL", m.records.clone());
        registry.register(format!("{prefix}_fsyncs"), "Data fsyncs of WAL segments", m.fsyncs.clone());
        registry.register(
            format!("{prefix}_fsync_seconds"),
            "Duration of WAL segment fsyncs",
            m.fsync_seconds.clone(),
        );
        registry.register(
            format!("{prefix}_group_commit_records"),
            "Records made durable by one WAL fsync",
            m.group_commit_records.clone(),
        );
        registry.register(format!("{prefix}_segments"), "WAL segment files on disk", m.segments.clone());
        registry.register(
            format!("{prefix}_disk_bytes"),
            "Bytes in WAL segment files on disk",
            m.disk_bytes.clone(),
        );
        registry.register(
            format!("{prefix}_recovery_skipped"),
            "Damaged WAL stretches skipped by recovery (each lost at least part of one record)",
            m.skipped.clone(),
        );
        registry.register(
            format!("{prefix}_recovery_skipped_bytes"),
            "Bytes in damaged WAL stretches skipped by recovery",
            m.skipped_bytes.clone(),
        );
        registry.register(
            format!("{prefix}_write_failures"),
            "WAL writes or segment creations that failed and were undone (disk full, no file descriptor free)",
            m.write_failures.clone(),
        );
        m
    }

    /// Damaged stretches recovery skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped.get()
    }

    /// Data fsyncs done so far (for callers and tests checking group commit).
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.get()
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records.get()
    }
}

/// Converts a byte count for an `i64` gauge.
pub(crate) fn gauge_bytes(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
