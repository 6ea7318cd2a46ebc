//! Writing a block: records sorted, encoded in row chunks, streamed
//! through the checksum writer, then published durably (temp folder,
//! fsync, rename, fsync parent).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, FixedSizeBinaryBuilder, Int32Builder, Int64Builder, StringBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1 as pl;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue as ParquetKeyValue;
use prost::Message as _;
use sightline_block::checked::{ChecksumWriter, encode_meta};
use sightline_model::otlp::wire::WireError;
use sightline_model::{LogRecord, Resource, Scope, Value, otlp};

use arrow_array::cast::AsArray as _;
use arrow_array::types::Int64Type;

use super::schema::{self, Col, Layout, LogBlockMeta};
use super::wire::{Body, Group, Row, Rows};
use super::words::{WORDS_FILE, WordIndexer};
use super::{DATA_FILE, META_FILE};
use crate::Error;

/// Rows encoded into Arrow arrays at once: bounds the writer's memory
/// beside the records themselves.
const CHUNK_ROWS: usize = 8192;

/// A record's sort key and the fields derived once for it.
struct Keyed {
    time: u64,
    fingerprint: u64,
    record: LogRecord,
}

/// Writes `records` as block `id` under `staging` (the folder
/// `<staging>/<id>` appears complete or not at all) and returns its meta.
pub(crate) fn write(
    staging: &Path,
    id: &str,
    records: Vec<LogRecord>,
    row_group_rows: usize,
) -> Result<LogBlockMeta, Error> {
    write_with(staging, id, records, row_group_rows, WordIndexer::default(), Layout::V3)
}

/// [`write`] with a word index of the first layout (`SLWB1`, words
/// without grams), as builds before grams wrote it: tests of old blocks.
#[cfg(test)]
pub(crate) fn write_words_v1(
    staging: &Path,
    id: &str,
    records: Vec<LogRecord>,
    row_group_rows: usize,
) -> Result<LogBlockMeta, Error> {
    write_with(staging, id, records, row_group_rows, WordIndexer::words_only(), Layout::V3)
}

/// [`write`] in the second format (`sl-logs2`, one `body` column), as
/// builds before body templates wrote it: tests of reading old blocks.
#[cfg(test)]
pub(crate) fn write_v2(
    staging: &Path,
    id: &str,
    records: Vec<LogRecord>,
    row_group_rows: usize,
) -> Result<LogBlockMeta, Error> {
    write_with(staging, id, records, row_group_rows, WordIndexer::default(), Layout::V2)
}

fn write_with(
    staging: &Path,
    id: &str,
    records: Vec<LogRecord>,
    row_group_rows: usize,
    words: WordIndexer,
    layout: Layout,
) -> Result<LogBlockMeta, Error> {
    let keyed = sorted_unique(records);
    // A flush must keep up with ingest: fast compression (merges
    // recompress).
    let mut writer = BlockWriter::with_layout(staging, id, row_group_rows, 0, layout, false)?;
    writer.words = words;
    for chunk in keyed.chunks(CHUNK_ROWS) {
        let batch =
            encode_chunk(chunk).map_err(|source| Error::Arrow { path: writer.data_path.clone(), source })?;
        writer.write(&batch)?;
    }
    writer.finish()
}

/// Writes the records of `requests` (OTLP `ExportLogsServiceRequest`s, as
/// a head holds them) as blocks `ids`: the rows, built from the wire bytes
/// (`wire.rs`) and sorted once, split into as many runs in block order,
/// each written on a thread of its own (encoding is a flush's cost, and one
/// flush runs at a time). Requests in a shape that reader leaves to `prost`
/// are decoded into records and written by [`write`] as the first id's
/// block alone. Returns the blocks written, in order.
pub(crate) fn write_requests(
    staging: &Path,
    ids: &[String],
    requests: &[&[u8]],
    row_group_rows: usize,
) -> Result<Vec<LogBlockMeta>, Error> {
    let Some(first) = ids.first() else { return Ok(Vec::new()) };
    let mut rows = Rows::default();
    let read = requests.iter().try_for_each(|r| rows.add_request(r)).and_then(|()| sort_rows(&mut rows));
    if let Err(e) = read {
        tracing::debug!(block = %first, error = %e, "log head read through prost for its flush");
        let records = requests
            .iter()
            .filter_map(|r| ExportLogsServiceRequest::decode(*r).ok())
            .flat_map(|r| otlp::decode_logs_request(r).records)
            .collect();
        return Ok(vec![write(staging, first, records, row_group_rows)?]);
    }
    let per_part = rows.rows.len().div_ceil(ids.len()).max(1);
    let groups = &rows.groups;
    let write_part = |id: &String, part: &[Row<'_>]| -> Result<LogBlockMeta, Error> {
        // A flush must keep up with ingest: fast compression (merges
        // recompress).
        let mut writer = BlockWriter::new(staging, id, row_group_rows, 0, false)?;
        for chunk in part.chunks(CHUNK_ROWS) {
            let batch = encode_rows(groups, chunk)
                .map_err(|source| Error::Arrow { path: writer.data_path.clone(), source })?;
            writer.write(&batch)?;
        }
        writer.finish()
    };
    let mut parts = ids.iter().zip(rows.rows.chunks(per_part));
    let Some((first_id, first_rows)) = parts.next() else { return Ok(Vec::new()) };
    std::thread::scope(|scope| {
        let others: Vec<_> = parts.map(|(id, part)| scope.spawn(move || write_part(id, part))).collect();
        let mut metas = vec![write_part(first_id, first_rows)?];
        for other in others {
            metas.push(other.join().map_err(|_| Error::Task("a log block writer panicked".to_owned()))??);
        }
        Ok(metas)
    })
}

