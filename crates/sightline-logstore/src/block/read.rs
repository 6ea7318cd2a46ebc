//! Reading a block: open (meta.json checked, footer read through the
//! checksummed file), prune row groups by min/max and bloom filter, decode
//! only the rows that pass the cheap column checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow_array::BooleanArray;
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray as _;
use arrow_array::types::{Int32Type, Int64Type};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1 as pl;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowFilter,
};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::statistics::Statistics;
use prost::Message as _;
use sightline_block::checked::{VerifiedFile, decode_meta};
use sightline_model::{LogQuery, Resource, Scope, otlp};
use sightline_store::BlockStorage;

use super::schema::{Col, Layout, LogBlockMeta};
use super::template;
use super::write::NO_TIME_MARKER;
use super::{DATA_FILE, META_FILE};
use crate::Error;
use crate::topk::TopK;

/// Rows decoded per Arrow batch while searching.
const READ_BATCH_ROWS: usize = 4096;

/// An open block. Cheap to share; searches open no file handles of their
/// own (reads go through the one verified file).
#[derive(Debug)]
pub(crate) struct LogBlock {
    meta: LogBlockMeta,
    /// Which columns the file has (by its format version).
    layout: Layout,
    data_path: PathBuf,
    file: VerifiedFile,
    reader_meta: ArrowReaderMetadata,
    /// Per row group, the `trace_id` bloom filter, read on first use.
    blooms: OnceLock<Vec<Option<Sbbf>>>,
    /// Per row group, the body word filter, read on first use.
    words: OnceLock<Option<super::words::Words>>,
    dir: PathBuf,
    /// Where a block kept in remote storage reads its small files (the
    /// word index); `None`: they are in `dir`.
    remote: Option<Arc<dyn BlockStorage>>,
}

impl LogBlock {
    /// Opens the block in folder `dir`, checking `meta.json` and reading
    /// the Parquet footer through the checksums.
    pub(crate) fn open(dir: &Path) -> Result<LogBlock, Error> {
        let (meta, sums) = read_meta(dir)?;
        let data_path = dir.join(DATA_FILE);
        let file = VerifiedFile::open_file(&data_path, Some(Arc::new(sums)), Arc::default())?;
        LogBlock::open_file(dir, meta, file, None)
    }

    /// Opens published block `id` of `storage`: from its folder when the
    /// storage is local, else by range through the storage's cache (the
    /// same checks either way).
    pub(crate) fn open_in(storage: &Arc<dyn BlockStorage>, id: &str) -> Result<LogBlock, Error> {
        if storage.data_source(id, 0).is_none() {
            return LogBlock::open(&storage.staging_dir().join(id));
        }
        let location = PathBuf::from(storage.location()).join("blocks").join(id);
        let meta_path = location.join(META_FILE);
        let (meta, sums) = parse_meta(&storage.read_meta(id)?, &meta_path)?;
        let source = storage
            .data_source(id, meta.size_bytes)
            .ok_or_else(|| Error::corrupt(&location, "the storage stopped serving the block remotely"))?;
        let data_path = location.join(DATA_FILE);
        let file = VerifiedFile::open_source(&data_path, source, Some(Arc::new(sums)), Arc::default())?;
        LogBlock::open_file(&location, meta, file, Some(Arc::clone(storage)))
    }

    fn open_file(
        dir: &Path,
        meta: LogBlockMeta,
        file: VerifiedFile,
        remote: Option<Arc<dyn BlockStorage>>,
    ) -> Result<LogBlock, Error> {
        let meta_path = dir.join(META_FILE);
        let Some(layout) = Layout::of(&meta.format) else {
            return Err(Error::corrupt(&meta_path, format!("unknown log block format {:?}", meta.format)));
        };
        let data_path = dir.join(DATA_FILE);
        // The offset index (page locations) lets a filtered read decode
        // only the pages holding matching rows.
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
        let reader_meta = ArrowReaderMetadata::load(&file, options)
            .map_err(|source| Error::Parquet { path: data_path.clone(), source })?;
        let expected = layout.schema();
        if reader_meta.schema().fields() != expected.fields() {
            return Err(Error::corrupt(&data_path, "columns differ from the log block schema"));
        }
        let block = LogBlock {
            meta,
            layout,
            data_path,
            file,
            reader_meta,
            blooms: OnceLock::new(),
            words: OnceLock::new(),
            dir: dir.to_owned(),
            remote,
        };
        // The trace id filters are read now (a few KiB per row group):
        // every block gets trace lookups (a trace's page shows its logs),
        // and the first lookup reading all of them cost it ~30 ms. A
        // damaged filter leaves them to the first lookup, which reports it.
        if let Err(e) = block.blooms() {
            tracing::warn!(block = %block.meta.id, error = %e, "log block trace id filters unreadable");
        }
        Ok(block)
    }

