/**
 * The counters of the `memory` store (one process, or the cluster primary's): fixed windows
 * that start at a key's first count, and timed flags, answered synchronously.
 *
 * Same semantics as rate-limiter-flexible's memory limiter, which this replaced for the memory
 * store (the Redis store still uses it, and its memory limiter as the insurance): a count in a
 * live window grows without moving the window's end; one in an expired window starts a new one;
 * expiry is judged from the clock at every read. What differs is the cost: that limiter wraps
 * every call in promises and result objects and arms a timer per key per window, thirteen calls
 * per login; here a login's operations run as one synchronous batch. Expired entries are
 * dropped as they are read and by a sweep that visits every entry about once a minute, a slice
 * at a time, and that runs only while entries exist.
 */

export type CounterOp =
  | { readonly op: 'consume'; readonly key: string; readonly windowMs: number; readonly points: number }
  | { readonly op: 'refund'; readonly key: string; readonly windowMs: number; readonly points: number }
  | { readonly op: 'setCount'; readonly key: string; readonly windowMs: number; readonly points: number }
  | { readonly op: 'get'; readonly key: string; readonly windowMs: number }
  | { readonly op: 'block'; readonly key: string; readonly ms: number }
  | { readonly op: 'blockedFor'; readonly key: string }
  | { readonly op: 'reset'; readonly key: string };

function checkMs(what: string, ms: number): void {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) throw new RangeError(`${what} must be a positive number of ms, got ${ms}`);
}

function checkPoints(points: number, min: 0 | 1): void {
  if (!Number.isInteger(points) || points < min) {
    throw new RangeError(min === 1 ? `points must be a positive integer, got ${points}` : `points must be an integer >= 0, got ${points}`);
  }
}

/** Throws RangeError (TypeError for an unknown operation) for an operation no store may run. */
export function checkOp(op: CounterOp): void {
  if (op === null || typeof op !== 'object' || typeof op.key !== 'string') throw new TypeError('a store operation needs a key');
  switch (op.op) {
    case 'consume':
    case 'refund':
      checkMs('windowMs', op.windowMs);
      checkPoints(op.points, 1);
      return;
    case 'setCount':
      checkMs('windowMs', op.windowMs);
      checkPoints(op.points, 0);
      return;
    case 'block':
      checkMs('block ms', op.ms);
      return;
    case 'get':
    case 'blockedFor':
    case 'reset':
      return;
    default:
      throw new TypeError(`unknown store operation ${String((op as { op: unknown }).op)}`);
  }
}

interface Window {
  n: number;
  /** Epoch ms at which the window ends. */
  until: number;
}

/** The sweep's period; each visit covers a sixth of the entries, so all of them within a minute. */
const SWEEP_EVERY_MS = 10_000;
const SWEEP_SLICES = 6;
const SWEEP_MIN_VISITS = 256;

export class MemoryCounters {
  readonly #counts = new Map<string, Window>();
  /** key → epoch ms at which the flag ends */
  readonly #blocks = new Map<string, number>();
  #sweeper: ReturnType<typeof setInterval> | null = null;
  #countCursor: Iterator<[string, Window]> | null = null;
  #blockCursor: Iterator<[string, number]> | null = null;

  /** Runs one checked operation: the count for consume and get, the ms left for blockedFor, else 0. */
  run(op: CounterOp): number {
    checkOp(op);
    return this.#apply(op);
  }

  /** Every operation checked first, then all run in order with nothing in between. */
  batch(ops: readonly CounterOp[]): number[] {
    for (const op of ops) checkOp(op);
    const out = new Array<number>(ops.length);
    for (let i = 0; i < ops.length; i++) out[i] = this.#apply(ops[i]!);
    return out;
  }

  #apply(op: CounterOp): number {
    switch (op.op) {
      case 'consume':
        return this.consume(op.key, op.windowMs, op.points);
      case 'refund':
        this.refund(op.key, op.points);
        return 0;
      case 'setCount':
        this.setCount(op.key, op.windowMs, op.points);
        return 0;
      case 'get':
        return this.get(op.key);
      case 'block':
        this.block(op.key, op.ms);
        return 0;
      case 'blockedFor':
        return this.blockedFor(op.key);
      case 'reset':
        this.reset(op.key);
        return 0;
    }
  }

  consume(key: string, windowMs: number, points: number): number {
    const now = Date.now();
    const w = this.#counts.get(key);
    if (w !== undefined && w.until > now) return (w.n += points);
    this.#counts.set(key, { n: points, until: now + windowMs });
    this.#armSweep();
    return points;
  }

  /** Never below zero, and never a new window: an expired key has nothing to give back. */
  refund(key: string, points: number): void {
    const w = this.#live(key);
    if (w !== undefined) w.n = Math.max(0, w.n - points);
  }

  setCount(key: string, windowMs: number, points: number): void {
    this.#counts.set(key, { n: points, until: Date.now() + windowMs });
    this.#armSweep();
  }

  get(key: string): number {
    return this.#live(key)?.n ?? 0;
  }

  block(key: string, ms: number): void {
    this.#blocks.set(key, Date.now() + ms);
    this.#armSweep();
  }

  blockedFor(key: string): number {
    const until = this.#blocks.get(key);
    if (until === undefined) return 0;
    const left = until - Date.now();
    if (left > 0) return left;
    this.#blocks.delete(key);
    return 0;
  }

  reset(key: string): void {
    this.#counts.delete(key);
    this.#blocks.delete(key);
  }

  /** Entries held, live or not yet swept (for tests and bounds). */
  get size(): number {
    return this.#counts.size + this.#blocks.size;
  }

  close(): void {
    if (this.#sweeper !== null) clearInterval(this.#sweeper);
    this.#sweeper = null;
  }

  #live(key: string): Window | undefined {
    const w = this.#counts.get(key);
    if (w === undefined) return undefined;
    if (w.until > Date.now()) return w;
    this.#counts.delete(key);
    return undefined;
  }

  #armSweep(): void {
    if (this.#sweeper !== null) return;
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_EVERY_MS);
    this.#sweeper.unref();
  }

  /** Drops expired entries from the next slice of each map; stops when both are empty. */
  #sweep(): void {
    const now = Date.now();
    this.#countCursor = sweepSlice(this.#counts, this.#countCursor, (w) => w.until <= now);
    this.#blockCursor = sweepSlice(this.#blocks, this.#blockCursor, (until) => until <= now);
    if (this.size === 0) this.close();
  }
}

/** Visits the next slice of `map` from `cursor` (a fresh pass once it ran out); returns where to go on. */
function sweepSlice<V>(map: Map<string, V>, cursor: Iterator<[string, V]> | null, expired: (v: V) => boolean): Iterator<[string, V]> | null {
  const it = cursor ?? map.entries();
  let visits = Math.max(SWEEP_MIN_VISITS, Math.ceil(map.size / SWEEP_SLICES));
  while (visits-- > 0) {
    const r = it.next();
    if (r.done === true) return null;
    if (expired(r.value[1])) map.delete(r.value[0]);
  }
  return it;
}
