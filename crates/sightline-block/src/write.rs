//! Writing a block: spans → Arrow record batches → Parquet, then the
//! durable publish (temp directory, fsync, rename, fsync parent).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType, UInt8Type, UInt32Type};
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StructArray};
use arrow_schema::{ArrowError, SchemaRef};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::{ArrowWriter, add_encoded_arrow_schema_to_metadata};
use parquet::file::metadata::KeyValue as ParquetKeyValue;
use sightline_model::{Resource, Scope, Span, SpanId, TraceId};

use crate::columns::{self, Fixed, Nullable, Str, take_back_values, values_array};
use crate::dedicated::Dedicated;
use crate::integrity::ChecksumWriter;
use crate::json;
use crate::meta::MetaBuilder;
use crate::row::{AttrValue, Row};
use crate::schema::{self, DATA_FILE, INT_SLOTS, META_FILE, STR_SLOTS, layout, tag};
use crate::{BlockMeta, Error, FORMAT_VERSION, WriteOptions};

/// Writes `<dir>/<id>/` durably. See [`crate::write()`].
///
/// Takes owned spans or references (`Vec<Span>`, `Vec<&Span>`): the writer
/// only reads them, so a caller that keeps its spans passes references and
/// nothing is cloned.
pub fn write<S: Borrow<Span>>(
    dir: &Path,
    id: &str,
    spans: Vec<S>,
    options: &WriteOptions,
) -> Result<BlockMeta, Error> {
    let rows: Vec<&Span> = spans.iter().map(Borrow::borrow).collect();
    write_rows(dir, id, rows, options)
}

/// Sorts, deduplicates and writes rows of any source.
pub(crate) fn write_rows<R: Row>(
    dir: &Path,
    id: &str,
    rows: Vec<R>,
    options: &WriteOptions,
) -> Result<BlockMeta, Error> {
    let sorted: Vec<&R> = sort_dedup(&rows).into_iter().filter_map(|i| rows.get(i)).collect();
    let dedicated = Dedicated::choose(&sorted);
    let mut writer = Writer::create(dir, id, options, options.compaction_level, dedicated)?;
    let mut rest = &sorted[..];
    while let Some(first) = rest.first() {
        let trace_id = first.trace_id();
        let len = rest.iter().take_while(|s| s.trace_id() == trace_id).count();
        let (trace, tail) = rest.split_at(len);
        writer.push_trace(trace)?;
        rest = tail;
    }
    writer.finish()
}

/// The order to write `rows` in: by `(trace id, start)`, equal starts in
/// input order (so the output is deterministic), later duplicates of
/// `(trace id, span id)` dropped. See [`sort_dedup_keys`].
fn sort_dedup<R: Row>(rows: &[R]) -> Vec<usize> {
    let keys = rows.iter().enumerate().map(|(i, r)| SortKey::of(r, i as u32)).collect();
    sort_dedup_keys(keys).into_iter().map(|k| k.index as usize).collect()
}

/// What ordering and deduplicating a row needs, 40 bytes: the flush keeps
/// one per span of the head instead of the rows themselves (see
/// `crate::otlp::write_otlp`). Sorted by `(trace id, start, index)`; the
/// index makes every key distinct, so the span id never decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SortKey {
    pub(crate) trace_id: TraceId,
    pub(crate) start: u64,
    /// The row's position in the writer's input.
    pub(crate) index: u32,
    pub(crate) span_id: SpanId,
}

impl SortKey {
    pub(crate) fn of<R: Row>(row: &R, index: u32) -> SortKey {
        SortKey { trace_id: row.trace_id(), start: row.start(), index, span_id: row.span_id() }
    }
}

/// Sorts `keys` into write order and drops later duplicates of `(trace
/// id, span id)`: the copy given first (smallest index) wins.
///
/// Sorts small keys, not the rows themselves, and finds duplicates within
/// each trace's run after the sort instead of hashing every span: runs are
/// short, and a duplicate can only sit in its own trace's run.
pub(crate) fn sort_dedup_keys(mut keys: Vec<SortKey>) -> Vec<SortKey> {
    keys.sort_unstable();
    let mut kept = 0;
    let mut first_seen: HashMap<SpanId, u32> = HashMap::new();
    let mut keep: Vec<bool> = Vec::new();
    let mut start = 0;
    while let Some(first) = keys.get(start) {
        let trace_id = first.trace_id;
        let end = start + keys[start..].iter().take_while(|k| k.trace_id == trace_id).count();
        let run = &keys[start..end];
        keep.clear();
        if run.len() <= 32 {
            keep.extend(run.iter().map(|k| !run.iter().any(|j| j.index < k.index && j.span_id == k.span_id)));
        } else {
            first_seen.clear();
            for k in run {
                let min = first_seen.entry(k.span_id).or_insert(k.index);
                *min = (*min).min(k.index);
            }
            keep.extend(run.iter().map(|k| first_seen.get(&k.span_id) == Some(&k.index)));
        }
        // Compacted in place once the run is decided: `kept` never passes
        // the position being moved.
        for (i, keep) in (start..end).zip(&keep) {
            if *keep {
                keys[kept] = keys[i];
                kept += 1;
            }
        }
        start = end;
    }
    keys.truncate(kept);
    keys
}

