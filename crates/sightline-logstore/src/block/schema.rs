//! The log block schema: column order, Arrow types, writer settings, and
//! `meta.json`. One place, versioned by [`FORMAT_VERSION`].

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use arrow_array::cast::AsArray as _;

use super::{numbers, template};

/// Format version in `meta.json` and the Parquet key-value metadata
/// (`sightline.format`) of blocks written now; readers also read
/// [`FORMAT_V2`] and [`FORMAT_V1`] and refuse any other.
pub const FORMAT_VERSION: &str = "sl-logs3";

/// The second format: `body` and `rest` one column each. `sl-logs3` stores the body as a
/// template and its numbers and `rest` as its shape and integers (`template.rs`,
/// `numbers.rs`): 28 rather than 34 bytes a record on `loadgen logs-bench`.
pub const FORMAT_V2: &str = "sl-logs2";

/// The first format: a `fingerprint` column (8 random bytes a record,
/// 18 % of a block) after `time_unix_nano`. `sl-logs2` dropped it: the
/// fingerprint is recomputed from the few records a search keeps.
pub const FORMAT_V1: &str = "sl-logs1";

/// Which columns a block's file has, by its format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `sl-logs1`: [`Col::ALL`] with `fingerprint` (int64) at index 2.
    V1,
    /// `sl-logs2`: exactly [`Col::ALL`].
    V2,
    /// `sl-logs3`: [`Col::ALL`] with `body` stored as two columns,
    /// `body_template` (at `body`'s index) and `body_numbers` after it,
    /// and `rest` as `rest_shape` and `rest_numbers` likewise.
    V3,
}

impl Layout {
    /// The layout of `format`, `None` for a format this build cannot read.
    pub(crate) fn of(format: &str) -> Option<Layout> {
        match format {
            FORMAT_VERSION => Some(Layout::V3),
            FORMAT_V2 => Some(Layout::V2),
            FORMAT_V1 => Some(Layout::V1),
            _ => None,
        }
    }

    /// The format version naming this layout.
    pub(crate) fn format(self) -> &'static str {
        match self {
            Layout::V1 => FORMAT_V1,
            Layout::V2 => FORMAT_V2,
            Layout::V3 => FORMAT_VERSION,
        }
    }

    /// The Parquet root (and leaf) index of `c` in a file of this layout
    /// (for `body` and `rest` in `sl-logs3`: their template and shape;
    /// the numbers follow each).
    pub(crate) fn index(self, c: Col) -> usize {
        let i = c.index();
        match self {
            Layout::V1 if i >= V1_FINGERPRINT => i + 1,
            Layout::V3 => i + usize::from(i > Col::Body.index()) + usize::from(i > Col::Rest.index()),
            _ => i,
        }
    }

    /// The Arrow schema of a file of this layout.
    pub(crate) fn schema(self) -> SchemaRef {
        let mut fields = Col::ALL.map(Col::field).to_vec();
        match self {
            Layout::V1 => fields.insert(V1_FINGERPRINT, Field::new("fingerprint", DataType::Int64, false)),
            Layout::V2 => {}
            Layout::V3 => {
                // Rest first: splicing it leaves body's index as it is.
                fields.splice(
                    Col::Rest.index()..=Col::Rest.index(),
                    [
                        Field::new(REST_SHAPE, DataType::Binary, false),
                        Field::new(REST_NUMBERS, DataType::Utf8, true),
                    ],
                );
                fields.splice(
                    Col::Body.index()..=Col::Body.index(),
                    [
                        Field::new(BODY_TEMPLATE, DataType::Utf8, true),
                        Field::new(BODY_NUMBERS, DataType::Utf8, true),
                    ],
                );
            }
        }
        Arc::new(Schema::new(fields))
    }

    /// A batch read from a file of this layout (all its columns) as the
    /// columns of [`Col::ALL`] (`arrow_schema`): what merges and searches
    /// work on whatever the file's format.
    pub(crate) fn to_logical(self, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
        match self {
            Layout::V1 => {
                let columns: Vec<usize> = Col::ALL.iter().map(|c| self.index(*c)).collect();
                batch.project(&columns)
            }
            Layout::V2 => Ok(batch),
            Layout::V3 => {
                let arrow_err = |what: &str| ArrowError::SchemaError(format!("{what} column missing"));
                let mut columns = batch.columns().to_vec();
                // Rest first (the later columns): body's indices stay put.
                let (shape, numbers) = (self.index(Col::Rest), self.index(Col::Rest) + 1);
                let rest = numbers::join_column(
                    columns.get(shape).ok_or_else(|| arrow_err(REST_SHAPE))?,
                    columns.get(numbers).ok_or_else(|| arrow_err(REST_NUMBERS))?,
                )?;
                columns.splice(shape..=numbers, [rest]);
                let (template, numbers) = (self.index(Col::Body), self.index(Col::Body) + 1);
                let body = template::join_column(
                    columns.get(template).ok_or_else(|| arrow_err(BODY_TEMPLATE))?,
                    columns.get(numbers).ok_or_else(|| arrow_err(BODY_NUMBERS))?,
                )?;
                columns.splice(template..=numbers, [body]);
                RecordBatch::try_new(arrow_schema(), columns)
            }
        }
    }

    /// A batch of [`Col::ALL`] as this layout's file columns (`sl-logs2`
    /// and `sl-logs3`; `sl-logs1` batches are built by its test writer).
    pub(crate) fn to_file(self, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
        match self {
            Layout::V3 => {
                let mut columns = batch.columns().to_vec();
                let (shape, numbers) =
                    numbers::split_column(batch.column(Col::Rest.index()).as_binary::<i32>());
                columns.splice(Col::Rest.index()..=Col::Rest.index(), [shape, numbers]);
                let (template, numbers) =
                    template::split_column(batch.column(Col::Body.index()).as_string::<i32>());
                columns.splice(Col::Body.index()..=Col::Body.index(), [template, numbers]);
                RecordBatch::try_new(self.schema(), columns)
            }
            Layout::V1 | Layout::V2 => Ok(batch.clone()),
        }
    }
}

