//! `meta.json`: what a store needs to know about a block without opening
//! its data file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::integrity::{self, Checksums};
use crate::row::Row;
use crate::{Error, FORMAT_VERSION};

/// A block's summary, stored as `meta.json` next to the data file.
///
/// It answers `/api/services`, `/api/operations` and `/api/dependencies`
/// and lets a query skip blocks by time range without touching Parquet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Caller-chosen id, also the block's directory name.
    pub id: String,
    /// Format version, [`FORMAT_VERSION`] for blocks this build writes.
    pub format: String,
    /// Number of spans (rows).
    pub span_count: u64,
    /// Number of distinct trace ids.
    pub trace_count: u64,
    /// Earliest span start, ns since the Unix epoch (0 for an empty block).
    pub min_start_unix_nanos: u64,
    /// Latest span start, ns since the Unix epoch.
    pub max_start_unix_nanos: u64,
    /// Latest span end, ns since the Unix epoch.
    pub max_end_unix_nanos: u64,
    /// Size of `data.parquet` in bytes.
    pub size_bytes: u64,
    /// 0 for a block cut from the head, `max(inputs) + 1` after compaction.
    pub compaction_level: u32,
    /// Distinct `(service, span name, SpanKind as u8)`, sorted.
    pub operations: Vec<(String, String, u8)>,
    /// `(parent service, child service, calls)` for parent→child span pairs
    /// that cross services and were both found in this block, sorted.
    pub dependencies: Vec<(String, String, u64)>,
}

/// The keys of a `meta.json` this build writes (besides `checksums`).
const FIELDS: [&str; 11] = [
    "id",
    "format",
    "span_count",
    "trace_count",
    "min_start_unix_nanos",
    "max_start_unix_nanos",
    "max_end_unix_nanos",
    "size_bytes",
    "compaction_level",
    "operations",
    "dependencies",
];

impl BlockMeta {
    /// Reads and validates `meta.json`: its own checksum (blocks written
    /// before checksums have none), its format version, and its keys.
    /// Returns the data file's checksums with it.
    pub(crate) fn read(path: &Path) -> Result<(BlockMeta, Option<Checksums>), Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        BlockMeta::parse(&bytes, path)
    }

    /// Parses and validates the bytes of a `meta.json` read from `path`
    /// (named in errors; a block may be kept elsewhere than a local
    /// folder), its checksum included.
    pub fn from_json(bytes: &[u8], path: &Path) -> Result<BlockMeta, Error> {
        BlockMeta::parse(bytes, path).map(|(meta, _)| meta)
    }

    /// [`BlockMeta::from_json`] with the data file's checksums.
    pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<(BlockMeta, Option<Checksums>), Error> {
        let mut raw: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt(path, format!("meta.json is not JSON: {e}")))?;
        // The checksum first: a damaged file must not be mistaken for a
        // newer format or read as if it were intact.
        let checksums = integrity::decode_meta(&mut raw).map_err(|e| Error::corrupt(path, e))?;
        // Check the version before the shape: a newer format may have
        // different fields, and must be reported as such.
        let format = raw.get("format").and_then(serde_json::Value::as_str);
        match format {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(Error::UnknownFormat { path: path.to_owned(), found: found.to_owned() });
            }
            None => return Err(Error::corrupt(path, "meta.json has no \"format\"")),
        }
        // A key outside the known set is damage (a flipped letter in a key
        // name would otherwise drop that field silently).
        if let Some(key) = raw.as_object().and_then(|o| o.keys().find(|k| !FIELDS.contains(&k.as_str()))) {
            return Err(Error::corrupt(path, format!("meta.json has an unknown key {key:?}")));
        }
        let meta =
            serde_json::from_value(raw).map_err(|e| Error::corrupt(path, format!("meta.json: {e}")))?;
        Ok((meta, checksums))
    }

    /// `meta.json`'s text for this block with its data checksums.
    pub(crate) fn encode(&self, checksums: &Checksums) -> Result<Vec<u8>, String> {
        let fields = serde_json::to_value(self).map_err(|e| e.to_string())?;
        integrity::encode_meta(fields, checksums)
    }
}

