//! Opening a block and decoding its rows back into spans: [`Block::open`],
//! [`Block::trace`], [`Block::read_all`] and [`Block::spans`].

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::types::{Int32Type, Int64Type, TimestampNanosecondType, UInt8Type, UInt32Type};
use arrow_array::{
    Array, DictionaryArray, FixedSizeBinaryArray, Float64Array, Int32Array, Int64Array, ListArray,
    PrimitiveArray, RecordBatch, StringArray, StructArray, UInt8Array, UInt32Array,
};
use arrow_schema::ArrowError;
use base64::Engine as _;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::{PageIndexPolicy, ParquetStatisticsPolicy};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;
use sightline_model::{Event, KeyValue, Link, Span, SpanId, SpanKind, Status, StatusCode, TraceId, Value};

use crate::cache::{Blooms, Cached, Footer, FooterCache, Part};
use crate::dedicated::Dedicated;
use crate::integrity::{Checksums, DamageSlot, Mismatch, VerifiedFile};
use crate::json;
use crate::schema::{self, Col, DATA_FILE, META_FILE, layout, tag};
use crate::source::{BlockSource, Data};
use crate::{BlockMeta, Error, FORMAT_VERSION};

/// An open block.
///
/// Opening reads `meta.json` and the Parquet footer with the page index
/// and checks them. The block then keeps resident only what decides
/// whether a query must read it (`meta.json`, the dedicated-column table,
/// per row group the `trace_id` range and where its bloom filter is); the
/// footer with its page index and resource/scope tables, and the bloom
/// filters, live in a [`FooterCache`] shared by a store's blocks and are
/// read again from the data file when evicted. Each query opens its own
/// file handle, so a `Block` is `Send + Sync`, shares freely in an `Arc`,
/// and holds no file descriptor while idle (a store may keep thousands
/// open).
#[derive(Debug)]
pub struct Block {
    dir: PathBuf,
    pub(crate) data_path: PathBuf,
    /// Where the data file's bytes come from; `None`: the local file at
    /// `data_path`.
    pub(crate) source: Option<Arc<dyn BlockSource>>,
    meta: BlockMeta,
    pub(crate) dedicated: Dedicated,
    pub(crate) leaves: Leaves,
    /// Per row group, what a lookup by trace id needs before the footer:
    /// a lookup probes every block, and most blocks are ruled out by the
    /// range and the bloom filter alone.
    pub(crate) groups: Vec<TraceGroup>,
    /// Where the footer and bloom filters are kept, under `key`. The
    /// bloom filters are cached apart from the footer: they are read by
    /// every lookup, and are small (the writer folds them to the traces
    /// they hold, a few KiB each), so they stay while footers come and go.
    cache: Arc<FooterCache>,
    key: u64,
    /// The data file's chunk checksums; `None` for a block written before
    /// blocks had them.
    pub(crate) checksums: Option<Arc<Checksums>>,
    /// The first checksum mismatch any read found.
    pub(crate) damage: DamageSlot,
}

/// What a lookup by trace id needs of one row group before the footer.
#[derive(Debug, Clone)]
pub(crate) struct TraceGroup {
    pub(crate) rows: usize,
    /// `trace_id` min and max; `None`: no statistics, any id may be here.
    pub(crate) range: Option<([u8; 16], [u8; 16])>,
    bloom: BloomAt,
}

/// Where a row group's `trace_id` bloom filter is in the data file.
#[derive(Debug, Clone, Copy)]
enum BloomAt {
    None,
    /// Offset and length, header included.
    At(u64, usize),
    /// An offset without a length: read through the footer.
    Unsized,
}

impl TraceGroup {
    fn of(group: &parquet::file::metadata::RowGroupMetaData, leaf: usize) -> TraceGroup {
        let chunk = group.columns().get(leaf);
        let range = chunk.and_then(|c| match c.statistics() {
            Some(Statistics::FixedLenByteArray(stats)) => {
                let min = <[u8; 16]>::try_from(stats.min_opt()?.data()).ok()?;
                let max = <[u8; 16]>::try_from(stats.max_opt()?.data()).ok()?;
                Some((min, max))
            }
            _ => None,
        });
        let bloom = match chunk.map(|c| (c.bloom_filter_offset(), c.bloom_filter_length())) {
            Some((Some(offset), Some(len))) => match (u64::try_from(offset), usize::try_from(len)) {
                (Ok(offset), Ok(len)) => BloomAt::At(offset, len),
                _ => BloomAt::Unsized,
            },
            Some((Some(_), None)) => BloomAt::Unsized,
            _ => BloomAt::None,
        };
        TraceGroup { rows: usize::try_from(group.num_rows()).unwrap_or(0), range, bloom }
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<TraceGroup>()
    }
}

/// Heap bytes of an open block, part by part ([`Block::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockMemory {
    /// The Parquet footer without the page index: schema, row group and
    /// column chunk metadata, kept statistics, key-value metadata.
    pub footer: usize,
    /// The page index: every column's page locations, `trace_id`'s page
    /// min/max.
    pub page_index: usize,
    /// The `trace_id` bloom filters, once a lookup has read them.
    pub blooms: usize,
    /// The data file's chunk checksums.
    pub checksums: usize,
    /// The resource and scope tables.
    pub tables: usize,
    /// What stays resident besides checksums: per row group the
    /// `trace_id` range and bloom filter location.
    pub resident: usize,
}

impl BlockMemory {
    /// All parts together.
    pub fn total(&self) -> usize {
        self.footer + self.page_index + self.blooms + self.checksums + self.tables + self.resident
    }
}

/// Parquet leaf column indexes the readers need for bloom filters.
#[derive(Debug, Clone)]
pub(crate) struct Leaves {
    pub(crate) trace_id: usize,
    /// `[key, str, int, double]` of generic span attributes.
    pub(crate) span_attrs: [usize; 4],
    /// The same for event attributes.
    pub(crate) event_attrs: [usize; 4],
}

