//! Compaction: a k-way merge of sorted blocks into one, streaming. Each
//! input holds one decoded batch at a time, and output rows are gathered
//! with `interleave` and written in chunks, so a merge holds a few MiB
//! whatever its inputs' sizes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::Arc;

use std::hash::{Hash as _, Hasher as _};

use arrow_array::cast::AsArray as _;
use arrow_array::types::{Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;

use super::LogBlock;
use super::schema::{self, Col, LogBlockMeta};
use super::write::BlockWriter;
use crate::Error;

/// Output rows gathered before they are written.
const OUT_ROWS: usize = 8192;

/// The merge key of a row: service, time, and a hash of every other
/// column's value. Blocks are sorted by (service, time); the hash makes
/// rows stored twice (a retried export flushed into two blocks) equal
/// keys, written once. It orders ties only within a merge: inputs order
/// ties by the fingerprint, which is not stored, so a duplicate whose tie
/// partners come in another order may be written twice, which a search's
/// deduplication hides.
/// The service is its rank among the inputs' services (their metas list
/// them), which orders as the name does without a copy of it per row.
type Key = (usize, i64, u64);

fn key(batch: &RecordBatch, row: usize, services: &[String]) -> Key {
    let name = batch.column(Col::Service.index()).as_string::<i32>().value(row);
    // NOTE: every row's service is in its block's meta; a name missing
    // there (a damaged meta) sorts after all others rather than failing.
    let rank = services.binary_search_by(|s| s.as_str().cmp(name)).unwrap_or(services.len());
    (rank, batch.column(Col::Time.index()).as_primitive::<Int64Type>().value(row), row_hash(batch, row))
}

/// A hash of a row's columns other than service and time (a batch in the
/// current layout).
fn row_hash(batch: &RecordBatch, row: usize) -> u64 {
    // foldhash, not SipHash: this hashes every byte of every merged row,
    // and the hash only orders ties and finds repeats within one merge.
    let mut h = std::hash::BuildHasher::build_hasher(&foldhash::fast::FixedState::with_seed(0x5eed));
    let col = |c: Col| batch.column(c.index());
    col(Col::Observed).as_primitive::<Int64Type>().value(row).hash(&mut h);
    col(Col::SeverityNumber).as_primitive::<Int32Type>().value(row).hash(&mut h);
    col(Col::SeverityText).as_string::<i32>().value(row).hash(&mut h);
    for c in [Col::TraceId, Col::SpanId] {
        let a = col(c).as_fixed_size_binary();
        (!a.is_null(row)).then(|| a.value(row)).hash(&mut h);
    }
    let body = col(Col::Body).as_string::<i32>();
    (!body.is_null(row)).then(|| body.value(row)).hash(&mut h);
    for c in [Col::Rest, Col::Origin] {
        col(c).as_binary::<i32>().value(row).hash(&mut h);
    }
    h.finish()
}

struct Input {
    reader: ParquetRecordBatchReader,
    /// Index into `held` of the current batch, and the next row in it.
    held: usize,
    row: usize,
}

/// Merges `inputs` (each sorted) into block `id` at `level`, in the
/// current format whatever the inputs' (older blocks' columns are mapped);
/// a row present in several inputs is written once (see [`Key`]).
pub(crate) fn merge(
    staging: &Path,
    id: &str,
    inputs: &[Arc<LogBlock>],
    row_group_rows: usize,
    level: u32,
) -> Result<LogBlockMeta, Error> {
    // Strong compression only for a block that is not merged again (the
    // store merges blocks below half the largest): intermediate merges
    // would pay zstd 9's CPU for a block rewritten within minutes.
    let total: u64 = inputs.iter().map(|b| b.meta().record_count).sum();
    let strong = total >= crate::store::COMPACT_MAX_RECORDS / 2;
    let mut writer = BlockWriter::new(staging, id, row_group_rows, level, strong)?;
    let mut held: Vec<RecordBatch> = Vec::new();
    let mut pending: Vec<(usize, usize)> = Vec::with_capacity(OUT_ROWS);
    let mut states: Vec<Option<Input>> = Vec::with_capacity(inputs.len());
    let mut heap: BinaryHeap<Reverse<(Key, usize)>> = BinaryHeap::new();
    let mut services: Vec<String> = inputs.iter().flat_map(|b| b.meta().services.iter().cloned()).collect();
    services.sort();
    services.dedup();
    let services = services.as_slice();
    for (i, block) in inputs.iter().enumerate() {
        let mut reader = block.read_all()?;
        match next_batch(&mut reader, block)? {
            Some(batch) => {
                heap.push(Reverse((key(&batch, 0, services), i)));
                held.push(batch);
                states.push(Some(Input { reader, held: held.len() - 1, row: 0 }));
            }
            None => states.push(None),
        }
    }
    let mut last: Option<Key> = None;
    while let Some(Reverse((k, i))) = heap.pop() {
        let Some(input) = states.get_mut(i).and_then(Option::as_mut) else { continue };
        if last.as_ref() != Some(&k) {
            pending.push((input.held, input.row));
            last = Some(k);
        }
        input.row += 1;
        let len = held.get(input.held).map_or(0, RecordBatch::num_rows);
        if input.row < len {
            let batch = &held[input.held];
            heap.push(Reverse((key(batch, input.row, services), i)));
        } else {
            // This input moves to its next batch: write what refers to the
            // batches held so far, then keep only the current ones.
            flush(&mut writer, &held, &mut pending)?;
            let reader = states[i].as_mut().map(|s| &mut s.reader).ok_or_else(gone)?;
            let next = next_batch(reader, &inputs[i])?;
            let mut kept = Vec::new();
            for (j, state) in states.iter_mut().enumerate() {
                let Some(s) = state else { continue };
                if j == i {
                    continue;
                }
                kept.push(held[s.held].clone());
                s.held = kept.len() - 1;
            }
            held = kept;
            match next {
                Some(batch) => {
                    heap.push(Reverse((key(&batch, 0, services), i)));
                    held.push(batch);
                    if let Some(s) = states[i].as_mut() {
                        s.held = held.len() - 1;
                        s.row = 0;
                    }
                }
                None => states[i] = None,
            }
        }
        if pending.len() >= OUT_ROWS {
            flush(&mut writer, &held, &mut pending)?;
        }
    }
    flush(&mut writer, &held, &mut pending)?;
    writer.finish()
}

fn gone() -> Error {
    Error::Task("merge input vanished".to_owned())
}

/// The input's next non-empty batch, with the current layout's columns.
fn next_batch(reader: &mut ParquetRecordBatchReader, block: &LogBlock) -> Result<Option<RecordBatch>, Error> {
    let arrow_err = |source| Error::Arrow { path: block.data_path().to_owned(), source };
    for batch in reader.by_ref() {
        let batch = batch.map_err(arrow_err)?;
        if batch.num_rows() > 0 {
            return block.layout().to_logical(batch).map(Some).map_err(arrow_err);
        }
    }
    Ok(None)
}

fn flush(
    writer: &mut BlockWriter,
    held: &[RecordBatch],
    pending: &mut Vec<(usize, usize)>,
) -> Result<(), Error> {
    if pending.is_empty() {
        return Ok(());
    }
    let arrow_err = |source| Error::Arrow { path: writer.data_path.clone(), source };
    let columns = (0..Col::ALL.len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = held.iter().map(|b| b.column(c).as_ref()).collect();
            arrow_select::interleave::interleave(&arrays, pending)
        })
        .collect::<Result<Vec<ArrayRef>, _>>()
        .map_err(arrow_err)?;
    let batch = RecordBatch::try_new(schema::arrow_schema(), columns).map_err(arrow_err)?;
    pending.clear();
    writer.write(&batch)
}