/// Sorts rows into block order (service, time, fingerprint for ties) and
/// drops repeats, as [`sorted_unique`] does for records.
fn sort_rows(rows: &mut Rows<'_>) -> Result<(), WireError> {
    let Rows { rows, groups, .. } = rows;
    // Each group's service as its rank among the services: the sort
    // compares integers, not names.
    let mut names: Vec<&str> = groups.iter().map(|g| g.resource.service_name()).collect();
    names.sort_unstable();
    names.dedup();
    let rank: Vec<usize> = groups
        .iter()
        .map(|g| names.binary_search(&g.resource.service_name()).unwrap_or(names.len()))
        .collect();
    rows.sort_by_key(|r| (rank[r.group], r.time));
    let same = |a: &Row<'_>, b: &Row<'_>| a.time == b.time && rank[a.group] == rank[b.group];
    let view = Rows { rows: Vec::new(), groups: std::mem::take(groups), seen: Vec::new() };
    let mut ties = false;
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        while end < rows.len() && same(&rows[start], &rows[end]) {
            end += 1;
        }
        if end - start > 1 {
            ties = true;
            for r in &mut rows[start..end] {
                r.fingerprint = view.record(r)?.fingerprint();
            }
            rows[start..end].sort_by_key(|r| r.fingerprint);
        }
        start = end;
    }
    *groups = view.groups;
    if ties {
        rows.dedup_by(|a, b| same(a, b) && a.fingerprint == b.fingerprint);
    }
    Ok(())
}

/// The Arrow builders of one chunk's columns, in the schema's order:
/// what the head's rows ([`encode_rows`]) and decoded records
/// ([`encode_chunk`]) both fill, finished in one place.
struct Columns {
    service: StringBuilder,
    time: Int64Builder,
    observed: Int64Builder,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    body: StringBuilder,
    rest: BinaryBuilder,
    origin: BinaryBuilder,
}

impl Columns {
    /// Builders for `n` rows, sized by a typical record's field lengths.
    fn with_capacity(n: usize) -> Columns {
        Columns {
            service: StringBuilder::with_capacity(n, n * 8),
            time: Int64Builder::with_capacity(n),
            observed: Int64Builder::with_capacity(n),
            severity_number: Int32Builder::with_capacity(n),
            severity_text: StringBuilder::with_capacity(n, n * 4),
            trace_id: FixedSizeBinaryBuilder::with_capacity(n, 16),
            span_id: FixedSizeBinaryBuilder::with_capacity(n, 8),
            body: StringBuilder::with_capacity(n, n * 64),
            rest: BinaryBuilder::with_capacity(n, n * 32),
            origin: BinaryBuilder::with_capacity(n, n * 64),
        }
    }

    fn finish(mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.service.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.observed.finish()),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.severity_text.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.rest.finish()),
            Arc::new(self.origin.finish()),
        ];
        RecordBatch::try_new(schema::arrow_schema(), columns)
    }
}

