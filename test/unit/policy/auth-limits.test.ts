import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { PolicyConfig } from '../../../src/config/schema.ts';
import { AuthLimiter, type LoginFailureReason } from '../../../src/policy/auth-limits.ts';
import { createCounterStore } from '../../../src/policy/counter-store.ts';
import { NetworkSet } from '../../../src/policy/networks.ts';
import { silentLogger } from '../../../src/util/logger.ts';
import { captureLogger } from './log-sink.ts';

const MIN = 60_000;
const CFG: PolicyConfig['auth'] = {
  maxFailuresPerIp: 10,
  maxFailuresPerUser: 5,
  window: 15 * MIN,
  lockout: 15 * MIN,
  failureDelay: 1_000,
  maxAttemptsPerSession: 3,
  ipv6Prefix: 64,
};

function limiter(over: Partial<PolicyConfig['auth']> = {}, trusted: string[] = [], log = silentLogger): AuthLimiter {
  return new AuthLimiter({ ...CFG, ...over }, new NetworkSet(trusted), createCounterStore('memory', silentLogger), { log });
}

/** `n` failures with distinct passwords. */
async function fail(l: AuthLimiter, ip: string, user: string, n: number, tag = 'p'): Promise<void> {
  for (let i = 0; i < n; i++) await l.recordFailure(ip, user, `${tag}-${i}`);
}

beforeEach(() => {
  vi.useFakeTimers();
  vi.setSystemTime(new Date('2025-03-01T12:00:00Z'));
});
afterEach(() => {
  vi.useRealTimers();
});

