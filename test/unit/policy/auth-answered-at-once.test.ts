/**
 * With the memory store a login's charge and settlement are answered at once (no promise, no
 * microtask); a store that cannot (Redis, the cluster worker over IPC) gets the same decisions
 * step by step. The same scripted logins run through both must give the same answers.
 */
import { describe, expect, it } from 'vitest';
import type { PolicyConfig } from '../../../src/config/schema.ts';
import { AuthLimiter, type ChargeResult } from '../../../src/policy/auth-limits.ts';
import { createCounterStore } from '../../../src/policy/counter-store.ts';
import { NetworkSet } from '../../../src/policy/networks.ts';
import { andThen } from '../../../src/util/maybe-async.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { asyncOnlyStore } from '../../harness/counter-stores.ts';

const CFG: PolicyConfig['auth'] = {
  maxFailuresPerIp: 6, maxFailuresPerUser: 3, window: 60_000, lockout: 60_000,
  failureDelay: 0, maxAttemptsPerSession: 3, ipv6Prefix: 64,
};

const summary = (r: ChargeResult): string => (r.allowed ? `ok ${JSON.stringify(r.ticket.counts)} good=${r.ticket.goodForMs > 0}` : r.reason);

/** Logins as [ip, user, right password?], settled as the session settles them; the answers in order. */
async function script(l: AuthLimiter, steps: Array<[string, string, boolean]>): Promise<string[]> {
  const out: string[] = [];
  for (const [ip, user, right] of steps) {
    const r = await l.charge(ip, user, right ? 'right' : `wrong-${out.length}`);
    out.push(summary(r));
    if (!r.allowed) continue;
    if (right) await l.succeeded(r.ticket);
    else out.push(`lockout ${(await l.failed(r.ticket)).lockout}`);
  }
  return out;
}

describe('AuthLimiter with a store that answers at once', () => {
  it('charges and settles without a promise on the memory store', () => {
    const l = new AuthLimiter(CFG, new NetworkSet([]), createCounterStore('memory', silentLogger), { inFlightWaitMs: 0 });
    const r = l.charge('198.51.100.7', 'alice', 'right');
    expect(r).not.toBeInstanceOf(Promise);
    expect((r as ChargeResult).allowed).toBe(true);
    const settled = l.succeeded((r as Extract<ChargeResult, { allowed: true }>).ticket);
    expect(settled).not.toBeInstanceOf(Promise);
  });

  it('still answers with promises for a store that cannot answer at once', async () => {
    const l = new AuthLimiter(CFG, new NetworkSet([]), asyncOnlyStore(createCounterStore('memory', silentLogger)), { inFlightWaitMs: 0 });
    const r = l.charge('198.51.100.7', 'alice', 'right');
    expect(r).toBeInstanceOf(Promise);
    expect((await r).allowed).toBe(true);
  });

  it('gives the same answers either way: counts, known-good pairs, refusals and lockouts', async () => {
    const steps: Array<[string, string, boolean]> = [
      ['198.51.100.7', 'alice', true], // alice becomes known good from .7
      ['203.0.113.9', 'alice', false], ['203.0.113.9', 'alice', false], ['203.0.113.9', 'alice', false], // locks alice
      ['203.0.113.9', 'alice', true], // refused: user locked
      ['198.51.100.7', 'alice', true], // the owner's pair still gets in
      ['203.0.113.9', 'bob', false], ['203.0.113.9', 'bob', false], ['203.0.113.9', 'carol', false], // the source reaches its limit
      ['203.0.113.9', 'dave', true], // refused: source locked
    ];
    const now = new AuthLimiter(CFG, new NetworkSet([]), createCounterStore('memory', silentLogger), { inFlightWaitMs: 0 });
    const later = new AuthLimiter(CFG, new NetworkSet([]), asyncOnlyStore(createCounterStore('memory', silentLogger)), { inFlightWaitMs: 0 });
    const a = await script(now, steps);
    expect(a).toEqual(await script(later, steps));
    expect(a).toContain('user-locked');
    expect(a).toContain('ip-locked');
    expect(a.filter((x) => x.startsWith('ok') && x.endsWith('good=true'))).toHaveLength(1);
  });
});

describe('andThen', () => {
  it('runs the next step at once for a value, and after the promise for a promise', async () => {
    const order: string[] = [];
    const v = andThen(1, (x) => {
      order.push('value');
      return x + 1;
    });
    order.push('after');
    expect(v).toBe(2);
    const p = andThen(Promise.resolve(1), (x) => {
      order.push('promise');
      return x + 1;
    });
    order.push('after promise');
    expect(p).toBeInstanceOf(Promise);
    expect(await p).toBe(2);
    expect(order).toEqual(['value', 'after', 'after promise', 'promise']);
  });
});
