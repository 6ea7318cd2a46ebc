import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyCompletion, attributeName, completionContext, completions, errorRange, lex, offsetAt, parseErrorPosition, tempoSummaries, valueLiteral } from '../../web/js/traceql.js';

/** The context at the `‸` in `q`. */
function at(q) {
  const caret = q.indexOf('‸');
  return completionContext(q.replace('‸', ''), caret);
}

test('the lexer keeps positions and survives half-typed input', () => {
  const tokens = lex('{ span."http method" =~ "GE\\"T" && duration>1.5ms } >> { .x != 3 } | count() > 2');
  assert.deepEqual(
    tokens.map((t) => [t.type, t.text]),
    [
      ['punct', '{'], ['name', 'span."http method"'], ['op', '=~'], ['string', '"GE\\"T"'], ['op', '&&'], ['name', 'duration'], ['op', '>'], ['duration', '1.5ms'], ['punct', '}'],
      ['op', '>>'], ['punct', '{'], ['name', '.x'], ['op', '!='], ['number', '3'], ['punct', '}'], ['op', '|'], ['name', 'count'], ['punct', '('], ['punct', ')'], ['op', '>'], ['number', '2'],
    ],
  );
  assert.equal(tokens[3].value, 'GE"T');
  assert.equal(tokens[1].start, 2);
  assert.equal(tokens[1].end, 20);
  const open = lex('{ name = "unterminated');
  assert.deepEqual(open[3], { type: 'string', text: '"unterminated', start: 9, end: 22, value: 'unterminated', closed: false });
  assert.deepEqual(lex('{ # }').map((t) => t.type), ['punct', 'other', 'punct']);
});

test('error positions from Sightline and Tempo messages', () => {
  assert.deepEqual(parseErrorPosition('at 1:14: expected `}`, found end of query'), { line: 1, column: 14 });
  assert.deepEqual(parseErrorPosition('invalid TraceQL query: at 2:3: unknown intrinsic'), { line: 2, column: 3 });
  assert.deepEqual(parseErrorPosition('parse error at line 1, col 9: syntax error: unexpected IDENTIFIER'), { line: 1, column: 9 });
  assert.deepEqual(parseErrorPosition('3:1 something'), { line: 3, column: 1 });
  assert.equal(parseErrorPosition('invalid start: not a number'), null);
  assert.equal(parseErrorPosition('at 0:0: nonsense'), null);
});

test('line:column in characters become UTF-16 offsets', () => {
  const q = '{ name = "😀" &&\n  nope }';
  assert.equal(offsetAt(q, 1, 1), 0);
  assert.equal(offsetAt(q, 1, 12), 12, 'after the emoji: one character, two UTF-16 units');
  assert.equal(q.slice(offsetAt(q, 2, 3)), 'nope }');
  assert.equal(offsetAt(q, 1, 99), q.indexOf('\n'), 'a column past the line end stops at it');
  assert.equal(offsetAt(q, 9, 1), q.length, 'past the end: the end');
});

test('the error mark covers the offending token, one character, or the end', () => {
  const q = '{ .a = 1 && nope( }';
  const off = q.indexOf('nope');
  assert.deepEqual(errorRange(q, off), { start: off, end: off + 4 });
  assert.deepEqual(errorRange(q, off + 1), { start: off + 1, end: off + 2 }, 'inside a token: one character');
  assert.deepEqual(errorRange('{ .a = ', 7), { start: 7, end: 7 });
  assert.deepEqual(errorRange('{ "😀', 2), { start: 2, end: 5 }, 'an unterminated string to its end');
});

