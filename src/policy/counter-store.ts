/**
 * Windowed counters and timed blocks: the only I/O policy does. In memory by default
 * (memory-counters.ts); with redis://host:port several gateway processes share them, built on
 * rate-limiter-flexible so the Redis side is its atomic INCR+EXPIRE script and its
 * insurance limiter: when Redis is unreachable every call falls through to local
 * counters at once (no offline queue, a command timeout), and the ioredis client keeps
 * reconnecting in the background.
 *
 * Windows are fixed (they start at a key's first consume), like rate-limiter-flexible.
 * Redis keeps TTLs in whole seconds, so on Redis a window or block is rounded up to 1 s.
 */
import type { Redis as RedisClient } from 'ioredis';
import type { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Logger } from '../util/logger.ts';
import { onDemand } from '../util/on-demand.ts';
import { checkOp, MemoryCounters, type CounterOp } from './memory-counters.ts';

export { checkOp, type CounterOp } from './memory-counters.ts';

export interface CounterStore {
  /** Adds `points` (default 1) and returns the count within the key's current window. */
  consume(key: string, windowMs: number, points?: number): Promise<number>;
  /** Gives back `points` (default 1) consumed in the key's current window; nothing once it has expired. */
  refund(key: string, windowMs: number, points?: number): Promise<void>;
  /** Sets the count to `points` (0 or more) in a window starting now. */
  setCount(key: string, windowMs: number, points: number): Promise<void>;
  /** The count within the current window; 0 when the window has expired or never began. */
  get(key: string, windowMs: number): Promise<number>;
  /** Sets (or re-sets) a timed flag on `key`, separate from its counter. */
  block(key: string, ms: number): Promise<void>;
  /** Milliseconds left on the flag, 0 when none. */
  blockedFor(key: string): Promise<number>;
  /** Clears both the counter and the flag. */
  reset(key: string): Promise<void>;
  /**
   * Several operations at once, answered in order: the count for consume and get, the ms left
   * for blockedFor, 0 for the rest. The memory store (and the cluster primary's) runs them
   * together with nothing in between; Redis runs them side by side, as separate calls would.
   * Rejects before running any if one is malformed.
   */
  batch(ops: readonly CounterOp[]): Promise<number[]>;
  /**
   * The same batch answered at once, for a store whose counters live in this process (memory):
   * a login's charge and settlement then make no promise. Absent where an answer must wait.
   */
  batchNow?(ops: readonly CounterOp[]): number[];
  close(): Promise<void>;
  readonly kind: 'memory' | 'redis';
  /** True while a Redis store is answering from local counters (for /healthz and metrics). */
  readonly degraded: boolean;
}

/** Runs one operation through a store's own methods (what a store without a batch of its own does per operation). */
export async function runOp(store: CounterStore, op: CounterOp): Promise<number> {
  switch (op.op) {
    case 'consume':
      return store.consume(op.key, op.windowMs, op.points);
    case 'refund':
      await store.refund(op.key, op.windowMs, op.points);
      return 0;
    case 'setCount':
      await store.setCount(op.key, op.windowMs, op.points);
      return 0;
    case 'get':
      return store.get(op.key, op.windowMs);
    case 'block':
      await store.block(op.key, op.ms);
      return 0;
    case 'blockedFor':
      return store.blockedFor(op.key);
    case 'reset':
      await store.reset(op.key);
      return 0;
    default:
      throw new TypeError(`unknown store operation ${String((op as { op: unknown }).op)}`);
  }
}

export interface CounterStoreOptions {
  /** A Redis command slower than this falls back to local counters (default 500 ms). */
  commandTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Upper bound on the wait between reconnect attempts (default 2 s). */
  retryMaxDelayMs?: number;
}

export class CounterStoreError extends Error {
  readonly code = 'BAD_STORE_URL';
}

/** Far above any limit: the limiter never rejects, we read consumedPoints and decide ourselves. */
const POINTS = 1_000_000_000;
const PREFIX = 'pop3gw';

function liveMs(res: RateLimiterRes | null): number {
  // The memory limiter drops an expired record on a timer; until then `get` still returns it
  // with a negative msBeforeNext, so expiry is judged here from the time left.
  if (res === null || res.msBeforeNext <= 0) return 0;
  return res.msBeforeNext;
}

