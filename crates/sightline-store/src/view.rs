//! A read view: one snapshot of the live head, the frozen heads and the
//! live blocks, taken once per query and used for all of it.
//!
//! The snapshot is taken in data-flow order (live head, frozen heads,
//! blocks), and data moves forward only after it is in the next stage (a
//! cut locks the frozen list before it empties the head; a flush lists its
//! block before it drops the frozen head). So a span is in at least one
//! part of any view; it may be in two (a head and the block it became),
//! and results are deduplicated by span id.
//!
//! Taking a view copies a few lists of `Arc`s under short locks; reading
//! it takes no lock at all, so queries never wait on ingest and ingest
//! never waits on queries.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use sightline_block::Block;
use sightline_model::{DependencyLink, Operation, QueryError, Span, SpanKind, TraceHit, TraceId, TraceQuery};

use crate::blockset::damage::Damaged;
use crate::blockset::{BlockList, BlockSet};
use crate::head::{HeadSnapshot, dependency_links};
use crate::ingest::{Frozen, Ingest};

/// See the module docs. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct View {
    live: HeadSnapshot,
    frozen: Vec<Arc<Frozen>>,
    blocks: BlockList,
    /// Where a read that fails on a damaged block reports it; the query
    /// goes on without that block.
    damaged: Arc<Damaged>,
}

impl View {
    pub(crate) fn take(ingest: &Ingest, blocks: &BlockSet) -> View {
        let live = ingest.head_snapshot();
        let frozen = ingest.frozen();
        let damaged = Arc::clone(blocks.damaged());
        let blocks = blocks.list();
        View { live, frozen, blocks, damaged }
    }

    /// The same snapshot without its blocks: what only this node has
    /// (live and frozen heads, not yet in a listed block), which another
    /// node sharing the bucket asks for.
    pub(crate) fn heads_only(mut self) -> View {
        self.blocks = BlockList::default();
        self
    }

    /// The heads, newest first.
    fn heads(&self) -> impl Iterator<Item = &HeadSnapshot> {
        std::iter::once(&self.live).chain(self.frozen.iter().rev().map(|f| &f.head))
    }

    /// The spans of traces `ids`, each deduplicated by span id and sorted
    /// by start; ids without spans are absent. Each block is read once for
    /// all ids. Blocking.
    pub(crate) fn traces(&self, ids: &[TraceId]) -> Result<HashMap<TraceId, Vec<Span>>, QueryError> {
        let mut out: HashMap<TraceId, Vec<Span>> = HashMap::with_capacity(ids.len());
        for head in self.heads() {
            head.traces(ids, &mut out);
        }
        for span in read_traces(&self.blocks, ids, &self.damaged)? {
            out.entry(span.trace_id).or_default().push(span);
        }
        for spans in out.values_mut() {
            let mut seen = HashSet::with_capacity(spans.len());
            spans.retain(|s| seen.insert(s.span_id));
            spans.sort_by_key(|s| s.start_time_unix_nano);
        }
        out.retain(|_, spans| !spans.is_empty());
        Ok(out)
    }

    /// Traces `ids` in that order (absent ones skipped), as many as
    /// `budget` allows. Blocking.
    pub(crate) fn traces_within(
        &self,
        ids: &[TraceId],
        budget: &mut ResultBudget,
    ) -> Result<Vec<Vec<Span>>, QueryError> {
        let mut out = Vec::new();
        // A few at a time: each block is read once per group of ids, and
        // nothing past the budget is decoded.
        for group in ids.chunks(TRACES_PER_READ) {
            let mut found = self.traces(group)?;
            for id in group {
                let Some(mut spans) = found.remove(id) else { continue };
                if !budget.take(&mut spans, out.is_empty()) {
                    return Ok(out);
                }
                out.push(spans);
            }
        }
        Ok(out)
    }