    pub(crate) fn meta(&self) -> &LogBlockMeta {
        &self.meta
    }

    /// Compressed bytes of each column over all row groups, by column
    /// name (benchmarks: where a block's bytes go).
    pub(crate) fn column_bytes(&self) -> Vec<(String, u64)> {
        let meta = self.reader_meta.metadata();
        let schema = meta.file_metadata().schema_descr();
        (0..schema.num_columns())
            .map(|c| {
                let bytes =
                    meta.row_groups().iter().map(|rg| rg.column(c).compressed_size().max(0) as u64).sum();
                (schema.column(c).name().to_owned(), bytes)
            })
            .collect()
    }

    /// Bytes `start..start + length` of the data file, checked against
    /// its checksums (verify).
    pub(crate) fn read_range(&self, start: u64, length: usize) -> Result<(), Error> {
        self.file.read_range(start, length).map(|_| ())?;
        Ok(())
    }

    /// Checks the word index against its checksum and the row groups
    /// (verify; searches ignore an index that fails).
    pub(crate) fn check_words(&self) -> Result<(), Error> {
        let Some(crc) = self.meta.words_crc32c else { return Ok(()) };
        let groups = self.reader_meta.metadata().num_row_groups();
        self.load_words(crc, groups).map(|_| ())
    }

    /// Reads and checks the word index (from the storage for a remote block).
    fn load_words(&self, crc: u32, groups: usize) -> Result<super::words::Words, Error> {
        let path = self.dir.join(super::words::WORDS_FILE);
        match &self.remote {
            None => super::words::load(&path, crc, groups),
            Some(storage) => {
                let bytes = storage.read_file(&self.meta.id, super::words::WORDS_FILE)?;
                super::words::parse(&bytes, &path, crc, groups)
            }
        }
    }

    /// Which columns the file has.
    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// The file's index of column `c`.
    fn col(&self, c: Col) -> usize {
        self.layout.index(c)
    }

