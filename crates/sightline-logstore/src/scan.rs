//! Reading the candidate row groups of a search's blocks, newest first, on
//! several threads: a search that no index narrows (a regular expression,
//! a short needle) reads every body of every block, and one core read
//! ~10 M records' bodies in about a second.
//!
//! Each worker takes the next row group in order and keeps its own best
//! `limit` records; the best floor any worker has reached is shared, since
//! a worker holding `limit` records newer than it proves the page holds
//! nothing older, so row groups entirely older are skipped by all, as a
//! single reader skipped them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use std::sync::Arc;

use parking_lot::Mutex;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use sightline_model::LogQuery;

use crate::Metrics;
use crate::block::LogBlock;
use crate::topk::TopK;

/// Threads one search reads blocks with, at most.
const MAX_THREADS: usize = 4;

/// Adds the matches of `groups` (`(newest record time, block index, row
/// group)`, newest first) to `top`; a block that fails to read is skipped
/// with a warning.
pub(crate) fn search_groups(
    blocks: &[Arc<LogBlock>],
    groups: &[(u64, usize, usize)],
    query: &LogQuery,
    top: &mut TopK,
    metrics: &Metrics,
    warnings: &mut Vec<String>,
) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
    let next = AtomicUsize::new(0);
    // The best floor seen (its time; 0: none yet).
    let floor = AtomicU64::new(top.floor().map_or(0, |f| f.0));
    let failed: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    let limit = query.effective_limit();
    // Each block's footer, taken from the cache once per search and held
    // until it ends (see `LogBlock::footer`); a worker that needs a footer
    // another is reading waits for it rather than reading it too.
    let footers: Vec<Mutex<Option<Arc<ArrowReaderMetadata>>>> =
        blocks.iter().map(|_| Mutex::new(None)).collect();
    let footer = |b: usize| {
        let mut slot = footers[b].lock();
        if let Some(f) = &*slot {
            return Ok(Arc::clone(f));
        }
        let f = blocks[b].footer()?;
        *slot = Some(Arc::clone(&f));
        Ok(f)
    };
    let work = |top: &mut TopK, warnings: &mut Vec<String>| {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(max, b, rg)) = groups.get(i) else { return };
            // Groups come newest first: once one is older than the floor,
            // so are the rest.
            if max < floor.load(Ordering::Relaxed) || top.floor().is_some_and(|f| max < f.0) {
                return;
            }
            if failed.lock().contains(&b) {
                continue;
            }
            if let Err(e) = footer(b).and_then(|f| blocks[b].search_group(rg, query, top, &f)) {
                metrics.damaged_block_reads.inc();
                let mut failed = failed.lock();
                if !failed.contains(&b) {
                    failed.push(b);
                    crate::store::warn(warnings, &blocks[b], &e);
                }
            }
            if let Some(f) = top.floor() {
                floor.fetch_max(f.0, Ordering::Relaxed);
            }
        }
    };
    if threads <= 1 || groups.len() <= 1 {
        work(top, warnings);
        return;
    }
    let parts: Vec<(TopK, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut part = TopK::new(limit);
                    let mut part_warnings = Vec::new();
                    work(&mut part, &mut part_warnings);
                    (part, part_warnings)
                })
            })
            .collect();
        work(top, warnings);
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (part, part_warnings) in parts {
        top.absorb(part);
        warnings.extend(part_warnings);
    }
}
