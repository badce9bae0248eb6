import { describe, expect, it } from 'vitest';
import { NetworkSet } from '../../../src/policy/networks.ts';
import {
  effectiveRequireTls,
  plaintextAuthAllowed,
  startupProblems,
  startupWarnings,
  stlsOffered,
} from '../../../src/policy/tls-gate.ts';
import { listener } from './listeners.ts';

const none = new NetworkSet([]);

describe('plaintextAuthAllowed', () => {
  it.each([
    ['starttls', true, false, false],
    ['starttls', true, true, true],
    ['starttls', false, false, true],
    ['implicit', true, true, true],
    ['implicit', true, false, true],
    ['none', true, false, false],
    ['none', false, false, true],
  ] as const)('on a %s listener with requireTls %s and TLS active %s says %s', (listenerTls, requireTls, tlsActive, want) => {
    expect(plaintextAuthAllowed({ listenerTls, requireTls, tlsActive })).toBe(want);
  });
});

describe('stlsOffered', () => {
  it('offers STLS only on a starttls listener before TLS is up', () => {
    expect(stlsOffered({ listenerTls: 'starttls', tlsActive: false, stlsAllowed: true })).toBe(true);
    expect(stlsOffered({ listenerTls: 'starttls', tlsActive: true, stlsAllowed: true })).toBe(false);
    expect(stlsOffered({ listenerTls: 'implicit', tlsActive: true, stlsAllowed: true })).toBe(false);
    expect(stlsOffered({ listenerTls: 'none', tlsActive: false, stlsAllowed: true })).toBe(false);
  });

  it('does not offer STLS when the allowlist leaves it out', () => {
    expect(stlsOffered({ listenerTls: 'starttls', tlsActive: false, stlsAllowed: false })).toBe(false);
  });
});

describe('startupProblems', () => {
  it('refuses a none listener on a public address without an explicit requireTls: false', () => {
    const problems = startupProblems([listener({ name: 'plain', tls: 'none', host: '0.0.0.0' })], none);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain('listeners[0] (plain)');
    expect(problems[0]).toContain('requireTls: false');
  });

  it('accepts a none listener when requireTls: false is written explicitly', () => {
    const l = listener({ name: 'plain', tls: 'none', host: '0.0.0.0', requireTls: false, requireTlsExplicit: true });
    expect(startupProblems([l], none)).toEqual([]);
  });

  it('accepts a none listener bound to loopback', () => {
    expect(startupProblems([listener({ name: 'lo', tls: 'none', host: '127.0.0.1' })], none)).toEqual([]);
    expect(startupProblems([listener({ name: 'lo6', tls: 'none', host: '::1' })], none)).toEqual([]);
  });

  it('accepts a none listener whose host is inside trustedNetworks', () => {
    const trusted = new NetworkSet(['10.0.0.0/8']);
    expect(startupProblems([listener({ name: 'lan', tls: 'none', host: '10.1.2.3' })], trusted)).toEqual([]);
  });

  it('never trusts the every-interface address, even with a catch-all trusted network', () => {
    const trusted = new NetworkSet(['0.0.0.0/0']);
    expect(startupProblems([listener({ name: 'any', tls: 'none', host: '0.0.0.0' })], trusted)).toHaveLength(1);
  });

  it('has nothing to say about starttls and implicit listeners', () => {
    const ls = [listener({ name: 'a', tls: 'starttls' }), listener({ name: 'b', tls: 'implicit' })];
    expect(startupProblems(ls, none)).toEqual([]);
  });

  it('reports every offending listener', () => {
    const ls = [listener({ name: 'a', tls: 'none' }), listener({ name: 'b' }), listener({ name: 'c', tls: 'none', host: '192.0.2.1' })];
    const problems = startupProblems(ls, none);
    expect(problems).toHaveLength(2);
    expect(problems[1]).toContain('listeners[2] (c)');
  });
});