    pub(crate) fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// Every row in file order (for merges).
    pub(crate) fn read_all(&self) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, Error> {
        ParquetRecordBatchReaderBuilder::new_with_metadata(self.file.clone(), self.reader_meta.clone())
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|source| Error::Parquet { path: self.data_path.clone(), source })
    }

    /// Adds the block's matches to `top`, newest row groups first.
    #[cfg(test)]
    pub(crate) fn search(&self, q: &LogQuery, top: &mut TopK) -> Result<(), Error> {
        let mut groups = self.candidates(q, top)?;
        groups.sort_by_key(|g| std::cmp::Reverse(g.1));
        for (rg, max) in groups {
            if top.floor().is_some_and(|f| max < f.0) {
                break;
            }
            self.search_group(rg, q, top)?;
        }
        Ok(())
    }

    /// The row groups that may hold matches, with their newest record
    /// time: a search reads row groups of all blocks newest first and
    /// stops once `limit` newer records are held. Rows are sorted by
    /// service, so without this a search for "the newest records" read
    /// every service's row groups of a block.
    pub(crate) fn candidates(&self, q: &LogQuery, top: &TopK) -> Result<Vec<(usize, u64)>, Error> {
        let m = &self.meta;
        if m.record_count == 0
            || q.start_unix_nanos.is_some_and(|s| m.max_time_unix_nanos < s)
            || q.end_unix_nanos.is_some_and(|e| m.min_time_unix_nanos > e)
            || q.after.is_some_and(|c| m.min_time_unix_nanos > c.time_unix_nanos)
            || top.floor().is_some_and(|f| m.max_time_unix_nanos < f.0)
            || q.service.as_ref().is_some_and(|s| m.services.binary_search(s).is_err())
        {
            return Ok(Vec::new());
        }
        self.row_groups(q, top)
    }

    /// Adds row group `rg`'s matches to `top`.
    pub(crate) fn search_group(&self, rg: usize, q: &LogQuery, top: &mut TopK) -> Result<(), Error> {
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(self.file.clone(), self.reader_meta.clone())
                .with_row_groups(vec![rg])
                .with_batch_size(READ_BATCH_ROWS);
        if let Some(filter) = self.row_filter(q) {
            builder = builder.with_row_filter(filter);
        }
        let reader =
            builder.build().map_err(|source| Error::Parquet { path: self.data_path.clone(), source })?;
        let mut origins = Origins::default();
        for batch in reader {
            let arrow_err = |source| Error::Arrow { path: self.data_path.clone(), source };
            let batch = self.layout.to_logical(batch.map_err(arrow_err)?).map_err(arrow_err)?;
            self.search_batch(&batch, q, top, &mut origins)?;
        }
        Ok(())
    }

    /// Row groups that may hold matches: time and service min/max, then
    /// the trace id's bloom filter.
    fn row_groups(&self, q: &LogQuery, top: &TopK) -> Result<Vec<(usize, u64)>, Error> {
        let meta = self.reader_meta.metadata();
        let mut out = Vec::new();
        for rg in 0..meta.num_row_groups() {
            let group = meta.row_group(rg);
            let mut newest = self.meta.max_time_unix_nanos;
            if let Some(Statistics::Int64(s)) = group.column(self.col(Col::Time)).statistics()
                && let (Some(&min), Some(&max)) = (s.min_opt(), s.max_opt())
            {
                let (min, max) = (min as u64, max as u64);
                if q.start_unix_nanos.is_some_and(|s| max < s)
                    || q.end_unix_nanos.is_some_and(|e| min > e)
                    || q.after.is_some_and(|c| min > c.time_unix_nanos)
                    || top.floor().is_some_and(|f| max < f.0)
                {
                    continue;
                }
                newest = max;
            }
            if let Some(service) = &q.service
                && let Some(Statistics::ByteArray(s)) = group.column(self.col(Col::Service)).statistics()
                && let (Some(min), Some(max)) = (s.min_opt(), s.max_opt())
                && (service.as_bytes() < min.data() || service.as_bytes() > max.data())
            {
                continue;
            }
            if q.min_severity > 0
                && let Some(Statistics::Int32(s)) = group.column(self.col(Col::SeverityNumber)).statistics()
                && s.max_opt().is_some_and(|&max| max < q.min_severity)
            {
                continue;
            }
            if (!q.body_words.is_empty() || !q.body_grams.is_empty())
                && let Some(words) = self.words()?
                && let Some(Some(bloom)) = words.groups.get(rg)
                && (q.body_words.iter().any(|w| !bloom.check(w.as_str()))
                    || (words.grams && q.body_grams.iter().any(|g| !bloom.check(g.as_str()))))
            {
                continue;
            }
            if let Some(id) = q.trace_id
                && self
                    .blooms()?
                    .get(rg)
                    .and_then(Option::as_ref)
                    .is_some_and(|b| !b.check(&id.as_bytes()[..]))
            {
                continue;
            }
            out.push((rg, newest));
        }
        Ok(out)
    }

    /// For a selective query, a predicate over the few columns it
    /// constrains (ids, service, severity, body text, time): Parquet
    /// decodes the other columns — the wide `rest` and `origin` — only for
    /// the rows that pass, and skips pages without any. `None` for a query
    /// that constrains nothing but time, where every row is a candidate.
    fn row_filter(&self, q: &LogQuery) -> Option<RowFilter> {
        let mut cols = Vec::new();
        if q.trace_id.is_some() {
            cols.push(Col::TraceId);
        }
        if q.span_id.is_some() {
            cols.push(Col::SpanId);
        }
        if q.service.is_some() {
            cols.push(Col::Service);
        }
        if q.min_severity > 0 {
            cols.push(Col::SeverityNumber);
        }
        if q.body.is_some() {
            cols.push(Col::Body);
        }
        if cols.is_empty() {
            return None;
        }
        // The time window and cursor are checked here only when set: for a
        // trace lookup, the trace id column alone decides. Rows at the
        // cursor's time pass; their fingerprint decides later.
        let keyed = q.start_unix_nanos.is_some() || q.end_unix_nanos.is_some() || q.after.is_some();
        if keyed {
            cols.push(Col::Time);
        }
        // The file's columns, in file order (the predicate's batch has
        // them so); `sl-logs3`'s body is its template and numbers.
        let mut roots: Vec<usize> = cols.iter().map(|c| self.col(*c)).collect();
        let split_body = self.layout == Layout::V3 && cols.contains(&Col::Body);
        if split_body {
            roots.push(self.col(Col::Body) + 1);
        }
        roots.sort_unstable();
        let position = |c: Col| roots.iter().position(|x| cols.contains(&c) && *x == self.col(c));
        let time_at = position(Col::Time);
        let (trace_at, span_at, service_at, severity_at, body_at) = (
            position(Col::TraceId),
            position(Col::SpanId),
            position(Col::Service),
            position(Col::SeverityNumber),
            position(Col::Body),
        );
        let mask = ProjectionMask::roots(
            self.reader_meta.metadata().file_metadata().schema_descr(),
            roots.iter().copied(),
        );
        let q = q.clone();
        let predicate = ArrowPredicateFn::new(mask, move |batch| {
            use arrow_array::Array as _;
            let time = time_at.map(|i| batch.column(i).as_primitive::<Int64Type>());
            let trace = trace_at.map(|i| batch.column(i).as_fixed_size_binary());
            let span = span_at.map(|i| batch.column(i).as_fixed_size_binary());
            let service = service_at.map(|i| batch.column(i).as_string::<i32>());
            let severity = severity_at.map(|i| batch.column(i).as_primitive::<Int32Type>());
            let joined = match body_at {
                Some(i) if split_body => Some(template::join_column(batch.column(i), batch.column(i + 1))?),
                Some(i) => Some(Arc::clone(batch.column(i))),
                None => None,
            };
            let body = joined.as_ref().map(|a| a.as_string::<i32>());
            Ok(BooleanArray::from_iter((0..batch.num_rows()).map(|row| {
                let keep = time.is_none_or(|t| q.time_in_range(t.value(row) as u64))
                    && trace.is_none_or(|a| {
                        !a.is_null(row) && q.trace_id.is_some_and(|t| a.value(row) == &t.as_bytes()[..])
                    })
                    && span.is_none_or(|a| {
                        !a.is_null(row) && q.span_id.is_some_and(|s| a.value(row) == &s.as_bytes()[..])
                    })
                    && service.is_none_or(|a| q.service.as_deref() == Some(a.value(row)))
                    && severity.is_none_or(|a| a.value(row) >= q.min_severity)
                    && body.is_none_or(|a| {
                        let text = if a.is_null(row) { "" } else { a.value(row) };
                        q.body.as_ref().is_none_or(|m| m.matches(text))
                    });
                Some(keep)
            })))
        });
        Some(RowFilter::new(vec![Box::new(predicate)]))
    }

    /// The body word filters, loaded (and checked) on first use; `None`
    /// for a block without them (or with an unusable index).
    fn words(&self) -> Result<Option<&super::words::Words>, Error> {
        let Some(crc) = self.meta.words_crc32c else { return Ok(None) };
        if let Some(w) = self.words.get() {
            return Ok(w.as_ref());
        }
        let groups = self.reader_meta.metadata().num_row_groups();
        // A word index that cannot be used costs speed, not answers: the
        // block is searched without it.
        let loaded = self.load_words(crc, groups)
            .map_err(|e| {
                tracing::warn!(block = %self.meta.id, error = %e, "log block word index unusable; searching without it");
            })
            .ok();
        Ok(self.words.get_or_init(|| loaded).as_ref())
    }

    fn blooms(&self) -> Result<&[Option<Sbbf>], Error> {
        if let Some(b) = self.blooms.get() {
            return Ok(b);
        }
        let builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(self.file.clone(), self.reader_meta.clone());
        let groups = self.reader_meta.metadata().num_row_groups();
        let blooms = (0..groups)
            .map(|rg| builder.get_row_group_column_bloom_filter(rg, self.col(Col::TraceId)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| Error::Parquet { path: self.data_path.clone(), source })?;
        Ok(self.blooms.get_or_init(|| blooms))
    }

    fn search_batch(
        &self,
        batch: &RecordBatch,
        q: &LogQuery,
        top: &mut TopK,
        origins: &mut Origins,
    ) -> Result<(), Error> {
        // `batch` has the columns of `Col::ALL` (`Layout::to_logical`).
        let col = |c: Col| batch.column(c.index());
        let service = col(Col::Service).as_string::<i32>();
        let time = col(Col::Time).as_primitive::<Int64Type>();
        let observed = col(Col::Observed).as_primitive::<Int64Type>();
        let severity = col(Col::SeverityNumber).as_primitive::<Int32Type>();
        let severity_text = col(Col::SeverityText).as_string::<i32>();
        let trace_id = col(Col::TraceId).as_fixed_size_binary();
        let span_id = col(Col::SpanId).as_fixed_size_binary();
        let body = col(Col::Body).as_string::<i32>();
        let rest = col(Col::Rest).as_binary::<i32>();
        let origin = col(Col::Origin).as_binary::<i32>();
        use arrow_array::Array as _;
        for row in 0..batch.num_rows() {
            // The fingerprint is not stored: rows are ruled out by time
            // first, and it is computed only for the rows decoded.
            let at = time.value(row) as u64;
            if !q.time_in_range(at) || top.floor().is_some_and(|f| at < f.0) {
                continue;
            }
            if q.service.as_deref().is_some_and(|s| s != service.value(row))
                || severity.value(row) < q.min_severity
            {
                continue;
            }
            let row_trace = (!trace_id.is_null(row)).then(|| trace_id.value(row));
            if q.trace_id.is_some_and(|id| row_trace != Some(&id.as_bytes()[..])) {
                continue;
            }
            let row_span = (!span_id.is_null(row)).then(|| span_id.value(row));
            if q.span_id.is_some_and(|id| row_span != Some(&id.as_bytes()[..])) {
                continue;
            }
            let body_text = (!body.is_null(row)).then(|| body.value(row));
            if q.body.as_ref().is_some_and(|m| !m.matches(body_text.unwrap_or(""))) {
                continue;
            }
            let mut rec = pl::LogRecord::decode(rest.value(row))
                .map_err(|e| Error::corrupt(&self.data_path, format!("rest column: {e}")))?;
            rec.time_unix_nano = if rec.time_unix_nano == NO_TIME_MARKER { 0 } else { at };
            rec.observed_time_unix_nano = (at as i64).wrapping_add(observed.value(row)) as u64;
            rec.severity_number = severity.value(row);
            rec.severity_text = severity_text.value(row).to_owned();
            rec.trace_id = row_trace.map(<[u8]>::to_vec).unwrap_or_default();
            rec.span_id = row_span.map(<[u8]>::to_vec).unwrap_or_default();
            if rec.body.is_none()
                && let Some(text) = body_text
            {
                rec.body = Some(AnyValue { value: Some(any_value::Value::StringValue(text.to_owned())) });
            }
            let (resource, scope) = origins.get(origin.value(row), &self.data_path)?;
            let record = otlp::decode_record(rec, &resource, &scope)
                .map_err(|e| Error::corrupt(&self.data_path, format!("stored record: {e}")))?;
            if !q.matches_content(&record) {
                continue;
            }
            let key = (at, record.fingerprint());
            if q.key_in_range(key.0, key.1) {
                top.push(key, record);
            }
        }
        Ok(())
    }
}

