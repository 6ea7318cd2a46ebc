//! The `sl1` schema: column names, Arrow types, and the Parquet writer
//! settings that go with them. `docs/block-format.md` explains every column;
//! this file is the single place that defines them.

use std::sync::Arc;

use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::ColumnPath;

use crate::{Error, WriteOptions};

/// Parquet key-value metadata key holding [`crate::FORMAT_VERSION`].
pub(crate) const META_FORMAT: &str = "sightline.format";
/// Parquet key-value metadata key holding the resource table (JSON).
pub(crate) const META_RESOURCES: &str = "sightline.resources";
/// Parquet key-value metadata key holding the scope table (JSON).
pub(crate) const META_SCOPES: &str = "sightline.scopes";
/// Parquet key-value metadata key holding the dedicated attribute columns'
/// keys (JSON).
pub(crate) const META_DEDICATED: &str = "sightline.dedicated_attributes";

/// Name of the data file inside a block directory.
pub(crate) const DATA_FILE: &str = "data.parquet";
/// Name of the metadata file inside a block directory.
pub(crate) const META_FILE: &str = "meta.json";

/// Dedicated string attribute columns (`attr_str_00` …).
pub(crate) const STR_SLOTS: usize = 20;
/// Dedicated integer attribute columns (`attr_int_00` …).
pub(crate) const INT_SLOTS: usize = 8;

/// Rows per data page: a trace lookup decodes at most about this many rows
/// per column (see the docs for the size/latency trade-off).
pub(crate) const PAGE_ROWS: usize = 4096;

/// Top-level scalar columns, in schema order; their position is both
/// their root and their leaf index. The dedicated attribute columns follow
/// them, then the three list columns (see [`Col::root`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Col {
    TraceId,
    SpanId,
    ParentDistance,
    ParentSpanId,
    StartTime,
    DurationNanos,
    ServiceName,
    Name,
    Kind,
    StatusCode,
    StatusMessage,
    TraceState,
    Flags,
    ResourceIndex,
    ScopeIndex,
    DroppedAttributesCount,
    DroppedEventsCount,
    DroppedLinksCount,
    AttributeLayout,
    /// Dedicated string attribute column `n`.
    Str(u8),
    /// Dedicated integer attribute column `n`.
    Int(u8),
    Attributes,
    Events,
    Links,
}

/// The scalar columns before the dedicated ones.
const SCALARS: [Col; 19] = [
    Col::TraceId,
    Col::SpanId,
    Col::ParentDistance,
    Col::ParentSpanId,
    Col::StartTime,
    Col::DurationNanos,
    Col::ServiceName,
    Col::Name,
    Col::Kind,
    Col::StatusCode,
    Col::StatusMessage,
    Col::TraceState,
    Col::Flags,
    Col::ResourceIndex,
    Col::ScopeIndex,
    Col::DroppedAttributesCount,
    Col::DroppedEventsCount,
    Col::DroppedLinksCount,
    Col::AttributeLayout,
];

impl Col {
    /// Every column, in schema order.
    pub(crate) fn all() -> impl Iterator<Item = Col> {
        SCALARS
            .into_iter()
            .chain((0..STR_SLOTS as u8).map(Col::Str))
            .chain((0..INT_SLOTS as u8).map(Col::Int))
            .chain([Col::Attributes, Col::Events, Col::Links])
    }

    /// The column's name in the file.
    pub(crate) fn name(self) -> String {
        match self {
            Col::Str(n) => format!("attr_str_{n:02}"),
            Col::Int(n) => format!("attr_int_{n:02}"),
            other => other.static_name().to_owned(),
        }
    }