impl Leaves {
    fn find(block: &Path, descr: &parquet::schema::types::SchemaDescriptor) -> Result<Leaves, Error> {
        let leaf = |path: parquet::schema::types::ColumnPath| -> Result<usize, Error> {
            descr
                .columns()
                .iter()
                .position(|c| c.path() == &path)
                .ok_or_else(|| Error::corrupt(block, format!("missing column {path}")))
        };
        let attrs = |list: &[&str]| -> Result<[usize; 4], Error> {
            let mut out = [0; 4];
            for (slot, name) in out.iter_mut().zip(schema::BLOOM_ATTRIBUTE_LEAVES) {
                let mut parts = list.to_vec();
                parts.push(name);
                *slot = leaf(schema::list_leaf(&parts))?;
            }
            Ok(out)
        };
        Ok(Leaves {
            trace_id: leaf(schema::list_leaf(&[Col::TraceId.name().as_str()]))?,
            span_attrs: attrs(&["attributes"])?,
            event_attrs: attrs(&["events", "attributes"])?,
        })
    }
}

impl Block {
    /// Opens `block_dir` (the `<dir>/<id>` that [`crate::write()`] created).
    ///
    /// Checks `meta.json` against its own checksum, the format version in
    /// both files, the schema, and that the row count and file size agree
    /// with `meta.json`; the footer and page index are read through the
    /// data checksums, like every later read.
    ///
    /// The block keeps its footer in a cache of its own without a bound;
    /// a store opens its blocks with [`Block::open_cached`].
    pub fn open(block_dir: &Path) -> Result<Block, Error> {
        Block::open_cached(block_dir, &Arc::new(FooterCache::new(usize::MAX)))
    }

    /// [`Block::open`], keeping the footer and bloom filters in `cache`.
    pub fn open_cached(block_dir: &Path, cache: &Arc<FooterCache>) -> Result<Block, Error> {
        let (meta, checksums) = BlockMeta::read(&block_dir.join(META_FILE))?;
        let data_path = block_dir.join(DATA_FILE);
        crate::contain(&data_path, || {
            Block::open_data(block_dir, meta, checksums.map(Arc::new), None, Arc::clone(cache))
        })
    }

    /// Opens a block kept elsewhere (an object store): `meta_json` is its
    /// `meta.json`'s bytes, `source` serves its data file's bytes, and
    /// `location` names it in errors (`<location>/data.parquet`). Runs the
    /// same checks as [`Block::open`], checksums included; reads only the
    /// footer and page index from `source`.
    pub fn open_source(
        location: &Path,
        meta_json: &[u8],
        source: Arc<dyn BlockSource>,
    ) -> Result<Block, Error> {
        Block::open_source_cached(location, meta_json, source, &Arc::new(FooterCache::new(usize::MAX)))
    }

    /// [`Block::open_source`], keeping the footer and bloom filters in
    /// `cache` (read again from `source` when evicted).
    pub fn open_source_cached(
        location: &Path,
        meta_json: &[u8],
        source: Arc<dyn BlockSource>,
        cache: &Arc<FooterCache>,
    ) -> Result<Block, Error> {
        let (meta, checksums) = BlockMeta::parse(meta_json, &location.join(META_FILE))?;
        let data_path = location.join(DATA_FILE);
        crate::contain(&data_path, || {
            Block::open_data(location, meta, checksums.map(Arc::new), Some(source), Arc::clone(cache))
        })
    }

    fn open_data(
        block_dir: &Path,
        meta: BlockMeta,
        checksums: Option<Arc<Checksums>>,
        source: Option<Arc<dyn BlockSource>>,
        cache: Arc<FooterCache>,
    ) -> Result<Block, Error> {
        let data_path = block_dir.join(DATA_FILE);
        let damage = DamageSlot::default();
        let data = Data::open(&data_path, source.as_ref()).map_err(|e| Error::io(&data_path, e))?;
        let file = VerifiedFile::open(&data_path, data, checksums.clone(), Arc::clone(&damage))?;
        let len = parquet::file::reader::Length::len(&file);
        if len != meta.size_bytes {
            return Err(Error::corrupt(
                &data_path,
                format!("size is {len} bytes, meta.json says {}", meta.size_bytes),
            ));
        }
        if let Some(sums) = &checksums
            && sums.chunks_for(len) != sums.crcs.len() as u64
        {
            return Err(Error::corrupt(
                &data_path,
                format!(
                    "{len} bytes need {} checksums, meta.json has {}",
                    sums.chunks_for(len),
                    sums.crcs.len()
                ),
            ));
        }
        let footer = read_footer(&data_path, &file, &damage)?;
        let reader_meta = &footer.reader_meta;
        let file_meta = reader_meta.metadata().file_metadata();
        let kv = |key: &str| -> Option<&str> {
            file_meta.key_value_metadata()?.iter().find(|kv| kv.key == key)?.value.as_deref()
        };
        match kv(schema::META_FORMAT) {
            Some(FORMAT_VERSION) => {}
            Some(found) => return Err(Error::UnknownFormat { path: data_path, found: found.to_owned() }),
            None => return Err(Error::corrupt(&data_path, "no sightline.format in the Parquet metadata")),
        }
        let expected = schema::arrow_schema();
        let fields_match = reader_meta.schema().fields().len() == expected.fields().len()
            && reader_meta
                .schema()
                .fields()
                .iter()
                .zip(expected.fields())
                .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
        if !fields_match {
            return Err(Error::corrupt(&data_path, "schema differs from sl1"));
        }
        if u64::try_from(file_meta.num_rows()).ok() != Some(meta.span_count) {
            return Err(Error::corrupt(
                &data_path,
                format!("{} rows, meta.json says {} spans", file_meta.num_rows(), meta.span_count),
            ));
        }
        let dedicated = Dedicated::from_json(
            kv(schema::META_DEDICATED)
                .ok_or_else(|| Error::corrupt(&data_path, "no dedicated attribute table"))?,
        )
        .map_err(|e| Error::corrupt(&data_path, e))?;
        let leaves = Leaves::find(&data_path, reader_meta.metadata().file_metadata().schema_descr())?;
        check_page_index(reader_meta.metadata()).map_err(|e| Error::corrupt(&data_path, e))?;
        let groups =
            reader_meta.metadata().row_groups().iter().map(|g| TraceGroup::of(g, leaves.trace_id)).collect();
        let block = Block {
            dir: block_dir.to_owned(),
            data_path,
            source,
            meta,
            dedicated,
            leaves,
            groups,
            cache,
            key: FooterCache::new_key(),
            checksums,
            damage,
        };
        // Just read: a new block is usually queried soon (the newest
        // traces are the ones looked up most).
        block.keep_footer(Arc::new(footer));
        Ok(block)
    }

