// The search page: on the left either the form (service, operation, tags
// in logfmt, lookback or a custom range, min/max duration, limit) or the
// TraceQL editor; results on the right (scatter plot and list; tick two to
// compare them). The form's values live in the URL (`q` holds a TraceQL
// query), so a search can be linked; submitting pushes a new URL, which
// re-renders.

import * as api from '../api.js';
import { h, mount } from '../dom.js';
import { serviceColor, setServices } from '../colors.js';
import { LOOKBACKS, formatCount, formatDuration, formatRelative, formatTimestamp, isGoDuration, lookbackMicros } from '../format.js';
import { parseLogfmt } from '../logfmt.js';
import { summarizeTrace } from '../trace.js';
import { tempoSummaries } from '../traceql.js';
import { navigate, setQuery } from '../nav.js';
import { compareUrl } from './compare.js';
import { errorState, loading, noDataState } from '../views/states.js';
import { scatterPlot } from '../views/scatter.js';
import { traceqlEditor } from '../views/traceql-editor.js';

const LAST_SERVICE = 'sightline.lastService';
const SORTS = [
  ['recent', 'Most recent', (a, b) => b.startTime - a.startTime],
  ['longest', 'Longest first', (a, b) => b.duration - a.duration],
  ['shortest', 'Shortest first', (a, b) => a.duration - b.duration],
  ['spans', 'Most spans', (a, b) => b.spanCount - a.spanCount],
  ['errors', 'Most errors', (a, b) => b.errorCount - a.errorCount || b.startTime - a.startTime],
];

export function searchPage(app, { query }) {
  document.title = 'Search · Sightline';
  let alive = true;
  let poll = null;
  let onResize = null;
  const cleanup = () => {
    alive = false;
    clearTimeout(poll);
    if (onResize) window.removeEventListener('resize', onResize);
  };

  const start = async () => {
    mount(app, loading('Loading services…'));
    let services;
    try {
      services = await api.services();
    } catch (e) {
      if (alive) mount(app, errorState(e, start));
      return;
    }
    if (!alive) return;
    setServices(services);
    const byId = query.getAll('traceID');
    if (!services.length && !byId.length) {
      const endpoints = await api.otlpEndpoints();
      if (!alive) return;
      mount(app, noDataState(endpoints, start));
      poll = setTimeout(start, 5000);
      return;
    }
    render(services);
  };

  const render = (services) => {
    const results = h('section', { class: 'results', 'aria-label': 'Search results', 'aria-live': 'polite' });
    const traceql = query.has('q');
    const editor = traceqlEditor({
      id: 'f-traceql',
      value: query.get('q') || '',
      describedBy: 'f-traceql-hint',
      fetchTags: api.tempoTags,
      fetchValues: api.tempoTagValues,
      onSubmit: () => tqlForm.requestSubmit(),
    });
    const tqlForm = traceqlForm(editor, query);
    mount(app, h('div', { class: 'search-page' }, searchSide(searchForm(services, query), tqlForm, traceql), results));
    const byId = query.getAll('traceID');
    if (byId.length) runSearch(results, jaegerSearch({ traceID: byId }), `Traces ${byId.join(', ')}`);
    else if (traceql) runSearch(results, traceqlSearch(query, editor), null, (e) => traceqlError(e, editor));
    else if (query.get('service')) {
      let params;
      try {
        params = apiParams(query);
      } catch (e) {
        mount(results, errorState(e));
        return;
      }
      runSearch(results, jaegerSearch(params));
    } else {
      mount(results, h('div', { class: 'state state-hint' }, h('h2', { text: 'Find traces' }), h('p', { text: 'Pick a service and press “Find traces”, write a TraceQL query, or paste a trace ID at the top.' })));
    }
  };

  /** Runs `load` (→ {summaries, notFound}) and lists what it found; `onError` may draw failures its own way. */
  const runSearch = async (results, load, title, onError = null) => {
    mount(results, loading('Searching…'));
    let found;
    try {
      found = await load();
    } catch (e) {
      if (alive) mount(results, (onError && onError(e)) || errorState(e, () => runSearch(results, load, title, onError)));
      return;
    }
    if (!alive) return;
    const { summaries } = found;
    const sortKey = SORTS.some(([k]) => k === query.get('sort')) ? query.get('sort') : 'recent';
    // Two ticked results can be compared; a third tick drops the oldest.
    const picked = [];
    const compareBtn = h('button', {
      class: 'btn compare-btn',
      type: 'button',
      disabled: true,
      text: 'Compare (0/2)',
      title: 'Tick two traces to compare them',
      onclick: () => picked.length === 2 && navigate(compareUrl(picked[0], picked[1])),
    });
    const onPick = (id, on) => {
      const at = picked.indexOf(id);
      if (on && at < 0) picked.push(id);
      if (!on && at >= 0) picked.splice(at, 1);
      while (picked.length > 2) {
        const dropped = picked.shift();
        const box = results.querySelector(`.result[data-trace-id="${dropped}"] .compare-pick input`);
        if (box) box.checked = false;
      }
      compareBtn.disabled = picked.length !== 2;
      compareBtn.textContent = `Compare (${picked.length}/2)`;
    };
    const item = (s, maxDuration) => resultItem(s, maxDuration, picked.includes(s.traceID), onPick);
    const draw = () => {
      const sorted = [...summaries].sort(SORTS.find(([k]) => k === sortKey)[2]);
      const maxDuration = Math.max(1, ...summaries.map((s) => s.duration));
      const { notFound } = found;
      const width = innerWidth(results);
      mount(
        results,
        h(
          'div',
          { class: 'results-head' },
          h('h2', { class: 'results-count', text: title ? `${title}: ${summaries.length} found` : `${formatCount(summaries.length)} trace${summaries.length === 1 ? '' : 's'}` }),
          h(
            'div',
            { class: 'compare-bar-actions' },
            summaries.length > 1 ? compareBtn : null,
            h(
              'label',
              { class: 'sort' },
              'Sort ',
              h(
                'select',
                {
                  name: 'sort',
                  onchange: (e) => {
                    query.set('sort', e.target.value);
                    setQuery(query);
                    runSort(e.target.value);
                  },
                },
                SORTS.map(([k, label]) => h('option', { value: k, selected: k === sortKey, text: label })),
              ),
            ),
          ),
        ),
        notFound.length ? h('p', { class: 'warning', role: 'status', text: `Not found: ${notFound.join(', ')}` }) : null,
        summaries.length
          ? [scatterPlot(summaries, width, (id) => navigate(`/trace/${id}`)), h('ol', { class: 'result-list' }, sorted.map((s) => item(s, maxDuration)))]
          : h('div', { class: 'state state-hint', dataset: { state: 'no-results' } }, h('h2', { text: 'No traces found' }), h('p', { text: query.has('q') ? 'Try a longer lookback or a broader query.' : 'Try a longer lookback, fewer tags or another operation.' })),
      );
    };
    const runSort = (key) => {
      const list = results.querySelector('.result-list');
      if (!list) return;
      const maxDuration = Math.max(1, ...summaries.map((s) => s.duration));
      mount(list, [...summaries].sort(SORTS.find(([k]) => k === key)[2]).map((s) => item(s, maxDuration)));
    };
    draw();
    let last = innerWidth(results);
    onResize = () => {
      if (Math.abs(innerWidth(results) - last) < 40) return;
      last = innerWidth(results);
      const fig = results.querySelector('.scatter');
      if (fig) fig.replaceWith(scatterPlot(summaries, last, (id) => navigate(`/trace/${id}`)));
    };
    window.addEventListener('resize', onResize);
  };

  start();
  return cleanup;
}