/// Checks that `id` is usable as a single directory name.
pub(crate) fn validate_id(id: &str) -> Result<(), Error> {
    let why = if id.is_empty() {
        "empty"
    } else if id == "." || id == ".." {
        "a relative path component"
    } else if id.contains(['/', '\\', '\0']) {
        "contains a path separator"
    } else if id.ends_with(".tmp") {
        "ends with .tmp, reserved for blocks being written"
    } else {
        return Ok(());
    };
    Err(Error::InvalidId { id: id.to_owned(), why })
}

/// Rows buffered as Arrow arrays before the Parquet writer encodes them.
/// A row group (32 Ki rows) buffered whole held its raw values twice (the
/// builders, then the finished arrays) — about 30 MiB on realistic spans,
/// paid by every flush and compaction; the encoder keeps only compressed
/// pages and dictionaries until the row group closes.
const WRITE_BATCH_ROWS: usize = 4096;

/// Where a writer of prepared batches cuts; see [`Writer::cut_after`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Keep buffering.
    None,
    /// Write the buffered rows into the open row group.
    Batch,
    /// Write them and close the row group.
    Group,
}

/// A streaming block writer: takes whole traces in `(trace id, start)`
/// order and cuts row groups of exactly `row_group_spans` rows.
pub(crate) struct Writer {
    id: String,
    dir: PathBuf,
    tmp_dir: PathBuf,
    final_dir: PathBuf,
    data_path: PathBuf,
    writer: ArrowWriter<ChecksumWriter<File>>,
    schema: SchemaRef,
    rows: Rows,
    row_group_spans: usize,
    /// Rows of the current row group already handed to `writer`.
    group_rows: usize,
    compaction_level: u32,
    meta: MetaBuilder,
    resources: Interner<Resource>,
    scopes: Interner<Scope>,
    dedicated: Dedicated,
    last_trace: Option<TraceId>,
}

