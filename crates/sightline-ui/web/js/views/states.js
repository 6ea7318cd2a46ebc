// Empty, loading and error states shared by the pages.

import { h } from '../dom.js';

export function loading(what = 'Loading…') {
  return h('div', { class: 'state state-loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), what);
}

/** An error box; `retry` adds a button. */
export function errorState(err, retry) {
  const unreachable = err && err.unreachable;
  return h(
    'div',
    { class: 'state state-error', role: 'alert', dataset: { state: unreachable ? 'unreachable' : 'error' } },
    h('h2', { text: unreachable ? 'The Sightline API is unreachable' : 'Something went wrong' }),
    h('p', { text: err ? err.message : 'Unknown error' }),
    retry && h('button', { class: 'btn', type: 'button', onclick: retry, text: 'Retry' }),
  );
}

/** No data yet: how to send some. */
export function noDataState(endpoints, onRefresh) {
  const http = `http://${endpoints.http}`;
  return h(
    'section',
    { class: 'state state-empty', dataset: { state: 'empty' } },
    h('h1', { text: 'No traces yet' }),
    h('p', { text: 'Sightline has not received any spans. Point an OpenTelemetry SDK or Collector at its OTLP endpoints:' }),
    h(
      'dl',
      { class: 'endpoints' },
      h('dt', { text: 'OTLP/HTTP' }),
      h('dd', h('code', { class: 'endpoint-http', text: http })),
      h('dt', { text: 'OTLP/gRPC' }),
      h('dd', h('code', { class: 'endpoint-grpc', text: endpoints.grpc })),
    ),
    h('p', { text: 'For example, before starting your service:' }),
    h(
      'pre',
      { class: 'snippet' },
      `export OTEL_EXPORTER_OTLP_ENDPOINT=${http}\nexport OTEL_SERVICE_NAME=my-service`,
    ),
    h('p', { class: 'muted', text: 'This page checks for data every few seconds.' }),
    onRefresh && h('button', { class: 'btn', type: 'button', onclick: onRefresh, text: 'Check now' }),
  );
}
