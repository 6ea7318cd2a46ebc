//! Reading a block: open (meta.json checked, footer read through the
//! checksummed file), prune row groups by min/max and bloom filter, decode
//! only the rows that pass the cheap column checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
use parquet::file::metadata::{PageIndexPolicy, ParquetStatisticsPolicy};
use parquet::file::statistics::Statistics;
use prost::Message as _;
use sightline_block::FooterCache;
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

/// The block's parts kept in the [`Caches`], by part number.
const PART_FOOTER: u8 = 0;
const PART_TRACE_BLOOMS: u8 = 1;
const PART_WORDS: u8 = 2;

/// Where open blocks keep their parts: the footers and trace id filters
/// (what a trace lookup reads) in one cache, the body word filters in
/// another, so that a body search, which reads every block's word
/// filters, cannot push out what lookups need.
#[derive(Debug, Clone)]
pub(crate) struct Caches {
    pub(crate) blocks: Arc<FooterCache>,
    pub(crate) words: Arc<FooterCache>,
}

impl Caches {
    /// One cache without a bound for both (verify, tests).
    fn unbounded() -> Caches {
        let cache = Arc::new(FooterCache::new(usize::MAX));
        Caches { blocks: Arc::clone(&cache), words: cache }
    }
}

/// An open block. Cheap to share; searches open no file handles of their
/// own (reads go through the one verified file).
///
/// It keeps resident only what decides whether a row group must be read
/// (`meta.json`, per row group its time, service and severity range and
/// where its trace id filter is); the Parquet footer with the page index
/// and the trace id filters are entries of one [`FooterCache`] shared by
/// the store's blocks, the body word filters of another ([`Caches`]), read
/// again when evicted.
#[derive(Debug)]
pub(crate) struct LogBlock {
    meta: LogBlockMeta,
    /// Which columns the file has (by its format version).
    layout: Layout,
    data_path: PathBuf,
    file: VerifiedFile,
    /// Per row group, what pruning needs before the footer.
    groups: Vec<Group>,
    /// Where the footer and filters are kept, under `key`.
    caches: Caches,
    key: u64,
    dir: PathBuf,
    /// Where a block kept in remote storage reads its small files (the
    /// word index); `None`: they are in `dir`.
    remote: Option<Arc<dyn BlockStorage>>,
}

/// A statistic's bytes, kept apart from the footer they came from.
type Bytes = Box<[u8]>;

/// What pruning needs of one row group, kept while the footer is not.
#[derive(Debug)]
struct Group {
    /// Time min and max; `None`: no statistics, any time may be here.
    time: Option<(u64, u64)>,
    /// Service min and max.
    service: Option<(Bytes, Bytes)>,
    /// The highest severity number.
    max_severity: Option<i32>,
    /// Where the trace id bloom filter is: offset and length (header
    /// included); `None`: read through the footer (or absent).
    bloom: Option<(u64, usize)>,
}

impl Group {
    fn of(group: &parquet::file::metadata::RowGroupMetaData, layout: Layout) -> Group {
        let stats = |c: Col| group.column(layout.index(c)).statistics();
        let time = match stats(Col::Time) {
            Some(Statistics::Int64(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(&min), Some(&max)) => Some((min as u64, max as u64)),
                _ => None,
            },
            _ => None,
        };
        let service = match stats(Col::Service) {
            Some(Statistics::ByteArray(s)) => match (s.min_opt(), s.max_opt()) {
                (Some(min), Some(max)) => Some((min.data().into(), max.data().into())),
                _ => None,
            },
            _ => None,
        };
        let max_severity = match stats(Col::SeverityNumber) {
            Some(Statistics::Int32(s)) => s.max_opt().copied(),
            _ => None,
        };
        let chunk = group.column(layout.index(Col::TraceId));
        let bloom = match (chunk.bloom_filter_offset(), chunk.bloom_filter_length()) {
            (Some(offset), Some(len)) => u64::try_from(offset).ok().zip(usize::try_from(len).ok()),
            _ => None,
        };
        Group { time, service, max_severity, bloom }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Group>() + self.service.as_ref().map_or(0, |(a, b)| a.len() + b.len())
    }
}