impl Writer {
    pub(crate) fn create(
        dir: &Path,
        id: &str,
        options: &WriteOptions,
        compaction_level: u32,
        dedicated: Dedicated,
    ) -> Result<Writer, Error> {
        validate_id(id)?;
        let final_dir = dir.join(id);
        if final_dir.exists() {
            return Err(Error::io(
                &final_dir,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "block already exists"),
            ));
        }
        let tmp_dir = dir.join(format!("{id}.tmp"));
        // A leftover from a crash mid-write: it was never published, so it
        // holds nothing anyone relies on.
        if tmp_dir.exists() {
            std::fs::remove_dir_all(&tmp_dir).map_err(|e| Error::io(&tmp_dir, e))?;
        }
        std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::io(&tmp_dir, e))?;
        let data_path = tmp_dir.join(DATA_FILE);
        let file = File::create(&data_path).map_err(|e| Error::io(&data_path, e))?;
        let kv = vec![ParquetKeyValue::new(schema::META_FORMAT.to_owned(), FORMAT_VERSION.to_owned())];
        let mut props = schema::writer_properties(options, kv)?;
        // Batches come in the write schema (plain text, see
        // `schema::write_schema`); the file's Arrow schema is sl1's, with
        // dictionaries, as readers expect.
        add_encoded_arrow_schema_to_metadata(&schema::arrow_schema(), &mut props);
        let schema = schema::write_schema();
        let writer = ArrowWriter::try_new_with_options(
            ChecksumWriter::new(file),
            Arc::clone(&schema),
            ArrowWriterOptions::new().with_properties(props).with_skip_arrow_metadata(true),
        )
        .map_err(|source| Error::Parquet { path: data_path.clone(), source })?;
        let row_group_spans = options.row_group_spans.max(1);
        Ok(Writer {
            id: id.to_owned(),
            dir: dir.to_owned(),
            tmp_dir,
            final_dir,
            data_path,
            writer,
            schema,
            rows: Rows::new(row_group_spans.min(WRITE_BATCH_ROWS)),
            row_group_spans,
            group_rows: 0,
            compaction_level,
            meta: MetaBuilder::default(),
            resources: Interner::default(),
            scopes: Interner::default(),
            dedicated,
            last_trace: None,
        })
    }

    /// Appends all spans of one trace, already deduplicated and sorted by
    /// start. Traces must come in ascending trace id order, each once.
    pub(crate) fn push_trace<R: Row>(&mut self, spans: &[R]) -> Result<(), Error> {
        let Some(first) = spans.first() else { return Ok(()) };
        let trace_id = first.trace_id();
        if self.last_trace.is_some_and(|last| last >= trace_id)
            || spans.iter().any(|s| s.trace_id() != trace_id)
        {
            return Err(Error::corrupt(&self.data_path, "writer fed traces out of order"));
        }
        self.last_trace = Some(trace_id);
        let parents = parent_positions(spans);
        self.meta.add_trace(spans, &parents);
        for (i, (span, parent)) in spans.iter().zip(&parents).enumerate() {
            let resource = self.resources.index(span.resource(), json::resource_to_json);
            let scope = self.scopes.index(span.scope(), json::scope_to_json);
            // Both are positions in one trace, so the distance fits an i32
            // unless the trace has over 2^31 spans, which no block holds.
            let distance = parent.map(|p| i32::try_from(i as i64 - p as i64).unwrap_or(i32::MAX));
            span.push(&mut self.rows, distance, resource, scope, &self.dedicated)?;
            if self.group_rows + self.rows.len >= self.row_group_spans {
                self.flush_row_group()?;
            } else if self.rows.len >= WRITE_BATCH_ROWS {
                self.write_rows()?;
            }
        }
        Ok(())
    }

    /// Checks that `trace_id` may come next (ascending, each once) and
    /// records it.
    pub(crate) fn start_trace(&mut self, trace_id: TraceId) -> Result<(), Error> {
        if self.last_trace.is_some_and(|last| last >= trace_id) {
            return Err(Error::corrupt(&self.data_path, "writer fed traces out of order"));
        }
        self.last_trace = Some(trace_id);
        Ok(())
    }

    /// The block's metadata being accumulated (for writers of prepared
    /// rows, see [`crate::copy`]).
    pub(crate) fn meta_mut(&mut self) -> &mut MetaBuilder {
        &mut self.meta
    }

    /// The output index of `resource` in the block's resource table.
    pub(crate) fn resource_index(&mut self, resource: &Arc<Resource>) -> u32 {
        self.resources.index(resource, json::resource_to_json)
    }

    /// The output index of `scope` in the block's scope table.
    pub(crate) fn scope_index(&mut self, scope: &Arc<Scope>) -> u32 {
        self.scopes.index(scope, json::scope_to_json)
    }

    /// What to do after a row when `buffered` rows are waiting outside the
    /// writer: the same cuts [`Writer::push_trace`] makes, so a writer of
    /// prepared batches writes the same pages and row groups.
    pub(crate) fn cut_after(&self, buffered: usize) -> Cut {
        if self.group_rows + buffered >= self.row_group_spans {
            Cut::Group
        } else if buffered >= WRITE_BATCH_ROWS {
            Cut::Batch
        } else {
            Cut::None
        }
    }

    /// The data file being written (in its temporary folder).
    pub(crate) fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// The schema prepared batches must have.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Writes a prepared batch in the write schema; `str_used` and
    /// `int_used` count its rows with a value in each dedicated column.
    /// Closes the row group after it if `cut` says so.
    pub(crate) fn write_prepared(
        &mut self,
        batch: &RecordBatch,
        str_used: &[u64],
        int_used: &[u64],
        cut: Cut,
    ) -> Result<(), Error> {
        for (total, n) in self.rows.str_used.iter_mut().zip(str_used) {
            *total += n;
        }
        for (total, n) in self.rows.int_used.iter_mut().zip(int_used) {
            *total += n;
        }
        self.group_rows += batch.num_rows();
        self.writer.write(batch).map_err(|source| Error::Parquet { path: self.data_path.clone(), source })?;
        if cut == Cut::Group { self.flush_row_group() } else { Ok(()) }
    }

    /// Hands the buffered rows to the Parquet writer, which encodes them
    /// into the open row group.
    fn write_rows(&mut self) -> Result<(), Error> {
        if self.rows.len == 0 {
            return Ok(());
        }
        let batch = self
            .rows
            .finish(&self.schema)
            .map_err(|source| Error::Arrow { path: self.data_path.clone(), source })?;
        self.group_rows += batch.num_rows();
        let written = self.writer.write(&batch);
        // The writer has encoded the batch and holds none of it now.
        self.rows.take_back(batch);
        written.map_err(|source| Error::Parquet { path: self.data_path.clone(), source })
    }

    /// Closes the open row group.
    fn flush_row_group(&mut self) -> Result<(), Error> {
        self.write_rows()?;
        if self.group_rows == 0 {
            return Ok(());
        }
        self.group_rows = 0;
        self.writer.flush().map_err(|source| Error::Parquet { path: self.data_path.clone(), source })
    }

    /// Finishes the data file, writes `meta.json`, and publishes the block.
    pub(crate) fn finish(mut self) -> Result<BlockMeta, Error> {
        self.flush_row_group()?;
        let parquet = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Parquet { path, source }
        };
        self.writer.append_key_value_metadata(ParquetKeyValue::new(
            schema::META_RESOURCES.to_owned(),
            self.resources.table(),
        ));
        self.writer.append_key_value_metadata(ParquetKeyValue::new(
            schema::META_SCOPES.to_owned(),
            self.scopes.table(),
        ));
        let used = self.dedicated.with_counts(&self.rows.str_used, &self.rows.int_used);
        self.writer.append_key_value_metadata(ParquetKeyValue::new(
            schema::META_DEDICATED.to_owned(),
            used.to_json(),
        ));
        // `finish` writes the footer and flushes the writer's buffer.
        self.writer.finish().map_err(parquet(&self.data_path))?;
        let checksums = self.writer.inner_mut().finish();
        let file = self.writer.inner().get_ref();
        // IMPORTANT: data reaches the disk before the block can be published.
        file.sync_all().map_err(|e| Error::io(&self.data_path, e))?;
        let size_bytes = file.metadata().map_err(|e| Error::io(&self.data_path, e))?.len();
        if checksums.chunks_for(size_bytes) != checksums.crcs.len() as u64 {
            return Err(Error::corrupt(&self.data_path, "checksums do not cover the data file"));
        }

        let meta = self.meta.finish(&self.id, size_bytes, self.compaction_level);
        let meta_path = self.tmp_dir.join(META_FILE);
        let text = meta
            .encode(&checksums)
            .map_err(|e| Error::corrupt(&meta_path, format!("cannot encode meta.json: {e}")))?;
        let mut meta_file = File::create(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        meta_file.write_all(&text).map_err(|e| Error::io(&meta_path, e))?;
        meta_file.sync_all().map_err(|e| Error::io(&meta_path, e))?;
        drop(meta_file);

        // IMPORTANT: fsync the temp folder so both entries exist, rename,
        // then fsync the parent so the rename itself survives a crash.
        sync_dir(&self.tmp_dir)?;
        std::fs::rename(&self.tmp_dir, &self.final_dir).map_err(|e| Error::io(&self.final_dir, e))?;
        sync_dir(&self.dir)?;
        tracing::debug!(
            block = %self.id,
            spans = meta.span_count,
            bytes = meta.size_bytes,
            level = meta.compaction_level,
            "block written"
        );
        Ok(meta)
    }
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// For each span, the position of its parent within the same trace slice.
/// Spans of a trace are distinct by id (writers deduplicate first).
fn parent_positions<R: Row>(spans: &[R]) -> Vec<Option<usize>> {
    if spans.len() <= 32 {
        return spans
            .iter()
            .map(|s| s.parent_span_id().and_then(|p| spans.iter().position(|o| o.span_id() == p)))
            .collect();
    }
    let by_id: HashMap<SpanId, usize> = spans.iter().enumerate().map(|(i, s)| (s.span_id(), i)).collect();
    spans.iter().map(|s| s.parent_span_id().and_then(|p| by_id.get(&p).copied())).collect()
}

