// End-to-end tests: the real sightline binary (with the UI embedded) on
// free loopback ports, a known multi-service trace ingested over OTLP/HTTP
// JSON, and Debian's Chromium driven headless by playwright-core.
//
// Screenshots of every page go to e2e/screenshots/ (gitignored) to be
// looked at.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';
import { HEALTH_TRACE_ID, OTHER_TRACE_ID, TRACE_ID, bigTrace, healthTrace, id, manyLogs, shopLogs, shopTrace } from './fixture.mjs';

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), 'screenshots');
mkdirSync(SHOTS, { recursive: true });

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking'];

/** Polls `fn` until it stops throwing (an assertion) or 10 s pass. */
async function eventually(fn, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

let browser;
let server;
let page;
const pageErrors = [];

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

const rowIds = () => page.$$eval('.wf-row', (rows) => rows.sort((a, b) => a.dataset.index - b.dataset.index).map((r) => r.dataset.spanId));
const text = (selector) => page.locator(selector).first().innerText();

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  server = await startServer();
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true, colorScheme: 'light' });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && !/Failed to load resource/.test(m.text()) && pageErrors.push(m.text()));
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

describe('sightline UI', () => {
  test('empty state: a fresh server says how to send data', async () => {
    await page.goto(`${server.url}/`);
    await page.locator('[data-state=empty]').waitFor();
    assert.equal(await text('.state-empty h1'), 'No traces yet');
    assert.equal(await text('.endpoint-http'), `http://${server.otlpHttp}`);
    assert.equal(await text('.endpoint-grpc'), server.otlpGrpc);
    assert.match(await text('.snippet'), new RegExp(`OTEL_EXPORTER_OTLP_ENDPOINT=http://${server.otlpHttp}`));
    await shot('01-empty-state');
  });

  test('the empty state notices data arriving', async () => {
    const base = BigInt(Date.now() - 120_000) * 1_000_000n;
    await server.ingest(shopTrace(base));
    await server.ingest(healthTrace(base + 5_000_000_000n));
    await page.locator('.state-empty button').click();
    await page.locator('.search-form').waitFor();
  });

  test('search finds the trace, with its summary', async () => {
    await page.selectOption('#f-service', 'payments');
    await page.fill('#f-tags', 'error=true payment.currency=EUR');
    await page.click('button[type=submit]');
    await eventually(async () => assert.equal(await page.locator('.result').count(), 1));
    const url = new URL(page.url());
    assert.equal(url.pathname, '/search');
    assert.equal(url.searchParams.get('service'), 'payments');
    assert.equal(url.searchParams.get('tags'), 'error=true payment.currency=EUR');
    assert.equal(url.searchParams.get('lookback'), '1h');

    const result = page.locator(`.result[data-trace-id="${TRACE_ID}"]`);
    assert.equal(await result.locator('.result-title').innerText(), 'frontend: GET /checkout');
    assert.equal(await result.locator('.result-duration').innerText(), '1.2s');
    assert.equal(await result.locator('.span-count').innerText(), '10 spans');
    assert.equal(await result.locator('.error-count').innerText(), '1 error');
    const services = await result.locator('.chip').evaluateAll((els) => els.map((e) => e.dataset.service).sort());
    assert.deepEqual(services, ['checkout', 'email', 'frontend', 'inventory', 'payments']);
    assert.equal(await page.locator('.scatter .dot').count(), 1);
    await shot('02-search-results');
  });

  test('search by service lists both traces; tags narrow; a bad tag is refused', async () => {
    await page.selectOption('#f-service', 'frontend');
    await page.fill('#f-tags', '');
    await page.click('button[type=submit]');
    await eventually(async () => assert.equal(await page.locator('.result').count(), 2));
    assert.equal(await page.locator('.scatter .dot').count(), 2);
    assert.equal(await page.locator('.scatter .dot-error').count(), 1);
    // Most recent first: the health check started 5 s later.
    assert.deepEqual(await page.$$eval('.result', (els) => els.map((e) => e.dataset.traceId)), [HEALTH_TRACE_ID, TRACE_ID]);
    await page.selectOption('select[name=sort]', 'longest');
    assert.deepEqual(await page.$$eval('.result', (els) => els.map((e) => e.dataset.traceId)), [TRACE_ID, HEALTH_TRACE_ID]);
    assert.equal(new URL(page.url()).searchParams.get('sort'), 'longest');

    await page.selectOption('#f-operation', 'GET /health');
    await page.click('button[type=submit]');
    await eventually(async () => assert.deepEqual(await page.$$eval('.result', (els) => els.map((e) => e.dataset.traceId)), [HEALTH_TRACE_ID]));

    await page.fill('#f-tags', 'db.statement="unterminated');
    await page.click('button[type=submit]');
    assert.match(await text('.form-error'), /Tags: unterminated quoted value/);
    await page.fill('#f-tags', '');
    await page.fill('#f-min', '10 ms');
    await page.click('button[type=submit]');
    assert.match(await text('.form-error'), /Min duration/);
    await page.fill('#f-min', '');
  });

  test('lookup by trace ids lists them and reports unknown ones', async () => {
    await page.fill('#lookup-input', `${TRACE_ID} ffffffffffffffffffffffffffffffff, ${HEALTH_TRACE_ID}`);
    await page.press('#lookup-input', 'Enter');
    await eventually(async () => assert.equal(await page.locator('.result').count(), 2));
    assert.match(await text('.warning'), /Not found: ffffffffffffffffffffffffffffffff/);
  });

  test('opening a result shows the waterfall with nesting', async () => {
    await page.goto(`${server.url}/search?service=frontend&operation=GET%20/checkout&lookback=1h`);
    await page.locator(`.result[data-trace-id="${TRACE_ID}"] a`).click();
    await page.locator('.trace-page[data-ready=true]').waitFor();
    assert.equal(new URL(page.url()).pathname, `/trace/${TRACE_ID}`);
    assert.deepEqual(await rowIds(), ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'J', 'I', 'H'].map(id));
    const depths = await page.$$eval('.wf-row', (rows) => Object.fromEntries(rows.map((r) => [r.dataset.spanId, Number(r.getAttribute('aria-level'))])));
    assert.deepEqual(
      Object.fromEntries(Object.entries({ A: 1, B: 2, C: 3, D: 4, E: 4, F: 5, G: 4, J: 4, I: 4, H: 2 }).map(([k, v]) => [id(k), v])),
      depths,
    );
    // Indentation follows depth.
    const indent = async (l) => page.locator(`.wf-row[data-span-id="${id(l)}"] .wf-name`).evaluate((e) => parseFloat(getComputedStyle(e).paddingLeft));
    assert.ok((await indent('F')) > (await indent('E')) && (await indent('E')) > (await indent('C')) && (await indent('C')) > (await indent('A')));
    // Header.
    assert.equal(await text('.trace-title'), 'frontend: GET /checkout');
    const meta = async (k) => page.locator(`.meta-item[data-meta=${k}] dd`).innerText();
    assert.equal(await meta('duration'), '1.2s');
    assert.equal(await meta('services'), '5');
    assert.equal(await meta('depth'), '5');
    assert.equal(await meta('spans'), '10');
    assert.equal(await meta('errors'), '1');
    assert.equal(await page.locator('.wf-row.is-error').count(), 1);
    assert.equal(await page.locator(`.wf-row[data-span-id="${id('E')}"] .wf-err`).count(), 1);
    await shot('03-trace-timeline');
  });

  test('critical path marks the blocking chain', async () => {
    const marks = await page.$$eval('.wf-row', (rows) => Object.fromEntries(rows.map((r) => [r.dataset.spanId, r.dataset.critical === 'true'])));
    const want = Object.fromEntries(['A', 'B', 'C', 'D', 'E', 'F', 'G', 'J', 'I', 'H'].map((l) => [id(l), 'ABCEFGH'.includes(l)]));
    assert.deepEqual(marks, want);
    // E is on the path twice: before and after its child F.
    assert.equal(await page.locator(`.wf-row[data-span-id="${id('E')}"] .wf-cp`).count(), 2);
  });

  test('span details: timing, status, attributes, resource, events, links', async () => {
    await page.locator(`.wf-row[data-span-id="${id('E')}"]`).click();
    const detail = page.locator('.detail');
    await detail.waitFor();
    const field = (name) => detail.locator(`dd[data-field="${name}"]`).innerText();
    assert.equal(await detail.locator('.detail-title').innerText(), 'Charge');
    assert.equal(await field('duration'), '600ms');
    assert.equal(await field('self-time'), '300ms');
    assert.equal(await field('critical-path'), '300ms');
    assert.match(await field('start'), /^\+40ms/);
    assert.equal(await field('status'), 'ERROR card declined');
    assert.equal(await field('kind'), 'server');
    assert.equal(await field('span-id'), id('E'));
    assert.equal(await field('parent'), 'checkout: PlaceOrder');
    assert.equal(await field('scope'), 'shop.payments 1.0.0');
    const kv = (section, key) => detail.locator(`table[aria-label="${section}"] tr[data-key="${key}"] td`).first().innerText();
    assert.equal(await kv('Span attributes', 'payment.amount'), '42.5');
    assert.equal(await kv('Span attributes', 'payment.currency'), 'EUR');
    assert.equal(await detail.locator('table[aria-label="Span attributes"] tr[data-key="error"]').count(), 0, 'synthetic tags are fields, not attributes');
    assert.equal(await kv('Resource attributes', 'host.name'), 'pay-1');
    assert.equal(await kv('Resource attributes', 'service.name'), 'payments');
    assert.equal(await detail.locator('.event strong').innerText(), 'exception');
    assert.equal(await detail.locator('.event-time').innerText(), '+300ms');
    assert.equal(await kv('Event attributes', 'exception.type'), 'CardDeclined');
    assert.equal(new URL(page.url()).searchParams.get('span'), id('E'));
    await shot('04-span-detail');

    // The email span: FOLLOWS_FROM parent, and a link to another trace.
    await page.locator(`.wf-row[data-span-id="${id('I')}"]`).click();
    await eventually(async () => assert.equal(await detail.locator('.detail-title').innerText(), 'send receipt'));
    assert.equal(await field('parent'), 'checkout: PlaceOrder (follows from)');
    assert.equal(await field('critical-path'), 'not on it');
    const links = await detail.locator('.link a').evaluateAll((as) => as.map((a) => a.getAttribute('href')));
    assert.deepEqual(links, [`/trace/${OTHER_TRACE_ID}?span=cccccccccccccccc`]);

    // The parent link selects the parent.
    await detail.locator('dd[data-field=parent] a').click();
    await eventually(async () => assert.equal(await detail.locator('.detail-title').innerText(), 'PlaceOrder'));
    assert.equal(await field('self-time'), '20ms');
    await page.keyboard.press('Escape');
    await eventually(async () => assert.equal(await page.locator('.detail').count(), 0));
  });

  test('find in trace highlights matching spans', async () => {
    await page.fill('.find-input', 'payments');
    await eventually(async () => assert.equal(await page.locator('.wf-row.is-match').count(), 2));
    const matched = await page.$$eval('.wf-row.is-match', (rows) => rows.map((r) => r.dataset.spanId).sort());
    assert.deepEqual(matched, [id('E'), id('F')]);
    assert.equal(await page.locator('.wf-row.is-dim').count(), 8);
    assert.equal(await text('.find-count'), '2 matches');
    await page.fill('.find-input', 'http.status_code=500');
    await eventually(async () => assert.deepEqual(await page.$$eval('.wf-row.is-match', (rows) => rows.map((r) => r.dataset.spanId)), [id('A')]));
    await page.fill('.find-input', 'payments');
    await eventually(async () => assert.equal(await page.locator('.wf-row.is-match').count(), 2));
    await page.press('.find-input', 'Enter');
    assert.equal(await text('.find-count'), '1 of 2');
    assert.equal(new URL(page.url()).searchParams.get('find'), 'payments');
    await shot('05-find');
    await page.fill('.find-input', '');
    await eventually(async () => assert.equal(await page.locator('.wf-row.is-match, .wf-row.is-dim').count(), 0));
  });

  test('keyboard: move, collapse, expand, open details', async () => {
    await page.locator('.wf-body').focus();
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.locator('.wf-body').getAttribute('aria-activedescendant'), `row-${id('C')}`);
    await page.keyboard.press('ArrowLeft'); // collapse C
    await eventually(async () => assert.deepEqual(await rowIds(), ['A', 'B', 'C', 'H'].map(id)));
    assert.equal(await page.locator(`.wf-row[data-span-id="${id('C')}"]`).getAttribute('aria-expanded'), 'false');
    assert.equal(await text(`.wf-row[data-span-id="${id('C')}"] .wf-hidden-count`), '+6');
    await page.keyboard.press('ArrowLeft'); // already collapsed: go to parent B
    assert.equal(await page.locator('.wf-body').getAttribute('aria-activedescendant'), `row-${id('B')}`);
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowRight'); // expand C
    await eventually(async () => assert.equal((await rowIds()).length, 10));
    await page.keyboard.press('ArrowRight'); // to first child D
    await page.keyboard.press('Enter');
    await eventually(async () => assert.equal(await text('.detail-title'), 'SELECT stock'));
    await page.keyboard.press('Escape');
    // Mouse: the toggle collapses; Collapse all / Expand all.
    await page.locator(`.wf-row[data-span-id="${id('E')}"] .wf-toggle`).click();
    await eventually(async () => assert.equal((await rowIds()).length, 9));
    await page.getByRole('button', { name: 'Collapse all' }).click();
    await eventually(async () => assert.deepEqual(await rowIds(), [id('A')]));
    await page.getByRole('button', { name: 'Expand all' }).click();
    await eventually(async () => assert.equal((await rowIds()).length, 10));
  });

  test('minimap drag zooms the timeline; reset restores it', async () => {
    const area = page.locator('.mm-area');
    const box = await area.boundingBox();
    await page.mouse.move(box.x + box.width * 0.5, box.y + 20);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.75, box.y + 20, { steps: 4 });
    await page.mouse.up();
    await eventually(async () => assert.match(new URL(page.url()).searchParams.get('zoom') || '', /^0\.5\d*,0\.75\d*$/));
    // 50%..75% of 1.2 s is 600..900 ms: the ruler starts at 600ms.
    assert.equal(await text('.wf-ruler .wf-tick'), '600ms');
    await shot('06-zoomed');
    await page.getByRole('button', { name: 'Reset zoom' }).click();
    await eventually(async () => assert.equal(new URL(page.url()).searchParams.get('zoom'), null));
    assert.equal(await text('.wf-ruler .wf-tick'), '0µs');
  });

  test('statistics totals by service and operation', async () => {
    await page.getByRole('tab', { name: 'Statistics' }).click();
    await page.locator('.stats-table').waitFor();
    const cell = (service, operation, col) =>
      page.locator(`tr[data-service="${service}"]${operation ? `[data-operation="${operation}"]` : ':not([data-operation])'} td[data-col=${col}]`).innerText();
    assert.equal(await cell('checkout', null, 'count'), '3');
    assert.equal(await cell('checkout', null, 'total'), '1.15s');
    assert.equal(await cell('checkout', null, 'selfTotal'), '310ms');
    assert.equal(await cell('checkout', 'PlaceOrder', 'selfTotal'), '20ms');
    assert.equal(await cell('payments', null, 'errors'), '1');
    assert.equal(await cell('payments', 'Charge', 'max'), '600ms');
    assert.equal(await cell('frontend', null, 'total'), '1.95s');
    assert.equal(await cell('*', null, 'count'), '10');
    assert.equal(await cell('*', null, 'total'), '4.7s');
    assert.equal(await cell('*', null, 'selfTotal'), '1.75s');
    assert.equal(new URL(page.url()).searchParams.get('view'), 'stats');
    // Sorting by span count puts the services with 3 spans first.
    await page.getByRole('button', { name: 'Spans' }).click();
    const order = await page.$$eval('tr.stats-service', (rows) => rows.map((r) => r.dataset.service));
    assert.deepEqual(order.slice(0, 2).sort(), ['checkout', 'frontend']);
    await shot('07-statistics');
    await page.getByRole('tab', { name: 'Timeline' }).click();
  });

  test('download JSON gives the trace as the API serves it', async () => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download JSON' }).click()]);
    assert.equal(download.suggestedFilename(), `trace-${TRACE_ID}.json`);
    const body = JSON.parse(readFileSync(await download.path(), 'utf8'));
    const api = await (await fetch(`${server.url}/api/traces/${TRACE_ID}`)).json();
    assert.deepEqual(body, { data: api.data });
  });

  test('deep links and back/forward', async () => {
    await page.goto(`${server.url}/trace/${TRACE_ID}?span=${id('F')}&find=fraud`);
    await page.locator('.detail').waitFor();
    assert.equal(await text('.detail-title'), 'fraud-check');
    assert.equal(await page.inputValue('.find-input'), 'fraud');
    assert.equal(await page.locator('.wf-row.is-match').count(), 1);

    await page.goto(`${server.url}/search?service=payments&lookback=1h`);
    await page.locator('.result a').first().click();
    await page.locator('.trace-page[data-ready=true]').waitFor();
    await page.goBack();
    await page.locator('.result').first().waitFor();
    assert.equal(new URL(page.url()).pathname, '/search');
    assert.equal(await page.inputValue('#f-service'), 'payments');
    await page.goForward();
    await page.locator('.trace-page[data-ready=true]').waitFor();
    assert.equal(new URL(page.url()).pathname, `/trace/${TRACE_ID}`);
  });

  test('dark theme', async () => {
    await page.goto(`${server.url}/trace/${TRACE_ID}?span=${id('E')}`);
    await page.locator('.detail').waitFor();
    await page.click('#theme-toggle');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'dark');
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, 'rgb(13, 17, 23)');
    await shot('08-trace-dark');
    await page.reload();
    await page.locator('.trace-page[data-ready=true]').waitFor();
    assert.equal(await page.getAttribute('html', 'data-theme'), 'dark', 'the choice is remembered');
    await page.click('#theme-toggle');
    assert.equal(await page.getAttribute('html', 'data-theme'), 'light');
  });

  test('service map edges and call counts', async () => {
    await page.click('a[data-nav=dependencies]');
    await page.locator('.map-graph').waitFor();
    const edges = await page.$$eval('.map-graph .edge', (els) => els.map((e) => `${e.dataset.parent}->${e.dataset.child}:${e.dataset.calls}`).sort());
    // inventory's SELECT (db.system=postgresql) is a call to a database
    // node named by its system.
    assert.deepEqual(edges, ['checkout->email:1', 'checkout->inventory:1', 'checkout->payments:1', 'frontend->checkout:1', 'inventory->postgresql:1']);
    const nodes = await page.$$eval('.map-graph .node', (els) => els.map((e) => e.dataset.service));
    assert.deepEqual(nodes, ['checkout', 'email', 'frontend', 'inventory', 'payments', 'postgresql']);
    const table = await page.$$eval('.map-table tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.innerText).join(' ')));
    assert.equal(table.length, 5);
    assert.ok(table.includes('frontend checkout 1'));
    // Layers: callers left of callees.
    const x = async (s) => Number(await page.locator(`.node[data-service=${s}] rect`).first().getAttribute('x'));
    assert.ok((await x('frontend')) < (await x('checkout')) && (await x('checkout')) < (await x('payments')));
    await page.locator('.node[data-service=checkout]').click();
    assert.equal(await page.locator('.edge.is-on').count(), 4);
    await shot('09-service-map');
  });

  test('an unknown trace id is a 404 page; a malformed one says so', async () => {
    await page.goto(`${server.url}/trace/ffffffffffffffffffffffffffffffff`);
    await page.locator('[data-state=trace-not-found]').waitFor();
    assert.equal(await text('.state h1'), 'Trace not found');
    assert.match(await text('.state'), /ffffffffffffffffffffffffffffffff was not found/);
    await shot('10-trace-not-found');
    await page.goto(`${server.url}/trace/not-a-trace`);
    await page.locator('[data-state=trace-not-found]').waitFor();
    assert.match(await text('.state'), /is not a trace ID/);
    // Unknown API paths are not swallowed by the UI: the API answers them.
    const r = await fetch(`${server.url}/api/nope`);
    assert.equal(r.status, 404);
    assert.deepEqual((await r.json()).errors, [{ code: 404, msg: 'no API route /api/nope' }]);
  });

  test('a large trace keeps the DOM small (virtualised rows)', async () => {
    const base = BigInt(Date.now() - 60_000) * 1_000_000n;
    await server.ingest(bigTrace(base, 3000));
    await page.goto(`${server.url}/trace/b16b16b16b16b16b16b16b16b16b16b1`);
    await page.locator('.trace-page[data-ready=true]').waitFor();
    assert.equal(await text('.meta-item[data-meta=spans] dd'), '3,000');
    const rendered = await page.locator('.wf-row').count();
    assert.ok(rendered > 10 && rendered < 100, `${rendered} rows in the DOM`);
    // Scrolling to the end shows the last span.
    await page.locator('.wf-body').focus();
    await page.keyboard.press('End');
    await eventually(async () => {
      const indexes = await page.$$eval('.wf-row', (rows) => rows.map((r) => Number(r.dataset.index)));
      assert.ok(indexes.includes(2999));
    });
    assert.ok((await page.locator('.wf-row').count()) < 100);
    await shot('11-large-trace');
  });
});

