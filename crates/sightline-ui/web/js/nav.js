// History helpers shared by the pages. main.js registers the renderer.

let renderer = () => {};

export function setRenderer(fn) {
  renderer = fn;
}

/** Navigates within the app: pushes (or replaces) history and renders. */
export function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.href);
  if (target.href === location.href && !replace) return;
  history[replace ? 'replaceState' : 'pushState'](null, '', target.pathname + target.search + target.hash);
  renderer();
}

/** Rewrites the URL's query in place: no history entry, no re-render. */
export function setQuery(params) {
  const q = params.toString();
  history.replaceState(null, '', location.pathname + (q ? `?${q}` : ''));
}
