// Service colours. Services are numbered in name order of /api/services,
// so a service keeps its colour on every page; a service not in that list
// gets the next free one. No red: red means error.

const PALETTE = [
  '#3b82f6', '#f59e0b', '#10b981', '#8b5cf6', '#06b6d4', '#ec4899', '#84cc16', '#6366f1',
  '#14b8a6', '#d97706', '#a855f7', '#0ea5e9', '#65a30d', '#d946ef', '#0891b2', '#64748b',
];

const assigned = new Map();

/** The known services (any order): colours are reassigned by sorted name. */
export function setServices(names) {
  assigned.clear();
  for (const name of [...names].sort()) serviceColor(name);
}

let ready = Promise.resolve();

/** Assigns colours once `names` (a promise of the service list) arrives; failures keep lazy colours. */
export function loadServices(names) {
  ready = names.then(setServices, () => {});
  return ready;
}

/** Resolves once the service list requested by loadServices is in. */
export function colorsReady() {
  return ready;
}

/** The colour of a service. */
export function serviceColor(name) {
  let c = assigned.get(name);
  if (!c) {
    c = PALETTE[assigned.size % PALETTE.length];
    assigned.set(name, c);
  }
  return c;
}
