import { test } from 'node:test';
import assert from 'node:assert/strict';
import { layoutGraph } from '../../web/js/layout.js';

const links = [
  { parent: 'frontend', child: 'checkout', callCount: 3 },
  { parent: 'checkout', child: 'payments', callCount: 2 },
  { parent: 'checkout', child: 'inventory', callCount: 1 },
  { parent: 'frontend', child: 'inventory', callCount: 4 },
];

test('layers follow the longest path; nodes do not overlap', () => {
  const g = layoutGraph(links);
  const layer = Object.fromEntries(g.nodes.map((n) => [n.name, n.layer]));
  assert.deepEqual(layer, { checkout: 1, frontend: 0, inventory: 2, payments: 2 });
  for (const a of g.nodes)
    for (const b of g.nodes)
      if (a !== b) assert.ok(a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y, `${a.name} / ${b.name}`);
  for (const n of g.nodes) assert.ok(n.x >= 0 && n.y >= 0 && n.x + n.w <= g.width && n.y + n.h <= g.height);
  const fe = g.nodes.find((n) => n.name === 'frontend');
  assert.equal(fe.callsOut, 7);
  assert.equal(fe.callsIn, 0);
});

test('cycles, self calls and duplicates', () => {
  const g = layoutGraph([
    { parent: 'a', child: 'b', callCount: 1 },
    { parent: 'b', child: 'a', callCount: 1 },
    { parent: 'b', child: 'b', callCount: 5 },
    { parent: 'a', child: 'b', callCount: 2 },
  ]);
  assert.equal(g.nodes.length, 2);
  assert.deepEqual(g.edges.map((e) => [e.parent, e.child, e.callCount, e.back, e.self]), [
    ['a', 'b', 3, false, false],
    ['b', 'a', 1, true, false],
    ['b', 'b', 5, false, true],
  ]);
  assert.deepEqual(g.nodes.map((n) => n.layer), [0, 1]);
});

test('deterministic and empty', () => {
  assert.deepEqual(layoutGraph(links), layoutGraph([...links].reverse()));
  const empty = layoutGraph([]);
  assert.deepEqual(empty.nodes, []);
});