/// [`parent_positions`] over `(span id, parent span id)` pairs, for
/// writers of prepared rows (distinct ids too).
pub(crate) fn parent_positions_of(spans: &[(SpanId, Option<SpanId>)]) -> Vec<Option<usize>> {
    if spans.len() <= 32 {
        return spans
            .iter()
            .map(|(_, p)| p.and_then(|p| spans.iter().position(|(id, _)| *id == p)))
            .collect();
    }
    let by_id: HashMap<SpanId, usize> = spans.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    spans.iter().map(|(_, p)| p.and_then(|p| by_id.get(&p).copied())).collect()
}

/// Deduplicates resources or scopes by content. A pointer cache makes the
/// usual case (spans sharing one `Arc`) a hash lookup without encoding.
struct Interner<T> {
    by_ptr: HashMap<usize, u32>,
    by_content: HashMap<String, u32>,
    /// Keeps interned `Arc`s alive so their addresses stay unique.
    keep: Vec<Arc<T>>,
    /// The last pointer looked up and its index.
    last: Option<(usize, u32)>,
    entries: Vec<String>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            by_ptr: HashMap::new(),
            by_content: HashMap::new(),
            keep: Vec::new(),
            entries: Vec::new(),
            last: None,
        }
    }
}

impl<T> Interner<T> {
    fn index(&mut self, item: &Arc<T>, encode: fn(&T) -> serde_json::Value) -> u32 {
        let ptr = Arc::as_ptr(item) as usize;
        // Consecutive rows share their resource and scope almost always.
        if let Some((last, i)) = self.last
            && last == ptr
        {
            return i;
        }
        if let Some(i) = self.by_ptr.get(&ptr) {
            self.last = Some((ptr, *i));
            return *i;
        }
        let text = encode(item).to_string();
        let next = self.entries.len() as u32;
        let i = *self.by_content.entry(text.clone()).or_insert(next);
        if i == next {
            self.entries.push(text);
        }
        self.by_ptr.insert(ptr, i);
        self.keep.push(Arc::clone(item));
        self.last = Some((ptr, i));
        i
    }

    /// The table as a JSON array.
    fn table(&self) -> String {
        let mut out = String::with_capacity(self.entries.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
        out.push('[');
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(e);
        }
        out.push(']');
        out
    }
}

/// A row's scalar columns, borrowed from wherever the span is.
pub(crate) struct Scalars<'a> {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_span_id: Option<SpanId>,
    pub(crate) parent_distance: Option<i32>,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) service: &'a str,
    pub(crate) name: &'a str,
    pub(crate) kind: u8,
    pub(crate) status_code: u8,
    pub(crate) status_message: &'a str,
    pub(crate) trace_state: &'a str,
    pub(crate) flags: u32,
    pub(crate) resource: u32,
    pub(crate) scope: u32,
    pub(crate) dropped_attributes: u32,
    pub(crate) dropped_events: u32,
    pub(crate) dropped_links: u32,
}

/// Column vectors for one batch of rows. They keep their memory from batch
/// to batch ([`Rows::take_back`], see `crate::columns`).
pub(crate) struct Rows {
    len: usize,
    /// Reused buffer for one span's attribute layout.
    order: String,
    trace_id: Fixed<16>,
    span_id: Fixed<8>,
    parent_distance: Nullable<Int32Type>,
    parent_span_id: Fixed<8>,
    start: Vec<i64>,
    duration: Vec<i64>,
    service: Str,
    name: Str,
    kind: Vec<u8>,
    status_code: Vec<u8>,
    status_message: Str,
    trace_state: Str,
    flags: Vec<u32>,
    resource: Vec<u32>,
    scope: Vec<u32>,
    dropped_attributes: Vec<u32>,
    dropped_events: Vec<u32>,
    dropped_links: Vec<u32>,
    layout: Str,
    str_slots: Vec<Str>,
    int_slots: Vec<Nullable<Int64Type>>,
    /// Spans that used each dedicated column, for the block's metadata.
    str_used: [u64; STR_SLOTS],
    int_used: [u64; INT_SLOTS],
    attributes: Attributes,
    events: Events,
    links: Links,
    /// Buffers for reading a span's lists from the wire, reused from row
    /// to row (see `crate::otlp`).
    pub(crate) list_buffers: crate::otlp::ListBuffers,
}

