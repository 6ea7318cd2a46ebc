//! Blocks found damaged while the store runs, and what is done about it.
//!
//! A block whose bytes fail their checksum (or that cannot be opened at
//! all) is not served as data, not merged and not deleted: reads of its
//! intact parts still verify and are served, a read that hits the damage
//! skips the block for that query, and compaction leaves it alone (merging
//! it would fail forever, and a stalled compactor stalls flushes). The
//! manifest keeps listing it, so nothing deletes it as garbage;
//! `sightline repair` sets it aside and reports what was lost.
//!
//! Each block is logged once, when it is first found; every failed read
//! counts in `sightline_store_damaged_block_reads_total`.
//!
//! A read that fails in IO instead (an object store that is down or does
//! not answer in time) is no damage: the query skips the block the same
//! way, but nothing is set aside, and the next query reads it again. Those
//! count in `sightline_store_unreadable_block_reads_total` and are logged
//! at most every [`UNREADABLE_LOG_EVERY`], since during an outage every
//! query hits them.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;

use crate::Metrics;
use crate::metrics::GaugePart;

/// How often a query skipping a block it could not read is logged.
const UNREADABLE_LOG_EVERY: Duration = Duration::from_secs(10);

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Damaged {
    /// Block id → the first error found, for health and logs.
    blocks: Mutex<BTreeMap<String, String>>,
    reads: Counter,
    gauge: GaugePart,
    unreadable: Counter,
    /// When an unreadable block was last logged, and how many were not.
    unreadable_logged: Mutex<Option<(Instant, u64)>>,
}

impl Damaged {
    pub(crate) fn new(metrics: &Metrics) -> Damaged {
        Damaged {
            blocks: Mutex::default(),
            reads: metrics.damaged_block_reads.clone(),
            gauge: GaugePart::new(&metrics.damaged_blocks),
            unreadable: metrics.unreadable_block_reads.clone(),
            unreadable_logged: Mutex::new(None),
        }
    }

    /// Records that a query skipped block `id` because reading it failed
    /// in IO (not damage: nothing is set aside). Logged at most every
    /// [`UNREADABLE_LOG_EVERY`], with how many were skipped in between.
    pub(crate) fn unreadable(&self, id: &str, error: &dyn Display) {
        self.unreadable.inc();
        let mut logged = self.unreadable_logged.lock();
        match &mut *logged {
            Some((at, quiet)) if at.elapsed() < UNREADABLE_LOG_EVERY => *quiet += 1,
            _ => {
                let skipped_since = logged.map_or(0, |(_, quiet)| quiet);
                tracing::warn!(
                    block = %id,
                    error = %error,
                    skipped_since,
                    "a query skipped a block it could not read (its result may be partial); \
                     the block is not damaged and is read again by the next query"
                );
                *logged = Some((Instant::now(), 0));
            }
        }
    }

    /// Records that a read of block `id` failed on damage. Logs the first
    /// time a block is reported.
    pub(crate) fn report(&self, id: &str, error: &dyn Display) {
        self.reads.inc();
        let mut blocks = self.blocks.lock();
        if blocks.contains_key(id) {
            return;
        }
        let error = error.to_string();
        tracing::error!(
            block = %id,
            error = %error,
            "block is damaged: reads that reach the damage skip it, compaction leaves it alone; \
             `sightline verify` lists the damage, `sightline repair` sets the block aside"
        );
        blocks.insert(id.to_owned(), error);
        self.gauge.set(blocks.len() as i64);
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.blocks.lock().contains_key(id)
    }

    /// Damaged blocks and the first error of each, by id.
    pub(crate) fn list(&self) -> Vec<(String, String)> {
        self.blocks.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Forgets blocks that left the manifest (retention).
    pub(crate) fn forget(&self, ids: &[String]) {
        let mut blocks = self.blocks.lock();
        for id in ids {
            blocks.remove(id);
        }
        self.gauge.set(blocks.len() as i64);
    }
}