    /// Full traces with a span matching `query`, most recent match first:
    /// at most [`TraceQuery::effective_limit`], and as many as `budget`
    /// allows. Blocking.
    pub(crate) fn find_traces(
        &self,
        query: &TraceQuery,
        budget: &mut ResultBudget,
    ) -> Result<Vec<Vec<Span>>, QueryError> {
        let ids: Vec<TraceId> = self.find_trace_ids(query)?.iter().map(|h| h.trace_id).collect();
        self.traces_within(&ids, budget)
    }

    /// The traces [`View::find_traces`] returns, without reading them:
    /// only the columns the conditions need are read. Blocking.
    pub(crate) fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<TraceHit>, QueryError> {
        let limit = query.effective_limit();
        if limit == 0 {
            return Ok(Vec::new());
        }
        let query = TraceQuery { limit, ..query.clone() };
        let mut hits: HashMap<TraceId, u64> = HashMap::new();
        for head in self.heads() {
            head.search(&query, &mut hits);
        }
        let hits = search_blocks(&self.blocks, &query, hits, &self.damaged).map_err(internal)?;
        Ok(TraceHit::ranked(hits, limit))
    }

    /// Names of all services, sorted.
    pub(crate) fn services(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        for head in self.heads() {
            head.services(&mut out);
        }
        for b in self.blocks.iter() {
            for (service, _, _) in &b.meta().operations {
                if !out.contains(service) {
                    out.insert(service.clone());
                }
            }
        }
        out.into_iter().collect()
    }

    /// Operations of `service`, sorted, optionally of one kind only.
    pub(crate) fn operations(&self, service: &str, kind: Option<SpanKind>) -> Vec<Operation> {
        let mut out = BTreeSet::new();
        for head in self.heads() {
            head.operations(service, kind, &mut out);
        }
        for b in self.blocks.iter() {
            for (s, name, k) in &b.meta().operations {
                let k = SpanKind::from_i32(i32::from(*k));
                if s == service && kind.is_none_or(|want| want == k) {
                    out.insert(Operation { name: name.clone(), kind: k });
                }
            }
        }
        out.into_iter().collect()
    }

    /// Service-to-service calls with the child's start in
    /// `[end - lookback, end]`.
    pub(crate) fn dependencies(&self, end_unix_nanos: u64, lookback_nanos: u64) -> Vec<DependencyLink> {
        let from = end_unix_nanos.saturating_sub(lookback_nanos);
        let mut counts: HashMap<(String, String), u64> = HashMap::new();
        for head in self.heads() {
            head.dependencies(from, end_unix_nanos, &mut counts);
        }
        // Blocks keep per-block counts: a block counts whole when its time
        // range overlaps the window.
        for b in self.blocks.iter() {
            let m = b.meta();
            if m.max_start_unix_nanos >= from && m.min_start_unix_nanos <= end_unix_nanos {
                for (parent, child, calls) in &m.dependencies {
                    *counts.entry((parent.clone(), child.clone())).or_insert(0) += calls;
                }
            }
        }
        dependency_links(counts)
    }
}

/// Traces looked up in one pass over the blocks when results are built.
const TRACES_PER_READ: usize = 32;

/// Bytes of spans one query may still return (see
/// `MemoryBudget::query_bytes_each`): a search with a huge limit or a
/// trace of a million spans returns what fits, not all of it.
#[derive(Debug)]
pub(crate) struct ResultBudget {
    left: usize,
    /// Whether something was left out.
    pub(crate) truncated: bool,
}

impl ResultBudget {
    pub(crate) fn new(bytes: usize) -> ResultBudget {
        ResultBudget { left: bytes, truncated: false }
    }