describe('AuthLimiter failure counting', () => {
  it('locks an IP for every user once it reaches maxFailuresPerIp within the window', async () => {
    const l = limiter();
    for (let i = 0; i < 9; i++) await l.recordFailure('198.51.100.1', `user${i}`, 'x');
    expect(await l.check('198.51.100.1', 'someone')).toEqual({ allowed: true });
    const r = await l.recordFailure('198.51.100.1', 'user9', 'x');
    expect(r).toEqual({ counted: true, lockout: 'ip' });
    expect(await l.check('198.51.100.1', 'someone')).toEqual({ allowed: false, reason: 'ip-locked' });
    expect(await l.check('198.51.100.2', 'someone')).toEqual({ allowed: true });
  });

  it('locks a user from every source once it reaches maxFailuresPerUser within the window', async () => {
    const l = limiter();
    for (let i = 1; i <= 4; i++) await l.recordFailure(`198.51.100.${i}`, 'bob', `guess${i}`);
    expect(await l.check('203.0.113.9', 'bob')).toEqual({ allowed: true });
    expect(await l.recordFailure('198.51.100.5', 'bob', 'guess5')).toEqual({ counted: true, lockout: 'user' });
    expect(await l.check('203.0.113.9', 'bob')).toEqual({ allowed: false, reason: 'user-locked' });
    expect(await l.check('203.0.113.9', 'carol')).toEqual({ allowed: true });
  });

  it('lets the lockout run out after `lockout`', async () => {
    const l = limiter({ window: 5 * MIN, lockout: 10 * MIN });
    await fail(l, '198.51.100.1', 'bob', 5);
    vi.advanceTimersByTime(10 * MIN - 1_000);
    expect((await l.check('198.51.100.7', 'bob')).allowed).toBe(false);
    vi.advanceTimersByTime(1_001);
    expect(await l.check('198.51.100.7', 'bob')).toEqual({ allowed: true });
  });

  it('forgets failures once the window has passed', async () => {
    const l = limiter();
    await fail(l, '198.51.100.1', 'bob', 4, 'a');
    vi.advanceTimersByTime(15 * MIN + 1);
    await fail(l, '198.51.100.1', 'bob', 4, 'b');
    expect(await l.check('198.51.100.1', 'bob')).toEqual({ allowed: true });
    // The fifth failure of the new window is what locks.
    expect((await l.recordFailure('198.51.100.1', 'bob', 'c')).lockout).toBe('user');
  });

  it('counts a retried wrong password once, but each different password', async () => {
    const l = limiter();
    expect(await l.recordFailure('198.51.100.1', 'bob', 'old-password')).toEqual({ counted: true, lockout: null });
    for (let i = 0; i < 20; i++) {
      expect(await l.recordFailure('198.51.100.1', 'bob', 'old-password')).toEqual({ counted: false, lockout: null });
    }
    expect(await l.check('198.51.100.1', 'bob')).toEqual({ allowed: true });
    await fail(l, '198.51.100.1', 'bob', 4, 'new');
    expect(await l.check('198.51.100.1', 'bob')).toEqual({ allowed: false, reason: 'user-locked' });
  });

  it('counts a retried password again once its window has passed', async () => {
    const l = limiter();
    await l.recordFailure('198.51.100.1', 'bob', 'old-password');
    vi.advanceTimersByTime(15 * MIN + 1);
    expect((await l.recordFailure('198.51.100.1', 'bob', 'old-password')).counted).toBe(true);
  });

  it('counts every failure whose password it cannot see (SASL)', async () => {
    const l = limiter();
    for (let i = 0; i < 4; i++) expect((await l.recordFailure('198.51.100.1', 'bob', null)).counted).toBe(true);
    expect((await l.recordFailure('198.51.100.1', 'bob', null)).lockout).toBe('user');
  });

  it('counts "Alice ", "ALICE", "alice" and a full-width "ａｌｉｃｅ" as one user', async () => {
    const l = limiter();
    const variants = ['Alice ', 'ALICE', 'alice', '  aLiCe', 'ａｌｉｃｅ'];
    for (const [i, v] of variants.entries()) await l.recordFailure(`198.51.100.${i + 1}`, v, `pw${i}`);
    for (const v of variants) expect(await l.check('203.0.113.1', v)).toEqual({ allowed: false, reason: 'user-locked' });
    expect(l.normalizeUser('  ＡLICE@Example.ORG ')).toBe('alice@example.org');
  });

  it('treats the same password under a user-name variant as the same retry', async () => {
    const l = limiter();
    expect((await l.recordFailure('198.51.100.1', 'Alice', 'pw')).counted).toBe(true);
    expect((await l.recordFailure('198.51.100.1', ' alice ', 'pw')).counted).toBe(false);
  });

  it('groups IPv6 clients by their /64', async () => {
    const l = limiter({ maxFailuresPerUser: 100 });
    for (let i = 1; i <= 10; i++) await l.recordFailure(`2001:db8:1:2::${i.toString(16)}`, `u${i}`, 'x');
    expect(await l.check('2001:db8:1:2:ffff:ffff:ffff:ffff', 'anyone')).toEqual({ allowed: false, reason: 'ip-locked' });
    expect(await l.check('2001:db8:1:3::1', 'anyone')).toEqual({ allowed: true });
  });

  it('honours another ipv6Prefix', async () => {
    const l = limiter({ ipv6Prefix: 48, maxFailuresPerUser: 100 });
    for (let i = 1; i <= 10; i++) await l.recordFailure(`2001:db8:1:${i.toString(16)}::1`, `u${i}`, 'x');
    expect((await l.check('2001:db8:1:ffff::1', 'anyone')).allowed).toBe(false);
  });
});