    /// The footer with its page index and tables: from the cache, or read
    /// again (through the checksums) and cached.
    pub(crate) fn footer(&self) -> Result<Arc<Footer>, Error> {
        if let Some(Cached::Footer(footer)) = self.cache.get((self.key, Part::Footer)) {
            return Ok(footer);
        }
        let footer = crate::contain(&self.data_path, || {
            let data = Data::open(&self.data_path, self.source.as_ref())
                .map_err(|e| Error::io(&self.data_path, e))?;
            let file =
                VerifiedFile::open(&self.data_path, data, self.checksums.clone(), Arc::clone(&self.damage))?;
            read_footer(&self.data_path, &file, &self.damage)
        })?;
        let footer = Arc::new(footer);
        self.keep_footer(Arc::clone(&footer));
        Ok(footer)
    }

    fn keep_footer(&self, footer: Arc<Footer>) {
        let bytes = footer.reader_meta.metadata().memory_size() + tables_size(&footer);
        self.cache.insert((self.key, Part::Footer), Cached::Footer(footer), bytes);
    }

    /// Whether the block has data checksums (blocks written before they
    /// existed do not, and are read unverified).
    pub fn is_checksummed(&self) -> bool {
        self.checksums.is_some()
    }

    /// The first damaged range any read of this block found, if any.
    pub fn damage(&self) -> Option<Mismatch> {
        self.damage.get().copied()
    }

    /// Checks every byte of the data file against its checksums (or, for a
    /// block without them, decodes every row): the damaged ranges, empty
    /// when the block is intact. Reads the whole file.
    pub fn verify(&self) -> Result<Vec<Mismatch>, Error> {
        match &self.checksums {
            Some(sums) => {
                let data = Data::open(&self.data_path, self.source.as_ref())
                    .map_err(|e| Error::io(&self.data_path, e))?;
                let damaged = VerifiedFile::scan(&self.data_path, &data, sums)?;
                if let Some(first) = damaged.first() {
                    let _ = self.damage.set(*first);
                }
                Ok(damaged)
            }
            None => {
                // A chunk of whole traces at a time: a big block must not
                // be held in memory to be checked.
                for chunk in self.spans()? {
                    chunk?;
                }
                Ok(Vec::new())
            }
        }
    }

    /// The block's `meta.json`.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Approximate heap bytes this open block holds (footer, page index,
    /// resource and scope tables), for a store's memory accounting.
    /// Only the cached parts this block has in its cache right now count:
    /// the sum over a store's blocks stays within the resident parts plus
    /// the cache's bound.
    pub fn memory_size(&self) -> usize {
        self.resident_size()
            + self.cache.bytes_of((self.key, Part::Footer)).unwrap_or(0)
            + self.cache.bytes_of((self.key, Part::Blooms)).unwrap_or(0)
    }

    fn resident_size(&self) -> usize {
        self.checksums.as_ref().map_or(0, |c| c.memory_size())
            + self.groups.iter().map(TraceGroup::bytes).sum::<usize>()
    }

    /// What the block's parts take, cached or not (the footer and bloom
    /// filters are read when not cached): what a store's memory would go
    /// to if nothing were evicted. Costly (copies the footer); for
    /// measurements, see `examples/block_memory.rs`.
    pub fn memory(&self) -> Result<BlockMemory, Error> {
        let footer = self.footer()?;
        let blooms = self.trace_blooms()?;
        let md = footer.reader_meta.metadata();
        let with_index = md.memory_size();
        let without_index = (**md).clone().into_builder().set_page_index(None).build().memory_size();
        Ok(BlockMemory {
            footer: without_index,
            page_index: with_index.saturating_sub(without_index),
            blooms: blooms_size(&blooms),
            checksums: self.checksums.as_ref().map_or(0, |c| c.memory_size()),
            tables: tables_size(&footer),
            resident: self.groups.iter().map(TraceGroup::bytes).sum(),
        })
    }

    /// A builder over a fresh file handle (or the block's source) whose
    /// every read is checked.
    pub(crate) fn builder(&self) -> Result<ParquetRecordBatchReaderBuilder<VerifiedFile>, Error> {
        let footer = self.footer()?;
        self.builder_from(&footer)
    }

    /// [`Block::builder`] over a footer the caller already holds.
    pub(crate) fn builder_from(
        &self,
        footer: &Footer,
    ) -> Result<ParquetRecordBatchReaderBuilder<VerifiedFile>, Error> {
        let data =
            Data::open(&self.data_path, self.source.as_ref()).map_err(|e| Error::io(&self.data_path, e))?;
        let file =
            VerifiedFile::open(&self.data_path, data, self.checksums.clone(), Arc::clone(&self.damage))?;
        Ok(ParquetRecordBatchReaderBuilder::new_with_metadata(file, footer.reader_meta.clone()))
    }

