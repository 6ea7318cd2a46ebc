// The Logs page: a search of the stored log records (service, minimum
// severity, body text, attributes, time range, page size; a trace id when opened from
// a trace), newest first with "More" following the API's cursor, each
// record with a trace id linking to its trace, and a histogram of the
// loaded records by severity over time. "Live" follows /api/logs/tail
// (server-sent events) with the same filters and puts new records on top.
//
//   /logs?service=&minSeverity=&q=&tags=<logfmt>&lookback=1h|…|all|custom&start=&end=&limit=&traceID=&live=1
//
// The histogram counts the records the page has loaded, not every stored
// record: the API has no aggregation, and counting in the browser keeps the
// bars and the list in agreement.

import * as api from '../api.js';
import { h, mount, rafThrottle } from '../dom.js';
import { colorsReady } from '../colors.js';
import { LOOKBACKS, formatCount, lookbackMicros } from '../format.js';
import { LEVELS, MAX_LIMIT, histogram, logsParams } from '../logs.js';
import { navigate, setQuery } from '../nav.js';
import { errorState, loading } from '../views/states.js';
import { logRecord } from '../views/logrecords.js';
import { severityHistogram } from '../views/histogram.js';

/** Filters the live tail takes (it has no range, page size or cursor). */
const TAIL_KEYS = ['service', 'minSeverity', 'q', 'tags', 'traceID'];