describe("AuthLimiter: the owner's allowance", () => {
  const OWNER_IP = '192.0.2.10';

  it('lets the owner in from a known-good source while an attacker has the user locked elsewhere', async () => {
    const l = limiter();
    await l.recordSuccess(OWNER_IP, 'alice');
    for (let i = 1; i <= 10; i++) await l.recordFailure(`198.51.100.${i}`, 'alice', `guess-${i}`);
    expect(await l.check('198.51.100.11', 'alice')).toEqual({ allowed: false, reason: 'user-locked' });
    expect(await l.check('198.51.100.1', 'alice')).toEqual({ allowed: false, reason: 'user-locked' });
    expect(await l.check(OWNER_IP, 'alice')).toEqual({ allowed: true });
    expect(await l.check(OWNER_IP, 'ALICE ')).toEqual({ allowed: true });
  });

  it("still limits the known-good source by its own counter", async () => {
    const l = limiter();
    await l.recordSuccess(OWNER_IP, 'alice');
    await fail(l, '198.51.100.1', 'alice', 5, 'attacker');
    await fail(l, OWNER_IP, 'alice', 4, 'typo');
    expect(await l.check(OWNER_IP, 'alice')).toEqual({ allowed: true });
    expect((await l.recordFailure(OWNER_IP, 'alice', 'typo-last')).lockout).toBe('user');
    expect(await l.check(OWNER_IP, 'alice')).toEqual({ allowed: false, reason: 'user-locked' });
  });

  it("clears the known-good pair's own counter on success", async () => {
    const l = limiter();
    await l.recordSuccess(OWNER_IP, 'alice');
    await fail(l, '198.51.100.1', 'alice', 5, 'attacker');
    await fail(l, OWNER_IP, 'alice', 4, 'typo-a');
    await l.recordSuccess(OWNER_IP, 'alice');
    await fail(l, OWNER_IP, 'alice', 4, 'typo-b');
    expect(await l.check(OWNER_IP, 'alice')).toEqual({ allowed: true });
  });

  it('does not extend the allowance to the known-good source when the source itself is locked', async () => {
    const l = limiter();
    await l.recordSuccess(OWNER_IP, 'alice');
    for (let i = 0; i < 10; i++) await l.recordFailure(OWNER_IP, `other${i}`, 'x');
    expect(await l.check(OWNER_IP, 'alice')).toEqual({ allowed: false, reason: 'ip-locked' });
  });

  it('forgets a known-good source after knownGoodForMs', async () => {
    const l = new AuthLimiter(CFG, new NetworkSet([]), createCounterStore('memory', silentLogger), { knownGoodForMs: 60 * MIN });
    await l.recordSuccess(OWNER_IP, 'alice');
    vi.advanceTimersByTime(61 * MIN);
    await fail(l, '198.51.100.1', 'alice', 5, 'attacker');
    expect(await l.check(OWNER_IP, 'alice')).toEqual({ allowed: false, reason: 'user-locked' });
  });
});

describe('AuthLimiter and trusted networks', () => {
  it('never counts, delays or locks a client in trustedNetworks', async () => {
    const l = limiter({}, ['10.0.0.0/8']);
    for (let i = 0; i < 30; i++) {
      expect(await l.recordFailure('10.1.2.3', 'monitor', `p${i}`)).toEqual({ counted: false, lockout: null });
    }
    expect(await l.check('10.1.2.3', 'monitor')).toEqual({ allowed: true });
    expect(l.failureDelay('10.1.2.3')).toBe(0);
    expect(l.failureDelay('198.51.100.1')).toBe(1_000);
    expect(l.activeLockouts()).toBe(0);
  });

  it('lets a trusted client in even for a user locked by others', async () => {
    const l = limiter({}, ['10.0.0.0/8']);
    await fail(l, '198.51.100.1', 'bob', 5);
    expect(await l.check('10.0.0.5', 'bob')).toEqual({ allowed: true });
    expect((await l.check('198.51.100.2', 'bob')).allowed).toBe(false);
  });
});

describe('AuthLimiter delays and verdicts', () => {
  it('measures the failure delay from the command arrival', () => {
    const l = limiter();
    const arrived = Date.now();
    vi.advanceTimersByTime(300);
    expect(l.delayRemaining('198.51.100.1', arrived)).toBe(700);
    vi.advanceTimersByTime(2_000);
    expect(l.delayRemaining('198.51.100.1', arrived)).toBe(0);
  });

  it('answers every failure with authFailed, and closes after the same reply at maxAttemptsPerSession', () => {
    const l = limiter();
    expect(l.failureVerdict('bad-credentials', 1)).toEqual({ kind: 'deny', reason: 'bad-credentials', reply: 'authFailed' });
    expect(l.failureVerdict('user-locked', 2)).toEqual({ kind: 'deny', reason: 'user-locked', reply: 'authFailed' });
    expect(l.failureVerdict('bad-credentials', 3)).toEqual({
      kind: 'deny',
      reason: 'bad-credentials',
      reply: 'authFailed',
      close: true,
    });
  });

  it('has no session cap when maxAttemptsPerSession is 0', () => {
    expect(limiter({ maxAttemptsPerSession: 0 }).failureVerdict('bad-credentials', 1000).close).toBeUndefined();
  });

  it('counts running lockouts for the metrics gauge and lets them expire', async () => {
    const l = limiter();
    await fail(l, '198.51.100.1', 'bob', 5);
    expect(l.activeLockouts()).toBe(1);
    await fail(l, '198.51.100.2', 'carol', 5);
    expect(l.activeLockouts()).toBe(2);
    vi.advanceTimersByTime(15 * MIN);
    expect(l.activeLockouts()).toBe(0);
  });
});

