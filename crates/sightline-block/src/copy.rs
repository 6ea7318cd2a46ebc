//! Compaction by copying Arrow rows: the inputs' record batches are merged
//! in `(trace id, start)` order with `arrow_select::interleave`, without
//! decoding spans into the model and encoding them again.
//!
//! Decoding and re-encoding every span was most of a merge's CPU (each
//! attribute allocated as a model `String`, then split into the columns
//! again), about a fifth of the server's CPU at 10k realistic spans/s.
//! Copying writes the same rows: the columns that depend on the block
//! (resource and scope indexes, the parent's row distance, which dedicated
//! column holds which key, the attribute layout) are rebuilt exactly as the
//! span writer would; the rest are copied as they are. So a merge writes
//! the same file either way (`copy_merge_writes_what_the_model_merge_writes`
//! compares the bytes).
//!
//! It applies when no attribute value moves between a dedicated column and
//! the generic list (see [`SlotMap::new`]): the inputs' dedicated keys all
//! keep a column (in any slot order), and a key new to the merged block is
//! absent from an input that had no column for it. That is the steady
//! state: blocks of one workload choose the same frequent keys. Otherwise
//! [`crate::compact`] decodes spans as before.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{FixedSizeBinaryBuilder, Int32Builder, StringBuilder};
use arrow_array::new_null_array;
use arrow_array::{
    Array, ArrayRef, FixedSizeBinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray, UInt8Array, UInt32Array,
};
use arrow_schema::Schema;
use arrow_select::interleave::interleave;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReader};
use sightline_model::{SpanId, TraceId};

use crate::dedicated::Dedicated;
use crate::meta::MetaRow;
use crate::read::column;
use crate::schema::{self, Col, INT_SLOTS, STR_SLOTS, layout};
use crate::write::{Cut, Writer, parent_positions_of};
use crate::{Block, Error};

/// Rows decoded per input batch, as the decoding merge reads. A batch stays
/// alive while a pending output row refers to it, so a merge of 16 inputs
/// holds up to ~2 batches per input next to the 4096 pending rows.
const READ_BATCH_ROWS: usize = 512;

/// How one input's dedicated slots map onto the merged block's.
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    /// Output slot of each input string slot that has a key.
    str_out: Vec<u8>,
    /// Input slot feeding each output string slot; `None`: the input has
    /// no values for that key (the column is null for its rows).
    str_in: [Option<u8>; STR_SLOTS],
    int_out: Vec<u8>,
    int_in: [Option<u8>; INT_SLOTS],
    identity: bool,
}

impl SlotMap {
    /// The map for `input` into the `merged` choice, if copying writes
    /// what decoding would: every dedicated key of the input keeps a
    /// dedicated column, and every merged key the input has no column for
    /// is absent from its generic attributes (by the row groups' bloom
    /// filters on the attribute key), so no value moves between a
    /// dedicated column and the generic list.
    fn new(input: &Block, merged: &Dedicated) -> Result<Option<SlotMap>, Error> {
        let Some((str_out, str_in)) = assign::<STR_SLOTS>(&input.dedicated.str_keys, |k| merged.str_slot(k))
        else {
            return Ok(None);
        };
        let Some((int_out, int_in)) = assign::<INT_SLOTS>(&input.dedicated.int_keys, |k| merged.int_slot(k))
        else {
            return Ok(None);
        };
        let missing = merged
            .str_keys
            .iter()
            .filter(|(k, _)| input.dedicated.str_slot(k).is_none())
            .chain(merged.int_keys.iter().filter(|(k, _)| input.dedicated.int_slot(k).is_none()));
        let mut blooms = None;
        for (key, _) in missing {
            if blooms.is_none() {
                let builder = input.builder()?;
                let groups = builder.metadata().num_row_groups();
                let filters = (0..groups)
                    .map(|rg| input.bloom_filter(&builder, rg, input.leaves.span_attrs[0]))
                    .collect::<Result<Vec<_>, _>>()?;
                blooms = Some(filters);
            }
            let absent = blooms.iter().flatten().all(|b| b.as_ref().is_some_and(|b| !b.check(key.as_str())));
            if !absent {
                return Ok(None);
            }
        }
        let identity = str_out.iter().enumerate().all(|(i, o)| usize::from(*o) == i)
            && int_out.iter().enumerate().all(|(i, o)| usize::from(*o) == i);
        Ok(Some(SlotMap { str_out, str_in, int_out, int_in, identity }))
    }