impl Rows {
    fn new(capacity: usize) -> Rows {
        Rows {
            len: 0,
            order: String::new(),
            trace_id: Fixed::with_capacity(capacity),
            span_id: Fixed::with_capacity(capacity),
            parent_distance: Nullable::with_capacity(capacity),
            parent_span_id: Fixed::with_capacity(capacity),
            start: Vec::with_capacity(capacity),
            duration: Vec::with_capacity(capacity),
            service: Str::default(),
            name: Str::default(),
            kind: Vec::with_capacity(capacity),
            status_code: Vec::with_capacity(capacity),
            status_message: Str::default(),
            trace_state: Str::default(),
            flags: Vec::with_capacity(capacity),
            resource: Vec::with_capacity(capacity),
            scope: Vec::with_capacity(capacity),
            dropped_attributes: Vec::with_capacity(capacity),
            dropped_events: Vec::with_capacity(capacity),
            dropped_links: Vec::with_capacity(capacity),
            layout: Str::default(),
            str_slots: (0..STR_SLOTS).map(|_| Str::default()).collect(),
            int_slots: (0..INT_SLOTS).map(|_| Nullable::with_capacity(capacity)).collect(),
            str_used: [0; STR_SLOTS],
            int_used: [0; INT_SLOTS],
            attributes: Attributes::default(),
            events: Events::default(),
            links: Links::default(),
            list_buffers: crate::otlp::ListBuffers::default(),
        }
    }

    /// Appends a row's scalar columns; the list columns follow with
    /// [`Rows::push_attributes`], [`Rows::push_events`] and
    /// [`Rows::push_links`].
    pub(crate) fn push_scalars(&mut self, s: &Scalars<'_>) {
        self.len += 1;
        self.trace_id.append_value(s.trace_id.as_bytes());
        self.span_id.append_value(s.span_id.as_bytes());
        self.parent_distance.append_option(s.parent_distance);
        match (s.parent_distance, s.parent_span_id) {
            (None, Some(parent)) => self.parent_span_id.append_value(parent.as_bytes()),
            _ => self.parent_span_id.append_null(),
        }
        // u64 nanoseconds are stored as i64 bit patterns: lossless, and
        // ordered correctly until the year 2262.
        self.start.push(s.start as i64);
        self.duration.push(s.end.wrapping_sub(s.start) as i64);
        self.service.append_value(s.service);
        self.name.append_value(s.name);
        self.kind.push(s.kind);
        self.status_code.push(s.status_code);
        self.status_message.append_value(s.status_message);
        self.trace_state.append_value(s.trace_state);
        self.flags.push(s.flags);
        self.resource.push(s.resource);
        self.scope.push(s.scope);
        self.dropped_attributes.push(s.dropped_attributes);
        self.dropped_events.push(s.dropped_events);
        self.dropped_links.push(s.dropped_links);
    }

