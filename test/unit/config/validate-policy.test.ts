import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../src/config/schema.ts';
import { configOf, onlyProblem, problemsOf } from './helpers.ts';

describe('validateConfig: policy', () => {
  it('fills every policy default from DEFAULTS', () => {
    const d = DEFAULTS.policy;
    expect(configOf().policy).toEqual({
      commands: { allow: d.allow },
      auth: {
        maxFailuresPerIp: d.maxFailuresPerIp,
        maxFailuresPerUser: d.maxFailuresPerUser,
        window: d.window,
        lockout: d.lockout,
        failureDelay: d.failureDelay,
        maxAttemptsPerSession: d.maxAttemptsPerSession,
        ipv6Prefix: d.ipv6Prefix,
      },
      connections: { maxPerIp: d.maxPerIp, maxTotal: d.maxTotal, ratePerIp: d.ratePerIp, rateWindow: d.rateWindow },
      timeouts: { idle: d.idle, auth: d.auth, backendReply: d.backendReply },
      rateLimitStore: 'memory',
      trustedNetworks: [],
      rules: [],
    });
  });

  it('reports an unknown policy key with a did-you-mean hint', () => {
    const p = onlyProblem((raw) => (raw.policy = { auth: { maxFailuresPerIP: 3 } }));
    expect(p.path).toBe('policy.auth.maxFailuresPerIP');
    expect(p.message).toBe('unknown key "maxFailuresPerIP" (did you mean "maxFailuresPerIp"?)');
  });

  it('rejects an empty commands allowlist', () => {
    expect(onlyProblem((raw) => (raw.policy = { commands: { allow: [] } }))).toMatchObject({
      path: 'policy.commands.allow',
    });
  });

  it('rejects an unknown verb in the commands allowlist', () => {
    expect(onlyProblem((raw) => (raw.policy = { commands: { allow: ['USER', 'PASS', 'XAUTH'] } }))).toMatchObject({
      path: 'policy.commands.allow[2]',
      message: 'found "XAUTH"',
    });
  });

  it('rejects a window written in words, with the duration forms as expected', () => {
    expect(onlyProblem((raw) => (raw.policy = { auth: { window: '15 minutes' } }))).toEqual({
      path: 'policy.auth.window',
      message: 'found "15 minutes"',
      expected: 'a duration like "250ms", "10s", "15m", "1h", above 0',
    });
  });

  it('rejects a zero window but accepts a zero lockout', () => {
    expect(onlyProblem((raw) => (raw.policy = { auth: { window: 0 } })).path).toBe('policy.auth.window');
    expect(configOf((raw) => (raw.policy = { auth: { lockout: 0 } })).policy.auth.lockout).toBe(0);
  });

  it('rejects a bare number as a duration', () => {
    expect(onlyProblem((raw) => (raw.policy = { auth: { failureDelay: 1000 } })).path).toBe('policy.auth.failureDelay');
  });

  it.each(['maxFailuresPerIp', 'maxFailuresPerUser'])('rejects %s below 1', (key) => {
    expect(onlyProblem((raw) => (raw.policy = { auth: { [key]: 0 } }))).toMatchObject({
      path: `policy.auth.${key}`,
      expected: 'an integer of at least 1',
    });
  });

  it('rejects an IPv6 prefix longer than 128', () => {
    expect(onlyProblem((raw) => (raw.policy = { auth: { ipv6Prefix: 129 } })).path).toBe('policy.auth.ipv6Prefix');
  });

  it('rejects a fractional connection limit', () => {
    expect(onlyProblem((raw) => (raw.policy = { connections: { maxPerIp: 2.5 } })).path).toBe(
      'policy.connections.maxPerIp',
    );
  });

  it('allows an idle timeout shorter than the RFC\'s 10 minutes', () => {
    expect(configOf((raw) => (raw.policy = { timeouts: { idle: '30s' } })).policy.timeouts.idle).toBe(30_000);
  });

  it.each(['redis', 'http://localhost:6379', 'redis://localhost', 'redis://localhost:6379/x', 'redis://h:1/0?a=b', 'memory:'])(
    'rejects the rate limit store %j',
    (store) => {
      expect(onlyProblem((raw) => (raw.policy = { rateLimitStore: store }))).toMatchObject({
        path: 'policy.rateLimitStore',
        message: `found ${JSON.stringify(store)}`,
      });
    },
  );

  it.each(['memory', 'redis://localhost:6379', 'redis://10.0.0.1:6380/3', 'rediss://:secret@[::1]:6379/0'])(
    'accepts the rate limit store %j',
    (store) => {
      expect(configOf((raw) => (raw.policy = { rateLimitStore: store })).policy.rateLimitStore).toBe(store);
    },
  );

  it('rejects a trusted network that is not a CIDR', () => {
    expect(onlyProblem((raw) => (raw.policy = { trustedNetworks: ['10.0.0.0/8', 'intranet'] }))).toMatchObject({
      path: 'policy.trustedNetworks[1]',
      message: 'found "intranet"',
    });
  });
});

