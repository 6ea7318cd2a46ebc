// Formatting of durations, times and counts. Pure functions: no DOM.
// Every time in the Jaeger API is in microseconds (µs).

/** A duration in µs as short text: 850µs, 1.25ms, 3.4s, 2m 5s, 1h 3m. */
export function formatDuration(us) {
  if (!Number.isFinite(us)) return '–';
  const sign = us < 0 ? '-' : '';
  const v = Math.abs(us);
  if (v < 1000) return `${sign}${trim(v, 0)}µs`;
  if (v < 1e6) return `${sign}${trim(v / 1e3, 2)}ms`;
  if (v < 60e6) return `${sign}${trim(v / 1e6, 2)}s`;
  if (v < 3600e6) {
    const m = Math.floor(v / 60e6);
    const s = Math.round((v - m * 60e6) / 1e6);
    return s ? `${sign}${m}m ${s}s` : `${sign}${m}m`;
  }
  const h = Math.floor(v / 3600e6);
  const m = Math.round((v - h * 3600e6) / 60e6);
  return m ? `${sign}${h}h ${m}m` : `${sign}${h}h`;
}

/** `n` with at most `digits` decimals, trailing zeros dropped. */
function trim(n, digits) {
  return String(Number(n.toFixed(digits)));
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** A µs timestamp as local `YYYY-MM-DD HH:MM:SS.mmm`. */
export function formatTimestamp(us) {
  const d = new Date(us / 1000);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

/** A µs timestamp relative to `nowMs`: "just now", "5 minutes ago", "3 days ago". */
export function formatRelative(us, nowMs = Date.now()) {
  const s = Math.round((nowMs - us / 1000) / 1000);
  if (s < 0) return 'in the future';
  if (s < 10) return 'just now';
  const units = [
    [60, 'second'],
    [60, 'minute'],
    [24, 'hour'],
    [Infinity, 'day'],
  ];
  let v = s;
  for (const [size, name] of units) {
    if (v < size) return `${v} ${name}${v === 1 ? '' : 's'} ago`;
    v = Math.floor(v / size);
  }
  return '';
}

/** An integer with thousands separators. */
export function formatCount(n) {
  return n.toLocaleString('en-US');
}

/** Go's `time.ParseDuration` syntax, as the API's minDuration/maxDuration accept. */
const GO_DURATION = /^([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))*$/;

/** Whether `text` is a positive Go duration such as `100ms` or `1m30s`. */
export function isGoDuration(text) {
  return GO_DURATION.test(text);
}

/** Lookback presets: URL value → [label, µs]. */
export const LOOKBACKS = [
  ['5m', 'Last 5 minutes', 5 * 60e6],
  ['15m', 'Last 15 minutes', 15 * 60e6],
  ['30m', 'Last 30 minutes', 30 * 60e6],
  ['1h', 'Last hour', 3600e6],
  ['2h', 'Last 2 hours', 2 * 3600e6],
  ['6h', 'Last 6 hours', 6 * 3600e6],
  ['12h', 'Last 12 hours', 12 * 3600e6],
  ['24h', 'Last 24 hours', 24 * 3600e6],
  ['2d', 'Last 2 days', 48 * 3600e6],
  ['7d', 'Last 7 days', 7 * 24 * 3600e6],
];

/** The µs span of a lookback preset, or undefined. */
export function lookbackMicros(value) {
  const found = LOOKBACKS.find(([v]) => v === value);
  return found ? found[2] : undefined;
}

/** Ticks for an axis from `min` to `max`: about `count` round values inside the range. */
export function niceTicks(min, max, count = 5) {
  const span = max - min;
  if (!(span > 0)) return [min];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(v);
  return out;
}