export function logsPage(app, { query }) {
  document.title = 'Logs · Sightline';
  let alive = true;
  let source = null;
  let results = null;
  const stopLive = () => {
    if (source) source.close();
    source = null;
    if (results) delete results.dataset.live;
  };
  const cleanup = () => {
    alive = false;
    stopLive();
  };

  const parsed = logsParams(query, lookbackMicros, Date.now() * 1000);
  const form = logsForm(query);
  results = h('section', { class: 'results logs-results', 'aria-label': 'Log records' });
  mount(app, h('div', { class: 'search-page logs-page' }, h('div', { class: 'search-side' }, h('h1', { class: 'side-title', text: 'Logs' }), form.el), results));
  api.logServices().then(
    (names) => alive && form.setServices(names),
    () => {}, // the search below reports an unreachable or log-less server
  );
  if (parsed.error) {
    form.showError(parsed.error);
    mount(results, h('div', { class: 'state state-hint', dataset: { state: 'bad-query' } }, h('p', { text: parsed.error })));
    return cleanup;
  }
  const params = parsed.params;

  let records = [];
  let next = null;
  const list = h('ol', { class: 'log-list', dataset: { list: 'logs' } });
  const count = h('h2', { class: 'results-count' });
  const histSlot = h('div', { class: 'hist-slot' });
  const status = h('p', { class: 'hint logs-status', role: 'status' });
  const more = h('button', { class: 'btn', type: 'button', text: 'More', hidden: true, onclick: () => loadPage(next) });
  const live = h('input', { id: 'logs-live', type: 'checkbox', checked: query.get('live') === '1' });
  const recordOpts = { showService: true, traceLink: true, withResource: true };

  const draw = () => {
    count.textContent = `${formatCount(records.length)} record${records.length === 1 ? '' : 's'}${next ? ' loaded' : ''}`;
    // Live records arrive after the range's end: the range then runs to now.
    const range = params.start !== undefined ? { start: params.start, end: source ? Math.max(params.end, Date.now() * 1000) : params.end } : {};
    const caption = `The ${formatCount(records.length)} record${records.length === 1 ? '' : 's'} loaded, by severity${next ? ' (load more to count more)' : ''}.`;
    histSlot.replaceChildren(...[severityHistogram(histogram(records, range), caption, zoomTo)].filter(Boolean));
    more.hidden = !next;
  };
  const drawSoon = rafThrottle(draw);
  /** A bar's click: the same search over that bucket's time. */
  const zoomTo = (bucket) => {
    const q = new URLSearchParams(location.search);
    q.set('lookback', 'custom');
    q.set('start', String(bucket.start));
    q.set('end', String(bucket.end - 1));
    q.delete('live');
    navigate(`/logs?${q}`);
  };

  const shell = () =>
    mount(
      results,
      h(
        'div',
        { class: 'results-head' },
        count,
        h('label', { class: 'live-toggle', for: 'logs-live', title: 'Follow new records as they arrive (server-sent events)' }, live, ' Live'),
      ),
      histSlot,
      status,
      records.length ? list : h('div', { class: 'state state-hint', dataset: { state: 'no-results' } }, h('h2', { text: 'No log records found' }), h('p', { text: 'Try a longer time range, a lower severity or other text.' })),
      h('div', { class: 'logs-more' }, more),
    );

  async function loadPage(cursor) {
    if (!cursor) mount(results, loading('Searching logs…'));
    more.disabled = true;
    let page;
    try {
      page = await api.logs(cursor ? { ...params, cursor } : params);
      await colorsReady();
    } catch (e) {
      if (!alive) return;
      if (cursor) {
        status.textContent = e.message;
        more.disabled = false;
      } else if (e.status === 400) {
        // A parameter the server refused (a bad regex, say): the form says why.
        form.showError(e.message);
        mount(results, h('div', { class: 'state state-hint', dataset: { state: 'bad-query' } }, h('p', { text: e.message })));
      } else if (e.status === 501) {
        mount(results, h('div', { class: 'state state-hint', dataset: { state: 'no-log-store' } }, h('h2', { text: 'No log store' }), h('p', { text: `This server keeps no logs (${e.message}).` })));
      } else {
        mount(results, errorState(e, () => loadPage(null)));
      }
      return;
    }
    if (!alive) return;
    const first = !cursor;
    records.push(...page.records);
    next = page.next;
    list.append(...page.records.map((r) => logRecord(r, recordOpts)));
    if (first) shell();
    else if (!page.records.length) status.textContent = 'No more records.';
    draw();
    more.disabled = false;
    if (first && live.checked) startLive();
  }

  function startLive() {
    stopLive();
    const filters = Object.fromEntries(TAIL_KEYS.filter((k) => params[k]).map((k) => [k, params[k]]));
    source = new EventSource(api.logsTailUrl(filters));
    status.textContent = 'Live: new records appear on top.';
    // `data-live=open` once the stream is up: records acknowledged from then on arrive.
    source.addEventListener('open', () => {
      status.textContent = 'Live: new records appear on top.';
      results.dataset.live = 'open';
    });
    source.addEventListener('log', (e) => {
      let record;
      try {
        record = JSON.parse(e.data);
      } catch {
        return;
      }
      records.unshift(record);
      if (!list.isConnected) shell();
      const el = logRecord(record, recordOpts);
      el.classList.add('is-new');
      list.prepend(el);
      drawSoon();
    });
    source.addEventListener('dropped', (e) => {
      let reason = '';
      try {
        reason = JSON.parse(e.data).reason || '';
      } catch {
        // keep it empty
      }
      stopLive();
      live.checked = false;
      syncLive();
      status.textContent = `The live tail fell behind and was stopped${reason ? ` (${reason})` : ''}. Search again to fill the gap.`;
    });
    // EventSource reconnects by itself after a network error.
    source.addEventListener('error', () => {
      if (!source) return;
      status.textContent = 'Live: connection lost, reconnecting…';
      delete results.dataset.live;
    });
    draw();
  }

  const syncLive = () => {
    const q = new URLSearchParams(location.search);
    if (live.checked) q.set('live', '1');
    else q.delete('live');
    setQuery(q);
  };
  live.addEventListener('change', () => {
    syncLive();
    if (live.checked) startLive();
    else {
      stopLive();
      status.textContent = '';
      draw();
    }
  });

  loadPage(null);
  return cleanup;
}

