// Serves the real Jaeger UI production build (../shared/peers/jaeger-ui,
// v2.20.0) the way jaeger-query serves it: files as they are, index.html for
// every other path (a single-page app) with the backend capabilities filled
// in, and /api/* and /analytics/* forwarded to a Sightline server.

import { createServer, request } from 'node:http';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** The build: $JAEGER_UI_DIR, else ../shared/peers/jaeger-ui beside the checkout. */
export function jaegerUiDir() {
  const dir = process.env.JAEGER_UI_DIR || resolve(here, '../../../../shared/peers/jaeger-ui');
  if (!existsSync(join(dir, 'index.html'))) {
    throw new Error(`Jaeger UI build not found at ${dir}: set JAEGER_UI_DIR`);
  }
  return dir;
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/**
 * Starts the UI server on a free loopback port, forwarding API calls to
 * `backend` (http://127.0.0.1:PORT). Resolves to { url, close() }.
 */
export async function serveJaegerUi(backend) {
  const dir = jaegerUiDir();
  // jaeger-query fills these placeholders in at serve time; the Monitor
  // tab needs metricsStorage.
  const index = readFileSync(join(dir, 'index.html'), 'utf8').replace(
    'const JAEGER_STORAGE_CAPABILITIES = DEFAULT_STORAGE_CAPABILITIES;',
    'const JAEGER_STORAGE_CAPABILITIES = { archiveStorage: false, metricsStorage: true };',
  );
  const target = new URL(backend);
  const server = createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path.startsWith('/api/') || path.startsWith('/analytics/')) {
      const upstream = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (reply) => {
          res.writeHead(reply.statusCode, reply.headers);
          reply.pipe(res);
        },
      );
      upstream.on('error', (e) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(String(e));
      });
      req.pipe(upstream);
      return;
    }
    const file = resolve(dir, `.${decodeURIComponent(path)}`);
    if (file.startsWith(dir) && path !== '/' && existsSync(file) && statSync(file).isFile()) {
      res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
      res.end(readFileSync(file));
      return;
    }
    res.writeHead(200, { 'content-type': TYPES['.html'] });
    res.end(index);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((ok) => server.close(ok)),
  };
}