/// `sl-logs3`'s body columns (see `template.rs`).
pub(crate) const BODY_TEMPLATE: &str = "body_template";
/// See [`BODY_TEMPLATE`].
pub(crate) const BODY_NUMBERS: &str = "body_numbers";
/// `sl-logs3`'s rest columns (see `numbers.rs`).
pub(crate) const REST_SHAPE: &str = "rest_shape";
/// See [`REST_SHAPE`].
pub(crate) const REST_NUMBERS: &str = "rest_numbers";

/// Where `sl-logs1` had its `fingerprint` column.
const V1_FINGERPRINT: usize = 2;

/// Parquet key-value metadata key holding [`FORMAT_VERSION`].
pub(crate) const META_FORMAT: &str = "sightline.format";

/// Columns, in file order (the index is the Parquet leaf and root index:
/// the schema is flat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Service = 0,
    Time = 1,
    Observed = 2,
    SeverityNumber = 3,
    SeverityText = 4,
    TraceId = 5,
    SpanId = 6,
    Body = 7,
    Rest = 8,
    Origin = 9,
}

impl Col {
    pub(crate) const ALL: [Col; 10] = [
        Col::Service,
        Col::Time,
        Col::Observed,
        Col::SeverityNumber,
        Col::SeverityText,
        Col::TraceId,
        Col::SpanId,
        Col::Body,
        Col::Rest,
        Col::Origin,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Col::Service => "service",
            Col::Time => "time_unix_nano",
            Col::Observed => "observed_delta_nanos",
            Col::SeverityNumber => "severity_number",
            Col::SeverityText => "severity_text",
            Col::TraceId => "trace_id",
            Col::SpanId => "span_id",
            Col::Body => "body",
            Col::Rest => "rest",
            Col::Origin => "origin",
        }
    }

    fn field(self) -> Field {
        let (ty, nullable) = match self {
            Col::Service | Col::SeverityText => (DataType::Utf8, false),
            Col::Time | Col::Observed => (DataType::Int64, false),
            Col::SeverityNumber => (DataType::Int32, false),
            Col::TraceId => (DataType::FixedSizeBinary(16), true),
            Col::SpanId => (DataType::FixedSizeBinary(8), true),
            Col::Body => (DataType::Utf8, true),
            Col::Rest | Col::Origin => (DataType::Binary, false),
        };
        Field::new(self.name(), ty, nullable)
    }
}

/// The Arrow schema of the records in memory (merges, searches): one
/// `body` column, whatever the file stores.
pub(crate) fn arrow_schema() -> SchemaRef {
    Layout::V2.schema()
}

