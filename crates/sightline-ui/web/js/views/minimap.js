// The minimap: every span of the trace drawn small on a canvas (time across,
// tree order down), with the part of the trace the waterfall shows framed.
// Drag across it to zoom the waterfall to that range; double-click or
// "Reset zoom" to see the whole trace again.

import { h } from '../dom.js';
import { serviceColor } from '../colors.js';
import { formatDuration } from '../format.js';

const HEIGHT = 56;

/** opts: {trace, onView([v0, v1])} */
export function createMinimap(opts) {
  const { trace } = opts;
  let view = [0, 1];
  let matches = null;
  const canvas = h('canvas', { class: 'mm-canvas', height: HEIGHT, 'aria-hidden': 'true' });
  const shadeL = h('div', { class: 'mm-shade' });
  const shadeR = h('div', { class: 'mm-shade' });
  const frame = h('div', { class: 'mm-frame' });
  const drag = h('div', { class: 'mm-drag', hidden: true });
  const reset = h('button', { class: 'btn btn-small mm-reset', type: 'button', text: 'Reset zoom', hidden: true, onclick: () => opts.onView([0, 1]) });
  const area = h('div', { class: 'mm-area', title: 'Drag to zoom the timeline; double-click to reset' }, canvas, shadeL, shadeR, frame, drag);
  const labels = h(
    'div',
    { class: 'mm-labels', 'aria-hidden': 'true' },
    [0, 0.25, 0.5, 0.75, 1].map((f) => h('span', { style: { left: `${f * 100}%` }, text: formatDuration(f * trace.duration) })),
  );
  const el = h('div', { class: 'minimap', role: 'group', 'aria-label': 'Trace overview' }, area, labels, reset);

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, area.clientWidth);
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(HEIGHT * dpr);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${HEIGHT}px`;
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, HEIGHT);
    const n = trace.spans.length;
    const rowH = Math.max(1, Math.min(6, (HEIGHT - 4) / n));
    const step = n > 1 ? (HEIGHT - 4 - rowH) / (n - 1) : 0;
    const dur = Math.max(1, trace.duration);
    const drawSpans = (filter, color) => {
      trace.spans.forEach((s, i) => {
        if (filter && !filter(s)) return;
        ctx.fillStyle = color || serviceColor(s.serviceName);
        const x = ((s.startTime - trace.startTime) / dur) * w;
        ctx.fillRect(x, 2 + i * step, Math.max(1, (s.duration / dur) * w), rowH);
      });
    };
    drawSpans(null, null);
    if (matches) {
      const hl = getComputedStyle(el).getPropertyValue('--match-strong').trim() || '#facc15';
      drawSpans((s) => matches.has(s.spanID), hl);
    }
  }

  function place() {
    shadeL.style.left = '0';
    shadeL.style.width = `${view[0] * 100}%`;
    shadeR.style.left = `${view[1] * 100}%`;
    shadeR.style.width = `${(1 - view[1]) * 100}%`;
    frame.style.left = `${view[0] * 100}%`;
    frame.style.width = `${(view[1] - view[0]) * 100}%`;
    reset.hidden = view[0] === 0 && view[1] === 1;
  }

  const fraction = (e) => {
    const r = area.getBoundingClientRect();
    return Math.max(0, Math.min(1, (e.clientX - r.left) / Math.max(1, r.width)));
  };
  area.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    const f0 = fraction(e);
    area.setPointerCapture(e.pointerId);
    drag.hidden = false;
    const show = (f1) => {
      drag.style.left = `${Math.min(f0, f1) * 100}%`;
      drag.style.width = `${Math.abs(f1 - f0) * 100}%`;
    };
    show(f0);
    const move = (ev) => show(fraction(ev));
    const up = (ev) => {
      area.removeEventListener('pointermove', move);
      area.removeEventListener('pointerup', up);
      drag.hidden = true;
      const f1 = fraction(ev);
      if (Math.abs(f1 - f0) > 0.005) opts.onView([Math.min(f0, f1), Math.max(f0, f1)]);
    };
    area.addEventListener('pointermove', move);
    area.addEventListener('pointerup', up);
  });
  area.addEventListener('dblclick', () => opts.onView([0, 1]));

  const resize = new ResizeObserver(() => draw());
  resize.observe(area);

  return {
    el,
    setView(v) {
      view = v;
      place();
    },
    setMatches(m) {
      matches = m;
      draw();
    },
    redraw: draw,
    destroy() {
      resize.disconnect();
    },
  };
}