    /// [`Block::builder`] with other reader options over the same footer
    /// (compaction reads text as plain strings, see [`crate::copy`]).
    pub(crate) fn builder_with(
        &self,
        options: parquet::arrow::arrow_reader::ArrowReaderOptions,
    ) -> Result<ParquetRecordBatchReaderBuilder<VerifiedFile>, Error> {
        let footer = self.footer()?;
        let meta = ArrowReaderMetadata::try_new(Arc::clone(footer.reader_meta.metadata()), options)
            .map_err(|e| self.parquet_err(e))?;
        let data =
            Data::open(&self.data_path, self.source.as_ref()).map_err(|e| Error::io(&self.data_path, e))?;
        let file =
            VerifiedFile::open(&self.data_path, data, self.checksums.clone(), Arc::clone(&self.damage))?;
        Ok(ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta))
    }

    /// A decode error, reported as the checksum mismatch behind it when a
    /// read found one (Parquet hands read errors back as text).
    pub(crate) fn arrow_err(&self, source: ArrowError) -> Error {
        checksum_error(&self.data_path, &self.damage)
            .unwrap_or_else(|| Error::Arrow { path: self.data_path.clone(), source })
    }

    /// See [`Block::arrow_err`].
    pub(crate) fn parquet_err(&self, source: parquet::errors::ParquetError) -> Error {
        checksum_error(&self.data_path, &self.damage)
            .unwrap_or_else(|| Error::Parquet { path: self.data_path.clone(), source })
    }

    /// All spans of trace `id` in this block (empty if none), by start
    /// time.
    ///
    /// Prunes with row-group min/max of `trace_id` (rows are sorted by it),
    /// then the row group's bloom filter, then the page index, and decodes
    /// only the selected pages: first the `trace_id` column (a row filter),
    /// then every other column for the matching rows only.
    pub fn trace(&self, id: TraceId) -> Result<Vec<Span>, Error> {
        crate::contain(&self.data_path, || self.traces_inner(&[id]))
    }

    /// All spans of the traces `ids` in this block, in one pass: each row
    /// group and page is pruned for every id (min/max, bloom filter, page
    /// index) and the union of the surviving pages is decoded once. Spans
    /// come in storage order (by trace id, then start). A search that
    /// returns 20 traces reads each block once instead of 20 times.
    pub fn traces(&self, ids: &[TraceId]) -> Result<Vec<Span>, Error> {
        crate::contain(&self.data_path, || self.traces_inner(ids))
    }

    /// The `trace_id` bloom filters: from the cache, or read straight
    /// from where the resident row group summaries say they are (without
    /// the footer) and cached.
    pub(crate) fn trace_blooms(&self) -> Result<Blooms, Error> {
        if let Some(Cached::Blooms(blooms)) = self.cache.get((self.key, Part::Blooms)) {
            return Ok(blooms);
        }
        let blooms: Blooms = crate::contain(&self.data_path, || {
            let data = Data::open(&self.data_path, self.source.as_ref())
                .map_err(|e| Error::io(&self.data_path, e))?;
            let file =
                VerifiedFile::open(&self.data_path, data, self.checksums.clone(), Arc::clone(&self.damage))?;
            let mut through_footer = None;
            let mut out = Vec::with_capacity(self.groups.len());
            for (rg, group) in self.groups.iter().enumerate() {
                out.push(match group.bloom {
                    BloomAt::None => None,
                    BloomAt::At(offset, len) => match file.read_range(offset, len) {
                        Ok(bytes) => Some(Sbbf::from_bytes(&bytes).map_err(|e| self.parquet_err(e))?),
                        // A damaged filter reads as absent, as in `bloom_filter`.
                        Err(Error::Checksum { .. }) => None,
                        Err(e) => return Err(e),
                    },
                    BloomAt::Unsized => {
                        if through_footer.is_none() {
                            through_footer = Some(self.builder()?);
                        }
                        match &through_footer {
                            Some(builder) => self.bloom_filter(builder, rg, self.leaves.trace_id)?,
                            None => None,
                        }
                    }
                });
            }
            Ok(out.into())
        })?;
        // Two threads may race to fill it; both read the same filters.
        let bytes = blooms_size(&blooms);
        self.cache.insert((self.key, Part::Blooms), Cached::Blooms(Arc::clone(&blooms)), bytes);
        Ok(blooms)
    }

    /// Row group `rg`'s bloom filter of column `leaf`. A damaged filter
    /// reads as absent: a filter only prunes, so the query reads the pages
    /// instead (checked like every read) rather than failing on an index.
    pub(crate) fn bloom_filter(
        &self,
        builder: &ParquetRecordBatchReaderBuilder<VerifiedFile>,
        rg: usize,
        leaf: usize,
    ) -> Result<Option<Sbbf>, Error> {
        match builder.get_row_group_column_bloom_filter(rg, leaf) {
            Ok(bloom) => Ok(bloom),
            Err(parquet::errors::ParquetError::External(e))
                if matches!(e.downcast_ref::<Error>(), Some(Error::Checksum { .. })) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.parquet_err(e)),
        }
    }

    /// Row ranges (within row group `rg`) of the pages whose `trace_id`
    /// range may hold `key`; the whole group without a page index.
    pub(crate) fn trace_pages(
        &self,
        md: &parquet::file::metadata::ParquetMetaData,
        rg: usize,
        key: &[u8; 16],
        rows: usize,
    ) -> Vec<Range<usize>> {
        let index = md.page_index_for_row_group(rg);
        let (Some(ColumnIndexMetaData::FIXED_LEN_BYTE_ARRAY(ci)), Some(oi)) =
            (index.column_index(self.leaves.trace_id), index.offset_index(self.leaves.trace_id))
        else {
            return std::iter::once(0..rows).collect();
        };
        let locations = oi.page_locations();
        let mut out: Vec<Range<usize>> = Vec::new();
        for (p, loc) in locations.iter().enumerate() {
            let (Some(min), Some(max)) = (ci.min_value(p), ci.max_value(p)) else {
                continue;
            };
            if key.as_slice() < min || key.as_slice() > max {
                continue;
            }
            let start = usize::try_from(loc.first_row_index).unwrap_or(0).min(rows);
            let end = locations
                .get(p + 1)
                .map_or(rows, |next| usize::try_from(next.first_row_index).unwrap_or(rows))
                .min(rows);
            match out.last_mut() {
                Some(last) if last.end == start => last.end = end,
                _ => out.push(start..end),
            }
        }
        out
    }

    /// Every span in storage order (sorted by trace id, then start).
    pub fn read_all(&self) -> Result<Vec<Span>, Error> {
        let mut out = Vec::with_capacity(usize::try_from(self.meta.span_count).unwrap_or(0));
        for chunk in self.spans()? {
            out.extend(chunk?);
        }
        Ok(out)
    }

    /// Every span in storage order, in chunks of whole traces (a trace is
    /// never split across chunks). Memory stays around one batch.
    pub fn spans(&self) -> Result<SpanChunks<'_>, Error> {
        crate::contain(&self.data_path, || {
            // Small batches: compaction holds one decoded batch per input
            // block (up to 16) next to the writer's row group, and a decoded
            // realistic span is ~1.5 KiB: 512 rows are under 1 MiB per input.
            // (8192-row batches pushed the process past its memory limit.)
            let footer = self.footer()?;
            let reader =
                self.builder_from(&footer)?.with_batch_size(512).build().map_err(|e| self.parquet_err(e))?;
            Ok(SpanChunks::new(self, footer, reader))
        })
    }
}

/// Iterator over a block's spans in chunks of whole traces; see
/// [`Block::spans`].
pub struct SpanChunks<'a> {
    block: &'a Block,
    /// Held for the resource and scope tables while reading: the cache
    /// may evict it meanwhile.
    footer: Arc<Footer>,
    reader: ParquetRecordBatchReader,
    assembler: Assembler,
    done: bool,
}

