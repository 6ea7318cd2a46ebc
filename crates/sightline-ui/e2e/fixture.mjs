// The known multi-service trace the e2e tests ingest, as OTLP/JSON, and the
// spans' ids. Times are offsets in ms from `base` (ns since the epoch).
//
//   A frontend  GET /checkout      [0, 1000]   server, http.status_code=500
//   ├ B frontend  POST /api/order  [10, 900]   client
//   │ └ C checkout PlaceOrder      [20, 880]   server
//   │   ├ D inventory SELECT stock [30, 230]   client
//   │   ├ E payments Charge        [40, 640]   server, ERROR "card declined", event "exception"
//   │   │ └ F payments fraud-check [100, 400]  internal
//   │   ├ G checkout write order   [650, 900]  internal (overflows C by 20 ms)
//   │   ├ J checkout cache set     [660, 700]  client
//   │   └ I email send receipt     [700, 1200] consumer, FOLLOWS_FROM C, plus a link to another trace
//   └ H frontend  render           [920, 980]  internal
//
// Critical path (by hand, see unit/trace.test.mjs): A B C E F G H; not D, J, I.

export const TRACE_ID = '5b8efff798038103d269b633813fc60c';
export const OTHER_TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
export const HEALTH_TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
export const id = (letter) => `00000000000000${letter.charCodeAt(0).toString(16)}`.slice(-16).replace(/^0{2}/, 'ab');

const str = (key, v) => ({ key, value: { stringValue: v } });
const int = (key, v) => ({ key, value: { intValue: String(v) } });
const dbl = (key, v) => ({ key, value: { doubleValue: v } });

const KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };

function span(base, traceId, letter, name, kind, start, end, parent, extra = {}) {
  const ns = (ms) => String(base + BigInt(Math.round(ms * 1e6)));
  return {
    traceId,
    spanId: id(letter),
    parentSpanId: parent ? id(parent) : '',
    name,
    kind: KIND[kind],
    startTimeUnixNano: ns(start),
    endTimeUnixNano: ns(end),
    attributes: extra.attributes || [],
    events: (extra.events || []).map((e) => ({ timeUnixNano: ns(e.at), name: e.name, attributes: e.attributes })),
    links: extra.links || [],
    status: extra.status || {},
  };
}

function resource(service, attrs = []) {
  return { attributes: [str('service.name', service), ...attrs] };
}

/** OTLP/JSON export request with the shop trace, starting at `base` ns. */
export function shopTrace(base) {
  const s = (...args) => span(base, TRACE_ID, ...args);
  const scope = (name, spans) => ({ scope: { name, version: '1.0.0' }, spans });
  return {
    resourceSpans: [
      {
        resource: resource('frontend', [str('service.version', '1.4.2'), str('host.name', 'web-1')]),
        scopeSpans: [
          scope('shop.frontend', [
            s('A', 'GET /checkout', 'server', 0, 1000, null, {
              attributes: [str('http.method', 'GET'), str('http.route', '/checkout'), int('http.status_code', 500)],
            }),
            s('B', 'POST /api/order', 'client', 10, 900, 'A', { attributes: [str('http.method', 'POST')] }),
            s('H', 'render', 'internal', 920, 980, 'A'),
          ]),
        ],
      },
      {
        resource: resource('checkout', [str('host.name', 'api-2')]),
        scopeSpans: [
          scope('shop.checkout', [
            s('C', 'PlaceOrder', 'server', 20, 880, 'B', { attributes: [str('order.id', 'ord-7')] }),
            s('G', 'write order', 'internal', 650, 900, 'C'),
            s('J', 'cache set', 'client', 660, 700, 'C'),
          ]),
        ],
      },
      {
        resource: resource('inventory'),
        scopeSpans: [scope('shop.inventory', [s('D', 'SELECT stock', 'client', 30, 230, 'C', { attributes: [str('db.system', 'postgresql')] })])],
      },
      {
        resource: resource('payments', [str('host.name', 'pay-1')]),
        scopeSpans: [
          scope('shop.payments', [
            s('E', 'Charge', 'server', 40, 640, 'C', {
              attributes: [dbl('payment.amount', 42.5), str('payment.currency', 'EUR')],
              status: { code: 2, message: 'card declined' },
              events: [{ at: 300, name: 'exception', attributes: [str('exception.type', 'CardDeclined'), str('exception.message', 'insufficient funds')] }],
            }),
            s('F', 'fraud-check', 'internal', 100, 400, 'E'),
          ]),
        ],
      },
      {
        resource: resource('email'),
        scopeSpans: [
          scope('shop.email', [
            s('I', 'send receipt', 'consumer', 700, 1200, 'C', {
              links: [
                { traceId: TRACE_ID, spanId: id('C'), attributes: [str('opentracing.ref_type', 'follows_from')] },
                { traceId: OTHER_TRACE_ID, spanId: 'cccccccccccccccc', attributes: [] },
              ],
            }),
          ]),
        ],
      },
    ],
  };
}