    fn static_name(self) -> &'static str {
        match self {
            Col::TraceId => "trace_id",
            Col::SpanId => "span_id",
            Col::ParentDistance => "parent_distance",
            Col::ParentSpanId => "parent_span_id",
            Col::StartTime => "start_time",
            Col::DurationNanos => "duration_nanos",
            Col::ServiceName => "service_name",
            Col::Name => "name",
            Col::Kind => "kind",
            Col::StatusCode => "status_code",
            Col::StatusMessage => "status_message",
            Col::TraceState => "trace_state",
            Col::Flags => "flags",
            Col::ResourceIndex => "resource_index",
            Col::ScopeIndex => "scope_index",
            Col::DroppedAttributesCount => "dropped_attributes_count",
            Col::DroppedEventsCount => "dropped_events_count",
            Col::DroppedLinksCount => "dropped_links_count",
            Col::AttributeLayout => "attribute_layout",
            Col::Attributes => "attributes",
            Col::Events => "events",
            Col::Links => "links",
            Col::Str(_) | Col::Int(_) => "",
        }
    }

    /// Root index, for [`parquet::arrow::ProjectionMask::roots`]. For the
    /// scalar and dedicated columns it is also the Parquet leaf index.
    pub(crate) fn root(self) -> usize {
        let scalars = SCALARS.len();
        match self {
            Col::Str(n) => scalars + n as usize,
            Col::Int(n) => scalars + STR_SLOTS + n as usize,
            Col::Attributes => scalars + STR_SLOTS + INT_SLOTS,
            Col::Events => scalars + STR_SLOTS + INT_SLOTS + 1,
            Col::Links => scalars + STR_SLOTS + INT_SLOTS + 2,
            // NOTE: every other variant is in SCALARS.
            other => SCALARS.iter().position(|c| *c == other).unwrap_or(usize::MAX),
        }
    }
}

/// Value type tags of the attribute `type` field.
pub(crate) mod tag {
    /// `Value::Empty`: no value field set.
    pub(crate) const EMPTY: u8 = 0;
    /// `Value::Str`: in `str`.
    pub(crate) const STR: u8 = 1;
    /// `Value::Bool`: in `int`, 0 or 1.
    pub(crate) const BOOL: u8 = 2;
    /// `Value::Int`: in `int`.
    pub(crate) const INT: u8 = 3;
    /// `Value::Double`: in `double`.
    pub(crate) const DOUBLE: u8 = 4;
    /// `Value::Bytes`: standard padded base64 in `str`.
    pub(crate) const BYTES: u8 = 5;
    /// `Value::Array`: OTLP/JSON `values` list in `str`.
    pub(crate) const ARRAY: u8 = 6;
    /// `Value::Map`: OTLP/JSON key-value list in `str`.
    pub(crate) const MAP: u8 = 7;
}

/// Characters of the `attribute_layout` column.
pub(crate) mod layout {
    /// The next entry of the `attributes` list.
    pub(crate) const GENERIC: u8 = b'.';
    /// `attr_str_NN` is `b'a' + NN`.
    pub(crate) const STR0: u8 = b'a';
    /// `attr_int_NN` is `b'A' + NN`.
    pub(crate) const INT0: u8 = b'A';
}

/// Name of the list element field; `element` is what the Parquet spec's
/// three-level LIST layout calls it, so other tools name it the same.
const ELEMENT: &str = "element";

/// Fields of one attribute struct.
pub(crate) fn attribute_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("type", DataType::UInt8, false),
        Field::new("str", DataType::Utf8, true),
        Field::new("int", DataType::Int64, true),
        Field::new("double", DataType::Float64, true),
    ])
}

/// The element field of an attribute list.
pub(crate) fn attribute_element() -> FieldRef {
    Arc::new(Field::new(ELEMENT, DataType::Struct(attribute_fields()), false))
}

fn attribute_list(name: &str) -> Field {
    Field::new(name, DataType::List(attribute_element()), false)
}

/// Fields of one event struct.
pub(crate) fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time_offset_nanos", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        attribute_list("attributes"),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

/// The element field of the event list.
pub(crate) fn event_element() -> FieldRef {
    Arc::new(Field::new(ELEMENT, DataType::Struct(event_fields()), false))
}

