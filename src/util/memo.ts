/**
 * A pure one-argument function with its answers remembered, for the few values a busy gateway
 * sees over and over (a client's address, parsed on accept, on every counter key and on every
 * rule or network check of its sessions). At most `max` answers are kept; past that the memory
 * starts over, so a flood of distinct values costs what no memo would and holds nothing more.
 * The answers are shared: callers must treat them as read-only.
 */
export function memoize<A, R>(fn: (a: A) => R, max = 1024): (a: A) => R {
  if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`memo size must be a positive integer, got ${max}`);
  let seen = new Map<A, R>();
  return (a: A): R => {
    const hit = seen.get(a);
    if (hit !== undefined || seen.has(a)) return hit as R;
    const r = fn(a);
    if (seen.size >= max) seen = new Map();
    seen.set(a, r);
    return r;
  };
}
