import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, formatRelative, isGoDuration, niceTicks } from '../../web/js/format.js';

test('durations', () => {
  assert.equal(formatDuration(0), '0µs');
  assert.equal(formatDuration(999), '999µs');
  assert.equal(formatDuration(1000), '1ms');
  assert.equal(formatDuration(1234), '1.23ms');
  assert.equal(formatDuration(600000), '600ms');
  assert.equal(formatDuration(1500000), '1.5s');
  assert.equal(formatDuration(125e6), '2m 5s');
  assert.equal(formatDuration(3600e6 + 180e6), '1h 3m');
});

test('relative times', () => {
  const now = 1_700_000_000_000;
  assert.equal(formatRelative(now * 1000, now), 'just now');
  assert.equal(formatRelative((now - 5 * 60_000) * 1000, now), '5 minutes ago');
  assert.equal(formatRelative((now - 3600_000) * 1000, now), '1 hour ago');
  assert.equal(formatRelative((now - 3 * 86400_000) * 1000, now), '3 days ago');
});

test('Go durations', () => {
  for (const ok of ['100ms', '1.5s', '1m30s', '250us', '3µs', '.5s']) assert.ok(isGoDuration(ok), ok);
  for (const bad of ['100', 'ms', '1.5 s', '-1s', '1x', '']) assert.ok(!isGoDuration(bad), bad);
});

test('ticks are round and inside the range', () => {
  assert.deepEqual(niceTicks(0, 1000, 4), [0, 250, 500, 750, 1000]);
  assert.deepEqual(niceTicks(3, 17, 3), [5, 10, 15]);
});