/// A block's `meta.json`, its own checksum verified, with the data file's
/// checksums.
pub(crate) fn read_meta(dir: &Path) -> Result<(LogBlockMeta, sightline_block::checked::Checksums), Error> {
    let meta_path = dir.join(META_FILE);
    let text = std::fs::read(&meta_path).map_err(|e| Error::io(&meta_path, e))?;
    parse_meta(&text, &meta_path)
}

/// A `meta.json`'s content (`meta_path` names it in errors), checked as
/// [`read_meta`] checks the file.
fn parse_meta(
    text: &[u8],
    meta_path: &Path,
) -> Result<(LogBlockMeta, sightline_block::checked::Checksums), Error> {
    let meta_path = meta_path.to_owned();
    let mut fields: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| Error::corrupt(&meta_path, e.to_string()))?;
    let sums = decode_meta(&mut fields)
        .map_err(|e| Error::corrupt(&meta_path, e))?
        .ok_or_else(|| Error::corrupt(&meta_path, "no checksums"))?;
    let meta: LogBlockMeta =
        serde_json::from_value(fields).map_err(|e| Error::corrupt(&meta_path, e.to_string()))?;
    Ok((meta, sums))
}

/// Decoded resources and scopes of one search, by their stored bytes.
#[derive(Default)]
struct Origins(HashMap<Vec<u8>, (Arc<Resource>, Arc<Scope>)>);

