// The Monitor page: RED metrics (request rate, error rate, p50/p95/p99
// latency) from the span metrics Sightline computes itself, read through
// Jaeger's SPM API (/api/metrics/*) — what Jaeger's Monitor tab and
// SigNoz's services page show, without a Prometheus.
//
//   /monitor?kind=server&lookback=1h&sort=rate&order=desc
//       every service: one row each, sortable, with a request-rate trend
//   /monitor?service=…&kind=&lookback=&operation=&sort=&order=
//       one service: latency, error-rate and request-rate charts over time
//       (of the service, or of the operation picked in the table below),
//       and its operations, sortable
//
// Table values cover the whole range (one summary point per series);
// charts have about 60 points, each covering one step.

import * as api from '../api.js';
import { h, mount } from '../dom.js';
import { colorsReady, serviceColor } from '../colors.js';
import { LOOKBACKS, formatDuration, lookbackMicros } from '../format.js';
import { MEASURES, SPAN_KINDS, chartStep, formatPercent, formatRate, metricsParams, seriesByKey, seriesKey, sortRows, summaryRows } from '../metrics.js';
import { navigate, setQuery } from '../nav.js';
import { errorState, loading } from '../views/states.js';
import { lineChart, sparkline } from '../views/linechart.js';

/** Ranges offered: the span metrics keep two hours by default, more when configured. */
const RANGES = LOOKBACKS.filter(([v]) => ['5m', '15m', '30m', '1h', '2h', '6h', '12h', '24h'].includes(v));

const COLUMNS = [
  ['name', null, null],
  ['rate', 'Requests/s', formatRate],
  ['errors', 'Error rate', formatPercent],
  ['p50', 'P50', (v) => formatMs(v)],
  ['p95', 'P95', (v) => formatMs(v)],
  ['p99', 'P99', (v) => formatMs(v)],
];

function formatMs(ms) {
  return ms === null || ms === undefined ? '–' : formatDuration(ms * 1000);
}