// Span metrics: known spans through the stock Python SDK, so every number
// on the Monitor page follows from them. Latency percentiles interpolate
// inside the Collector's default buckets (…, 8, 10, …, 200, 400, … ms), as
// Prometheus' histogram_quantile does:
//   GET /items:   6 server spans of 9 ms, 2 with ERROR → p50 9 ms,
//                 p95 8 + 2·(5.7/6) = 9.9 ms, p99 9.98 ms; each with a
//                 3 ms client child SELECT items → p50 2 + 2·(3/6) = 3 ms
//   POST /orders: 3 server spans of 300 ms → p50 200 + 200·(1.5/3) = 300,
//                 p95 390, p99 398 ms
//   shop-api:     9 server spans → p50 8 + 2·(4.5/6) = 9.5 ms,
//                 p95 200 + 200·(2.55/3) = 370 ms, p99 394 ms, errors 2/9
// Rates are calls over the whole hour: 9/3600 s = 0.0025/s.
describe('monitor', () => {
  const cell = (row, col) => row.locator(`td[data-col=${col}]`).innerText();
  const rowValues = async (row) => Object.fromEntries(await Promise.all(['rate', 'errors', 'p50', 'p95', 'p99'].map(async (c) => [c, await cell(row, c)])));

  before(() => {
    const items = [0, 1, 2, 3, 4, 5].map((i) => ({
      service: 'shop-api',
      name: 'GET /items',
      kind: 'server',
      start_ms: i * 20,
      end_ms: i * 20 + 9,
      ...(i < 2 ? { error: 'db timeout' } : {}),
      children: [{ service: 'shop-api', name: 'SELECT items', kind: 'client', start_ms: i * 20 + 1, end_ms: i * 20 + 4 }],
    }));
    const orders = [0, 1, 2].map((i) => ({ service: 'shop-api', name: 'POST /orders', kind: 'server', start_ms: 200 + i * 400, end_ms: 500 + i * 400 }));
    server.sendSpans([...items, ...orders]);
  });

  test('services: RED over the range, sortable, services without spans of the kind last', async () => {
    await page.click('a[data-nav=monitor]');
    const row = page.locator('.monitor-table tr[data-service=shop-api]');
    await row.waitFor();
    assert.deepEqual(await rowValues(row), { rate: '0.0025', errors: '22.2%', p50: '9.5ms', p95: '370ms', p99: '394ms' });
    assert.equal(await row.locator('.sparkline').count(), 1);
    // The shop trace: payments' one server span failed.
    assert.equal(await cell(page.locator('tr[data-service=payments]'), 'errors'), '100%');
    // P99, highest first: checkout 998 ms (860 ms in 800..1000), frontend 996 ms, payments 796 ms, shop-api;
    // email and inventory have no server spans, so they come last either way. (The large trace's services are
    // in the list too, with random durations: left out of the comparison.)
    const known = ['checkout', 'frontend', 'payments', 'shop-api', 'email', 'inventory'];
    const order = () => page.$$eval('.monitor-table tbody tr', (rows) => rows.map((r) => r.dataset.service));
    await page.locator('button.sort-btn[data-sort=p99]').click();
    assert.deepEqual((await order()).filter((s) => known.includes(s)), known);
    assert.deepEqual((await order()).slice(-2), ['email', 'inventory']);
    assert.equal(await page.locator('tr[data-service=email] td[data-col=rate]').innerText(), '–');
    await page.locator('button.sort-btn[data-sort=p99]').click();
    assert.deepEqual((await order()).filter((s) => known.includes(s)), ['shop-api', 'payments', 'frontend', 'checkout', 'email', 'inventory'], 'ascending');
    assert.deepEqual((await order()).slice(-2), ['email', 'inventory'], 'no data stays last');
    const url = new URL(page.url());
    assert.equal(url.searchParams.get('sort'), 'p99');
    assert.equal(url.searchParams.get('order'), 'asc');
    await shot('13-monitor-services');
  });

  test('one service: charts over time and its operations', async () => {
    await page.locator('.monitor-table tr[data-service=shop-api] a').click();
    await page.locator('.monitor-kpis [data-kpi=p95] dd').waitFor();
    assert.equal(new URL(page.url()).searchParams.get('service'), 'shop-api');
    const kpi = (k) => text(`.monitor-kpis [data-kpi=${k}] dd`);
    assert.deepEqual([await kpi('rate'), await kpi('errors'), await kpi('p50'), await kpi('p95'), await kpi('p99')], ['0.0025', '22.2%', '9.5ms', '370ms', '394ms']);
    // Each chart plots the spans' minute: a dot or a line per series.
    for (const [chart, series] of [['latency', 3], ['errors', 1], ['rate', 1]]) {
      assert.equal(await page.locator(`.chart[data-chart=${chart}] .series`).count(), series, chart);
      assert.ok((await page.locator(`.chart[data-chart=${chart}] .series :is(circle, path)`).count()) >= series, `${chart} has points`);
    }
    const ops = page.locator('.monitor-table tbody tr');
    assert.deepEqual(await rowValues(page.locator('tr[data-operation="GET /items"]')), { rate: '0.00167', errors: '33.3%', p50: '9ms', p95: '9.9ms', p99: '9.98ms' });
    assert.deepEqual(await rowValues(page.locator('tr[data-operation="POST /orders"]')), { rate: '0.000833', errors: '0%', p50: '300ms', p95: '390ms', p99: '398ms' });
    assert.equal(await ops.count(), 2);
    await page.locator('button.sort-btn[data-sort=errors]').click();
    assert.deepEqual(await ops.evaluateAll((rows) => rows.map((r) => r.dataset.operation)), ['GET /items', 'POST /orders']);
    // Picking an operation charts it; hovering reads the values out.
    await page.getByRole('button', { name: 'GET /items', exact: true }).click();
    assert.equal(new URL(page.url()).searchParams.get('operation'), 'GET /items');
    assert.equal(await text('.monitor-operation'), 'GET /items');
    assert.equal(await kpi('p50'), '9ms');
    assert.equal(await page.locator('tr[data-operation="GET /items"].is-selected').count(), 1);
    const box = await page.locator('.chart[data-chart=latency] svg').boundingBox();
    await page.mouse.move(box.x + box.width - 20, box.y + box.height / 2);
    await eventually(async () => assert.match(await text('.chart[data-chart=latency] .chart-readout'), /P50: 9ms\s*P95: 9\.9ms\s*P99: 9\.98ms/));
    await shot('14-monitor-service');
    // The operation's traces are a click away.
    assert.equal(await page.locator('tr[data-operation="GET /items"] a.op-traces').getAttribute('href'), '/search?service=shop-api&operation=GET+%2Fitems&lookback=1h');
    // Client spans are another kind: the SELECT calls.
    await page.selectOption('#monitor-kind', 'client');
    await eventually(async () => assert.deepEqual(await ops.evaluateAll((rows) => rows.map((r) => r.dataset.operation)), ['SELECT items']));
    assert.deepEqual(await rowValues(page.locator('tr[data-operation="SELECT items"]')), { rate: '0.00167', errors: '0%', p50: '3ms', p95: '3.9ms', p99: '3.98ms' });
    assert.equal(new URL(page.url()).searchParams.get('kind'), 'client');
    // Reload keeps the page's state.
    await page.reload();
    await page.locator('tr[data-operation="SELECT items"]').waitFor();
    assert.equal(await page.inputValue('#monitor-kind'), 'client');
  });
});

