//! Reading many traces from one block in one pass ([`Block::traces`]).
//!
//! A search returns up to `limit` trace ids spread at random over a block
//! sorted by trace id, so in a big merged block they land in most row
//! groups, one or two pages each. What such a read costs is per column
//! chunk touched (~70 leaves × row groups): the dictionary page, the data
//! page holding the rows, and a checked read of each. So the read:
//!
//! 1. prunes row groups and pages for every id at once (row-group `trace_id`
//!    range, bloom filter, page index), as a single-id lookup does;
//! 2. decodes only `trace_id` on the surviving pages to find the exact rows
//!    (rows are sorted by trace id: a run per trace), so no row filter is
//!    evaluated while the wide columns are read;
//! 3. reads, per run of row groups, every byte the exact rows need — each
//!    column's dictionary page and the data pages holding those rows — in
//!    a few coalesced, checked reads ([`Prefetched`]) instead of one read
//!    (rounded out to whole checksum chunks, and checked again) per page;
//!    a coalesced range that holds damage is left to the reader's own page
//!    reads, so only damage to a page the rows need fails the read;
//! 4. decodes the columns for the exact rows only; runs of row groups are
//!    split between two threads, as a search splits its row groups.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection, RowSelectionPolicy};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};
use sightline_model::{Span, TraceId};

use crate::Error;
use crate::cache::{Blooms, Footer};
use crate::integrity::{VerifiedFile, VerifiedRead};
use crate::read::{Block, SpanChunks};
use crate::schema::Col;
use crate::source::Data;

/// Ranges of the data file closer than this are read as one: a read costs
/// a system call and whole checksum chunks at both ends, and the bytes
/// between two pages of one row group are mostly other columns' pages.
const COALESCE_GAP: u64 = 16 << 10;

/// Rows of one row group to read: `rows` are within the group.
#[derive(Debug, Clone)]
struct GroupRows {
    rg: usize,
    rows: Vec<Range<usize>>,
}

/// The footer, and the row groups and pages that may hold the ids.
type Candidates = (Arc<Footer>, Vec<GroupRows>);

impl Block {
    pub(crate) fn traces_inner(&self, ids: &[TraceId]) -> Result<Vec<Span>, Error> {
        let mut keys: Vec<[u8; 16]> = ids.iter().map(|id| *id.as_bytes()).collect();
        keys.sort_unstable();
        keys.dedup();
        let Some((footer, candidates)) = self.candidate_pages(&keys)? else {
            return Ok(Vec::new());
        };
        let md = Arc::clone(footer.reader_meta.metadata());
        let data =
            Data::open(&self.data_path, self.source.as_ref()).map_err(|e| Error::io(&self.data_path, e))?;
        let file =
            VerifiedFile::open(&self.data_path, data, self.checksums.clone(), Arc::clone(&self.damage))?;

        // 2. The exact rows, from `trace_id` alone.
        let trace_leaf = [self.leaves.trace_id];
        let mut exact = Vec::with_capacity(candidates.len());
        for group in &candidates {
            let rows = self.matching_rows(&footer, &file, group, &trace_leaf, &keys)?;
            if !rows.is_empty() {
                exact.push(GroupRows { rg: group.rg, rows });
            }
        }
        if exact.is_empty() {
            return Ok(Vec::new());
        }

        // 3–4. Runs of row groups a trace continues across are read
        // together (parent distances are resolved within a trace).
        let runs = runs(&md, &exact);
        let all_leaves: Vec<usize> = (0..md.file_metadata().schema_descr().num_columns()).collect();
        let read = |runs: &[&[GroupRows]]| -> Result<Vec<Span>, Error> {
            let mut spans = Vec::new();
            for run in runs {
                spans.extend(self.read_run(&footer, &file, run, &all_leaves)?);
            }
            Ok(spans)
        };
        let mut spans = if runs.len() < 2 {
            read(&runs)?
        } else {
            let rows = |r: &&[GroupRows]| -> usize {
                r.iter().flat_map(|g| &g.rows).map(ExactSizeIterator::len).sum()
            };
            let total: usize = runs.iter().map(rows).sum();
            // Split where the first part holds about half the rows.
            let mut so_far = 0;
            let at = runs
                .iter()
                .position(|r| {
                    so_far += rows(r);
                    so_far * 2 >= total
                })
                .map_or(1, |p| p + 1)
                .clamp(1, runs.len() - 1);
            let (first, second) = runs.split_at(at);
            std::thread::scope(|s| -> Result<_, Error> {
                let other = s.spawn(|| crate::contain(&self.data_path, || read(second)));
                let mut spans = read(first)?;
                let rest = other
                    .join()
                    .map_err(|_| Error::corrupt(&self.data_path, "trace read thread panicked"))??;
                spans.extend(rest);
                Ok(spans)
            })?
        };
        spans.sort_by_key(|s| (s.trace_id, s.start_time_unix_nano));
        Ok(spans)
    }