/// Heap bytes of an open block's parts ([`LogBlock::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogBlockMemory {
    /// The Parquet footer as blocks kept it before the cache (every
    /// column's statistics, offset index).
    pub footer_uncached: usize,
    /// The footer as the cache keeps it (statistics of the pruned columns
    /// only), without the page index.
    pub footer: usize,
    /// The offset index (page locations of every column).
    pub page_index: usize,
    /// The trace id bloom filters.
    pub trace_blooms: usize,
    /// The body word (and gram) filters.
    pub words: usize,
    /// What stays resident: the per row group summaries.
    pub resident: usize,
}

impl LogBlockMemory {
    /// Adds `other`'s parts.
    pub fn add(&mut self, other: &LogBlockMemory) {
        self.footer_uncached += other.footer_uncached;
        self.footer += other.footer;
        self.page_index += other.page_index;
        self.trace_blooms += other.trace_blooms;
        self.words += other.words;
        self.resident += other.resident;
    }

    /// What an open block kept before the cache: all of it.
    pub fn before(&self) -> usize {
        self.footer_uncached + self.trace_blooms + self.words
    }

    /// What the cache may hold of it, plus what stays resident.
    pub fn total(&self) -> usize {
        self.footer + self.page_index + self.trace_blooms + self.words + self.resident
    }
}

/// How the footer is read: the offset index (page locations) lets a
/// filtered read decode only the pages holding matching rows; statistics
/// are kept only for the columns pruning reads, and those go into the
/// resident [`Group`]s at open, so a cached footer holds none of the rest.
fn footer_options(layout: Layout) -> ArrowReaderOptions {
    let pruned = [Col::Time, Col::Service, Col::SeverityNumber].map(|c| layout.index(c));
    ArrowReaderOptions::new()
        .with_offset_index_policy(PageIndexPolicy::Optional)
        .with_column_stats_policy(ParquetStatisticsPolicy::skip_except(&pruned))
        .with_encoding_stats_policy(ParquetStatisticsPolicy::SkipAll)
        .with_size_stats_policy(ParquetStatisticsPolicy::SkipAll)
}

/// Heap bytes of bloom filters (32-byte blocks) and their slots.
fn blooms_size(blooms: &[Option<Sbbf>]) -> usize {
    blooms
        .iter()
        .map(|b| std::mem::size_of::<Option<Sbbf>>() + b.as_ref().map_or(0, |f| f.num_blocks() * 32))
        .sum()
}

impl LogBlock {
    /// Opens the block in folder `dir`, checking `meta.json` and reading
    /// the Parquet footer through the checksums; its footer and filters
    /// in a cache of its own without a bound (verify, tests).
    pub(crate) fn open(dir: &Path) -> Result<LogBlock, Error> {
        LogBlock::open_cached(dir, &Caches::unbounded())
    }

    /// [`LogBlock::open`], keeping the footer and filters in `caches`.
    pub(crate) fn open_cached(dir: &Path, caches: &Caches) -> Result<LogBlock, Error> {
        let (meta, sums) = read_meta(dir)?;
        let data_path = dir.join(DATA_FILE);
        let file = VerifiedFile::open_file(&data_path, Some(Arc::new(sums)), Arc::default())?;
        LogBlock::open_file(dir, meta, file, None, caches)
    }

