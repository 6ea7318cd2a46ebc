// The trace page: header, minimap, waterfall with the critical path, span
// details, find-in-trace, statistics, the trace's log records and JSON
// download. URL state:
// /trace/{id}?span=<spanID>&find=<text>&view=stats|logs&zoom=<from>,<to>.
//
// The trace's logs are one `/api/logs?traceID=…&limit=1000` fetched beside
// the trace: each span's records show as a count in its waterfall row and
// in its details; the Logs tab lists them all (records whose span is not in
// the trace, or that have none, belong to the trace only). The trace never
// waits for its logs: they are filled in when they arrive (the page's
// `data-logs` says `ready` or `failed`).

import * as api from '../api.js';
import { h, mount } from '../dom.js';
import { colorsReady, serviceColor } from '../colors.js';
import { formatCount, formatDuration, formatTimestamp } from '../format.js';
import { buildTrace, criticalPath, findSpans, visibleSpans } from '../trace.js';
import { setQuery } from '../nav.js';
import { errorState, loading } from '../views/states.js';
import { createWaterfall } from '../views/waterfall.js';
import { createMinimap } from '../views/minimap.js';
import { spanDetail } from '../views/detail.js';
import { statsView } from '../views/stats.js';
import { logRecordList } from '../views/logrecords.js';
import { MAX_LIMIT, chronological, groupBySpan } from '../logs.js';

const TRACE_ID = /^[0-9a-f]{1,32}$/i;

export function tracePage(app, { params, query }) {
  const id = params[0].toLowerCase();
  document.title = `Trace ${id.slice(0, 7)} · Sightline`;
  let alive = true;
  let teardown = () => {};
  const cleanup = () => {
    alive = false;
    teardown();
  };

  if (!TRACE_ID.test(id)) {
    mount(app, notFound(id, 'is not a trace ID: trace IDs are up to 32 hexadecimal digits.'));
    return cleanup;
  }

  const load = async () => {
    mount(app, loading('Loading trace…'));
    performance.clearMarks();
    performance.mark('sightline:trace-fetch');
    // In parallel with the trace; a failure (no log store: 501) only
    // leaves the logs out.
    const logs = api.logs({ traceID: id, limit: MAX_LIMIT }).catch((error) => ({ error }));
    let raw;
    try {
      raw = await api.trace(id);
      await colorsReady();
    } catch (e) {
      if (!alive) return;
      if (e.status === 404) mount(app, notFound(id, 'was not found.'));
      else mount(app, errorState(e, load));
      return;
    }
    if (!alive) return;
    performance.mark('sightline:trace-loaded');
    teardown = show(app, raw, query, logs);
  };
  load();
  return cleanup;
}

function notFound(id, why) {
  document.title = 'Trace not found · Sightline';
  return h(
    'div',
    { class: 'state state-error', dataset: { state: 'trace-not-found' } },
    h('h1', { text: 'Trace not found' }),
    h('p', {}, 'Trace ', h('code', { text: id }), ` ${why}`),
    h('p', { class: 'muted', text: 'It may not have arrived yet, or retention may have removed it.' }),
    h('p', {}, h('a', { class: 'btn', href: '/search', text: 'Search traces' })),
  );
}

