// Entry point: the client-side router. The URL holds every page's state,
// so links can be shared and back/forward work; pages are re-rendered from
// the URL on each navigation.

import { initTheme } from './theme.js';
import * as api from './api.js';
import { loadServices } from './colors.js';
import { searchPage } from './pages/search.js';
import { tracePage } from './pages/trace.js';
import { mapPage } from './pages/map.js';
import { monitorPage } from './pages/monitor.js';
import { comparePage } from './pages/compare.js';
import { logsPage } from './pages/logs.js';
import { h, mount } from './dom.js';
import { navigate, setRenderer } from './nav.js';

const app = document.getElementById('app');

const routes = [
  [/^\/(search)?$/, searchPage, 'search'],
  // Jaeger UI's compare URL, /trace/{a}...{b}, before the single trace.
  [/^\/trace\/([^/]*\.\.\.[^/]*)$/, comparePage, 'compare'],
  [/^\/trace\/([^/]+)$/, tracePage, null],
  [/^\/compare$/, comparePage, 'compare'],
  [/^\/dependencies$/, mapPage, 'dependencies'],
  [/^\/monitor$/, monitorPage, 'monitor'],
  [/^\/logs$/, logsPage, 'logs'],
];

let cleanup = null;

/** A path parameter, decoded; optional groups stay undefined, malformed escapes stay as written. */
function decodeParam(p) {
  if (p === undefined) return undefined;
  try {
    return decodeURIComponent(p);
  } catch {
    return p;
  }
}
let lastPath = null;

function render() {
  const path = location.pathname;
  const samePage = path === lastPath;
  lastPath = path;
  if (cleanup) cleanup();
  cleanup = null;
  for (const [re, page, nav] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    for (const a of document.querySelectorAll('.topnav a')) {
      if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    cleanup = page(app, { params: m.slice(1).map(decodeParam), query: new URLSearchParams(location.search) }) || null;
    if (!samePage) app.focus({ preventScroll: true });
    return;
  }
  document.title = 'Not found · Sightline';
  mount(
    app,
    h(
      'div',
      { class: 'state state-error', dataset: { state: 'no-page' } },
      h('h1', { text: 'Page not found' }),
      h('p', {}, 'There is no page at ', h('code', { text: path }), '. ', h('a', { href: '/search', text: 'Search traces' })),
    ),
  );
}

// Same-origin links navigate inside the app.
document.addEventListener('click', (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const href = a.getAttribute('href');
  const url = new URL(href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || href.startsWith('#')) return;
  e.preventDefault();
  navigate(url.href);
});

window.addEventListener('popstate', render);

// Trace-ID lookup: one id opens the trace, several list them.
document.getElementById('lookup').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('lookup-input');
  const ids = input.value.split(/[\s,]+/).map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (!ids.length) return;
  input.value = '';
  input.blur();
  if (ids.length === 1) navigate(`/trace/${encodeURIComponent(ids[0])}`);
  else navigate(`/search?${ids.map((id) => `traceID=${encodeURIComponent(id)}`).join('&')}`);
});

setRenderer(render);
initTheme(document.getElementById('theme-toggle'));

// Colours are assigned in service-name order: the list is fetched in
// parallel with the first page's own requests, which wait for it
// (colorsReady) before drawing. Pages work without it if this fails.
loadServices(api.services());
render();