    /// Splits a span's attributes between the dedicated columns (the first
    /// value of a dedicated key with the column's type) and the generic
    /// list, recording the original order in `attribute_layout`.
    pub(crate) fn push_attributes<'a>(
        &mut self,
        kvs: impl Iterator<Item = (&'a str, AttrValue<'a>)>,
        dedicated: &Dedicated,
    ) {
        let mut strs: [Option<&str>; STR_SLOTS] = [None; STR_SLOTS];
        let mut ints: [Option<i64>; INT_SLOTS] = [None; INT_SLOTS];
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        let mut any_dedicated = false;
        for (key, value) in kvs {
            match value {
                AttrValue::Str(v) => {
                    if let Some(slot) = dedicated.str_slot(key)
                        && let Some(cell @ None) = strs.get_mut(usize::from(slot))
                    {
                        *cell = Some(v);
                        order.push(char::from(layout::STR0 + slot));
                        any_dedicated = true;
                        continue;
                    }
                }
                AttrValue::Int(v) => {
                    if let Some(slot) = dedicated.int_slot(key)
                        && let Some(cell @ None) = ints.get_mut(usize::from(slot))
                    {
                        *cell = Some(v);
                        order.push(char::from(layout::INT0 + slot));
                        any_dedicated = true;
                        continue;
                    }
                }
                _ => {}
            }
            order.push(char::from(layout::GENERIC));
            self.attributes.push(key, &value);
        }
        self.attributes.close_list();
        // An all-generic span needs no layout: the list is the order.
        self.layout.append_value(if any_dedicated { order.as_str() } else { "" });
        self.order = order;
        for (i, v) in strs.iter().enumerate() {
            if let (Some(b), Some(used)) = (self.str_slots.get_mut(i), self.str_used.get_mut(i)) {
                b.append_option(*v);
                *used += u64::from(v.is_some());
            }
        }
        for (i, v) in ints.iter().enumerate() {
            if let (Some(b), Some(used)) = (self.int_slots.get_mut(i), self.int_used.get_mut(i)) {
                b.append_option(*v);
                *used += u64::from(v.is_some());
            }
        }
    }

    /// Appends a row's events: `(time, name, attributes, dropped
    /// attributes)` each.
    pub(crate) fn push_events<'a, A: Iterator<Item = (&'a str, AttrValue<'a>)>>(
        &mut self,
        events: impl Iterator<Item = (u64, &'a str, A, u32)>,
        span_start: u64,
    ) {
        self.events.push_list(events, span_start);
    }

    /// Appends a row's links: `(trace id, span id, trace state,
    /// attributes, dropped attributes, flags)` each.
    pub(crate) fn push_links<'a, A: Iterator<Item = (&'a str, AttrValue<'a>)>>(
        &mut self,
        links: impl Iterator<Item = (TraceId, SpanId, &'a str, A, u32, u32)>,
    ) {
        self.links.push_list(links);
    }

    /// Builds the record batch of the rows pushed so far and starts the
    /// next one. The columns' memory comes back with [`Rows::take_back`].
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()?),
            Arc::new(self.span_id.finish()?),
            Arc::new(self.parent_distance.finish()?),
            Arc::new(self.parent_span_id.finish()?),
            Arc::new(values_array::<TimestampNanosecondType>(&mut self.start).with_timezone("UTC")),
            Arc::new(values_array::<Int64Type>(&mut self.duration)),
            Arc::new(self.service.finish()?),
            Arc::new(self.name.finish()?),
            Arc::new(values_array::<UInt8Type>(&mut self.kind)),
            Arc::new(values_array::<UInt8Type>(&mut self.status_code)),
            Arc::new(self.status_message.finish()?),
            Arc::new(self.trace_state.finish()?),
            Arc::new(values_array::<UInt32Type>(&mut self.flags)),
            Arc::new(values_array::<UInt32Type>(&mut self.resource)),
            Arc::new(values_array::<UInt32Type>(&mut self.scope)),
            Arc::new(values_array::<UInt32Type>(&mut self.dropped_attributes)),
            Arc::new(values_array::<UInt32Type>(&mut self.dropped_events)),
            Arc::new(values_array::<UInt32Type>(&mut self.dropped_links)),
            Arc::new(self.layout.finish()?),
        ];
        for b in &mut self.str_slots {
            columns.push(Arc::new(b.finish()?));
        }
        for b in &mut self.int_slots {
            columns.push(Arc::new(b.finish()?));
        }
        columns.push(Arc::new(self.attributes.finish()?));
        columns.push(Arc::new(self.events.finish()?));
        columns.push(Arc::new(self.links.finish()?));
        self.len = 0;
        RecordBatch::try_new(Arc::clone(schema), columns)
    }

    /// Takes the memory of `batch`, made by [`Rows::finish`], back for the
    /// next batch: every column the caller no longer shares, in the order
    /// `finish` made them.
    fn take_back(&mut self, batch: RecordBatch) {
        let (_, columns, _) = batch.into_parts();
        let c = &mut columns.into_iter();
        back(c, |a| self.trace_id.take_back(a));
        back(c, |a| self.span_id.take_back(a));
        back(c, |a| self.parent_distance.take_back(a));
        back(c, |a| self.parent_span_id.take_back(a));
        back(c, |a| take_back_values::<TimestampNanosecondType>(&mut self.start, a));
        back(c, |a| take_back_values::<Int64Type>(&mut self.duration, a));
        back(c, |a| self.service.take_back(a));
        back(c, |a| self.name.take_back(a));
        back(c, |a| take_back_values::<UInt8Type>(&mut self.kind, a));
        back(c, |a| take_back_values::<UInt8Type>(&mut self.status_code, a));
        back(c, |a| self.status_message.take_back(a));
        back(c, |a| self.trace_state.take_back(a));
        for values in [
            &mut self.flags,
            &mut self.resource,
            &mut self.scope,
            &mut self.dropped_attributes,
            &mut self.dropped_events,
            &mut self.dropped_links,
        ] {
            back(c, |a| take_back_values::<UInt32Type>(values, a));
        }
        back(c, |a| self.layout.take_back(a));
        for b in &mut self.str_slots {
            back(c, |a| b.take_back(a));
        }
        for b in &mut self.int_slots {
            back(c, |a| b.take_back(a));
        }
        back(c, |a| self.attributes.take_back(a));
        back(c, |a| self.events.take_back(a));
        back(c, |a| self.links.take_back(a));
    }
}

/// Hands the next of `columns` to `take` as its concrete type, if it is
/// one (see [`columns::owned`]).
fn back<A: Array + Clone + 'static>(columns: &mut impl Iterator<Item = ArrayRef>, take: impl FnOnce(A)) {
    if let Some(array) = columns.next().and_then(columns::owned::<A>) {
        take(array);
    }
}

/// The columns of a list's struct elements, once the list was the only
/// owner of its memory; the offsets taken back into `offsets`.
fn take_back_list(list: ListArray, offsets: &mut Vec<i32>) -> Option<std::vec::IntoIter<ArrayRef>> {
    let (_, list_offsets, values, _) = list.into_parts();
    columns::take_back_offsets(offsets, list_offsets);
    let (_, children, _) = columns::owned::<StructArray>(values)?.into_parts();
    Some(children.into_iter())
}

fn next_offset(len: usize) -> Result<i32, ArrowError> {
    i32::try_from(len)
        .map_err(|_| ArrowError::InvalidArgumentError("list too long for one row group".to_owned()))
}