test('completion contexts', () => {
  const kinds = (q) => {
    const c = at(q);
    return [c.kind, c.prefix, c.attribute];
  };
  assert.deepEqual(kinds('‸'), ['spanset', '', null]);
  assert.deepEqual(kinds('{ ‸'), ['attribute', '', null]);
  assert.deepEqual(kinds('{ span.ht‸'), ['attribute', 'span.ht', null]);
  assert.deepEqual(kinds('{ span.http.method ‸'), ['operator', '', 'span.http.method']);
  assert.deepEqual(kinds('{ span.http.method = ‸'), ['value', '', 'span.http.method']);
  assert.deepEqual(kinds('{ resource.service.name = "fro‸'), ['value', 'fro', 'resource.service.name']);
  assert.deepEqual(kinds('{ status = err‸'), ['value', 'err', 'status']);
  assert.deepEqual(kinds('{ status = error ‸'), ['connective', '', null]);
  assert.deepEqual(kinds('{ duration > 1s ‸'), ['connective', '', null]);
  assert.deepEqual(kinds('{ .a = 1 && ‸'), ['attribute', '', null]);
  assert.deepEqual(kinds('{ (.a = 1 || ‸'), ['attribute', '', null]);
  assert.deepEqual(kinds('{ .a = 1 } ‸'), ['spanset-op', '', null]);
  assert.deepEqual(kinds('{ .a = 1 } >> ‸'), ['spanset', '', null]);
  assert.deepEqual(kinds('{ .a = 1 } > ‸'), ['spanset', '', null], '> between spansets is structural');
  assert.deepEqual(kinds('{ .a = 1 } | ‸'), ['pipeline', '', null]);
  assert.deepEqual(kinds('{ .a = 1 } | count() > ‸'), [null, '', null], 'a number comes after an aggregate');
  assert.deepEqual(kinds('{ .a = 1 } | count() > 2 ‸'), ['spanset-op', '', null]);
  assert.deepEqual(kinds('{ } | by(‸'), ['attribute', '', null]);
  assert.deepEqual(kinds('{ } | select(span.a, ‸'), ['attribute', '', null]);
  assert.deepEqual(kinds('{ } | avg(dur‸'), ['attribute', 'dur', null]);
});

test('a suggestion replaces the whole word at the caret', () => {
  const q = '{ span.ht‸tp.x = 1 }';
  const ctx = at(q);
  const text = q.replace('‸', '');
  assert.equal(text.slice(ctx.from, ctx.to), 'span.http.x');
  const done = applyCompletion(text, ctx, { insert: 'span.http.method ' });
  assert.deepEqual(done, { text: '{ span.http.method  = 1 }', caret: 19 });
  // In a string, up to and including its closing quote.
  const s = '{ name = "GE‸T /x" }';
  const sctx = at(s);
  assert.equal(s.replace('‸', '').slice(sctx.from, sctx.to), '"GET /x"');
  // The spanset snippet puts the caret inside the braces.
  assert.deepEqual(applyCompletion('', at('‸'), completions(at('‸'))[0]), { text: '{  }', caret: 2 });
});

const TAGS = {
  scopes: [
    { name: 'span', tags: ['http.method', 'http.status_code', 'has space'] },
    { name: 'resource', tags: ['service.name'] },
    { name: 'intrinsic', tags: ['duration', 'kind', 'name', 'status'] },
  ],
};

test('attribute suggestions come from the tags endpoint, filtered by what is typed', () => {
  const all = completions(at('{ ‸'), { tags: TAGS }).map((i) => i.label);
  assert.deepEqual(all.slice(0, 8), ['duration', 'kind', 'name', 'status', 'span.http.method', 'span.http.status_code', 'span."has space"', 'resource.service.name']);
  assert.ok(all.includes('span.') && all.includes('.'));
  assert.deepEqual(completions(at('{ span.http‸'), { tags: TAGS }).map((i) => i.label), ['span.http.method', 'span.http.status_code']);
  assert.deepEqual(completions(at('{ serv‸'), { tags: TAGS }).map((i) => i.label), ['resource.service.name'], 'substring matches follow prefix matches');
  assert.equal(completions(at('{ ‸'), { tags: TAGS })[0].insert, 'duration ');
  // Without the endpoint: the intrinsics still.
  assert.ok(completions(at('{ ‸')).some((i) => i.label === 'rootServiceName'));
});

