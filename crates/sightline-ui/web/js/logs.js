// Log records (the /api/logs shape): severity levels, grouping a trace's
// records by span, the histogram of counts by severity over time, and the
// Logs page's query. Pure functions: no DOM.

import { parseLogfmt } from './logfmt.js';

/**
 * Severity levels, lowest first: [name, first OTLP severity number]. OTLP
 * numbers 1–24 come in six ranges of four (TRACE..TRACE4, DEBUG..DEBUG4, …).
 */
export const LEVELS = [
  ['trace', 1],
  ['debug', 5],
  ['info', 9],
  ['warn', 13],
  ['error', 17],
  ['fatal', 21],
];

/** Level names the records carry when they have no usable severity. */
export const UNSET = 'unset';

/** Level names, lowest first, then `unset`: the histogram's stacking order. */
export const LEVEL_NAMES = [...LEVELS.map(([n]) => n), UNSET];

/** Common severity words (and syslog's) that are not OTLP's own names. */
const TEXT_ALIASES = {
  trace: 'trace',
  finest: 'trace',
  debug: 'debug',
  fine: 'debug',
  info: 'info',
  information: 'info',
  notice: 'info',
  warn: 'warn',
  warning: 'warn',
  error: 'error',
  err: 'error',
  severe: 'error',
  fatal: 'fatal',
  critical: 'fatal',
  crit: 'fatal',
  alert: 'fatal',
  emergency: 'fatal',
  emerg: 'fatal',
  panic: 'fatal',
};

/** The level of an OTLP severity number (1–24), or `unset`. */
export function levelOfNumber(n) {
  if (!Number.isInteger(n) || n < 1 || n > 24) return UNSET;
  return LEVELS[Math.floor((n - 1) / 4)][0];
}

/**
 * The level of a record: its severity number when set (the field OTLP
 * defines for comparing severities), else its severity text when that names
 * a level (`WARNING`, `err`, `Error2`), else `unset`. SDKs that bridge
 * language loggers without a mapping send only the text.
 */
export function recordLevel(record) {
  const byNumber = levelOfNumber(record.severityNumber);
  if (byNumber !== UNSET) return byNumber;
  const text = String(record.severityText || '').trim().toLowerCase().replace(/[0-9]+$/, '');
  return TEXT_ALIASES[text] || UNSET;
}

/** The severity to show: the record's own text, else its level's name. */
export function severityLabel(record) {
  const text = String(record.severityText || '').trim();
  if (text) return text;
  const level = recordLevel(record);
  return level === UNSET ? '–' : level.toUpperCase();
}

/** The record's time: its timestamp, else when it was observed (as the API's time filter). */
export function recordTime(record) {
  return record.timestamp || record.observedTimestamp || 0;
}

/** The body as text: strings as they are, structured bodies as compact JSON, none as ''. */
export function bodyText(body) {
  if (body === null || body === undefined) return '';
  return typeof body === 'string' ? body : JSON.stringify(body);
}

/** Attributes ({key: JSON value}) as [{key, value}] rows sorted by key; values as text. */
export function attributeRows(attributes) {
  return Object.entries(attributes || {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, v]) => ({ key, value: typeof v === 'string' ? v : JSON.stringify(v) }));
}

/** Oldest first (stable for equal times): a trace's records read as a timeline. */
export function chronological(records) {
  return records
    .map((r, i) => [r, i])
    .sort(([a, i], [b, j]) => recordTime(a) - recordTime(b) || i - j)
    .map(([r]) => r);
}

/**
 * A trace's records by span: `bySpan` maps each span id of `spanIds` to its
 * records (oldest first); the rest — no span id, or one that is not a span
 * of the trace — belong to the trace only (`traceOnly`).
 */
