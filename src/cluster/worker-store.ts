/**
 * A worker's CounterStore when `rateLimitStore` is `memory`: every operation runs on the
 * primary's store (shared-counters.ts), so failure counts, lockouts and connection rates
 * are the same whichever worker a client reaches. If the primary does not answer within
 * `timeoutMs` the operation runs on local counters instead, like the Redis store's
 * insurance limiter: a login is never held up by the primary. Blocks are read from both,
 * so a lockout set locally during such a moment still holds afterwards.
 *
 * Why not rate-limiter-flexible's RateLimiterCluster: it has no fallback (a slow primary
 * makes every call reject after its timeout, and auth-limits would then fail logins), its
 * workers poll every 30 ms until the primary has answered an init message, and it works a
 * level below our CounterStore (we also need the exact live connection counts and the
 * admin and audit traffic over the same channel). Running our own memory store in the
 * primary keeps the exact semantics of the single-process store.
 */
import { createCounterStore, type CounterStore } from '../policy/counter-store.ts';
import type { Logger } from '../util/logger.ts';
import type { IpcPeer } from './ipc.ts';
import type { StoreOp } from './messages.ts';

export const DEFAULT_STORE_TIMEOUT_MS = 1_000;

function checkMs(what: string, ms: number): void {
  if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`${what} must be a positive number of ms, got ${ms}`);
}

export class IpcCounterStore implements CounterStore {
  readonly kind = 'memory' as const;
  readonly #peer: IpcPeer;
  readonly #local: CounterStore;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  #fellBack = false;

  constructor(peer: IpcPeer, log: Logger, opts: { timeoutMs?: number } = {}) {
    this.#peer = peer;
    this.#log = log;
    this.#local = createCounterStore('memory', log);
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  }

  /** True while the last operation had to use local counters. */
  get degraded(): boolean {
    return this.#fellBack;
  }

  consume(key: string, windowMs: number, points = 1): Promise<number> {
    checkMs('windowMs', windowMs);
    if (!Number.isInteger(points) || points < 1) throw new RangeError(`points must be a positive integer, got ${points}`);
    return this.#run({ op: 'consume', key, windowMs, points }, () => this.#local.consume(key, windowMs, points));
  }

  async refund(key: string, windowMs: number, points = 1): Promise<void> {
    checkMs('windowMs', windowMs);
    await this.#run({ op: 'refund', key, windowMs, points }, async () => {
      await this.#local.refund(key, windowMs, points);
      return null;
    });
  }

  async setCount(key: string, windowMs: number, points: number): Promise<void> {
    checkMs('windowMs', windowMs);
    await this.#run({ op: 'setCount', key, windowMs, points }, async () => {
      await this.#local.setCount(key, windowMs, points);
      return null;
    });
  }

  get(key: string, windowMs: number): Promise<number> {
    return this.#run({ op: 'get', key, windowMs }, () => this.#local.get(key, windowMs));
  }

  async block(key: string, ms: number): Promise<void> {
    checkMs('block ms', ms);
    await this.#run({ op: 'block', key, ms }, async () => {
      await this.#local.block(key, ms);
      return null;
    });
  }

  async blockedFor(key: string): Promise<number> {
    const [shared, local] = await Promise.all([
      this.#run({ op: 'blockedFor', key }, () => this.#local.blockedFor(key)),
      this.#local.blockedFor(key),
    ]);
    return Math.max(shared, local);
  }

  async reset(key: string): Promise<void> {
    await Promise.all([this.#run({ op: 'reset', key }, async () => null), this.#local.reset(key)]);
  }

  close(): Promise<void> {
    return this.#local.close();
  }

  async #run<T extends number | null>(op: StoreOp, local: () => Promise<T>): Promise<T> {
    try {
      const v = await this.#peer.request<T>('store', op, this.#timeoutMs);
      if (this.#fellBack) {
        this.#fellBack = false;
        this.#log.info({ event: 'cluster-store-up' }, 'primary answers again: shared counters in use');
      }
      return v;
    } catch (err) {
      if (!this.#fellBack) {
        this.#fellBack = true;
        this.#log.warn({ event: 'cluster-store-down', err: (err as Error).message }, 'primary did not answer: using local counters');
      }
      return local();
    }
  }
}