impl Origins {
    fn get(&mut self, bytes: &[u8], path: &Path) -> Result<(Arc<Resource>, Arc<Scope>), Error> {
        if let Some((r, s)) = self.0.get(bytes) {
            return Ok((Arc::clone(r), Arc::clone(s)));
        }
        let rl = pl::ResourceLogs::decode(bytes)
            .map_err(|e| Error::corrupt(path, format!("origin column: {e}")))?;
        let resource = Arc::new(otlp::decode_resource(rl.resource, rl.schema_url));
        let (scope, url) =
            rl.scope_logs.into_iter().next().map(|sl| (sl.scope, sl.schema_url)).unwrap_or_default();
        let scope = Arc::new(otlp::decode_scope(scope, url));
        self.0.insert(bytes.to_vec(), (Arc::clone(&resource), Arc::clone(&scope)));
        Ok((resource, scope))
    }
}

/// For tests: every record of a block, in file order.
#[cfg(test)]
pub(crate) fn all_records(block: &LogBlock) -> Vec<sightline_model::LogRecord> {
    let q = LogQuery { limit: usize::MAX, ..LogQuery::default() };
    let mut top = TopK::new(usize::MAX / 2);
    block.search(&q, &mut top).unwrap();
    top.into_page(Vec::new()).records
}
