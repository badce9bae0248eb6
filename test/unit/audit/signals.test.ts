import { describe, expect, it } from 'vitest';
import { DEFAULT_SIGNALS, SignalDetector, hostOf, networkOf, type SignalConfig } from '../../../src/audit/signals.ts';
import { LruMap } from '../../../src/audit/lru.ts';

function detector(over: Partial<SignalConfig> = {}) {
  let t = 1_000_000;
  const clock = { now: () => t, advance: (ms: number) => (t += ms) };
  const d = new SignalDetector({ downloadBytesPerUser: 1000, window: 60_000, usersPerSource: 3, usersWindow: 10_000, massDele: 5, ...over }, clock.now);
  return { d, clock };
}

describe('audit signals', () => {
  it('defaults are 1 GiB per hour, 10 users in 10 minutes and 100 DELEs', () => {
    expect(DEFAULT_SIGNALS).toMatchObject({ downloadBytesPerUser: 1024 ** 3, window: 3_600_000, usersPerSource: 10, usersWindow: 600_000, massDele: 100 });
  });

  it('the first login of a user is not a new source, a login from another /24 is', () => {
    const { d } = detector();
    expect(d.onLogin('alice', '192.0.2.10')).toEqual([]);
    expect(d.onLogin('alice', '192.0.2.99')).toEqual([]);
    expect(d.onLogin('alice', '198.51.100.4')).toEqual([
      { signal: 'new-source', detail: { user: 'alice', source: '198.51.100.0/24', knownSources: 1 } },
    ]);
    expect(d.onLogin('alice', '198.51.100.5')).toEqual([]);
  });

  it('IPv6 clients are grouped by /64 and IPv4-mapped addresses count as IPv4', () => {
    expect(networkOf('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(networkOf('::ffff:192.0.2.1')).toBe('192.0.2.0/24');
    expect(hostOf('192.0.2.1')).toBe('192.0.2.1');
    const { d } = detector();
    d.onLogin('bob', '2001:db8:1:2::1');
    expect(d.onLogin('bob', '2001:db8:1:2::ffff')).toEqual([]);
    expect(d.onLogin('bob', '2001:db8:1:3::1')[0]?.signal).toBe('new-source');
  });

  it('a failed login never teaches a source', () => {
    const { d } = detector();
    d.onLogin('alice', '192.0.2.1');
    d.onLogin('alice', '203.0.113.1', false);
    expect(d.onLogin('alice', '203.0.113.1').map((s) => s.signal)).toEqual(['new-source']);
  });

  it('many distinct users from one address within the window fire once per window', () => {
    const { d, clock } = detector();
    expect(d.onLogin('u1', '203.0.113.9', false)).toEqual([]);
    expect(d.onLogin('u2', '203.0.113.9', false)).toEqual([]);
    expect(d.onLogin('u2', '203.0.113.9', false)).toEqual([]);
    const fired = d.onLogin('u3', '203.0.113.9', false);
    expect(fired).toEqual([
      { signal: 'many-users-one-source', detail: { source: '203.0.113.9', count: 3, users: ['u1', 'u2', 'u3'], windowMs: 10_000 } },
    ]);
    expect(d.onLogin('u4', '203.0.113.9', false)).toEqual([]);
    clock.advance(10_000);
    expect(d.onLogin('u5', '203.0.113.9', false)).toEqual([]);
  });

  it('users spread out beyond the window do not add up', () => {
    const { d, clock } = detector();
    d.onLogin('u1', '203.0.113.9', false);
    clock.advance(6_000);
    d.onLogin('u2', '203.0.113.9', false);
    clock.advance(6_000);
    expect(d.onLogin('u3', '203.0.113.9', false)).toEqual([]);
  });

  it('download volume over the threshold fires once per window, then again in the next one', () => {
    const { d, clock } = detector();
    expect(d.onRetrieved('alice', 600)).toEqual([]);
    expect(d.onRetrieved('alice', 500)).toEqual([{ signal: 'download-volume', detail: { user: 'alice', bytes: 1100, windowMs: 60_000 } }]);
    expect(d.onRetrieved('alice', 5000)).toEqual([]);
    expect(d.onRetrieved('bob', 999)).toEqual([]);
    clock.advance(60_000);
    expect(d.onRetrieved('alice', 10)).toEqual([]);
    expect(d.onRetrieved('alice', 2000)).toHaveLength(1);
  });

  it('mass DELE fires exactly when a session reaches the threshold', () => {
    const { d } = detector();
    expect([1, 2, 3, 4].flatMap((n) => d.onDele(n))).toEqual([]);
    expect(d.onDele(5)).toEqual([{ signal: 'mass-dele', detail: { deles: 5 } }]);
    expect(d.onDele(6)).toEqual([]);
  });

  it('a threshold of 0 turns that signal off', () => {
    const { d } = detector({ downloadBytesPerUser: 0, usersPerSource: 0, massDele: 0 });
    expect(d.onRetrieved('a', 1e12)).toEqual([]);
    expect(d.onDele(1)).toEqual([]);
    expect(['a', 'b', 'c', 'd'].flatMap((u) => d.onLogin(u, '203.0.113.1', false))).toEqual([]);
  });

  it('memory stays bounded: the least recently seen users are forgotten', () => {
    const { d } = detector({ maxUsers: 100, maxSources: 10 });
    for (let i = 0; i < 3000; i++) {
      d.onLogin(`user${i}`, `10.${(i >> 8) & 255}.${i & 255}.1`);
      d.onRetrieved(`user${i}`, 1);
    }
    const internals = d as unknown as { seen: LruMap<string, string[]>; volume: LruMap<string, unknown>; sources: LruMap<string, { users: Map<string, number> }> };
    expect(internals.seen.size).toBe(100);
    expect(internals.volume.size).toBe(100);
    expect(internals.sources.size).toBe(10);
    // user0 was forgotten, so its next login is a "first" login again: no signal.
    expect(d.onLogin('user0', '172.16.0.1')).toEqual([]);
  });

  it('a roaming user keeps at most 32 networks', () => {
    const { d } = detector();
    for (let i = 0; i < 100; i++) d.onLogin('rover', `10.0.${i}.1`);
    const seen = (d as unknown as { seen: LruMap<string, string[]> }).seen.get('rover')!;
    expect(seen).toHaveLength(32);
    expect(seen.at(-1)).toBe('10.0.99.0/24');
  });
});

describe('LRU map', () => {
  it('evicts the least recently used key and get() refreshes a key', () => {
    const m = new LruMap<string, number>(2);
    m.set('a', 1);
    m.set('b', 2);
    m.get('a');
    m.set('c', 3);
    expect(m.has('a')).toBe(true);
    expect(m.has('b')).toBe(false);
    expect(m.size).toBe(2);
  });

  it('refuses a size below one', () => {
    expect(() => new LruMap(0)).toThrow(RangeError);
  });
});