export function monitorPage(app, { query }) {
  const service = query.get('service') || null;
  const lookback = RANGES.some(([v]) => v === query.get('lookback')) ? query.get('lookback') : '1h';
  const kind = SPAN_KINDS.some(([k]) => k === query.get('kind')) ? query.get('kind') : 'server';
  const lookbackMs = lookbackMicros(lookback) / 1000;
  document.title = `${service ? `${service} · ` : ''}Monitor · Sightline`;
  let alive = true;
  let onResize = null;

  const urlFor = (svc, extra = {}) => {
    const q = new URLSearchParams({ ...(svc ? { service: svc } : {}), kind, lookback, ...extra });
    return `/monitor?${q}`;
  };
  const select = (id, label, options, value, onchange) => [
    h('label', { for: id, class: 'visually-hidden', text: label }),
    h('select', { id, onchange: (e) => onchange(e.target.value) }, options.map(([v, text]) => h('option', { value: v, selected: v === value, text }))),
  ];

  const body = h('div', { class: 'monitor-body' });
  const controls = h(
    'div',
    { class: 'monitor-controls' },
    select('monitor-kind', 'Span kind', SPAN_KINDS, kind, (k) => navigate(urlFor(service, { ...keep(query), kind: k }))),
    select('monitor-lookback', 'Time range', RANGES, lookback, (v) => navigate(urlFor(service, { ...keep(query), lookback: v }))),
    h('button', { class: 'btn', type: 'button', text: 'Refresh', onclick: () => load() }),
  );
  const title = service
    ? h('h1', {}, h('a', { href: urlFor(null), text: 'Monitor' }), ' / ', h('span', { class: 'svc-dot', style: { background: serviceColor(service) } }), h('span', { class: 'monitor-service', text: service }))
    : h('h1', { text: 'Monitor' });
  mount(app, h('div', { class: 'monitor-page' }, h('header', { class: 'monitor-header' }, title, controls), body));

  const load = async () => {
    mount(body, loading('Loading span metrics…'));
    const endMs = Date.now();
    let data;
    try {
      const services = await api.services();
      if (!alive) return;
      if (service && !services.includes(service)) services.push(service);
      data = service ? await loadService(services, endMs) : await loadOverview(services, endMs);
      await colorsReady();
    } catch (e) {
      if (!alive) return;
      mount(body, e.status === 501 ? metricsOff(e) : errorState(e, load));
      return;
    }
    if (!alive) return;
    const range = { from: endMs - lookbackMs, to: endMs, step: chartStep(lookbackMs) };
    if (service) drawService(data, range);
    else drawOverview(data, range);
  };

  const fetchAll = (services, endMs, opts) =>
    Promise.all(MEASURES.map(([, path, extra]) => api.metrics(path, metricsParams({ services, kind, endMs, lookbackMs, extra, ...opts })))).then((families) =>
      Object.fromEntries(MEASURES.map(([key], i) => [key, families[i]])),
    );

  const loadOverview = async (services, endMs) => {
    if (!services.length) return { services, rows: [], trend: new Map() };
    const [summary, trend] = await Promise.all([
      fetchAll(services, endMs, { summary: true }),
      api.metrics('calls', metricsParams({ services, kind, endMs, lookbackMs })),
    ]);
    const rows = summaryRows(summary, endMs);
    return {
      services,
      rows: services.map((s) => rows.get(seriesKey(s, null)) || { service: s, operation: null, rate: null, errors: null, p50: null, p95: null, p99: null }),
      trend: seriesByKey(trend),
    };
  };

  const loadService = async (services, endMs) => {
    const one = [service];
    const [total, series, opSummary, opSeries] = await Promise.all([
      fetchAll(one, endMs, { summary: true }),
      fetchAll(one, endMs, {}),
      fetchAll(one, endMs, { summary: true, groupByOperation: true }),
      fetchAll(one, endMs, { groupByOperation: true }),
    ]);
    const by = (families) => Object.fromEntries(Object.entries(families).map(([k, f]) => [k, seriesByKey(f)]));
    return {
      services,
      total: summaryRows(total, endMs).get(seriesKey(service, null)) || null,
      operations: [...summaryRows(opSummary, endMs).values()],
      series: by(series),
      opSeries: by(opSeries),
    };
  };

  /** A sortable table; `sortKey`/`desc` live in the URL (?sort=&order=). */
  const table = ({ rows, nameLabel, nameCell, trend, range, rowAttrs, caption }) => {
    let sortKey = COLUMNS.some(([k]) => k === query.get('sort')) ? query.get('sort') : 'rate';
    let desc = query.get('order') ? query.get('order') !== 'asc' : sortKey !== 'name';
    const el = h('table', { class: 'monitor-table' });
    const draw = () => {
      const head = h(
        'tr',
        {},
        COLUMNS.map(([key, label]) =>
          h(
            'th',
            { scope: 'col', class: key === 'name' ? '' : 'num', 'aria-sort': key === sortKey ? (desc ? 'descending' : 'ascending') : 'none' },
            h('button', {
              type: 'button',
              class: 'sort-btn',
              dataset: { sort: key },
              text: `${label || nameLabel}${key === sortKey ? (desc ? ' ▼' : ' ▲') : ''}`,
              onclick: () => {
                if (sortKey === key) desc = !desc;
                else {
                  sortKey = key;
                  desc = key !== 'name';
                }
                query.set('sort', sortKey);
                query.set('order', desc ? 'desc' : 'asc');
                setQuery(query);
                draw();
              },
            }),
          ),
        ),
        h('th', { scope: 'col', class: 'trend-col', text: 'Requests over time' }),
      );
      el.replaceChildren(
        h('caption', { text: caption }),
        h('thead', {}, head),
        h(
          'tbody',
          {},
          sortRows(rows, sortKey, desc).map((row) =>
            h(
              'tr',
              rowAttrs(row),
              h('th', { scope: 'row' }, nameCell(row)),
              COLUMNS.slice(1).map(([key, , fmt]) => h('td', { class: 'num', dataset: { col: key }, text: fmt(row[key]) })),
              h('td', { class: 'trend-col' }, trend(row) ? sparkline(trend(row), range.from, range.to, { step: range.step, label: `Requests over time: ${row.operation ?? row.service}` }) : null),
            ),
          ),
        ),
      );
    };
    draw();
    return el;
  };

  const drawOverview = (data, range) => {
    if (!data.services.length) {
      mount(body, h('div', { class: 'state state-hint', dataset: { state: 'no-services' } }, h('h2', { text: 'No services yet' }), h('p', {}, 'Span metrics appear once spans arrive. ', h('a', { href: '/search', text: 'How to send data' }))));
      return;
    }
    const withData = data.rows.filter((r) => r.rate !== null).length;
    mount(
      body,
      h('p', { class: 'monitor-summary', text: `${withData} of ${data.services.length} service${data.services.length === 1 ? '' : 's'} had ${kind} spans in the ${rangeLabel(lookback)}. Request and error rates and latency percentiles cover the whole range.` }),
      table({
        rows: data.rows,
        nameLabel: 'Service',
        caption: `Services by ${kind} spans`,
        range,
        trend: (row) => data.trend.get(seriesKey(row.service, null)),
        rowAttrs: (row) => ({ dataset: { service: row.service }, class: row.rate === null ? 'no-data' : '' }),
        nameCell: (row) => h('a', { href: urlFor(row.service), class: 'monitor-link' }, h('span', { class: 'svc-dot', style: { background: serviceColor(row.service) } }), row.service),
      }),
    );
  };

  const drawService = (data, range) => {
    let operation = query.get('operation');
    if (operation && !data.operations.some((o) => o.operation === operation)) operation = null;
    const charts = h('div', { class: 'monitor-charts' });
    const kpis = h('dl', { class: 'monitor-kpis' });
    const chartsTitle = h('h2', { class: 'monitor-section' });
    const showAll = h('button', { class: 'btn btn-small', type: 'button', text: 'Show the whole service', onclick: () => pick(null) });

    const drawCharts = () => {
      const key = seriesKey(service, operation);
      const src = operation === null ? data.series : data.opSeries;
      const pts = (m) => src[m].get(key) || [];
      const row = operation === null ? data.total : data.operations.find((o) => o.operation === operation);
      if (operation === null) chartsTitle.replaceChildren(`All ${kind} operations of ${service}`);
      else chartsTitle.replaceChildren(h('span', {}, 'Operation ', h('code', { class: 'monitor-operation', text: operation })), showAll);
      const kpi = (k, label, text) => h('div', { class: 'kpi', dataset: { kpi: k } }, h('dt', { text: label }), h('dd', { text }));
      kpis.replaceChildren(
        kpi('rate', 'Requests/s', formatRate(row?.rate ?? null)),
        kpi('errors', 'Error rate', formatPercent(row?.errors ?? null)),
        kpi('p50', 'P50', formatMs(row?.p50)),
        kpi('p95', 'P95', formatMs(row?.p95)),
        kpi('p99', 'P99', formatMs(row?.p99)),
      );
      const width = Math.floor((charts.clientWidth || 900) / (charts.clientWidth > 900 ? 3 : 1)) - 12;
      charts.replaceChildren(
        lineChart({ name: 'latency', title: 'Latency', series: [['P50', 'p50'], ['P95', 'p95'], ['P99', 'p99']].map(([label, m]) => ({ label, points: pts(m) })), ...range, width, format: (v) => formatDuration(v * 1000) }),
        lineChart({ name: 'errors', title: 'Error rate', series: [{ label: 'errors', points: pts('errors') }], ...range, width, format: formatPercent }),
        lineChart({ name: 'rate', title: 'Requests per second', series: [{ label: 'requests/s', points: pts('rate') }], ...range, width, format: formatRate }),
      );
    };

    const pick = (op) => {
      operation = op;
      if (op === null) query.delete('operation');
      else query.set('operation', op);
      setQuery(query);
      for (const tr of body.querySelectorAll('tr[data-operation]')) tr.classList.toggle('is-selected', tr.dataset.operation === op);
      drawCharts();
    };

    const search = (op) => `/search?${new URLSearchParams({ service, ...(op ? { operation: op } : {}), lookback })}`;
    const ops = data.operations.length
      ? table({
          rows: data.operations,
          nameLabel: 'Operation',
          caption: `Operations of ${service} (${kind} spans). Pick one to chart it.`,
          range,
          trend: (row) => data.opSeries.rate.get(seriesKey(service, row.operation)),
          rowAttrs: (row) => ({ dataset: { operation: row.operation }, class: row.operation === operation ? 'is-selected' : '' }),
          nameCell: (row) =>
            h(
              'span',
              { class: 'op-cell' },
              h('button', { type: 'button', class: 'link-btn op-pick', text: row.operation, title: 'Chart this operation', onclick: () => pick(row.operation) }),
              h('a', { class: 'op-traces', href: search(row.operation), text: 'traces', title: `Find traces of ${row.operation}` }),
            ),
        })
      : h('p', { class: 'state-hint', dataset: { state: 'no-operations' }, text: `No ${kind} spans of ${service} in the ${rangeLabel(lookback)}. Try another span kind or a longer range.` });

    mount(
      body,
      h(
        'div',
        { class: 'monitor-service-bar' },
        ...select('monitor-service', 'Service', data.services.map((s) => [s, s]), service, (s) => navigate(urlFor(s))),
        h('a', { class: 'btn', href: search(null), text: 'Find traces' }),
      ),
      chartsTitle,
      kpis,
      charts,
      h('h2', { class: 'monitor-section', text: 'Operations' }),
      ops,
    );
    drawCharts();
    let last = charts.clientWidth;
    onResize = () => {
      if (Math.abs(charts.clientWidth - last) < 40) return;
      last = charts.clientWidth;
      drawCharts();
    };
    window.addEventListener('resize', onResize);
  };

  load();
  return () => {
    alive = false;
    if (onResize) window.removeEventListener('resize', onResize);
  };
}

/** The sort order survives a change of range or kind. */
function keep(query) {
  const out = {};
  for (const k of ['sort', 'order', 'operation']) if (query.get(k)) out[k] = query.get(k);
  return out;
}

function rangeLabel(lookback) {
  const label = LOOKBACKS.find(([v]) => v === lookback)?.[1] || lookback;
  return label.replace(/^Last/, 'last');
}

function metricsOff(err) {
  return h(
    'div',
    { class: 'state state-hint', dataset: { state: 'metrics-off' } },
    h('h2', { text: 'Span metrics are off' }),
    h('p', { text: err.message }),
    h('p', {}, 'The Monitor page reads the ', h('code', { text: 'spanmetrics' }), ' processor, which the default pipeline includes. Add it to the traces pipeline of your configuration to see request rates, errors and latencies here.'),
  );
}
