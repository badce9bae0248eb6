import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PolicyConfig } from '../../../src/config/schema.ts';
import { ConnectionLimiter } from '../../../src/policy/connection-limits.ts';
import { createCounterStore, type CounterStore } from '../../../src/policy/counter-store.ts';
import { NetworkSet } from '../../../src/policy/networks.ts';
import { silentLogger } from '../../../src/util/logger.ts';

const CFG: PolicyConfig['connections'] = { maxPerIp: 2, maxTotal: 5, ratePerIp: 0, rateWindow: 60_000 };

function limiter(over: Partial<PolicyConfig['connections']> = {}, trusted: string[] = [], store?: CounterStore) {
  return new ConnectionLimiter({ ...CFG, ...over }, new NetworkSet(trusted), store ?? createCounterStore('memory', silentLogger), 64);
}

async function ok(l: ConnectionLimiter, ip: string): Promise<() => void> {
  const r = await l.acquire(ip);
  if (!r.ok) throw new Error(`refused ${ip}: ${r.reason}`);
  return r.release;
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date('2025-03-01T12:00:00Z'));
});
afterEach(() => {
  vi.useRealTimers();
});

describe('ConnectionLimiter', () => {
  it('refuses a client past maxPerIp with max-per-ip, and only that client', async () => {
    const l = limiter();
    await ok(l, '198.51.100.1');
    await ok(l, '198.51.100.1');
    expect(await l.acquire('198.51.100.1')).toEqual({ ok: false, reason: 'max-per-ip' });
    await ok(l, '198.51.100.2');
    expect(l.activeFor('198.51.100.1')).toBe(2);
    expect(l.active()).toBe(3);
  });

  it('refuses anyone past maxTotal with max-total', async () => {
    const l = limiter();
    for (let i = 1; i <= 5; i++) await ok(l, `198.51.100.${i}`);
    expect(await l.acquire('198.51.100.99')).toEqual({ ok: false, reason: 'max-total' });
  });

  it('frees the slot on release, and a second release changes nothing', async () => {
    const l = limiter();
    const release = await ok(l, '198.51.100.1');
    await ok(l, '198.51.100.1');
    release();
    release();
    expect(l.activeFor('198.51.100.1')).toBe(1);
    expect(l.active()).toBe(1);
    await ok(l, '198.51.100.1');
    expect(await l.acquire('198.51.100.1')).toEqual({ ok: false, reason: 'max-per-ip' });
  });

  it('counts an IPv6 /64 as one client', async () => {
    const l = limiter();
    await ok(l, '2001:db8:1:2::1');
    await ok(l, '2001:db8:1:2::2');
    expect(await l.acquire('2001:db8:1:2::3')).toEqual({ ok: false, reason: 'max-per-ip' });
    await ok(l, '2001:db8:1:3::1');
  });

  it('counts an IPv4-mapped peer as its IPv4 address', async () => {
    const l = limiter();
    await ok(l, '198.51.100.1');
    await ok(l, '::ffff:198.51.100.1');
    expect((await l.acquire('198.51.100.1')).ok).toBe(false);
  });

  it('refuses new connections past ratePerIp within rateWindow with conn-rate, then allows again', async () => {
    const l = limiter({ maxPerIp: 100, maxTotal: 100, ratePerIp: 3, rateWindow: 10_000 });
    for (let i = 0; i < 3; i++) (await ok(l, '198.51.100.1'))();
    expect(await l.acquire('198.51.100.1')).toEqual({ ok: false, reason: 'conn-rate' });
    expect(l.active()).toBe(0); // the refused attempt gave its slot back
    await ok(l, '198.51.100.2');
    vi.advanceTimersByTime(10_001);
    await ok(l, '198.51.100.1');
  });

  it('shares the rate through the store between limiters (as between gateways)', async () => {
    const store = createCounterStore('memory', silentLogger);
    const a = limiter({ maxPerIp: 100, ratePerIp: 2 }, [], store);
    const b = limiter({ maxPerIp: 100, ratePerIp: 2 }, [], store);
    await ok(a, '198.51.100.1');
    await ok(b, '198.51.100.1');
    expect(await a.acquire('198.51.100.1')).toEqual({ ok: false, reason: 'conn-rate' });
  });

  it('exempts trusted networks from per-IP limits and the rate, but not from maxTotal', async () => {
    const l = limiter({ ratePerIp: 1 }, ['10.0.0.0/8']);
    for (let i = 0; i < 5; i++) await ok(l, '10.0.0.7');
    expect(l.activeFor('10.0.0.7')).toBe(5);
    expect(await l.acquire('10.0.0.7')).toEqual({ ok: false, reason: 'max-total' });
  });

  it('answers without a promise unless a rate applies', async () => {
    expect(limiter().acquire('198.51.100.1')).not.toBeInstanceOf(Promise);
    expect(limiter({ ratePerIp: 5 }, ['10.0.0.0/8']).acquire('10.0.0.7')).not.toBeInstanceOf(Promise);
    const rated = limiter({ ratePerIp: 5 }).acquire('198.51.100.1');
    expect(rated).toBeInstanceOf(Promise);
    expect((await rated).ok).toBe(true);
  });

  it('lets a connection through, and says so, when the store cannot count the rate', async () => {
    const store = createCounterStore('memory', silentLogger);
    store.consume = () => Promise.reject(new Error('store down'));
    const warnings: unknown[] = [];
    const log = { ...silentLogger, warn: (o: unknown) => void warnings.push(o) };
    const l = new ConnectionLimiter({ ...CFG, ratePerIp: 1 }, new NetworkSet([]), store, 64, { log });
    await ok(l, '198.51.100.1');
    expect(l.active()).toBe(1);
    expect(await l.checkRate('198.51.100.1')).toBe(true);
    expect(warnings).toEqual([
      { event: 'conn-rate-unavailable', err: 'store down' },
      { event: 'conn-rate-unavailable', err: 'store down' },
    ]);
  });

  it('refuses synchronously on the counts, before any TLS work', () => {
    const l = limiter();
    expect(l.tryAcquireSync('198.51.100.1').ok).toBe(true);
    expect(l.tryAcquireSync('198.51.100.1').ok).toBe(true);
    expect(l.tryAcquireSync('198.51.100.1')).toEqual({ ok: false, reason: 'max-per-ip' });
  });

  it('treats a limit of 0 as no limit', async () => {
    const l = limiter({ maxPerIp: 0, maxTotal: 0 });
    for (let i = 0; i < 50; i++) await ok(l, '198.51.100.1');
    expect(l.active()).toBe(50);
  });

  it('lets connections through when the store fails, since the live counts still bound them', async () => {
    const broken: CounterStore = {
      kind: 'redis',
      degraded: true,
      consume: () => Promise.reject(new Error('down')),
      refund: () => Promise.reject(new Error('down')),
      setCount: () => Promise.reject(new Error('down')),
      get: () => Promise.reject(new Error('down')),
      block: () => Promise.reject(new Error('down')),
      blockedFor: () => Promise.reject(new Error('down')),
      reset: () => Promise.reject(new Error('down')),
      batch: () => Promise.reject(new Error('down')),
      close: () => Promise.resolve(),
    };
    const l = limiter({ ratePerIp: 1 }, [], broken);
    await ok(l, '198.51.100.1');
    await ok(l, '198.51.100.1');
    expect(await l.acquire('198.51.100.1')).toEqual({ ok: false, reason: 'max-per-ip' });
  });
});