    /// The attribute layout of a copied row: dedicated slot letters
    /// renamed to the merged block's slots.
    fn layout(&self, text: &str, out: &mut String) -> Result<(), String> {
        out.clear();
        for c in text.bytes() {
            let mapped = if c == layout::GENERIC {
                Some(c)
            } else if (layout::STR0..layout::STR0 + STR_SLOTS as u8).contains(&c) {
                self.str_out.get(usize::from(c - layout::STR0)).map(|s| layout::STR0 + s)
            } else if (layout::INT0..layout::INT0 + INT_SLOTS as u8).contains(&c) {
                self.int_out.get(usize::from(c - layout::INT0)).map(|s| layout::INT0 + s)
            } else {
                None
            };
            let Some(mapped) = mapped else {
                return Err(format!("attribute_layout has an unknown entry {:?}", char::from(c)));
            };
            out.push(char::from(mapped));
        }
        Ok(())
    }
}

/// Input slot → output slot for each of the input's keys (`keys`, in slot
/// order), and back; `None` if a key has no merged slot.
fn assign<const N: usize>(
    keys: &[(String, u64)],
    merged_slot: impl Fn(&str) -> Option<u8>,
) -> Option<(Vec<u8>, [Option<u8>; N])> {
    let mut out = Vec::with_capacity(keys.len());
    let mut back = [None; N];
    for (i, (key, _)) in keys.iter().enumerate() {
        let slot = merged_slot(key)?;
        let b = back.get_mut(usize::from(slot))?;
        if b.is_some() {
            return None;
        }
        *b = Some(u8::try_from(i).ok()?);
        out.push(slot);
    }
    Some((out, back))
}

/// The slot maps of `inputs` into `merged`, if every input can be copied.
pub(crate) fn slot_maps(inputs: &[&Block], merged: &Dedicated) -> Result<Option<Vec<SlotMap>>, Error> {
    let mut maps = Vec::with_capacity(inputs.len());
    for block in inputs {
        match crate::contain(&block.data_path, || SlotMap::new(block, merged))? {
            Some(map) => maps.push(map),
            None => return Ok(None),
        }
    }
    Ok(Some(maps))
}

