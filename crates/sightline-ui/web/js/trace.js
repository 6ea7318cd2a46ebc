// The trace model behind the trace page: builds the span tree from the
// Jaeger API's JSON and computes self time, the critical path, statistics
// and find-in-trace matches. Pure functions, no DOM, so `node --test` runs
// them. Every time is in µs, as the API sends it.
//
// All walks are iterative: a trace can be thousands of spans deep, beyond
// what the JavaScript call stack allows.

/** Tags the OTLP → Jaeger translation adds; the detail pane shows them as fields. */
const SYNTHETIC_TAGS = new Set([
  'span.kind',
  'error',
  'otel.status_code',
  'otel.status_description',
  'otel.scope.name',
  'otel.scope.version',
  'w3c.tracestate',
]);

/**
 * Builds the trace model from one trace of `/api/traces/{id}`.
 *
 * The parent of a span is its first reference when that names a span of
 * this trace (what Jaeger UI does; Sightline puts the parent first, as
 * `CHILD_OF`, or `FOLLOWS_FROM` for an asynchronous child). Spans whose
 * parent is missing become roots. Children are ordered by start time.
 */
export function buildTrace(raw) {
  const processes = raw.processes || {};
  const byId = new Map();
  const spans = [];
  for (const s of raw.spans || []) {
    if (byId.has(s.spanID)) continue; // the API removes duplicates; be safe anyway
    const process = processes[s.processID] || { serviceName: 'unknown', tags: [] };
    const tags = s.tags || [];
    // One pass: the synthetic tags become fields, the rest are attributes.
    const synthetic = {};
    const attributes = [];
    for (const t of tags) {
      if (SYNTHETIC_TAGS.has(t.key)) {
        if (!(t.key in synthetic)) synthetic[t.key] = t.value;
      } else attributes.push(t);
    }
    const statusCode = synthetic['otel.status_code'] || 'UNSET';
    const errorTag = synthetic.error;
    const span = {
      spanID: s.spanID,
      traceID: s.traceID,
      operationName: s.operationName,
      serviceName: process.serviceName,
      process,
      startTime: s.startTime,
      duration: s.duration,
      endTime: s.startTime + s.duration,
      tags,
      attributes,
      logs: s.logs || [],
      references: s.references || [],
      kind: synthetic['span.kind'] || '',
      statusCode,
      statusMessage: synthetic['otel.status_description'] || '',
      scopeName: synthetic['otel.scope.name'] || '',
      scopeVersion: synthetic['otel.scope.version'] || '',
      hasError: errorTag === true || errorTag === 'true' || statusCode === 'ERROR',
      parent: null,
      parentRefType: null,
      children: [],
      depth: 0,
      selfTime: 0,
      index: 0,
    };
    byId.set(span.spanID, span);
    spans.push(span);
  }
  const traceID = raw.traceID || spans[0]?.traceID || '';
  for (const span of spans) {
    const ref = span.references[0];
    const parent = ref && (!ref.traceID || ref.traceID === span.traceID) ? byId.get(ref.spanID) : undefined;
    if (parent && parent !== span) {
      span.parent = parent;
      span.parentRefType = ref.refType;
      parent.children.push(span);
    }
  }
  const byStart = (a, b) => a.startTime - b.startTime || (a.spanID < b.spanID ? -1 : a.spanID > b.spanID ? 1 : 0);
  for (const span of spans) span.children.sort(byStart);

  // Preorder from the roots. Spans caught in a parent cycle are never
  // reached; the first of them is cut loose and becomes a root.
  const order = [];
  const seen = new Set();
  const visit = (root) => {
    const stack = [root];
    while (stack.length) {
      const span = stack.pop();
      if (seen.has(span)) continue;
      seen.add(span);
      span.depth = span.parent && seen.has(span.parent) ? span.parent.depth + 1 : 0;
      span.index = order.length;
      order.push(span);
      for (let i = span.children.length - 1; i >= 0; i--) stack.push(span.children[i]);
    }
  };
  const roots = spans.filter((s) => !s.parent).sort(byStart);
  for (const root of roots) visit(root);
  for (const span of seen.size < spans.length ? [...spans].sort(byStart) : []) {
    if (seen.has(span)) continue;
    span.parent.children = span.parent.children.filter((c) => c !== span);
    span.parent = null;
    span.parentRefType = null;
    roots.push(span);
    visit(span);
  }

  let startTime = Infinity;
  let endTime = -Infinity;
  let depth = 0;
  let errorCount = 0;
  const serviceCounts = new Map();
  for (const span of order) {
    startTime = Math.min(startTime, span.startTime);
    endTime = Math.max(endTime, span.endTime);
    depth = Math.max(depth, span.depth + 1);
    if (span.hasError) errorCount++;
    serviceCounts.set(span.serviceName, (serviceCounts.get(span.serviceName) || 0) + 1);
    span.selfTime = selfTime(span);
  }
  if (!order.length) startTime = endTime = 0;
  const root = roots[0] || null;
  return {
    traceID,
    spans: order,
    byId,
    roots,
    root,
    startTime,
    endTime,
    duration: endTime - startTime,
    depth,
    errorCount,
    services: [...serviceCounts].map(([name, count]) => ({ name, count })).sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/**
 * Self time: the span's duration minus the time covered by at least one
 * direct child (any reference type), with children clipped to the span.
 */
export function selfTime(span) {
  const intervals = [];
  for (const c of span.children) {
    const s = Math.max(c.startTime, span.startTime);
    const e = Math.min(c.endTime, span.endTime);
    if (e > s) intervals.push([s, e]);
  }
  intervals.sort((a, b) => a[0] - b[0]);
  let covered = 0;
  let curS = -Infinity;
  let curE = -Infinity;
  for (const [s, e] of intervals) {
    if (s > curE) {
      if (curE > curS) covered += curE - curS;
      curS = s;
      curE = e;
    } else if (e > curE) {
      curE = e;
    }
  }
  if (curE > curS) covered += curE - curS;
  return Math.max(0, span.duration - covered);
}

/**
 * The critical path: the chain of work that determined when each root span
 * finished. Returns Map spanID → [[start, end], …] (ascending, µs) of the
 * parts of that span on the path.
 *
 * Jaeger UI's algorithm, per root span:
 * 1. Only `CHILD_OF` children block their parent: `FOLLOWS_FROM` children
 *    (and everything under them) are dropped.
 * 2. Children are clipped to their parent's (clipped) interval; a child
 *    entirely outside it is dropped.
 * 3. From the span's end, walk back: take the last-finishing child that
 *    ends no later than the current point, the gap between its end and the
 *    point is the span's own, recurse into the child, move the point to the
 *    child's start, repeat; what is left down to the span's start is its own.
 *
 * One deliberate difference: Jaeger takes a child only if it ends strictly
 * before the point, so of two back-to-back children (one ends exactly when
 * the next starts) the first is left off the path and its time counted as
 * the parent's. Here it ends "no later than", which keeps it on the path.
 * Each child is considered once, so zero-length children cannot loop.
 */
export function criticalPath(trace) {
  const sections = new Map();
  const add = (span, s, e) => {
    if (e <= s) return;
    let list = sections.get(span.spanID);
    if (!list) sections.set(span.spanID, (list = []));
    list.push([s, e]);
  };
  const frame = (span, start, end) => {
    const kids = [];
    for (const c of span.children) {
      if (c.parentRefType !== 'CHILD_OF') continue;
      const s = Math.max(c.startTime, start);
      const e = Math.min(c.endTime, end);
      if (e > s) kids.push({ span: c, s, e });
    }
    // Last-finishing first; on a tie the longer child, then by id.
    kids.sort((a, b) => b.e - a.e || a.s - b.s || (a.span.spanID < b.span.spanID ? -1 : 1));
    return { span, start, end, kids, i: 0, t: end };
  };
  for (const root of trace.roots) {
    const stack = [frame(root, root.startTime, root.endTime)];
    while (stack.length) {
      const f = stack[stack.length - 1];
      if (f.i < f.kids.length) {
        const k = f.kids[f.i++];
        if (k.e > f.t) continue; // overlaps work already on the path
        add(f.span, k.e, f.t);
        f.t = k.s;
        stack.push(frame(k.span, k.s, k.e));
      } else {
        add(f.span, f.start, f.t);
        stack.pop();
      }
    }
  }
  for (const list of sections.values()) list.sort((a, b) => a[0] - b[0]);
  return sections;
}

/** Total µs of a span's critical-path sections. */
export function sectionsTotal(list) {
  return (list || []).reduce((sum, [s, e]) => sum + (e - s), 0);
}

/**
 * Statistics by service and operation: count, errors, total/avg/min/max
 * duration and total/avg/min/max self time. Returns services sorted by
 * name, each with its operations sorted by name, plus the whole trace.
 */
export function traceStats(trace) {
  const empty = () => ({
    count: 0,
    errors: 0,
    total: 0,
    min: Infinity,
    max: 0,
    selfTotal: 0,
    selfMin: Infinity,
    selfMax: 0,
  });
  const addTo = (row, span) => {
    row.count++;
    if (span.hasError) row.errors++;
    row.total += span.duration;
    row.min = Math.min(row.min, span.duration);
    row.max = Math.max(row.max, span.duration);
    row.selfTotal += span.selfTime;
    row.selfMin = Math.min(row.selfMin, span.selfTime);
    row.selfMax = Math.max(row.selfMax, span.selfTime);
  };
  const services = new Map();
  const all = empty();
  for (const span of trace.spans) {
    let svc = services.get(span.serviceName);
    if (!svc) services.set(span.serviceName, (svc = { service: span.serviceName, ...empty(), operations: new Map() }));
    let op = svc.operations.get(span.operationName);
    if (!op) svc.operations.set(span.operationName, (op = { service: span.serviceName, operation: span.operationName, ...empty() }));
    addTo(svc, span);
    addTo(op, span);
    addTo(all, span);
  }
  const finish = (row) => {
    row.avg = row.count ? row.total / row.count : 0;
    row.selfAvg = row.count ? row.selfTotal / row.count : 0;
    if (!row.count) row.min = row.selfMin = 0;
    return row;
  };
  const byName = (a, b) => a.localeCompare(b);
  return {
    services: [...services.values()]
      .sort((a, b) => byName(a.service, b.service))
      .map((svc) => {
        finish(svc);
        svc.operations = [...svc.operations.values()].sort((a, b) => byName(a.operation, b.operation)).map(finish);
        return svc;
      }),
    all: finish(all),
  };
}

/**
 * Find-in-trace: the ids of spans matching every whitespace-separated term
 * of `query` (case-insensitive). A `key=value` term matches a tag, resource
 * tag or event field with exactly that key and value; any other term
 * matches a substring of the span id, service, operation, or any tag or
 * event key or value. Returns null for an empty query.
 */
export function findSpans(trace, query) {
  const terms = (query || '').trim().toLowerCase().split(/\s+/).filter(Boolean);
  if (!terms.length) return null;
  const found = new Set();
  for (const span of trace.spans) {
    const kvs = [...span.tags, ...(span.process.tags || [])];
    for (const log of span.logs) kvs.push(...(log.fields || []));
    const ok = terms.every((term) => {
      const eq = term.indexOf('=');
      if (eq > 0) {
        const k = term.slice(0, eq);
        const v = term.slice(eq + 1);
        return kvs.some((kv) => kv.key.toLowerCase() === k && String(kv.value).toLowerCase() === v);
      }
      return (
        span.spanID.toLowerCase().includes(term) ||
        span.serviceName.toLowerCase().includes(term) ||
        span.operationName.toLowerCase().includes(term) ||
        kvs.some((kv) => kv.key.toLowerCase().includes(term) || String(kv.value).toLowerCase().includes(term))
      );
    });
    if (ok) found.add(span.spanID);
  }
  return found;
}

/** Spans shown by the waterfall, in order: preorder, skipping the descendants of collapsed spans. */
export function visibleSpans(trace, collapsed) {
  if (!collapsed.size) return trace.spans;
  const out = [];
  const spans = trace.spans;
  for (let i = 0; i < spans.length; ) {
    const span = spans[i];
    out.push(span);
    if (collapsed.has(span.spanID)) {
      // Skip the subtree: in preorder it is every following span deeper than this one.
      let j = i + 1;
      while (j < spans.length && spans[j].depth > span.depth) j++;
      i = j;
    } else {
      i++;
    }
  }
  return out;
}

/**
 * A search result's summary without building the tree: the root span (the
 * earliest span whose parent is not in the trace), start, duration, span
 * and error counts, and services with span counts.
 */
export function summarizeTrace(raw) {
  const spans = raw.spans || [];
  const processes = raw.processes || {};
  const ids = new Set(spans.map((s) => s.spanID));
  let root = null;
  let start = Infinity;
  let end = -Infinity;
  let errors = 0;
  const services = new Map();
  for (const s of spans) {
    start = Math.min(start, s.startTime);
    end = Math.max(end, s.startTime + s.duration);
    const ref = s.references?.[0];
    const isRoot = !ref || !ids.has(ref.spanID);
    if (isRoot && (!root || s.startTime < root.startTime)) root = s;
    const tags = s.tags || [];
    if (tags.some((t) => (t.key === 'error' && (t.value === true || t.value === 'true')) || (t.key === 'otel.status_code' && t.value === 'ERROR'))) errors++;
    const name = processes[s.processID]?.serviceName || 'unknown';
    services.set(name, (services.get(name) || 0) + 1);
  }
  root = root || spans[0] || null;
  return {
    traceID: raw.traceID,
    rootService: root ? processes[root.processID]?.serviceName || 'unknown' : 'unknown',
    rootOperation: root ? root.operationName : '',
    startTime: spans.length ? start : 0,
    duration: spans.length ? end - start : 0,
    spanCount: spans.length,
    errorCount: errors,
    services: [...services].map(([name, count]) => ({ name, count })).sort((a, b) => b.count - a.count || a.name.localeCompare(b.name)),
  };
}
