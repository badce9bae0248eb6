/**
 * The primary's side of the policy counters, so limits hold whichever worker a client
 * lands on:
 * - live connections per client key and in total, exact, with every slot remembered per
 *   worker so a worker that dies gives its slots back at once;
 * - the windowed counters and timed blocks of auth-limits and the connection rate, kept
 *   in one memory CounterStore (the same implementation a single process uses), which
 *   workers reach over IPC (worker-store.ts) when `rateLimitStore` is `memory`.
 */
import type { CounterOp, CounterStore } from '../policy/counter-store.ts';
import type { ConnAcquire, ConnAcquireReply } from './messages.ts';

/**
 * `acquire` and `release` must run synchronously as each message arrives: a worker whose
 * request timed out sends the release right after it, and only the channel's order (request
 * first) keeps that release from being ignored and the late grant from leaking.
 */
export class SharedConnectionCounts {
  readonly #perKey = new Map<string, number>();
  /** worker id → (slot → key) */
  readonly #byWorker = new Map<number, Map<number, string>>();
  #total = 0;

  acquire(worker: number, req: ConnAcquire): ConnAcquireReply {
    const mine = this.#perKey.get(req.key) ?? 0;
    if (!req.trusted && req.maxPerIp > 0 && mine >= req.maxPerIp) return { ok: false, reason: 'max-per-ip' };
    if (req.maxTotal > 0 && this.#total >= req.maxTotal) return { ok: false, reason: 'max-total' };
    let slots = this.#byWorker.get(worker);
    if (slots === undefined) this.#byWorker.set(worker, (slots = new Map()));
    if (slots.has(req.slot)) return { ok: true }; // a repeated id must not count twice
    slots.set(req.slot, req.key);
    this.#perKey.set(req.key, mine + 1);
    this.#total += 1;
    return { ok: true };
  }

  /** Unknown slots are ignored (a refused or already released one). */
  release(worker: number, slot: number): void {
    const slots = this.#byWorker.get(worker);
    const key = slots?.get(slot);
    if (slots === undefined || key === undefined) return;
    slots.delete(slot);
    this.#drop(key);
  }

  /** A worker is gone: all its connections are gone with it. Returns how many slots were freed. */
  releaseWorker(worker: number): number {
    const slots = this.#byWorker.get(worker);
    if (slots === undefined) return 0;
    this.#byWorker.delete(worker);
    for (const key of slots.values()) this.#drop(key);
    return slots.size;
  }

  get total(): number {
    return this.#total;
  }

  activeFor(key: string): number {
    return this.#perKey.get(key) ?? 0;
  }

  #drop(key: string): void {
    this.#total -= 1;
    const left = (this.#perKey.get(key) ?? 1) - 1;
    if (left > 0) this.#perKey.set(key, left);
    else this.#perKey.delete(key);
  }
}

/** More operations than any caller sends at once (a login's charge is six): refused, not run. */
export const MAX_STORE_BATCH = 32;

/** Runs one worker's batch of store operations on the primary's store (each is checked by the store). */
export function runStoreBatch(store: CounterStore, body: unknown): Promise<number[]> {
  if (!Array.isArray(body) || body.length > MAX_STORE_BATCH) {
    return Promise.reject(new TypeError(`a store batch is an array of at most ${MAX_STORE_BATCH} operations`));
  }
  return store.batch(body as CounterOp[]);
}
