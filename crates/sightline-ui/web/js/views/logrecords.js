// A list of log records: time, severity, service, body, and the record's
// attributes (and resource) folded under it. Shared by the span detail, the
// trace's Logs tab and the Logs page; each says how a record's time and
// links are shown.

import { h } from '../dom.js';
import { serviceColor } from '../colors.js';
import { formatDuration, formatTimestamp } from '../format.js';
import { attributeRows, bodyText, recordLevel, recordTime, severityLabel } from '../logs.js';

function kvTable(rows, label) {
  return h(
    'table',
    { class: 'kv', 'aria-label': label },
    h('tbody', {}, rows.map((r) => h('tr', { dataset: { key: r.key } }, h('th', { scope: 'row', text: r.key }), h('td', { class: 'kv-value', text: r.value })))),
  );
}

/**
 * opts: {
 *   traceStart (µs): times as offsets from it (the trace views), else absolute;
 *   showService: a column with the record's service;
 *   spanLink(record) → element|null: where the record's span is named (trace views);
 *   traceLink: link each record with a trace id to its trace (the Logs page);
 *   withResource: list the resource attributes too;
 *   openAttributes: show the attributes unfolded (the span detail);
 * }
 */
export function logRecordList(records, opts = {}) {
  return h('ol', { class: 'log-list' }, records.map((r) => logRecord(r, opts)));
}

export function logRecord(record, { traceStart, showService, spanLink, traceLink, withResource, openAttributes } = {}) {
  const level = recordLevel(record);
  const t = recordTime(record);
  const attrs = attributeRows(record.attributes);
  const resource = withResource ? attributeRows(record.resource) : [];
  const time =
    traceStart !== undefined
      ? h('span', { class: 'log-time', title: formatTimestamp(t), text: `+${formatDuration(t - traceStart)}` })
      : h('span', { class: 'log-time', text: formatTimestamp(t) });
  const trace =
    traceLink && record.traceID
      ? h('a', { class: 'log-trace-link', href: `/trace/${record.traceID}${record.spanID ? `?span=${record.spanID}` : ''}`, title: 'Open the trace' }, h('code', { text: record.traceID.slice(0, 12) }), ' ↗')
      : null;
  return h(
    'li',
    { class: `log-record log-${level}`, dataset: { level, spanId: record.spanID || '', traceId: record.traceID || '' } },
    h(
      'div',
      { class: 'log-head' },
      time,
      h('span', { class: `log-sev sev-${level}`, text: severityLabel(record) }),
      showService ? h('span', { class: 'log-service' }, h('span', { class: 'svc-dot', style: { background: serviceColor(record.service || '') } }), record.service || '–') : null,
      spanLink ? spanLink(record) : null,
      trace,
    ),
    h('div', { class: 'log-body', text: bodyText(record.body) }),
    attrs.length || resource.length
      ? h(
          'details',
          { class: 'log-attrs', open: Boolean(openAttributes) },
          h('summary', {
            text: [
              attrs.length ? `${attrs.length} attribute${attrs.length === 1 ? '' : 's'}` : null,
              resource.length ? `${resource.length} resource attribute${resource.length === 1 ? '' : 's'}` : null,
            ]
              .filter(Boolean)
              .join(', '),
          }),
          attrs.length ? kvTable(attrs, 'Log attributes') : null,
          resource.length ? kvTable(resource, 'Log resource') : null,
        )
      : null,
  );
}
