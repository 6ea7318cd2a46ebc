import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogfmtError, formatLogfmt, parseLogfmt } from '../../web/js/logfmt.js';

test('pairs, bare keys, quotes and escapes', () => {
  assert.deepEqual(parseLogfmt('error=true http.status_code=500'), { error: 'true', 'http.status_code': '500' });
  assert.deepEqual(parseLogfmt('  error  '), { error: 'true' });
  assert.deepEqual(parseLogfmt('db.statement="select * from t" x=1'), { 'db.statement': 'select * from t', x: '1' });
  assert.deepEqual(parseLogfmt('msg="say \\"hi\\"\\n" empty= url=http://a/b?c=d'), { msg: 'say "hi"\n', empty: '', url: 'http://a/b?c=d' });
  assert.deepEqual(parseLogfmt('k=1 k=2'), { k: '2' });
  assert.deepEqual(parseLogfmt(''), {});
});

test('errors name the position', () => {
  const fails = (text, position, re) =>
    assert.throws(() => parseLogfmt(text), (e) => e instanceof LogfmtError && e.position === position && re.test(e.message));
  fails('a="open', 2, /unterminated/);
  fails('=x', 0, /missing key/);
  fails('a="x"y', 5, /space after/);
  fails('a=x"y', 3, /quote in value/);
  fails('"k"=v', 0, /quoted/);
});

test('format round-trips', () => {
  const tags = { error: 'true', 'db.statement': 'select "x" from t', path: 'a\\b', plain: '200' };
  assert.deepEqual(parseLogfmt(formatLogfmt(tags)), tags);
});
