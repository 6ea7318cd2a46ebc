// End-to-end tests of the real Jaeger UI (v2.20.0, production build from
// ../shared/peers/jaeger-ui) against the real sightline binary, in headless
// Chromium: the service list and search come from Jaeger API v3
// (/api/v3/services, /api/v3/trace-summaries), the trace view from
// /api/traces/{id}, System Architecture from /api/dependencies and the
// Monitor tab from /api/metrics/*.
//
// Screenshots go to e2e/screenshots/jaeger-ui-*.png.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from './server.mjs';
import { serveJaegerUi } from './jaeger-ui.mjs';
import { TRACE_ID, healthTrace, shopTrace } from './fixture.mjs';

const SHOTS = join(dirname(fileURLToPath(import.meta.url)), 'screenshots');
mkdirSync(SHOTS, { recursive: true });

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SERVICES = ['checkout', 'email', 'frontend', 'inventory', 'payments'];

let browser;
let server;
let ui;
let page;
const pageErrors = [];
const apiFailures = [];

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `jaeger-ui-${name}.png`) });
}

/** Picks `value` in the antd select under the form label `label`. */
async function choose(label, value) {
  const select = page.locator('.ant-form-item, .ant-row, div').filter({ hasText: label }).locator('.ant-select').first();
  await select.click();
  await page.keyboard.type(value);
  await page.locator('.ant-select-item-option').filter({ hasText: new RegExp(`^${value}$`) }).first().click();
}

before(async () => {
  server = await startServer();
  ui = await serveJaegerUi(server.url);
  const base = BigInt(Date.now() - 120_000) * 1_000_000n;
  await server.ingest(shopTrace(base));
  await server.ingest(healthTrace(base + 5_000_000_000n));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('response', (r) => {
    if (new URL(r.url()).pathname.startsWith('/api/') && r.status() >= 400) apiFailures.push(`${r.status()} ${r.url()}`);
  });
});

after(async () => {
  await browser?.close();
  await ui?.close();
  await server?.stop();
});

describe('Jaeger UI v2.20 against sightline', () => {
  test('lists the services', async () => {
    await page.goto(`${ui.url}/search`);
    await page.getByText(`Service (${SERVICES.length})`).waitFor();
    await page.locator('.ant-select').first().click();
    const options = page.locator('.ant-select-dropdown .ant-select-item-option');
    await options.first().waitFor();
    assert.deepEqual((await options.allInnerTexts()).map((t) => t.trim()).sort(), SERVICES);
    await page.keyboard.press('Escape');
    await shot('1-services');
  });

  test('a search finds the traces', async () => {
    await page.goto(`${ui.url}/search`);
    await page.getByText(`Service (${SERVICES.length})`).waitFor();
    await choose('Service', 'frontend');
    await page.getByRole('button', { name: 'Find Traces' }).click();
    await page.getByText('2 traces').waitFor();
    await page.getByText('frontend: GET /checkout').first().waitFor();
    await page.getByText('frontend: GET /health').first().waitFor();
    await shot('2-search');
  });

  test('the trace opens', async () => {
    await page.getByText('frontend: GET /checkout').first().click();
    await page.waitForURL(new RegExp(`/trace/${TRACE_ID}`));
    await page.getByText('Total Spans').waitFor();
    const body = await page.locator('body').innerText();
    assert.match(body, /Total Spans\s*10/);
    for (const name of ['PlaceOrder', 'fraud-check', 'send receipt', 'SELECT stock']) {
      assert.ok(body.includes(name), `span ${name} is shown`);
    }
    await shot('3-trace');
  });

  test('System Architecture draws the service graph', async () => {
    await page.goto(`${ui.url}/dependencies`);
    await page.getByText('payments', { exact: true }).first().waitFor();
    const body = await page.locator('body').innerText();
    // The database is named by db.system, not by its name or a path.
    for (const node of ['frontend', 'checkout', 'email', 'inventory', 'payments', 'postgresql']) {
      assert.ok(new RegExp(`^${node}$`, 'm').test(body), `node ${node} in:\n${body}`);
    }
    await shot('4-dependencies');
  });

  test('the Monitor tab shows span metrics', async () => {
    await page.goto(`${ui.url}/monitor`);
    await page.getByText('Latency (ms)').waitFor();
    await choose('Service', 'checkout');
    const table = page.locator('.ant-table-tbody');
    await table.getByText('PlaceOrder').waitFor();
    const row = await table.locator('tr').filter({ hasText: 'PlaceOrder' }).first().innerText();
    // P95 latency of the one 860 ms PlaceOrder call, as Sightline's
    // histogram estimates it, and its request rate.
    assert.match(row, /\d+(\.\d+)?\s*(ms|s)\b/, row);
    assert.match(row, /req\/s/, row);
    await shot('5-monitor');
  });

  test('no page errors and no failed API calls', () => {
    assert.deepEqual(pageErrors, []);
    assert.deepEqual(apiFailures, []);
  });
});
