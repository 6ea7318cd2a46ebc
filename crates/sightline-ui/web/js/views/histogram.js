// The Logs page's histogram: one bar per time bucket, stacked by severity
// (lowest at the bottom), as CSS boxes whose heights are set through CSSOM
// (CSP allows that; no inline styles). The counts come from logs.js's
// histogram() over the records the page has loaded.

import { h } from '../dom.js';
import { formatTimestamp } from '../format.js';
import { LEVEL_NAMES } from '../logs.js';

/** hist: histogram()'s answer; `caption` says what was counted; `onPick(bucket)` a bar's click (optional). */
export function severityHistogram(hist, caption, onPick) {
  if (!hist.buckets.length) return null;
  const bars = hist.buckets.map((b) => {
    const pickable = Boolean(onPick && b.total);
    const parts = LEVEL_NAMES.filter((n) => b.counts[n]).map((n) => `${b.counts[n]} ${n}`);
    const title = `${formatTimestamp(b.start)} – ${formatTimestamp(b.end)}: ${parts.length ? parts.join(', ') : 'none'}`;
    return h(
      'div',
      {
        class: `hist-bar${pickable ? ' is-pickable' : ''}`,
        title: pickable ? `${title} (click to show only this time)` : title,
        dataset: { start: String(b.start), total: String(b.total) },
        // Bars with records are buttons: focusable, Enter or Space picks.
        role: pickable ? 'button' : undefined,
        tabindex: pickable ? '0' : undefined,
        'aria-label': pickable ? title : undefined,
        onclick: pickable ? () => onPick(b) : undefined,
        onkeydown: pickable ? (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), onPick(b)) : undefined,
      },
      LEVEL_NAMES.filter((n) => b.counts[n]).map((n) =>
        h('span', { class: `hist-seg sev-bg-${n}`, dataset: { level: n, count: String(b.counts[n]) }, style: { height: `${(b.counts[n] / hist.max) * 100}%` } }),
      ),
    );
  });
  const levels = LEVEL_NAMES.filter((n) => hist.buckets.some((b) => b.counts[n]));
  return h(
    'figure',
    { class: 'histogram', 'aria-label': 'Log records by severity over time' },
    h('div', { class: 'hist-plot' }, h('span', { class: 'hist-max', text: String(hist.max) }), h('div', { class: 'hist-bars' }, bars)),
    h(
      'div',
      { class: 'hist-axis' },
      h('span', { text: formatTimestamp(hist.buckets[0].start) }),
      h('span', { class: 'hist-legend' }, levels.map((n) => h('span', { class: 'hist-key' }, h('span', { class: `hist-swatch sev-bg-${n}` }), n))),
      h('span', { text: formatTimestamp(hist.buckets[hist.buckets.length - 1].end) }),
    ),
    h('figcaption', { class: 'hint', text: caption }),
  );
}