/** A one-span frontend trace, so searches have something else to find. */
export function healthTrace(base) {
  return {
    resourceSpans: [
      {
        resource: resource('frontend', [str('service.version', '1.4.2'), str('host.name', 'web-1')]),
        scopeSpans: [{ scope: { name: 'shop.frontend' }, spans: [span(base, HEALTH_TRACE_ID, 'Z', 'GET /health', 'server', 0, 5, null)] }],
      },
    ],
  };
}

/**
 * A synthetic trace of `count` spans across 8 services: a wide, deep tree
 * (each span's parent is a random earlier span), for the virtualisation
 * test and the render benchmark.
 */
export function bigTrace(base, count, traceId = 'b16b16b16b16b16b16b16b16b16b16b1') {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const services = ['gateway', 'auth', 'catalog', 'cart', 'pricing', 'search', 'db', 'cache'];
  const spans = [];
  const ns = (ms) => String(base + BigInt(Math.round(ms * 1e6)));
  const spanId = (i) => (i + 1).toString(16).padStart(16, '0');
  const times = [];
  for (let i = 0; i < count; i++) {
    let start = 0;
    let end = 10_000;
    let parent = '';
    if (i > 0) {
      const p = Math.floor(rand() * i * 0.9 + i * 0.1 * rand()) % i;
      const [ps, pe] = times[p];
      start = ps + rand() * (pe - ps) * 0.5;
      end = start + Math.max(0.01, rand() * (pe - start));
      parent = spanId(p);
    }
    times.push([start, end]);
    spans.push({
      svc: services[i % services.length],
      span: {
        traceId,
        spanId: spanId(i),
        parentSpanId: parent,
        name: `op-${i % 37}`,
        kind: 1 + (i % 3),
        startTimeUnixNano: ns(start),
        endTimeUnixNano: ns(end),
        attributes: [int('index', i)],
        status: i % 97 === 0 ? { code: 2, message: 'boom' } : {},
      },
    });
  }
  return {
    resourceSpans: services.map((svc) => ({
      resource: resource(svc),
      scopeSpans: [{ scope: { name: 'bench' }, spans: spans.filter((s) => s.svc === svc).map((s) => s.span) }],
    })),
  };
}

/**
 * Log records for the shop trace and beside it, as an OTLP/JSON logs export
 * request; times are offsets in ms from `base` (ns), the shop trace's start:
 *
 *   +25   checkout  INFO   "placing order ord-7"       span C
 *   +300  payments  ERROR  "card declined by issuer"   span E, card.brand=visa, payment.attempt=2
 *   +500  frontend  DEBUG  "cache warm"                no trace
 *   +990  frontend  WARN   "checkout answered 500"     the trace, no span
 */
export function shopLogs(base) {
  const ns = (ms) => String(base + BigInt(Math.round(ms * 1e6)));
  const rec = (at, severityNumber, severityText, body, extra = {}) => ({
    timeUnixNano: ns(at),
    observedTimeUnixNano: ns(at + 1),
    severityNumber,
    severityText,
    body: { stringValue: body },
    attributes: extra.attributes || [],
    traceId: extra.trace ? TRACE_ID : '',
    spanId: extra.span ? id(extra.span) : '',
  });
  const logs = (service, records) => ({ resource: resource(service), scopeLogs: [{ scope: { name: `shop.${service}` }, logRecords: records }] });
  return {
    resourceLogs: [
      logs('checkout', [rec(25, 9, 'INFO', 'placing order ord-7', { trace: true, span: 'C', attributes: [str('order.id', 'ord-7')] })]),
      logs('payments', [rec(300, 17, 'ERROR', 'card declined by issuer', { trace: true, span: 'E', attributes: [str('card.brand', 'visa'), int('payment.attempt', 2)] })]),
      logs('frontend', [rec(500, 5, 'DEBUG', 'cache warm'), rec(990, 13, 'WARN', 'checkout answered 500', { trace: true })]),
    ],
  };
}

/** `count` INFO records of `traceId` (no span), 1 ms apart from `base` ns: more than one page of a trace's logs. */
export function manyLogs(base, traceId, count) {
  const logRecords = Array.from({ length: count }, (_, i) => ({
    timeUnixNano: String(base + BigInt(i) * 1_000_000n),
    severityNumber: 9,
    body: { stringValue: `tick ${i}` },
    traceId,
  }));
  return { resourceLogs: [{ resource: resource('frontend'), scopeLogs: [{ scope: { name: 'shop.frontend' }, logRecords }] }] };
}
