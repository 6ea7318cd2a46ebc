// The trace waterfall: one row per visible span (a collapsible tree on the
// left, a bar on the timeline on the right), virtualised — only the rows in
// view (plus a margin) exist in the DOM, so a 10,000-span trace renders as
// fast as a 10-span one.
//
// Keyboard (the tree has focus): ↑/↓ move, ←/→ collapse/expand (or go to the
// parent / first child), Home/End, PageUp/PageDown, Enter or Space opens the
// span's details, Escape closes them.

import { h, rafThrottle } from '../dom.js';
import { serviceColor } from '../colors.js';
import { formatDuration, niceTicks } from '../format.js';
import { recordLevel, recordTime } from '../logs.js';

export const ROW_HEIGHT = 28;
const OVERSCAN = 8;
const INDENT = 14;
const MAX_EVENT_MARKS = 24;

/**
 * opts: {trace, critical (Map id → sections), onSelect(span|null), onToggle(span),
 *        onExpandAll(), onCollapseAll()}
 * Returns an object with the element and setters; the page owns the state.
 */
export function createWaterfall(opts) {
  const { trace, critical } = opts;
  let spanLogs = new Map(); // span id → its log records (setSpanLogs)
  let rows = [];
  let view = [0, 1];
  let matches = null;
  let selected = null;
  let focus = 0;
  let collapsed = new Set();
  let version = 0;
  const rendered = new Map(); // row index → element

  const ruler = h('div', { class: 'wf-ruler', 'aria-hidden': 'true' });
  const grid = h('div', { class: 'wf-grid', 'aria-hidden': 'true' });
  const spacer = h('div', { class: 'wf-spacer' });
  const body = h('div', {
    class: 'wf-body',
    tabindex: '0',
    role: 'tree',
    'aria-label': 'Spans of the trace',
  }, spacer);
  const el = h(
    'div',
    { class: 'waterfall' },
    h(
      'div',
      { class: 'wf-header' },
      h(
        'div',
        { class: 'wf-name-head' },
        h('span', { text: 'Service & operation' }),
        h(
          'span',
          { class: 'wf-tree-buttons' },
          h('button', { class: 'btn btn-small', type: 'button', text: 'Expand all', onclick: () => opts.onExpandAll() }),
          h('button', { class: 'btn btn-small', type: 'button', text: 'Collapse all', onclick: () => opts.onCollapseAll() }),
        ),
      ),
      ruler,
    ),
    h('div', { class: 'wf-viewport' }, body, grid),
  );

  const viewStart = () => trace.startTime + view[0] * trace.duration;
  const viewDuration = () => Math.max(1, (view[1] - view[0]) * trace.duration);
  const pct = (t) => ((t - viewStart()) / viewDuration()) * 100;

  function drawRuler() {
    const from = view[0] * trace.duration;
    const to = view[1] * trace.duration;
    const ticks = niceTicks(from, to, 5);
    const at = (t) => `${((t - from) / Math.max(1, to - from)) * 100}%`;
    ruler.replaceChildren(...ticks.map((t) => h('span', { class: 'wf-tick', style: { left: at(t) }, text: formatDuration(t) })));
    grid.replaceChildren(...ticks.map((t) => h('span', { class: 'wf-gridline', style: { left: at(t) } })));
  }

  function rowElement(span, index) {
    const hasKids = span.children.length > 0;
    const isCollapsed = collapsed.has(span.spanID);
    const sections = critical.get(span.spanID);
    const isMatch = matches ? matches.has(span.spanID) : false;
    const color = serviceColor(span.serviceName);
    const records = spanLogs.get(span.spanID) || [];
    const logs = records.length;
    const classes = ['wf-row'];
    if (span.spanID === selected) classes.push('is-selected');
    if (index === focus) classes.push('is-focused');
    if (matches) classes.push(isMatch ? 'is-match' : 'is-dim');
    if (span.hasError) classes.push('is-error');

    // Positions in % of the timeline, clipped to the zoomed window.
    const left = pct(span.startTime);
    const end = pct(span.endTime);
    const from = Math.max(0, left);
    const to = Math.min(100, end);
    const inView = end >= 0 && left <= 100;
    const bar = inView
      ? h('div', { class: 'wf-bar', style: { left: `${from}%`, width: `max(${to - from}%, 2px)`, background: color } })
      : null;
    const marks = span.logs
      .slice(0, MAX_EVENT_MARKS)
      .map((log) => pct(log.timestamp))
      .filter((x) => x >= 0 && x <= 100)
      .map((x) => h('span', { class: 'wf-event', style: { left: `${x}%` } }));
    // Log records as short ticks under the bar, coloured by severity.
    const logMarks = records
      .slice(0, MAX_EVENT_MARKS)
      .map((r) => [pct(recordTime(r)), recordLevel(r)])
      .filter(([x]) => x >= 0 && x <= 100)
      .map(([x, level]) => h('span', { class: `wf-log sev-bg-${level}`, style: { left: `${x}%` } }));
    const cp = (sections || [])
      .map(([s, e]) => [Math.max(0, pct(s)), Math.min(100, pct(e))])
      .filter(([s, e]) => e > s)
      .map(([s, e]) => h('span', { class: 'wf-cp', style: { left: `${s}%`, width: `max(${e - s}%, 2px)` } }));
    // The duration label goes right of the bar, else left of it, else inside
    // it; a span outside the window gets an arrow at the edge it is beyond.
    const text = formatDuration(span.duration);
    let label;
    if (!inView) {
      label = h('span', {
        class: 'wf-label wf-label-offscreen',
        style: left > 100 ? { right: '0' } : { left: '0' },
        text: left > 100 ? `${text} ▸` : `◂ ${text}`,
      });
    } else {
      const place = to <= 80 ? 'right' : from >= 12 ? 'left' : 'inside';
      label = h('span', {
        class: `wf-label wf-label-${place}`,
        style: place === 'right' ? { left: `${to}%` } : { right: `${100 - (place === 'left' ? from : to)}%` },
        text,
      });
    }

    const row = h(
      'div',
      {
        class: classes.join(' '),
        id: `row-${span.spanID}`,
        role: 'treeitem',
        'aria-level': span.depth + 1,
        'aria-expanded': hasKids ? String(!isCollapsed) : undefined,
        'aria-selected': String(span.spanID === selected),
        'aria-label': `${span.serviceName} ${span.operationName}, ${formatDuration(span.duration)}${span.hasError ? ', error' : ''}${sections ? ', on the critical path' : ''}${logs ? `, ${logs} log record${logs === 1 ? '' : 's'}` : ''}`,
        dataset: {
          spanId: span.spanID,
          depth: String(span.depth),
          index: String(index),
          critical: sections ? 'true' : 'false',
        },
        style: { transform: `translateY(${index * ROW_HEIGHT}px)` },
      },
      h(
        'div',
        {
          class: 'wf-name',
          style: {
            paddingLeft: `${span.depth * INDENT + 4}px`,
            backgroundSize: `${span.depth * INDENT}px 100%`,
          },
        },
        hasKids
          ? h('button', {
              class: 'wf-toggle',
              type: 'button',
              tabindex: '-1',
              'aria-hidden': 'true',
              text: isCollapsed ? '▸' : '▾',
              onclick: (e) => {
                e.stopPropagation();
                opts.onToggle(span);
              },
            })
          : h('span', { class: 'wf-toggle-space' }),
        h('span', { class: 'wf-svc-bar', style: { background: color } }),
        h('span', { class: 'wf-svc', text: span.serviceName }),
        h('span', { class: 'wf-op', text: span.operationName }),
        span.hasError ? h('span', { class: 'wf-err', title: 'Error', text: '!' }) : null,
        logs ? h('span', { class: 'wf-logs', title: `${logs} log record${logs === 1 ? '' : 's'}`, text: String(logs) }) : null,
        hasKids && isCollapsed ? h('span', { class: 'wf-hidden-count', text: `+${countDescendants(span)}` }) : null,
      ),
      h('div', { class: 'wf-time' }, bar, cp, marks, logMarks, label),
    );
    row.addEventListener('click', () => {
      focus = index;
      opts.onSelect(span);
    });
    return row;
  }

  function render() {
    spacer.style.height = `${rows.length * ROW_HEIGHT}px`;
    const top = body.scrollTop;
    const height = body.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(rows.length - 1, Math.ceil((top + height) / ROW_HEIGHT) + OVERSCAN);
    for (const [i, row] of rendered) {
      if (i < first || i > last || row._version !== version || row._span !== rows[i]) {
        row.remove();
        rendered.delete(i);
      }
    }
    for (let i = first; i <= last; i++) {
      if (rendered.has(i)) continue;
      const row = rowElement(rows[i], i);
      row._version = version;
      row._span = rows[i];
      rendered.set(i, row);
      spacer.append(row);
    }
    const focused = rows[focus];
    if (focused) body.setAttribute('aria-activedescendant', `row-${focused.spanID}`);
    else body.removeAttribute('aria-activedescendant');
  }

  const onScroll = rafThrottle(render);
  body.addEventListener('scroll', onScroll, { passive: true });

  function scrollToIndex(i) {
    const y = i * ROW_HEIGHT;
    const height = body.clientHeight || 600;
    if (y < body.scrollTop) body.scrollTop = y;
    else if (y + ROW_HEIGHT > body.scrollTop + height) body.scrollTop = y + ROW_HEIGHT - height;
  }

  function moveFocus(i) {
    focus = Math.max(0, Math.min(rows.length - 1, i));
    version++;
    scrollToIndex(focus);
    render();
  }

  body.addEventListener('keydown', (e) => {
    if (!rows.length) return;
    const span = rows[focus];
    const page = Math.max(1, Math.floor((body.clientHeight || 600) / ROW_HEIGHT) - 1);
    switch (e.key) {
      case 'ArrowDown':
        moveFocus(focus + 1);
        break;
      case 'ArrowUp':
        moveFocus(focus - 1);
        break;
      case 'PageDown':
        moveFocus(focus + page);
        break;
      case 'PageUp':
        moveFocus(focus - page);
        break;
      case 'Home':
        moveFocus(0);
        break;
      case 'End':
        moveFocus(rows.length - 1);
        break;
      case 'ArrowLeft':
        if (span.children.length && !collapsed.has(span.spanID)) opts.onToggle(span);
        else if (span.parent) moveFocus(rows.indexOf(span.parent));
        break;
      case 'ArrowRight':
        if (span.children.length && collapsed.has(span.spanID)) opts.onToggle(span);
        else if (span.children.length) moveFocus(focus + 1);
        break;
      case 'Enter':
      case ' ':
        opts.onSelect(span);
        break;
      case 'Escape':
        opts.onSelect(null);
        break;
      default:
        return;
    }
    e.preventDefault();
  });

  const resize = new ResizeObserver(rafThrottle(render));
  resize.observe(body);

  return {
    el,
    body,
    /** New visible rows (after a collapse or expand); keeps focus on `keep` if given. */
    setRows(next, nextCollapsed, keep) {
      const focusedSpan = keep || rows[focus];
      rows = next;
      collapsed = nextCollapsed;
      const i = focusedSpan ? rows.indexOf(focusedSpan) : -1;
      focus = i >= 0 ? i : Math.min(focus, rows.length - 1);
      version++;
      render();
    },
    setView(v) {
      view = v;
      version++;
      drawRuler();
      render();
    },
    /** The spans' log records (Map span id → records), when they arrive: a count badge and ticks per row. */
    setSpanLogs(bySpan) {
      spanLogs = bySpan;
      version++;
      render();
    },
    setMatches(m) {
      matches = m;
      version++;
      render();
    },
    setSelected(id) {
      selected = id;
      const i = rows.findIndex((s) => s.spanID === id);
      if (i >= 0) focus = i;
      version++;
      render();
    },
    /** Scrolls a span into view (it must be visible). */
    reveal(span) {
      const i = rows.indexOf(span);
      if (i < 0) return;
      focus = i;
      const height = body.clientHeight || 600;
      const y = i * ROW_HEIGHT;
      if (y < body.scrollTop || y + ROW_HEIGHT > body.scrollTop + height) body.scrollTop = Math.max(0, y - height / 3);
      version++;
      render();
    },
    render,
    destroy() {
      resize.disconnect();
    },
  };
}

function countDescendants(span) {
  let n = 0;
  const stack = [...span.children];
  while (stack.length) {
    const s = stack.pop();
    n++;
    for (const c of s.children) stack.push(c);
  }
  return n;
}