// Two traces of one request through the stock Python SDK: in B the charge
// takes twice as long, one of the two SELECTs is gone and a mail is sent.
describe('compare', () => {
  let a;
  let b;
  const statuses = () => page.$$eval('.compare-table tbody tr', (rows) => rows.map((r) => [Number(r.dataset.depth), r.dataset.name, r.dataset.status, r.querySelector('.compare-change').innerText]));

  before(() => {
    const trace = (slow) => ({
      service: 'web',
      name: 'GET /cart',
      kind: 'server',
      start_ms: 0,
      end_ms: slow ? 130 : 100,
      children: [
        {
          service: 'cart',
          name: 'Checkout',
          kind: 'server',
          start_ms: 10,
          end_ms: slow ? 120 : 90,
          children: [
            { service: 'pay', name: 'Charge', kind: 'server', start_ms: 20, end_ms: slow ? 80 : 50 },
            { service: 'db', name: 'SELECT', kind: 'client', start_ms: 55, end_ms: 58 },
            slow ? { service: 'mail', name: 'send', kind: 'producer', start_ms: 90, end_ms: 95 } : { service: 'db', name: 'SELECT', kind: 'client', start_ms: 60, end_ms: 63 },
          ],
        },
      ],
    });
    [a, b] = server.sendSpans([trace(false), trace(true)]);
  });

  test('tick two search results, compare: added, removed, slower', async () => {
    await page.goto(`${server.url}/search?service=web&lookback=1h`);
    await eventually(async () => assert.equal(await page.locator('.result').count(), 2));
    const compare = page.locator('.compare-btn');
    assert.equal(await compare.isDisabled(), true);
    await page.locator(`.result[data-trace-id="${a}"] .compare-pick input`).check();
    await page.locator(`.result[data-trace-id="${b}"] .compare-pick input`).check();
    assert.equal(await compare.innerText(), 'Compare (2/2)');
    await compare.click();
    await page.locator('.compare-body[data-ready=true]').waitFor();
    assert.equal(new URL(page.url()).pathname, `/trace/${a}...${b}`);
    assert.deepEqual(await statuses(), [
      [0, 'web:GET /cart', 'slower', '+30ms (+30%)'],
      [1, 'cart:Checkout', 'slower', '+30ms (+37.5%)'],
      [2, 'pay:Charge', 'slower', '+30ms (+100%)'],
      [2, 'db:SELECT', 'fewer', '−1 span'],
      [2, 'mail:send', 'added', 'added (1)'],
    ]);
    const count = (k) => text(`.compare-summary [data-count=${k}]`);
    assert.equal(await count('added'), '1 span added');
    assert.equal(await count('removed'), '1 removed');
    assert.equal(await count('slower'), '3 slower');
    assert.equal(await count('same'), '0 of 5 paths unchanged');
    assert.match(await text('.compare-delta'), /^Duration \+30ms \(\+30%\)$/);
    assert.equal(await text('.compare-card[data-side=A] .meta-item[data-meta=spans] dd'), '5');
    assert.equal(await text('.compare-card[data-side=B] .meta-item[data-meta=spans] dd'), '5');
    // Side by side: the SELECT row shows 2 spans in A and 1 in B; mail only in B.
    const select = page.locator('tr[data-name="db:SELECT"] td.compare-cell');
    assert.equal(await select.nth(0).innerText(), '2 × 3ms');
    assert.equal(await select.nth(1).innerText(), '3ms');
    assert.equal(await page.locator('tr[data-name="mail:send"] td.compare-cell').nth(0).innerText(), '—');
    await shot('15-compare');
    // A cell opens its span in its trace.
    await page.locator('tr[data-name="pay:Charge"] td.compare-cell').nth(1).locator('a').click();
    await page.locator('.trace-page[data-ready=true] .detail').waitFor();
    assert.equal(new URL(page.url()).pathname, `/trace/${b}`);
    assert.equal(await text('.detail-title'), 'Charge');
    await page.goBack();
    await page.locator('.compare-body[data-ready=true]').waitFor();
  });

  test('compare URLs: swap, a trace with itself, only changes, a missing trace, the picker', async () => {
    await page.getByRole('button', { name: 'Swap A and B' }).click();
    await eventually(async () => assert.equal(new URL(page.url()).pathname, `/trace/${b}...${a}`));
    await page.locator('.compare-body[data-ready=true]').waitFor();
    assert.deepEqual((await statuses()).map((r) => r[2]), ['faster', 'faster', 'faster', 'more', 'removed']);

    await page.goto(`${server.url}/trace/${a}...${a}?changes=1`);
    await page.locator('.compare-body[data-ready=true]').waitFor();
    assert.equal(await page.isChecked('#compare-changes'), true);
    assert.match(await text('.compare-none'), /No differences/);
    await page.uncheck('#compare-changes');
    assert.deepEqual((await statuses()).map((r) => r[2]), ['same', 'same', 'same', 'same']);
    assert.equal(new URL(page.url()).searchParams.get('changes'), null);

    await page.goto(`${server.url}/trace/${a}...ffffffffffffffffffffffffffffffff`);
    await page.locator('[data-state=compare-missing]').waitFor();
    assert.equal(await text('[data-state=compare-missing] h2'), 'Trace B was not found');

    await page.click('a[data-nav=compare]');
    await page.locator('[data-state=compare-pick]').waitFor();
    await page.fill('#compare-a', a);
    await page.fill('#compare-b', 'not-hex');
    await page.getByRole('button', { name: 'Compare', exact: true }).click();
    assert.match(await text('.compare-form .form-error'), /B: a trace ID is 1 to 32 hexadecimal digits/);
    await page.fill('#compare-b', b.toUpperCase());
    await page.getByRole('button', { name: 'Compare', exact: true }).click();
    await page.locator('.compare-body[data-ready=true]').waitFor();
    assert.equal(new URL(page.url()).pathname, `/trace/${a}...${b}`);
  });
});

