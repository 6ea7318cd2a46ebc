import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTrace, criticalPath, findSpans, selfTime, summarizeTrace, traceStats, visibleSpans } from '../../web/js/trace.js';
import { jaegerTrace, cpObject } from './helpers.mjs';

// The trace the e2e test ingests, in µs from 0 (see e2e/fixture.mjs):
//   A frontend GET /checkout [0,1000]
//   ├ B frontend POST /api/order [10,900]
//   │ └ C checkout PlaceOrder [20,880]
//   │   ├ D inventory SELECT stock [30,230]
//   │   ├ E payments Charge [40,640]  (error)
//   │   │ └ F payments fraud-check [100,400]
//   │   ├ G checkout write order [650,900] (overflows C by 20)
//   │   ├ J checkout cache set [660,700]
//   │   └ I email send receipt [700,1200] FOLLOWS_FROM
//   └ H frontend render [920,980]
const shop = () =>
  jaegerTrace([
    ['A', 'frontend', 'GET /checkout', 0, 1000],
    ['B', 'frontend', 'POST /api/order', 10, 900, 'A'],
    ['C', 'checkout', 'PlaceOrder', 20, 880, 'B'],
    ['D', 'inventory', 'SELECT stock', 30, 230, 'C'],
    ['E', 'payments', 'Charge', 40, 640, 'C', 'CHILD_OF', { tags: [{ key: 'error', type: 'bool', value: true }, { key: 'otel.status_code', type: 'string', value: 'ERROR' }] }],
    ['F', 'payments', 'fraud-check', 100, 400, 'E'],
    ['G', 'checkout', 'write order', 650, 900, 'C'],
    ['J', 'checkout', 'cache set', 660, 700, 'C'],
    ['I', 'email', 'send receipt', 700, 1200, 'C', 'FOLLOWS_FROM'],
    ['H', 'frontend', 'render', 920, 980, 'A'],
  ]);

test('tree: parents, depth, preorder by start time', () => {
  const t = buildTrace(shop());
  assert.deepEqual(t.spans.map((s) => s.spanID), ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'J', 'I', 'H']);
  assert.deepEqual(t.spans.map((s) => s.depth), [0, 1, 2, 3, 3, 4, 3, 3, 3, 1]);
  assert.equal(t.byId.get('F').parent.spanID, 'E');
  assert.equal(t.byId.get('I').parentRefType, 'FOLLOWS_FROM');
  assert.deepEqual(t.roots.map((s) => s.spanID), ['A']);
  assert.equal(t.depth, 5);
  assert.equal(t.duration, 1200);
  assert.equal(t.errorCount, 1);
  assert.deepEqual(t.services, [
    { name: 'checkout', count: 3 },
    { name: 'email', count: 1 },
    { name: 'frontend', count: 3 },
    { name: 'inventory', count: 1 },
    { name: 'payments', count: 2 },
  ]);
});

test('tree: missing parents become roots; cycles are cut', () => {
  const t = buildTrace(
    jaegerTrace([
      ['X', 's', 'x', 5, 10, 'gone'],
      ['P', 's', 'p', 0, 10, 'Q'],
      ['Q', 's', 'q', 1, 10, 'P'],
      ['R', 's', 'r', 2, 3, 'Q'],
    ]),
  );
  assert.equal(t.spans.length, 4);
  assert.deepEqual(t.roots.map((s) => s.spanID), ['X', 'P']);
  assert.deepEqual(t.spans.map((s) => [s.spanID, s.depth]), [['X', 0], ['P', 0], ['Q', 1], ['R', 2]]);
});

test('tree: a reference to another trace is not a parent', () => {
  const raw = jaegerTrace([['A', 's', 'a', 0, 10]]);
  raw.spans[0].references = [{ refType: 'FOLLOWS_FROM', traceID: 'other', spanID: 'A' }];
  const t = buildTrace(raw);
  assert.equal(t.byId.get('A').parent, null);
});

test('self time: duration minus the union of clipped children', () => {
  const t = buildTrace(shop());
  const self = Object.fromEntries(t.spans.map((s) => [s.spanID, s.selfTime]));
  // C [20,880]: children cover [30,640] ∪ [650,880] (G and I clipped) → 860 - 840.
  assert.deepEqual(self, { A: 50, B: 30, C: 20, D: 200, E: 300, F: 300, G: 250, J: 40, I: 500, H: 60 });
  assert.equal(selfTime({ startTime: 0, endTime: 10, duration: 10, children: [] }), 10);
});

test('critical path: the shop trace', () => {
  const cp = criticalPath(buildTrace(shop()));
  assert.deepEqual(cpObject(cp), {
    A: [[0, 10], [900, 920], [980, 1000]],
    B: [[10, 20], [880, 900]],
    C: [[20, 40], [640, 650]],
    E: [[40, 100], [400, 640]],
    F: [[100, 400]],
    G: [[650, 880]],
    H: [[920, 980]],
  });
  // Sections partition the root: their total is the root's duration.
  const total = [...cp.values()].flat().reduce((s, [a, b]) => s + b - a, 0);
  assert.equal(total, 1000);
});

test('critical path: FOLLOWS_FROM children and their subtrees are dropped', () => {
  const cp = criticalPath(
    buildTrace(
      jaegerTrace([
        ['R', 's', 'r', 0, 100],
        ['Q', 's', 'queue', 10, 90, 'R', 'FOLLOWS_FROM'],
        ['W', 's', 'work', 20, 80, 'Q'],
      ]),
    ),
  );
  assert.deepEqual(cpObject(cp), { R: [[0, 100]] });
});