/// Columns of one attribute list column (also nested in events/links).
struct Attributes {
    offsets: Vec<i32>,
    len: usize,
    overflow: bool,
    key: Str,
    ty: Vec<u8>,
    str: Str,
    int: Nullable<Int64Type>,
    double: Nullable<Float64Type>,
}

impl Default for Attributes {
    fn default() -> Self {
        Attributes {
            offsets: vec![0],
            len: 0,
            overflow: false,
            key: Str::default(),
            ty: Vec::new(),
            str: Str::default(),
            int: Nullable::with_capacity(0),
            double: Nullable::with_capacity(0),
        }
    }
}

impl Attributes {
    fn push_list<'a>(&mut self, kvs: impl Iterator<Item = (&'a str, AttrValue<'a>)>) {
        for (key, value) in kvs {
            self.push(key, &value);
        }
        self.close_list();
    }

    /// Ends the current row's list.
    fn close_list(&mut self) {
        match next_offset(self.len) {
            Ok(o) => self.offsets.push(o),
            Err(_) => self.overflow = true,
        }
    }

    fn push(&mut self, key: &str, value: &AttrValue<'_>) {
        self.len += 1;
        self.key.append_value(key);
        // Few leaves keep the repetition/definition levels small: booleans
        // share `int`, bytes share `str` (as the base64 text tag search
        // compares against anyway).
        let (ty, int, double) = match value {
            AttrValue::Empty => (tag::EMPTY, None, None),
            AttrValue::Str(_) => (tag::STR, None, None),
            AttrValue::Bool(b) => (tag::BOOL, Some(i64::from(*b)), None),
            AttrValue::Int(i) => (tag::INT, Some(*i), None),
            AttrValue::Double(d) => (tag::DOUBLE, None, Some(*d)),
            AttrValue::Bytes(_) => (tag::BYTES, None, None),
            AttrValue::Array(_) => (tag::ARRAY, None, None),
            AttrValue::Map(_) => (tag::MAP, None, None),
        };
        self.ty.push(ty);
        self.str.append_option(value.text().as_deref());
        self.int.append_option(int);
        self.double.append_option(double);
    }

    fn finish(&mut self) -> Result<ListArray, ArrowError> {
        if std::mem::take(&mut self.overflow) {
            return Err(ArrowError::InvalidArgumentError("too many attributes in one row group".to_owned()));
        }
        let values = StructArray::try_new(
            schema::attribute_fields(),
            vec![
                Arc::new(self.key.finish()?),
                Arc::new(values_array::<UInt8Type>(&mut self.ty)),
                Arc::new(self.str.finish()?),
                Arc::new(self.int.finish()?),
                Arc::new(self.double.finish()?),
            ],
            None,
        )?;
        self.len = 0;
        let offsets = columns::list_offsets(&mut self.offsets)?;
        ListArray::try_new(schema::attribute_element(), offsets, Arc::new(values), None)
    }

    fn take_back(&mut self, list: ListArray) {
        let Some(c) = &mut take_back_list(list, &mut self.offsets) else { return };
        back(c, |a| self.key.take_back(a));
        back(c, |a| take_back_values::<UInt8Type>(&mut self.ty, a));
        back(c, |a| self.str.take_back(a));
        back(c, |a| self.int.take_back(a));
        back(c, |a| self.double.take_back(a));
    }
}

/// Columns of the events column.
struct Events {
    offsets: Vec<i32>,
    len: usize,
    time_offset: Vec<i64>,
    name: Str,
    attributes: Attributes,
    dropped: Vec<u32>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            offsets: vec![0],
            len: 0,
            time_offset: Vec::new(),
            name: Str::default(),
            attributes: Attributes::default(),
            dropped: Vec::new(),
        }
    }
}

impl Events {
    fn push_list<'a, A: Iterator<Item = (&'a str, AttrValue<'a>)>>(
        &mut self,
        events: impl Iterator<Item = (u64, &'a str, A, u32)>,
        span_start: u64,
    ) {
        for (time, name, attributes, dropped) in events {
            self.len += 1;
            // Offsets from the span start are small; wrapping keeps events
            // before the start (clock skew) lossless.
            self.time_offset.push(time.wrapping_sub(span_start) as i64);
            self.name.append_value(name);
            self.attributes.push_list(attributes);
            self.dropped.push(dropped);
        }
        self.offsets.push(next_offset(self.len).unwrap_or(i32::MAX));
    }

    fn finish(&mut self) -> Result<ListArray, ArrowError> {
        let values = StructArray::try_new(
            schema::event_fields(),
            vec![
                Arc::new(values_array::<Int64Type>(&mut self.time_offset)),
                Arc::new(self.name.finish()?),
                Arc::new(self.attributes.finish()?),
                Arc::new(values_array::<UInt32Type>(&mut self.dropped)),
            ],
            None,
        )?;
        self.len = 0;
        let offsets = columns::list_offsets(&mut self.offsets)?;
        ListArray::try_new(schema::event_element(), offsets, Arc::new(values), None)
    }

    fn take_back(&mut self, list: ListArray) {
        let Some(c) = &mut take_back_list(list, &mut self.offsets) else { return };
        back(c, |a| take_back_values::<Int64Type>(&mut self.time_offset, a));
        back(c, |a| self.name.take_back(a));
        back(c, |a| self.attributes.take_back(a));
        back(c, |a| take_back_values::<UInt32Type>(&mut self.dropped, a));
    }
}

