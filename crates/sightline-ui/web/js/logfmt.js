// Parses the search form's tag filter, written in logfmt as in Jaeger UI:
//   error=true http.status_code=500 db.statement="select * from t"
// A bare key means `key=true` (logfmt's rule). Values are strings: the API
// takes `tags` as a JSON object of strings, like Jaeger's.

/** A tag filter that cannot be parsed; `position` is the 0-based offset. */
export class LogfmtError extends Error {
  constructor(message, position) {
    super(`${message} at character ${position + 1}`);
    this.position = position;
  }
}

/**
 * Parses logfmt text into an object of string values, in input order.
 * A repeated key keeps its last value. Throws LogfmtError on bad input.
 */
export function parseLogfmt(text) {
  const out = {};
  let i = 0;
  const n = text.length;
  const space = (c) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  while (i < n) {
    while (i < n && space(text[i])) i++;
    if (i >= n) break;
    const keyStart = i;
    while (i < n && !space(text[i]) && text[i] !== '=' && text[i] !== '"') i++;
    const key = text.slice(keyStart, i);
    if (!key) {
      throw new LogfmtError(text[i] === '"' ? 'a key cannot be quoted' : 'missing key before "="', i);
    }
    if (i >= n || space(text[i])) {
      out[key] = 'true';
      continue;
    }
    if (text[i] === '"') throw new LogfmtError('unexpected quote in key', i);
    i++; // '='
    let value = '';
    if (text[i] === '"') {
      const quoteAt = i;
      i++;
      let closed = false;
      while (i < n) {
        const c = text[i];
        if (c === '\\' && i + 1 < n) {
          const next = text[i + 1];
          value += next === 'n' ? '\n' : next === 't' ? '\t' : next;
          i += 2;
        } else if (c === '"') {
          closed = true;
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
      if (!closed) throw new LogfmtError('unterminated quoted value', quoteAt);
      if (i < n && !space(text[i])) throw new LogfmtError('expected a space after the quoted value', i);
    } else {
      const valueStart = i;
      while (i < n && !space(text[i])) {
        if (text[i] === '"') throw new LogfmtError('unexpected quote in value', i);
        i++;
      }
      value = text.slice(valueStart, i);
    }
    out[key] = value;
  }
  return out;
}

/** Tags back to logfmt, quoting values that need it. */
export function formatLogfmt(tags) {
  return Object.entries(tags)
    .map(([k, v]) => (/^[^\s"=\\]+$/.test(v) ? `${k}=${v}` : `${k}="${v.replace(/[\\"]/g, '\\$&')}"`))
    .join(' ');
}