test('critical path: children are clipped to their parent; children outside are dropped', () => {
  const cp = criticalPath(
    buildTrace(
      jaegerTrace([
        ['R', 's', 'r', 100, 200],
        ['early', 's', 'e', 50, 120, 'R'],
        ['late', 's', 'l', 180, 260, 'R'],
        ['after', 's', 'a', 200, 300, 'R'],
        ['before', 's', 'b', 0, 100, 'R'],
        ['deep', 's', 'd', 150, 250, 'late'],
      ]),
    ),
  );
  assert.deepEqual(cpObject(cp), {
    R: [[120, 180]],
    deep: [[180, 200]],
    early: [[100, 120]],
  });
});

test('critical path: back-to-back children are both on the path', () => {
  const cp = criticalPath(
    buildTrace(
      jaegerTrace([
        ['R', 's', 'r', 0, 20],
        ['one', 's', '1', 0, 10, 'R'],
        ['two', 's', '2', 10, 20, 'R'],
        ['zero', 's', 'z', 10, 10, 'R'],
      ]),
    ),
  );
  assert.deepEqual(cpObject(cp), { one: [[0, 10]], two: [[10, 20]] });
});

test('critical path: parallel children, only the blocking chain counts', () => {
  // Jaeger UI's own example: A with B and C overlapping, LFC is C.
  const cp = criticalPath(
    buildTrace(
      jaegerTrace([
        ['A', 's', 'a', 0, 100],
        ['B', 's', 'b', 5, 60, 'A'],
        ['C', 's', 'c', 50, 90, 'A'],
        ['D', 's', 'd', 10, 40, 'A'],
      ]),
    ),
  );
  // From 100 back: C [50,90]; then a child ending ≤ 50: D [10,40] (B ends at 60, overlapping C).
  assert.deepEqual(cpObject(cp), { A: [[0, 10], [40, 50], [90, 100]], C: [[50, 90]], D: [[10, 40]] });
});

test('critical path: a 5,000-deep chain does not overflow the stack', () => {
  const rows = [];
  for (let i = 0; i < 5000; i++) rows.push([`s${i}`, 'svc', 'op', i, 10000 - i, i ? `s${i - 1}` : undefined]);
  const t = buildTrace(jaegerTrace(rows));
  assert.equal(t.depth, 5000);
  const cp = criticalPath(t);
  assert.equal(cp.size, 5000);
});

test('statistics: totals by service and operation', () => {
  const stats = traceStats(buildTrace(shop()));
  const checkout = stats.services.find((s) => s.service === 'checkout');
  assert.equal(checkout.count, 3);
  assert.equal(checkout.total, 860 + 250 + 40);
  assert.equal(checkout.selfTotal, 20 + 250 + 40);
  assert.deepEqual(checkout.operations.map((o) => [o.operation, o.count, o.total, o.selfTotal]), [
    ['cache set', 1, 40, 40],
    ['PlaceOrder', 1, 860, 20],
    ['write order', 1, 250, 250],
  ]);
  const payments = stats.services.find((s) => s.service === 'payments');
  assert.equal(payments.errors, 1);
  assert.equal(payments.max, 600);
  assert.equal(payments.min, 300);
  assert.equal(stats.all.count, 10);
  assert.equal(stats.all.selfTotal, 50 + 30 + 20 + 200 + 300 + 300 + 250 + 40 + 500 + 60);
});

test('find: substrings AND-ed, key=value exact', () => {
  const raw = shop();
  raw.spans[4].tags.push({ key: 'http.status_code', type: 'int64', value: 502 });
  raw.spans[4].logs.push({ timestamp: 50, fields: [{ key: 'event', type: 'string', value: 'exception' }] });
  const t = buildTrace(raw);
  const ids = (q) => [...(findSpans(t, q) || [])].sort();
  assert.equal(findSpans(t, '   '), null);
  assert.deepEqual(ids('checkout'), ['A', 'C', 'G', 'J']);
  assert.deepEqual(ids('CHECKOUT order'), ['C', 'G']);
  assert.deepEqual(ids('http.status_code=502'), ['E']);
  assert.deepEqual(ids('http.status_code=50'), []);
  assert.deepEqual(ids('exception'), ['E']);
  assert.deepEqual(ids('payments'), ['E', 'F']);
});

test('visible spans skip collapsed subtrees', () => {
  const t = buildTrace(shop());
  assert.equal(visibleSpans(t, new Set()).length, 10);
  assert.deepEqual(visibleSpans(t, new Set(['C'])).map((s) => s.spanID), ['A', 'B', 'C', 'H']);
  assert.deepEqual(visibleSpans(t, new Set(['E', 'A'])).map((s) => s.spanID), ['A']);
  assert.deepEqual(visibleSpans(t, new Set(['E'])).map((s) => s.spanID), ['A', 'B', 'C', 'D', 'E', 'G', 'J', 'I', 'H']);
});

test('summary: root, duration, counts, services', () => {
  const s = summarizeTrace(shop());
  assert.deepEqual(s, {
    traceID: 't1',
    rootService: 'frontend',
    rootOperation: 'GET /checkout',
    startTime: 0,
    duration: 1200,
    spanCount: 10,
    errorCount: 1,
    services: [
      { name: 'checkout', count: 3 },
      { name: 'frontend', count: 3 },
      { name: 'payments', count: 2 },
      { name: 'email', count: 1 },
      { name: 'inventory', count: 1 },
    ],
  });
});
