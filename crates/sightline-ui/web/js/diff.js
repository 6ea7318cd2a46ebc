// Trace comparison: two traces as one structural diff. Pure functions, no
// DOM, so `node --test` runs them.
//
// The idea is Jaeger UI's (its TraceDiff view): spans are aligned by their
// path from the root — the chain of service:operation names down to them —
// so "the Charge call of payments under PlaceOrder under GET /checkout"
// is the same node in both traces, whatever the span ids and however many
// times it ran. Each node then holds the spans of A and of B at that path.
// Jaeger compares only how many spans sit at each node; here the node also
// compares their mean duration, so slower and faster calls show beside
// added and removed ones.
//
// Definitions:
// - added: spans at this path only in B; removed: only in A;
// - more / fewer: both have the path, with different span counts;
// - slower / faster: the mean duration of the node's spans changed by at
//   least `minRatio` of A's mean and at least `minMicros` (tiny spans
//   jitter by microseconds; that is noise, not a regression);
// - same: none of these.
// Spans whose parent is missing are roots of their own path, as in the
// waterfall. Jaeger also merges client spans into the server span they call
// and marks leaves; this diff keeps every span, as the waterfall shows it.

/** Per-node totals of one trace's spans at a path. */
function emptySide() {
  return { count: 0, errors: 0, total: 0, min: Infinity, max: 0, start: Infinity, end: -Infinity, spanIDs: [] };
}

/**
 * Numbers paths: a path's key is its parent's number plus its own
 * service:operation, so keys stay short however deep a trace is (a trace
 * can be thousands of spans deep; spelling out whole paths would cost
 * memory quadratic in the depth). Shared by both traces, so one path gets
 * one number in each.
 */
export function pathInterner() {
  const ids = new Map();
  return (parentKey, service, operation) => {
    const step = `${parentKey ?? ''}\t${service}\t${operation}`;
    let id = ids.get(step);
    if (id === undefined) ids.set(step, (id = ids.size + 1));
    return id;
  };
}

/**
 * Groups the spans of a trace model (trace.js buildTrace) by path: Map key
 * → {key, parentKey, depth, service, operation, side}; keys come from
 * `intern` (pathInterner).
 */
export function groupByPath(trace, intern = pathInterner()) {
  const keyOf = new Map();
  const nodes = new Map();
  // trace.spans is in preorder: a parent's key is known before its children's.
  for (const span of trace.spans) {
    const parentKey = span.parent ? keyOf.get(span.parent.spanID) ?? null : null;
    const key = intern(parentKey, span.serviceName, span.operationName);
    keyOf.set(span.spanID, key);
    let node = nodes.get(key);
    if (!node) {
      const depth = parentKey === null ? 0 : nodes.get(parentKey).depth + 1;
      nodes.set(key, (node = { key, parentKey, depth, service: span.serviceName, operation: span.operationName, side: emptySide() }));
    }
    const s = node.side;
    s.count++;
    if (span.hasError) s.errors++;
    s.total += span.duration;
    s.min = Math.min(s.min, span.duration);
    s.max = Math.max(s.max, span.duration);
    s.start = Math.min(s.start, span.startTime - trace.startTime);
    s.end = Math.max(s.end, span.endTime - trace.startTime);
    s.spanIDs.push(span.spanID);
  }
  for (const n of nodes.values()) n.side.mean = n.side.total / n.side.count;
  return nodes;
}

/**
 * Compares trace models `a` and `b`. Returns {nodes, summary}: nodes in
 * tree order (children by when they first start, A's time first), each
 * {key, parentKey, depth, service, operation, a, b, status, countDelta,
 * meanDelta, timing}, where `a`/`b` are the side's totals or null when the
 * path is absent there, and `timing` is 'slower', 'faster' or null for
 * paths present in both. `summary` counts spans added and removed, and
 * nodes slower, faster and unchanged.
 */
export function diffTraces(a, b, { minRatio = 0.1, minMicros = 100 } = {}) {
  const intern = pathInterner();
  const ga = groupByPath(a, intern);
  const gb = groupByPath(b, intern);
  const merged = new Map();
  for (const key of new Set([...ga.keys(), ...gb.keys()])) {
    const na = ga.get(key);
    const nb = gb.get(key);
    const any = na || nb;
    const sa = na ? na.side : null;
    const sb = nb ? nb.side : null;
    let timing = null;
    let meanDelta = null;
    if (sa && sb) {
      meanDelta = sb.mean - sa.mean;
      if (Math.abs(meanDelta) >= minMicros && Math.abs(meanDelta) >= minRatio * sa.mean) timing = meanDelta > 0 ? 'slower' : 'faster';
    }
    const countDelta = (sb ? sb.count : 0) - (sa ? sa.count : 0);
    let status;
    if (!sa) status = 'added';
    else if (!sb) status = 'removed';
    else if (countDelta > 0) status = 'more';
    else if (countDelta < 0) status = 'fewer';
    else status = timing || 'same';
    merged.set(key, {
      key,
      parentKey: any.parentKey,
      depth: any.depth,
      service: any.service,
      operation: any.operation,
      a: sa,
      b: sb,
      status,
      countDelta,
      meanDelta,
      timing,
      children: [],
    });
  }
  const roots = [];
  for (const node of merged.values()) {
    const parent = node.parentKey === null ? null : merged.get(node.parentKey);
    (parent ? parent.children : roots).push(node);
  }
  const startOf = (n) => (n.a ? n.a.start : n.b.start);
  const order = (x, y) => startOf(x) - startOf(y) || x.service.localeCompare(y.service) || x.operation.localeCompare(y.operation);
  const nodes = [];
  const stack = roots.sort(order).reverse();
  while (stack.length) {
    const node = stack.pop();
    nodes.push(node);
    const kids = node.children.sort(order);
    for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]);
  }
  for (const n of nodes) delete n.children;

  const summary = { added: 0, removed: 0, slower: 0, faster: 0, same: 0, nodes: nodes.length };
  for (const n of nodes) {
    if (n.countDelta > 0) summary.added += n.countDelta;
    if (n.countDelta < 0) summary.removed -= n.countDelta;
    if (n.timing === 'slower') summary.slower++;
    if (n.timing === 'faster') summary.faster++;
    if (n.status === 'same') summary.same++;
  }
  return { nodes, summary };
}

/**
 * The nodes to show when only changes are wanted: changed nodes and their
 * ancestors (for context), in the same order.
 */
export function changedWithAncestors(nodes) {
  const keep = new Set();
  const byKey = new Map(nodes.map((n) => [n.key, n]));
  for (const n of nodes) {
    if (n.status === 'same') continue;
    for (let k = n.key; k !== null && !keep.has(k); k = byKey.get(k)?.parentKey ?? null) keep.add(k);
  }
  return nodes.filter((n) => keep.has(n.key));
}

/** Parses a compare path segment `a...b` (Jaeger UI's form): {a, b}, either possibly empty. */
export function parseComparePair(text) {
  const i = (text || '').indexOf('...');
  if (i < 0) return { a: (text || '').toLowerCase(), b: '' };
  return { a: text.slice(0, i).toLowerCase(), b: text.slice(i + 3).toLowerCase() };
}
