// Small SVG time-series charts for the Monitor page, drawn by hand: a line
// chart with axes, legend and a hover read-out, and a sparkline for table
// rows. Colours come from CSS classes (series-0, series-1, …), so both
// themes apply; positions are SVG attributes, never inline styles.

import { h, svg } from '../dom.js';
import { niceTicks } from '../format.js';
import { timeTicks } from '../metrics.js';

const M = { top: 12, right: 16, bottom: 26, left: 58 };

/** Splits points into runs without gaps longer than 1.5 steps. */
function runs(points, step) {
  const out = [];
  let run = [];
  for (const p of points) {
    if (run.length && p.t - run[run.length - 1].t > step * 1.5) {
      out.push(run);
      run = [];
    }
    run.push(p);
  }
  if (run.length) out.push(run);
  return out;
}

function clock(ms, withSeconds) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}${withSeconds ? `:${p(d.getSeconds())}` : ''}`;
}

/**
 * A line chart. `series`: [{label, points: [{t, v}]}] (t in ms); `from`,
 * `to`: the time axis; `step`: the points' spacing (longer gaps break the
 * line); `format`: a value as text. Hovering shows every series' value at
 * the nearest point in time.
 */
export function lineChart({ title, series, from, to, step, width, height = 170, format, name }) {
  const w = Math.max(width, 260);
  const iw = w - M.left - M.right;
  const ih = height - M.top - M.bottom;
  const all = series.flatMap((s) => s.points);
  const vMax = Math.max(0, ...all.map((p) => p.v));
  // Round ticks, the top one at or above the largest value.
  const yTicks = niceTicks(0, vMax > 0 ? vMax * 1.1 : 1, 4);
  const tickStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
  while (yTicks[yTicks.length - 1] < vMax) yTicks.push(yTicks[yTicks.length - 1] + tickStep);
  const yTop = yTicks[yTicks.length - 1] || 1;
  const x = (t) => M.left + ((t - from) / (to - from)) * iw;
  const y = (v) => M.top + ih - (v / yTop) * ih;
  const offset = -new Date(to).getTimezoneOffset();
  const xTicks = timeTicks(from, to, Math.max(2, Math.floor(iw / 80)), offset);

  const lines = series.map((s, i) => {
    const parts = runs(s.points, step);
    return svg(
      'g',
      { class: `series series-${i}`, dataset: { series: s.label } },
      parts.filter((r) => r.length > 1).map((r) => svg('path', { class: 'line', d: r.map((p, j) => `${j ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') })),
      // A lone point has no line: draw it as a dot.
      parts.filter((r) => r.length === 1).map(([p]) => svg('circle', { class: 'point', cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 2.5 })),
    );
  });
  const cursor = svg('line', { class: 'cursor', y1: M.top, y2: M.top + ih, x1: -10, x2: -10 });
  const marks = series.map((_, i) => svg('circle', { class: `mark series-${i}`, r: 3.5, cx: -10, cy: -10 }));
  const plot = svg(
    'svg',
    { width: w, height, viewBox: `0 0 ${w} ${height}`, role: 'img', 'aria-label': `${title} over time` },
    yTicks.map((v) => svg('g', { class: 'tick' }, svg('line', { x1: M.left, x2: w - M.right, y1: y(v), y2: y(v) }), svg('text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end', text: format(v) }))),
    xTicks.map((t) => svg('text', { class: 'tick', x: x(t), y: height - 8, 'text-anchor': 'middle', text: clock(t) })),
    svg('line', { class: 'axis', x1: M.left, x2: w - M.right, y1: M.top + ih, y2: M.top + ih }),
    lines,
    cursor,
    marks,
  );
  const readout = h('div', { class: 'chart-readout', hidden: true, 'aria-hidden': 'true' });
  const fig = h(
    'figure',
    { class: 'chart', dataset: { chart: name || title } },
    h(
      'figcaption',
      { class: 'chart-head' },
      h('span', { class: 'chart-title', text: title }),
      h(
        'span',
        { class: 'chart-legend' },
        series.map((s, i) => h('span', { class: `legend-item series-${i}` }, h('span', { class: 'legend-swatch' }), s.label)),
      ),
    ),
    all.length ? plot : h('p', { class: 'chart-empty', text: 'No data in this range' }),
    readout,
  );

  // Hover: the nearest time that has a point, and each series' value there.
  const times = [...new Set(all.map((p) => p.t))].sort((a, b) => a - b);
  const byTime = series.map((s) => new Map(s.points.map((p) => [p.t, p.v])));
  plot.addEventListener('mousemove', (e) => {
    if (!times.length) return;
    const box = plot.getBoundingClientRect();
    const px = ((e.clientX - box.left) / box.width) * w;
    const t = from + ((px - M.left) / iw) * (to - from);
    let best = times[0];
    for (const c of times) if (Math.abs(c - t) < Math.abs(best - t)) best = c;
    const cx = x(best);
    cursor.setAttribute('x1', cx);
    cursor.setAttribute('x2', cx);
    marks.forEach((m, i) => {
      const v = byTime[i].get(best);
      m.setAttribute('cx', v === undefined ? -10 : cx);
      m.setAttribute('cy', v === undefined ? -10 : y(v));
    });
    readout.replaceChildren(
      h('div', { class: 'readout-time', text: clock(best, true) }),
      ...series.map((s, i) => {
        const v = byTime[i].get(best);
        return h('div', { class: `readout-row series-${i}` }, h('span', { class: 'legend-swatch' }), `${s.label}: ${v === undefined ? '–' : format(v)}`);
      }),
    );
    readout.hidden = false;
    // CSSOM, not a style attribute: allowed under a strict CSP.
    const left = (cx / w) * box.width;
    readout.style.left = `${Math.min(left + 12, box.width - 150)}px`;
  });
  plot.addEventListener('mouseleave', () => {
    readout.hidden = true;
    cursor.setAttribute('x1', -10);
    cursor.setAttribute('x2', -10);
    for (const m of marks) m.setAttribute('cx', -10);
  });
  return fig;
}

/** A sparkline of `points` over [from, to]: a line and its area, no axes. */
export function sparkline(points, from, to, { width = 120, height = 26, step, label } = {}) {
  const vMax = Math.max(0, ...points.map((p) => p.v)) || 1;
  const x = (t) => 1 + ((t - from) / (to - from)) * (width - 2);
  const y = (v) => height - 2 - (v / vMax) * (height - 4);
  const parts = runs(points, step || Infinity);
  return svg(
    'svg',
    { class: 'sparkline', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': label || 'trend' },
    parts.map((r) => {
      const line = r.map((p, j) => `${j ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ');
      if (r.length === 1) return svg('circle', { class: 'point', cx: x(r[0].t).toFixed(1), cy: y(r[0].v).toFixed(1), r: 2 });
      const area = `${line} L${x(r[r.length - 1].t).toFixed(1)},${height - 1} L${x(r[0].t).toFixed(1)},${height - 1} Z`;
      return svg('g', {}, svg('path', { class: 'area', d: area }), svg('path', { class: 'line', d: line }));
    }),
  );
}
