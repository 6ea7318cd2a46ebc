// The compare page: two traces side by side as a structural diff (spans
// added, removed, slower, faster), aligned by their service:operation path
// from the root (diff.js has the rules).
//
//   /trace/{a}...{b}   Jaeger UI's compare URL, so its links work here
//   /compare           pick two trace ids (also ?a=&b=)
//   ?changes=1         only changed paths (and their ancestors)
//
// Entry points: tick two results on the search page, or any of the URLs.

import * as api from '../api.js';
import { h, mount } from '../dom.js';
import { colorsReady, serviceColor } from '../colors.js';
import { formatCount, formatDuration, formatTimestamp } from '../format.js';
import { buildTrace } from '../trace.js';
import { changedWithAncestors, diffTraces, parseComparePair } from '../diff.js';
import { navigate, setQuery } from '../nav.js';
import { errorState, loading } from '../views/states.js';

const TRACE_ID = /^[0-9a-f]{1,32}$/;

/** The canonical compare URL of two trace ids. */
export function compareUrl(a, b) {
  return `/trace/${encodeURIComponent(a)}...${encodeURIComponent(b)}`;
}

export function comparePage(app, { params, query }) {
  const pair = params[0] ? parseComparePair(params[0]) : { a: (query.get('a') || '').toLowerCase(), b: (query.get('b') || '').toLowerCase() };
  document.title = 'Compare traces · Sightline';
  let alive = true;

  const inputA = h('input', { id: 'compare-a', name: 'a', value: pair.a, placeholder: 'Trace ID A', spellcheck: 'false', autocomplete: 'off' });
  const inputB = h('input', { id: 'compare-b', name: 'b', value: pair.b, placeholder: 'Trace ID B', spellcheck: 'false', autocomplete: 'off' });
  const formError = h('p', { class: 'form-error', role: 'alert' });
  const form = h(
    'form',
    {
      class: 'compare-form',
      'aria-label': 'Traces to compare',
      novalidate: true,
      onsubmit: (e) => {
        e.preventDefault();
        const a = inputA.value.trim().toLowerCase();
        const b = inputB.value.trim().toLowerCase();
        for (const [v, input] of [[a, inputA], [b, inputB]]) {
          if (!TRACE_ID.test(v)) {
            formError.textContent = `${input === inputA ? 'A' : 'B'}: a trace ID is 1 to 32 hexadecimal digits.`;
            input.focus();
            return;
          }
        }
        navigate(compareUrl(a, b));
      },
    },
    h('label', { for: 'compare-a', class: 'compare-label', text: 'A' }),
    inputA,
    h('button', {
      class: 'btn',
      type: 'button',
      text: '⇄',
      title: 'Swap A and B',
      'aria-label': 'Swap A and B',
      onclick: () => {
        [inputA.value, inputB.value] = [inputB.value, inputA.value];
        if (TRACE_ID.test(inputA.value) && TRACE_ID.test(inputB.value)) navigate(compareUrl(inputA.value, inputB.value));
      },
    }),
    h('label', { for: 'compare-b', class: 'compare-label', text: 'B' }),
    inputB,
    h('button', { class: 'btn btn-primary', type: 'submit', text: 'Compare' }),
    formError,
  );
  const body = h('div', { class: 'compare-body' });
  mount(app, h('div', { class: 'compare-page' }, h('header', { class: 'compare-header' }, h('h1', { text: 'Compare traces' }), form), body));

  const load = async () => {
    if (!pair.a || !pair.b) {
      mount(
        body,
        h(
          'div',
          { class: 'state state-hint', dataset: { state: 'compare-pick' } },
          h('h2', { text: 'Pick two traces' }),
          h('p', {}, 'Enter two trace IDs above, or tick two results on the ', h('a', { href: '/search', text: 'search page' }), ' and press “Compare”.'),
        ),
      );
      return;
    }
    mount(body, loading('Loading both traces…'));
    const fetchOne = (id) => (TRACE_ID.test(id) ? api.trace(id) : Promise.reject(Object.assign(new Error(`${id} is not a trace ID`), { status: 400 })));
    const [ra, rb] = await Promise.allSettled([fetchOne(pair.a), fetchOne(pair.b)]);
    await colorsReady();
    if (!alive) return;
    const failed = [[ra, 'A', pair.a], [rb, 'B', pair.b]].filter(([r]) => r.status === 'rejected');
    if (failed.length) {
      const unreachable = failed.find(([r]) => r.reason?.unreachable);
      if (unreachable) {
        mount(body, errorState(unreachable[0].reason, load));
        return;
      }
      mount(
        body,
        h(
          'div',
          { class: 'state state-error', dataset: { state: 'compare-missing' } },
          h('h2', { text: failed.length === 2 ? 'Neither trace was found' : `Trace ${failed[0][1]} was not found` }),
          failed.map(([r, side, id]) => h('p', { dataset: { side } }, `${side}: `, h('code', { text: id }), ` — ${r.reason?.status === 404 ? 'not found' : r.reason?.message || 'failed'}`)),
        ),
      );
      return;
    }
    draw(buildTrace(ra.value), buildTrace(rb.value));
  };

  const draw = (a, b) => {
    const { nodes, summary } = diffTraces(a, b);
    const scale = Math.max(a.duration, b.duration, 1);
    let changesOnly = query.get('changes') === '1';

    const card = (t, side) =>
      h(
        'section',
        { class: `compare-card side-${side.toLowerCase()}`, dataset: { side } },
        h('div', { class: 'compare-side', text: side }),
        h(
          'div',
          { class: 'compare-card-body' },
          h(
            'h2',
            { class: 'compare-title' },
            t.root ? [h('span', { class: 'svc-dot', style: { background: serviceColor(t.root.serviceName) } }), h('strong', { text: t.root.serviceName }), `: ${t.root.operationName}`] : 'Trace',
          ),
          h('a', { class: 'compare-id', href: `/trace/${t.traceID}`, text: t.traceID }),
          h(
            'dl',
            { class: 'trace-meta' },
            meta('start', 'Start', formatTimestamp(t.startTime)),
            meta('duration', 'Duration', formatDuration(t.duration)),
            meta('spans', 'Spans', formatCount(t.spans.length)),
            meta('errors', 'Errors', String(t.errorCount)),
          ),
        ),
      );
    const delta = b.duration - a.duration;
    const badges = h(
      'div',
      { class: 'compare-summary', role: 'status' },
      badge('added', `${summary.added} span${summary.added === 1 ? '' : 's'} added`),
      badge('removed', `${summary.removed} removed`),
      badge('slower', `${summary.slower} slower`),
      badge('faster', `${summary.faster} faster`),
      badge('same', `${summary.same} of ${summary.nodes} paths unchanged`),
      h('span', { class: 'compare-delta', dataset: { delta: String(delta) } }, `Duration ${delta >= 0 ? '+' : '−'}${formatDuration(Math.abs(delta))}${a.duration ? ` (${signedPercent(delta / a.duration)})` : ''}`),
    );
    const toggle = h('input', { type: 'checkbox', id: 'compare-changes', checked: changesOnly });
    const tbody = h('tbody');
    const fill = () => {
      const shown = changesOnly ? changedWithAncestors(nodes) : nodes;
      tbody.replaceChildren(...(shown.length ? shown.map((n) => row(n, a, b, scale)) : [h('tr', {}, h('td', { colspan: '4', class: 'compare-none', text: 'No differences: both traces have the same spans at the same paths, with similar durations.' }))]));
    };
    toggle.addEventListener('change', () => {
      changesOnly = toggle.checked;
      if (changesOnly) query.set('changes', '1');
      else query.delete('changes');
      setQuery(query);
      fill();
    });
    fill();
    mount(
      body,
      h('div', { class: 'compare-cards' }, card(a, 'A'), card(b, 'B')),
      badges,
      h(
        'div',
        { class: 'compare-toolbar' },
        h('label', { class: 'compare-toggle' }, toggle, ' Only changes'),
        h('span', { class: 'muted', text: 'Spans are matched by their service:operation path from the root. Bars share one time scale; a row holds every span at its path.' }),
      ),
      h(
        'table',
        { class: 'compare-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Service: operation' }), h('th', { scope: 'col', text: 'A' }), h('th', { scope: 'col', text: 'B' }), h('th', { scope: 'col', class: 'num', text: 'Change' }))),
        tbody,
      ),
    );
    body.dataset.ready = 'true';
  };

  load();
  return () => {
    alive = false;
  };
}