// The TraceQL mode against Tempo's API (/api/search, /api/v2/search/tags,
// /api/v2/search/tag/{tag}/values): suggestions come from the data the
// tests sent, errors from the server's parser.
describe('TraceQL', () => {
  const editor = '#f-traceql';
  const options = () => page.$$eval('.tql-completions:not([hidden]) .tql-option', (els) => els.map((e) => e.dataset.label));
  const typed = () => page.inputValue(editor);
  test('suggestions: attributes, operators and values from the tag endpoints', async () => {
    await page.goto(`${server.url}/search`);
    await page.click('#tab-traceql');
    assert.equal(await page.getAttribute('#tab-traceql', 'aria-selected'), 'true');
    await page.locator(editor).focus();
    await page.keyboard.type('{ resource.serv');
    await eventually(async () => assert.ok((await options()).includes('resource.service.version')));
    assert.ok((await options()).every((o) => o.startsWith('resource.serv')));
    await page.keyboard.type('ice.na');
    await eventually(async () => assert.deepEqual(await options(), ['resource.service.name']));
    await page.keyboard.press('Enter');
    assert.equal(await typed(), '{ resource.service.name ');
    await eventually(async () => assert.equal((await options())[0], '='));
    await page.keyboard.press('Enter');
    // Values of service.name the server has seen, strings quoted.
    await eventually(async () => assert.ok((await options()).includes('"payments"')));
    assert.ok((await options()).includes('"frontend"'));
    await page.keyboard.type('"pay');
    await eventually(async () => assert.deepEqual(await options(), ['"pay"', '"payments"'], 'the compare test sent a service "pay"'));
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('Tab');
    assert.equal(await typed(), '{ resource.service.name = "payments" ');
    await eventually(async () => assert.deepEqual(await options(), ['&&', '||', '}']));
    await page.keyboard.type('&& stat');
    await eventually(async () => assert.equal((await options())[0], 'status'));
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    await eventually(async () => assert.deepEqual((await options()).sort(), ['error', 'ok', 'unset']));
    await page.keyboard.type('er');
    await eventually(async () => assert.deepEqual(await options(), ['error']));
    await page.keyboard.press('Enter');
    await page.keyboard.type('}');
    assert.equal(await typed(), '{ resource.service.name = "payments" && status = error }');
    await page.keyboard.press('Escape');
    assert.deepEqual(await options(), []);
    await shot('16-traceql-typed');
    // Ctrl+Enter runs it.
    await page.keyboard.press('Control+Enter');
    await eventually(async () => assert.deepEqual(await page.$$eval('.result', (els) => els.map((e) => e.dataset.traceId)), [TRACE_ID]));
    assert.equal(new URL(page.url()).searchParams.get('q'), '{ resource.service.name = "payments" && status = error }');
  });

  test('results list the spans that matched; a matched span opens in its trace', async () => {
    const result = page.locator(`.result[data-trace-id="${TRACE_ID}"]`);
    assert.equal(await result.locator('.result-title').innerText(), 'frontend: GET /checkout');
    assert.equal(await result.locator('.span-count').innerText(), '10 spans');
    assert.equal(await result.locator('.error-count').innerText(), '1 error');
    assert.equal(await result.locator('.matched-count').innerText(), '1 matched span:');
    assert.equal(await result.locator('.matched-spans li').getAttribute('data-span-id'), id('E'));
    assert.equal(await result.locator('.matched-spans li').innerText(), 'payments: Charge 600ms', 'the query read service.name, so the server sends it');
    await shot('17-traceql-results');
    await result.locator('.matched-spans a').click();
    await page.locator('.trace-page[data-ready=true] .detail').waitFor();
    assert.equal(await text('.detail-title'), 'Charge');
    await page.goBack();
    await page.locator('.result').first().waitFor();
    assert.equal(await page.inputValue(editor), '{ resource.service.name = "payments" && status = error }', 'the URL restores the query');
    assert.equal(await page.getAttribute('#tab-traceql', 'aria-selected'), 'true');
  });

  test("the server's syntax error is marked at its line and column", async () => {
    await page.fill(editor, '{ .a = 1 &&\n  stat = error }');
    await page.getByRole('button', { name: 'Run query' }).click();
    await page.locator('[data-state=traceql-error]').waitFor();
    assert.match(await text('.tql-error'), /^Line 2, column 3: .*unknown identifier `stat`/);
    assert.equal(await text('.tql-mark'), 'stat');
    assert.equal(await page.getAttribute(editor, 'aria-invalid'), 'true');
    // The caret selects the culprit, ready to retype.
    assert.deepEqual(await page.$eval(editor, (e) => [e.selectionStart, e.selectionEnd]), [14, 18]);
    await shot('18-traceql-error');
    await page.keyboard.type('status');
    assert.equal(await page.locator('.tql-mark').count(), 0, 'editing clears the mark');
    assert.equal(await page.getAttribute(editor, 'aria-invalid'), null);
    // An unterminated spanset: the mark sits at the end.
    await page.fill(editor, '{ status = error');
    await page.keyboard.press('Control+Enter');
    await eventually(async () => assert.match(await text('.tql-error'), /^Line 1, column 17: /));
    assert.equal(await page.locator('.tql-mark.tql-mark-end').count(), 1);
    await page.fill(editor, '');
    await page.getByRole('button', { name: 'Run query' }).click();
    assert.match(await text('.traceql-form .form-error'), /Write a query/);
  });
});