/// Merges `inputs` into `writer` by copying rows; `maps` from
/// [`slot_maps`]. Same order, deduplication and errors on out-of-order
/// input as the model merge in [`crate::compact`].
pub(crate) fn merge(writer: &mut Writer, inputs: &[&Block], maps: Vec<SlotMap>) -> Result<(), Error> {
    let mut merger = Merger::new(inputs, maps)?;
    let mut trace: Vec<Candidate> = Vec::new();
    let mut seen: HashSet<SpanId> = HashSet::new();
    loop {
        let mut next: Option<TraceId> = None;
        for k in 0..merger.inputs.len() {
            if let Some(t) = merger.peek_trace(k)? {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        let Some(trace_id) = next else { break };
        trace.clear();
        seen.clear();
        // Inputs in order, so the first input's copy of a span wins.
        for k in 0..merger.inputs.len() {
            merger.pop_trace(k, trace_id, &mut trace, &mut seen)?;
        }
        // Stable, as the model merge's sort.
        trace.sort_by_key(|c| c.start);
        merger.push_trace(writer, trace_id, &trace)?;
        merger.prune_sources();
    }
    if !merger.pending.is_empty() {
        merger.write_pending(writer, Cut::Batch)?;
    }
    Ok(())
}

/// One row of the trace being merged.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    source: usize,
    row: usize,
    span_id: SpanId,
    parent: Option<SpanId>,
    start: u64,
}

/// A decoded input batch and its scalar columns.
struct Source {
    input: usize,
    batch: RecordBatch,
    trace_id: FixedSizeBinaryArray,
    span_id: FixedSizeBinaryArray,
    parent_distance: Int32Array,
    parent_span_id: FixedSizeBinaryArray,
    start: TimestampNanosecondArray,
    duration: Int64Array,
    service: StringArray,
    name: StringArray,
    kind: UInt8Array,
    resource: UInt32Array,
    scope: UInt32Array,
    layout: StringArray,
}

impl Source {
    fn new(input: usize, batch: RecordBatch) -> Result<Source, String> {
        Ok(Source {
            input,
            trace_id: column::<FixedSizeBinaryArray>(&batch, Col::TraceId)?.clone(),
            span_id: column::<FixedSizeBinaryArray>(&batch, Col::SpanId)?.clone(),
            parent_distance: column::<Int32Array>(&batch, Col::ParentDistance)?.clone(),
            parent_span_id: column::<FixedSizeBinaryArray>(&batch, Col::ParentSpanId)?.clone(),
            start: column::<TimestampNanosecondArray>(&batch, Col::StartTime)?.clone(),
            duration: column::<Int64Array>(&batch, Col::DurationNanos)?.clone(),
            service: column::<StringArray>(&batch, Col::ServiceName)?.clone(),
            name: column::<StringArray>(&batch, Col::Name)?.clone(),
            kind: column::<UInt8Array>(&batch, Col::Kind)?.clone(),
            resource: column::<UInt32Array>(&batch, Col::ResourceIndex)?.clone(),
            scope: column::<UInt32Array>(&batch, Col::ScopeIndex)?.clone(),
            layout: column::<StringArray>(&batch, Col::AttributeLayout)?.clone(),
            batch,
        })
    }

    fn trace_id(&self, row: usize) -> Result<TraceId, String> {
        TraceId::from_slice(self.trace_id.value(row)).map_err(|e| e.to_string())
    }
}

/// A position in one input block.
struct Input<'a> {
    block: &'a Block,
    /// Held for the resource and scope tables while merging: the footer
    /// cache may evict the block's entry meanwhile.
    footer: std::sync::Arc<crate::cache::Footer>,
    reader: ParquetRecordBatchReader,
    map: SlotMap,
    /// The current batch in `Merger::sources` and the next row in it.
    source: Option<usize>,
    row: usize,
    done: bool,
}

/// A span's row as [`crate::meta::MetaBuilder`] reads it.
struct MetaView<'a> {
    start: u64,
    end: u64,
    service: &'a str,
    name: &'a str,
    kind: u8,
}

impl MetaRow for MetaView<'_> {
    fn meta_start(&self) -> u64 {
        self.start
    }
    fn meta_end(&self) -> u64 {
        self.end
    }
    fn meta_service(&self) -> &str {
        self.service
    }
    fn meta_name(&self) -> &str {
        self.name
    }
    fn meta_kind(&self) -> u8 {
        self.kind
    }
}

struct Merger<'a> {
    inputs: Vec<Input<'a>>,
    /// Batches that pending rows or the inputs' positions refer to.
    sources: Vec<Source>,
    /// Rows buffered for the next output batch: `(source, row)`.
    pending: Vec<(usize, usize)>,
    /// The rebuilt columns of the pending rows.
    parent_distance: Int32Builder,
    parent_span_id: FixedSizeBinaryBuilder,
    resource: Vec<u32>,
    scope: Vec<u32>,
    layout: StringBuilder,
    layout_buf: String,
}