    /// Opens published block `id` of `storage`: from its folder when the
    /// storage is local, else by range through the storage's cache (the
    /// same checks either way); its footer and filters in `caches`.
    pub(crate) fn open_in(
        storage: &Arc<dyn BlockStorage>,
        id: &str,
        caches: &Caches,
    ) -> Result<LogBlock, Error> {
        if storage.data_source(id, 0).is_none() {
            return LogBlock::open_cached(&storage.staging_dir().join(id), caches);
        }
        let location = PathBuf::from(storage.location()).join("blocks").join(id);
        let meta_path = location.join(META_FILE);
        let (meta, sums) = parse_meta(&storage.read_meta(id)?, &meta_path)?;
        let source = storage
            .data_source(id, meta.size_bytes)
            .ok_or_else(|| Error::corrupt(&location, "the storage stopped serving the block remotely"))?;
        let data_path = location.join(DATA_FILE);
        let file = VerifiedFile::open_source(&data_path, source, Some(Arc::new(sums)), Arc::default())?;
        LogBlock::open_file(&location, meta, file, Some(Arc::clone(storage)), caches)
    }

    fn open_file(
        dir: &Path,
        meta: LogBlockMeta,
        file: VerifiedFile,
        remote: Option<Arc<dyn BlockStorage>>,
        caches: &Caches,
    ) -> Result<LogBlock, Error> {
        let meta_path = dir.join(META_FILE);
        let Some(layout) = Layout::of(&meta.format) else {
            return Err(Error::corrupt(&meta_path, format!("unknown log block format {:?}", meta.format)));
        };
        let data_path = dir.join(DATA_FILE);
        let reader_meta = ArrowReaderMetadata::load(&file, footer_options(layout))
            .map_err(|source| Error::Parquet { path: data_path.clone(), source })?;
        let expected = layout.schema();
        if reader_meta.schema().fields() != expected.fields() {
            return Err(Error::corrupt(&data_path, "columns differ from the log block schema"));
        }
        let groups = reader_meta.metadata().row_groups().iter().map(|g| Group::of(g, layout)).collect();
        let block = LogBlock {
            meta,
            layout,
            data_path,
            file,
            groups,
            caches: caches.clone(),
            key: FooterCache::new_key(),
            dir: dir.to_owned(),
            remote,
        };
        // Just read: a new block is usually searched soon.
        block.keep_footer(Arc::new(reader_meta));
        // The trace id filters are read now (a few KiB per row group):
        // every block gets trace lookups (a trace's page shows its logs),
        // and the first lookup reading all of them cost it ~30 ms. A
        // damaged filter leaves them to the first lookup, which reports it.
        if let Err(e) = block.blooms() {
            tracing::warn!(block = %block.meta.id, error = %e, "log block trace id filters unreadable");
        }
        Ok(block)
    }

    /// The footer with its offset index: from the cache, or read again
    /// (through the checksums) and cached. A search takes it once per
    /// block and holds it while it reads the block's row groups: taken
    /// per row group, a footer the cache turned away was read again for
    /// every one.
    pub(crate) fn footer(&self) -> Result<Arc<ArrowReaderMetadata>, Error> {
        if let Some(footer) = self.caches.blocks.get_part::<ArrowReaderMetadata>(self.key, PART_FOOTER) {
            return Ok(footer);
        }
        let footer = ArrowReaderMetadata::load(&self.file, footer_options(self.layout))
            .map_err(|source| Error::Parquet { path: self.data_path.clone(), source })?;
        let footer = Arc::new(footer);
        self.keep_footer(Arc::clone(&footer));
        Ok(footer)
    }

    fn keep_footer(&self, footer: Arc<ArrowReaderMetadata>) {
        let bytes = footer.metadata().memory_size();
        self.caches.blocks.insert_part(self.key, PART_FOOTER, footer, bytes);
    }

    /// Approximate heap bytes this open block holds now: its resident
    /// summaries plus the parts it has in the cache right now.
    pub(crate) fn memory_size(&self) -> usize {
        self.groups.iter().map(Group::bytes).sum::<usize>()
            + [
                (&self.caches.blocks, PART_FOOTER),
                (&self.caches.blocks, PART_TRACE_BLOOMS),
                (&self.caches.words, PART_WORDS),
            ]
            .iter()
            .map(|(cache, p)| cache.part_bytes(self.key, *p).unwrap_or(0))
            .sum::<usize>()
    }

