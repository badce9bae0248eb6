import { describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../../src/config/schema.ts';
import { RuleSet } from '../../../src/policy/rules.ts';

type RuleInput = Partial<Omit<RuleConfig, 'match'>> & { match: Partial<RuleConfig['match']> };

function rule({ match, ...over }: RuleInput): RuleConfig {
  return {
    deny: [],
    allow: null,
    maxMessages: null,
    maxBytes: null,
    mode: 'enforce',
    ...over,
    match: { user: match.user ?? null, network: match.network ?? null },
  };
}

const BASE: ReadonlySet<string> = new Set(['CAPA', 'STAT', 'LIST', 'UIDL', 'TOP', 'RETR', 'DELE', 'NOOP', 'RSET', 'QUIT']);

describe('RuleSet matching', () => {
  it('applies nothing when no rule matches', () => {
    const s = new RuleSet([rule({ match: { user: 'archive@*' }, deny: ['DELE'] })]).forSession('bob@x.org', '10.0.0.1');
    expect(s.matched).toBeNull();
    expect(s.check('DELE')).toEqual({ kind: 'allow' });
    expect(s.allowedVerbs(BASE)).toBe(BASE);
  });

  it('uses the first matching rule and ignores later ones', () => {
    const rules = new RuleSet([
      rule({ match: { user: '*@x.org' }, deny: ['TOP'] }),
      rule({ match: { user: 'bob@x.org' }, deny: ['DELE'] }),
    ]);
    const s = rules.forSession('bob@x.org', '10.0.0.1');
    expect(s.matched).toBe(0);
    expect(s.check('TOP').kind).toBe('deny');
    expect(s.check('DELE').kind).toBe('allow');
  });

  it('matches user patterns: exact, *@domain, glob and regex', () => {
    const rules = new RuleSet([
      rule({ match: { user: 'Exact@x.org' } }),
      rule({ match: { user: '*@legacy.org' } }),
      rule({ match: { user: 'ops-?@*' } }),
      rule({ match: { user: '/^svc-[a-z]+$/' } }),
    ]);
    expect(rules.forSession('exact@X.org', '1.1.1.1').matched).toBe(0);
    expect(rules.forSession('bob@legacy.org', '1.1.1.1').matched).toBe(1);
    expect(rules.forSession('ops-7@any.org', '1.1.1.1').matched).toBe(2);
    expect(rules.forSession('svc-backup', '1.1.1.1').matched).toBe(3);
    expect(rules.forSession('nobody@x.org', '1.1.1.1').matched).toBeNull();
  });

  it('matches a network, and "!" matches everything outside it', () => {
    const rules = new RuleSet([rule({ match: { network: '!10.0.0.0/8' }, deny: ['TOP'] })]);
    expect(rules.forSession('bob', '10.2.3.4').matched).toBeNull();
    expect(rules.forSession('bob', '::ffff:10.2.3.4').matched).toBeNull();
    expect(rules.forSession('bob', '203.0.113.5').matched).toBe(0);
    expect(rules.forSession('bob', '2001:db8::1').matched).toBe(0);
  });

  it('needs both the user and the network to match when both are given', () => {
    const rules = new RuleSet([rule({ match: { user: 'archive@*', network: '192.0.2.0/24' } })]);
    expect(rules.forSession('archive@x', '192.0.2.7').matched).toBe(0);
    expect(rules.forSession('archive@x', '198.51.100.7').matched).toBeNull();
    expect(rules.forSession('bob@x', '192.0.2.7').matched).toBeNull();
  });

  it('keeps sessions apart: each gets its own counters', () => {
    const rules = new RuleSet([rule({ match: { user: 'bob' }, maxMessages: 1 })]);
    const a = rules.forSession('bob', '1.1.1.1');
    a.recordRetrieved(10);
    expect(a.check('RETR').kind).toBe('deny');
    expect(rules.forSession('bob', '1.1.1.1').check('RETR').kind).toBe('allow');
  });
});

describe('SessionRules narrowing', () => {
  it('refuses a denied verb with rule-deny (a read-only mailbox)', () => {
    const s = new RuleSet([rule({ match: { user: 'archive@*' }, deny: ['dele'] })]).forSession('archive@x', '1.1.1.1');
    expect(s.check('DELE')).toEqual({ kind: 'deny', reason: 'rule-deny', reply: 'notAllowed' });
    expect(s.check('dele').kind).toBe('deny');
    expect(s.check('RETR').kind).toBe('allow');
    expect(s.allowedVerbs(BASE).has('DELE')).toBe(false);
    expect(s.allowedVerbs(BASE).has('RETR')).toBe(true);
  });

  it('with allow, permits only the listed verbs (and QUIT, so the session can end)', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, allow: ['STAT', 'RETR'] })]).forSession('bob', '1.1.1.1');
    expect(s.check('STAT').kind).toBe('allow');
    expect(s.check('RETR').kind).toBe('allow');
    expect(s.check('LIST')).toEqual({ kind: 'deny', reason: 'rule-deny', reply: 'notAllowed' });
    expect(s.check('QUIT').kind).toBe('allow');
    expect([...s.allowedVerbs(BASE)].sort()).toEqual(['QUIT', 'RETR', 'STAT']);
  });

  it('never narrows QUIT even when a rule denies it', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, deny: ['QUIT'] })]).forSession('bob', '1.1.1.1');
    expect(s.check('QUIT').kind).toBe('allow');
    expect(s.allowedVerbs(BASE).has('QUIT')).toBe(true);
  });

  it('does not add verbs the base set lacks', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, allow: ['STAT', 'APOP'] })]).forSession('bob', '1.1.1.1');
    expect(s.allowedVerbs(new Set(['STAT', 'QUIT']))).toEqual(new Set(['STAT', 'QUIT']));
  });

  it('caps messages retrieved per session with max-messages, counting RETR and TOP', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxMessages: 2 })]).forSession('bob', '1.1.1.1');
    expect(s.check('RETR').kind).toBe('allow');
    s.recordRetrieved(100);
    expect(s.check('TOP').kind).toBe('allow');
    s.recordRetrieved(20);
    expect(s.check('RETR')).toEqual({ kind: 'deny', reason: 'max-messages', reply: 'messageLimit' });
    expect(s.check('TOP').kind).toBe('deny');
    expect(s.check('LIST').kind).toBe('allow');
    expect(s.check('DELE').kind).toBe('allow');
  });

  it('caps bytes retrieved with max-bytes once reached', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxBytes: 1000 })]).forSession('bob', '1.1.1.1');
    s.recordRetrieved(600);
    expect(s.check('RETR').kind).toBe('allow');
    s.recordRetrieved(400);
    expect(s.check('RETR')).toEqual({ kind: 'deny', reason: 'max-bytes', reply: 'messageLimit' });
  });

  it('refuses a message whose known size would pass maxBytes, and allows one that fits exactly', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxBytes: 1000 })]).forSession('bob', '1.1.1.1');
    s.recordRetrieved(600);
    expect(s.check('RETR', 401)).toEqual({ kind: 'deny', reason: 'max-bytes', reply: 'messageLimit' });
    expect(s.check('RETR', 400).kind).toBe('allow');
    expect(s.check('RETR', null).kind).toBe('allow');
  });
});

describe('report-only rules', () => {
  const rules = new RuleSet([
    rule({ match: { network: '!10.0.0.0/8' }, deny: ['TOP'], maxMessages: 1, maxBytes: 500, mode: 'report' }),
  ]);

  it('report what they would refuse but let the command through', () => {
    const s = rules.forSession('bob', '203.0.113.1');
    expect(s.mode).toBe('report');
    expect(s.check('TOP')).toEqual({ kind: 'report', reason: 'rule-deny' });
    expect(s.check('RETR', 600)).toEqual({ kind: 'report', reason: 'max-bytes' });
    s.recordRetrieved(100);
    expect(s.check('RETR')).toEqual({ kind: 'report', reason: 'max-messages' });
    expect(s.check('STAT')).toEqual({ kind: 'allow' });
  });

  it('leave CAPA unchanged', () => {
    expect(rules.forSession('bob', '203.0.113.1').allowedVerbs(BASE)).toBe(BASE);
  });
});