function meta(key, label, value) {
  return h('div', { class: 'meta-item', dataset: { meta: key } }, h('dt', { text: label }), h('dd', { text: value }));
}

function badge(kind, text) {
  return h('span', { class: `badge diff-badge diff-${kind}`, dataset: { count: kind }, text });
}

function signedPercent(ratio) {
  const pct = ratio * 100;
  const abs = Math.abs(pct);
  return `${pct >= 0 ? '+' : '−'}${abs >= 10 ? Number(abs.toPrecision(3)) : abs.toFixed(1)}%`;
}

/** One side's cell: how many spans, their mean duration, and a bar over where they ran. */
function sideCell(side, trace, scale) {
  if (!side) return h('td', { class: 'compare-cell is-absent', text: '—' });
  const bar = h('span', { class: 'compare-bar' });
  // CSSOM, not a style attribute: allowed under a strict CSP.
  bar.style.left = `${(side.start / scale) * 100}%`;
  bar.style.width = `${Math.max(0.4, ((side.end - side.start) / scale) * 100)}%`;
  const label = `${side.count > 1 ? `${side.count} × ` : ''}${formatDuration(side.mean)}${side.errors ? ` · ${side.errors} error${side.errors === 1 ? '' : 's'}` : ''}`;
  return h(
    'td',
    { class: 'compare-cell' },
    h('a', { class: 'compare-span-link', href: `/trace/${trace.traceID}?span=${side.spanIDs[0]}`, title: 'Open this span in its trace' }, h('span', { class: 'compare-track' }, bar), h('span', { class: 'compare-value', text: label })),
  );
}

