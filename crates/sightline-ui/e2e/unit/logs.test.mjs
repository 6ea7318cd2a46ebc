import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attributeRows, bodyText, bucketStep, chronological, groupBySpan, histogram, levelOfNumber, logsParams, recordLevel, severityLabel } from '../../web/js/logs.js';
import { lookbackMicros } from '../../web/js/format.js';

test('severity numbers map to their OTLP ranges', () => {
  assert.deepEqual(
    [1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24].map(levelOfNumber),
    ['trace', 'trace', 'debug', 'debug', 'info', 'info', 'warn', 'warn', 'error', 'error', 'fatal', 'fatal'],
  );
  for (const bad of [0, 25, -1, 9.5, undefined, null, '9']) assert.equal(levelOfNumber(bad), 'unset', String(bad));
});

test('a record without a severity number falls back to its text', () => {
  assert.equal(recordLevel({ severityNumber: 17, severityText: 'info' }), 'error', 'the number wins');
  assert.equal(recordLevel({ severityNumber: 0, severityText: 'WARNING' }), 'warn');
  assert.equal(recordLevel({ severityText: 'Error2' }), 'error');
  assert.equal(recordLevel({ severityText: 'critical' }), 'fatal');
  assert.equal(recordLevel({ severityText: 'loud' }), 'unset');
  assert.equal(recordLevel({}), 'unset');
  assert.equal(severityLabel({ severityNumber: 13, severityText: 'WARNING' }), 'WARNING');
  assert.equal(severityLabel({ severityNumber: 13, severityText: '' }), 'WARN');
  assert.equal(severityLabel({}), '–');
});

test('bodies and attributes as text', () => {
  assert.equal(bodyText('plain'), 'plain');
  assert.equal(bodyText({ a: [1, 'x'] }), '{"a":[1,"x"]}');
  assert.equal(bodyText(null), '');
  assert.deepEqual(attributeRows({ 'z.k': 'v', a: 42, b: { c: true } }), [
    { key: 'a', value: '42' },
    { key: 'b', value: '{"c":true}' },
    { key: 'z.k', value: 'v' },
  ]);
});

test("a trace's records group by span; unknown and missing span ids are the trace's", () => {
  const r = (id, t, spanID) => ({ id, timestamp: t, spanID });
  const records = [r(1, 30, 'a'), r(2, 10, 'a'), r(3, 20, null), r(4, 5, 'gone'), r(5, 0, 'b'), { id: 6, timestamp: 0, observedTimestamp: 25, spanID: 'b' }];
  const { bySpan, traceOnly } = groupBySpan(records, new Set(['a', 'b', 'c']));
  assert.deepEqual(bySpan.get('a').map((x) => x.id), [2, 1]);
  assert.deepEqual(bySpan.get('b').map((x) => x.id), [5, 6], 'no timestamp: the observed time orders it');
  assert.equal(bySpan.has('c'), false);
  assert.deepEqual(traceOnly.map((x) => x.id), [4, 3]);
  assert.deepEqual(chronological([r(1, 5), r(2, 5), r(3, 1)]).map((x) => x.id), [3, 1, 2], 'stable for equal times');
});

test('histogram: round epoch-aligned buckets, counts by level', () => {
  assert.equal(bucketStep(60e6), 1e6);
  assert.equal(bucketStep(3600e6), 60e6);
  assert.equal(bucketStep(3601e6), 120e6);
  assert.equal(bucketStep(24 * 3600e6), 1800e6);
  const at = (s, severityNumber) => ({ timestamp: s * 1e6, severityNumber });
  // 10 minutes from 12:00:30 (as seconds since the epoch): 10 s buckets.
  const start = 1_700_000_430e6;
  const end = start + 600e6;
  const records = [at(1_700_000_431, 9), at(1_700_000_439.9, 17), at(1_700_000_440, 9), at(1_700_001_030, 0), at(1_699_999_999, 9)];
  const hist = histogram(records, { start, end });
  assert.equal(hist.step, 10e6);
  assert.equal(hist.buckets[0].start, start, 'aligned: 430 is a multiple of 10');
  assert.equal(hist.buckets.length, 61);
  assert.deepEqual(hist.buckets[0].counts, { trace: 0, debug: 0, info: 1, warn: 0, error: 1, fatal: 0, unset: 0 });
  assert.equal(hist.buckets[1].counts.info, 1);
  assert.equal(hist.buckets[60].counts.unset, 1, 'the end is inclusive');
  assert.equal(hist.buckets.reduce((n, b) => n + b.total, 0), 4, 'the record before the range is left out');
  assert.equal(hist.max, 2);
  // A start off the step: the first bucket starts before it, on the step.
  const off = histogram([at(1_700_000_435, 9)], { start: start + 3e6, end: start + 64e6 });
  assert.equal(off.step, 1e6 * 2);
  assert.equal(off.buckets[0].start, start + 2e6);
  assert.equal(off.buckets[1].total, 1);
  // No range given: the records' own.
  const own = histogram([at(100, 9), at(160, 13)]);
  assert.equal(own.step, 1e6);
  assert.equal(own.buckets.length, 61);
  assert.equal(own.buckets[60].counts.warn, 1);
  assert.deepEqual(histogram([]), { step: 0, buckets: [], max: 0 });
});

test('Logs page URL → API parameters', () => {
  const q = (s) => new URLSearchParams(s);
  const now = 1_700_000_000e6;
  assert.deepEqual(logsParams(q('service=orders&minSeverity=warn&q=%20timeout%20&lookback=15m'), lookbackMicros, now).params, {
    service: 'orders',
    minSeverity: 'warn',
    q: 'timeout',
    limit: 100,
    start: now - 900e6,
    end: now,
  });
  assert.deepEqual(logsParams(q('lookback=custom&start=10&end=20&limit=5&traceID=abc'), lookbackMicros, now).params, { traceID: 'abc', limit: 5, start: 10, end: 20 });
  assert.deepEqual(logsParams(q('lookback=all'), lookbackMicros, now).params, { limit: 100 });
  assert.deepEqual(logsParams(q('lookback=all&tags=card.brand%3Dvisa%20host.name%3D%22web%201%22'), lookbackMicros, now).params, {
    tags: '{"card.brand":"visa","host.name":"web 1"}',
    limit: 100,
  });
  assert.match(logsParams(q('tags=a%3D%22open'), lookbackMicros, now).error, /^Attributes: unterminated quoted value/);
  assert.match(logsParams(q('limit=1001'), lookbackMicros, now).error, /Limit/);
  assert.match(logsParams(q('limit=x'), lookbackMicros, now).error, /Limit/);
  assert.match(logsParams(q('lookback=custom&start=20&end=10'), lookbackMicros, now).error, /start before/);
  assert.match(logsParams(q('lookback=3w'), lookbackMicros, now).error, /unknown lookback/);
});