fn encode_rows(groups: &[Group], chunk: &[Row<'_>]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut c = Columns::with_capacity(chunk.len());
    for r in chunk {
        let g = &groups[r.group];
        c.service.append_value(g.resource.service_name());
        c.time.append_value(r.time as i64);
        c.observed.append_value((r.observed as i64).wrapping_sub(r.time as i64));
        c.severity_number.append_value(r.severity);
        c.severity_text.append_value(r.severity_text);
        match r.trace_id {
            Some(id) => c.trace_id.append_value(id)?,
            None => c.trace_id.append_null(),
        }
        match r.span_id {
            Some(id) => c.span_id.append_value(id)?,
            None => c.span_id.append_null(),
        }
        match &r.body {
            Body::None => c.body.append_null(),
            Body::Str(s) => c.body.append_value(s),
            Body::Text(s) => c.body.append_value(s),
        }
        c.rest.append_value(&r.rest);
        c.origin.append_value(&g.origin);
    }
    c.finish()
}

/// `records` in block order — by service, time, then fingerprint — with a
/// record sent twice (a retried export) kept once.
///
/// The fingerprint encodes the whole record (~1 µs each), and only
/// records of one service at the same time need it, so it is computed for
/// those alone: most records have a time of their own.
fn sorted_unique(records: Vec<LogRecord>) -> Vec<Keyed> {
    let mut keyed: Vec<Keyed> = records
        .into_iter()
        .map(|record| Keyed { time: record.timestamp(), fingerprint: 0, record })
        .collect();
    keyed.sort_by(|a, b| a.record.service_name().cmp(b.record.service_name()).then(a.time.cmp(&b.time)));
    let same = |a: &Keyed, b: &Keyed| a.time == b.time && a.record.service_name() == b.record.service_name();
    let mut start = 0;
    let mut ties = false;
    while start < keyed.len() {
        let mut end = start + 1;
        while end < keyed.len() && same(&keyed[start], &keyed[end]) {
            end += 1;
        }
        if end - start > 1 {
            ties = true;
            let run = &mut keyed[start..end];
            for k in run.iter_mut() {
                k.fingerprint = k.record.fingerprint();
            }
            run.sort_by_key(|k| k.fingerprint);
        }
        start = end;
    }
    if ties {
        keyed.dedup_by(|a, b| same(a, b) && a.fingerprint == b.fingerprint);
    }
    keyed
}

/// A block being written: rows arrive as Arrow batches already in block
/// order (sorted by service, time, fingerprint), from a head or a merge.
pub(crate) struct BlockWriter {
    staging: PathBuf,
    id: String,
    tmp_dir: PathBuf,
    pub(crate) data_path: PathBuf,
    writer: ArrowWriter<ChecksumWriter<File>>,
    services: Vec<String>,
    min_time: u64,
    max_time: u64,
    records: u64,
    level: u32,
    row_group_rows: usize,
    words: WordIndexer,
    layout: Layout,
}

impl BlockWriter {
    /// A writer of block `id` at compaction `level`; `strong`: zstd 9 on
    /// the wide columns (see `schema::writer_properties`).
    pub(crate) fn new(
        staging: &Path,
        id: &str,
        row_group_rows: usize,
        level: u32,
        strong: bool,
    ) -> Result<BlockWriter, Error> {
        BlockWriter::with_layout(staging, id, row_group_rows, level, Layout::V3, strong)
    }

    /// A writer of `layout` (older ones: tests of reading old blocks).
    fn with_layout(
        staging: &Path,
        id: &str,
        row_group_rows: usize,
        level: u32,
        layout: Layout,
        strong: bool,
    ) -> Result<BlockWriter, Error> {
        let tmp_dir = staging.join(format!(".tmp-{id}"));
        if tmp_dir.exists() {
            std::fs::remove_dir_all(&tmp_dir).map_err(|e| Error::io(&tmp_dir, e))?;
        }
        std::fs::create_dir_all(&tmp_dir).map_err(|e| Error::io(&tmp_dir, e))?;
        let data_path = tmp_dir.join(DATA_FILE);
        let file = File::create(&data_path).map_err(|e| Error::io(&data_path, e))?;
        let kv = vec![ParquetKeyValue::new(schema::META_FORMAT.to_owned(), layout.format().to_owned())];
        let props = schema::writer_properties(row_group_rows, kv, strong);
        let writer = ArrowWriter::try_new(ChecksumWriter::new(file), layout.schema(), Some(props))
            .map_err(|source| Error::Parquet { path: data_path.clone(), source })?;
        Ok(BlockWriter {
            staging: staging.to_owned(),
            id: id.to_owned(),
            tmp_dir,
            data_path,
            writer,
            services: Vec::new(),
            min_time: u64::MAX,
            max_time: 0,
            records: 0,
            level,
            row_group_rows: row_group_rows.max(1),
            words: WordIndexer::default(),
            layout,
        })
    }

    /// Writes `batch`: the columns of [`Col::ALL`] (the test writer of
    /// `sl-logs1` alone passes that layout's file columns).
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        let logical = |c: Col| if self.layout == Layout::V1 { self.layout.index(c) } else { c.index() };
        let col = |c: Col| batch.column(logical(c));
        let service = col(Col::Service).as_string::<i32>();
        let time = col(Col::Time).as_primitive::<Int64Type>();
        let body = col(Col::Body).as_string::<i32>();
        for row in 0..batch.num_rows() {
            // The Arrow writer cuts row groups at exactly `row_group_rows`.
            if self.records + row as u64 > 0
                && (self.records + row as u64).is_multiple_of(self.row_group_rows as u64)
            {
                self.words.finish_group();
            }
            if !arrow_array::Array::is_null(body, row) {
                self.words.add(body.value(row));
            }
            let t = time.value(row) as u64;
            self.min_time = self.min_time.min(t);
            self.max_time = self.max_time.max(t);
            let name = service.value(row);
            if self.services.last().is_none_or(|s| s != name) {
                self.services.push(name.to_owned());
            }
        }
        self.records += batch.num_rows() as u64;
        let file_batch = self
            .layout
            .to_file(batch)
            .map_err(|source| Error::Arrow { path: self.data_path.clone(), source })?;
        self.writer
            .write(&file_batch)
            .map_err(|source| Error::Parquet { path: self.data_path.clone(), source })
    }

    /// Finishes the file and publishes the folder durably.
    pub(crate) fn finish(mut self) -> Result<LogBlockMeta, Error> {
        let data_path = self.data_path.clone();
        let parquet_err = |source| Error::Parquet { path: data_path.clone(), source };
        self.writer.finish().map_err(parquet_err)?;
        let checksums = self.writer.inner_mut().finish();
        let file = self.writer.inner().get_ref();
        // IMPORTANT: data reaches the disk before the block can be published.
        file.sync_all().map_err(|e| Error::io(&data_path, e))?;
        let size_bytes = file.metadata().map_err(|e| Error::io(&data_path, e))?.len();
        let words_crc32c = if self.records > 0 {
            self.words.finish_group();
            let bytes = self.words.encode();
            let path = self.tmp_dir.join(WORDS_FILE);
            let mut f = File::create(&path).map_err(|e| Error::io(&path, e))?;
            f.write_all(&bytes).map_err(|e| Error::io(&path, e))?;
            f.sync_all().map_err(|e| Error::io(&path, e))?;
            Some(crc32c::crc32c(&bytes))
        } else {
            None
        };
        let mut services = std::mem::take(&mut self.services);
        services.sort();
        services.dedup();
        let meta = LogBlockMeta {
            id: self.id.clone(),
            format: self.layout.format().to_owned(),
            record_count: self.records,
            min_time_unix_nanos: if self.records == 0 { 0 } else { self.min_time },
            max_time_unix_nanos: self.max_time,
            services,
            size_bytes,
            compaction_level: self.level,
            words_crc32c,
        };
        let tmp_dir = self.tmp_dir.clone();
        drop(self.writer);
        let meta_path = tmp_dir.join(META_FILE);
        let fields = serde_json::to_value(&meta).map_err(|e| Error::corrupt(&meta_path, e.to_string()))?;
        let text = encode_meta(fields, &checksums).map_err(|e| Error::corrupt(&meta_path, e))?;
        let mut meta_file = File::create(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
        meta_file.write_all(&text).map_err(|e| Error::io(&meta_path, e))?;
        meta_file.sync_all().map_err(|e| Error::io(&meta_path, e))?;
        drop(meta_file);

        // IMPORTANT: fsync the temp folder so both entries exist, rename,
        // then fsync the parent so the rename itself survives a crash.
        sync_dir(&tmp_dir)?;
        let final_dir = self.staging.join(&self.id);
        if final_dir.exists() {
            // The same head flushed before a crash that lost the manifest
            // update: ids derive from content, so the old folder is this
            // block.
            std::fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
        }
        std::fs::rename(&tmp_dir, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        sync_dir(&self.staging)?;
        Ok(meta)
    }
}

/// Writes `records` as an `sl-logs1` block (with the stored fingerprint
/// column), as builds before `sl-logs2` did: tests of reading and merging
/// old blocks.
#[cfg(test)]
pub(crate) fn write_v1(
    staging: &Path,
    id: &str,
    records: Vec<LogRecord>,
    row_group_rows: usize,
) -> Result<LogBlockMeta, Error> {
    let mut keyed: Vec<Keyed> = records
        .into_iter()
        .map(|record| Keyed { time: record.timestamp(), fingerprint: record.fingerprint(), record })
        .collect();
    keyed.sort_by(|a, b| {
        (a.record.service_name(), a.time, a.fingerprint).cmp(&(
            b.record.service_name(),
            b.time,
            b.fingerprint,
        ))
    });
    let mut writer = BlockWriter::with_layout(staging, id, row_group_rows, 0, Layout::V1, true)?;
    for chunk in keyed.chunks(CHUNK_ROWS) {
        let arrow_err = |source| Error::Arrow { path: writer.data_path.clone(), source };
        let batch = encode_chunk(chunk).map_err(arrow_err)?;
        let mut columns = batch.columns().to_vec();
        let fingerprints =
            arrow_array::Int64Array::from_iter_values(chunk.iter().map(|k| k.fingerprint as i64));
        columns.insert(2, Arc::new(fingerprints));
        let batch = RecordBatch::try_new(Layout::V1.schema(), columns).map_err(arrow_err)?;
        writer.write(&batch)?;
    }
    writer.finish()
}

fn encode_chunk(chunk: &[Keyed]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut c = Columns::with_capacity(chunk.len());
    let mut last_origin: Option<(*const sightline_model::Resource, *const sightline_model::Scope, Vec<u8>)> =
        None;
    let mut text = String::new();
    for k in chunk {
        let r = &k.record;
        c.service.append_value(r.service_name());
        c.time.append_value(k.time as i64);
        // Observed minus record time: usually the same small lag for a
        // source, so the dictionary stores it once (an absolute time costs
        // 8 bytes a record).
        c.observed.append_value((r.observed_time_unix_nano as i64).wrapping_sub(k.time as i64));
        c.severity_number.append_value(r.severity_number);
        c.severity_text.append_value(&r.severity_text);
        match r.trace_id {
            Some(id) => c.trace_id.append_value(id.as_bytes())?,
            None => c.trace_id.append_null(),
        }
        match r.span_id {
            Some(id) => c.span_id.append_value(id.as_bytes())?,
            None => c.span_id.append_null(),
        }
        if r.body == Value::Empty {
            c.body.append_null();
        } else {
            text.clear();
            r.body.write_text(&mut text);
            c.body.append_value(&text);
        }
        c.rest.append_value(encode_rest(r));
        let key = (Arc::as_ptr(&r.resource), Arc::as_ptr(&r.scope));
        match &last_origin {
            Some((res, sc, bytes)) if (*res, *sc) == key => c.origin.append_value(bytes),
            _ => {
                let bytes = encode_origin(&r.resource, &r.scope);
                c.origin.append_value(&bytes);
                last_origin = Some((key.0, key.1, bytes));
            }
        }
    }
    c.finish()
}

/// Marker in `rest.time_unix_nano` for a record that had no time of its
/// own (its `time_unix_nano` column holds the observed time then).
pub(crate) const NO_TIME_MARKER: u64 = 1;

/// The record fields without a column of their own, as an OTLP
/// `LogRecord`: attributes, flags, event name, dropped count, and the body
/// when it is not a string (string bodies are the `body` column).
///
/// Built from those fields alone (not the whole record's encoding with
/// the others cleared, the same bytes): copying a record's body, severity
/// text and ids only to drop them was a measurable part of a flush.
fn encode_rest(r: &LogRecord) -> Vec<u8> {
    pl::LogRecord {
        time_unix_nano: if r.time_unix_nano == 0 { NO_TIME_MARKER } else { 0 },
        body: (!matches!(r.body, Value::Str(_) | Value::Empty)).then(|| otlp::encode_value(&r.body)),
        attributes: otlp::encode_kvs(&r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        flags: r.flags,
        event_name: r.event_name.clone(),
        ..pl::LogRecord::default()
    }
    .encode_to_vec()
}

/// Resource and scope as a `ResourceLogs` with one empty `ScopeLogs`:
/// identical for every record of one source, so the column's dictionary
/// stores it once per row group.
pub(crate) fn encode_origin(resource: &Resource, scope: &Scope) -> Vec<u8> {
    pl::ResourceLogs {
        resource: Some(otlp::encode_resource(resource)),
        scope_logs: vec![pl::ScopeLogs {
            scope: Some(otlp::encode_scope(scope)),
            log_records: Vec::new(),
            schema_url: scope.schema_url.clone(),
        }],
        schema_url: resource.schema_url().to_owned(),
    }
    .encode_to_vec()
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}