    /// Step 1: the row groups and, within each, the pages that may hold
    /// one of `keys` (sorted), with the footer; `None` when none may. The
    /// row group ranges first, then the bloom filters, and the footer
    /// (page index) only for a row group that may hold an id: most blocks a
    /// lookup probes are ruled out without it.
    fn candidate_pages(&self, keys: &[[u8; 16]]) -> Result<Option<Candidates>, Error> {
        let mut blooms: Option<Blooms> = None;
        let mut footer: Option<Arc<Footer>> = None;
        let mut out = Vec::new();
        for (rg, group) in self.groups.iter().enumerate() {
            let in_range: Vec<&[u8; 16]> = match &group.range {
                Some((min, max)) => keys.iter().filter(|k| *k >= min && *k <= max).collect(),
                None => keys.iter().collect(),
            };
            if in_range.is_empty() {
                continue;
            }
            let blooms = match &blooms {
                Some(b) => b,
                None => blooms.insert(self.trace_blooms()?),
            };
            let bloom = blooms.get(rg).and_then(Option::as_ref);
            let mut pages: Vec<Range<usize>> = Vec::new();
            for key in in_range {
                if bloom.is_some_and(|b| !b.check(key.as_slice())) {
                    continue;
                }
                let footer = match &footer {
                    Some(f) => f,
                    None => footer.insert(self.footer()?),
                };
                pages.extend(self.trace_pages(footer.reader_meta.metadata(), rg, key, group.rows));
            }
            if !pages.is_empty() {
                out.push(GroupRows { rg, rows: merge(pages) });
            }
        }
        Ok(footer.filter(|_| !out.is_empty()).map(|f| (f, out)))
    }