impl std::fmt::Debug for SpanChunks<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanChunks").field("block", &self.block.dir).finish_non_exhaustive()
    }
}

impl<'a> SpanChunks<'a> {
    pub(crate) fn new(block: &'a Block, footer: Arc<Footer>, reader: ParquetRecordBatchReader) -> Self {
        SpanChunks { block, footer, reader, assembler: Assembler::default(), done: false }
    }
}

impl Iterator for SpanChunks<'_> {
    type Item = Result<Vec<Span>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let path = self.block.data_path.clone();
        let next = crate::contain(&path, || Ok(self.next_chunk()));
        next.unwrap_or_else(|e| {
            self.done = true;
            Some(Err(e))
        })
    }
}

impl SpanChunks<'_> {
    fn next_chunk(&mut self) -> Option<Result<Vec<Span>, Error>> {
        loop {
            match self.reader.next() {
                Some(Ok(batch)) => {
                    if let Err(e) = decode_batch(self.block, &self.footer, &batch, &mut self.assembler) {
                        self.done = true;
                        return Some(Err(e));
                    }
                    if !self.assembler.done.is_empty() {
                        return Some(Ok(std::mem::take(&mut self.assembler.done)));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(self.block.arrow_err(e)));
                }
                None => {
                    self.done = true;
                    if let Err(detail) = self.assembler.close_trace() {
                        return Some(Err(Error::corrupt(&self.block.data_path, detail)));
                    }
                    let rest = std::mem::take(&mut self.assembler.done);
                    return (!rest.is_empty()).then_some(Ok(rest));
                }
            }
        }
    }
}

/// The checksum error for a block's recorded damage, if any.
fn checksum_error(path: &Path, damage: &DamageSlot) -> Option<Error> {
    damage.get().map(|m| Error::Checksum { path: path.to_owned(), start: m.start, end: m.end })
}

/// Checks that the offset index agrees with the column chunks it
/// describes: the Parquet reader trusts it for arithmetic.
fn check_page_index(md: &parquet::file::metadata::ParquetMetaData) -> Result<(), String> {
    let Some(index) = md.page_index() else { return Ok(()) };
    for (rg, group) in md.row_groups().iter().enumerate() {
        let rows = group.num_rows();
        for (c, chunk) in group.columns().iter().enumerate() {
            let Some(oi) = index.offset_index(rg, c) else { continue };
            let (start, len) = chunk.byte_range();
            let end = start.saturating_add(len);
            let mut last_row = -1i64;
            for loc in oi.page_locations() {
                let offset = u64::try_from(loc.offset).map_err(|_| "negative page offset")?;
                let size = u64::try_from(loc.compressed_page_size).map_err(|_| "negative page size")?;
                if offset < start
                    || offset.saturating_add(size) > end
                    || loc.first_row_index <= last_row
                    || loc.first_row_index >= rows.max(1)
                {
                    return Err(format!(
                        "page index of row group {rg} column {c} disagrees with the column chunk"
                    ));
                }
                last_row = loc.first_row_index;
            }
            if oi.page_locations().first().is_some_and(|l| l.first_row_index != 0) {
                return Err(format!("page index of row group {rg} column {c} does not start at row 0"));
            }
        }
    }
    Ok(())
}

/// Collects the rows of one trace until it ends, then resolves parent
/// distances (a parent may come after its child when clocks are skewed).
#[derive(Default)]
struct Assembler {
    current: Vec<(Span, Option<i32>)>,
    done: Vec<Span>,
}

impl Assembler {
    fn push(&mut self, span: Span, distance: Option<i32>) -> Result<(), String> {
        if self.current.first().is_some_and(|(s, _)| s.trace_id != span.trace_id) {
            self.close_trace()?;
        }
        self.current.push((span, distance));
        Ok(())
    }

    fn close_trace(&mut self) -> Result<(), String> {
        let ids: Vec<SpanId> = self.current.iter().map(|(s, _)| s.span_id).collect();
        for (i, (mut span, distance)) in std::mem::take(&mut self.current).into_iter().enumerate() {
            if let Some(d) = distance {
                let parent =
                    i64::try_from(i).ok().map(|i| i - i64::from(d)).and_then(|p| usize::try_from(p).ok());
                let Some(id) = parent.and_then(|p| ids.get(p)) else {
                    return Err(format!("parent_distance {d} points outside trace {}", span.trace_id));
                };
                span.parent_span_id = Some(*id);
            }
            self.done.push(span);
        }
        Ok(())
    }
}

fn downcast<'a, T: 'static>(array: &'a dyn Array, what: &str) -> Result<&'a T, String> {
    array.as_any().downcast_ref::<T>().ok_or_else(|| format!("column {what} has type {}", array.data_type()))
}

pub(crate) fn column<T: 'static>(batch: &RecordBatch, col: Col) -> Result<&T, String> {
    let name = col.name();
    let array = batch.column_by_name(&name).ok_or_else(|| format!("batch lacks column {name}"))?;
    downcast(array.as_ref(), &name)
}

/// A dictionary-encoded string column.
pub(crate) struct DictStr<'a> {
    keys: &'a PrimitiveArray<Int32Type>,
    values: &'a StringArray,
}

impl<'a> DictStr<'a> {
    pub(crate) fn new(batch: &'a RecordBatch, col: Col) -> Result<DictStr<'a>, String> {
        let dict: &DictionaryArray<Int32Type> = column(batch, col)?;
        let values = downcast::<StringArray>(dict.values().as_ref(), &col.name())?;
        Ok(DictStr { keys: dict.keys(), values })
    }

    /// The dictionary key of row `i`.
    pub(crate) fn key(&self, i: usize) -> usize {
        usize::try_from(self.keys.value(i)).unwrap_or(usize::MAX)
    }

    /// The dictionary values.
    pub(crate) fn values(&self) -> &'a StringArray {
        self.values
    }

    /// The value of row `i`, `None` when null.
    pub(crate) fn get_opt(&self, i: usize) -> Result<Option<&'a str>, String> {
        if self.keys.is_null(i) {
            return Ok(None);
        }
        self.get(i).map(Some)
    }

    pub(crate) fn get(&self, i: usize) -> Result<&'a str, String> {
        let k = self.key(i);
        if k >= self.values.len() {
            return Err(format!("dictionary key {k} out of range"));
        }
        Ok(self.values.value(k))
    }
}