describe('validateConfig: policy rules', () => {
  const withRules = (...rules: unknown[]) => (raw: Record<string, any>) => (raw.policy = { rules });

  it('reads a rule with defaults for everything but match', () => {
    expect(configOf(withRules({ match: { user: 'archive@*' } })).policy.rules).toEqual([
      { match: { user: 'archive@*', network: null }, deny: [], allow: null, maxMessages: null, maxBytes: null, mode: 'enforce' },
    ]);
  });

  it('reads sizes, caps, negated networks and upper-cases verbs', () => {
    const [rule] = configOf(withRules({
      match: { network: '!10.0.0.0/8' },
      deny: ['top', 'dele'],
      allow: ['retr', 'quit'],
      maxMessages: 200,
      maxBytes: '500MiB',
      mode: 'report',
    })).policy.rules;
    expect(rule).toEqual({
      match: { user: null, network: '!10.0.0.0/8' },
      deny: ['TOP', 'DELE'],
      allow: ['RETR', 'QUIT'],
      maxMessages: 200,
      maxBytes: 500 * 1024 * 1024,
      mode: 'report',
    });
  });

  it('rejects a rule without match', () => {
    expect(onlyProblem(withRules({ deny: ['DELE'] }))).toMatchObject({ path: 'policy.rules[0].match', message: 'missing' });
  });

  it('rejects a rule whose match has neither user nor network', () => {
    expect(onlyProblem(withRules({ match: {}, deny: ['DELE'] }))).toMatchObject({
      path: 'policy.rules[0].match',
      message: 'neither user nor network is given',
    });
  });

  it('rejects a rule network that is not a CIDR, negated or not', () => {
    expect(onlyProblem(withRules({ match: { network: '!10.0.0.0/40' } }))).toMatchObject({
      path: 'policy.rules[0].match.network',
    });
  });

  it('rejects a rule user pattern whose regex does not compile', () => {
    expect(onlyProblem(withRules({ match: { user: '/[a-/' } }))).toMatchObject({ path: 'policy.rules[0].match.user' });
  });

  it('rejects a rule user regex that repeats a repeating group, saying why', () => {
    expect(onlyProblem(withRules({ match: { user: '/^(a+)+$/' } }))).toMatchObject({
      path: 'policy.rules[0].match.user',
      expected: expect.stringContaining('(a+)+ or (.*)*'),
    });
  });

  it('rejects an unknown verb in deny', () => {
    expect(onlyProblem(withRules({ match: { user: 'a' }, deny: ['DELE', 'PURGE'] }))).toMatchObject({
      path: 'policy.rules[0].deny[1]',
      message: 'found "PURGE"',
    });
  });

  it('rejects a mode outside enforce and report', () => {
    expect(onlyProblem(withRules({ match: { user: 'a' }, mode: 'audit' }))).toMatchObject({
      path: 'policy.rules[0].mode',
      expected: 'one of: enforce, report',
    });
  });

  it('rejects a maxBytes that is not a size', () => {
    expect(onlyProblem(withRules({ match: { user: 'a' }, maxBytes: '500 megs' }))).toMatchObject({
      path: 'policy.rules[0].maxBytes',
    });
  });

  it('rejects a negative maxMessages', () => {
    expect(onlyProblem(withRules({ match: { user: 'a' }, maxMessages: -1 }))).toMatchObject({
      path: 'policy.rules[0].maxMessages',
    });
  });

  it('reports problems in several rules at their own indexes', () => {
    const problems = problemsOf(withRules({ match: { user: 'a' } }, { match: { user: 'b' }, mode: 'x' }, 'oops'));
    expect(problems.map((p) => p.path)).toEqual(['policy.rules[1].mode', 'policy.rules[2]']);
  });
});