describe('logs', () => {
  // The shop trace's start in ns: the logs are placed relative to it.
  let base;
  const E = () => `.wf-row[data-span-id="${id('E')}"]`;

  before(async () => {
    const api = await (await fetch(`${server.url}/api/traces/${TRACE_ID}`)).json();
    base = BigInt(Math.min(...api.data[0].spans.map((s) => s.startTime))) * 1000n;
    await server.ingestLogs(shopLogs(base));
  });

  test("trace view: log counts on spans, the span's records, the Logs tab", async () => {
    await page.goto(`${server.url}/trace/${TRACE_ID}`);
    await page.locator('.trace-page[data-ready=true][data-logs=ready]').waitFor();
    const badges = await page.$$eval('.wf-row', (rows) => Object.fromEntries(rows.map((r) => [r.dataset.spanId, r.querySelector('.wf-logs')?.textContent ?? null])));
    assert.deepEqual(
      badges,
      Object.fromEntries(['A', 'B', 'C', 'D', 'E', 'F', 'G', 'J', 'I', 'H'].map((l) => [id(l), l === 'C' || l === 'E' ? '1' : null])),
    );
    assert.equal(await text('[data-tab=logs] .tab-count'), '3');
    // The record's tick on the timeline, in its severity's colour.
    assert.deepEqual(await page.$$eval(`${E()} .wf-log`, (els) => els.map((e) => e.className)), ['wf-log sev-bg-error']);

    await page.locator(E()).click();
    const records = page.locator('.detail .log-record');
    await eventually(async () => assert.equal(await records.count(), 1));
    assert.equal(await records.locator('.log-body').innerText(), 'card declined by issuer');
    assert.equal(await records.locator('.log-sev').innerText(), 'ERROR');
    assert.equal(await records.locator('.log-time').innerText(), '+300ms');
    const kv = (key) => records.locator(`table[aria-label="Log attributes"] tr[data-key="${key}"] td`).innerText();
    assert.equal(await kv('card.brand'), 'visa');
    assert.equal(await kv('payment.attempt'), '2');
    await shot('13-span-logs');

    await page.getByRole('tab', { name: /Logs/ }).click();
    await page.locator('.trace-logs').waitFor();
    assert.equal(new URL(page.url()).searchParams.get('view'), 'logs');
    const rows = await page.$$eval('.trace-logs .log-record', (els) =>
      els.map((e) => [e.querySelector('.log-body').textContent, e.dataset.level, e.querySelector('.log-span, .log-trace-only').textContent]),
    );
    assert.deepEqual(rows, [
      ['placing order ord-7', 'info', 'checkout: PlaceOrder'],
      ['card declined by issuer', 'error', 'payments: Charge'],
      ['checkout answered 500', 'warn', 'trace'],
    ]);
    assert.equal(await page.locator('.logs-limit').count(), 0);
    await shot('14-trace-logs');
    // A record's span link selects the span in the timeline.
    await page.locator('.trace-logs .log-span', { hasText: 'checkout: PlaceOrder' }).click();
    await eventually(async () => assert.equal(await text('.detail-title'), 'PlaceOrder'));
    assert.equal(await page.locator('.timeline-view').isVisible(), true);
    assert.equal(await text('.detail .log-body'), 'placing order ord-7');
  });

  test("a trace with more logs than one page says so", async () => {
    await server.ingestLogs(manyLogs(base, HEALTH_TRACE_ID, 1001));
    await page.goto(`${server.url}/trace/${HEALTH_TRACE_ID}?view=logs`);
    await page.locator('.trace-logs').waitFor();
    assert.equal(await text('[data-tab=logs] .tab-count'), '1000+');
    assert.match(await text('.logs-limit'), /the newest 1,000 only/);
    assert.equal(await page.locator('.trace-logs .log-record').count(), 1000);
    // The oldest shown is tick 1: tick 0 is the one left out.
    assert.equal(await text('.trace-logs .log-record .log-body'), 'tick 1');
    assert.equal(await page.locator('.logs-limit a').getAttribute('href'), `/logs?traceID=${HEALTH_TRACE_ID}&lookback=all`);
    // The link: the Logs page, filtered by the trace, a page at a time.
    await page.locator('.logs-limit a').click();
    await page.locator('.logs-trace-filter').waitFor();
    await eventually(async () => assert.equal(await page.locator('.logs-results .log-record').count(), 100));
    assert.equal(await text('.logs-results .log-body'), 'tick 1000');
    assert.equal(await page.getByRole('button', { name: 'More' }).isVisible(), true);
  });

  test('Logs page: search, histogram, more, a record links to its trace', async () => {
    await page.goto(`${server.url}/search`);
    await page.click('a[data-nav=logs]');
    await page.locator('.logs-form').waitFor();
    // Only the shop records: the text leaves out the 1001 ticks ("tick N").
    await page.selectOption('#l-lookback', '2h');
    await page.fill('#l-q', 'r');
    await page.click('.logs-form button[type=submit]');
    const bodies = () => page.$$eval('.logs-results .log-record .log-body', (els) => els.map((e) => e.textContent));
    await eventually(async () => assert.deepEqual(await bodies(), ['checkout answered 500', 'cache warm', 'card declined by issuer', 'placing order ord-7']));
    const url = new URL(page.url());
    assert.equal(url.pathname, '/logs');
    assert.equal(url.searchParams.get('q'), 'r');
    assert.equal(url.searchParams.get('lookback'), '2h');
    // The histogram counts the four records by severity.
    const segs = await page.$$eval('.histogram .hist-seg', (els) => els.map((e) => `${e.dataset.level}:${e.dataset.count}`).sort());
    assert.deepEqual(segs, ['debug:1', 'error:1', 'info:1', 'warn:1']);
    assert.equal(await page.$$eval('.histogram .hist-bar', (els) => els.reduce((n, e) => n + Number(e.dataset.total), 0)), 4);
    await shot('15-logs-page');

    // Min severity and a service narrow it; the services come from /api/logs/services.
    await eventually(async () => assert.deepEqual(await page.$$eval('#l-service option', (os) => os.map((o) => o.value)), ['', 'checkout', 'frontend', 'payments']));
    await page.selectOption('#l-severity', 'warn');
    await page.click('.logs-form button[type=submit]');
    await eventually(async () => assert.deepEqual(await bodies(), ['checkout answered 500', 'card declined by issuer']));
    await page.selectOption('#l-service', 'payments');
    await page.click('.logs-form button[type=submit]');
    await eventually(async () => assert.deepEqual(await bodies(), ['card declined by issuer']));
    // Attributes: a record's, then its resource's.
    await page.selectOption('#l-service', '');
    await page.selectOption('#l-severity', '');
    await page.fill('#l-tags', 'order.id=ord-7');
    await page.click('.logs-form button[type=submit]');
    await eventually(async () => assert.deepEqual(await bodies(), ['placing order ord-7']));
    assert.equal(new URL(page.url()).searchParams.get('tags'), 'order.id=ord-7');
    await page.fill('#l-tags', 'service.name=frontend');
    await page.click('.logs-form button[type=submit]');
    await eventually(async () => assert.deepEqual(await bodies(), ['checkout answered 500', 'cache warm']));

    // Pages of two through the cursor.
    await page.goto(`${server.url}/logs?q=r&lookback=2h&limit=2`);
    await eventually(async () => assert.equal((await bodies()).length, 2));
    await page.getByRole('button', { name: 'More' }).click();
    await eventually(async () => assert.deepEqual(await bodies(), ['checkout answered 500', 'cache warm', 'card declined by issuer', 'placing order ord-7']));
    // A full page always has a next; the one after it is empty.
    await page.getByRole('button', { name: 'More' }).click();
    await eventually(async () => assert.equal(await page.getByRole('button', { name: 'More' }).isHidden(), true));
    assert.equal((await bodies()).length, 4);

    // A bad limit stays in the form.
    await page.fill('#l-limit', '5000');
    await page.click('.logs-form button[type=submit]');
    assert.match(await text('.logs-form .form-error'), /Limit/);

    // The error record's trace link opens its trace at its span.
    await page.locator('.logs-results .log-record[data-level=error] .log-trace-link').click();
    await page.locator('.detail').waitFor();
    assert.equal(new URL(page.url()).pathname, `/trace/${TRACE_ID}`);
    assert.equal(await text('.detail-title'), 'Charge');

    // A regex the server refuses: its message, in the form.
    await page.goto(`${server.url}/logs?q=${encodeURIComponent('/(/')}&lookback=2h`);
    await eventually(async () => assert.match(await text('.logs-form .form-error'), /unable to parse param 'q'/));
    assert.equal(await page.locator('.logs-results [data-state=bad-query]').count(), 1);

    // A bar's click narrows the range to its bucket (2 h / 60 = 2 min).
    await page.goto(`${server.url}/logs?q=r&lookback=2h`);
    await eventually(async () => assert.equal((await bodies()).length, 4));
    const fullest = await page.$$eval('.histogram .hist-bar', (els) => {
      const top = els.reduce((a, b) => (Number(b.dataset.total) > Number(a.dataset.total) ? b : a));
      return { start: top.dataset.start, total: Number(top.dataset.total) };
    });
    await page.locator(`.histogram .hist-bar[data-start="${fullest.start}"]`).click();
    await eventually(async () => assert.equal(new URL(page.url()).searchParams.get('lookback'), 'custom'));
    const narrowed = new URL(page.url()).searchParams;
    assert.equal(narrowed.get('start'), fullest.start);
    assert.equal(Number(narrowed.get('end')) - Number(narrowed.get('start')), 120e6 - 1);
    await eventually(async () => assert.equal((await bodies()).length, fullest.total));
  });

  test('Logs page: live follows new records', async () => {
    await page.goto(`${server.url}/logs?service=payments&lookback=2h`);
    await eventually(async () => assert.equal(await page.locator('.logs-results .log-record').count(), 1));
    await page.check('#logs-live');
    assert.equal(new URL(page.url()).searchParams.get('live'), '1');
    // The tail sends records acknowledged after it opened: wait for the stream, then send.
    await page.locator('.logs-results[data-live=open]').waitFor();
    assert.match(await text('.logs-status'), /^Live/);
    const now = BigInt(Date.now()) * 1_000_000n;
    const body = shopLogs(now);
    body.resourceLogs = body.resourceLogs.filter((r) => r.resource.attributes[0].value.stringValue === 'payments');
    body.resourceLogs[0].scopeLogs[0].logRecords[0].body.stringValue = 'card declined again';
    await server.ingestLogs(body);
    await eventually(async () => assert.equal(await text('.logs-results .log-record .log-body'), 'card declined again'));
    assert.equal(await page.locator('.logs-results .log-record').count(), 2);
    await page.uncheck('#logs-live');
    assert.equal(new URL(page.url()).searchParams.get('live'), null);
  });
});

describe('last: the server goes away', () => {
  test('API unreachable', async () => {
    await page.goto(`${server.url}/search`);
    await page.locator('.search-form').waitFor();
    await server.stop();
    await page.click('a[data-nav=dependencies]');
    await page.locator('[data-state=unreachable]').waitFor();
    assert.equal(await text('.state-error h2'), 'The Sightline API is unreachable');
    await shot('12-api-unreachable');
    server = null;
  });

  test('no script errors on any page', () => {
    assert.deepEqual(pageErrors, []);
  });
});
