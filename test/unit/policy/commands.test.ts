import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../src/config/schema.ts';
import { AUTH_VERBS, authVerdict, CommandPolicy } from '../../../src/policy/commands.ts';
import { stlsOffered, plaintextAuthAllowed } from '../../../src/policy/tls-gate.ts';
import { listener } from './listeners.ts';

const GLOBAL = ['CAPA', 'USER', 'PASS', 'STLS', 'STAT', 'LIST', 'RETR', 'QUIT'];

describe('CommandPolicy', () => {
  const policy = new CommandPolicy(GLOBAL, [
    listener({ name: 'pop3' }),
    listener({ name: 'readonly', allow: ['capa', 'USER', 'PASS', 'STAT', 'LIST', 'RETR', 'QUIT'] }),
  ]);

  it('allows a verb in the global allowlist on a listener without its own', () => {
    expect(policy.check('pop3', 'RETR')).toEqual({ kind: 'allow' });
  });

  it('refuses a verb outside the allowlist with not-in-allowlist and the notAllowed reply, without closing', () => {
    expect(policy.check('pop3', 'DELE')).toEqual({ kind: 'deny', reason: 'not-in-allowlist', reply: 'notAllowed' });
  });

  it('uses a listener allowlist instead of the global one', () => {
    expect(policy.check('readonly', 'STLS').kind).toBe('deny');
    expect(policy.check('pop3', 'STLS').kind).toBe('allow');
  });

  it('compares verbs case-insensitively on both sides', () => {
    expect(policy.check('readonly', 'Capa').kind).toBe('allow');
    expect(policy.allowedVerbs('readonly').has('CAPA')).toBe(true);
  });

  it('gives the allowed verbs per listener for CAPA', () => {
    expect([...policy.allowedVerbs('pop3')].sort()).toEqual([...GLOBAL].sort());
    expect(policy.allowedVerbs('readonly').has('STLS')).toBe(false);
  });

  it('throws for a listener it was not built with', () => {
    expect(() => policy.check('nope', 'CAPA')).toThrow(/unknown listener/);
  });

  it('accepts every default verb with the default allowlist', () => {
    const p = new CommandPolicy(DEFAULTS.policy.allow, [listener({ name: 'x' })]);
    for (const v of DEFAULTS.policy.allow) expect(p.check('x', v).kind).toBe('allow');
  });
});

describe('authVerdict', () => {
  it.each([...AUTH_VERBS])('refuses %s before STLS on a starttls listener that requires TLS', (verb) => {
    expect(authVerdict({ verb, listenerTls: 'starttls', requireTls: true, tlsActive: false })).toEqual({
      kind: 'deny',
      reason: 'tls-required',
      reply: 'stlsFirst',
    });
  });

  it('allows the same verbs once TLS is active', () => {
    for (const verb of AUTH_VERBS) {
      expect(authVerdict({ verb, listenerTls: 'starttls', requireTls: true, tlsActive: true }).kind).toBe('allow');
    }
  });

  it('allows them without TLS when requireTls is false', () => {
    expect(authVerdict({ verb: 'pass', listenerTls: 'starttls', requireTls: false, tlsActive: false }).kind).toBe('allow');
  });

  it('never gets in the way of other verbs', () => {
    for (const verb of ['CAPA', 'STLS', 'QUIT', 'NOOP']) {
      expect(authVerdict({ verb, listenerTls: 'starttls', requireTls: true, tlsActive: false }).kind).toBe('allow');
    }
  });

  it('agrees with what CAPA advertises in every combination', () => {
    for (const listenerTls of ['implicit', 'starttls', 'none'] as const) {
      for (const requireTls of [true, false]) {
        for (const tlsActive of listenerTls === 'implicit' ? [true] : listenerTls === 'none' ? [false] : [true, false]) {
          const advertisesUser = plaintextAuthAllowed({ listenerTls, requireTls, tlsActive });
          const accepts = authVerdict({ verb: 'USER', listenerTls, requireTls, tlsActive }).kind === 'allow';
          expect(accepts).toBe(advertisesUser);
          // When USER is withheld on a starttls listener, STLS is the way forward.
          if (!advertisesUser && listenerTls === 'starttls') {
            expect(stlsOffered({ listenerTls, tlsActive, stlsAllowed: true })).toBe(true);
          }
        }
      }
    }
  });
});