/** `logsPromise`: resolves to {records, next} of the trace's first log page, or {error}. */
function show(app, raw, query, logsPromise) {
  const trace = buildTrace(raw);
  // Until the logs arrive: null (the tab and the details say they are loading).
  let logs = null;
  let logGroups = null;
  const critical = criticalPath(trace);
  performance.mark('sightline:model-built');
  const root = trace.root;
  document.title = `${root ? `${root.serviceName}: ${root.operationName}` : trace.traceID} · Sightline`;

  const state = {
    collapsed: new Set(),
    selected: query.get('span') && trace.byId.has(query.get('span')) ? query.get('span') : null,
    find: query.get('find') || '',
    matches: null,
    matchList: [],
    cursor: -1,
    view: parseZoom(query.get('zoom')),
    tab: ['stats', 'logs'].includes(query.get('view')) ? query.get('view') : 'timeline',
  };

  const syncUrl = () => {
    const q = new URLSearchParams();
    if (state.tab !== 'timeline') q.set('view', state.tab);
    if (state.selected) q.set('span', state.selected);
    if (state.find) q.set('find', state.find);
    if (state.view[0] !== 0 || state.view[1] !== 1) q.set('zoom', `${state.view[0].toFixed(4)},${state.view[1].toFixed(4)}`);
    setQuery(q);
  };

  // ---- header
  const meta = (key, label, value) => h('div', { class: 'meta-item', dataset: { meta: key } }, h('dt', { text: label }), h('dd', { text: value }));
  const header = h(
    'header',
    { class: 'trace-header' },
    h(
      'div',
      { class: 'trace-title-row' },
      h(
        'h1',
        { class: 'trace-title' },
        root ? [h('span', { class: 'svc-dot', style: { background: serviceColor(root.serviceName) } }), h('span', { class: 'trace-root-service', text: root.serviceName }), ': ', h('span', { class: 'trace-root-op', text: root.operationName })] : 'Trace',
      ),
      h('code', { class: 'trace-id', title: 'Trace ID', text: trace.traceID }),
    ),
    h(
      'dl',
      { class: 'trace-meta' },
      meta('start', 'Start', formatTimestamp(trace.startTime)),
      meta('duration', 'Duration', formatDuration(trace.duration)),
      meta('services', 'Services', String(trace.services.length)),
      meta('depth', 'Depth', String(trace.depth)),
      meta('spans', 'Spans', formatCount(trace.spans.length)),
      meta('errors', 'Errors', String(trace.errorCount)),
    ),
    h(
      'div',
      { class: 'trace-services' },
      trace.services.map((s) => h('span', { class: 'chip', dataset: { service: s.name } }, h('span', { class: 'svc-dot', style: { background: serviceColor(s.name) } }), `${s.name} (${s.count})`)),
    ),
  );

  // ---- toolbar
  const tabTimeline = h('button', { class: 'tab', type: 'button', role: 'tab', text: 'Timeline', dataset: { tab: 'timeline' } });
  const tabStats = h('button', { class: 'tab', type: 'button', role: 'tab', text: 'Statistics', dataset: { tab: 'stats' } });
  // Its count is added when the trace's logs arrive.
  const tabLogs = h('button', { class: 'tab', type: 'button', role: 'tab', text: 'Logs', dataset: { tab: 'logs' } });
  const findInput = h('input', {
    class: 'find-input',
    type: 'search',
    placeholder: 'Find in trace…  ( / )',
    'aria-label': 'Find spans in this trace',
    value: state.find,
    spellcheck: 'false',
    autocomplete: 'off',
  });
  const findCount = h('span', { class: 'find-count', 'aria-live': 'polite' });
  const prevBtn = h('button', { class: 'btn btn-small', type: 'button', text: '▲', 'aria-label': 'Previous match', title: 'Previous match (Shift+Enter)' });
  const nextBtn = h('button', { class: 'btn btn-small', type: 'button', text: '▼', 'aria-label': 'Next match', title: 'Next match (Enter)' });
  const download = h('button', { class: 'btn', type: 'button', text: 'Download JSON', title: 'The trace as the API returns it, wrapped as {"data": [trace]}' });
  const toolbar = h(
    'div',
    { class: 'trace-toolbar' },
    h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Trace views' }, tabTimeline, tabStats, tabLogs),
    h('div', { class: 'find', role: 'search' }, findInput, findCount, prevBtn, nextBtn),
    h('span', { class: 'legend', 'aria-hidden': 'true' }, h('span', { class: 'legend-cp' }), 'critical path', h('span', { class: 'legend-err', text: '!' }), 'error'),
    download,
  );

  // ---- timeline
  const minimap = createMinimap({ trace, onView: (v) => setView(v) });
  const waterfall = createWaterfall({
    trace,
    critical,
    onSelect: (span) => select(span ? span.spanID : null),
    onToggle: (span) => toggle(span),
    onExpandAll: () => setCollapsed(new Set()),
    onCollapseAll: () => setCollapsed(new Set(trace.spans.filter((s) => s.children.length).map((s) => s.spanID))),
  });
  const detailSlot = h('div', { class: 'detail-slot' });
  const timeline = h('div', { class: 'timeline-view', role: 'tabpanel' }, minimap.el, h('div', { class: 'trace-split' }, waterfall.el, detailSlot));
  const stats = h('div', { class: 'stats-view', role: 'tabpanel' });
  const logsView = h('div', { class: 'logs-view', role: 'tabpanel' });
  const page = h('div', { class: 'trace-page' }, header, toolbar, timeline, stats, logsView);
  mount(app, page);

  function setView(v) {
    state.view = v;
    minimap.setView(v);
    waterfall.setView(v);
    syncUrl();
  }

  function setCollapsed(next, keep) {
    state.collapsed = next;
    waterfall.setRows(visibleSpans(trace, next), next, keep);
  }

  function toggle(span) {
    const next = new Set(state.collapsed);
    if (next.has(span.spanID)) next.delete(span.spanID);
    else next.add(span.spanID);
    setCollapsed(next, span);
  }

  /** Expands every collapsed ancestor of `span` so its row exists. */
  function expandTo(span) {
    let changed = false;
    const next = new Set(state.collapsed);
    for (let p = span.parent; p; p = p.parent) if (next.delete(p.spanID)) changed = true;
    if (changed) setCollapsed(next, span);
  }

  function drawDetail(span) {
    detailSlot.replaceChildren(
      spanDetail(span, {
        trace,
        critical,
        logs: logGroups ? logGroups.bySpan.get(span.spanID) || [] : logs ? null : 'loading',
        onSelect: (s) => select(s.spanID),
        onClose: () => {
          select(null);
          waterfall.body.focus();
        },
      }),
    );
  }

  function select(id) {
    state.selected = id;
    const span = id ? trace.byId.get(id) : null;
    if (span) {
      expandTo(span);
      waterfall.setSelected(id);
      waterfall.reveal(span);
      drawDetail(span);
      page.classList.add('has-detail');
    } else {
      waterfall.setSelected(null);
      detailSlot.replaceChildren();
      page.classList.remove('has-detail');
    }
    syncUrl();
  }

  function runFind() {
    state.find = findInput.value.trim();
    state.matches = findSpans(trace, state.find);
    state.matchList = state.matches ? trace.spans.filter((s) => state.matches.has(s.spanID)) : [];
    state.cursor = -1;
    waterfall.setMatches(state.matches);
    minimap.setMatches(state.matches);
    updateCount();
    syncUrl();
  }

  function updateCount() {
    if (!state.matches) findCount.textContent = '';
    else if (!state.matchList.length) findCount.textContent = 'no matches';
    else if (state.cursor < 0) findCount.textContent = `${state.matchList.length} match${state.matchList.length === 1 ? '' : 'es'}`;
    else findCount.textContent = `${state.cursor + 1} of ${state.matchList.length}`;
    prevBtn.disabled = nextBtn.disabled = !state.matchList.length;
  }

  function step(delta) {
    if (!state.matchList.length) return;
    const n = state.matchList.length;
    state.cursor = state.cursor < 0 ? (delta > 0 ? 0 : n - 1) : (state.cursor + delta + n) % n;
    const span = state.matchList[state.cursor];
    expandTo(span);
    waterfall.reveal(span);
    updateCount();
  }

  function setTab(tab) {
    state.tab = tab;
    const isStats = tab === 'stats';
    const isLogs = tab === 'logs';
    tabTimeline.setAttribute('aria-selected', String(!isStats && !isLogs));
    tabStats.setAttribute('aria-selected', String(isStats));
    tabLogs.setAttribute('aria-selected', String(isLogs));
    timeline.hidden = isStats || isLogs;
    stats.hidden = !isStats;
    logsView.hidden = !isLogs;
    if (isStats && !stats.firstChild) stats.append(statsView(trace));
    if (isLogs && !logsView.firstChild) logsView.append(logs ? traceLogs(trace, logs, (span) => (setTab('timeline'), select(span.spanID))) : loading('Loading the trace\'s logs…'));
    if (!isStats && !isLogs) {
      minimap.redraw();
      waterfall.render();
    }
    syncUrl();
  }

  let findTimer = null;
  findInput.addEventListener('input', () => {
    clearTimeout(findTimer);
    findTimer = setTimeout(runFind, trace.spans.length > 2000 ? 200 : 60);
  });
  findInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      clearTimeout(findTimer);
      if (findInput.value.trim() !== state.find) runFind();
      step(e.shiftKey ? -1 : 1);
    } else if (e.key === 'Escape') {
      findInput.value = '';
      runFind();
      waterfall.body.focus();
    }
  });
  prevBtn.addEventListener('click', () => step(-1));
  nextBtn.addEventListener('click', () => step(1));
  tabTimeline.addEventListener('click', () => setTab('timeline'));
  tabStats.addEventListener('click', () => setTab('stats'));
  tabLogs.addEventListener('click', () => setTab('logs'));
  download.addEventListener('click', () => {
    const blob = new Blob([JSON.stringify({ data: [raw] }, null, 2)], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `trace-${trace.traceID}.json`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  });

  const onKey = (e) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement?.tagName || '');
    if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      findInput.focus();
      findInput.select();
    } else if (e.key === 'Escape' && !typing && state.selected) {
      select(null);
    }
  };
  document.addEventListener('keydown', onKey);

  // First render.
  waterfall.setRows(trace.spans, state.collapsed);
  setView(state.view);
  setTab(state.tab);
  if (state.find) runFind();
  else updateCount();
  if (state.selected) select(state.selected);
  requestAnimationFrame(() => performance.mark('sightline:waterfall-rendered'));
  page.dataset.ready = 'true';

  let alive = true;
  logsPromise.then((answer) => {
    if (!alive) return;
    logs = answer;
    if (!logs.error) {
      logGroups = groupBySpan(logs.records, trace.byId);
      tabLogs.append(h('span', { class: 'tab-count', text: `${logs.records.length}${logs.next ? '+' : ''}` }));
      waterfall.setSpanLogs(logGroups.bySpan);
    }
    if (state.selected) drawDetail(trace.byId.get(state.selected));
    if (state.tab === 'logs') {
      logsView.replaceChildren();
      setTab('logs');
    }
    page.dataset.logs = logs.error ? 'failed' : 'ready';
  });

  return () => {
    alive = false;
    document.removeEventListener('keydown', onKey);
    clearTimeout(findTimer);
    waterfall.destroy();
    minimap.destroy();
  };
}

