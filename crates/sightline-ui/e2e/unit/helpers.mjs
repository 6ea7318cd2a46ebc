// Builds Jaeger-API-shaped traces for the unit tests from a compact table.

/**
 * rows: [id, service, operation, start, end, parent?, refType?, extra?]
 * (times in µs; refType defaults to CHILD_OF).
 */
export function jaegerTrace(rows, traceID = 't1') {
  const services = [...new Set(rows.map((r) => r[1]))];
  const processes = Object.fromEntries(services.map((s, i) => [`p${i + 1}`, { serviceName: s, tags: [] }]));
  const pid = (s) => `p${services.indexOf(s) + 1}`;
  return {
    traceID,
    processes,
    spans: rows.map(([id, service, op, start, end, parent, refType, extra]) => ({
      traceID,
      spanID: id,
      operationName: op,
      references: parent ? [{ refType: refType || 'CHILD_OF', traceID, spanID: parent }] : [],
      startTime: start,
      duration: end - start,
      tags: extra?.tags || [],
      logs: extra?.logs || [],
      processID: pid(service),
    })),
  };
}

/** Critical path as {spanID: [[s,e],…]} for easy deepEqual. */
export function cpObject(map) {
  return Object.fromEntries([...map].sort(([a], [b]) => a.localeCompare(b)));
}
