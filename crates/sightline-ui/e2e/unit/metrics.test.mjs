import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chartStep, formatPercent, formatRate, metricsParams, parseFamily, seriesByKey, seriesKey, sortRows, summaryRows, timeTicks } from '../../web/js/metrics.js';

const END = Date.parse('2026-12-06T10:00:00Z');
const at = (min) => new Date(END + min * 60_000).toISOString();

/** A MetricFamily as /api/metrics/* writes it. */
function family(name, series) {
  return {
    name,
    type: 'GAUGE',
    help: '',
    metrics: series.map(([labels, points]) => ({
      labels: Object.entries(labels).map(([n, value]) => ({ name: n, value })),
      metricPoints: points.map(([min, v]) => ({ gaugeValue: { doubleValue: v }, timestamp: at(min) })),
    })),
  };
}

test('chart steps are whole minutes, about 60 points, never below the resolution', () => {
  assert.equal(chartStep(5 * 60_000), 60_000);
  assert.equal(chartStep(3600_000), 60_000);
  assert.equal(chartStep(2 * 3600_000), 120_000);
  assert.equal(chartStep(24 * 3600_000), 24 * 60_000);
  assert.equal(chartStep(90 * 60_000), 120_000, '1.5 min rounds up to 2');
});

test('summary queries cover the range with one window; chart queries step by step', () => {
  const summary = metricsParams({ services: ['a', 'b'], kind: 'server', endMs: END, lookbackMs: 3600_000, summary: true, extra: { quantile: '0.95' } });
  assert.deepEqual(summary, {
    service: ['a', 'b'],
    spanKind: 'server',
    endTs: String(END),
    lookback: '3600000',
    step: '3600000',
    ratePer: '3600000',
    quantile: '0.95',
  });
  const chart = metricsParams({ services: ['a'], kind: 'client', endMs: END, lookbackMs: 2 * 3600_000, groupByOperation: true });
  assert.equal(chart.step, '120000');
  assert.equal(chart.ratePer, '120000');
  assert.equal(chart.groupByOperation, 'true');
});

test('families parse into sorted series; bad points are dropped', () => {
  const f = family('service_operation_call_rate', [
    [{ service_name: 'a', operation: 'GET /' }, [[0, 2], [-1, 1]]],
    [{ service_name: 'b' }, [[0, 0.5]]],
  ]);
  f.metrics[1].metricPoints.push({ gaugeValue: { doubleValue: 'NaN' }, timestamp: at(0) }, { gaugeValue: { doubleValue: 1 }, timestamp: 'garbage' });
  const s = parseFamily(f);
  assert.deepEqual(s, [
    { service: 'a', operation: 'GET /', points: [{ t: END - 60_000, v: 1 }, { t: END, v: 2 }] },
    { service: 'b', operation: null, points: [{ t: END, v: 0.5 }] },
  ]);
  assert.deepEqual(parseFamily(null), []);
  assert.deepEqual([...seriesByKey(f).keys()], [seriesKey('a', 'GET /'), 'b']);
});

test('summary rows take the point at the end of the range, not the one at its start', () => {
  const rows = summaryRows(
    {
      rate: family('r', [[{ service_name: 'a' }, [[-60, 9], [0, 2.5]]], [{ service_name: 'b' }, [[-60, 4], [0, 0]]]]),
      errors: family('e', [[{ service_name: 'a' }, [[0, 0.25]]], [{ service_name: 'b' }, [[0, 0]]]]),
      // b had calls only in the hour before: its latency point is at the start.
      p95: family('l', [[{ service_name: 'a' }, [[0, 120]]], [{ service_name: 'b' }, [[-60, 33]]]]),
    },
    END,
  );
  assert.deepEqual(rows.get('a'), { service: 'a', operation: null, rate: 2.5, errors: 0.25, p50: null, p95: 120, p99: null });
  assert.deepEqual(rows.get('b'), { service: 'b', operation: null, rate: 0, errors: 0, p50: null, p95: null, p99: null });
});

test('sorting puts rows without data last in both directions, ties by name', () => {
  const rows = [
    { service: 'c', operation: null, rate: 1, p95: null },
    { service: 'a', operation: null, rate: 5, p95: 10 },
    { service: 'b', operation: null, rate: 1, p95: 30 },
    { service: 'd', operation: null, rate: null, p95: null },
  ];
  const names = (list) => list.map((r) => r.service);
  assert.deepEqual(names(sortRows(rows, 'rate', true)), ['a', 'b', 'c', 'd']);
  assert.deepEqual(names(sortRows(rows, 'rate', false)), ['b', 'c', 'a', 'd']);
  assert.deepEqual(names(sortRows(rows, 'p95', true)), ['b', 'a', 'c', 'd']);
  assert.deepEqual(names(sortRows(rows, 'name', false)), ['a', 'b', 'c', 'd']);
  assert.deepEqual(names(sortRows(rows, 'name', true)), ['d', 'c', 'b', 'a']);
  const ops = [{ service: 's', operation: 'b', rate: 1 }, { service: 's', operation: 'a', rate: 1 }];
  assert.deepEqual(sortRows(ops, 'rate', true).map((r) => r.operation), ['a', 'b'], 'operations tie by operation name');
});

test('rates and percentages', () => {
  assert.equal(formatRate(0), '0');
  assert.equal(formatRate(1 / 1800), '0.000556', 'two calls an hour');
  assert.equal(formatRate(1 / 12), '0.0833');
  assert.equal(formatRate(42.26), '42.3');
  assert.equal(formatRate(1250.4), '1,250');
  assert.equal(formatRate(null), '–');
  assert.equal(formatPercent(0), '0%');
  assert.equal(formatPercent(0.25), '25%');
  assert.equal(formatPercent(1 / 3), '33.3%');
  assert.equal(formatPercent(0.005), '0.5%');
  assert.equal(formatPercent(1), '100%');
  assert.equal(formatPercent(null), '–');
});

test('time ticks are round in local time and inside the range', () => {
  const from = Date.parse('2026-12-06T09:03:20Z');
  const to = Date.parse('2026-12-06T10:03:20Z');
  const utc = timeTicks(from, to, 5, 0).map((t) => new Date(t).toISOString().slice(11, 16));
  assert.deepEqual(utc, ['09:15', '09:30', '09:45', '10:00']);
  // Hourly ticks in UTC+05:30 fall on local whole hours: half past in UTC.
  const six = [Date.parse('2026-12-06T06:50:00Z'), Date.parse('2026-12-06T12:50:00Z')];
  assert.deepEqual(timeTicks(...six, 6, 0).map((t) => new Date(t).toISOString().slice(11, 16)), ['07:00', '08:00', '09:00', '10:00', '11:00', '12:00']);
  assert.deepEqual(timeTicks(...six, 6, 330).map((t) => new Date(t).toISOString().slice(11, 16)), ['07:30', '08:30', '09:30', '10:30', '11:30', '12:30']);
  const short = timeTicks(from, from + 5 * 60_000, 6, 0);
  assert.equal(short.length, 5);
  assert.ok(short.every((t) => t >= from && t <= from + 5 * 60_000 && t % 60_000 === 0));
});