/// The fields of an attribute list column.
pub(crate) struct Attrs<'a> {
    list: &'a ListArray,
    pub(crate) key: &'a StringArray,
    pub(crate) ty: &'a UInt8Array,
    pub(crate) str: &'a StringArray,
    pub(crate) int: &'a Int64Array,
    pub(crate) double: &'a Float64Array,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(array: &'a dyn Array) -> Result<Attrs<'a>, String> {
        let list: &ListArray = downcast(array, "attributes")?;
        let values: &StructArray = downcast(list.values().as_ref(), "attributes.element")?;
        let field = |i: usize, name: &str| -> Result<&'a dyn Array, String> {
            let _ = name;
            values
                .columns()
                .get(i)
                .map(|a| a.as_ref())
                .ok_or_else(|| format!("attribute field {name} missing"))
        };
        Ok(Attrs {
            list,
            key: downcast(field(0, "key")?, "key")?,
            ty: downcast(field(1, "type")?, "type")?,
            str: downcast(field(2, "str")?, "str")?,
            int: downcast(field(3, "int")?, "int")?,
            double: downcast(field(4, "double")?, "double")?,
        })
    }

    /// Indexes into the value arrays of row `row`'s attributes.
    pub(crate) fn range(&self, row: usize) -> Range<usize> {
        let offsets = self.list.value_offsets();
        let start = offsets.get(row).and_then(|o| usize::try_from(*o).ok()).unwrap_or(0);
        let end = offsets.get(row + 1).and_then(|o| usize::try_from(*o).ok()).unwrap_or(start);
        start..end.max(start)
    }

    /// Decodes the value at index `j`.
    pub(crate) fn value(&self, j: usize) -> Result<Value, String> {
        let null = |what: &str| format!("attribute {:?}: {what} value missing", self.key.value(j));
        let ty = self.ty.value(j);
        Ok(match ty {
            tag::EMPTY => Value::Empty,
            tag::STR | tag::ARRAY | tag::MAP | tag::BYTES => {
                if self.str.is_null(j) {
                    return Err(null("str"));
                }
                let text = self.str.value(j);
                match ty {
                    tag::STR => Value::Str(text.into()),
                    tag::ARRAY => Value::Array(json::array_from_text(text)?),
                    tag::MAP => Value::Map(json::map_from_text(text)?),
                    _ => Value::Bytes(
                        base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .map_err(|e| format!("bytes value is not base64: {e}"))?,
                    ),
                }
            }
            tag::BOOL if self.int.is_valid(j) => Value::Bool(self.int.value(j) != 0),
            tag::INT if self.int.is_valid(j) => Value::Int(self.int.value(j)),
            tag::DOUBLE if self.double.is_valid(j) => Value::Double(self.double.value(j)),
            tag::BOOL | tag::INT | tag::DOUBLE => return Err(null("typed")),
            other => return Err(format!("unknown attribute value type {other}")),
        })
    }

    /// Decodes row `row`'s attribute list.
    pub(crate) fn list(&self, row: usize) -> Result<Vec<KeyValue>, String> {
        let range = self.range(row);
        if range.end > self.key.len() {
            return Err("attribute offsets out of range".to_owned());
        }
        range.map(|j| self.kv(j)).collect()
    }

    /// Decodes the attribute at index `j`.
    pub(crate) fn kv(&self, j: usize) -> Result<KeyValue, String> {
        Ok(KeyValue { key: self.key.value(j).into(), value: self.value(j)? })
    }
}

/// A span's attributes: the generic list, the dedicated columns, and the
/// layout that interleaves them.
pub(crate) struct SpanAttrs<'a> {
    pub(crate) layout: DictStr<'a>,
    pub(crate) strs: Vec<DictStr<'a>>,
    pub(crate) ints: Vec<&'a Int64Array>,
    pub(crate) generic: Attrs<'a>,
}

impl<'a> SpanAttrs<'a> {
    /// Needs `attribute_layout`, every dedicated column and `attributes`.
    pub(crate) fn new(batch: &'a RecordBatch) -> Result<SpanAttrs<'a>, String> {
        Ok(SpanAttrs {
            layout: DictStr::new(batch, Col::AttributeLayout)?,
            strs: (0..schema::STR_SLOTS as u8)
                .map(|n| DictStr::new(batch, Col::Str(n)))
                .collect::<Result<_, _>>()?,
            ints: (0..schema::INT_SLOTS as u8)
                .map(|n| column(batch, Col::Int(n)))
                .collect::<Result<_, _>>()?,
            generic: Attrs::new(
                batch.column_by_name(&Col::Attributes.name()).ok_or("batch lacks attributes")?.as_ref(),
            )?,
        })
    }

    /// Decodes row `row`'s attributes in their original order.
    fn list(&self, row: usize, dedicated: &Dedicated) -> Result<Vec<KeyValue>, String> {
        let layout = self.layout.get(row)?;
        if layout.is_empty() {
            return self.generic.list(row);
        }
        let generic = self.generic.range(row);
        if generic.end > self.generic.key.len() {
            return Err("attribute offsets out of range".to_owned());
        }
        let mut next = generic.start;
        let mut out = Vec::with_capacity(layout.len());
        for c in layout.bytes() {
            out.push(match c {
                layout::GENERIC => {
                    if next >= generic.end {
                        return Err(
                            "attribute_layout names more generic attributes than the list holds".to_owned()
                        );
                    }
                    next += 1;
                    self.generic.kv(next - 1)?
                }
                _ if (layout::STR0..layout::STR0 + schema::STR_SLOTS as u8).contains(&c) => {
                    let slot = usize::from(c - layout::STR0);
                    let key = dedicated
                        .str_keys
                        .get(slot)
                        .ok_or_else(|| format!("attr_str_{slot:02} has no key"))?;
                    let value = self.strs.get(slot).map(|col| col.get_opt(row)).transpose()?.flatten();
                    KeyValue {
                        key: key.0.as_str().into(),
                        value: Value::Str(value.ok_or_else(|| format!("attr_str_{slot:02} is null"))?.into()),
                    }
                }
                _ if (layout::INT0..layout::INT0 + schema::INT_SLOTS as u8).contains(&c) => {
                    let slot = usize::from(c - layout::INT0);
                    let key = dedicated
                        .int_keys
                        .get(slot)
                        .ok_or_else(|| format!("attr_int_{slot:02} has no key"))?;
                    let value = self.ints.get(slot).filter(|col| col.is_valid(row)).map(|col| col.value(row));
                    KeyValue {
                        key: key.0.as_str().into(),
                        value: Value::Int(value.ok_or_else(|| format!("attr_int_{slot:02} is null"))?),
                    }
                }
                other => return Err(format!("bad attribute_layout character {:?}", char::from(other))),
            });
        }
        if next != generic.end {
            return Err("attribute_layout leaves generic attributes unused".to_owned());
        }
        Ok(out)
    }
}

/// The events column.
pub(crate) struct Events<'a> {
    list: &'a ListArray,
    time_offset: &'a Int64Array,
    name: &'a StringArray,
    pub(crate) attributes: Attrs<'a>,
    dropped: &'a UInt32Array,
}