/** Local `YYYY-MM-DDTHH:MM` for a datetime-local input, from µs. */
function toLocalInput(us) {
  const d = new Date(us / 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** The search form; submitting navigates to its URL. Returns {el, setServices(names), showError(msg)}. */
function logsForm(query) {
  const field = (label, input, hint) => h('div', { class: 'field' }, h('label', { for: input.id, text: label }), input, hint && h('p', { class: 'hint', text: hint }));
  const current = query.get('service') || '';
  const service = h('select', { id: 'l-service', name: 'service' }, h('option', { value: '', text: 'All services' }), current ? h('option', { value: current, selected: true, text: current }) : null);
  const severity = h(
    'select',
    { id: 'l-severity', name: 'minSeverity' },
    h('option', { value: '', text: 'Any' }),
    LEVELS.map(([name]) => h('option', { value: name, selected: name === (query.get('minSeverity') || '').toLowerCase(), text: `${name.toUpperCase()} and above` })),
  );
  const text = h('input', { id: 'l-q', name: 'q', value: query.get('q') || '', placeholder: 'timeout, or /order \\d+ failed/', spellcheck: 'false', autocomplete: 'off' });
  const tags = h('input', { id: 'l-tags', name: 'tags', value: query.get('tags') || '', placeholder: 'http.route=/checkout', spellcheck: 'false', autocomplete: 'off' });
  const lookbackValue = query.get('lookback') || (query.has('start') ? 'custom' : '1h');
  const lookback = h(
    'select',
    { id: 'l-lookback', name: 'lookback' },
    LOOKBACKS.map(([v, label]) => h('option', { value: v, selected: v === lookbackValue, text: label })),
    h('option', { value: 'all', selected: lookbackValue === 'all', text: 'All time' }),
    h('option', { value: 'custom', selected: lookbackValue === 'custom', text: 'Custom range…' }),
  );
  const now = Date.now() * 1000;
  const startIn = h('input', { id: 'l-start', type: 'datetime-local', value: toLocalInput(Number(query.get('start')) || now - 3600e6) });
  const endIn = h('input', { id: 'l-end', type: 'datetime-local', value: toLocalInput(Number(query.get('end')) || now) });
  const custom = h('div', { class: 'custom-range', hidden: lookbackValue !== 'custom' }, field('From', startIn), field('To', endIn));
  lookback.addEventListener('change', () => (custom.hidden = lookback.value !== 'custom'));
  const limit = h('input', { id: 'l-limit', name: 'limit', type: 'number', min: '1', max: String(MAX_LIMIT), value: query.get('limit') || '100' });
  const traceID = query.get('traceID') || '';
  const error = h('p', { class: 'form-error', role: 'alert' });

  const submit = (e) => {
    e.preventDefault();
    error.textContent = '';
    const q = new URLSearchParams();
    if (service.value) q.set('service', service.value);
    if (severity.value) q.set('minSeverity', severity.value);
    if (text.value.trim()) q.set('q', text.value.trim());
    if (tags.value.trim()) q.set('tags', tags.value.trim());
    if (traceID) q.set('traceID', traceID);
    q.set('lookback', lookback.value);
    if (lookback.value === 'custom') {
      q.set('start', String(new Date(startIn.value).getTime() * 1000));
      q.set('end', String(new Date(endIn.value).getTime() * 1000));
    }
    q.set('limit', limit.value.trim());
    if (query.get('live') === '1') q.set('live', '1');
    // Checked here, as the page will: a bad value stays in the form.
    const checked = logsParams(q, lookbackMicros, Date.now() * 1000);
    if (checked.error) {
      error.textContent = checked.error;
      return;
    }
    const url = `/logs?${q}`;
    navigate(url, { replace: new URL(url, location.href).href === location.href });
  };

  const el = h(
    'form',
    { class: 'search-form logs-form', onsubmit: submit, 'aria-label': 'Search logs', novalidate: true },
    traceID
      ? h('p', { class: 'logs-trace-filter' }, 'Trace ', h('a', { href: `/trace/${traceID}`, text: traceID }), ' ', h('a', { class: 'btn btn-small', href: `/logs?${withoutTrace(query)}`, text: '✕', title: 'All traces', 'aria-label': 'Remove the trace filter' }))
      : null,
    field('Service', service),
    field('Min severity', severity),
    field('Text', text, 'Body contains this text (case-sensitive); /…/ is a regular expression.'),
    field('Attributes', tags, 'logfmt: key=value pairs, matched against record and resource attributes.'),
    field('Time range', lookback),
    custom,
    field('Limit', limit, `Records per page, at most ${MAX_LIMIT}.`),
    error,
    h('button', { class: 'btn btn-primary', type: 'submit', text: 'Find logs' }),
  );
  return {
    el,
    setServices(names) {
      const keep = service.value;
      const all = [...new Set([...names, ...(keep ? [keep] : [])])].sort();
      service.replaceChildren(h('option', { value: '', text: 'All services' }), ...all.map((n) => h('option', { value: n, selected: n === keep, text: n })));
    },
    showError(msg) {
      error.textContent = msg;
    },
  };
}

function withoutTrace(query) {
  const q = new URLSearchParams(query);
  q.delete('traceID');
  return q;
}
