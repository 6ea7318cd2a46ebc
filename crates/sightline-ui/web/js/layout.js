// Lays out the service map: a deterministic layered drawing of the
// dependency graph, left to right. Pure, no DOM.
//
// 1. Cycles are broken by reversing the back edges of a depth-first search
//    (services and edges visited in name order, so the result is stable).
// 2. Each service goes in the layer of its longest path from a source.
// 3. Within a layer, services are ordered by the average position of their
//    neighbours (barycentre), sweeping down and up a few times: few crossings.

/** Approximate width of a label in px, for sizing node boxes. */
export const charWidth = 7.4;

/**
 * `links`: [{parent, child, callCount}] from /api/dependencies.
 * Returns {nodes: [{name, x, y, w, h, layer, callsIn, callsOut}],
 *          edges: [{parent, child, callCount, back, self}], width, height}.
 */
export function layoutGraph(links, opts = {}) {
  const nodeH = opts.nodeHeight ?? 40;
  const rowGap = opts.rowGap ?? 28;
  const colGap = opts.columnGap ?? 110;
  const pad = opts.padding ?? 24;

  const names = [...new Set(links.flatMap((l) => [l.parent, l.child]))].sort();
  const out = new Map(names.map((n) => [n, []]));
  const edges = [];
  const seenPair = new Map();
  const sorted = [...links].sort((a, b) => a.parent.localeCompare(b.parent) || a.child.localeCompare(b.child));
  for (const l of sorted) {
    const key = `${l.parent}\u0000${l.child}`;
    if (seenPair.has(key)) {
      seenPair.get(key).callCount += l.callCount;
      continue;
    }
    const e = { parent: l.parent, child: l.child, callCount: l.callCount, back: false, self: l.parent === l.child };
    seenPair.set(key, e);
    edges.push(e);
    if (!e.self) out.get(l.parent).push(e);
  }
  for (const list of out.values()) list.sort((a, b) => a.child.localeCompare(b.child));

  // 1. Back edges by an iterative DFS (0 = new, 1 = on stack, 2 = done).
  const state = new Map(names.map((n) => [n, 0]));
  for (const start of names) {
    if (state.get(start)) continue;
    const stack = [[start, 0]];
    state.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const list = out.get(top[0]);
      if (top[1] < list.length) {
        const e = list[top[1]++];
        const s = state.get(e.child);
        if (s === 1) e.back = true;
        else if (s === 0) {
          state.set(e.child, 1);
          stack.push([e.child, 0]);
        }
      } else {
        state.set(top[0], 2);
        stack.pop();
      }
    }
  }
  const forward = edges.filter((e) => !e.self && !e.back);

  // 2. Longest-path layers, in topological order (Kahn).
  const indeg = new Map(names.map((n) => [n, 0]));
  for (const e of forward) indeg.set(e.child, indeg.get(e.child) + 1);
  const layer = new Map(names.map((n) => [n, 0]));
  const queue = names.filter((n) => indeg.get(n) === 0);
  for (let qi = 0; qi < queue.length; qi++) {
    const n = queue[qi];
    for (const e of forward) {
      if (e.parent !== n) continue;
      layer.set(e.child, Math.max(layer.get(e.child), layer.get(n) + 1));
      indeg.set(e.child, indeg.get(e.child) - 1);
      if (indeg.get(e.child) === 0) queue.push(e.child);
    }
  }
  const layerCount = names.length ? Math.max(...layer.values()) + 1 : 0;
  const layers = Array.from({ length: layerCount }, () => []);
  for (const n of names) layers[layer.get(n)].push(n);

  // 3. Barycentre ordering.
  const pos = new Map();
  const renumber = () => layers.forEach((l) => l.forEach((n, i) => pos.set(n, i)));
  renumber();
  const neighbours = (n, up) =>
    forward.filter((e) => (up ? e.child === n : e.parent === n)).map((e) => pos.get(up ? e.parent : e.child));
  for (let sweep = 0; sweep < 4; sweep++) {
    const down = sweep % 2 === 0;
    const range = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const l of range) {
      const bary = new Map(
        l.map((n) => {
          const ps = neighbours(n, down);
          return [n, ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : pos.get(n)];
        }),
      );
      l.sort((a, b) => bary.get(a) - bary.get(b) || a.localeCompare(b));
      renumber();
    }
  }

  // Coordinates: columns as wide as their widest label, rows centred.
  const width = (n) => Math.max(96, Math.round(n.length * charWidth) + 28);
  const colW = layers.map((l) => Math.max(...l.map(width)));
  const tallest = Math.max(0, ...layers.map((l) => l.length));
  const height = pad * 2 + tallest * nodeH + Math.max(0, tallest - 1) * rowGap;
  const nodes = [];
  let x = pad;
  layers.forEach((l, li) => {
    const colHeight = l.length * nodeH + (l.length - 1) * rowGap;
    let y = (height - colHeight) / 2;
    for (const n of l) {
      const w = width(n);
      nodes.push({ name: n, layer: li, x: x + (colW[li] - w) / 2, y, w, h: nodeH, callsIn: 0, callsOut: 0 });
      y += nodeH + rowGap;
    }
    x += colW[li] + colGap;
  });
  const byName = new Map(nodes.map((n) => [n.name, n]));
  for (const e of edges) {
    byName.get(e.parent).callsOut += e.callCount;
    byName.get(e.child).callsIn += e.callCount;
  }
  nodes.sort((a, b) => a.name.localeCompare(b.name));
  return { nodes, edges, width: Math.max(x - colGap + pad, pad * 2), height: Math.max(height, pad * 2) };
}