impl<'a> Events<'a> {
    pub(crate) fn new(batch: &'a RecordBatch) -> Result<Events<'a>, String> {
        let list: &ListArray = column(batch, Col::Events)?;
        let values: &StructArray = downcast(list.values().as_ref(), "events.element")?;
        let get = |i: usize| values.columns().get(i).map(|a| a.as_ref()).ok_or("event field missing");
        Ok(Events {
            list,
            time_offset: downcast(get(0)?, "events.time_offset_nanos")?,
            name: downcast(get(1)?, "events.name")?,
            attributes: Attrs::new(get(2)?)?,
            dropped: downcast(get(3)?, "events.dropped_attributes_count")?,
        })
    }

    pub(crate) fn range(&self, row: usize) -> Range<usize> {
        let offsets = self.list.value_offsets();
        let start = offsets.get(row).and_then(|o| usize::try_from(*o).ok()).unwrap_or(0);
        let end = offsets.get(row + 1).and_then(|o| usize::try_from(*o).ok()).unwrap_or(start);
        start..end.max(start)
    }

    fn list(&self, row: usize, span_start: u64) -> Result<Vec<Event>, String> {
        let range = self.range(row);
        if range.end > self.name.len() {
            return Err("event offsets out of range".to_owned());
        }
        range
            .map(|j| {
                Ok(Event {
                    time_unix_nano: span_start.wrapping_add(self.time_offset.value(j) as u64),
                    name: self.name.value(j).to_owned(),
                    attributes: self.attributes.list(j)?,
                    dropped_attributes_count: self.dropped.value(j),
                })
            })
            .collect()
    }
}

/// The links column.
struct Links<'a> {
    list: &'a ListArray,
    trace_id: &'a FixedSizeBinaryArray,
    span_id: &'a FixedSizeBinaryArray,
    trace_state: &'a StringArray,
    attributes: Attrs<'a>,
    dropped: &'a UInt32Array,
    flags: &'a UInt32Array,
}

