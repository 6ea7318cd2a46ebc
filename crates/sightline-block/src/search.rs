//! [`Block::search`]: find trace ids with a span matching a
//! [`TraceQuery`], reading as little as possible.
//!
//! The plan, cheapest first:
//! 1. **Block**: time range, services and operations from `meta.json`.
//! 2. **Tables**: `service` and resource-attribute tags are evaluated once
//!    per entry of the resource table, scope tags once per scope.
//! 3. **Row groups**: min/max statistics of `start_time`, `duration_nanos`
//!    and `name`; for each tag, bloom filters of the dedicated column for
//!    its key and of the generic attribute keys and values decide where the
//!    tag could match at all; a row group where it cannot is skipped.
//! 4. **Phase 1** reads the scalar columns, the dedicated columns of the
//!    searched keys and the columns behind synthetic tags, evaluates
//!    everything it can, and keeps candidate rows. `start_time` is left
//!    to phase 2 when the row group's statistics show every start inside
//!    the window and some other column decides: it is the costliest
//!    column to decode (8 bytes a row, byte-stream-split), and a search
//!    whose conditions match few rows then never decodes it for the rest.
//! 5. **Phase 2** reads `trace_id` (and `start_time` when phase 1 left it)
//!    and, only if some candidate still has an unresolved tag, the generic
//!    attribute lists, for candidate rows only (a [`RowSelection`] skips
//!    every other page).
//!
//! Matching follows [`sightline_model::span_matches`] and
//! [`sightline_model::tag_lookup`] exactly; the tests check this against a
//! brute-force scan.

use std::collections::HashMap;
use std::ops::Range;

use arrow_array::types::{Int64Type, TimestampNanosecondType, UInt8Type, UInt32Type};
use arrow_array::{Array, FixedSizeBinaryArray, Int64Array, PrimitiveArray, RecordBatch};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReaderBuilder, RowSelection};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;
use sightline_model::{KeyValue, SpanKind, StatusCode, TagFilter, TraceId, TraceQuery};

use crate::cache::Footer;
use crate::read::{Attrs, DictStr, Events, column};
use crate::schema::{Col, tag};
use crate::{Block, Error};

/// What a synthetic tag key checks (see `sightline_model::tag_lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Synthetic {
    /// Not a synthetic key, or one whose value can never match.
    None,
    /// `error=true`: error spans.
    Error,
    /// `span.kind`: spans of this kind.
    Kind(u8),
    /// `otel.status_code`: spans with this status code.
    StatusCode(u8),
    /// `otel.status_description`: spans with this (non-empty) message.
    StatusDescription,
    /// `otel.scope.name` / `otel.scope.version`: via the scope table.
    Scope,
}

const ALL_KINDS: [SpanKind; 6] = [
    SpanKind::Unspecified,
    SpanKind::Internal,
    SpanKind::Server,
    SpanKind::Client,
    SpanKind::Producer,
    SpanKind::Consumer,
];

/// A tag condition compiled against this block.
struct TagPlan<'q> {
    filter: &'q TagFilter,
    /// The value as an integer, the way `Value::text_eq` parses it.
    int: Option<i64>,
    synthetic: Synthetic,
    /// Per resource-table entry: do its attributes satisfy the tag?
    resource_hit: Vec<bool>,
    /// Per scope-table entry: does the synthetic scope key match?
    scope_hit: Vec<bool>,
    /// Dedicated columns of the key.
    str_slot: Option<u8>,
    int_slot: Option<u8>,
}