/** The count a read gives, 0 once its window has expired or when there is none. */
function liveCount(res: RateLimiterRes | null): number {
  return liveMs(res) > 0 ? res!.consumedPoints : 0;
}

/**
 * The `memory` store: its counters answer synchronously, so a batch costs one promise whatever
 * its length (a login's charge is six operations). Each method checks its operation as
 * the batch does, and a bad one rejects.
 */
class MemoryStore implements CounterStore {
  readonly kind = 'memory' as const;
  readonly degraded = false;
  readonly #c: MemoryCounters;

  constructor(counters: MemoryCounters) {
    this.#c = counters;
  }

  async consume(key: string, windowMs: number, points = 1): Promise<number> {
    return this.#c.run({ op: 'consume', key, windowMs, points });
  }

  async refund(key: string, windowMs: number, points = 1): Promise<void> {
    this.#c.run({ op: 'refund', key, windowMs, points });
  }

  async setCount(key: string, windowMs: number, points: number): Promise<void> {
    this.#c.run({ op: 'setCount', key, windowMs, points });
  }

  async get(key: string, _windowMs: number): Promise<number> {
    return this.#c.get(key);
  }

  async block(key: string, ms: number): Promise<void> {
    this.#c.run({ op: 'block', key, ms });
  }

  async blockedFor(key: string): Promise<number> {
    return this.#c.blockedFor(key);
  }

  async reset(key: string): Promise<void> {
    this.#c.reset(key);
  }

  async batch(ops: readonly CounterOp[]): Promise<number[]> {
    return this.#c.batch(ops);
  }

  batchNow(ops: readonly CounterOp[]): number[] {
    return this.#c.batch(ops);
  }

  async close(): Promise<void> {
    this.#c.close();
  }
}

/** The Redis store: rate-limiter-flexible's Redis limiter, with its memory limiter as the insurance. */
class LimiterStore implements CounterStore {
  readonly kind = 'redis' as const;
  readonly #primary: RateLimiterRedis;
  /** The Redis limiter's insurance: read too for blocks, so a lockout set during an outage survives recovery. */
  readonly #local: RateLimiterMemory;
  readonly #seconds: (ms: number) => number;
  readonly #onClose: () => Promise<void>;
  readonly #isDegraded: () => boolean;

  constructor(
    primary: RateLimiterRedis,
    local: RateLimiterMemory,
    seconds: (ms: number) => number,
    hooks: { close: () => Promise<void>; degraded: () => boolean },
  ) {
    this.#primary = primary;
    this.#local = local;
    this.#seconds = seconds;
    this.#onClose = hooks.close;
    this.#isDegraded = hooks.degraded;
  }

  get degraded(): boolean {
    return this.#isDegraded();
  }

  async consume(key: string, windowMs: number, points = 1): Promise<number> {
    checkOp({ op: 'consume', key, windowMs, points });
    const res = await this.#primary.consume(`c:${key}`, points, { customDuration: this.#seconds(windowMs) });
    return res.consumedPoints;
  }