describe('AuthLimiter: no enumeration, no lockout oracle', () => {
  const PASSWORDS: Record<string, string> = { alice: 'correct horse', bob: 'battery staple' };
  const backendAccepts = (user: string, pw: string): boolean => PASSWORDS[user.trim().toLowerCase()] === pw;

  /** What a client can observe of one login, driven only by what the policy returns (the session's path). */
  async function observe(l: AuthLimiter, ip: string, user: string, pw: string, failuresBefore: number) {
    // The session's path: charge first, then the backend's verdict settles the ticket.
    const c = await l.charge(ip, user, pw);
    let reason: LoginFailureReason;
    if (!c.allowed) reason = c.reason;
    else if (backendAccepts(user, pw)) {
      await l.succeeded(c.ticket);
      return { ok: true as const };
    } else {
      await l.failed(c.ticket);
      reason = 'bad-credentials';
    }
    const v = l.failureVerdict(reason, failuresBefore + 1);
    return { ok: false as const, seen: { reply: v.reply, close: v.close ?? false, delay: l.failureDelay(ip) }, reason };
  }

  it('answers a locked-out user with the right password exactly like a wrong password or an unknown user', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 1, maxLength: 20 }).filter((u) => !(u.trim().toLowerCase() in PASSWORDS)),
        fc.string({ maxLength: 20 }).filter((p) => !Object.values(PASSWORDS).includes(p)),
        fc.integer({ min: 0, max: 4 }),
        async (unknownUser, wrongPw, failuresBefore) => {
          const l = limiter();
          // An attacker locks alice from elsewhere.
          await fail(l, '198.51.100.1', 'alice', 5, 'attack');
          const ip = '203.0.113.50';
          const locked = await observe(l, ip, 'alice', PASSWORDS.alice!, failuresBefore);
          const wrong = await observe(l, ip, 'bob', wrongPw, failuresBefore);
          const unknown = await observe(l, ip, unknownUser, wrongPw, failuresBefore);
          expect(locked.ok).toBe(false);
          expect(wrong.ok).toBe(false);
          expect(unknown.ok).toBe(false);
          if (locked.ok || wrong.ok || unknown.ok) return;
          expect(locked.seen).toEqual(wrong.seen);
          expect(unknown.seen).toEqual(wrong.seen);
          // Only the internal reason, for the audit, tells them apart.
          expect(locked.reason).toBe('user-locked');
          expect(wrong.reason).toBe('bad-credentials');
        },
      ),
      { numRuns: 50 },
    );
  });

  it('gives an IP-locked client the same reply and delay as a wrong password', async () => {
    const l = limiter({ maxFailuresPerUser: 100 });
    for (let i = 0; i < 10; i++) await l.recordFailure('198.51.100.9', `u${i}`, 'x');
    const locked = await observe(l, '198.51.100.9', 'bob', PASSWORDS.bob!, 0);
    const wrong = await observe(l, '198.51.100.10', 'bob', 'nope', 0);
    expect(locked.ok || wrong.ok).toBe(false);
    if (locked.ok || wrong.ok) return;
    expect(locked.reason).toBe('ip-locked');
    expect(locked.seen).toEqual(wrong.seen);
  });

  it('lets a right password through with no delay when nothing is locked', async () => {
    const l = limiter();
    expect(await observe(l, '203.0.113.1', 'bob', PASSWORDS.bob!, 0)).toEqual({ ok: true });
  });
});

describe('AuthLimiter logging', () => {
  it('never logs a password or a user name, even when it locks', async () => {
    const { log, lines } = captureLogger();
    const l = limiter({}, [], log);
    for (let i = 0; i < 12; i++) await l.recordFailure('198.51.100.1', 'Secret.User@example.org', `hunter2-${i}`);
    await l.recordSuccess('198.51.100.2', 'Secret.User@example.org');
    expect(lines.some((x) => x.obj.event === 'auth-lockout' && x.obj.scope === 'ip')).toBe(true);
    expect(lines.some((x) => x.obj.event === 'auth-lockout' && x.obj.scope === 'user')).toBe(true);
    const text = JSON.stringify(lines).toLowerCase();
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('secret.user');
  });
});
