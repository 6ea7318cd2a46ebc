// The Monitor page's data: Jaeger's span metrics API (/api/metrics/*)
// turned into series and table rows. Pure functions, no DOM, so `node
// --test` runs them.
//
// The API answers a Prometheus-style range query: one point every `step`
// from `endTs - lookback` to `endTs`, each summarising the spans of the
// `ratePer` before it, as a bare MetricFamily
// ({name, metrics: [{labels: [{name, value}], metricPoints: [{gaugeValue:
// {doubleValue}, timestamp}]}]}). Call rates are per second, error rates a
// fraction of calls (0–1), latencies in milliseconds.

/** The measures the page asks for: [key, API path, extra parameters]. */
export const MEASURES = [
  ['rate', 'calls', {}],
  ['errors', 'errors', {}],
  ['p50', 'latencies', { quantile: '0.5' }],
  ['p95', 'latencies', { quantile: '0.95' }],
  ['p99', 'latencies', { quantile: '0.99' }],
];

/** Span kinds the API filters by (Jaeger's Monitor tab offers the same). */
export const SPAN_KINDS = [
  ['server', 'Server'],
  ['client', 'Client'],
  ['consumer', 'Consumer'],
  ['producer', 'Producer'],
  ['internal', 'Internal'],
];

/** The span metrics' resolution: one minute (what /api/metrics/minstep answers). */
export const MIN_STEP_MS = 60_000;

/**
 * The step of a chart over `lookbackMs`: about `points` points, in whole
 * multiples of the metrics' resolution (a finer step would repeat minutes).
 * Each point then covers exactly one step (`ratePer = step`), so the
 * points of a rate chart add up to the whole range.
 */
export function chartStep(lookbackMs, points = 60, minStepMs = MIN_STEP_MS) {
  const raw = Math.max(minStepMs, lookbackMs / points);
  return Math.ceil(raw / minStepMs) * minStepMs;
}

/**
 * The parameters of one API call. `summary` asks for one value over the
 * whole range (step and ratePer = lookback: the last point covers it all);
 * otherwise a chart's series.
 */
export function metricsParams({ services, kind, endMs, lookbackMs, groupByOperation, summary, extra = {} }) {
  const step = summary ? lookbackMs : chartStep(lookbackMs);
  return {
    service: services,
    spanKind: kind,
    endTs: String(Math.round(endMs)),
    lookback: String(Math.round(lookbackMs)),
    step: String(step),
    ratePer: String(step),
    ...(groupByOperation ? { groupByOperation: 'true' } : {}),
    ...extra,
  };
}

/**
 * A MetricFamily as series: [{service, operation, points: [{t, v}]}]
 * (`t` in ms since the epoch, ascending; `operation` null unless grouped).
 * Points that are not finite numbers are dropped.
 */
export function parseFamily(family) {
  const out = [];
  for (const metric of family?.metrics || []) {
    const labels = Object.fromEntries((metric.labels || []).map((l) => [l.name, l.value]));
    const points = [];
    for (const p of metric.metricPoints || []) {
      const t = Date.parse(p.timestamp);
      const v = Number(p.gaugeValue?.doubleValue);
      if (Number.isFinite(t) && Number.isFinite(v)) points.push({ t, v });
    }
    points.sort((a, b) => a.t - b.t);
    out.push({ service: labels.service_name ?? '', operation: labels.operation ?? null, points });
  }
  return out;
}

/** The key of a series or row: the service, or service and operation. */
export function seriesKey(service, operation) {
  return operation === null || operation === undefined ? service : `${service}\u0000${operation}`;
}

/**
 * Table rows from summary families (one per measure, keyed as in
 * MEASURES): Map key → {service, operation, rate, errors, p50, p95, p99}.
 * Each value is the series' point at `endMs`, the one covering the whole
 * range; null where there is none (no calls in the range: no latency).
 * The other point a summary query may return, at the range's start,
 * covers the range before it and is ignored.
 */
export function summaryRows(families, endMs) {
  const rows = new Map();
  for (const [measure, family] of Object.entries(families)) {
    for (const s of parseFamily(family)) {
      const key = seriesKey(s.service, s.operation);
      let row = rows.get(key);
      if (!row) rows.set(key, (row = { service: s.service, operation: s.operation, rate: null, errors: null, p50: null, p95: null, p99: null }));
      const atEnd = s.points.find((p) => Math.abs(p.t - endMs) < 1);
      row[measure] = atEnd ? atEnd.v : null;
    }
  }
  return rows;
}

/** Series by key for one measure: Map key → points. */
export function seriesByKey(family) {
  return new Map(parseFamily(family).map((s) => [seriesKey(s.service, s.operation), s.points]));
}

/**
 * Sorts table rows by `column` (a measure, `name`), descending when
 * `desc`. Rows without a value for the column always go last, so "no
 * data" never hides the busiest service; ties fall back to the name.
 */
export function sortRows(rows, column, desc) {
  const name = (r) => (r.operation ?? r.service) || '';
  return [...rows].sort((a, b) => {
    if (column === 'name') return (desc ? -1 : 1) * name(a).localeCompare(name(b));
    const va = a[column];
    const vb = b[column];
    const missingA = va === null || va === undefined;
    const missingB = vb === null || vb === undefined;
    if (missingA !== missingB) return missingA ? 1 : -1;
    if (!missingA && va !== vb) return desc ? vb - va : va - vb;
    return name(a).localeCompare(name(b));
  });
}

/** Calls per second as short text, three significant digits: 0, 0.000556, 0.0833, 42.3, 1,250. */
export function formatRate(perSecond) {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return '–';
  if (perSecond === 0) return '0';
  if (perSecond >= 1000) return Math.round(perSecond).toLocaleString('en-US');
  return String(Number(perSecond.toPrecision(3)));
}

/** An error fraction (0–1) as a percentage: 0%, 0.5%, 25%, 100%. */
export function formatPercent(fraction) {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return '–';
  const pct = fraction * 100;
  if (pct === 0) return '0%';
  if (pct < 0.01) return '<0.01%';
  return `${Number(pct.toPrecision(pct < 10 ? 2 : 3))}%`;
}

const MINUTE = 60_000;
const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440].map((m) => m * MINUTE);

/**
 * Ticks for a time axis from `from` to `to` (ms): at most `count` round
 * times (whole minutes, quarter hours, hours… in local time, given as the
 * offset of local time from UTC in minutes, as `-Date#getTimezoneOffset()`).
 */
export function timeTicks(from, to, count = 6, offsetMinutes = 0) {
  const span = to - from;
  if (!(span > 0)) return [from];
  const step = TICK_STEPS.find((s) => span / s <= count) ?? Math.ceil(span / count / (1440 * MINUTE)) * 1440 * MINUTE;
  const shift = offsetMinutes * MINUTE;
  const out = [];
  for (let t = Math.ceil((from + shift) / step) * step - shift; t <= to; t += step) out.push(t);
  return out;
}