/// Writer settings: zstd (on body and rest level 9 when `strong`, else
/// [`FAST_ZSTD`]; 3 elsewhere),
/// dictionaries where values repeat (service, severity text, origin),
/// row-group min/max only on the columns searches prune with, and a bloom
/// filter on `trace_id`. Encodings are the writer's choice, not part of
/// the format: any Parquet reader reads them, so changing them needs no
/// new format version.
pub(crate) fn writer_properties(
    row_group_rows: usize,
    kv: Vec<parquet::file::metadata::KeyValue>,
    strong: bool,
) -> WriterProperties {
    let col = |c: Col| ColumnPath::from(c.name());
    let level = ZstdLevel::try_new(3).unwrap_or_default();
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_dictionary_enabled(true)
        // Small pages, so a filtered read (see `LogBlock::row_filter`)
        // skips most of the wide columns' bytes.
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_key_value_metadata(Some(kv))
        .set_sorting_columns(Some(vec![
            SortingColumn { column_idx: Col::Service as i32, descending: false, nulls_first: false },
            SortingColumn { column_idx: Col::Time as i32, descending: false, nulls_first: false },
        ]));
    for c in [Col::Service, Col::Time, Col::SeverityNumber] {
        b = b.set_column_statistics_enabled(col(c), EnabledStatistics::Chunk);
    }
    // Sorted times within a service: deltas are small.
    b = b
        .set_column_dictionary_enabled(col(Col::Time), false)
        .set_column_encoding(col(Col::Time), Encoding::DELTA_BINARY_PACKED);
    // Ids: a trace's records of one service are adjacent (rows are sorted
    // by service and time), and so are a span's, so most values repeat
    // the one before: DELTA_BYTE_ARRAY stores such a repeat as a prefix
    // length. Measured on `loadgen logs-bench` (200 k records, every record
    // its own span there): trace_id 7.5 B a record with a dictionary, 6.1
    // B; span_id 8.0 B plain, 8.15 B (what unique ids cost; records that
    // share their span's id cost a fraction).
    for c in [Col::TraceId, Col::SpanId] {
        b = b
            .set_column_dictionary_enabled(col(c), false)
            .set_column_encoding(col(c), Encoding::DELTA_BYTE_ARRAY);
    }
    // The wide text columns are most of a block's bytes: lengths apart
    // from the bytes (so zstd sees the text runs uninterrupted) and a
    // stronger zstd level. Measured on `loadgen logs-bench` (200 k
    // records): body 12.6 → 11.1 B and rest 8.1 → 5.7 B per record; level
    // 12 saved only 0.1 B more. Bodies rarely repeat whole, so no
    // dictionary (it was tried and abandoned by the writer anyway).
    //
    // Level 9 costs several times level 3's CPU on these columns, so
    // only the merges that write a block no merge rewrites use it; a flush
    // from a head, which must keep up with ingest, and intermediate merges
    // write level 3 (`FAST_ZSTD`).
    let level = if strong { 9 } else { FAST_ZSTD };
    let wide = Compression::ZSTD(ZstdLevel::try_new(level).unwrap_or_default());
    for c in [Col::Body.name(), Col::Rest.name(), BODY_NUMBERS, REST_NUMBERS] {
        let c = ColumnPath::from(c);
        b = b
            .set_column_dictionary_enabled(c.clone(), false)
            .set_column_encoding(c.clone(), Encoding::DELTA_LENGTH_BYTE_ARRAY)
            .set_column_compression(c, wide);
    }
    // Body templates and rest shapes (`sl-logs3`) are few values
    // repeated: the dictionary stores each once per row group and a
    // record costs its index (dictionaries are the writer's default).
    b = b.set_column_compression(ColumnPath::from(REST_SHAPE), wide);
    b.set_column_bloom_filter_enabled(col(Col::TraceId), true)
        .set_column_bloom_filter_fpp(col(Col::TraceId), 0.01)
        .build()
}

/// The zstd level of body and rest in blocks flushed from a head.
const FAST_ZSTD: i32 = 3;

/// Rows per data page.
const PAGE_ROWS: usize = 1024;

/// `meta.json`: what the store needs to know about a block without
/// opening its data (pruning, retention, service listings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogBlockMeta {
    /// Block id (its folder name).
    pub id: String,
    /// [`FORMAT_VERSION`], or [`FORMAT_V1`] for an older block.
    pub format: String,
    /// Number of records (rows).
    pub record_count: u64,
    /// Earliest record time (ns since the Unix epoch).
    pub min_time_unix_nanos: u64,
    /// Latest record time.
    pub max_time_unix_nanos: u64,
    /// Services with records in the block, sorted.
    pub services: Vec<String>,
    /// Size of `data.parquet` in bytes.
    pub size_bytes: u64,
    /// 0 for a block flushed from a head; a merge's is one above its
    /// highest input's.
    #[serde(default)]
    pub compaction_level: u32,
    /// CRC32C of `words.bloom`, the body word index; `None`: no index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words_crc32c: Option<u32>,
}
