/**
 * Charge before you act (issue 9 items 1 and 2): AuthLimiter.charge consumes the attempt's points
 * atomically and the counts decide; succeeded/failed/abandoned settle the ticket.
 */
import { describe, expect, it } from 'vitest';
import type { PolicyConfig } from '../../../src/config/schema.ts';
import { AuthLimiter } from '../../../src/policy/auth-limits.ts';
import { createCounterStore, type CounterStore } from '../../../src/policy/counter-store.ts';
import { NetworkSet } from '../../../src/policy/networks.ts';
import { runStoreBatch } from '../../../src/cluster/shared-counters.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { asyncOnlyStore } from '../../harness/counter-stores.ts';

const CFG: PolicyConfig['auth'] = {
  maxFailuresPerIp: 10, maxFailuresPerUser: 5, window: 60_000, lockout: 60_000,
  failureDelay: 1_000, maxAttemptsPerSession: 3, ipv6Prefix: 64,
};

/** Refuses at once what is over a limit while others are in flight, unless `inFlightWaitMs` says otherwise. */
function setup(over: Partial<PolicyConfig['auth']> = {}, trusted: string[] = [], inFlightWaitMs = 0): { l: AuthLimiter; store: CounterStore } {
  const store = createCounterStore('memory', silentLogger);
  return { l: new AuthLimiter({ ...CFG, ...over }, new NetworkSet(trusted), store, { inFlightWaitMs }), store };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('AuthLimiter.charge', () => {
  it('re-sets the known-good flag only once less than half of knownGoodForMs is left on it', async () => {
    const store = createCounterStore('memory', silentLogger);
    const blocks: string[] = [];
    // Without batchNow: the charge goes step by step, as with Redis; block calls are counted.
    const counting = asyncOnlyStore(store, {
      block: (k, ms) => {
        blocks.push(k);
        return store.block(k, ms);
      },
      batch: (ops) => {
        for (const op of ops) if (op.op === 'block') blocks.push(op.key);
        return store.batch(ops);
      },
    });
    const l = new AuthLimiter(CFG, new NetworkSet([]), counting, { inFlightWaitMs: 0, knownGoodForMs: 2_000 });
    const login = async (): Promise<void> => {
      const r = await l.charge('198.51.100.7', 'alice', 'right');
      if (!r.allowed) throw new Error('refused');
      await l.succeeded(r.ticket);
    };
    const goodSets = () => blocks.filter((k) => k.startsWith('auth:good:')).length;
    await login(); // not known good yet: set
    await login(); // all of it left: kept as it is
    expect(goodSets()).toBe(1);
    const left = await store.blockedFor(blocks[0]!);
    expect(left).toBeGreaterThan(1_000);
    await sleep(left - 900); // under half left
    await login();
    expect(goodSets()).toBe(2);
    expect(await store.blockedFor(blocks[0]!)).toBeGreaterThan(1_500);
  });

  it('lets exactly maxFailuresPerUser of 40 simultaneous attempts through and gives the refused ones their points back', async () => {
    const { l, store } = setup();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => l.charge(`198.51.100.${i + 1}`, 'alice', `guess-${i}`)));
    expect(results.filter((r) => r.allowed)).toHaveLength(5);
    expect(new Set(results.filter((r) => !r.allowed).map((r) => (r as { reason: string }).reason))).toEqual(new Set(['user-locked']));
    const ticket = results.find((r) => r.allowed)!;
    if (!ticket.allowed) throw new Error('unreachable');
    expect(await store.get(ticket.ticket.keys.user, CFG.window)).toBe(5);
  });

  it('refuses by the source address once maxFailuresPerIp attempts are in flight', async () => {
    const { l } = setup();
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => l.charge('198.51.100.1', `user${i}`, 'x')));
    expect(results.filter((r) => r.allowed)).toHaveLength(10);
    expect(results.filter((r) => !r.allowed && r.reason === 'ip-locked')).toHaveLength(20);
  });

  it('gives the charge back on success, keeps it on failure and locks at the limit', async () => {
    const { l, store } = setup({ maxFailuresPerUser: 2 });
    const ok = await l.charge('198.51.100.1', 'bob', 'right');
    if (!ok.allowed) throw new Error('refused');
    await l.succeeded(ok.ticket);
    expect(await store.get(ok.ticket.keys.user, CFG.window)).toBe(0);
    for (const pw of ['a', 'b']) {
      const c = await l.charge('198.51.100.2', 'bob', pw);
      if (!c.allowed) throw new Error('refused');
      await l.failed(c.ticket);
    }
    expect(await l.charge('198.51.100.3', 'bob', 'right')).toEqual({ allowed: false, reason: 'user-locked' });
  });

  it('after a lockout ends allows one more attempt, and a burst only one', async () => {
    const { l } = setup({ maxFailuresPerUser: 2, lockout: 150 });
    for (const pw of ['a', 'b']) {
      const c = await l.charge('198.51.100.1', 'carol', pw);
      if (c.allowed) await l.failed(c.ticket);
    }
    expect((await l.charge('198.51.100.1', 'carol', 'c')).allowed).toBe(false);
    await sleep(250);
    const burst = await Promise.all(['d', 'e', 'f'].map((pw) => l.charge('198.51.100.1', 'carol', pw)));
    expect(burst.filter((r) => r.allowed)).toHaveLength(1);
  });

  it('does not charge a wrong password already counted for that user, but still applies its locks', async () => {
    const { l, store } = setup({ maxFailuresPerUser: 2 });
    const first = await l.charge('198.51.100.1', 'dave', 'old');
    if (!first.allowed) throw new Error('refused');
    await l.failed(first.ticket);
    for (let i = 0; i < 5; i++) {
      const again = await l.charge('198.51.100.1', 'dave', 'old');
      if (!again.allowed) throw new Error('refused');
      expect(again.ticket.counts).toBeNull();
      await l.failed(again.ticket);
    }
    expect(await store.get(first.ticket.keys.user, CFG.window)).toBe(1);
  });

  it('gives the charge back when nothing was sent after all', async () => {
    const { l, store } = setup();
    const c = await l.charge('198.51.100.1', 'erin', 'x');
    if (!c.allowed) throw new Error('refused');
    await l.abandoned(c.ticket);
    expect(await store.get(c.ticket.keys.ip, CFG.window)).toBe(0);
    expect(await store.get(c.ticket.keys.user, CFG.window)).toBe(0);
  });

  it('lets a known-good pair try under its own counter while the user is locked', async () => {
    const { l } = setup({ maxFailuresPerUser: 2 });
    const owner = await l.charge('203.0.113.7', 'frank', 'right');
    if (!owner.allowed) throw new Error('refused');
    await l.succeeded(owner.ticket);
    for (const [i, pw] of ['a', 'b', 'c'].entries()) {
      const c = await l.charge(`198.51.100.${i + 1}`, 'frank', pw);
      if (c.allowed) await l.failed(c.ticket);
    }
    expect((await l.charge('198.51.100.9', 'frank', 'right')).allowed).toBe(false);
    expect((await l.charge('203.0.113.7', 'frank', 'right')).allowed).toBe(true);
  });

  it('never refuses with lockout: 0, and never charges a trusted network', async () => {
    const { l } = setup({ lockout: 0, maxFailuresPerUser: 1 }, ['10.0.0.0/8']);
    const results = await Promise.all(Array.from({ length: 5 }, (_, i) => l.charge('198.51.100.1', 'gina', `p${i}`)));
    expect(results.every((r) => r.allowed)).toBe(true);
    const trusted = await l.charge('10.1.2.3', 'gina', 'x');
    expect(trusted.allowed && trusted.ticket.counts).toBeNull();
  });
});