/** A Jaeger API search (/api/traces) as a result loader. */
function jaegerSearch(params) {
  return async () => {
    const found = await api.searchTraces(params);
    return { summaries: found.traces.map(summarizeTrace), notFound: found.errors.filter((e) => e.traceID).map((e) => e.traceID) };
  };
}

/** A TraceQL search (Tempo's /api/search) as a result loader; times in the URL are µs, Tempo's seconds. */
function traceqlSearch(query, editor) {
  return async () => {
    const p = { q: query.get('q'), limit: query.get('limit') || '20', spss: '3' };
    const { start, end } = range(query);
    if (start !== undefined) {
      p.start = String(Math.floor(start / 1e6));
      p.end = String(Math.ceil(end / 1e6));
    }
    const response = await api.tempoSearch(p);
    editor.setError(null);
    return { summaries: tempoSummaries(response), notFound: [] };
  };
}

/** A rejected TraceQL query is marked in the editor; the results say where to look. */
function traceqlError(e, editor) {
  if (e.status === 400) {
    editor.setError(e.message);
    return h('div', { class: 'state state-hint', dataset: { state: 'traceql-error' } }, h('h2', { text: 'The query has an error' }), h('p', { text: 'The editor marks where; fix it and run the query again.' }));
  }
  if (e.status === 404) {
    return h(
      'div',
      { class: 'state state-error', dataset: { state: 'no-traceql' } },
      h('h2', { text: 'TraceQL search is not available' }),
      h('p', {}, 'This server did not answer ', h('code', { text: '/api/search' }), ' (Tempo’s search API). Use the form search instead.'),
    );
  }
  return null;
}

