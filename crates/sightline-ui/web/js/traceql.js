// The TraceQL search mode's logic: where the server says a query is wrong,
// what to suggest at the caret, and Tempo's search answer as result
// summaries. Pure functions, no DOM, so `node --test` runs them.
//
// The server's parser is the authority on what TraceQL is: this file never
// rejects a query. Its lexer only has to be good enough to know, at the
// caret, whether an attribute, an operator, a value or a spanset operator
// comes next — also in half-typed input.

// ---------------------------------------------------------------- lexing

/** Operators, longest first so `&&` wins over `&`, `!~` over `!`. */
const OPERATORS = ['!>>', '!<<', '&>>', '&<<', '&&', '||', '!=', '=~', '!~', '>=', '<=', '>>', '<<', '!>', '!<', '&>', '&<', '&~', '=', '>', '<', '!', '~', '+', '-', '*', '/', '%', '^', '|'];
const PUNCTUATION = new Set(['{', '}', '(', ')', ',']);
const DURATION = /^(?:\d+(?:\.\d+)?|\.\d+)(?:ns|us|µs|ms|s|m|h)/;
const NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/;
/** Characters that end an attribute name (Tempo allows most others, `-` and `/` included). */
const NAME_STOP = /[\s{}()=!<>&|^,+*%~"`]/;

function nameEnd(text, i) {
  while (i < text.length) {
    const c = text[i];
    if (c === '"' && text[i - 1] === '.') {
      // a quoted segment: span."foo bar"
      const close = quotedEnd(text, i);
      i = close.end;
      if (!close.closed) break;
      continue;
    }
    if (NAME_STOP.test(c)) break;
    i++;
  }
  return i;
}

/** End of the string starting at `i` (a `"` or a backquote): {end, closed, value}. */
function quotedEnd(text, i) {
  const q = text[i];
  let value = '';
  let j = i + 1;
  while (j < text.length) {
    const c = text[j];
    if (q === '"' && c === '\\' && j + 1 < text.length) {
      const n = text[j + 1];
      value += { n: '\n', t: '\t', r: '\r' }[n] ?? n;
      j += 2;
      continue;
    }
    if (c === q) return { end: j + 1, closed: true, value };
    value += c;
    j++;
  }
  return { end: j, closed: false, value };
}

/**
 * Tokens of `text`: {type, text, start, end} with type `punct` (`{ } ( ) ,`),
 * `op`, `string` (plus `value` and `closed`), `duration`, `number`,
 * `name` (attributes, intrinsics, keywords, functions) or `other`.
 * Whitespace is skipped. Never throws: unknown characters are `other`.
 */
export function lex(text) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (PUNCTUATION.has(c)) {
      out.push({ type: 'punct', text: c, start, end: ++i });
      continue;
    }
    if (c === '"' || c === '`') {
      const s = quotedEnd(text, i);
      out.push({ type: 'string', text: text.slice(start, s.end), start, end: s.end, value: s.value, closed: s.closed });
      i = s.end;
      continue;
    }
    const rest = text.slice(i);
    const num = /^[\d]/.test(c) || (c === '.' && /^\.\d/.test(rest));
    if (num) {
      const d = DURATION.exec(rest);
      const m = d || NUMBER.exec(rest);
      out.push({ type: d ? 'duration' : 'number', text: m[0], start, end: (i += m[0].length) });
      continue;
    }
    if (c === '.' || c === '_' || /\p{L}/u.test(c)) {
      const end = Math.max(nameEnd(text, i + 1), i + 1);
      out.push({ type: 'name', text: text.slice(start, end), start, end });
      i = end;
      continue;
    }
    const op = OPERATORS.find((o) => rest.startsWith(o));
    if (op) {
      out.push({ type: 'op', text: op, start, end: (i += op.length) });
      continue;
    }
    out.push({ type: 'other', text: c, start, end: ++i });
  }
  return out;
}

// ---------------------------------------------------------------- errors

/**
 * The position a server error message names, or null: Sightline's `at
 * 1:14: …`, Tempo's `parse error at line 1, col 14: …`, or a leading
 * `1:14`. Lines and columns count from 1, columns in characters.
 */
export function parseErrorPosition(message) {
  const text = String(message || '');
  const m = /\bline (\d+),? col(?:umn)? (\d+)/i.exec(text) || /\bat (\d+):(\d+)\b/.exec(text) || /^\s*(\d+):(\d+)\b/.exec(text);
  if (!m) return null;
  const line = Number(m[1]);
  const column = Number(m[2]);
  return line >= 1 && column >= 1 ? { line, column } : null;
}

/**
 * The UTF-16 offset (what a textarea's selection counts) of a 1-based line
 * and column in characters (what the server counts), clamped to the text.
 */