/** The Logs tab: every record of the trace, oldest first, each naming its span (a link that selects it). */
function traceLogs(trace, logs, onSpan) {
  if (logs.error) {
    const why = logs.error.status === 501 ? 'This server keeps no logs (no log store).' : `The trace's logs could not be read: ${logs.error.message}`;
    return h('div', { class: 'state state-hint', dataset: { state: 'logs-unavailable' } }, h('p', { text: why }));
  }
  const all = `/logs?traceID=${trace.traceID}&lookback=all`;
  const head = h(
    'p',
    { class: 'logs-summary' },
    logs.records.length ? `${formatCount(logs.records.length)} log record${logs.records.length === 1 ? '' : 's'}` : 'No log records for this trace.',
    logs.next
      ? h('span', { class: 'logs-limit', dataset: { limitHit: 'true' } }, ` — the newest ${formatCount(MAX_LIMIT)} only: the trace has more. `, h('a', { href: all, text: 'See them all on the Logs page' }))
      : logs.records.length
        ? [' · ', h('a', { class: 'logs-open', href: all, text: 'Open on the Logs page' })]
        : null,
  );
  const spanLink = (r) => {
    const span = r.spanID && trace.byId.get(r.spanID);
    if (!span) return h('span', { class: 'badge log-trace-only', title: r.spanID ? `Span ${r.spanID} is not in this trace` : 'The record has no span id', text: 'trace' });
    return h('a', { class: 'log-span', href: `?span=${span.spanID}`, onclick: (e) => (e.preventDefault(), onSpan(span)) }, `${span.serviceName}: ${span.operationName}`);
  };
  return h('div', { class: 'trace-logs' }, head, logRecordList(chronological(logs.records), { traceStart: trace.startTime, showService: true, spanLink }));
}

function parseZoom(text) {
  const m = /^([0-9.]+),([0-9.]+)$/.exec(text || '');
  if (!m) return [0, 1];
  const a = Math.max(0, Math.min(1, Number(m[1])));
  const b = Math.max(0, Math.min(1, Number(m[2])));
  return a < b ? [a, b] : [0, 1];
}