function changeText(n) {
  if (n.status === 'added') return `added (${n.b.count})`;
  if (n.status === 'removed') return `removed (${n.a.count})`;
  const parts = [];
  if (n.countDelta) parts.push(`${n.countDelta > 0 ? '+' : '−'}${Math.abs(n.countDelta)} span${Math.abs(n.countDelta) === 1 ? '' : 's'}`);
  if (n.timing) parts.push(`${n.meanDelta > 0 ? '+' : '−'}${formatDuration(Math.abs(n.meanDelta))} (${signedPercent(n.meanDelta / n.a.mean)})`);
  return parts.join(', ') || 'same';
}

function row(n, a, b, scale) {
  return h(
    'tr',
    { class: `diff-row diff-${n.status}`, dataset: { status: n.status, depth: String(n.depth), name: `${n.service}:${n.operation}`, timing: n.timing || '' } },
    h(
      'th',
      { scope: 'row', class: 'compare-name' },
      h('span', { class: 'compare-indent', style: { width: `${n.depth * 16}px` } }),
      h('span', { class: 'svc-dot', style: { background: serviceColor(n.service) } }),
      h('span', { class: 'compare-svc', text: n.service }),
      ': ',
      h('span', { class: 'compare-op', text: n.operation }),
    ),
    sideCell(n.a, a, scale),
    sideCell(n.b, b, scale),
    h('td', { class: 'num compare-change', text: changeText(n) }),
  );
}
