// The span detail pane: what the span is, its timing (duration, self time,
// time on the critical path), status, attributes, resource, events with
// their attributes, its log records, and links.

import { h } from '../dom.js';
import { serviceColor } from '../colors.js';
import { formatDuration, formatTimestamp } from '../format.js';
import { sectionsTotal } from '../trace.js';
import { logRecordList } from './logrecords.js';

function value(tag) {
  const v = tag.value;
  const cls = `kv-value kv-${tag.type || typeof v}`;
  return h('td', { class: cls, text: typeof v === 'string' ? v : JSON.stringify(v) });
}

function kvTable(tags, label) {
  if (!tags.length) return h('p', { class: 'muted', text: 'None' });
  return h(
    'table',
    { class: 'kv', 'aria-label': label },
    h('tbody', {}, tags.map((t) => h('tr', { dataset: { key: t.key } }, h('th', { scope: 'row', text: t.key }), value(t)))),
  );
}

function section(title, count, body, open = true) {
  return h('details', { class: 'detail-section', open }, h('summary', {}, title, count !== null ? h('span', { class: 'count', text: String(count) }) : null), body);
}

/**
 * opts: {trace, critical, onSelect(span), onClose(), logs: the span's log
 * records (oldest first), 'loading' until they arrive, or null when the
 * trace's logs could not be read}
 */
export function spanDetail(span, { trace, critical, onSelect, onClose, logs = null }) {
  const offset = span.startTime - trace.startTime;
  const onPath = sectionsTotal(critical.get(span.spanID));
  const links = span.references.filter((r, i) => !(i === 0 && span.parent && r.spanID === span.parent.spanID));
  const resource = [{ key: 'service.name', type: 'string', value: span.serviceName }, ...(span.process.tags || [])];
  const field = (name, ...content) => [h('dt', { text: name }), h('dd', { dataset: { field: name.toLowerCase().replace(/\s+/g, '-') } }, ...content)];
  const statusText = span.statusCode === 'UNSET' ? 'unset' : span.statusCode.toLowerCase();

  return h(
    'aside',
    { class: 'detail', 'aria-label': 'Span details', dataset: { spanId: span.spanID } },
    h(
      'div',
      { class: 'detail-head' },
      h('div', {}, h('h2', { class: 'detail-title', text: span.operationName }), h('div', { class: 'detail-service' }, h('span', { class: 'svc-dot', style: { background: serviceColor(span.serviceName) } }), span.serviceName)),
      h('button', { class: 'icon-btn', type: 'button', 'aria-label': 'Close span details', title: 'Close (Esc)', text: '✕', onclick: onClose }),
    ),
    h(
      'dl',
      { class: 'detail-fields' },
      field('Duration', formatDuration(span.duration)),
      field('Self time', formatDuration(span.selfTime)),
      field('Critical path', onPath ? formatDuration(onPath) : 'not on it'),
      field('Start', `+${formatDuration(offset)}`, h('span', { class: 'muted', text: ` · ${formatTimestamp(span.startTime)}` })),
      field('Status', h('span', { class: `status status-${statusText}`, text: statusText }), span.statusMessage ? h('span', { class: 'status-message', text: ` ${span.statusMessage}` }) : null),
      span.kind ? field('Kind', span.kind) : null,
      field('Span ID', h('code', { text: span.spanID })),
      span.parent
        ? field('Parent', h('a', { href: `?span=${span.parent.spanID}`, onclick: (e) => (e.preventDefault(), onSelect(span.parent)) }, `${span.parent.serviceName}: ${span.parent.operationName}`), span.parentRefType === 'FOLLOWS_FROM' ? h('span', { class: 'muted', text: ' (follows from)' }) : null)
        : null,
      span.scopeName ? field('Scope', `${span.scopeName}${span.scopeVersion ? ` ${span.scopeVersion}` : ''}`) : null,
    ),
    section('Attributes', span.attributes.length, kvTable(span.attributes, 'Span attributes')),
    section('Resource', resource.length, kvTable(resource, 'Resource attributes')),
    section(
      'Events',
      span.logs.length,
      span.logs.length
        ? h(
            'ol',
            { class: 'events' },
            span.logs.map((log) => {
              const fields = log.fields || [];
              const name = fields.find((f) => f.key === 'event');
              return h(
                'li',
                { class: 'event' },
                h('div', { class: 'event-head' }, h('span', { class: 'event-time', text: `+${formatDuration(log.timestamp - trace.startTime)}` }), h('strong', { text: name ? String(name.value) : '(unnamed event)' })),
                kvTable(fields.filter((f) => f !== name), 'Event attributes'),
              );
            }),
          )
        : h('p', { class: 'muted', text: 'None' }),
    ),
    logs === 'loading'
      ? section('Logs', null, h('p', { class: 'muted', text: 'Loading…' }))
      : logs
        ? section(
            'Logs',
            logs.length,
            logs.length ? logRecordList(logs, { traceStart: trace.startTime, openAttributes: true }) : h('p', { class: 'muted', text: 'None' }),
          )
        : null,
    section(
      'Links',
      links.length,
      links.length
        ? h(
            'ul',
            { class: 'links' },
            links.map((r) => {
              const local = r.traceID === span.traceID && trace.byId.get(r.spanID);
              return h(
                'li',
                { class: 'link' },
                h('span', { class: 'badge', text: r.refType === 'FOLLOWS_FROM' ? 'follows from' : 'child of' }),
                ' ',
                local
                  ? h('a', { href: `?span=${r.spanID}`, onclick: (e) => (e.preventDefault(), onSelect(local)) }, `${local.serviceName}: ${local.operationName}`)
                  : h('a', { href: `/trace/${r.traceID}?span=${r.spanID}` }, h('code', { text: `${r.traceID.slice(0, 12)}…/${r.spanID}` })),
              );
            }),
          )
        : h('p', { class: 'muted', text: 'None' }),
    ),
    span.tags.some((t) => t.key === 'w3c.tracestate')
      ? section('Trace state', null, h('code', { text: String(span.tags.find((t) => t.key === 'w3c.tracestate').value) }), false)
      : null,
  );
}