    /// Step 2: the rows of `group.rows` (candidate pages) whose trace id is
    /// one of `keys`, as ranges within the row group.
    fn matching_rows(
        &self,
        footer: &Footer,
        file: &VerifiedFile,
        group: &GroupRows,
        leaves: &[usize],
        keys: &[[u8; 16]],
    ) -> Result<Vec<Range<usize>>, Error> {
        let md = footer.reader_meta.metadata();
        let rows = usize::try_from(md.row_group(group.rg).num_rows()).unwrap_or(0);
        let input = Prefetched::fetch(file, md, &[group], leaves)?;
        let descr = md.file_metadata().schema_descr();
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(input, footer.reader_meta.clone())
            .with_projection(ProjectionMask::roots(descr, [Col::TraceId.root()]))
            .with_row_groups(vec![group.rg])
            .with_row_selection(RowSelection::from_consecutive_ranges(group.rows.iter().cloned(), rows))
            .with_row_selection_policy(RowSelectionPolicy::Selectors)
            .with_batch_size(8192)
            .build()
            .map_err(|e| self.parquet_err(e))?;
        // Output rows are the selected rows in order.
        let mut positions = group.rows.iter().flat_map(Clone::clone);
        let mut out: Vec<Range<usize>> = Vec::new();
        // A trace is a run of equal ids: look each run up once.
        let mut last: Option<(&[u8], bool)> = None;
        let batches: Vec<_> = reader.collect::<Result<_, _>>().map_err(|e| self.arrow_err(e))?;
        for batch in &batches {
            let ids = batch
                .column(0)
                .as_fixed_size_binary_opt()
                .ok_or_else(|| Error::corrupt(&self.data_path, "trace_id is not fixed-size binary"))?;
            for value in ids.iter() {
                let row = positions
                    .next()
                    .ok_or_else(|| Error::corrupt(&self.data_path, "more trace ids than rows selected"))?;
                let Some(value) = value else { continue };
                let hit = match last {
                    Some((prev, hit)) if prev == value => hit,
                    _ => {
                        let hit = keys.binary_search_by(|k| k.as_slice().cmp(value)).is_ok();
                        last = Some((value, hit));
                        hit
                    }
                };
                if hit {
                    match out.last_mut() {
                        Some(r) if r.end == row => r.end = row + 1,
                        _ => out.push(row..row + 1),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Steps 3–4 for one run of row groups: every span of its rows.
    fn read_run(
        &self,
        footer: &Arc<Footer>,
        file: &VerifiedFile,
        run: &[GroupRows],
        leaves: &[usize],
    ) -> Result<Vec<Span>, Error> {
        let md = footer.reader_meta.metadata();
        let groups: Vec<&GroupRows> = run.iter().collect();
        let input = Prefetched::fetch(file, md, &groups, leaves)?;
        let mut base = 0;
        let mut ranges = Vec::new();
        for g in run {
            ranges.extend(g.rows.iter().map(|r| base + r.start..base + r.end));
            base += usize::try_from(md.row_group(g.rg).num_rows()).unwrap_or(0);
        }
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(input, footer.reader_meta.clone())
            .with_row_groups(run.iter().map(|g| g.rg).collect())
            .with_row_selection(RowSelection::from_consecutive_ranges(ranges.into_iter(), base))
            .with_row_selection_policy(RowSelectionPolicy::Selectors)
            .build()
            .map_err(|e| self.parquet_err(e))?;
        let mut spans = Vec::new();
        for chunk in SpanChunks::new(self, Arc::clone(footer), reader) {
            spans.extend(chunk?);
        }
        Ok(spans)
    }
}

/// Sorted, possibly overlapping ranges merged.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// `exact` cut into runs of consecutive row groups that must be read
/// together: a group whose rows reach its end and the next group whose
/// rows start at its beginning may share a trace.
fn runs<'a>(md: &ParquetMetaData, exact: &'a [GroupRows]) -> Vec<&'a [GroupRows]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=exact.len() {
        let joined = match (exact.get(i - 1), exact.get(i)) {
            (Some(prev), Some(next)) => {
                let prev_rows = usize::try_from(md.row_group(prev.rg).num_rows()).unwrap_or(0);
                next.rg == prev.rg + 1
                    && prev.rows.last().is_some_and(|r| r.end >= prev_rows)
                    && next.rows.first().is_some_and(|r| r.start == 0)
            }
            _ => false,
        };
        if !joined {
            if let Some(run) = exact.get(start..i) {
                out.push(run);
            }
            start = i;
        }
    }
    out
}

/// The bytes a read of some rows needs, read ahead in a few checked reads
/// and served from memory; anything else is read from the file as usual.
#[derive(Clone)]
struct Prefetched {
    file: VerifiedFile,
    /// Non-overlapping, by offset.
    parts: Arc<[(u64, Bytes)]>,
}

impl Prefetched {
    /// Reads, for row groups `groups` and leaf columns `leaves`, each
    /// column chunk's dictionary page and the data pages that hold the
    /// groups' rows (by the offset index; without one, the whole chunk).
    fn fetch(
        file: &VerifiedFile,
        md: &ParquetMetaData,
        groups: &[&GroupRows],
        leaves: &[usize],
    ) -> Result<Prefetched, Error> {
        let mut wanted: Vec<Range<u64>> = Vec::new();
        for g in groups {
            let Some(group) = md.row_groups().get(g.rg) else { continue };
            let rows = usize::try_from(group.num_rows()).unwrap_or(0);
            for &leaf in leaves {
                let Some(chunk) = group.columns().get(leaf) else { continue };
                let (start, len) = chunk.byte_range();
                let pages = md.page_index().and_then(|i| i.page_locations(g.rg, leaf));
                let Some(pages) = pages.filter(|p| !p.is_empty()) else {
                    wanted.push(start..start.saturating_add(len));
                    continue;
                };
                // The dictionary page, if any, sits before the first data
                // page (as the Parquet reader infers it).
                let first = u64::try_from(pages.first().map_or(0, |p| p.offset)).unwrap_or(0);
                if first > start {
                    wanted.push(start..first);
                }
                for (p, loc) in pages.iter().enumerate() {
                    let from = usize::try_from(loc.first_row_index).unwrap_or(0);
                    let to = pages
                        .get(p + 1)
                        .map_or(rows, |next| usize::try_from(next.first_row_index).unwrap_or(rows));
                    if g.rows.iter().any(|r| r.start < to && from < r.end) {
                        let offset = u64::try_from(loc.offset).unwrap_or(0);
                        let size = u64::try_from(loc.compressed_page_size).unwrap_or(0);
                        wanted.push(offset..offset.saturating_add(size));
                    }
                }
            }
        }
        wanted.sort_by_key(|r| r.start);
        let mut coalesced: Vec<Range<u64>> = Vec::new();
        for r in wanted {
            match coalesced.last_mut() {
                Some(last) if r.start <= last.end.saturating_add(COALESCE_GAP) => {
                    last.end = last.end.max(r.end)
                }
                _ => coalesced.push(r),
            }
        }
        let len = file.len();
        let mut parts = Vec::with_capacity(coalesced.len());
        for r in coalesced {
            let end = r.end.min(len);
            match file.read_range(r.start, usize::try_from(end.saturating_sub(r.start)).unwrap_or(0)) {
                Ok(bytes) => parts.push((r.start, bytes)),
                // A damaged chunk may lie between the pages wanted: leave
                // this range to the reader's own page reads, so a read
                // fails only on damage to a page it needs (what salvage
                // reports as lost must stay exact).
                Err(Error::Checksum { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Prefetched { file: file.clone(), parts: parts.into() })
    }
}

impl Length for Prefetched {
    fn len(&self) -> u64 {
        self.file.len()
    }
}

impl ChunkReader for Prefetched {
    type T = VerifiedRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<VerifiedRead> {
        self.file.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        // The last part starting at or before `start`.
        let i = self.parts.partition_point(|(at, _)| *at <= start);
        if let Some((at, bytes)) = i.checked_sub(1).and_then(|i| self.parts.get(i)) {
            let from = usize::try_from(start - at).unwrap_or(usize::MAX);
            if let Some(to) = from.checked_add(length).filter(|&to| to <= bytes.len()) {
                return Ok(bytes.slice(from..to));
            }
        }
        self.file.get_bytes(start, length)
    }
}
