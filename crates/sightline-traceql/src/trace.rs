//! What the evaluator knows about one trace beyond its spans: the root
//! span, the time range, and the tree as nested sets — derived the way
//! Tempo's block format derives them when it writes a trace.

use std::collections::HashMap;

use sightline_model::{Span, SpanId, SpanKind, Value};

/// Nested-set numbering of a trace tree (Tempo's
/// `assignNestedSetModelBounds`): a depth-first walk from each root in
/// input order, children in input order, numbers a span on the way down
/// (`left`) and up (`right`); `parent` holds the parent's `left`, `-1` for
/// roots. Spans the walk does not reach (orphans, or every span when the
/// trace has no root or more than two spans share an id) keep zeros and
/// take part in no structural relation.
pub(crate) struct Tree {
    pub(crate) left: Vec<i64>,
    pub(crate) right: Vec<i64>,
    pub(crate) parent: Vec<i64>,
    /// Parent span by index, for spans the walk reached.
    pub(crate) parent_index: Vec<Option<u32>>,
    pub(crate) child_count: Vec<i64>,
    /// Reached spans, parents before children.
    pub(crate) preorder: Vec<u32>,
}

impl Tree {
    pub(crate) fn build(spans: &[Span]) -> Tree {
        let n = spans.len();
        let mut tree = Tree {
            left: vec![0; n],
            right: vec![0; n],
            parent: vec![0; n],
            parent_index: vec![None; n],
            child_count: vec![0; n],
            preorder: Vec::with_capacity(n),
        };
        let roots: Vec<u32> = (0..n as u32).filter(|&i| spans[i as usize].parent_span_id.is_none()).collect();
        let mut by_id: HashMap<SpanId, Vec<u32>> = HashMap::with_capacity(n);
        for (i, span) in spans.iter().enumerate() {
            by_id.entry(span.span_id).or_default().push(i as u32);
        }
        // Zipkin shares a span id between a client span and its server
        // span; more than two spans with one id is broken data.
        if roots.is_empty() || by_id.values().any(|nodes| nodes.len() > 2) {
            return tree;
        }
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut parent_of: Vec<Option<u32>> = vec![None; n];
        for (i, span) in spans.iter().enumerate() {
            let Some(parent_id) = span.parent_span_id else { continue };
            let parent = match by_id.get(&parent_id).map(Vec::as_slice) {
                Some([only]) => Some(*only),
                Some([a, b]) => {
                    let want =
                        if span.kind == SpanKind::Server { SpanKind::Client } else { SpanKind::Server };
                    [*a, *b].into_iter().find(|&p| spans[p as usize].kind == want)
                }
                _ => None,
            };
            if let Some(p) = parent {
                children[p as usize].push(i as u32);
                parent_of[i] = Some(p);
            }
        }
        for (i, c) in children.iter().enumerate() {
            tree.child_count[i] = c.len() as i64;
        }
        let mut bound: i64 = 1;
        let mut stack: Vec<(u32, usize)> = Vec::new();
        for &root in &roots {
            tree.left[root as usize] = bound;
            tree.parent[root as usize] = -1;
            tree.preorder.push(root);
            bound += 1;
            stack.push((root, 0));
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                if let Some(&child) = children[node as usize].get(*next) {
                    *next += 1;
                    tree.left[child as usize] = bound;
                    tree.parent[child as usize] = tree.left[node as usize];
                    tree.parent_index[child as usize] = parent_of[child as usize];
                    tree.preorder.push(child);
                    bound += 1;
                    stack.push((child, 0));
                } else {
                    tree.right[node as usize] = bound;
                    bound += 1;
                    stack.pop();
                }
            }
        }
        tree
    }

    /// Whether the walk reached span `i` (it has nested-set numbers).
    pub(crate) fn reached(&self, i: u32) -> bool {
        self.left[i as usize] != 0
    }
}

/// One trace prepared for evaluation.
pub(crate) struct TraceCtx<'a> {
    pub(crate) spans: &'a [Span],
    pub(crate) tree: Option<Tree>,
    /// The root span as Tempo's search metadata picks it: the last span
    /// without a parent (and without an OpenTracing `child_of` link into
    /// its own trace).
    pub(crate) root: Option<usize>,
    /// Earliest non-zero start and latest end, ns since the epoch.
    pub(crate) start: u64,
    pub(crate) end: u64,
}

impl<'a> TraceCtx<'a> {
    pub(crate) fn new(spans: &'a [Span], needs_tree: bool) -> TraceCtx<'a> {
        let mut root = None;
        let (mut start, mut end) = (0u64, 0u64);
        for (i, span) in spans.iter().enumerate() {
            if start == 0 || span.start_time_unix_nano < start {
                start = span.start_time_unix_nano;
            }
            end = end.max(span.end_time_unix_nano);
            if span.parent_span_id.is_none() && !has_child_of_link(span) {
                root = Some(i);
            }
        }
        let tree = needs_tree.then(|| Tree::build(spans));
        TraceCtx { spans, tree, root, start, end }
    }

    pub(crate) fn duration(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub(crate) fn root_name(&self) -> Option<&'a str> {
        self.root.map(|i| self.spans[i].name.as_str())
    }

    /// The root span's service: its resource's `service.name`, or
    /// `unknown_service` for a root without one or with one that is not a
    /// non-empty string (`Resource::service_name`). Tempo stores `""`
    /// there, but Sightline reads such a service as `unknown_service`
    /// everywhere else — the search results' `rootServiceName`, the
    /// services list, `resource.service.name` — so the intrinsic matches
    /// what a search shows.
    pub(crate) fn root_service(&self) -> Option<&'a str> {
        self.root.map(|i| self.spans[i].resource.service_name())
    }
}

fn has_child_of_link(span: &Span) -> bool {
    span.links.iter().any(|link| {
        link.trace_id == span.trace_id
            && link.attributes.iter().any(|kv| {
                kv.key == "opentracing.ref_type" && matches!(&kv.value, Value::Str(s) if s == "child_of")
            })
    })
}

/// Trace ids as Tempo's `TraceIDToHexString` writes them: lower-case hex
/// without leading zeros.
pub(crate) fn trace_id_hex(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    hex.trim_start_matches('0').to_owned()
}
