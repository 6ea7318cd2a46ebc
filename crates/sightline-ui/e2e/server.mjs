// Starts the real `sightline` binary on free loopback ports with a fresh
// data directory, and stops it. Used by the e2e tests and bench-render.mjs.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The binary: $SIGHTLINE_BIN, else target/debug/sightline of this checkout. */
export function binaryPath() {
  const path = process.env.SIGHTLINE_BIN || resolve(here, '../../../target/debug/sightline');
  if (!existsSync(path)) throw new Error(`sightline binary not found at ${path}: run \`cargo build -p sightline\` or set SIGHTLINE_BIN`);
  return path;
}

/** The venv Python with the stock OpenTelemetry SDK: $SIGHTLINE_PYTHON, else .venv of this checkout (.ci/run builds it). */
export function pythonPath() {
  const path = process.env.SIGHTLINE_PYTHON || resolve(here, '../../../.venv/bin/python');
  if (!existsSync(path)) throw new Error(`no Python venv at ${path}: run .ci/run once (it creates it) or set SIGHTLINE_PYTHON`);
  return path;
}

const givenPorts = new Set();

/** A loopback port not handed out before: the kernel may return one port
 * twice once the probe socket is closed. */
async function freePort() {
  for (;;) {
    const port = await new Promise((ok, fail) => {
      const s = createServer();
      s.once('error', fail);
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address();
        s.close(() => ok(port));
      });
    });
    if (!givenPorts.has(port)) {
      givenPorts.add(port);
      return port;
    }
  }
}

/** Starts sightline; resolves once /ready answers 200. */
export async function startServer() {
  const dataDir = mkdtempSync(join(tmpdir(), 'sightline-ui-e2e-'));
  const [http, otlpHttp, otlpGrpc] = [await freePort(), await freePort(), await freePort()];
  const child = spawn(
    binaryPath(),
    [
      'serve',
      '--data-dir', dataDir,
      '--http-addr', `127.0.0.1:${http}`,
      '--otlp-http-addr', `127.0.0.1:${otlpHttp}`,
      '--otlp-grpc-addr', `127.0.0.1:${otlpGrpc}`,
      // Any free port: the default 9411 may be taken by another server.
      '--zipkin-addr', '127.0.0.1:0',
      '--log-level', 'warn',
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  let exited = null;
  child.once('exit', (code, signal) => (exited = { code, signal }));
  const url = `http://127.0.0.1:${http}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (exited) throw new Error(`sightline exited before it was ready: ${JSON.stringify(exited)}`);
    try {
      if ((await fetch(`${url}/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('sightline did not become ready within 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    otlpHttp: `127.0.0.1:${otlpHttp}`,
    otlpGrpc: `127.0.0.1:${otlpGrpc}`,
    /** POSTs an OTLP/JSON body to /v1/traces; throws unless accepted. */
    async ingest(body) {
      const r = await fetch(`http://127.0.0.1:${otlpHttp}/v1/traces`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!r.ok) throw new Error(`ingest failed: ${r.status} ${await r.text()}`);
      const reply = await r.json().catch(() => ({}));
      if (reply.partialSuccess?.rejectedSpans) throw new Error(`spans rejected: ${JSON.stringify(reply)}`);
    },
    /** POSTs an OTLP/JSON logs export request to /v1/logs; throws unless every record is accepted. */
    async ingestLogs(body) {
      const r = await fetch(`http://127.0.0.1:${otlpHttp}/v1/logs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!r.ok) throw new Error(`log ingest failed: ${r.status} ${await r.text()}`);
      const reply = await r.json().catch(() => ({}));
      if (reply.partialSuccess?.rejectedLogRecords) throw new Error(`log records rejected: ${JSON.stringify(reply)}`);
    },
    /**
     * Sends span trees through the stock OpenTelemetry Python SDK over
     * OTLP/HTTP (send_spans.py has the plan's shape); returns the trace id
     * of each root, in plan order.
     */
    sendSpans(plan) {
      const run = spawnSync(pythonPath(), [join(here, 'send_spans.py'), `http://127.0.0.1:${otlpHttp}`], { input: JSON.stringify(plan), encoding: 'utf8', timeout: 60_000 });
      if (run.status !== 0) throw new Error(`send_spans.py failed (${run.status ?? run.signal}): ${run.stderr}`);
      return JSON.parse(run.stdout.trim().split('\n').pop()).traces;
    },
    async stop() {
      if (!exited) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await done;
        clearTimeout(timer);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
