// The trace statistics table: by service, then operation within it — span
// count, errors, total/avg/min/max duration, total/avg self time and the
// share of the trace's duration spent in that self time. Click a column
// header to sort.

import { h } from '../dom.js';
import { serviceColor } from '../colors.js';
import { formatDuration } from '../format.js';
import { traceStats } from '../trace.js';

const COLUMNS = [
  ['name', 'Service / operation', null],
  ['count', 'Spans', (v) => String(v)],
  ['errors', 'Errors', (v) => String(v)],
  ['total', 'Total', formatDuration],
  ['avg', 'Avg', formatDuration],
  ['min', 'Min', formatDuration],
  ['max', 'Max', formatDuration],
  ['selfTotal', 'Self total', formatDuration],
  ['selfAvg', 'Self avg', formatDuration],
  ['selfShare', 'Self % of trace', (v) => `${v.toFixed(1)}%`],
];

export function statsView(trace) {
  const stats = traceStats(trace);
  const share = (row) => (trace.duration ? (row.selfTotal / trace.duration) * 100 : 0);
  for (const svc of stats.services) {
    svc.selfShare = share(svc);
    for (const op of svc.operations) op.selfShare = share(op);
  }
  let sortKey = 'total';
  let desc = true;
  const el = h('div', { class: 'stats' });

  const cells = (row, name) =>
    COLUMNS.map(([key, , fmt]) => (key === 'name' ? name : h('td', { class: 'num', dataset: { col: key }, text: fmt(key === 'selfShare' ? row.selfShare : row[key]) })));

  function draw() {
    const cmp = (a, b) => {
      const va = sortKey === 'name' ? a.service || a.operation : a[sortKey];
      const vb = sortKey === 'name' ? b.service || b.operation : b[sortKey];
      const r = typeof va === 'string' ? va.localeCompare(vb) : va - vb;
      return desc ? -r : r;
    };
    const opName = (op) => op.operation;
    const rows = [];
    for (const svc of [...stats.services].sort((a, b) => cmp({ ...a, operation: undefined }, { ...b, operation: undefined }))) {
      rows.push(
        h(
          'tr',
          { class: 'stats-service', dataset: { service: svc.service } },
          cells(svc, h('th', { scope: 'row' }, h('span', { class: 'svc-dot', style: { background: serviceColor(svc.service) } }), svc.service)),
        ),
      );
      for (const op of [...svc.operations].sort((a, b) => cmp({ ...a, service: undefined, operation: opName(a) }, { ...b, service: undefined, operation: opName(b) }))) {
        rows.push(h('tr', { class: 'stats-operation', dataset: { service: svc.service, operation: op.operation } }, cells(op, h('th', { scope: 'row', class: 'op-name', text: op.operation }))));
      }
    }
    const header = h(
      'tr',
      {},
      COLUMNS.map(([key, label]) =>
        h(
          'th',
          { scope: 'col', class: key === 'name' ? '' : 'num', 'aria-sort': key === sortKey ? (desc ? 'descending' : 'ascending') : 'none' },
          h('button', {
            type: 'button',
            class: 'sort-btn',
            text: `${label}${key === sortKey ? (desc ? ' ▼' : ' ▲') : ''}`,
            onclick: () => {
              if (sortKey === key) desc = !desc;
              else {
                sortKey = key;
                desc = key !== 'name';
              }
              draw();
            },
          }),
        ),
      ),
    );
    el.replaceChildren(
      h(
        'table',
        { class: 'stats-table' },
        h('caption', { text: `Statistics of ${trace.spans.length} spans by service and operation. Self time excludes the time covered by child spans.` }),
        h('thead', {}, header),
        h('tbody', {}, rows),
        h('tfoot', {}, h('tr', { class: 'stats-all', dataset: { service: '*' } }, cells({ ...stats.all, selfShare: share(stats.all) }, h('th', { scope: 'row', text: 'All spans' })))),
      ),
    );
  }
  draw();
  return el;
}