export function groupBySpan(records, spanIds) {
  const bySpan = new Map();
  const traceOnly = [];
  for (const r of chronological(records)) {
    if (r.spanID && spanIds.has(r.spanID)) {
      if (!bySpan.has(r.spanID)) bySpan.set(r.spanID, []);
      bySpan.get(r.spanID).push(r);
    } else {
      traceOnly.push(r);
    }
  }
  return { bySpan, traceOnly };
}

/** Bucket widths the histogram picks from (µs): round wall-clock steps. */
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].map((s) => s * 1e6);

/** The smallest round step that covers `span` µs in at most `maxBuckets` buckets. */
export function bucketStep(span, maxBuckets = 60) {
  return STEPS.find((s) => span / s <= maxBuckets) ?? Math.ceil(span / maxBuckets / 86400e6) * 86400e6;
}

/**
 * Counts of records by level over time: buckets of a round step aligned to
 * the epoch (so the same minute is one bar whatever the range), covering
 * [start, end] (µs; the records' own range when not given). Records outside
 * the range are left out. Returns {step, buckets: [{start, end, total,
 * counts: {level: n}}], max} (`max` the largest total, for scaling).
 */
export function histogram(records, { start, end, maxBuckets = 60 } = {}) {
  const times = records.map(recordTime);
  const from = start ?? Math.min(...times);
  const to = end ?? Math.max(...times);
  if (!records.length && (start === undefined || end === undefined)) return { step: 0, buckets: [], max: 0 };
  const step = bucketStep(Math.max(1, to - from), maxBuckets);
  const first = Math.floor(from / step) * step;
  const count = Math.floor((to - first) / step) + 1;
  const buckets = Array.from({ length: count }, (_, i) => ({
    start: first + i * step,
    end: first + (i + 1) * step,
    total: 0,
    counts: Object.fromEntries(LEVEL_NAMES.map((n) => [n, 0])),
  }));
  for (const r of records) {
    const t = recordTime(r);
    if (t < from || t > to) continue;
    const b = buckets[Math.floor((t - first) / step)];
    b.counts[recordLevel(r)]++;
    b.total++;
  }
  return { step, buckets, max: Math.max(0, ...buckets.map((b) => b.total)) };
}

/** The largest page the API serves. */
export const MAX_LIMIT = 1000;

/**
 * The /api/logs parameters of a Logs page URL (`service`, `minSeverity`,
 * `q`, `traceID`, `tags` in logfmt as on the trace search — sent as the
 * API's JSON object —, `limit`, and a range: `lookback` ending at `nowUs`,
 * or explicit `start`/`end` in µs). Returns {params} or {error} (a message
 * for the form), checked before the server sees it.
 */
export function logsParams(query, lookbackMicros, nowUs) {
  const params = {};
  for (const key of ['service', 'minSeverity', 'q', 'traceID']) {
    const v = (query.get(key) || '').trim();
    if (v) params[key] = v;
  }
  const tags = (query.get('tags') || '').trim();
  if (tags) {
    let parsed;
    try {
      parsed = parseLogfmt(tags);
    } catch (e) {
      return { error: `Attributes: ${e.message}.` };
    }
    if (Object.keys(parsed).length) params.tags = JSON.stringify(parsed);
  }
  const limitText = query.get('limit');
  const limit = limitText === null || limitText === '' ? 100 : Number(limitText);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) return { error: `Limit: a whole number from 1 to ${MAX_LIMIT}.` };
  params.limit = limit;
  const lookback = query.get('lookback') || '1h';
  if (lookback === 'custom' || (!query.has('lookback') && query.has('start'))) {
    const s = Number(query.get('start'));
    const e = query.has('end') ? Number(query.get('end')) : nowUs;
    if (!Number.isFinite(s) || !Number.isFinite(e) || !(s < e)) return { error: 'The custom range must start before it ends.' };
    params.start = s;
    params.end = e;
  } else if (lookback !== 'all') {
    const span = lookbackMicros(lookback);
    if (!span) return { error: `Time range: unknown lookback "${lookback}".` };
    params.start = nowUs - span;
    params.end = nowUs;
  }
  return { params };
}