export function offsetAt(text, line, column) {
  let l = 1;
  let c = 1;
  let offset = 0;
  for (const ch of text) {
    if (l === line && c === column) return offset;
    if (ch === '\n') {
      if (l === line) return offset; // column past the end of its line
      l++;
      c = 1;
    } else {
      c++;
    }
    offset += ch.length;
  }
  return offset;
}

/**
 * What to mark for an error at `offset`: the token that starts there (or
 * covers it), else one character; at the end of the text an empty range,
 * which the editor shows as a marker after the last character.
 */
export function errorRange(text, offset) {
  if (offset >= text.length) return { start: text.length, end: text.length };
  const token = lex(text).find((t) => t.start <= offset && offset < t.end);
  if (token && token.start === offset) return { start: token.start, end: token.end };
  return { start: offset, end: offset + (text.codePointAt(offset) > 0xffff ? 2 : 1) };
}

// ---------------------------------------------------------------- completion

const COMPARISONS = new Set(['=', '!=', '=~', '!~', '>', '>=', '<', '<=']);
const ARITHMETIC = new Set(['+', '-', '*', '/', '%', '^']);
/** Functions after `|` whose arguments are attributes. */
const ATTRIBUTE_FUNCTIONS = new Set(['by', 'select', 'avg', 'min', 'max', 'sum']);

/** Tempo's intrinsics, for when the tags endpoint does not list them. */
export const INTRINSICS = [
  'duration', 'name', 'status', 'statusMessage', 'kind', 'rootName', 'rootServiceName', 'traceDuration',
  'event:name', 'event:timeSinceStart', 'link:traceID', 'link:spanID', 'instrumentation:name', 'instrumentation:version',
  'span:id', 'span:parentID', 'trace:id',
];

/** Values every query may use for these intrinsics (keywords, not strings). */
const KEYWORD_VALUES = {
  status: ['error', 'ok', 'unset'],
  'span:status': ['error', 'ok', 'unset'],
  kind: ['server', 'client', 'internal', 'producer', 'consumer', 'unspecified'],
  'span:kind': ['server', 'client', 'internal', 'producer', 'consumer', 'unspecified'],
};

/**
 * What may come at `caret` in `text`. Returns {kind, from, to, prefix,
 * attribute}: `kind` is `attribute`, `operator`, `value`, `connective`
 * (`&&`, `||`, `}` inside a spanset), `spanset` (a new `{ }`), `spanset-op`
 * (between spansets), `pipeline` (after `|`) or null; [from, to) is the
 * text a suggestion replaces (the word at the caret); `prefix` what is
 * typed of it; `attribute` the attribute a value is for.
 */
export function completionContext(text, caret) {
  const before = lex(text.slice(0, caret));
  let word = null;
  const last = before[before.length - 1];
  if (last && last.end === caret && (last.type === 'name' || last.type === 'number' || last.type === 'duration' || (last.type === 'string' && !last.closed))) word = last;
  const prev = word ? before.slice(0, -1) : before;
  const from = word ? word.start : caret;
  // A suggestion replaces the whole word, also the part after the caret.
  let to = caret;
  if (word && word.type === 'string') to = quotedEnd(text, word.start).end;
  else if (word) to = Math.max(caret, nameEnd(text, caret));
  const prefix = word ? (word.type === 'string' ? word.value : text.slice(word.start, caret)) : '';
  const ctx = (kind, attribute = null) => ({ kind, from, to, prefix, attribute, quoted: word?.type === 'string' });

  let depth = 0;
  for (const t of prev) {
    if (t.text === '{' && t.type === 'punct') depth++;
    if (t.text === '}' && t.type === 'punct') depth = Math.max(0, depth - 1);
  }
  const p = prev[prev.length - 1];
  const pp = prev[prev.length - 2];

  if (word && word.type === 'string') {
    if (p && p.type === 'op' && COMPARISONS.has(p.text) && pp && pp.type === 'name') return ctx('value', pp.text);
    return ctx(null);
  }
  if (depth > 0) {
    if (!p || (p.type === 'punct' && (p.text === '{' || p.text === '(')) || (p.type === 'op' && ['&&', '||', '!'].includes(p.text))) return ctx('attribute');
    if (p.type === 'op' && COMPARISONS.has(p.text)) return ctx('value', pp && pp.type === 'name' ? pp.text : null);
    if (p.type === 'op' && ARITHMETIC.has(p.text)) return ctx('attribute');
    if (p.type === 'name') {
      // `{ status = error` → a value was given; `{ span.foo` → an operator comes next.
      if (pp && pp.type === 'op' && COMPARISONS.has(pp.text)) return ctx('connective');
      return word ? ctx('attribute') : ctx('operator', p.text);
    }
    if (p.type === 'string' || p.type === 'number' || p.type === 'duration' || (p.type === 'punct' && p.text === ')')) return ctx('connective');
    return ctx(null);
  }
  // Outside spansets: inside by(…), select(…), avg(…) after a `|`?
  let open = 0;
  for (let i = prev.length - 1; i >= 0; i--) {
    const t = prev[i];
    if (t.type === 'punct' && t.text === ')') open--;
    if (t.type === 'punct' && t.text === '(') {
      open++;
      if (open > 0) {
        const fn = prev[i - 1];
        if (fn && fn.type === 'name' && ATTRIBUTE_FUNCTIONS.has(fn.text)) {
          if (!p || (p.type === 'punct' && (p.text === '(' || p.text === ','))) return ctx('attribute');
          return ctx(null);
        }
        break;
      }
    }
  }
  // `>` and `<` are structural between spansets but comparisons after a
  // pipeline's aggregate (`| count() > 2`).
  const lastIndex = (pred) => prev.reduce((at, t, i) => (pred(t) ? i : at), -1);
  const inPipeline = lastIndex((t) => t.type === 'op' && t.text === '|') > lastIndex((t) => t.type === 'punct' && t.text === '}');
  if (!p || (p.type === 'punct' && p.text === '(' && !inPipeline)) return word && word.type === 'name' ? ctx(null) : ctx('spanset');
  if (p.type === 'op') {
    if (p.text === '|') return ctx('pipeline');
    if (ARITHMETIC.has(p.text) || (inPipeline && COMPARISONS.has(p.text))) return ctx(null);
    return word && word.type === 'name' ? ctx(null) : ctx('spanset');
  }
  if (p.type === 'punct' && (p.text === '}' || p.text === ')')) return ctx('spanset-op');
  if (p.type === 'number' || p.type === 'duration') return ctx('spanset-op');
  return ctx(null);
}