describe('startupWarnings', () => {
  it('warns when requireTls: false is written on a none or starttls listener', () => {
    const ls = [
      listener({ name: 'plain', tls: 'none', requireTls: false, requireTlsExplicit: true }),
      listener({ name: 'stls', tls: 'starttls', requireTls: false, requireTlsExplicit: true }),
    ];
    const w = startupWarnings(ls, none);
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(/listeners\[0\] \(plain\).*plaintext/);
    expect(w[1]).toMatch(/listeners\[1\] \(stls\).*plaintext/);
  });

  it('warns that requireTls: true on a none listener refuses every login', () => {
    const w = startupWarnings([listener({ name: 'p', tls: 'none', host: '127.0.0.1', requireTlsExplicit: true })], none);
    expect(w).toHaveLength(1);
    expect(w[0]).toContain('refuses every login');
  });

  it('stays quiet for defaults and for implicit listeners', () => {
    const ls = [
      listener({ name: 'a' }),
      listener({ name: 'b', tls: 'implicit', requireTls: false, requireTlsExplicit: true }),
      listener({ name: 'c', tls: 'none', host: '127.0.0.1' }),
    ];
    expect(startupWarnings(ls, none)).toEqual([]);
  });
});

describe('effectiveRequireTls', () => {
  it('relaxes the default on a loopback or trusted none listener, and only there', () => {
    expect(effectiveRequireTls(listener({ name: 'a', tls: 'none', host: '127.0.0.1' }), none)).toBe(false);
    expect(effectiveRequireTls(listener({ name: 'b', tls: 'none', host: '10.0.0.1' }), new NetworkSet(['10.0.0.0/8']))).toBe(false);
    expect(effectiveRequireTls(listener({ name: 'c', tls: 'starttls', host: '127.0.0.1' }), none)).toBe(true);
  });

  it('keeps what the YAML said explicitly', () => {
    const l = listener({ name: 'a', tls: 'none', host: '127.0.0.1', requireTls: true, requireTlsExplicit: true });
    expect(effectiveRequireTls(l, none)).toBe(true);
    const s = listener({ name: 'b', tls: 'starttls', requireTls: false, requireTlsExplicit: true });
    expect(effectiveRequireTls(s, none)).toBe(false);
  });
});

describe('a plaintext listener behind a PROXY-protocol balancer', () => {
  const proxied = listener({ name: 'behind-haproxy', host: '127.0.0.1', tls: 'none', proxyProtocol: true });

  it('is not treated as local even though it binds loopback', () => {
    expect(effectiveRequireTls(proxied, none)).toBe(true);
    expect(startupProblems([proxied], none)).toHaveLength(1);
    expect(startupProblems([proxied], none)[0]).toContain('PROXY-protocol balancer');
  });

  it('starts when requireTls: false is written explicitly', () => {
    const optedIn = { ...proxied, requireTls: false, requireTlsExplicit: true };
    expect(startupProblems([optedIn], none)).toEqual([]);
    expect(effectiveRequireTls(optedIn, none)).toBe(false);
  });
});

describe('requireTls: report', () => {
  const reporting = listener({ name: 'rollout', host: '0.0.0.0', tls: 'starttls', requireTls: true, requireTlsExplicit: true, requireTlsReport: true });

  it('enforces nothing, so CAPA offers USER and SASL before STLS', () => {
    expect(effectiveRequireTls(reporting, none)).toBe(false);
    expect(plaintextAuthAllowed({ listenerTls: 'starttls', requireTls: effectiveRequireTls(reporting, none), tlsActive: false })).toBe(true);
  });

  it('lets a plaintext listener start and warns that logins are only audited', () => {
    const plain = { ...reporting, tls: 'none' as const };
    expect(startupProblems([plain], none)).toEqual([]);
    expect(startupWarnings([plain], none).join('\n')).toContain('requireTls: report');
  });
});
