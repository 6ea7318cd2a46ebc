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
import { HEALTH_TRACE_ID, OTHER_TRACE_ID, TRACE_ID, bigTrace, healthTrace, id, shopTrace } from './fixture.mjs';

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
