//! [`compact`]: a streaming k-way merge of sorted blocks into one.

use std::collections::{HashSet, VecDeque};
use std::path::Path;

use sightline_model::{Span, TraceId};

use crate::dedicated::Dedicated;
use crate::read::SpanChunks;
use crate::write::Writer;
use crate::{Block, BlockMeta, Error, WriteOptions};

/// Merges `inputs` into a new block `<dir>/<id>`: spans are deduplicated
/// by `(trace id, span id)` (the first input wins), sorted by
/// `(trace id, start)`, and written with `compaction_level =
/// max(inputs) + 1`.
///
/// Every input is already sorted by trace id, so the merge streams: it
/// holds one decoded batch per input plus the trace being merged, never
/// whole blocks. Rows are copied as Arrow arrays when the inputs' dedicated
/// columns allow (see [`crate::copy`]), else decoded into spans and written
/// again; both write the same file.
pub fn compact(dir: &Path, id: &str, inputs: &[&Block], options: &WriteOptions) -> Result<BlockMeta, Error> {
    let level = inputs.iter().map(|b| b.meta().compaction_level).max().map_or(0, |m| m.saturating_add(1));
    let dedicated = Dedicated::merge(inputs.iter().map(|b| &b.dedicated));
    if let Some(maps) = crate::copy::slot_maps(inputs, &dedicated)? {
        tracing::debug!(block = id, inputs = inputs.len(), "merging by copying rows");
        let mut writer = Writer::create(dir, id, options, level, dedicated)?;
        crate::copy::merge(&mut writer, inputs, maps)?;
        return writer.finish();
    }
    tracing::debug!(block = id, inputs = inputs.len(), "merging by decoding spans: dedicated columns differ");
    compact_decoded(dir, id, inputs, options, level, dedicated)
}

/// The merge through model spans: decodes every input span and writes it
/// again. [`crate::copy`] writes the same rows without decoding where the
/// inputs' dedicated columns allow.
pub(crate) fn compact_decoded(
    dir: &Path,
    id: &str,
    inputs: &[&Block],
    options: &WriteOptions,
    level: u32,
    dedicated: Dedicated,
) -> Result<BlockMeta, Error> {
    let mut cursors = inputs.iter().map(|b| Cursor::new(b)).collect::<Result<Vec<_>, _>>()?;
    let mut writer = Writer::create(dir, id, options, level, dedicated)?;
    let mut trace: Vec<Span> = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let mut next: Option<TraceId> = None;
        for cursor in &mut cursors {
            if let Some(t) = cursor.peek_trace()? {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        let Some(trace_id) = next else { break };
        trace.clear();
        seen.clear();
        // Inputs in order, so the first input's copy of a span wins.
        for cursor in &mut cursors {
            while let Some(span) = cursor.pop_if(trace_id)? {
                if seen.insert(span.span_id) {
                    trace.push(span);
                }
            }
        }
        trace.sort_by_key(|s| s.start_time_unix_nano);
        writer.push_trace(&trace)?;
    }
    writer.finish()
}

/// A position in one input block.
struct Cursor<'a> {
    chunks: SpanChunks<'a>,
    buffer: VecDeque<Span>,
}

impl<'a> Cursor<'a> {
    fn new(block: &'a Block) -> Result<Cursor<'a>, Error> {
        Ok(Cursor { chunks: block.spans()?, buffer: VecDeque::new() })
    }

    fn fill(&mut self) -> Result<(), Error> {
        while self.buffer.is_empty() {
            match self.chunks.next() {
                Some(chunk) => self.buffer.extend(chunk?),
                None => break,
            }
        }
        Ok(())
    }

    fn peek_trace(&mut self) -> Result<Option<TraceId>, Error> {
        self.fill()?;
        Ok(self.buffer.front().map(|s| s.trace_id))
    }

    fn pop_if(&mut self, trace_id: TraceId) -> Result<Option<Span>, Error> {
        self.fill()?;
        if self.buffer.front().is_some_and(|s| s.trace_id == trace_id) {
            return Ok(self.buffer.pop_front());
        }
        Ok(None)
    }
}
