// Light and dark themes: the system preference until the user picks one
// with the toggle; the pick is remembered in localStorage.

const KEY = 'sightline.theme';
const media = window.matchMedia('(prefers-color-scheme: dark)');
const listeners = new Set();

export function currentTheme() {
  return document.documentElement.dataset.theme === 'dark' ? 'dark' : 'light';
}

function apply(theme) {
  document.documentElement.dataset.theme = theme;
  for (const fn of listeners) fn(theme);
}

/** Calls `fn(theme)` on every change; returns the unsubscribe function. */
export function onThemeChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function toggleTheme() {
  const next = currentTheme() === 'dark' ? 'light' : 'dark';
  try {
    localStorage.setItem(KEY, next);
  } catch {
    // private mode: still switch for this page
  }
  apply(next);
}

export function initTheme(button) {
  const label = () => {
    const dark = currentTheme() === 'dark';
    button.textContent = dark ? '☀' : '☾';
    button.title = dark ? 'Switch to the light theme' : 'Switch to the dark theme';
    button.setAttribute('aria-label', button.title);
  };
  media.addEventListener('change', (e) => {
    let saved = null;
    try {
      saved = localStorage.getItem(KEY);
    } catch {
      // ignore
    }
    if (!saved) apply(e.matches ? 'dark' : 'light');
  });
  onThemeChange(label);
  button.addEventListener('click', toggleTheme);
  label();
}