/// Fields of one link struct.
pub(crate) fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("trace_state", DataType::Utf8, false),
        attribute_list("attributes"),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
        Field::new("flags", DataType::UInt32, false),
    ])
}

/// The element field of the link list.
pub(crate) fn link_element() -> FieldRef {
    Arc::new(Field::new(ELEMENT, DataType::Struct(link_fields()), false))
}

/// Dictionary-encoded text, as the reader hands it back: comparisons run
/// once per distinct value instead of once per row.
pub(crate) fn dict_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn field(col: Col) -> Field {
    field_with_text(col, dict_utf8())
}

/// A column's field, with `text` as the type of the text columns that
/// [`arrow_schema`] dictionary-encodes.
fn field_with_text(col: Col, text: DataType) -> Field {
    let name = col.name();
    match col {
        Col::TraceId => Field::new(name, DataType::FixedSizeBinary(16), false),
        Col::SpanId => Field::new(name, DataType::FixedSizeBinary(8), false),
        Col::ParentDistance => Field::new(name, DataType::Int32, true),
        Col::ParentSpanId => Field::new(name, DataType::FixedSizeBinary(8), true),
        Col::StartTime => {
            Field::new(name, DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false)
        }
        Col::DurationNanos => Field::new(name, DataType::Int64, false),
        Col::ServiceName | Col::Name | Col::StatusMessage | Col::TraceState | Col::AttributeLayout => {
            Field::new(name, text, false)
        }
        Col::Kind | Col::StatusCode => Field::new(name, DataType::UInt8, false),
        Col::Flags
        | Col::ResourceIndex
        | Col::ScopeIndex
        | Col::DroppedAttributesCount
        | Col::DroppedEventsCount
        | Col::DroppedLinksCount => Field::new(name, DataType::UInt32, false),
        Col::Str(_) => Field::new(name, text, true),
        Col::Int(_) => Field::new(name, DataType::Int64, true),
        Col::Attributes => attribute_list(&name),
        Col::Events => Field::new(name, DataType::List(event_element()), false),
        Col::Links => Field::new(name, DataType::List(link_element()), false),
    }
}

/// The Arrow schema of a block, columns in [`Col::all`] order.
pub(crate) fn arrow_schema() -> SchemaRef {
    Arc::new(Schema::new(Col::all().map(field).collect::<Vec<_>>()))
}

/// The schema the writer builds its record batches in: [`arrow_schema`]
/// with plain text where that has dictionaries.
///
/// The Parquet writer dictionary-encodes text itself and interns every
/// value again whatever the Arrow type, so building Arrow dictionaries
/// first hashed and compared each value twice (the builders were ~6 % of
/// server CPU at 10k realistic spans/s; plain builders copy each value
/// instead, which measured about even on a busy machine, see
/// BENCHMARKS.md). Both types map to the same Parquet column, and the
/// writer embeds [`arrow_schema`] as the file's Arrow schema (see
/// `Writer::create`), so the files are the same and readers get
/// dictionaries back.
pub(crate) fn write_schema() -> SchemaRef {
    Arc::new(Schema::new(Col::all().map(|c| field_with_text(c, DataType::Utf8)).collect::<Vec<_>>()))
}

/// Parquet path of a leaf below list columns, e.g. `["events",
/// "attributes", "str"]` → `events.list.element.attributes.list.element.str`.
pub(crate) fn list_leaf(parts: &[&str]) -> ColumnPath {
    let mut path = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        path.push((*part).to_owned());
        // Every part but the last names a list: Parquet inserts the
        // repeated `list` group and its `element`.
        if i + 1 < parts.len() {
            path.push("list".to_owned());
            path.push(ELEMENT.to_owned());
        }
    }
    ColumnPath::new(path)
}

fn top(col: Col) -> ColumnPath {
    ColumnPath::new(vec![col.name()])
}