test('value suggestions: strings quoted, keywords bare, typed text filters', () => {
  const values = [
    { type: 'string', value: 'frontend' },
    { type: 'string', value: 'checkout "v2"' },
    { type: 'int', value: '500' },
  ];
  assert.deepEqual(completions(at('{ resource.service.name = ‸'), { values }).map((i) => i.insert), ['"frontend" ', '"checkout \\"v2\\"" ', '500 ']);
  assert.deepEqual(completions(at('{ resource.service.name = "che‸'), { values }).map((i) => i.label), ['"checkout \\"v2\\""']);
  assert.deepEqual(completions(at('{ resource.service.name = fro‸'), { values }).map((i) => i.label), ['"frontend"']);
  assert.deepEqual(completions(at('{ status = ‸')).map((i) => i.label), ['error', 'ok', 'unset'], 'enum intrinsics without the endpoint');
  assert.equal(valueLiteral({ type: 'keyword', value: 'error' }), 'error');
  assert.equal(attributeName('resource', 'k8s.pod.name'), 'resource.k8s.pod.name');
  assert.equal(attributeName('none', 'x'), '.x');
});

test('operators, connectives, spanset operators and pipeline stages', () => {
  assert.deepEqual(completions(at('{ .a ‸')).map((i) => i.label), ['=', '!=', '=~', '!~', '>', '>=', '<', '<=']);
  assert.deepEqual(completions(at('{ .a = 1 ‸')).map((i) => i.label), ['&&', '||', '}']);
  assert.deepEqual(completions(at('{ } ‸')).map((i) => i.label), ['&&', '||', '>>', '>', '<<', '<', '~', '|']);
  assert.ok(completions(at('{ } | ‸')).some((i) => i.insert === 'count() > '));
  assert.deepEqual(completions(at('{ } | co‸')).map((i) => i.label), ['count() >', 'coalesce()']);
});

test("Tempo's search answer as result summaries", () => {
  const summaries = tempoSummaries({
    traces: [
      {
        traceID: '5b8efff798038103d269b633813fc60c',
        rootServiceName: 'frontend',
        rootTraceName: 'GET /checkout',
        startTimeUnixNano: '1765000000123456789',
        durationMs: 1200,
        spanSets: [
          {
            matched: 2,
            spans: [
              { spanID: '00000000000000e0', name: 'Charge', startTimeUnixNano: '1765000000163456789', durationNanos: '600000000', attributes: [{ key: 'service.name', value: { stringValue: 'payments' } }] },
              { spanID: '00000000000000f0', startTimeUnixNano: '1765000000223456789', durationNanos: '300000000' },
            ],
            attributes: [],
          },
        ],
        serviceStats: { frontend: { spanCount: 3 }, payments: { spanCount: 2, errorCount: 1 } },
      },
      { traceID: 'abc', rootServiceName: '<root span not yet received>', startTimeUnixNano: '5000' },
    ],
    metrics: { inspectedTraces: 2 },
  });
  assert.deepEqual(summaries[0], {
    traceID: '5b8efff798038103d269b633813fc60c',
    rootService: 'frontend',
    rootOperation: 'GET /checkout',
    startTime: 1765000000123456,
    duration: 1_200_000,
    spanCount: 5,
    errorCount: 1,
    services: [{ name: 'frontend', count: 3 }, { name: 'payments', count: 2 }],
    matchedCount: 2,
    matched: [
      { spanID: '00000000000000e0', name: 'Charge', service: 'payments', startTime: 1765000000163456, duration: 600_000, attributes: { 'service.name': 'payments' } },
      { spanID: '00000000000000f0', name: '', service: null, startTime: 1765000000223456, duration: 300_000, attributes: {} },
    ],
  });
  assert.equal(summaries[1].duration, 0, 'Tempo leaves out a zero durationMs');
  assert.equal(summaries[1].startTime, 5);
  assert.deepEqual(tempoSummaries({}), []);
});