/// Columns of the links column.
struct Links {
    offsets: Vec<i32>,
    len: usize,
    trace_id: Fixed<16>,
    span_id: Fixed<8>,
    trace_state: Str,
    attributes: Attributes,
    dropped: Vec<u32>,
    flags: Vec<u32>,
}

impl Default for Links {
    fn default() -> Self {
        Links {
            offsets: vec![0],
            len: 0,
            trace_id: Fixed::default(),
            span_id: Fixed::default(),
            trace_state: Str::default(),
            attributes: Attributes::default(),
            dropped: Vec::new(),
            flags: Vec::new(),
        }
    }
}

impl Links {
    fn push_list<'a, A: Iterator<Item = (&'a str, AttrValue<'a>)>>(
        &mut self,
        links: impl Iterator<Item = (TraceId, SpanId, &'a str, A, u32, u32)>,
    ) {
        for (trace_id, span_id, trace_state, attributes, dropped, flags) in links {
            self.len += 1;
            self.trace_id.append_value(trace_id.as_bytes());
            self.span_id.append_value(span_id.as_bytes());
            self.trace_state.append_value(trace_state);
            self.attributes.push_list(attributes);
            self.dropped.push(dropped);
            self.flags.push(flags);
        }
        self.offsets.push(next_offset(self.len).unwrap_or(i32::MAX));
    }

    fn finish(&mut self) -> Result<ListArray, ArrowError> {
        let values = StructArray::try_new(
            schema::link_fields(),
            vec![
                Arc::new(self.trace_id.finish()?),
                Arc::new(self.span_id.finish()?),
                Arc::new(self.trace_state.finish()?),
                Arc::new(self.attributes.finish()?),
                Arc::new(values_array::<UInt32Type>(&mut self.dropped)),
                Arc::new(values_array::<UInt32Type>(&mut self.flags)),
            ],
            None,
        )?;
        self.len = 0;
        let offsets = columns::list_offsets(&mut self.offsets)?;
        ListArray::try_new(schema::link_element(), offsets, Arc::new(values), None)
    }

    fn take_back(&mut self, list: ListArray) {
        let Some(c) = &mut take_back_list(list, &mut self.offsets) else { return };
        back(c, |a| self.trace_id.take_back(a));
        back(c, |a| self.span_id.take_back(a));
        back(c, |a| self.trace_state.take_back(a));
        back(c, |a| self.attributes.take_back(a));
        back(c, |a| take_back_values::<UInt32Type>(&mut self.dropped, a));
        back(c, |a| take_back_values::<UInt32Type>(&mut self.flags, a));
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::RecordBatch;
    use sightline_model::Span;

    use super::Rows;
    use crate::dedicated::Dedicated;
    use crate::row::Row;
    use crate::schema;
    use crate::tests::datagen;

    /// Spans with every field, nulls and lists, and realistic ones.
    fn spans() -> Vec<Span> {
        let mut spans = datagen::every_field();
        spans.extend(datagen::realistic(8, 7, 1_700_000_000_000_000_000));
        spans
    }

    fn batch(rows: &mut Rows, spans: &[Span], dedicated: &Dedicated) -> RecordBatch {
        for span in spans {
            span.push(rows, None, 0, 0, dedicated).unwrap();
        }
        rows.finish(&schema::write_schema()).unwrap()
    }

    /// A batch's memory comes back once the writer is done with it, and
    /// the next batch, written into it, is the batch fresh columns make.
    #[test]
    fn rows_write_the_next_batch_into_the_last_ones_memory() {
        let spans = spans();
        let dedicated = Dedicated::choose(&spans);
        let expected = batch(&mut Rows::new(4), &spans, &dedicated);
        let mut rows = Rows::new(4);
        let first = batch(&mut rows, &spans, &dedicated);
        assert_eq!(first, expected);
        let (text, events) = (rows.service.capacity(), rows.events.attributes.key.capacity());
        rows.take_back(first);
        // Nothing pushed yet, and the columns already hold what the last
        // batch grew (fresh columns start from nothing).
        let service = rows.service.capacity();
        assert!(service.0 > text.0 && service.1 > text.1, "{service:?}");
        assert!(rows.events.attributes.key.capacity().1 > events.1);
        assert!(rows.str_slots.iter().any(|s| s.capacity().1 > 0));
        assert!(rows.int_slots.iter().all(|s| s.capacity().0 > 0));
        assert!(rows.start.capacity() >= spans.len() && rows.links.attributes.str.capacity().1 > 0);
        for round in 0..3 {
            let again = batch(&mut rows, &spans, &dedicated);
            assert_eq!(again, expected, "round {round}");
            rows.take_back(again);
        }
    }

    /// A batch still shared elsewhere keeps its memory: the columns grow
    /// fresh vectors and the shared batch stays as it was.
    #[test]
    fn a_shared_batch_is_not_taken_back() {
        let spans = spans();
        let dedicated = Dedicated::choose(&spans);
        let mut rows = Rows::new(4);
        let first = batch(&mut rows, &spans, &dedicated);
        let kept = first.clone();
        rows.take_back(first);
        assert_eq!(rows.service.capacity().1, 0);
        let second = batch(&mut rows, &spans.iter().rev().cloned().collect::<Vec<_>>(), &dedicated);
        assert_eq!(kept, batch(&mut Rows::new(4), &spans, &dedicated));
        assert_ne!(second, kept);
    }
}