/// Generic attribute leaves that carry a bloom filter, in this order:
/// `key` (an absent key rules a row group out), then the values.
pub(crate) const BLOOM_ATTRIBUTE_LEAVES: [&str; 4] = ["key", "str", "int", "double"];

/// Writer settings for a block. Every choice is explained in
/// `docs/block-format.md`.
pub(crate) fn writer_properties(
    options: &WriteOptions,
    kv: Vec<parquet::file::metadata::KeyValue>,
) -> Result<WriterProperties, Error> {
    let level = ZstdLevel::try_new(options.zstd_level)
        .map_err(|source| Error::Parquet { path: std::path::PathBuf::from("<write options>"), source })?;
    let rows = options.row_group_spans.max(1);
    let mut b = WriterProperties::builder()
        // Version 1 data pages compress the repetition/definition levels
        // with the values; nested attribute lists have many levels.
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(rows))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_write_batch_size(1024)
        .set_dictionary_enabled(true)
        // Statistics only where readers prune with them (below): min/max
        // of every string column compared each value on write, for
        // numbers nothing reads.
        .set_statistics_enabled(EnabledStatistics::None)
        .set_key_value_metadata(Some(kv))
        .set_sorting_columns(Some(vec![
            SortingColumn { column_idx: Col::TraceId.root() as i32, descending: false, nulls_first: false },
            SortingColumn { column_idx: Col::StartTime.root() as i32, descending: false, nulls_first: false },
        ]));

    // Row-group min/max that trace-by-id and search prune with (see
    // `Block::open`, which keeps exactly these).
    for col in [Col::StartTime, Col::DurationNanos, Col::Name] {
        b = b.set_column_statistics_enabled(top(col), EnabledStatistics::Chunk);
    }
    // Random ids: neither a dictionary nor deltas can shrink them.
    for col in [Col::SpanId, Col::ParentSpanId] {
        b = b.set_column_dictionary_enabled(top(col), false).set_column_encoding(top(col), Encoding::PLAIN);
    }
    // trace_id repeats once per span of its trace, so a dictionary turns
    // each trace into one run of one index; page statistics plus the bloom
    // filter let a lookup touch one page of one row group.
    b = b
        .set_column_statistics_enabled(top(Col::TraceId), EnabledStatistics::Page)
        .set_column_bloom_filter_enabled(top(Col::TraceId), true)
        .set_column_bloom_filter_fpp(top(Col::TraceId), 0.01)
        .set_column_bloom_filter_max_ndv(top(Col::TraceId), rows as u64);
    // Nanosecond times: the high bytes repeat, the low bytes are noise.
    // Splitting the bytes of each value into separate streams lets zstd
    // squeeze the high ones; it beat both plain and delta encodings.
    for path in [top(Col::StartTime), top(Col::DurationNanos), list_leaf(&["events", "time_offset_nanos"])] {
        b = b
            .set_column_dictionary_enabled(path.clone(), false)
            .set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT);
    }
    // Dedicated attribute columns: a bloom filter each, for tag search.
    for col in (0..STR_SLOTS as u8).map(Col::Str).chain((0..INT_SLOTS as u8).map(Col::Int)) {
        b = b
            .set_column_bloom_filter_enabled(top(col), true)
            .set_column_bloom_filter_fpp(top(col), 0.05)
            .set_column_bloom_filter_max_ndv(top(col), rows as u64);
    }
    // Generic attributes of spans and events: bloom filters answer "is this
    // key / value anywhere in the row group" for tag search.
    for list in [&["attributes"][..], &["events", "attributes"][..]] {
        for leaf in BLOOM_ATTRIBUTE_LEAVES {
            let mut parts = list.to_vec();
            parts.push(leaf);
            let path = list_leaf(&parts);
            b = b
                .set_column_bloom_filter_enabled(path.clone(), true)
                .set_column_bloom_filter_fpp(path.clone(), 0.05)
                .set_column_bloom_filter_max_ndv(path, (rows as u64).saturating_mul(4));
        }
    }
    Ok(b.build())
}