/** The time range of the page URL in µs: explicit start/end, else the lookback ending now. */
function range(query) {
  if (query.get('start') && query.get('end')) return { start: Number(query.get('start')), end: Number(query.get('end')) };
  const lookback = lookbackMicros(query.get('lookback') || '1h');
  if (!lookback) return {};
  const end = Date.now() * 1000;
  return { start: end - lookback, end };
}

/** The left column: a Form / TraceQL switch over the two search forms. */
function searchSide(form, tqlForm, traceql) {
  const tabs = [
    ['form', 'Search', form],
    ['traceql', 'TraceQL', tqlForm],
  ].map(([mode, label, panel]) => {
    const on = (mode === 'traceql') === traceql;
    panel.hidden = !on;
    panel.setAttribute('role', 'tabpanel');
    panel.id = `search-${mode}`;
    return h('button', { class: 'tab', type: 'button', role: 'tab', id: `tab-${mode}`, 'aria-selected': String(on), 'aria-controls': panel.id, dataset: { mode }, text: label });
  });
  const panels = [form, tqlForm];
  for (const [i, tab] of tabs.entries()) {
    tab.addEventListener('click', () => {
      tabs.forEach((t, j) => t.setAttribute('aria-selected', String(i === j)));
      panels.forEach((p, j) => (p.hidden = i !== j));
      const first = panels[i].querySelector('textarea, select, input');
      if (first) first.focus();
    });
  }
  return h('div', { class: 'search-side' }, h('h1', { class: 'visually-hidden', text: 'Search traces' }), h('div', { class: 'tabs mode-tabs', role: 'tablist', 'aria-label': 'Search mode' }, tabs), form, tqlForm);
}

const EXAMPLES = [
  '{ status = error }',
  '{ span.http.status_code >= 500 }',
  '{ kind = server && duration > 500ms }',
  '{ resource.service.name = "frontend" } >> { status = error }',
];

/** The TraceQL form: the editor, a lookback and a limit. */
function traceqlForm(editor, query) {
  const lookbackValue = lookbackMicros(query.get('lookback')) ? query.get('lookback') : '1h';
  const lookback = h('select', { id: 'q-lookback', name: 'lookback' }, LOOKBACKS.map(([v, label]) => h('option', { value: v, selected: v === lookbackValue, text: label })));
  const limit = h('input', { id: 'q-limit', name: 'limit', type: 'number', min: '1', max: '1500', value: query.get('limit') || '20' });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const submit = (e) => {
    e.preventDefault();
    error.textContent = '';
    const q = editor.value().trim();
    if (!q) {
      error.textContent = 'Write a query, for example { status = error }.';
      editor.input.focus();
      return;
    }
    const params = new URLSearchParams({ q, lookback: lookback.value });
    const end = Date.now() * 1000;
    params.set('start', String(end - lookbackMicros(lookback.value)));
    params.set('end', String(end));
    params.set('limit', String(Math.max(1, Math.min(1500, Number(limit.value) || 20))));
    navigate(`/search?${params}`);
  };
  return h(
    'form',
    { class: 'traceql-form', onsubmit: submit, 'aria-label': 'TraceQL search', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'f-traceql', text: 'TraceQL query' }), editor.el, h('p', { class: 'hint', id: 'f-traceql-hint', text: 'Ctrl+Space suggests attributes and values; Ctrl+Enter runs the query.' })),
    h(
      'div',
      { class: 'tql-examples' },
      h('span', { class: 'hint', text: 'Examples:' }),
      EXAMPLES.map((x) =>
        h('button', {
          type: 'button',
          class: 'chip tql-example',
          text: x,
          onclick: () => {
            editor.input.value = x;
            editor.setError(null);
            editor.input.focus();
          },
        }),
      ),
    ),
    h('div', { class: 'field-row' }, h('div', { class: 'field' }, h('label', { for: 'q-lookback', text: 'Lookback' }), lookback), h('div', { class: 'field' }, h('label', { for: 'q-limit', text: 'Limit' }), limit)),
    error,
    h('button', { class: 'btn btn-primary', type: 'submit', text: 'Run query' }),
  );
}

/** Width of an element's content box, less the plot's border. */
function innerWidth(el) {
  const cs = getComputedStyle(el);
  return el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 2;
}