/** A tag name as TraceQL writes it: quoted when it has characters a name cannot. */
export function attributeName(scope, tag) {
  const safe = /^[\p{L}_][\p{L}\p{N}_.\-/]*$/u.test(tag);
  const name = safe ? tag : `"${tag.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  if (scope === 'intrinsic') return tag;
  return `${scope === 'none' ? '' : scope}.${name}`;
}

/** A value as a TraceQL literal: strings quoted, keywords and numbers as they are. */
export function valueLiteral({ type, value }) {
  if (type === 'string') return JSON.stringify(String(value));
  return String(value);
}

const OPERATOR_ITEMS = [
  ['=', 'equals'],
  ['!=', 'not equal'],
  ['=~', 'matches a regular expression'],
  ['!~', 'does not match'],
  ['>', 'greater than'],
  ['>=', 'at least'],
  ['<', 'less than'],
  ['<=', 'at most'],
];
const SPANSET_OPS = [
  ['&&', 'both spansets in the trace'],
  ['||', 'either spanset'],
  ['>>', 'descendants of the left'],
  ['>', 'children of the left'],
  ['<<', 'ancestors of the left'],
  ['<', 'parents of the left'],
  ['~', 'siblings of the left'],
  ['| ', 'a pipeline stage'],
];
const PIPELINE = [
  ['count() > ', 'spansets with more than N spans'],
  ['avg(duration) > ', 'by the mean of an attribute'],
  ['max(duration) > ', 'by the largest value'],
  ['min(duration) < ', 'by the smallest value'],
  ['sum(duration) > ', 'by the total'],
  ['select(', 'return more attributes'],
  ['by(', 'group into spansets'],
  ['coalesce()', 'merge spansets'],
];

/**
 * Suggestions for a context: [{label, insert, detail, caret?}] where
 * `caret` is where the caret goes within `insert` (default: its end).
 * `tags` is the tags endpoint's answer ({scopes: [{name, tags}]}), or
 * null; `values` the values of `ctx.attribute` ([{type, value}]), or null.
 */
export function completions(ctx, { tags = null, values = null } = {}) {
  if (!ctx || !ctx.kind) return [];
  let items = [];
  switch (ctx.kind) {
    case 'attribute': {
      const seen = new Set();
      const add = (label, detail) => {
        if (seen.has(label)) return;
        seen.add(label);
        items.push({ label, insert: `${label} `, detail });
      };
      const scopes = tags?.scopes || [];
      const intrinsic = scopes.find((s) => s.name === 'intrinsic');
      for (const name of intrinsic ? intrinsic.tags : INTRINSICS) add(name, 'intrinsic');
      for (const scope of scopes) {
        if (scope.name === 'intrinsic') continue;
        for (const tag of scope.tags || []) add(attributeName(scope.name, tag), `${scope.name} attribute`);
      }
      for (const scope of ['span.', 'resource.', 'event.', 'link.', 'instrumentation.', '.']) {
        if (!seen.has(scope)) items.push({ label: scope, insert: scope, detail: scope === '.' ? 'any scope' : 'scope' });
      }
      break;
    }
    case 'operator':
      items = OPERATOR_ITEMS.map(([op, detail]) => ({ label: op, insert: `${op} `, detail }));
      break;
    case 'value': {
      const list = values && values.length ? values : (KEYWORD_VALUES[ctx.attribute] || []).map((v) => ({ type: 'keyword', value: v }));
      items = list.map((v) => ({ label: valueLiteral(v), insert: `${valueLiteral(v)} `, detail: v.type }));
      if (ctx.quoted) {
        // typing inside quotes: match on the text, replace the whole string
        items = items.filter((i) => i.detail === 'string');
      }
      break;
    }
    case 'connective':
      items = [
        { label: '&&', insert: '&& ', detail: 'and' },
        { label: '||', insert: '|| ', detail: 'or' },
        { label: '}', insert: '}', detail: 'end the spanset' },
      ];
      break;
    case 'spanset':
      items = [{ label: '{ }', insert: '{  }', caret: 2, detail: 'a spanset: spans matching a condition' }];
      break;
    case 'spanset-op':
      items = SPANSET_OPS.map(([op, detail]) => ({ label: op.trim(), insert: `${op.trim()} `, detail }));
      break;
    case 'pipeline':
      items = PIPELINE.map(([insert, detail]) => ({ label: insert.trim(), insert, detail }));
      break;
    default:
      return [];
  }
  return filterByPrefix(items, ctx);
}

/** Items starting with what is typed first, then those containing it; case-insensitive. */
function filterByPrefix(items, ctx) {
  if (!ctx.prefix) return items;
  const needle = ctx.prefix.toLowerCase();
  // Values match on their text, with or without the opening quote typed.
  const key = (i) => (ctx.quoted ? JSON.parse(i.label) : ctx.kind === 'value' ? i.label.replace(/^"/, '') : i.label).toLowerCase();
  const starts = items.filter((i) => key(i).startsWith(needle));
  const contains = items.filter((i) => !key(i).startsWith(needle) && key(i).includes(needle));
  return [...starts, ...contains];
}

/** Applies a suggestion: the new text and caret. */
export function applyCompletion(text, ctx, item) {
  const next = text.slice(0, ctx.from) + item.insert + text.slice(ctx.to);
  return { text: next, caret: ctx.from + (item.caret ?? item.insert.length) };
}

// ---------------------------------------------------------------- results

const nanosToMicros = (text) => {
  try {
    return Number(BigInt(String(text || '0')) / 1000n);
  } catch {
    return 0;
  }
};

/**
 * Tempo's search answer (`/api/search`: {traces: [{traceID,
 * rootServiceName, rootTraceName, startTimeUnixNano, durationMs,
 * spanSets, spanSet, serviceStats}]}) as the result summaries the search
 * page lists, each with the spans that matched. Times in µs; uint64
 * fields arrive as strings (protobuf JSON).
 */
export function tempoSummaries(response) {
  return (response?.traces || []).map((t) => {
    const stats = Object.entries(t.serviceStats || {}).map(([name, s]) => ({ name, count: s.spanCount || 0, errors: s.errorCount || 0 }));
    const sets = t.spanSets || (t.spanSet ? [t.spanSet] : []);
    const matched = [];
    for (const set of sets) {
      for (const span of set.spans || []) {
        const attrs = Object.fromEntries((span.attributes || []).map((kv) => [kv.key, anyValue(kv.value)]));
        matched.push({
          spanID: span.spanID,
          name: span.name || '',
          service: attrs['service.name'] ?? null,
          startTime: nanosToMicros(span.startTimeUnixNano),
          duration: nanosToMicros(span.durationNanos),
          attributes: attrs,
        });
      }
    }
    return {
      traceID: t.traceID,
      rootService: t.rootServiceName || '',
      rootOperation: t.rootTraceName || '',
      startTime: nanosToMicros(t.startTimeUnixNano),
      duration: (t.durationMs || 0) * 1000,
      spanCount: stats.reduce((n, s) => n + s.count, 0),
      errorCount: stats.reduce((n, s) => n + s.errors, 0),
      services: stats.map(({ name, count }) => ({ name, count })).sort((a, b) => b.count - a.count || a.name.localeCompare(b.name)),
      matchedCount: sets.reduce((n, s) => n + (s.matched || 0), 0),
      matched,
    };
  });
}

/** An OTLP/JSON AnyValue as a plain value. */
function anyValue(v) {
  if (!v) return null;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  return JSON.stringify(v);
}