describe('counter store refund and setCount, also through the primary', () => {
  it('never refunds below zero or into a new window, and sets a count', async () => {
    const store = createCounterStore('memory', silentLogger);
    await store.refund('k', 1000);
    expect(await store.get('k', 1000)).toBe(0);
    await store.consume('k', 1000, 3);
    await runStoreBatch(store, [{ op: 'refund', key: 'k', windowMs: 1000, points: 5 }]);
    expect(await store.get('k', 1000)).toBe(0);
    await runStoreBatch(store, [{ op: 'setCount', key: 'k', windowMs: 1000, points: 4 }]);
    expect(await store.consume('k', 1000)).toBe(5);
  });

  it('lets right passwords over the limit wait for the attempts in flight instead of refusing them', async () => {
    const { l, store } = setup({}, [], 3_000);
    // 30 clients behind one address log in as one user at the same moment, each accepted ~15 ms later.
    const results = await Promise.all(Array.from({ length: 30 }, async () => {
      const c = await l.charge('198.51.100.7', 'shared', 'right');
      if (c.allowed) {
        await sleep(15);
        await l.succeeded(c.ticket);
      }
      return c.allowed;
    }));
    expect(results.every(Boolean)).toBe(true);
    const probe = await l.charge('198.51.100.7', 'shared', 'right');
    if (!probe.allowed) throw new Error('refused');
    expect(await store.get(probe.ticket.keys.ip, CFG.window)).toBe(1);
  });

  it('still lets no more than the limit through when the attempts in flight fail: the waiting ones meet the lockout', async () => {
    const { l } = setup({}, [], 3_000);
    let reached = 0;
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const c = await l.charge(`198.51.100.${i + 1}`, 'victim', `guess-${i}`);
      if (c.allowed) {
        reached++;
        await sleep(100);
        await l.failed(c.ticket);
      }
      return c;
    }));
    expect(reached).toBe(CFG.maxFailuresPerUser);
    expect(results.filter((r) => !r.allowed).map((r) => (r as { reason: string }).reason)).toEqual(Array(15).fill('user-locked'));
    // Refused when the lockout started, not after the whole wait.
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('refuses a waiting attempt once inFlightWaitMs has passed with the others still in flight', async () => {
    const { l } = setup({ maxFailuresPerUser: 1 }, [], 200);
    const first = await l.charge('198.51.100.1', 'slow', 'a');
    expect(first.allowed).toBe(true);
    const started = Date.now();
    expect(await l.charge('198.51.100.2', 'slow', 'b')).toEqual({ allowed: false, reason: 'user-locked' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });
});