/** /api/traces parameters from the page URL. Throws on bad tags. */
function apiParams(query) {
  const p = { service: query.get('service'), limit: query.get('limit') || '20' };
  if (query.get('operation')) p.operation = query.get('operation');
  const tags = query.get('tags');
  if (tags) {
    const parsed = parseLogfmt(tags);
    if (Object.keys(parsed).length) p.tags = JSON.stringify(parsed);
  }
  for (const k of ['minDuration', 'maxDuration']) if (query.get(k)) p[k] = query.get(k);
  const lookback = query.get('lookback') || '1h';
  if (query.get('start') && query.get('end')) {
    p.start = query.get('start');
    p.end = query.get('end');
  } else if (lookbackMicros(lookback)) {
    const end = Date.now() * 1000;
    p.end = String(end);
    p.start = String(end - lookbackMicros(lookback));
  }
  if (lookback !== 'custom') p.lookback = lookback;
  return p;
}

function toLocalInput(us) {
  const d = new Date(us / 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function searchForm(services, query) {
  const saved = localStorage.getItem(LAST_SERVICE);
  const chosen = [query.get('service'), saved, services[0]].find((s) => s && services.includes(s)) || query.get('service') || '';
  const field = (label, input, hint) =>
    h('div', { class: 'field' }, h('label', { for: input.id, text: label }), input, hint && h('p', { class: 'hint', id: `${input.id}-hint`, text: hint }));

  const service = h(
    'select',
    { id: 'f-service', name: 'service', required: true },
    services.map((s) => h('option', { value: s, selected: s === chosen, text: s })),
  );
  const operation = h('select', { id: 'f-operation', name: 'operation' }, h('option', { value: '', text: 'All operations' }));
  const loadOperations = async (svc, selected) => {
    operation.replaceChildren(h('option', { value: '', text: 'All operations' }));
    if (!svc) return;
    try {
      const ops = await api.operations(svc);
      const names = [...new Set(ops.map((o) => o.name))];
      operation.append(...names.map((n) => h('option', { value: n, selected: n === selected, text: n })));
    } catch {
      // the search itself will report the API problem
    }
  };
  loadOperations(chosen, query.get('operation') || '');
  service.addEventListener('change', () => loadOperations(service.value, ''));

  const tags = h('input', {
    id: 'f-tags',
    name: 'tags',
    value: query.get('tags') || '',
    placeholder: 'error=true http.status_code=500',
    spellcheck: 'false',
    autocomplete: 'off',
    'aria-describedby': 'f-tags-hint',
  });
  const lookbackValue = query.get('lookback') || '1h';
  const lookback = h(
    'select',
    { id: 'f-lookback', name: 'lookback' },
    LOOKBACKS.map(([v, label]) => h('option', { value: v, selected: v === lookbackValue, text: label })),
    h('option', { value: 'custom', selected: lookbackValue === 'custom', text: 'Custom range…' }),
  );
  const now = Date.now() * 1000;
  const startIn = h('input', { id: 'f-start', type: 'datetime-local', value: toLocalInput(Number(query.get('start')) || now - 3600e6) });
  const endIn = h('input', { id: 'f-end', type: 'datetime-local', value: toLocalInput(Number(query.get('end')) || now) });
  const custom = h('div', { class: 'custom-range', hidden: lookbackValue !== 'custom' }, field('From', startIn), field('To', endIn));
  lookback.addEventListener('change', () => (custom.hidden = lookback.value !== 'custom'));
  const minD = h('input', { id: 'f-min', name: 'minDuration', value: query.get('minDuration') || '', placeholder: 'e.g. 100ms', spellcheck: 'false' });
  const maxD = h('input', { id: 'f-max', name: 'maxDuration', value: query.get('maxDuration') || '', placeholder: 'e.g. 1.5s', spellcheck: 'false' });
  const limit = h('input', { id: 'f-limit', name: 'limit', type: 'number', min: '1', max: '1500', value: query.get('limit') || '20' });
  const error = h('p', { class: 'form-error', role: 'alert' });

  const submit = (e) => {
    e.preventDefault();
    error.textContent = '';
    const fail = (msg, input) => {
      error.textContent = msg;
      input.focus();
    };
    if (!service.value) return fail('Pick a service.', service);
    try {
      parseLogfmt(tags.value);
    } catch (err) {
      return fail(`Tags: ${err.message}.`, tags);
    }
    for (const input of [minD, maxD]) {
      if (input.value.trim() && !isGoDuration(input.value.trim())) return fail(`${input === minD ? 'Min' : 'Max'} duration: use a duration like 100ms, 1.5s or 2m.`, input);
    }
    const q = new URLSearchParams();
    q.set('service', service.value);
    if (operation.value) q.set('operation', operation.value);
    if (tags.value.trim()) q.set('tags', tags.value.trim());
    q.set('lookback', lookback.value);
    if (lookback.value === 'custom') {
      const s = new Date(startIn.value).getTime() * 1000;
      const en = new Date(endIn.value).getTime() * 1000;
      if (!(s < en)) return fail('The custom range must start before it ends.', startIn);
      q.set('start', String(s));
      q.set('end', String(en));
    } else {
      const end = Date.now() * 1000;
      q.set('start', String(end - lookbackMicros(lookback.value)));
      q.set('end', String(end));
    }
    if (minD.value.trim()) q.set('minDuration', minD.value.trim());
    if (maxD.value.trim()) q.set('maxDuration', maxD.value.trim());
    q.set('limit', String(Math.max(1, Math.min(1500, Number(limit.value) || 20))));
    try {
      localStorage.setItem(LAST_SERVICE, service.value);
    } catch {
      // ignore
    }
    navigate(`/search?${q}`);
  };

  return h(
    'form',
    { class: 'search-form', onsubmit: submit, 'aria-label': 'Search traces', novalidate: true },
    field('Service', service),
    field('Operation', operation),
    field('Tags', tags, 'logfmt: key=value pairs separated by spaces; quote values with spaces.'),
    field('Lookback', lookback),
    custom,
    h('div', { class: 'field-row' }, field('Min duration', minD), field('Max duration', maxD)),
    field('Limit results', limit),
    error,
    h('button', { class: 'btn btn-primary', type: 'submit', text: 'Find traces' }),
  );
}

function resultItem(s, maxDuration, picked, onPick) {
  return h(
    'li',
    { class: 'result', dataset: { traceId: s.traceID } },
    h(
      'label',
      { class: 'compare-pick', title: 'Tick two traces to compare them' },
      h('input', { type: 'checkbox', checked: picked, 'aria-label': `Compare trace ${s.traceID}`, onchange: (e) => onPick(s.traceID, e.target.checked) }),
    ),
    h('div', { class: 'result-main' }, resultLink(s, maxDuration), s.matched?.length ? matchedSpans(s) : null),
  );
}

/** The spans a TraceQL query matched in a trace, each linking to itself in the trace. */
function matchedSpans(s) {
  const more = s.matchedCount - s.matched.length;
  return h(
    'div',
    { class: 'matched' },
    h('span', { class: 'matched-count', text: `${s.matchedCount} matched span${s.matchedCount === 1 ? '' : 's'}${more > 0 ? ` (${s.matched.length} shown)` : ''}:` }),
    h(
      'ul',
      { class: 'matched-spans' },
      s.matched.map((m) =>
        h(
          'li',
          { dataset: { spanId: m.spanID } },
          h(
            'a',
            { href: `/trace/${s.traceID}?span=${m.spanID}` },
            m.service ? [h('span', { class: 'svc-dot', style: { background: serviceColor(m.service) } }), `${m.service}: `] : null,
            m.name || m.spanID,
            h('span', { class: 'matched-duration', text: ` ${formatDuration(m.duration)}` }),
          ),
        ),
      ),
    ),
  );
}

function resultLink(s, maxDuration) {
  return h(
    'a',
    { class: 'result-link', href: `/trace/${s.traceID}` },
    h(
      'div',
      { class: 'result-head' },
      h('span', { class: 'result-title' }, h('span', { class: 'svc-dot', style: { background: serviceColor(s.rootService) } }), h('strong', { text: s.rootService }), ': ', s.rootOperation || '(no root span)'),
      h('code', { class: 'result-id', text: s.traceID.slice(0, 7), title: s.traceID }),
      h('span', { class: 'result-duration', text: formatDuration(s.duration) }),
    ),
    h('div', { class: 'duration-track', 'aria-hidden': 'true' }, h('div', { class: 'duration-bar', style: { width: `${Math.max(0.5, (s.duration / maxDuration) * 100)}%` } })),
    h(
      'div',
      { class: 'result-meta' },
      h('span', { class: 'badge span-count', text: `${formatCount(s.spanCount)} span${s.spanCount === 1 ? '' : 's'}` }),
      s.errorCount ? h('span', { class: 'badge badge-error error-count', text: `${s.errorCount} error${s.errorCount === 1 ? '' : 's'}` }) : null,
      h(
        'span',
        { class: 'services' },
        s.services.map((x) => h('span', { class: 'chip', dataset: { service: x.name } }, h('span', { class: 'svc-dot', style: { background: serviceColor(x.name) } }), `${x.name} (${x.count})`)),
      ),
      h('span', { class: 'result-time', title: formatTimestamp(s.startTime) }, h('time', { text: formatTimestamp(s.startTime).slice(0, 19) }), ' · ', formatRelative(s.startTime)),
    ),
  );
}
