import { createRequire } from 'node:module';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { RateLimiterMemory as RLM, RateLimiterRes } from 'rate-limiter-flexible';
import { MemoryCounters, type CounterOp } from '../../../src/policy/memory-counters.ts';
import { createCounterStore } from '../../../src/policy/counter-store.ts';
import { runStoreBatch, MAX_STORE_BATCH } from '../../../src/cluster/shared-counters.ts';
import { silentLogger } from '../../../src/util/logger.ts';

const require = createRequire(import.meta.url);
const RateLimiterMemory = require('rate-limiter-flexible/lib/RateLimiterMemory.js') as typeof RLM;

/** What the memory store did with rate-limiter-flexible's memory limiter, operation by operation. */
function viaLimiter(): (op: CounterOp) => Promise<number> {
  const l = new RateLimiterMemory({ points: 1e9, duration: 60 });
  const live = (r: RateLimiterRes | null): number => (r === null || r.msBeforeNext <= 0 ? 0 : r.msBeforeNext);
  const count = (r: RateLimiterRes | null): number => (live(r) > 0 ? r!.consumedPoints : 0);
  return async (op) => {
    switch (op.op) {
      case 'consume':
        return (await l.consume(`c:${op.key}`, op.points, { customDuration: op.windowMs / 1000 })).consumedPoints;
      case 'refund': {
        const n = Math.min(op.points, count(await l.get(`c:${op.key}`)));
        if (n > 0) await l.reward(`c:${op.key}`, n, { customDuration: op.windowMs / 1000 });
        return 0;
      }
      case 'setCount':
        await l.set(`c:${op.key}`, op.points, op.windowMs / 1000);
        return 0;
      case 'get':
        return count(await l.get(`c:${op.key}`));
      case 'block':
        await l.block(`b:${op.key}`, op.ms / 1000);
        return 0;
      case 'blockedFor':
        return live(await l.get(`b:${op.key}`));
      case 'reset':
        await Promise.all([l.delete(`c:${op.key}`), l.delete(`b:${op.key}`)]);
        return 0;
    }
  };
}

/** A small deterministic generator, so a failure names its seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

function randomOp(r: () => number): CounterOp {
  const key = `k${Math.floor(r() * 3)}`;
  const windowMs = [500, 1_000, 3_000][Math.floor(r() * 3)]!;
  const points = 1 + Math.floor(r() * 3);
  switch (Math.floor(r() * 7)) {
    case 0: return { op: 'consume', key, windowMs, points };
    case 1: return { op: 'refund', key, windowMs, points };
    case 2: return { op: 'setCount', key, windowMs, points: points - 1 };
    case 3: return { op: 'get', key, windowMs };
    case 4: return { op: 'block', key, ms: windowMs };
    case 5: return { op: 'blockedFor', key };
    default: return { op: 'reset', key };
  }
}

describe('MemoryCounters', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    vi.setSystemTime(new Date('2026-01-01T00:00:00Z'));
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('answers every operation as rate-limiter-flexible\'s memory limiter did, over random sequences with the clock moving', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      const ours = new MemoryCounters();
      const theirs = viaLimiter();
      for (let i = 0; i < 150; i++) {
        const op = randomOp(r);
        const want = await theirs(op);
        expect(ours.run(op), `seed ${seed}, step ${i}: ${JSON.stringify(op)}`).toBe(want);
        // Some steps land exactly on a window's end, others run timers, others only move the clock.
        const step = Math.floor(r() * 4);
        if (step === 1) vi.advanceTimersByTime(250);
        else if (step === 2) vi.setSystemTime(Date.now() + 500);
        else if (step === 3) vi.advanceTimersByTime(Math.floor(r() * 700));
      }
      ours.close();
    }
  });

  it('checks a whole batch before running any of it', () => {
    const c = new MemoryCounters();
    expect(() => c.batch([
      { op: 'consume', key: 'a', windowMs: 1_000, points: 1 },
      { op: 'consume', key: 'a', windowMs: 0, points: 1 },
    ])).toThrow(RangeError);
    expect(c.get('a')).toBe(0);
    expect(() => c.batch([{ op: 'drop', key: 'a' } as unknown as CounterOp])).toThrow(TypeError);
    expect(() => c.batch([{ op: 'block', key: 'a', ms: Number.NaN }])).toThrow(RangeError);
    expect(() => c.batch([{ op: 'setCount', key: 'a', windowMs: 1_000, points: -1 }])).toThrow(RangeError);
    expect(() => c.batch([{ op: 'get' } as unknown as CounterOp])).toThrow(TypeError);
    expect(c.batch([
      { op: 'consume', key: 'a', windowMs: 1_000, points: 2 },
      { op: 'block', key: 'a', ms: 5_000 },
      { op: 'get', key: 'a', windowMs: 1_000 },
      { op: 'blockedFor', key: 'a' },
    ])).toEqual([2, 0, 2, 5_000]);
    c.close();
  });

  it('drops expired entries in the background and stops its timer once none are left', () => {
    const c = new MemoryCounters();
    expect(vi.getTimerCount()).toBe(0);
    for (let i = 0; i < 1_000; i++) c.consume(`k${i}`, 1_000, 1);
    c.block('b', 65_000);
    expect(c.size).toBe(1_001);
    expect(vi.getTimerCount()).toBe(1);
    // Windows over, the block still on: the sweep empties the counts within a minute.
    vi.advanceTimersByTime(60_000);
    expect(c.size).toBe(1);
    expect(c.blockedFor('b')).toBe(5_000);
    vi.advanceTimersByTime(10_000);
    expect(c.size).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    // A new entry arms it again.
    c.consume('again', 1_000, 1);
    expect(vi.getTimerCount()).toBe(1);
    c.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('keeps live entries through the sweep', () => {
    const c = new MemoryCounters();
    c.consume('long', 600_000, 3);
    c.block('long', 600_000);
    vi.advanceTimersByTime(120_000);
    expect(c.get('long')).toBe(3);
    expect(c.blockedFor('long')).toBe(480_000);
    c.close();
  });
});

describe('memory store batches', () => {
  it('rejects a bad batch as a whole, through the store and through the primary', async () => {
    const store = createCounterStore('memory', silentLogger);
    await expect(store.batch([
      { op: 'consume', key: 'a', windowMs: 1_000, points: 1 },
      { op: 'refund', key: 'a', windowMs: 1_000, points: 0 },
    ])).rejects.toThrow(RangeError);
    expect(await store.get('a', 1_000)).toBe(0);
    await expect(runStoreBatch(store, { op: 'get', key: 'a' })).rejects.toThrow(TypeError);
    await expect(runStoreBatch(store, Array.from({ length: MAX_STORE_BATCH + 1 }, () => ({ op: 'get', key: 'a', windowMs: 1 }))))
      .rejects.toThrow(TypeError);
    expect(await runStoreBatch(store, [{ op: 'consume', key: 'a', windowMs: 1_000, points: 1 }])).toEqual([1]);
    await store.close();
  });
});
