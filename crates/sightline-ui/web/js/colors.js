// Service colours. Services are numbered in name order of /api/services,
// so a service keeps its colour on every page; a service not in that list
// gets the next free one. No red: red means error.

const PALETTE = [
  '#3b82f6', '#f59e0b', '#10b981', '#8b5cf6', '#06b6d4', '#ec4899', '#84cc16', '#6366f1',
  '#14b8a6', '#d97706', '#a855f7', '#0ea5e9', '#65a30d', '#d946ef', '#0891b2', '#64748b',
];

const assigned = new Map();

/** Registers the known services (any order); colours go by sorted name. */
export function setServices(names) {
  for (const name of [...names].sort()) serviceColor(name);
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
