// The search results' duration-vs-start-time scatter plot, in SVG. Each dot
// is a trace (size grows with span count, red ring for errors); clicking it
// opens the trace.

import { svg, h } from '../dom.js';
import { formatDuration, niceTicks } from '../format.js';
import { serviceColor } from '../colors.js';

const HEIGHT = 190;
const M = { top: 14, right: 18, bottom: 28, left: 64 };

export function scatterPlot(summaries, width, onOpen) {
  const w = Math.max(width, 320);
  const iw = w - M.left - M.right;
  const ih = HEIGHT - M.top - M.bottom;
  let t0 = Math.min(...summaries.map((s) => s.startTime));
  let t1 = Math.max(...summaries.map((s) => s.startTime));
  if (t1 - t0 < 1e6) {
    // a single instant: widen to a second so dots are not all on the edge
    t0 -= 5e5;
    t1 += 5e5;
  }
  const dMax = Math.max(...summaries.map((s) => s.duration), 1) * 1.1;
  const x = (t) => M.left + ((t - t0) / (t1 - t0)) * iw;
  const y = (d) => M.top + ih - (d / dMax) * ih;

  const yTicks = niceTicks(0, dMax, 4);
  const xTicks = niceTicks(t0, t1, Math.max(2, Math.floor(iw / 110)));
  const subSecond = xTicks.length > 1 && xTicks[1] - xTicks[0] < 1e6;
  const timeLabel = (us) => {
    const d = new Date(us / 1000);
    const p = (n, w = 2) => String(n).padStart(w, '0');
    const hms = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    return subSecond ? `${hms}.${p(d.getMilliseconds(), 3)}` : hms;
  };
  const dots = [...summaries]
    .sort((a, b) => b.spanCount - a.spanCount) // big dots behind small ones
    .map((s) => {
      const r = Math.min(12, 3.5 + Math.sqrt(s.spanCount) * 0.8);
      return svg(
        'circle',
        {
          class: `dot${s.errorCount ? ' dot-error' : ''}`,
          cx: x(s.startTime).toFixed(1),
          cy: y(s.duration).toFixed(1),
          r: r.toFixed(1),
          fill: serviceColor(s.rootService),
          tabindex: '0',
          role: 'link',
          'aria-label': `${s.rootService}: ${s.rootOperation}, ${formatDuration(s.duration)}`,
          dataset: { traceId: s.traceID },
          onclick: () => onOpen(s.traceID),
          onkeydown: (e) => {
            if (e.key === 'Enter') onOpen(s.traceID);
          },
        },
        svg('title', {
          text: `${s.rootService}: ${s.rootOperation}\n${formatDuration(s.duration)} · ${s.spanCount} spans${s.errorCount ? ` · ${s.errorCount} errors` : ''}`,
        }),
      );
    });
  return h(
    'figure',
    { class: 'scatter' },
    svg(
      'svg',
      { width: w, height: HEIGHT, viewBox: `0 0 ${w} ${HEIGHT}`, role: 'img', 'aria-label': 'Trace duration by start time' },
      yTicks.map((d) =>
        svg('g', { class: 'tick' }, svg('line', { x1: M.left, x2: w - M.right, y1: y(d), y2: y(d) }), svg('text', { x: M.left - 8, y: y(d) + 4, 'text-anchor': 'end', text: formatDuration(d) })),
      ),
      xTicks.map((t) => svg('text', { class: 'tick', x: x(t), y: HEIGHT - 8, 'text-anchor': 'middle', text: timeLabel(t) })),
      svg('line', { class: 'axis', x1: M.left, x2: w - M.right, y1: M.top + ih, y2: M.top + ih }),
      dots,
    ),
    h('figcaption', { class: 'visually-hidden', text: 'Each dot is a trace: start time across, duration up.' }),
  );
}