/// What [`MetaBuilder`] reads of a span: every [`Row`], and the rows a
/// merge copies without decoding them (see [`crate::copy`]).
pub(crate) trait MetaRow {
    fn meta_start(&self) -> u64;
    fn meta_end(&self) -> u64;
    fn meta_service(&self) -> &str;
    fn meta_name(&self) -> &str;
    fn meta_kind(&self) -> u8;
}

impl<R: Row> MetaRow for R {
    fn meta_start(&self) -> u64 {
        self.start()
    }
    fn meta_end(&self) -> u64 {
        self.end()
    }
    fn meta_service(&self) -> &str {
        self.service()
    }
    fn meta_name(&self) -> &str {
        self.name()
    }
    fn meta_kind(&self) -> u8 {
        self.kind() as u8
    }
}

/// Accumulates a [`BlockMeta`] while spans are written, one trace at a
/// time.
#[derive(Debug, Default)]
pub(crate) struct MetaBuilder {
    span_count: u64,
    trace_count: u64,
    min_start: Option<u64>,
    max_start: u64,
    max_end: u64,
    /// service → span name → kinds; nested so lookups borrow.
    operations: BTreeMap<String, BTreeMap<String, BTreeSet<u8>>>,
    /// The last operation recorded: consecutive spans repeat it often, and
    /// then no map is searched (string comparisons in the maps showed in
    /// flush profiles).
    last_operation: Option<(String, String, u8)>,
    dependencies: BTreeMap<(String, String), u64>,
}

impl MetaBuilder {
    /// Adds one trace's spans; `parents[i]` is the index in `spans` of
    /// span i's parent, if it is in the block.
    pub(crate) fn add_trace<R: MetaRow>(&mut self, spans: &[R], parents: &[Option<usize>]) {
        self.trace_count += 1;
        for (span, parent) in spans.iter().zip(parents) {
            self.span_count += 1;
            let start = span.meta_start();
            self.min_start = Some(self.min_start.map_or(start, |m| m.min(start)));
            self.max_start = self.max_start.max(start);
            self.max_end = self.max_end.max(span.meta_end());
            let service = span.meta_service();
            let kind = span.meta_kind();
            if let Some((s, n, k)) = &self.last_operation
                && *k == kind
                && s == service
                && n == span.meta_name()
            {
                self.note_dependency(spans, *parent, service);
                continue;
            }
            self.last_operation = Some((service.to_owned(), span.meta_name().to_owned(), kind));
            // Lookups borrow, so a known operation costs no allocation.
            let names = match self.operations.get_mut(service) {
                Some(names) => names,
                None => self.operations.entry(service.to_owned()).or_default(),
            };
            let kinds = match names.get_mut(span.meta_name()) {
                Some(kinds) => kinds,
                None => names.entry(span.meta_name().to_owned()).or_default(),
            };
            kinds.insert(kind);
            self.note_dependency(spans, *parent, service);
        }
    }

    /// Counts a call from the parent's service to `service` if they differ.
    fn note_dependency<R: MetaRow>(&mut self, spans: &[R], parent: Option<usize>, service: &str) {
        if let Some(parent) = parent.and_then(|p| spans.get(p)) {
            let parent_service = parent.meta_service();
            if parent_service != service {
                *self.dependencies.entry((parent_service.to_owned(), service.to_owned())).or_default() += 1;
            }
        }
    }

    pub(crate) fn finish(self, id: &str, size_bytes: u64, compaction_level: u32) -> BlockMeta {
        BlockMeta {
            id: id.to_owned(),
            format: FORMAT_VERSION.to_owned(),
            span_count: self.span_count,
            trace_count: self.trace_count,
            min_start_unix_nanos: self.min_start.unwrap_or(0),
            max_start_unix_nanos: self.max_start,
            max_end_unix_nanos: self.max_end,
            size_bytes,
            compaction_level,
            operations: self
                .operations
                .into_iter()
                .flat_map(|(service, names)| {
                    names.into_iter().flat_map(move |(name, kinds)| {
                        let service = service.clone();
                        kinds.into_iter().map(move |kind| (service.clone(), name.clone(), kind))
                    })
                })
                .collect(),
            dependencies: self.dependencies.into_iter().map(|((p, c), n)| (p, c, n)).collect(),
        }
    }
}
