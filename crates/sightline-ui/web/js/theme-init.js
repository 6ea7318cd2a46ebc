// Loaded as a classic script in <head>, before the page paints: applies the
// saved theme so a dark page does not flash light. theme.js owns the rest.
(function () {
  try {
    var saved = localStorage.getItem('sightline.theme');
    var dark = saved ? saved === 'dark' : window.matchMedia('(prefers-color-scheme: dark)').matches;
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  } catch (e) {
    document.documentElement.dataset.theme = 'light';
  }
})();