    /// What the block's parts take, cached or not (read when not cached),
    /// and what its footer took before the cache (read again the old way).
    /// Costly; for measurements (`loadgen logs-bench`).
    pub(crate) fn memory(&self) -> Result<LogBlockMemory, Error> {
        let footer = self.footer()?;
        let md = footer.metadata();
        let with_index = md.memory_size();
        let without_index = (**md).clone().into_builder().set_page_index(None).build().memory_size();
        let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
        let uncached = ArrowReaderMetadata::load(&self.file, options)
            .map_err(|source| Error::Parquet { path: self.data_path.clone(), source })?;
        let words = self.words()?.map_or(0, |w| blooms_size(&w.groups));
        Ok(LogBlockMemory {
            footer_uncached: uncached.metadata().memory_size(),
            footer: without_index,
            page_index: with_index.saturating_sub(without_index),
            trace_blooms: blooms_size(&self.blooms()?),
            words,
            resident: self.groups.iter().map(Group::bytes).sum(),
        })
    }

    pub(crate) fn meta(&self) -> &LogBlockMeta {
        &self.meta
    }

    /// Compressed bytes of each column over all row groups, by column
    /// name (benchmarks: where a block's bytes go).
    pub(crate) fn column_bytes(&self) -> Result<Vec<(String, u64)>, Error> {
        let footer = self.footer()?;
        let meta = footer.metadata();
        let schema = meta.file_metadata().schema_descr();
        Ok((0..schema.num_columns())
            .map(|c| {
                let bytes =
                    meta.row_groups().iter().map(|rg| rg.column(c).compressed_size().max(0) as u64).sum();
                (schema.column(c).name().to_owned(), bytes)
            })
            .collect())
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
        self.load_words(crc, self.groups.len()).map(|_| ())
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
        let footer = self.footer()?;
        ParquetRecordBatchReaderBuilder::new_with_metadata(self.file.clone(), (*footer).clone())
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|source| Error::Parquet { path: self.data_path.clone(), source })
    }

    /// Adds the block's matches to `top`, newest row groups first.
    #[cfg(test)]
    pub(crate) fn search(&self, q: &LogQuery, top: &mut TopK) -> Result<(), Error> {
        let mut groups = self.candidates(q, top)?;
        groups.sort_by_key(|g| std::cmp::Reverse(g.1));
        let mut footer = None;
        for (rg, max) in groups {
            if top.floor().is_some_and(|f| max < f.0) {
                break;
            }
            let footer = match &footer {
                Some(f) => Arc::clone(f),
                None => Arc::clone(footer.insert(self.footer()?)),
            };
            self.search_group(rg, q, top, &footer)?;
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

    /// Adds row group `rg`'s matches to `top`; `footer` is this block's
    /// ([`LogBlock::footer`]).
    pub(crate) fn search_group(
        &self,
        rg: usize,
        q: &LogQuery,
        top: &mut TopK,
        footer: &ArrowReaderMetadata,
    ) -> Result<(), Error> {
        let mut builder =
            ParquetRecordBatchReaderBuilder::new_with_metadata(self.file.clone(), footer.clone())
                .with_row_groups(vec![rg])
                .with_batch_size(READ_BATCH_ROWS);
        if let Some(filter) = self.row_filter(q, footer) {
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
        let mut out = Vec::new();
        // Each filter set is taken from the cache once per block, and
        // only by a query it prunes.
        let by_words = !q.body_words.is_empty() || !q.body_grams.is_empty();
        let words = if by_words { self.words()? } else { None };
        let blooms = if q.trace_id.is_some() { Some(self.blooms()?) } else { None };
        for (rg, group) in self.groups.iter().enumerate() {
            let mut newest = self.meta.max_time_unix_nanos;
            if let Some((min, max)) = group.time {
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
                && let Some((min, max)) = &group.service
                && (service.as_bytes() < &**min || service.as_bytes() > &**max)
            {
                continue;
            }
            if q.min_severity > 0 && group.max_severity.is_some_and(|max| max < q.min_severity) {
                continue;
            }
            if let Some(words) = &words
                && let Some(Some(bloom)) = words.groups.get(rg)
                && (q.body_words.iter().any(|w| !bloom.check(w.as_str()))
                    || (words.grams && q.body_grams.iter().any(|g| !bloom.check(g.as_str()))))
            {
                continue;
            }
            if let (Some(id), Some(blooms)) = (q.trace_id, &blooms)
                && blooms.get(rg).and_then(Option::as_ref).is_some_and(|b| !b.check(&id.as_bytes()[..]))
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
    fn row_filter(&self, q: &LogQuery, footer: &ArrowReaderMetadata) -> Option<RowFilter> {
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
        let mask =
            ProjectionMask::roots(footer.metadata().file_metadata().schema_descr(), roots.iter().copied());
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

    /// The body word filters: from the cache, or loaded (and checked) and
    /// cached; `None` for a block without them (or with an unusable index).
    fn words(&self) -> Result<Option<Arc<super::words::Words>>, Error> {
        let Some(crc) = self.meta.words_crc32c else { return Ok(None) };
        if let Some(w) = self.caches.words.get_part::<Option<Arc<super::words::Words>>>(self.key, PART_WORDS)
        {
            return Ok((*w).clone());
        }
        // A word index that cannot be used costs speed, not answers: the
        // block is searched without it.
        let loaded = self.load_words(crc, self.groups.len())
            .map_err(|e| {
                tracing::warn!(block = %self.meta.id, error = %e, "log block word index unusable; searching without it");
            })
            .ok()
            .map(Arc::new);
        let bytes = std::mem::size_of::<Option<Arc<super::words::Words>>>()
            + loaded.as_ref().map_or(0, |w| blooms_size(&w.groups));
        self.caches.words.insert_part(self.key, PART_WORDS, Arc::new(loaded.clone()), bytes);
        Ok(loaded)
    }

    /// The trace id bloom filters: from the cache, or read straight from
    /// where the resident row group summaries say they are (through the
    /// footer for a filter without a recorded length) and cached.
    fn blooms(&self) -> Result<Arc<Vec<Option<Sbbf>>>, Error> {
        if let Some(b) = self.caches.blocks.get_part::<Vec<Option<Sbbf>>>(self.key, PART_TRACE_BLOOMS) {
            return Ok(b);
        }
        let parquet_err = |source| Error::Parquet { path: self.data_path.clone(), source };
        let mut through_footer = None;
        let mut blooms = Vec::with_capacity(self.groups.len());
        for (rg, group) in self.groups.iter().enumerate() {
            blooms.push(match group.bloom {
                Some((offset, len)) => {
                    let bytes = self.file.read_range(offset, len)?;
                    Some(Sbbf::from_bytes(&bytes).map_err(parquet_err)?)
                }
                None => {
                    if through_footer.is_none() {
                        let footer = self.footer()?;
                        through_footer = Some(ParquetRecordBatchReaderBuilder::new_with_metadata(
                            self.file.clone(),
                            (*footer).clone(),
                        ));
                    }
                    match &through_footer {
                        Some(builder) => builder
                            .get_row_group_column_bloom_filter(rg, self.col(Col::TraceId))
                            .map_err(parquet_err)?,
                        None => None,
                    }
                }
            });
        }
        let bytes = blooms_size(&blooms);
        let blooms = Arc::new(blooms);
        self.caches.blocks.insert_part(self.key, PART_TRACE_BLOOMS, Arc::clone(&blooms), bytes);
        Ok(blooms)
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

impl Drop for LogBlock {
    fn drop(&mut self) {
        self.caches.blocks.remove_block(self.key);
        self.caches.words.remove_block(self.key);
    }
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