  async refund(key: string, windowMs: number, points = 1): Promise<void> {
    checkOp({ op: 'refund', key, windowMs, points });
    // Never below zero, and never a new window: an expired key has nothing to give back.
    const k = `c:${key}`;
    const n = Math.min(points, liveCount(await this.#primary.get(k)));
    if (n > 0) await this.#primary.reward(k, n, { customDuration: this.#seconds(windowMs) });
  }

  async setCount(key: string, windowMs: number, points: number): Promise<void> {
    checkOp({ op: 'setCount', key, windowMs, points });
    await this.#primary.set(`c:${key}`, points, this.#seconds(windowMs));
  }

  async get(key: string, _windowMs: number): Promise<number> {
    return liveCount(await this.#primary.get(`c:${key}`));
  }

  async block(key: string, ms: number): Promise<void> {
    checkOp({ op: 'block', key, ms });
    await this.#primary.block(`b:${key}`, this.#seconds(ms));
  }

  blockedFor(key: string): Promise<number> {
    const k = `b:${key}`;
    return Promise.all([this.#primary.get(k), this.#local.get(k)]).then(([shared, local]) => Math.max(liveMs(shared), liveMs(local)));
  }

  async reset(key: string): Promise<void> {
    const c = `c:${key}`;
    const b = `b:${key}`;
    await Promise.all([this.#primary.delete(c), this.#primary.delete(b), this.#local.delete(c), this.#local.delete(b)]);
  }

  async batch(ops: readonly CounterOp[]): Promise<number[]> {
    for (const op of ops) checkOp(op);
    return Promise.all(ops.map((op) => runOp(this, op)));
  }

  close(): Promise<void> {
    return this.#onClose();
  }
}

/**
 * rate-limiter-flexible's memory limiter (the Redis store's insurance) expires keys with setTimeout, which fires at
 * once for anything past 2^31-1 ms (~24.8 days): longer durations are clamped.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * rate-limiter-flexible's index loads every limiter it has (Mongo, Postgres, DynamoDB, ...; about
 * 1.2 MiB of heap): the two used here, for a Redis store only, are loaded from their own files.
 */
const loadMemoryLimiter = onDemand<typeof RateLimiterMemory>('rate-limiter-flexible/lib/RateLimiterMemory.js');
const loadRedisLimiter = onDemand<typeof RateLimiterRedis>('rate-limiter-flexible/lib/RateLimiterRedis.js');

function memoryLimiter(): RateLimiterMemory {
  const RateLimiterMemory = loadMemoryLimiter();
  return new RateLimiterMemory({ points: POINTS, duration: 60, keyPrefix: PREFIX });
}

/** `memory`, or `redis://[:password@]host:port[/db]` / `rediss://…`. Throws CounterStoreError otherwise. */
export function createCounterStore(url: 'memory' | string, log: Logger, opts: CounterStoreOptions = {}): CounterStore {
  if (url === 'memory') return new MemoryStore(new MemoryCounters());
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CounterStoreError('policy.rateLimitStore must be "memory" or a redis:// URL');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new CounterStoreError('policy.rateLimitStore must be "memory" or a redis:// URL');
  }
  return createRedisStore(url, parsed, log, opts);
}

/** The Redis client library, loaded for a redis:// store only. */
const loadIoredis = onDemand<{ Redis: typeof RedisClient }>('ioredis');

function createRedisStore(url: string, parsed: URL, log: Logger, opts: CounterStoreOptions): CounterStore {
  const { Redis } = loadIoredis();
  // The URL may carry a password: only host and port ever reach a log.
  const rlog = log.child({ component: 'counter-store', redis: `${parsed.hostname}:${parsed.port || '6379'}` });
  const maxDelay = opts.retryMaxDelayMs ?? 2_000;
  const client = new Redis(url, {
    // Without an offline queue a command during an outage fails at once and the
    // insurance limiter answers, instead of logins waiting for Redis to return.
    enableOfflineQueue: false,
    commandTimeout: opts.commandTimeoutMs ?? 500,
    connectTimeout: opts.connectTimeoutMs ?? 2_000,
    // Reconnect forever, backing off up to maxDelay.
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 10), maxDelay),
  });

  let closing = false;
  let down = false;
  const markDown = (err: Error | null): void => {
    if (closing || down) return;
    down = true;
    rlog.warn({ event: 'redis-down', err: err?.message ?? 'connection closed' }, 'redis unavailable, using local counters');
  };
  client.on('error', (err: Error) => markDown(err));
  client.on('close', () => markDown(null));
  client.on('ready', () => {
    if (!down) return;
    down = false;
    rlog.info({ event: 'redis-up' }, 'redis back');
  });

  const local = memoryLimiter();
  const RateLimiterRedis = loadRedisLimiter();
  const primary = new RateLimiterRedis({
    storeClient: client,
    points: POINTS,
    duration: 60,
    keyPrefix: PREFIX,
    insuranceLimiter: local,
    // Don't hand commands to a client that isn't connected: fall back immediately.
    rejectIfRedisNotReady: true,
  });

  // The insurance limiter gets the same durations and keeps them in timers: clamp them too.
  return new LimiterStore(primary, local, (ms) => Math.max(1, Math.ceil(Math.min(ms, MAX_TIMER_MS) / 1000)), {
    degraded: () => client.status !== 'ready',
    close: async () => {
      closing = true;
      if (client.status === 'ready') {
        await client.quit().catch((err: Error) => {
          rlog.debug({ err: err.message }, 'redis quit failed, disconnecting');
          client.disconnect();
        });
      } else {
        client.disconnect();
      }
    },
  });
}
