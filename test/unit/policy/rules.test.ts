import { describe, expect, it } from 'vitest';
import type { RuleConfig } from '../../../src/config/schema.ts';
import { RuleSet, type SessionRules } from '../../../src/policy/rules.ts';
import type { Verdict } from '../../../src/policy/verdict.ts';

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

/** The verdict alone: any reservation taken is given back at once (as a -ERR reply would). */
function check(s: SessionRules, verb: string, size: number | null = null): Verdict {
  const { verdict, reservation } = s.admit(verb, size);
  reservation?.settle(null);
  return verdict;
}

/** A retrieval admitted and answered +OK with `octets` relayed. */
function retrieved(s: SessionRules, octets: number, verb = 'RETR'): void {
  const { verdict, reservation } = s.admit(verb, octets);
  expect(verdict.kind).not.toBe('deny');
  reservation!.settle(octets);
}

describe('RuleSet matching', () => {
  it('applies nothing when no rule matches', () => {
    const s = new RuleSet([rule({ match: { user: 'archive@*' }, deny: ['DELE'] })]).forSession('bob@x.org', '10.0.0.1');
    expect(s.matched).toBeNull();
    expect(check(s, 'DELE')).toEqual({ kind: 'allow' });
    expect(s.allowedVerbs(BASE)).toBe(BASE);
  });

  it('uses the first matching rule and ignores later ones', () => {
    const rules = new RuleSet([
      rule({ match: { user: '*@x.org' }, deny: ['TOP'] }),
      rule({ match: { user: 'bob@x.org' }, deny: ['DELE'] }),
    ]);
    const s = rules.forSession('bob@x.org', '10.0.0.1');
    expect(s.matched).toBe(0);
    expect(check(s, 'TOP').kind).toBe('deny');
    expect(check(s, 'DELE').kind).toBe('allow');
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
    retrieved(a, 10);
    expect(check(a, 'RETR').kind).toBe('deny');
    expect(check(rules.forSession('bob', '1.1.1.1'), 'RETR').kind).toBe('allow');
  });
});

describe('SessionRules narrowing', () => {
  it('refuses a denied verb with rule-deny (a read-only mailbox)', () => {
    const s = new RuleSet([rule({ match: { user: 'archive@*' }, deny: ['dele'] })]).forSession('archive@x', '1.1.1.1');
    expect(check(s, 'DELE')).toEqual({ kind: 'deny', reason: 'rule-deny', reply: 'notAllowed' });
    expect(check(s, 'dele').kind).toBe('deny');
    expect(check(s, 'RETR').kind).toBe('allow');
    expect(s.allowedVerbs(BASE).has('DELE')).toBe(false);
    expect(s.allowedVerbs(BASE).has('RETR')).toBe(true);
  });

  it('with allow, permits only the listed verbs (and QUIT, so the session can end)', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, allow: ['STAT', 'RETR'] })]).forSession('bob', '1.1.1.1');
    expect(check(s, 'STAT').kind).toBe('allow');
    expect(check(s, 'RETR').kind).toBe('allow');
    expect(check(s, 'LIST')).toEqual({ kind: 'deny', reason: 'rule-deny', reply: 'notAllowed' });
    expect(check(s, 'QUIT').kind).toBe('allow');
    expect([...s.allowedVerbs(BASE)].sort()).toEqual(['QUIT', 'RETR', 'STAT']);
  });

  it('never narrows QUIT even when a rule denies it', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, deny: ['QUIT'] })]).forSession('bob', '1.1.1.1');
    expect(check(s, 'QUIT').kind).toBe('allow');
    expect(s.allowedVerbs(BASE).has('QUIT')).toBe(true);
  });

  it('does not add verbs the base set lacks', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, allow: ['STAT', 'APOP'] })]).forSession('bob', '1.1.1.1');
    expect(s.allowedVerbs(new Set(['STAT', 'QUIT']))).toEqual(new Set(['STAT', 'QUIT']));
  });

  it('caps messages retrieved per session with max-messages, counting RETR and TOP', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxMessages: 2 })]).forSession('bob', '1.1.1.1');
    expect(check(s, 'RETR').kind).toBe('allow');
    retrieved(s, 100);
    expect(check(s, 'TOP').kind).toBe('allow');
    retrieved(s, 20);
    expect(check(s, 'RETR')).toEqual({ kind: 'deny', reason: 'max-messages', reply: 'messageLimit' });
    expect(check(s, 'TOP').kind).toBe('deny');
    expect(check(s, 'LIST').kind).toBe('allow');
    expect(check(s, 'DELE').kind).toBe('allow');
  });

  it('caps bytes retrieved with max-bytes once reached', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxBytes: 1000 })]).forSession('bob', '1.1.1.1');
    retrieved(s, 600);
    expect(check(s, 'RETR').kind).toBe('allow');
    retrieved(s, 400);
    expect(check(s, 'RETR')).toEqual({ kind: 'deny', reason: 'max-bytes', reply: 'messageLimit' });
  });

  it('refuses a message whose known size would pass maxBytes, and allows one that fits exactly', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxBytes: 1000 })]).forSession('bob', '1.1.1.1');
    retrieved(s, 600);
    expect(check(s, 'RETR', 401)).toEqual({ kind: 'deny', reason: 'max-bytes', reply: 'messageLimit' });
    expect(check(s, 'RETR', 400).kind).toBe('allow');
    expect(check(s, 'RETR', null).kind).toBe('allow');
  });
});

