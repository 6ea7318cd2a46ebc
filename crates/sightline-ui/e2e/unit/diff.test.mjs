import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTrace } from '../../web/js/trace.js';
import { changedWithAncestors, diffTraces, parseComparePair } from '../../web/js/diff.js';
import { jaegerTrace } from './helpers.mjs';

// Times in µs. A and B share a shape with differences of every kind.
const A = buildTrace(
  jaegerTrace(
    [
      ['a1', 'frontend', 'GET /', 0, 10_000],
      ['a2', 'checkout', 'Place', 100, 8_000, 'a1'],
      ['a3', 'payments', 'Charge', 200, 5_000, 'a2'],
      ['a4', 'inventory', 'SELECT', 300, 800, 'a2'],
      ['a5', 'inventory', 'SELECT', 900, 1_400, 'a2'],
      ['a6', 'frontend', 'render', 9_000, 9_500, 'a1'],
      ['a7', 'checkout', 'cache', 6_000, 6_050, 'a2'],
    ],
    'ta',
  ),
);
const B = buildTrace(
  jaegerTrace(
    [
      ['b1', 'frontend', 'GET /', 0, 15_000],
      ['b2', 'checkout', 'Place', 100, 13_000, 'b1'],
      ['b3', 'payments', 'Charge', 200, 11_000, 'b2'],
      ['b4', 'inventory', 'SELECT', 300, 800, 'b2'],
      ['b8', 'email', 'send', 11_500, 12_000, 'b2'],
      // 50 µs → 90 µs: +80 % but only 40 µs, under the noise floor.
      ['b7', 'checkout', 'cache', 6_000, 6_090, 'b2'],
    ],
    'tb',
  ),
);

test('nodes align by service:operation path and say what changed', () => {
  const { nodes, summary } = diffTraces(A, B);
  const rows = nodes.map((n) => [n.depth, `${n.service}:${n.operation}`, n.status, n.a?.count ?? 0, n.b?.count ?? 0, n.timing]);
  assert.deepEqual(rows, [
    [0, 'frontend:GET /', 'slower', 1, 1, 'slower'],
    [1, 'checkout:Place', 'slower', 1, 1, 'slower'],
    [2, 'payments:Charge', 'slower', 1, 1, 'slower'],
    [2, 'inventory:SELECT', 'fewer', 2, 1, null],
    [2, 'checkout:cache', 'same', 1, 1, null],
    [2, 'email:send', 'added', 0, 1, null],
    [1, 'frontend:render', 'removed', 1, 0, null],
  ]);
  assert.deepEqual(summary, { added: 1, removed: 2, slower: 3, faster: 0, same: 1, nodes: 7 });
  const charge = nodes.find((n) => n.operation === 'Charge');
  assert.equal(charge.meanDelta, 10_800 - 4_800);
  assert.deepEqual(charge.a.spanIDs, ['a3']);
  assert.deepEqual(charge.b.spanIDs, ['b3']);
  const select = nodes.find((n) => n.operation === 'SELECT');
  assert.equal(select.a.mean, 500);
  assert.equal(select.a.start, 300);
  assert.equal(select.a.end, 1_400);
  assert.equal(select.countDelta, -1);
});

test('the comparison is symmetric: swapping A and B swaps added/removed and slower/faster', () => {
  const { nodes, summary } = diffTraces(B, A);
  const status = Object.fromEntries(nodes.map((n) => [`${n.service}:${n.operation}`, n.status]));
  assert.deepEqual(status, {
    'frontend:GET /': 'faster',
    'checkout:Place': 'faster',
    'payments:Charge': 'faster',
    'inventory:SELECT': 'more',
    'checkout:cache': 'same',
    'email:send': 'removed',
    'frontend:render': 'added',
  });
  assert.deepEqual(summary, { added: 2, removed: 1, slower: 0, faster: 3, same: 1, nodes: 7 });
});

test('a trace compared with itself has no changes', () => {
  const { nodes, summary } = diffTraces(A, A);
  assert.ok(nodes.every((n) => n.status === 'same'));
  assert.deepEqual(summary, { added: 0, removed: 0, slower: 0, faster: 0, same: 6, nodes: 6 });
  assert.deepEqual(changedWithAncestors(nodes), []);
});

test('thresholds decide what counts as slower', () => {
  const strict = diffTraces(A, B, { minRatio: 0.6, minMicros: 10 });
  const cache = strict.nodes.find((n) => n.operation === 'cache');
  assert.equal(cache.status, 'slower', '+80 % and 40 µs passes 60 % / 10 µs');
  const place = strict.nodes.find((n) => n.operation === 'Place');
  assert.equal(place.status, 'slower', '7.9 ms → 12.9 ms is +63 %');
  const root = strict.nodes.find((n) => n.operation === 'GET /');
  assert.equal(root.status, 'same', '10 ms → 15 ms is +50 %, under 60 %');
});

test('the same operation under different parents is two nodes', () => {
  const t = buildTrace(
    jaegerTrace([
      ['r', 'api', 'root', 0, 100],
      ['x', 'api', 'auth', 0, 10, 'r'],
      ['y', 'db', 'query', 0, 5, 'x'],
      ['z', 'db', 'query', 20, 30, 'r'],
    ]),
  );
  const { nodes } = diffTraces(t, t);
  assert.deepEqual(
    nodes.map((n) => `${'  '.repeat(n.depth)}${n.service}:${n.operation}`),
    ['api:root', '  api:auth', '    db:query', '  db:query'],
  );
});

test('a trace thousands of spans deep: every path its own node, keys stay short', () => {
  const rows = [];
  for (let i = 0; i < 5000; i++) rows.push([`s${i}`, 'svc', 'recurse', i, 10_000 - i, i ? `s${i - 1}` : undefined]);
  const deep = buildTrace(jaegerTrace(rows));
  const { nodes, summary } = diffTraces(deep, deep);
  assert.equal(nodes.length, 5000);
  assert.equal(nodes[4999].depth, 4999);
  assert.equal(summary.same, 5000);
  assert.ok(nodes.every((n) => String(n.key).length < 10), 'keys are path numbers, not spelled-out paths');
});

test('changes-only view keeps changed nodes and their ancestors', () => {
  const { nodes } = diffTraces(A, B);
  const kept = changedWithAncestors(nodes).map((n) => n.operation);
  assert.deepEqual(kept, ['GET /', 'Place', 'Charge', 'SELECT', 'send', 'render']);
});

test('compare URL pairs', () => {
  assert.deepEqual(parseComparePair('AB...cd'), { a: 'ab', b: 'cd' });
  assert.deepEqual(parseComparePair('ab...'), { a: 'ab', b: '' });
  assert.deepEqual(parseComparePair('ab'), { a: 'ab', b: '' });
});
