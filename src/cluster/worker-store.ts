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
import { checkOp, createCounterStore, type CounterOp, type CounterStore } from '../policy/counter-store.ts';
import type { Logger } from '../util/logger.ts';
import type { IpcPeer } from './ipc.ts';

export const DEFAULT_STORE_TIMEOUT_MS = 1_000;

const first = (r: number[]): number => r[0]!;

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
    return this.#one({ op: 'consume', key, windowMs, points });
  }

  async refund(key: string, windowMs: number, points = 1): Promise<void> {
    await this.#one({ op: 'refund', key, windowMs, points });
  }

  async setCount(key: string, windowMs: number, points: number): Promise<void> {
    await this.#one({ op: 'setCount', key, windowMs, points });
  }

  get(key: string, windowMs: number): Promise<number> {
    return this.#one({ op: 'get', key, windowMs });
  }

  async block(key: string, ms: number): Promise<void> {
    await this.#one({ op: 'block', key, ms });
  }

  blockedFor(key: string): Promise<number> {
    return this.#one({ op: 'blockedFor', key });
  }

  async reset(key: string): Promise<void> {
    await this.#one({ op: 'reset', key });
  }

  /**
   * One request to the primary for all of them (a login's charge is one round trip, not six).
   * Blocks are read from both stores and a reset clears both, as for single operations.
   */
  async batch(ops: readonly CounterOp[]): Promise<number[]> {
    for (const op of ops) checkOp(op);
    return this.#send(ops);
  }

  close(): Promise<void> {
    return this.#local.close();
  }

  /** Checks before anything is sent: a bad argument throws here, as it always did. */
  #one(op: CounterOp): Promise<number> {
    checkOp(op);
    return this.#send([op]).then(first);
  }

  /** Checked operations to the primary, or to the local counters when it does not answer. */
  async #send(ops: readonly CounterOp[]): Promise<number[]> {
    const shared = await this.#run<number[]>(ops, () => this.#local.batch(ops));
    const both = ops.filter((op) => op.op === 'blockedFor' || op.op === 'reset');
    if (both.length === 0) return shared;
    const local = await this.#local.batch(both);
    let j = 0;
    return ops.map((op, i) => (op.op === 'blockedFor' || op.op === 'reset' ? Math.max(shared[i]!, local[j++]!) : shared[i]!));
  }

  async #run<T>(body: unknown, local: () => Promise<T>): Promise<T> {
    try {
      const v = await this.#peer.request<T>('store-batch', body, this.#timeoutMs);
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