describe('reservations: caps that pipelined commands cannot pass', () => {
  it('counts a retrieval when it is admitted, before its reply: the third of three pipelined RETRs is refused', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxMessages: 2 })]).forSession('bob', '1.1.1.1');
    const first = s.admit('RETR', 100);
    const second = s.admit('TOP', 100);
    expect([first.verdict.kind, second.verdict.kind]).toEqual(['allow', 'allow']);
    expect(s.admit('RETR', 100)).toEqual({ verdict: { kind: 'deny', reason: 'max-messages', reply: 'messageLimit' }, reservation: null });
    first.reservation!.settle(100);
    second.reservation!.settle(100);
    expect(check(s, 'RETR').kind).toBe('deny');
  });

  it('reserves the message size against maxBytes while the body is still on its way', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxBytes: 1000 })]).forSession('bob', '1.1.1.1');
    expect(s.admit('RETR', 400).verdict.kind).toBe('allow');
    expect(s.admit('RETR', 400).verdict.kind).toBe('allow');
    expect(s.admit('RETR', 400).verdict).toEqual({ kind: 'deny', reason: 'max-bytes', reply: 'messageLimit' });
    expect(s.admit('RETR', 200).verdict.kind).toBe('allow'); // exactly 1000
    expect(s.admit('RETR', 0).verdict.kind).toBe('deny');
  });

  it('gives the whole reservation back when the backend answers -ERR', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxMessages: 1, maxBytes: 1000 })]).forSession('bob', '1.1.1.1');
    const missing = s.admit('RETR', 900);
    expect(check(s, 'RETR', 50).kind).toBe('deny');
    missing.reservation!.settle(null);
    expect(check(s, 'RETR', 1000).kind).toBe('allow');
  });

  it('settles TOP to the octets it relayed: the message size was only an upper bound', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxBytes: 1000 })]).forSession('bob', '1.1.1.1');
    const top = s.admit('TOP', 900);
    expect(check(s, 'RETR', 800).kind).toBe('deny');
    top.reservation!.settle(120);
    expect(check(s, 'RETR', 880).kind).toBe('allow');
    expect(check(s, 'RETR', 881).kind).toBe('deny');
  });

  it('settles a reservation only once', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxMessages: 1 })]).forSession('bob', '1.1.1.1');
    const r = s.admit('RETR', 10).reservation!;
    r.settle(null);
    r.settle(null);
    expect(s.admit('RETR', 10).verdict.kind).toBe('allow');
    expect(s.admit('RETR', 10).verdict.kind).toBe('deny');
  });

  it('reserves nothing for commands that retrieve nothing, and needs a size only under a byte cap', () => {
    const bytes = new RuleSet([rule({ match: { user: 'bob' }, maxBytes: 10 })]).forSession('bob', '1.1.1.1');
    expect(bytes.admit('DELE', 5).reservation).toBeNull();
    expect(bytes.admit('LIST').reservation).toBeNull();
    expect([bytes.needsSize('RETR'), bytes.needsSize('top'), bytes.needsSize('DELE')]).toEqual([true, true, false]);
    const noTop = new RuleSet([rule({ match: { user: 'bob' }, deny: ['TOP'], maxBytes: 10 })]).forSession('bob', '1.1.1.1');
    expect([noTop.needsSize('TOP'), noTop.needsSize('RETR')]).toEqual([false, true]);
    const count = new RuleSet([rule({ match: { user: 'bob' }, maxMessages: 1 })]).forSession('bob', '1.1.1.1');
    expect(count.needsSize('RETR')).toBe(false);
    const none = new RuleSet([]).forSession('bob', '1.1.1.1');
    expect(none.needsSize('RETR')).toBe(false);
    expect(none.admit('RETR', 5)).toEqual({ verdict: { kind: 'allow' }, reservation: null });
  });

  it('in report mode reserves as well, so the reports of later pipelined commands stay true', () => {
    const s = new RuleSet([rule({ match: { user: 'bob' }, maxMessages: 1, mode: 'report' })]).forSession('bob', '1.1.1.1');
    const first = s.admit('RETR', 10);
    const second = s.admit('RETR', 10);
    expect(first.verdict).toEqual({ kind: 'allow' });
    expect(second.verdict).toEqual({ kind: 'report', reason: 'max-messages' });
    expect(second.reservation).not.toBeNull();
  });
});

describe('report-only rules', () => {
  const rules = new RuleSet([
    rule({ match: { network: '!10.0.0.0/8' }, deny: ['TOP'], maxMessages: 1, maxBytes: 500, mode: 'report' }),
  ]);

  it('report what they would refuse but let the command through', () => {
    const s = rules.forSession('bob', '203.0.113.1');
    expect(s.mode).toBe('report');
    expect(check(s, 'TOP')).toEqual({ kind: 'report', reason: 'rule-deny' });
    expect(check(s, 'RETR', 600)).toEqual({ kind: 'report', reason: 'max-bytes' });
    retrieved(s, 100);
    expect(check(s, 'RETR')).toEqual({ kind: 'report', reason: 'max-messages' });
    expect(check(s, 'STAT')).toEqual({ kind: 'allow' });
  });

  it('leave CAPA unchanged', () => {
    expect(rules.forSession('bob', '203.0.113.1').allowedVerbs(BASE)).toBe(BASE);
  });
});