impl<'a> Links<'a> {
    fn new(batch: &'a RecordBatch) -> Result<Links<'a>, String> {
        let list: &ListArray = column(batch, Col::Links)?;
        let values: &StructArray = downcast(list.values().as_ref(), "links.element")?;
        let get = |i: usize| values.columns().get(i).map(|a| a.as_ref()).ok_or("link field missing");
        Ok(Links {
            list,
            trace_id: downcast(get(0)?, "links.trace_id")?,
            span_id: downcast(get(1)?, "links.span_id")?,
            trace_state: downcast(get(2)?, "links.trace_state")?,
            attributes: Attrs::new(get(3)?)?,
            dropped: downcast(get(4)?, "links.dropped_attributes_count")?,
            flags: downcast(get(5)?, "links.flags")?,
        })
    }

    fn list(&self, row: usize) -> Result<Vec<Link>, String> {
        let offsets = self.list.value_offsets();
        let start = offsets.get(row).and_then(|o| usize::try_from(*o).ok()).unwrap_or(0);
        let end = offsets.get(row + 1).and_then(|o| usize::try_from(*o).ok()).unwrap_or(start);
        if end > self.trace_id.len() {
            return Err("link offsets out of range".to_owned());
        }
        (start..end)
            .map(|j| {
                Ok(Link {
                    trace_id: TraceId::from_slice(self.trace_id.value(j)).map_err(|e| format!("link {e}"))?,
                    span_id: SpanId::from_slice(self.span_id.value(j)).map_err(|e| format!("link {e}"))?,
                    trace_state: self.trace_state.value(j).to_owned(),
                    attributes: self.attributes.list(j)?,
                    dropped_attributes_count: self.dropped.value(j),
                    flags: self.flags.value(j),
                })
            })
            .collect()
    }
}

fn kind_from_u8(n: u8) -> Result<SpanKind, String> {
    let kind = SpanKind::from_i32(i32::from(n));
    if kind as u8 != n {
        return Err(format!("unknown span kind {n}"));
    }
    Ok(kind)
}

fn status_from_u8(n: u8) -> Result<StatusCode, String> {
    let code = StatusCode::from_i32(i32::from(n));
    if code as u8 != n {
        return Err(format!("unknown status code {n}"));
    }
    Ok(code)
}

/// Decodes every row of a full-width batch into the assembler.
impl Drop for Block {
    fn drop(&mut self) {
        self.cache.remove_block(self.key);
    }
}

/// Reads the Parquet footer with the page index, and the resource and
/// scope tables from its key-value metadata.
fn read_footer(data_path: &Path, file: &VerifiedFile, damage: &DamageSlot) -> Result<Footer, Error> {
    // The offset index (page locations) of every column lets a
    // selection read only its pages; page min/max is only useful on
    // the sorted trace_id column, so only that column index is loaded.
    // Statistics are kept only for the columns readers prune with;
    // the rest would cost memory in every cached footer.
    let pruned = [Col::TraceId, Col::StartTime, Col::DurationNanos, Col::Name].map(Col::root);
    let options = ArrowReaderOptions::new()
        .with_offset_index_policy(PageIndexPolicy::Optional)
        .with_column_index_policy(PageIndexPolicy::Optional)
        .with_column_index_mask(parquet::file::metadata::ColumnChunkMask::columns([Col::TraceId.root()]))
        .with_column_stats_policy(ParquetStatisticsPolicy::skip_except(&pruned))
        .with_encoding_stats_policy(ParquetStatisticsPolicy::SkipAll)
        .with_size_stats_policy(ParquetStatisticsPolicy::SkipAll);
    let reader_meta = ArrowReaderMetadata::load(file, options).map_err(|source| {
        checksum_error(data_path, damage).unwrap_or(Error::Parquet { path: data_path.to_owned(), source })
    })?;
    let kv = |key: &str| -> Option<String> {
        let file_meta = reader_meta.metadata().file_metadata();
        file_meta.key_value_metadata()?.iter().find(|kv| kv.key == key)?.value.clone()
    };
    let resources = json::resources_from_json(kv(schema::META_RESOURCES).as_deref().unwrap_or("[]"))
        .map_err(|e| Error::corrupt(data_path, e))?;
    let scopes = json::scopes_from_json(kv(schema::META_SCOPES).as_deref().unwrap_or("[]"))
        .map_err(|e| Error::corrupt(data_path, e))?;
    Ok(Footer { reader_meta, resources, scopes })
}

/// Estimated heap bytes of the resource and scope tables.
fn tables_size(footer: &Footer) -> usize {
    let kvs =
        |list: &[KeyValue]| list.iter().map(|kv| 64 + kv.key.len() + kv.value.to_text().len()).sum::<usize>();
    footer.resources.iter().map(|r| 128 + kvs(r.attributes())).sum::<usize>()
        + footer.scopes.iter().map(|s| 128 + kvs(&s.attributes)).sum::<usize>()
}

/// Heap bytes of bloom filters (32-byte blocks) and their slots.
fn blooms_size(blooms: &[Option<Sbbf>]) -> usize {
    blooms
        .iter()
        .map(|b| std::mem::size_of::<Option<Sbbf>>() + b.as_ref().map_or(0, |f| f.num_blocks() * 32))
        .sum()
}

fn decode_batch(
    block: &Block,
    footer: &Footer,
    batch: &RecordBatch,
    out: &mut Assembler,
) -> Result<(), Error> {
    decode_rows(block, footer, batch, out).map_err(|detail| Error::corrupt(&block.data_path, detail))
}

fn decode_rows(
    block: &Block,
    footer: &Footer,
    batch: &RecordBatch,
    out: &mut Assembler,
) -> Result<(), String> {
    let trace_id: &FixedSizeBinaryArray = column(batch, Col::TraceId)?;
    let span_id: &FixedSizeBinaryArray = column(batch, Col::SpanId)?;
    let parent_distance: &Int32Array = column(batch, Col::ParentDistance)?;
    let parent_span_id: &FixedSizeBinaryArray = column(batch, Col::ParentSpanId)?;
    let start = column::<PrimitiveArray<TimestampNanosecondType>>(batch, Col::StartTime)?;
    let duration = column::<PrimitiveArray<Int64Type>>(batch, Col::DurationNanos)?;
    let name = DictStr::new(batch, Col::Name)?;
    let kind = column::<PrimitiveArray<UInt8Type>>(batch, Col::Kind)?;
    let status_code = column::<PrimitiveArray<UInt8Type>>(batch, Col::StatusCode)?;
    let status_message = DictStr::new(batch, Col::StatusMessage)?;
    let trace_state = DictStr::new(batch, Col::TraceState)?;
    let flags = column::<PrimitiveArray<UInt32Type>>(batch, Col::Flags)?;
    let resource = column::<PrimitiveArray<UInt32Type>>(batch, Col::ResourceIndex)?;
    let scope = column::<PrimitiveArray<UInt32Type>>(batch, Col::ScopeIndex)?;
    let dropped_attributes = column::<PrimitiveArray<UInt32Type>>(batch, Col::DroppedAttributesCount)?;
    let dropped_events = column::<PrimitiveArray<UInt32Type>>(batch, Col::DroppedEventsCount)?;
    let dropped_links = column::<PrimitiveArray<UInt32Type>>(batch, Col::DroppedLinksCount)?;
    let attributes = SpanAttrs::new(batch)?;
    let events = Events::new(batch)?;
    let links = Links::new(batch)?;

    for i in 0..batch.num_rows() {
        let start_ns = start.value(i) as u64;
        let resource_index = usize::try_from(resource.value(i)).unwrap_or(usize::MAX);
        let scope_index = usize::try_from(scope.value(i)).unwrap_or(usize::MAX);
        let span = Span {
            trace_id: TraceId::from_slice(trace_id.value(i)).map_err(|e| e.to_string())?,
            span_id: SpanId::from_slice(span_id.value(i)).map_err(|e| e.to_string())?,
            parent_span_id: if parent_span_id.is_valid(i) {
                Some(SpanId::from_slice(parent_span_id.value(i)).map_err(|e| format!("parent {e}"))?)
            } else {
                None
            },
            trace_state: trace_state.get(i)?.to_owned(),
            flags: flags.value(i),
            name: name.get(i)?.to_owned(),
            kind: kind_from_u8(kind.value(i))?,
            start_time_unix_nano: start_ns,
            end_time_unix_nano: start_ns.wrapping_add(duration.value(i) as u64),
            attributes: attributes.list(i, &block.dedicated)?,
            dropped_attributes_count: dropped_attributes.value(i),
            events: events.list(i, start_ns)?,
            dropped_events_count: dropped_events.value(i),
            links: links.list(i)?,
            dropped_links_count: dropped_links.value(i),
            status: Status {
                code: status_from_u8(status_code.value(i))?,
                message: status_message.get(i)?.to_owned(),
            },
            resource: Arc::clone(
                footer
                    .resources
                    .get(resource_index)
                    .ok_or_else(|| format!("resource_index {resource_index} out of range"))?,
            ),
            scope: Arc::clone(
                footer
                    .scopes
                    .get(scope_index)
                    .ok_or_else(|| format!("scope_index {scope_index} out of range"))?,
            ),
        };
        let distance = parent_distance.is_valid(i).then(|| parent_distance.value(i));
        if distance.is_some() && span.parent_span_id.is_some() {
            return Err("row has both parent_distance and parent_span_id".to_owned());
        }
        out.push(span, distance)?;
    }
    Ok(())
}

// A `Block` is shared across query threads.
const _: fn() = || {
    fn check<T: Send + Sync>() {}
    check::<Block>();
};
