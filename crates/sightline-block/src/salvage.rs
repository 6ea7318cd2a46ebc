//! [`salvage`]: copying what still verifies out of a damaged block, and
//! naming exactly what does not.
//!
//! A damaged 4 KiB chunk spoils the pages it overlaps, not the block:
//! every other trace still reads back verified. Salvage finds the trace ids
//! (the `trace_id` column, one row group at a time), reads the traces in
//! id order a batch at a time through the normal lookup path (so every
//! byte is checked), splits a batch that fails in halves until each
//! failing trace stands alone, and writes the traces that read whole into
//! a new block. What it reports lost is exact: each trace with a span on a
//! damaged page, and for a row group whose `trace_id` pages are themselves
//! damaged, its row count and trace-id range (from the footer statistics).
//!
//! Memory: one batch of traces at a time, plus the writer's row group.

use std::path::Path;

use arrow_array::cast::AsArray as _;
use parquet::arrow::ProjectionMask;
use parquet::file::statistics::Statistics;
use sightline_model::{Span, TraceId};

use crate::schema::Col;
use crate::write::Writer;
use crate::{Block, BlockMeta, Error, WriteOptions};

/// Traces read per lookup; a failing batch is split in halves.
const BATCH: usize = 256;

/// Rows of a damaged block whose trace ids could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRows {
    /// The row group.
    pub row_group: usize,
    /// Rows (spans) in it.
    pub rows: u64,
    /// The smallest and largest trace id in it, when the footer has them.
    pub trace_ids: Option<(TraceId, TraceId)>,
}

/// What [`salvage`] saved and lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvaged {
    /// The new block, if any trace could be saved.
    pub block: Option<BlockMeta>,
    /// Traces with at least one span that could not be read: lost from
    /// this block (spans of them in other blocks are not affected).
    pub lost: Vec<TraceId>,
    /// Row groups whose trace ids could not be read.
    pub unreadable: Vec<UnreadableRows>,
}

/// Writes every trace of `block` that reads back intact into a new block
/// `<dir>/<id>` (same compaction level and attribute columns), and reports
/// what it could not. The new block is not written when nothing could be
/// saved.
pub fn salvage(block: &Block, dir: &Path, id: &str, options: &WriteOptions) -> Result<Salvaged, Error> {
    let (ids, unreadable) = trace_ids(block)?;
    let mut lost = Vec::new();
    let mut writer: Option<Writer> = None;
    for batch in ids.chunks(BATCH) {
        read_or_split(block, batch, &mut lost, &mut |trace| {
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(Writer::create(
                    dir,
                    id,
                    options,
                    block.meta().compaction_level,
                    block.dedicated.clone(),
                )?),
            };
            w.push_trace(trace)
        })?;
    }
    let block = writer.map(Writer::finish).transpose()?;
    Ok(Salvaged { block, lost, unreadable })
}

/// Reads the traces `ids` and hands each to `save`; a batch that fails on
/// damage is split until the failing traces stand alone in `lost`.
fn read_or_split(
    block: &Block,
    ids: &[TraceId],
    lost: &mut Vec<TraceId>,
    save: &mut dyn FnMut(&[Span]) -> Result<(), Error>,
) -> Result<(), Error> {
    match block.traces(ids) {
        Ok(spans) => {
            for trace in spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
                let mut trace = trace.to_vec();
                trace.sort_by_key(|s| s.start_time_unix_nano);
                save(&trace)?;
            }
            Ok(())
        }
        Err(e) if e.is_corruption() => {
            if let [only] = ids {
                lost.push(*only);
                return Ok(());
            }
            let (left, right) = ids.split_at(ids.len() / 2);
            read_or_split(block, left, lost, save)?;
            read_or_split(block, right, lost, save)
        }
        Err(e) => Err(e),
    }
}

/// The distinct trace ids of `block`, sorted, read one row group at a
/// time; the row groups whose ids cannot be read are reported instead.
fn trace_ids(block: &Block) -> Result<(Vec<TraceId>, Vec<UnreadableRows>), Error> {
    let footer = block.footer()?;
    let md = footer.reader_meta.metadata();
    let mut ids: Vec<TraceId> = Vec::new();
    let mut unreadable = Vec::new();
    for (rg, group) in md.row_groups().iter().enumerate() {
        match row_group_ids(block, rg) {
            Ok(found) => ids.extend(found),
            Err(e) if e.is_corruption() => {
                let range = group.columns().get(block.leaves.trace_id).and_then(|c| match c.statistics() {
                    Some(Statistics::FixedLenByteArray(s)) => {
                        let min = TraceId::from_slice(s.min_opt()?.data()).ok()?;
                        let max = TraceId::from_slice(s.max_opt()?.data()).ok()?;
                        Some((min, max))
                    }
                    _ => None,
                });
                let rows = u64::try_from(group.num_rows()).unwrap_or(0);
                unreadable.push(UnreadableRows { row_group: rg, rows, trace_ids: range });
            }
            Err(e) => return Err(e),
        }
    }
    ids.sort_unstable();
    ids.dedup();
    Ok((ids, unreadable))
}

fn row_group_ids(block: &Block, rg: usize) -> Result<Vec<TraceId>, Error> {
    crate::contain(&block.data_path, || {
        let builder = block.builder()?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), [Col::TraceId.root()]);
        let reader = builder
            .with_row_groups(vec![rg])
            .with_projection(mask)
            .build()
            .map_err(|e| block.parquet_err(e))?;
        let mut out: Vec<TraceId> = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| block.arrow_err(e))?;
            let column = batch
                .column(0)
                .as_fixed_size_binary_opt()
                .ok_or_else(|| Error::corrupt(&block.data_path, "trace_id is not fixed-size binary"))?;
            for value in column.iter().flatten() {
                let id = TraceId::from_slice(value)
                    .map_err(|e| Error::corrupt(&block.data_path, e.to_string()))?;
                if out.last() != Some(&id) {
                    out.push(id);
                }
            }
        }
        Ok(out)
    })
}
