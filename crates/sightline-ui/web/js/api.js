// The UI's only way to the server: the public Jaeger-compatible HTTP API,
// the log API (/api/logs) and /health (to show where to send data). Every call returns the
// envelope's `data` or throws ApiError.

/** A failed call: `unreachable` (no answer at all) or an HTTP status with the server's message. */
export class ApiError extends Error {
  constructor(message, { status = 0, unreachable = false, extra } = {}) {
    super(message);
    this.status = status;
    this.unreachable = unreachable;
    this.extra = extra;
  }
}

async function request(path) {
  let response;
  try {
    response = await fetch(path, { headers: { accept: 'application/json' } });
  } catch (e) {
    throw new ApiError(`Cannot reach the Sightline API at ${location.origin} (${e.message}). Is the server running?`, {
      unreachable: true,
    });
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below
  }
  if (!response.ok) {
    const msg = body?.errors?.[0]?.msg || text.trim() || response.statusText;
    throw new ApiError(msg, { status: response.status });
  }
  if (body === null) throw new ApiError(`${path}: the server sent no JSON`, { status: response.status });
  return { body, text };
}

async function data(path) {
  return (await request(path)).body.data;
}

const enc = encodeURIComponent;

/** Service names, sorted. */
export async function services() {
  return ((await data('/api/services')) || []).slice().sort();
}

/** Operation names of a service, sorted, with their span kinds. */
export async function operations(service) {
  const ops = (await data(`/api/operations?service=${enc(service)}`)) || [];
  return ops.sort((a, b) => a.name.localeCompare(b.name) || a.spanKind.localeCompare(b.spanKind));
}

/** A query string from an object; array values repeat the key, empty values are left out. */
function queryString(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (Array.isArray(v)) v.forEach((x) => q.append(k, x));
    else if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  return q;
}

/** A search: `params` are /api/traces parameters. Returns {traces, errors}. */
export async function searchTraces(params) {
  const { body } = await request(`/api/traces?${queryString(params)}`);
  return { traces: body.data || [], errors: body.errors || [] };
}

/** One trace, with the response text for download. Throws ApiError with status 404 when unknown. */
export async function trace(id) {
  const { body } = await request(`/api/traces/${enc(id)}`);
  const t = body.data?.[0];
  if (!t) throw new ApiError('trace not found', { status: 404 });
  return t;
}

/** Service call counts ending at `endMs` over `lookbackMs`. */
export async function dependencies(endMs, lookbackMs) {
  return (await data(`/api/dependencies?endTs=${Math.round(endMs)}&lookback=${Math.round(lookbackMs)}`)) || [];
}

/**
 * A span metrics family (Jaeger's SPM API, as its Monitor tab reads it):
 * `kind` is `calls`, `errors` or `latencies`; `params` its query
 * (metrics.js builds them). The answer is a bare MetricFamily, no envelope.
 */
export async function metrics(kind, params) {
  return (await request(`/api/metrics/${kind}?${queryString(params)}`)).body;
}

/**
 * A TraceQL search through Tempo's API (`/api/search?q=&start=&end=&limit=&spss=`,
 * times in unix seconds). Returns Tempo's SearchResponse; a bad query is an
 * ApiError with status 400 and the parser's message (which names a line
 * and column).
 */
export async function tempoSearch(params) {
  return (await request(`/api/search?${queryString(params)}`)).body;
}

/** Attribute names by scope, for TraceQL autocompletion: Tempo's {scopes: [{name, tags}]}. */
export async function tempoTags() {
  return (await request('/api/v2/search/tags')).body;
}

/** Values seen for a TraceQL attribute or intrinsic: [{type, value}]. */
export async function tempoTagValues(tag) {
  return (await request(`/api/v2/search/tag/${enc(tag)}/values`)).body.tagValues || [];
}

/**
 * A page of log records: `params` are /api/logs parameters (`cursor` the
 * previous page's `next`). Returns {records, next} (`next` null on the last
 * page). Without a log store the server answers 501 (an ApiError).
 */
export async function logs(params) {
  const { body } = await request(`/api/logs?${queryString(params)}`);
  return { records: body.data || [], next: body.next || null };
}

/** Services with stored log records, sorted. */
export async function logServices() {
  return ((await data('/api/logs/services')) || []).slice().sort();
}

/** The live tail's URL (server-sent events, `event: log`) for /api/logs filters. */
export function logsTailUrl(params) {
  return `/api/logs/tail?${queryString(params)}`;
}

/**
 * Where to send OTLP, read from /health (`listening on <addr>` for the
 * otlp_grpc and otlp_http checks); the defaults when it does not say.
 */
export async function otlpEndpoints() {
  const out = { http: '127.0.0.1:4318', grpc: '127.0.0.1:4317' };
  try {
    const response = await fetch('/health');
    const body = await response.json();
    for (const check of body.checks || []) {
      const m = /listening on (\S+)/.exec(check.detail || '');
      if (!m) continue;
      if (check.name === 'otlp_http') out.http = m[1];
      if (check.name === 'otlp_grpc') out.grpc = m[1];
    }
  } catch {
    // keep the defaults
  }
  return out;
}
