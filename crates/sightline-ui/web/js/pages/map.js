// The service map: which service calls which, from /api/dependencies, as a
// layered graph (callers left of callees) with call counts on the edges,
// plus the same data as a table. URL state: /dependencies?lookback=24h.

import * as api from '../api.js';
import { h, mount, svg } from '../dom.js';
import { colorsReady, serviceColor } from '../colors.js';
import { LOOKBACKS, formatCount, lookbackMicros } from '../format.js';
import { layoutGraph } from '../layout.js';
import { navigate } from '../nav.js';
import { errorState, loading } from '../views/states.js';

export function mapPage(app, { query }) {
  document.title = 'Service map · Sightline';
  let alive = true;
  const lookback = lookbackMicros(query.get('lookback')) ? query.get('lookback') : '24h';

  const picker = h(
    'select',
    {
      id: 'map-lookback',
      onchange: (e) => navigate(`/dependencies?lookback=${e.target.value}`),
    },
    LOOKBACKS.map(([v, label]) => h('option', { value: v, selected: v === lookback, text: label })),
  );
  const body = h('div', { class: 'map-body' });
  mount(
    app,
    h(
      'div',
      { class: 'map-page' },
      h('header', { class: 'map-header' }, h('h1', { text: 'Service map' }), h('label', { for: 'map-lookback', class: 'visually-hidden', text: 'Time range' }), picker),
      body,
    ),
  );

  const load = async () => {
    mount(body, loading('Loading dependencies…'));
    let links;
    try {
      links = await api.dependencies(Date.now(), lookbackMicros(lookback) / 1000);
      await colorsReady();
    } catch (e) {
      if (alive) mount(body, errorState(e, load));
      return;
    }
    if (!alive) return;
    if (!links.length) {
      mount(
        body,
        h(
          'div',
          { class: 'state state-hint', dataset: { state: 'no-dependencies' } },
          h('h2', { text: 'No service calls in this range' }),
          h('p', { text: 'Edges appear when a span of one service has a child span in another service. Try a longer range, or check that your services propagate trace context.' }),
        ),
      );
      return;
    }
    draw(links);
  };

  const draw = (links) => {
    const g = layoutGraph(links);
    const byName = new Map(g.nodes.map((n) => [n.name, n]));
    const maxCalls = Math.max(...g.edges.map((e) => e.callCount));
    const widthOf = (c) => 1.5 + 3.5 * (Math.log(1 + c) / Math.log(1 + maxCalls));
    let focus = null;

    const edgeEls = g.edges.map((e) => {
      const a = byName.get(e.parent);
      const b = byName.get(e.child);
      let d;
      let lx;
      let ly;
      if (e.self) {
        const x = a.x + a.w / 2;
        d = `M ${x - 14} ${a.y} C ${x - 30} ${a.y - 46}, ${x + 30} ${a.y - 46}, ${x + 14} ${a.y}`;
        lx = x;
        ly = a.y - 40;
      } else if (b.x > a.x) {
        const x1 = a.x + a.w;
        const y1 = a.y + a.h / 2;
        const x2 = b.x;
        const y2 = b.y + b.h / 2;
        const mx = (x1 + x2) / 2;
        d = `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2 - 2} ${y2}`;
        lx = mx;
        ly = (y1 + y2) / 2 - 6;
      } else {
        // back edge: loop under the nodes
        const x1 = a.x + a.w / 2;
        const y1 = a.y + a.h;
        const x2 = b.x + b.w / 2;
        const y2 = b.y + b.h;
        const dip = Math.max(y1, y2) + 36;
        d = `M ${x1} ${y1} C ${x1} ${dip}, ${x2} ${dip}, ${x2} ${y2 + 2}`;
        lx = (x1 + x2) / 2;
        ly = dip - 4;
      }
      return svg(
        'g',
        { class: 'edge', dataset: { parent: e.parent, child: e.child, calls: String(e.callCount) } },
        svg('path', { d, 'stroke-width': widthOf(e.callCount).toFixed(2), 'marker-end': 'url(#arrow)' }),
        svg('text', { class: 'edge-label', x: lx, y: ly, 'text-anchor': 'middle', text: formatCount(e.callCount) }),
        svg('title', { text: `${e.parent} → ${e.child}: ${formatCount(e.callCount)} call${e.callCount === 1 ? '' : 's'}` }),
      );
    });
    const nodeEls = g.nodes.map((n) =>
      svg(
        'g',
        {
          class: 'node',
          dataset: { service: n.name },
          tabindex: '0',
          role: 'button',
          'aria-label': `${n.name}: ${formatCount(n.callsIn)} calls in, ${formatCount(n.callsOut)} calls out. Press Enter to search its traces.`,
          onclick: () => setFocus(focus === n.name ? null : n.name),
          ondblclick: () => navigate(`/search?service=${encodeURIComponent(n.name)}`),
          onkeydown: (ev) => {
            if (ev.key === 'Enter') navigate(`/search?service=${encodeURIComponent(n.name)}`);
          },
        },
        svg('rect', { x: n.x, y: n.y, width: n.w, height: n.h, rx: 8 }),
        svg('rect', { class: 'node-stripe', x: n.x, y: n.y, width: 6, height: n.h, rx: 3, fill: serviceColor(n.name) }),
        svg('text', { x: n.x + n.w / 2 + 3, y: n.y + n.h / 2 + 4.5, 'text-anchor': 'middle', text: n.name }),
        svg('title', { text: `${n.name}\n${formatCount(n.callsIn)} calls in · ${formatCount(n.callsOut)} calls out\nclick: highlight · double-click: search` }),
      ),
    );
    const hasSelfOrBack = g.edges.some((e) => e.self || e.back);
    const pad = hasSelfOrBack ? 50 : 0;
    const graph = svg(
      'svg',
      {
        class: 'map-graph',
        width: g.width,
        height: g.height + pad * 2,
        viewBox: `0 ${-pad} ${g.width} ${g.height + pad * 2}`,
        role: 'img',
        'aria-label': `Service map: ${g.nodes.length} services, ${g.edges.length} dependencies`,
      },
      svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '9', refY: '5', markerWidth: '7', markerHeight: '7', orient: 'auto-start-reverse', markerUnits: 'userSpaceOnUse' }, svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }))),
      edgeEls,
      nodeEls,
    );
    const setFocus = (name) => {
      focus = name;
      graph.classList.toggle('has-focus', !!name);
      for (const el of edgeEls) el.classList.toggle('is-on', !!name && (el.dataset.parent === name || el.dataset.child === name));
      for (const el of nodeEls) {
        const on = !!name && (el.dataset.service === name || g.edges.some((e) => (e.parent === name && e.child === el.dataset.service) || (e.child === name && e.parent === el.dataset.service)));
        el.classList.toggle('is-on', on);
      }
    };
    const total = g.edges.reduce((s, e) => s + e.callCount, 0);
    mount(
      body,
      h('p', { class: 'map-summary', text: `${g.nodes.length} services · ${g.edges.length} dependencies · ${formatCount(total)} calls. Click a service to highlight its calls; double-click to search its traces.` }),
      h('div', { class: 'map-canvas' }, graph),
      h(
        'table',
        { class: 'map-table' },
        h('caption', { text: 'Calls between services' }),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Caller' }), h('th', { scope: 'col', text: 'Callee' }), h('th', { scope: 'col', class: 'num', text: 'Calls' }))),
        h(
          'tbody',
          {},
          [...g.edges]
            .sort((a, b) => b.callCount - a.callCount || a.parent.localeCompare(b.parent) || a.child.localeCompare(b.child))
            .map((e) =>
              h(
                'tr',
                { dataset: { parent: e.parent, child: e.child } },
                h('td', {}, h('a', { href: `/search?service=${encodeURIComponent(e.parent)}`, text: e.parent })),
                h('td', {}, h('a', { href: `/search?service=${encodeURIComponent(e.child)}`, text: e.child })),
                h('td', { class: 'num', text: formatCount(e.callCount) }),
              ),
            ),
        ),
      ),
    );
  };

  load();
  return () => {
    alive = false;
  };
}