impl<'a> Merger<'a> {
    fn new(blocks: &[&'a Block], maps: Vec<SlotMap>) -> Result<Merger<'a>, Error> {
        let mut inputs = Vec::with_capacity(blocks.len());
        for (block, map) in blocks.iter().zip(maps) {
            let (footer, reader) = crate::contain(&block.data_path, || {
                // Plain text, as the writer takes it: no dictionaries to
                // unpack per value.
                let options = ArrowReaderOptions::new().with_schema(schema::write_schema());
                let footer = block.footer()?;
                let reader = block
                    .builder_with(options)?
                    .with_batch_size(READ_BATCH_ROWS)
                    .build()
                    .map_err(|e| block.parquet_err(e))?;
                Ok((footer, reader))
            })?;
            inputs.push(Input { block, footer, reader, map, source: None, row: 0, done: false });
        }
        Ok(Merger {
            inputs,
            sources: Vec::new(),
            pending: Vec::new(),
            parent_distance: Int32Builder::new(),
            parent_span_id: FixedSizeBinaryBuilder::new(8),
            resource: Vec::new(),
            scope: Vec::new(),
            layout: StringBuilder::new(),
            layout_buf: String::new(),
        })
    }

    /// Moves input `k` to a row, reading its next batch if needed; false at
    /// its end.
    fn fill(&mut self, k: usize) -> Result<bool, Error> {
        let Some(input) = self.inputs.get_mut(k) else { return Ok(false) };
        loop {
            if input.done {
                return Ok(false);
            }
            if let Some(s) = input.source
                && self.sources.get(s).is_some_and(|s| input.row < s.batch.num_rows())
            {
                return Ok(true);
            }
            let block = input.block;
            let reader = &mut input.reader;
            let next = crate::contain(&block.data_path, || Ok(reader.next()))?;
            match next {
                Some(Ok(batch)) => {
                    let source = Source::new(k, batch).map_err(|e| Error::corrupt(&block.data_path, e))?;
                    self.sources.push(source);
                    input.source = Some(self.sources.len() - 1);
                    input.row = 0;
                }
                Some(Err(e)) => {
                    input.done = true;
                    return Err(block.arrow_err(e));
                }
                None => input.done = true,
            }
        }
    }

    fn peek_trace(&mut self, k: usize) -> Result<Option<TraceId>, Error> {
        if !self.fill(k)? {
            return Ok(None);
        }
        let Some(input) = self.inputs.get(k) else { return Ok(None) };
        let Some(source) = input.source.and_then(|s| self.sources.get(s)) else { return Ok(None) };
        source.trace_id(input.row).map(Some).map_err(|e| Error::corrupt(&input.block.data_path, e))
    }

    /// Appends input `k`'s rows of `trace_id` not in `seen` to `trace`,
    /// with their parents resolved (a row stores its parent as a distance
    /// within the trace, which a merge changes).
    fn pop_trace(
        &mut self,
        k: usize,
        trace_id: TraceId,
        trace: &mut Vec<Candidate>,
        seen: &mut HashSet<SpanId>,
    ) -> Result<(), Error> {
        let mut rows: Vec<(Candidate, Option<i32>)> = Vec::new();
        let path = match self.inputs.get(k) {
            Some(input) => input.block.data_path.clone(),
            None => return Ok(()),
        };
        let corrupt = |e: String| Error::corrupt(&path, e);
        while self.peek_trace(k)? == Some(trace_id) {
            let Some(input) = self.inputs.get_mut(k) else { break };
            let (Some(s), row) = (input.source, input.row) else { break };
            input.row += 1;
            let Some(source) = self.sources.get(s) else { break };
            let span_id =
                SpanId::from_slice(source.span_id.value(row)).map_err(|e| corrupt(e.to_string()))?;
            let distance = source.parent_distance.is_valid(row).then(|| source.parent_distance.value(row));
            let parent = if source.parent_span_id.is_valid(row) {
                Some(
                    SpanId::from_slice(source.parent_span_id.value(row))
                        .map_err(|e| corrupt(e.to_string()))?,
                )
            } else {
                None
            };
            if distance.is_some() && parent.is_some() {
                return Err(corrupt("row has both parent_distance and parent_span_id".to_owned()));
            }
            let start = source.start.value(row) as u64;
            rows.push((Candidate { source: s, row, span_id, parent, start }, distance));
        }
        let ids: Vec<SpanId> = rows.iter().map(|(c, _)| c.span_id).collect();
        for (i, (mut candidate, distance)) in rows.into_iter().enumerate() {
            if let Some(d) = distance {
                let parent =
                    i64::try_from(i).ok().map(|i| i - i64::from(d)).and_then(|p| usize::try_from(p).ok());
                let Some(id) = parent.and_then(|p| ids.get(p)) else {
                    return Err(corrupt(format!("parent_distance {d} points outside trace {trace_id}")));
                };
                candidate.parent = Some(*id);
            }
            if seen.insert(candidate.span_id) {
                trace.push(candidate);
            }
        }
        Ok(())
    }

    /// Buffers a merged trace's rows, writing batches and closing row
    /// groups where the span writer would.
    fn push_trace(
        &mut self,
        writer: &mut Writer,
        trace_id: TraceId,
        trace: &[Candidate],
    ) -> Result<(), Error> {
        writer.start_trace(trace_id)?;
        let pairs: Vec<(SpanId, Option<SpanId>)> = trace.iter().map(|c| (c.span_id, c.parent)).collect();
        let parents = parent_positions_of(&pairs);
        let views: Vec<MetaView<'_>> = trace
            .iter()
            .filter_map(|c| {
                let s = self.sources.get(c.source)?;
                Some(MetaView {
                    start: c.start,
                    end: c.start.wrapping_add(s.duration.value(c.row) as u64),
                    service: s.service.value(c.row),
                    name: s.name.value(c.row),
                    kind: s.kind.value(c.row),
                })
            })
            .collect();
        writer.meta_mut().add_trace(&views, &parents);
        for (i, (c, parent)) in trace.iter().zip(&parents).enumerate() {
            let Some(source) = self.sources.get(c.source) else { continue };
            let Some(input) = self.inputs.get(source.input) else { continue };
            let block = input.block;
            let corrupt = |e: String| Error::corrupt(&block.data_path, e);
            // Both are positions in one trace (see `Writer::push_trace`).
            let distance = parent.map(|p| i32::try_from(i as i64 - p as i64).unwrap_or(i32::MAX));
            self.parent_distance.append_option(distance);
            match (distance, c.parent) {
                // NOTE: fails only on a width mismatch; span ids are 8 bytes.
                (None, Some(p)) => {
                    let _ = self.parent_span_id.append_value(p.as_bytes());
                }
                _ => self.parent_span_id.append_null(),
            }
            let r = source.resource.value(c.row) as usize;
            let resource = input
                .footer
                .resources
                .get(r)
                .ok_or_else(|| corrupt(format!("resource_index {r} out of range")))?;
            self.resource.push(writer.resource_index(resource));
            let s = source.scope.value(c.row) as usize;
            let scope =
                input.footer.scopes.get(s).ok_or_else(|| corrupt(format!("scope_index {s} out of range")))?;
            self.scope.push(writer.scope_index(scope));
            let text = source.layout.value(c.row);
            if input.map.identity {
                self.layout.append_value(text);
            } else {
                input.map.layout(text, &mut self.layout_buf).map_err(corrupt)?;
                self.layout.append_value(&self.layout_buf);
            }
            self.pending.push((c.source, c.row));
            match writer.cut_after(self.pending.len()) {
                Cut::None => {}
                cut => self.write_pending(writer, cut)?,
            }
        }
        Ok(())
    }

    /// Builds the pending rows' batch and hands it to the writer.
    fn write_pending(&mut self, writer: &mut Writer, cut: Cut) -> Result<(), Error> {
        // Errors building the output name the output, not an input (the
        // store sets aside the input an error names as damaged).
        let path = writer.data_path().to_owned();
        let schema = Arc::clone(writer.schema());
        let arrow = |e: arrow_schema::ArrowError| Error::Arrow { path: path.clone(), source: e };
        let mut str_used = [0u64; STR_SLOTS];
        let mut int_used = [0u64; INT_SLOTS];
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(writer.schema().fields().len());
        for col in Col::all() {
            let array: ArrayRef = match col {
                Col::ParentDistance => Arc::new(self.parent_distance.finish()),
                Col::ParentSpanId => Arc::new(self.parent_span_id.finish()),
                Col::ResourceIndex => Arc::new(UInt32Array::from(std::mem::take(&mut self.resource))),
                Col::ScopeIndex => Arc::new(UInt32Array::from(std::mem::take(&mut self.scope))),
                Col::AttributeLayout => Arc::new(self.layout.finish()),
                Col::Str(m) => {
                    let array = self.gather(&path, &schema, col, |map| {
                        map.str_in.get(usize::from(m)).copied().flatten().map(Col::Str)
                    })?;
                    if let Some(n) = str_used.get_mut(usize::from(m)) {
                        *n = (array.len() - array.null_count()) as u64;
                    }
                    array
                }
                Col::Int(m) => {
                    let array = self.gather(&path, &schema, col, |map| {
                        map.int_in.get(usize::from(m)).copied().flatten().map(Col::Int)
                    })?;
                    if let Some(n) = int_used.get_mut(usize::from(m)) {
                        *n = (array.len() - array.null_count()) as u64;
                    }
                    array
                }
                other => self.gather(&path, &schema, other, |_| Some(other))?,
            };
            columns.push(array);
        }
        self.pending.clear();
        let batch = RecordBatch::try_new(Arc::clone(writer.schema()), columns).map_err(arrow)?;
        writer.write_prepared(&batch, &str_used, &int_used, cut)
    }

    /// The pending rows of output column `out`, taken from each source's
    /// column `col(map)` (all nulls where that is `None`).
    fn gather(
        &self,
        path: &Path,
        schema: &Schema,
        out: Col,
        col: impl Fn(&SlotMap) -> Option<Col>,
    ) -> Result<ArrayRef, Error> {
        let nulls = |len: usize| -> Result<ArrayRef, Error> {
            let field =
                schema.fields().get(out.root()).ok_or_else(|| Error::corrupt(path, "no such column"))?;
            Ok(new_null_array(field.data_type(), len))
        };
        let mut owned: Vec<Option<ArrayRef>> = Vec::with_capacity(self.sources.len());
        for source in &self.sources {
            let c = self.inputs.get(source.input).and_then(|input| col(&input.map));
            owned.push(if c.is_none() { Some(nulls(source.batch.num_rows())?) } else { None });
        }
        let mut arrays: Vec<&dyn Array> = Vec::with_capacity(self.sources.len());
        for (source, null) in self.sources.iter().zip(&owned) {
            if let Some(null) = null {
                arrays.push(null.as_ref());
                continue;
            }
            let c = self.inputs.get(source.input).and_then(|input| col(&input.map)).unwrap_or(out);
            let array = source
                .batch
                .columns()
                .get(c.root())
                .ok_or_else(|| Error::corrupt(path, format!("batch lacks column {}", c.name())))?;
            arrays.push(array.as_ref());
        }
        interleave(&arrays, &self.pending).map_err(|source| Error::Arrow { path: path.to_owned(), source })
    }

    /// Drops batches no pending row and no input refers to any more.
    fn prune_sources(&mut self) {
        if self.sources.len() <= 2 * self.inputs.len() + 8 {
            return;
        }
        let mut keep = vec![false; self.sources.len()];
        for (s, _) in &self.pending {
            if let Some(k) = keep.get_mut(*s) {
                *k = true;
            }
        }
        for input in &self.inputs {
            if let Some(k) = input.source.and_then(|s| keep.get_mut(s)) {
                *k = true;
            }
        }
        let mut new_index = vec![usize::MAX; self.sources.len()];
        let mut next = 0;
        for (i, k) in keep.iter().enumerate() {
            if *k {
                if let Some(n) = new_index.get_mut(i) {
                    *n = next;
                }
                next += 1;
            }
        }
        let mut i = 0;
        self.sources.retain(|_| {
            let k = keep.get(i).copied().unwrap_or(false);
            i += 1;
            k
        });
        for (s, _) in &mut self.pending {
            *s = new_index.get(*s).copied().unwrap_or(usize::MAX);
        }
        for input in &mut self.inputs {
            input.source = input.source.and_then(|s| new_index.get(s).copied());
        }
    }
}