    /// Takes a trace if it fits the rest of the budget. The first trace of
    /// a result is always taken, cut to the budget (earliest spans kept) if
    /// it alone is larger: a lookup by id returns what it can.
    pub(crate) fn take(&mut self, spans: &mut Vec<Span>, first: bool) -> bool {
        let mut size = 0usize;
        let mut fit = spans.len();
        for (i, span) in spans.iter().enumerate() {
            size += span.estimated_size();
            if size > self.left {
                fit = i;
                break;
            }
        }
        if fit == spans.len() {
            self.left -= size;
            return true;
        }
        self.truncated = true;
        if !first {
            return false;
        }
        spans.truncate(fit.max(1));
        self.left = 0;
        true
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> QueryError {
    QueryError::Internal(e.to_string())
}

/// The spans of traces `ids` in `blocks`. With several blocks the second
/// half is read on another thread: a lookup's latency is the sum of its
/// per-block reads (file open, bloom filter, one page per column), and the
/// machine has more than one core.
fn read_traces(blocks: &[Arc<Block>], ids: &[TraceId], damaged: &Damaged) -> Result<Vec<Span>, QueryError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let read = |part: &[Arc<Block>]| -> Result<Vec<Span>, QueryError> {
        let mut spans = Vec::new();
        for b in part {
            match b.traces(ids) {
                Ok(found) => spans.extend(found),
                // The rest of the trace is still worth returning; the
                // damage is logged once and counted.
                Err(e) if e.is_corruption() => damaged.report(&b.meta().id, &e),
                // A read that failed in IO (the object store down or too
                // slow) skips the block too, without setting it aside.
                Err(e @ sightline_block::Error::Io { .. }) => damaged.unreadable(&b.meta().id, &e),
                Err(e) => return Err(internal(e)),
            }
        }
        Ok(spans)
    };
    if blocks.len() < 2 {
        return read(blocks);
    }
    let (first, second) = blocks.split_at(blocks.len() / 2);
    std::thread::scope(|scope| {
        let other = scope.spawn(|| read(second));
        let mut spans = read(first)?;
        // A panic in the other thread is reported like any failed read.
        let rest = other.join().map_err(|_| internal("reading a block panicked"))??;
        spans.extend(rest);
        Ok(spans)
    })
}

/// Adds block matches to `hits`, newest blocks first, skipping blocks that
/// cannot change the top `limit`.
fn search_blocks(
    blocks: &[Arc<Block>],
    query: &TraceQuery,
    mut hits: HashMap<TraceId, u64>,
    damaged: &Damaged,
) -> Result<HashMap<TraceId, u64>, sightline_block::Error> {
    let mut order: Vec<&Arc<Block>> = blocks
        .iter()
        .filter(|b| {
            let m = b.meta();
            query.start_min_unix_nanos.is_none_or(|min| m.max_start_unix_nanos >= min)
                && query.start_max_unix_nanos.is_none_or(|max| m.min_start_unix_nanos <= max)
                && query.service.as_deref().is_none_or(|s| {
                    m.operations.iter().any(|(svc, name, _)| {
                        svc == s && query.operation.as_deref().is_none_or(|op| op == name)
                    })
                })
        })
        .collect();
    order.sort_by_key(|b| std::cmp::Reverse(b.meta().max_start_unix_nanos));
    for b in order {
        if hits.len() >= query.limit {
            let mut starts: Vec<u64> = hits.values().copied().collect();
            starts.sort_unstable_by(|a, b| b.cmp(a));
            let kth = starts.get(query.limit - 1).copied().unwrap_or(0);
            if b.meta().max_start_unix_nanos < kth {
                continue;
            }
        }
        let found = match b.search(query) {
            Ok(found) => found,
            // One damaged block must not fail the whole search (it was a
            // 500): its matches are left out, the damage logged and counted.
            Err(e) if e.is_corruption() => {
                damaged.report(&b.meta().id, &e);
                continue;
            }
            Err(e @ sightline_block::Error::Io { .. }) => {
                damaged.unreadable(&b.meta().id, &e);
                continue;
            }
            Err(e) => return Err(e),
        };
        for (id, start) in found {
            let latest = hits.entry(id).or_insert(0);
            *latest = (*latest).max(start);
        }
    }
    Ok(hits)
}