impl<'q> TagPlan<'q> {
    fn new(block: &Block, footer: &Footer, filter: &'q TagFilter) -> TagPlan<'q> {
        let value = filter.value.as_str();
        let scope_hit: Vec<bool> = match filter.key.as_str() {
            "otel.scope.name" => footer.scopes.iter().map(|s| s.name == value).collect(),
            "otel.scope.version" => footer.scopes.iter().map(|s| s.version == value).collect(),
            _ => Vec::new(),
        };
        let synthetic = match filter.key.as_str() {
            "error" if value == "true" => Synthetic::Error,
            "span.kind" => ALL_KINDS
                .iter()
                .find(|k| k.jaeger_name() == value)
                .map_or(Synthetic::None, |k| Synthetic::Kind(*k as u8)),
            "otel.status_code" => [StatusCode::Ok, StatusCode::Error]
                .iter()
                .find(|c| c.otel_name() == Some(value))
                .map_or(Synthetic::None, |c| Synthetic::StatusCode(*c as u8)),
            "otel.status_description" if !value.is_empty() => Synthetic::StatusDescription,
            "otel.scope.name" | "otel.scope.version" if scope_hit.contains(&true) => Synthetic::Scope,
            _ => Synthetic::None,
        };
        let hit = |kvs: &[KeyValue]| kvs.iter().any(|kv| kv.key == filter.key && kv.value.text_eq(value));
        let int = value.parse::<i64>().ok().filter(|_| !value.starts_with('+'));
        TagPlan {
            filter,
            int,
            synthetic,
            resource_hit: footer.resources.iter().map(|r| hit(r.attributes())).collect(),
            scope_hit,
            str_slot: block.dedicated.str_slot(&filter.key),
            // An integer column can only match a value that parses as one.
            int_slot: block.dedicated.int_slot(&filter.key).filter(|_| int.is_some()),
        }
    }

    fn any_resource(&self) -> bool {
        self.resource_hit.contains(&true)
    }

    /// `Value::text_eq` on a stored generic attribute, without decoding
    /// strings, booleans or integers.
    fn value_matches(&self, attrs: &Attrs<'_>, j: usize) -> Result<bool, String> {
        let text = self.filter.value.as_str();
        Ok(match attrs.ty.value(j) {
            // Bytes are stored as their base64 text, which is their text.
            tag::STR | tag::BYTES => attrs.str.is_valid(j) && attrs.str.value(j) == text,
            tag::BOOL => {
                attrs.int.is_valid(j) && text == if attrs.int.value(j) != 0 { "true" } else { "false" }
            }
            tag::INT => attrs.int.is_valid(j) && self.int == Some(attrs.int.value(j)),
            tag::EMPTY => text.is_empty(),
            _ => attrs.value(j)?.text_eq(text),
        })
    }

    fn attrs_match(&self, attrs: &Attrs<'_>, range: Range<usize>) -> Result<bool, String> {
        for j in range {
            if attrs.key.value(j) == self.filter.key && self.value_matches(attrs, j)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Where a tag may match inside one row group.
#[derive(Debug, Clone, Copy, Default)]
struct TagSources {
    str_slot: bool,
    int_slot: bool,
    generic: bool,
    events: bool,
}

/// The non-tag part of the query.
struct Scalars {
    start_min: u64,
    start_max: u64,
    min_duration: Option<u64>,
    max_duration: Option<u64>,
}

impl Scalars {
    fn has_duration(&self) -> bool {
        self.min_duration.is_some() || self.max_duration.is_some()
    }

    fn matches(&self, start: u64, stored_duration: i64) -> bool {
        if start < self.start_min || start > self.start_max {
            return false;
        }
        // The same arithmetic as `Span::duration_nanos` on the decoded end
        // time.
        !self.has_duration()
            || self.duration_fits(start.wrapping_add(stored_duration as u64).saturating_sub(start))
    }

    fn duration_fits(&self, duration: u64) -> bool {
        !(self.min_duration.is_some_and(|m| duration < m) || self.max_duration.is_some_and(|m| duration > m))
    }
}

/// Rows of one row group that passed phase 1.
#[derive(Default)]
struct Candidates {
    rows: Vec<usize>,
    /// Start of each candidate; empty when phase 2 reads them.
    starts: Vec<u64>,
    /// `tags.len()` flags per candidate: tag still unresolved.
    unresolved: Vec<bool>,
}

impl Block {
    /// Trace ids with at least one span matching the whole query, each with
    /// the start of its latest matching span; at most `query.limit`, most
    /// recent first (ties by trace id).
    pub fn search(&self, query: &TraceQuery) -> Result<Vec<(TraceId, u64)>, Error> {
        crate::contain(&self.data_path, || self.search_inner(query))
    }

    fn search_inner(&self, query: &TraceQuery) -> Result<Vec<(TraceId, u64)>, Error> {
        if query.limit == 0 || self.meta().span_count == 0 {
            return Ok(Vec::new());
        }
        let scalars = Scalars {
            start_min: query.start_min_unix_nanos.unwrap_or(0),
            start_max: query.start_max_unix_nanos.unwrap_or(u64::MAX),
            min_duration: query.min_duration_nanos,
            max_duration: query.max_duration_nanos,
        };
        // 1. Block.
        let meta = self.meta();
        if scalars.start_max < meta.min_start_unix_nanos || scalars.start_min > meta.max_start_unix_nanos {
            return Ok(Vec::new());
        }
        let operation_known = meta.operations.iter().any(|(service, name, _)| {
            query.service.as_ref().is_none_or(|s| s == service)
                && query.operation.as_ref().is_none_or(|o| o == name)
        });
        if !operation_known {
            return Ok(Vec::new());
        }
        // 2. Tables.
        let footer = self.footer()?;
        let service_ok: Vec<bool> = footer
            .resources
            .iter()
            .map(|r| query.service.as_ref().is_none_or(|s| s == r.service_name()))
            .collect();
        let tags: Vec<TagPlan<'_>> = query.tags.iter().map(|t| TagPlan::new(self, &footer, t)).collect();

        // 3–5. Row groups, split between two threads: phase 1 decodes the
        // scalar columns of every row group that survives pruning, which is
        // CPU-bound, and the machine has more than one core.
        let md = std::sync::Arc::clone(footer.reader_meta.metadata());
        let groups: Vec<usize> = (0..md.num_row_groups())
            .filter(|rg| self.stats_may_match(md.row_group(*rg), query, &scalars))
            .collect();
        let scan = |groups: &[usize]| -> Result<HashMap<TraceId, u64>, Error> {
            let mut latest = HashMap::new();
            if groups.is_empty() {
                return Ok(latest);
            }
            let builder = self.builder_from(&footer)?;
            for &rg in groups {
                self.search_row_group(&builder, rg, query, &scalars, &service_ok, &tags, &mut latest)?;
            }
            Ok(latest)
        };
        let mut latest = if groups.len() < 2 {
            scan(&groups)?
        } else {
            let (first, second) = groups.split_at(groups.len() / 2);
            std::thread::scope(|s| -> Result<_, Error> {
                // Contained on its own thread: a failed read is noted
                // where it happened (`crate::contain`).
                let other = s.spawn(|| crate::contain(&self.data_path, || scan(second)));
                let mut latest = scan(first)?;
                let rest =
                    other.join().map_err(|_| Error::corrupt(&self.data_path, "search thread panicked"))??;
                for (id, start) in rest {
                    let entry = latest.entry(id).or_insert(start);
                    *entry = (*entry).max(start);
                }
                Ok(latest)
            })?
        };
        let mut out: Vec<(TraceId, u64)> = latest.drain().collect();
        out.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(query.limit);
        Ok(out)
    }

    /// Steps 3–5 for row group `rg`: bloom filters per tag, then phase 1
    /// and phase 2; adds matches to `latest`.
    #[allow(clippy::too_many_arguments)]
    fn search_row_group(
        &self,
        builder: &Builder,
        rg: usize,
        query: &TraceQuery,
        scalars: &Scalars,
        service_ok: &[bool],
        tags: &[TagPlan<'_>],
        latest: &mut HashMap<TraceId, u64>,
    ) -> Result<(), Error> {
        let mut sources = Vec::with_capacity(tags.len());
        for t in tags {
            let s = self.tag_sources(builder, rg, t)?;
            let anywhere = s.str_slot || s.int_slot || s.generic || s.events;
            if !anywhere && t.synthetic == Synthetic::None && !t.any_resource() {
                return Ok(()); // this tag cannot match in this row group
            }
            sources.push(s);
        }
        let group = builder.metadata().row_group(rg);
        let start_decided = starts_decided_by_stats(group, scalars);
        let candidates = self
            .phase1(rg, query, scalars, service_ok, tags, &sources, start_decided)
            .map_err(|e| self.phase_err(e))?;
        if !candidates.rows.is_empty() {
            self.phase2(rg, group, tags, &sources, &candidates, latest).map_err(|e| self.phase_err(e))?;
        }
        Ok(())
    }

    fn phase_err(&self, e: PhaseError) -> Error {
        match e {
            PhaseError::Block(e) => e,
            PhaseError::Data(detail) => Error::corrupt(&self.data_path, detail),
        }
    }

    /// Row-group statistics against the scalar conditions.
    fn stats_may_match(&self, group: &RowGroupMetaData, query: &TraceQuery, scalars: &Scalars) -> bool {
        let stats = |col: Col| group.columns().get(col.root()).and_then(|c| c.statistics());
        if let Some(Statistics::Int64(s)) = stats(Col::StartTime)
            && let (Some(min), Some(max)) = (s.min_opt(), s.max_opt())
            // Starts past 2262 are stored as negative numbers.
            && *min >= 0
            && ((*max as u64) < scalars.start_min || (*min as u64) > scalars.start_max)
        {
            return false;
        }
        if let Some(Statistics::Int64(s)) = stats(Col::DurationNanos)
            && let (Some(min), Some(max)) = (s.min_opt(), s.max_opt())
            // Negative stored durations decode to 0 or wrap; only prune
            // when every duration is stored as is.
            && *min >= 0
            && (scalars.min_duration.is_some_and(|m| (*max as u64) < m)
                || scalars.max_duration.is_some_and(|m| (*min as u64) > m))
        {
            return false;
        }
        if let (Some(op), Some(Statistics::ByteArray(s))) = (&query.operation, stats(Col::Name))
            && let (Some(min), Some(max)) = (s.min_opt(), s.max_opt())
            && (op.as_bytes() < min.data() || op.as_bytes() > max.data())
        {
            return false;
        }
        true
    }

    /// Where `t` may match in row group `rg`, by bloom filters. A missing
    /// filter counts as a maybe.
    fn tag_sources(&self, builder: &Builder, rg: usize, t: &TagPlan<'_>) -> Result<TagSources, Error> {
        let bloom = |leaf: usize| self.bloom_filter(builder, rg, leaf);
        let text = t.filter.value.as_str();
        let str_slot = match t.str_slot {
            Some(slot) => bloom(Col::Str(slot).root())?.is_none_or(|b| b.check(text)),
            None => false,
        };
        let int_slot = match (t.int_slot, t.int) {
            (Some(slot), Some(i)) => bloom(Col::Int(slot).root())?.is_none_or(|b| b.check(&i)),
            _ => false,
        };
        Ok(TagSources {
            str_slot,
            int_slot,
            generic: self.generic_maybe(builder, rg, self.leaves.span_attrs, t)?,
            events: self.generic_maybe(builder, rg, self.leaves.event_attrs, t)?,
        })
    }

    /// Whether a generic attribute list may hold `t` in row group `rg`.
    /// Conservative: any value type whose text could equal the tag value
    /// and has no bloom filter counts as a maybe.
    fn generic_maybe(
        &self,
        builder: &Builder,
        rg: usize,
        [key, str, int, double]: [usize; 4],
        t: &TagPlan<'_>,
    ) -> Result<bool, Error> {
        let bloom = |leaf: usize| self.bloom_filter(builder, rg, leaf);
        let maybe = |b: Option<Sbbf>, check: &dyn Fn(&Sbbf) -> bool| b.is_none_or(|b| check(&b));
        if !maybe(bloom(key)?, &|b| b.check(t.filter.key.as_str())) {
            return Ok(false);
        }
        let text = t.filter.value.as_str();
        // Empty values, booleans, arrays and maps have no bloom filter.
        if text.is_empty() || text == "true" || text == "false" || text.starts_with(['[', '{']) {
            return Ok(true);
        }
        // Strings, and bytes as base64.
        if maybe(bloom(str)?, &|b| b.check(text)) {
            return Ok(true);
        }
        if let Some(i) = t.int
            && maybe(bloom(int)?, &|b| b.check(&i))
        {
            return Ok(true);
        }
        // Doubles print in shortest round-trip form, so the text parses
        // back to the stored bits; NaN and the infinities are not worth it.
        match text.parse::<f64>() {
            Ok(d) if d.is_finite() => Ok(maybe(bloom(double)?, &|b| b.check(&d))),
            Ok(_) => Ok(true),
            Err(_) => Ok(matches!(text, "+Inf" | "-Inf")),
        }
    }

    /// Scalars, dedicated columns and synthetic tags for every row of `rg`.
    /// With `start_decided` (see [`starts_decided_by_stats`]) `start_time`
    /// is not read here when another column is.
    #[allow(clippy::too_many_arguments)]
    fn phase1(
        &self,
        rg: usize,
        query: &TraceQuery,
        scalars: &Scalars,
        service_ok: &[bool],
        tags: &[TagPlan<'_>],
        sources: &[TagSources],
        start_decided: bool,
    ) -> Result<Candidates, PhaseError> {
        let need = |synthetic: fn(&Synthetic) -> bool| tags.iter().any(|t| synthetic(&t.synthetic));
        let mut cols = Vec::new();
        if scalars.has_duration() {
            cols.push(Col::DurationNanos);
        }
        if query.operation.is_some() {
            cols.push(Col::Name);
        }
        if query.service.is_some() || tags.iter().any(|t| t.any_resource()) {
            cols.push(Col::ResourceIndex);
        }
        if need(|s| matches!(s, Synthetic::Kind(_))) {
            cols.push(Col::Kind);
        }
        if need(|s| matches!(s, Synthetic::Error | Synthetic::StatusCode(_))) {
            cols.push(Col::StatusCode);
        }
        if need(|s| *s == Synthetic::StatusDescription) {
            cols.push(Col::StatusMessage);
        }
        if need(|s| *s == Synthetic::Scope) {
            cols.push(Col::ScopeIndex);
        }
        for (t, s) in tags.iter().zip(sources) {
            if let (Some(slot), true) = (t.str_slot, s.str_slot) {
                cols.push(Col::Str(slot));
            }
            if let (Some(slot), true) = (t.int_slot, s.int_slot) {
                cols.push(Col::Int(slot));
            }
        }
        // Without another column to decide on, start_time is what tells
        // the rows apart (and a reader needs one column to count rows).
        let read_start = !start_decided || cols.is_empty();
        if read_start {
            cols.push(Col::StartTime);
        }
        let reader = self.rg_reader(rg, &cols, None)?;
        let mut out = Candidates::default();
        let mut position = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| PhaseError::Block(self.arrow_err(e)))?;
            let view = Phase1View::new(&batch, query, scalars, tags, sources)?;
            for i in 0..batch.num_rows() {
                let duration = view.duration.map_or(0, |d| d.value(i));
                let start = match view.start {
                    Some(s) => s.value(i) as u64,
                    // Inside the window, and no stored duration is negative
                    // (see `starts_decided_by_stats`): the duration is the
                    // stored one whatever the start.
                    None => 0,
                };
                let fits = match view.start {
                    Some(_) => scalars.matches(start, duration),
                    None => scalars.duration_fits(duration as u64),
                };
                if !fits {
                    continue;
                }
                if let Some((dict, hits)) = &view.name
                    && !hits.get(dict.key(i)).copied().unwrap_or(false)
                {
                    continue;
                }
                let resource = match view.resource {
                    Some(r) => {
                        let r = r.value(i) as usize;
                        if r >= service_ok.len() {
                            return Err(PhaseError::Data(format!("resource_index {r} out of range")));
                        }
                        Some(r)
                    }
                    None => None,
                };
                if query.service.is_some() && resource.is_none_or(|r| service_ok.get(r) != Some(&true)) {
                    continue;
                }
                let first_flag = out.unresolved.len();
                let mut ok = true;
                for (k, (t, s)) in tags.iter().zip(sources).enumerate() {
                    if view.cheap_match(k, t, i, resource)? {
                        out.unresolved.push(false);
                    } else if s.generic || s.events {
                        out.unresolved.push(true);
                    } else {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    out.rows.push(position + i);
                    if read_start {
                        out.starts.push(start);
                    }
                } else {
                    out.unresolved.truncate(first_flag);
                }
            }
            position += batch.num_rows();
        }
        Ok(out)
    }

    /// Trace ids of the candidates, checking unresolved tags against the
    /// generic attribute lists.
    fn phase2(
        &self,
        rg: usize,
        group: &RowGroupMetaData,
        tags: &[TagPlan<'_>],
        sources: &[TagSources],
        candidates: &Candidates,
        latest: &mut HashMap<TraceId, u64>,
    ) -> Result<(), PhaseError> {
        let mut cols = vec![Col::TraceId];
        let read_start = candidates.starts.is_empty();
        if read_start {
            cols.push(Col::StartTime);
        }
        let unresolved_tag =
            |k: usize| candidates.unresolved.iter().skip(k).step_by(tags.len().max(1)).any(|u| *u);
        let needed: Vec<bool> = (0..tags.len()).map(unresolved_tag).collect();
        if tags.is_empty() || needed.iter().all(|n| !n) {
            // Every candidate already matches.
        } else {
            if sources.iter().zip(&needed).any(|(s, n)| *n && s.generic) {
                cols.push(Col::Attributes);
            }
            if sources.iter().zip(&needed).any(|(s, n)| *n && s.events) {
                cols.push(Col::Events);
            }
        }
        let rows = usize::try_from(group.num_rows()).unwrap_or(0);
        let selection = RowSelection::from_consecutive_ranges(consecutive(&candidates.rows), rows);
        let reader = self.rg_reader(rg, &cols, Some(selection))?;
        let mut next = 0usize;
        for batch in reader {
            let batch = batch.map_err(|e| PhaseError::Block(self.arrow_err(e)))?;
            let trace_id: &FixedSizeBinaryArray = column(&batch, Col::TraceId)?;
            let starts: Option<&PrimitiveArray<TimestampNanosecondType>> =
                read_start.then(|| column(&batch, Col::StartTime)).transpose()?;
            let attrs = match batch.column_by_name(&Col::Attributes.name()) {
                Some(a) => Some(Attrs::new(a.as_ref())?),
                None => None,
            };
            let events = match batch.column_by_name(&Col::Events.name()) {
                Some(_) => Some(Events::new(&batch)?),
                None => None,
            };
            for i in 0..batch.num_rows() {
                let c = next + i;
                let start = match starts {
                    Some(s) => s.value(i) as u64,
                    None => *candidates.starts.get(c).ok_or("phase 2 read more rows than selected")?,
                };
                let flags = candidates.unresolved.get(c * tags.len()..(c + 1) * tags.len()).unwrap_or(&[]);
                let mut ok = true;
                for ((t, s), unresolved) in tags.iter().zip(sources).zip(flags) {
                    if !*unresolved {
                        continue;
                    }
                    let in_attrs = match (&attrs, s.generic) {
                        (Some(a), true) => t.attrs_match(a, a.range(i))?,
                        _ => false,
                    };
                    let in_events = !in_attrs
                        && match (&events, s.events) {
                            (Some(e), true) => {
                                let mut hit = false;
                                for j in e.range(i) {
                                    if t.attrs_match(&e.attributes, e.attributes.range(j))? {
                                        hit = true;
                                        break;
                                    }
                                }
                                hit
                            }
                            _ => false,
                        };
                    if !in_attrs && !in_events {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    let id = TraceId::from_slice(trace_id.value(i)).map_err(|e| e.to_string())?;
                    let entry = latest.entry(id).or_insert(start);
                    *entry = (*entry).max(start);
                }
            }
            next += batch.num_rows();
        }
        Ok(())
    }

    fn rg_reader(
        &self,
        rg: usize,
        cols: &[Col],
        selection: Option<RowSelection>,
    ) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, PhaseError> {
        let mut roots: Vec<usize> = cols.iter().map(|c| c.root()).collect();
        roots.sort_unstable();
        roots.dedup();
        let builder = self.builder().map_err(PhaseError::Block)?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let mut builder = builder.with_row_groups(vec![rg]).with_projection(mask).with_batch_size(8192);
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        builder.build().map_err(|e| PhaseError::Block(self.parquet_err(e)))
    }
}

type Builder = ParquetRecordBatchReaderBuilder<crate::integrity::VerifiedFile>;

/// A phase failed: reading (already a block error) or decoding.
enum PhaseError {
    Block(Error),
    Data(String),
}

impl From<String> for PhaseError {
    fn from(detail: String) -> Self {
        PhaseError::Data(detail)
    }
}

impl From<&str> for PhaseError {
    fn from(detail: &str) -> Self {
        PhaseError::Data(detail.to_owned())
    }
}

/// The phase-1 columns of one batch, with per-dictionary-value hits
/// precomputed.
struct Phase1View<'a> {
    start: Option<&'a PrimitiveArray<TimestampNanosecondType>>,
    duration: Option<&'a PrimitiveArray<Int64Type>>,
    name: Option<(DictStr<'a>, Vec<bool>)>,
    resource: Option<&'a PrimitiveArray<UInt32Type>>,
    kind: Option<&'a PrimitiveArray<UInt8Type>>,
    status: Option<&'a PrimitiveArray<UInt8Type>>,
    message: Option<DictStr<'a>>,
    scope: Option<&'a PrimitiveArray<UInt32Type>>,
    /// Per tag: its dedicated string column and which dictionary values
    /// equal the tag value.
    strs: Vec<Option<(DictStr<'a>, Vec<bool>)>>,
    /// Per tag: its dedicated integer column.
    ints: Vec<Option<&'a Int64Array>>,
}

impl<'a> Phase1View<'a> {
    fn new(
        batch: &'a RecordBatch,
        query: &TraceQuery,
        scalars: &Scalars,
        tags: &[TagPlan<'_>],
        sources: &[TagSources],
    ) -> Result<Phase1View<'a>, String> {
        let has = |col: Col| batch.column_by_name(&col.name()).is_some();
        let dict_hits = |col: Col, value: &str| -> Result<(DictStr<'a>, Vec<bool>), String> {
            let dict = DictStr::new(batch, col)?;
            let hits = dict.values().iter().map(|v| v == Some(value)).collect();
            Ok((dict, hits))
        };
        Ok(Phase1View {
            start: has(Col::StartTime).then(|| column(batch, Col::StartTime)).transpose()?,
            duration: scalars.has_duration().then(|| column(batch, Col::DurationNanos)).transpose()?,
            name: query.operation.as_deref().map(|op| dict_hits(Col::Name, op)).transpose()?,
            resource: has(Col::ResourceIndex).then(|| column(batch, Col::ResourceIndex)).transpose()?,
            kind: has(Col::Kind).then(|| column(batch, Col::Kind)).transpose()?,
            status: has(Col::StatusCode).then(|| column(batch, Col::StatusCode)).transpose()?,
            message: has(Col::StatusMessage).then(|| DictStr::new(batch, Col::StatusMessage)).transpose()?,
            scope: has(Col::ScopeIndex).then(|| column(batch, Col::ScopeIndex)).transpose()?,
            strs: tags
                .iter()
                .zip(sources)
                .map(|(t, s)| match (t.str_slot, s.str_slot) {
                    (Some(slot), true) => dict_hits(Col::Str(slot), &t.filter.value).map(Some),
                    _ => Ok(None),
                })
                .collect::<Result<_, String>>()?,
            ints: tags
                .iter()
                .zip(sources)
                .map(|(t, s)| match (t.int_slot, s.int_slot) {
                    (Some(slot), true) => column(batch, Col::Int(slot)).map(Some),
                    _ => Ok(None),
                })
                .collect::<Result<_, String>>()?,
        })
    }

    /// Tag `k` via synthetic keys, the resource table or dedicated columns.
    fn cheap_match(
        &self,
        k: usize,
        t: &TagPlan<'_>,
        i: usize,
        resource: Option<usize>,
    ) -> Result<bool, String> {
        let error = StatusCode::Error as u8;
        let synthetic = match t.synthetic {
            Synthetic::None => false,
            Synthetic::Error => self.status.is_some_and(|s| s.value(i) == error),
            Synthetic::Kind(kind) => self.kind.is_some_and(|c| c.value(i) == kind),
            Synthetic::StatusCode(code) => self.status.is_some_and(|s| s.value(i) == code),
            Synthetic::StatusDescription => {
                self.message.as_ref().map(|m| m.get(i)).transpose()? == Some(t.filter.value.as_str())
            }
            Synthetic::Scope => {
                self.scope.is_some_and(|s| t.scope_hit.get(s.value(i) as usize).copied().unwrap_or(false))
            }
        };
        if synthetic || resource.is_some_and(|r| t.resource_hit.get(r) == Some(&true)) {
            return Ok(true);
        }
        if let Some(Some((dict, hits))) = self.strs.get(k)
            && dict.get_opt(i)?.is_some()
            && hits.get(dict.key(i)).copied().unwrap_or(false)
        {
            return Ok(true);
        }
        if let Some(Some(ints)) = self.ints.get(k)
            && ints.is_valid(i)
            && Some(ints.value(i)) == t.int
        {
            return Ok(true);
        }
        Ok(false)
    }
}

/// Whether row group statistics settle the window and duration arithmetic
/// for every row, so phase 1 need not decode `start_time`: every start
/// lies inside the window and below 2^63, and no stored duration is
/// negative (then `start + duration` cannot wrap, and the duration is the
/// stored value). Missing statistics settle nothing.
fn starts_decided_by_stats(group: &RowGroupMetaData, scalars: &Scalars) -> bool {
    let range = |col: Col| match group.columns().get(col.root()).and_then(|c| c.statistics()) {
        Some(Statistics::Int64(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    };
    let Some((min, max)) = range(Col::StartTime) else { return false };
    let inside = min >= 0 && min as u64 >= scalars.start_min && max as u64 <= scalars.start_max;
    let durations_plain =
        !scalars.has_duration() || range(Col::DurationNanos).is_some_and(|(min, _)| min >= 0);
    inside && durations_plain
}

/// Sorted row numbers → ranges of consecutive rows.
fn consecutive(rows: &[usize]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let first = *rows.get(i)?;
        let mut end = first + 1;
        i += 1;
        while rows.get(i) == Some(&end) {
            end += 1;
            i += 1;
        }
        Some(first..end)
    })
}
