/**
 * Issue 9 item 6: route and rule user patterns meet login names nobody has
 * authenticated. With globs run as backtracking regexes, route `*.*.*@legacy.example.org`
 * and one AUTH LOGIN with a 5,000-character name froze every session for 34 s.
 * Globs now match without regexes and names over MAX_USER_NAME_OCTETS match nothing.
 * (Refusing over-long names at login is the login path's own cap, tested there.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileUserPattern } from '../../src/policy/user-pattern.ts';
import { RuleSet } from '../../src/policy/rules.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { hostileConfig } from './helpers.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

const ROUTE = '*.*.*@legacy.example.org';
const RULE_PATTERNS = [ROUTE, '*.*.*.*@*', '?*.*?.*?@*.example.*', 'ops-*-*-*@*'];

/** Names built to make a backtracking matcher try every way to split them. */
const HOSTILE_NAMES = [
  '.'.repeat(5000),
  'a.'.repeat(2500),
  `${'.'.repeat(4980)}@legacy.example.or`,
  '.'.repeat(255),
  'a.'.repeat(127),
  `${'.'.repeat(236)}@legacy.example.or`, // 254 octets, just under the cap, no match at the very end
  `ops-${'-'.repeat(240)}`,
];

function elapsed(run: () => void): number {
  const started = performance.now();
  run();
  return performance.now() - started;
}

describe('user patterns against hostile login names', () => {
  it('matches each hostile name against route and rule patterns in milliseconds', () => {
    for (const pattern of RULE_PATTERNS) {
      const m = compileUserPattern(pattern);
      for (const name of HOSTILE_NAMES) expect(elapsed(() => m(name)), `${pattern} vs ${name.length} chars`).toBeLessThan(50);
    }
  });

  it('finds no rule for a hostile name in milliseconds, and still finds the rule for a normal one', () => {
    const rules = new RuleSet(RULE_PATTERNS.map((user) => ({
      match: { user, network: null }, deny: ['DELE'], allow: null, maxMessages: null, maxBytes: null, mode: 'enforce' as const,
    })));
    for (const name of HOSTILE_NAMES) {
      expect(elapsed(() => rules.forSession(name, '127.0.0.1')), `${name.length} chars`).toBeLessThan(50);
    }
    expect(rules.forSession('a.b.c@legacy.example.org', '127.0.0.1').matched).toBe(0);
    expect(rules.forSession('alice', '127.0.0.1').matched).toBeNull();
  });
});

describe('a gateway routing *.*.*@legacy.example.org', () => {
  let dovecot: DovecotInstance;
  let g: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [{ name: 'alice', password: 'alice-secret' }, { name: 'x.y.z', password: 'xyz-secret' }] });
    dovecot.addMessage('x.y.z', 'Subject: routed\r\n\r\nrouted\r\n');
    g = await startTestGateway(dovecot.port, hostileConfig({
      // Only the route sends the local part: a login as x.y.z@legacy.example.org that works went through it.
      routes: [{ match: ROUTE, backend: { host: '127.0.0.1', port: dovecot.port }, loginAs: 'local-part' }],
      policy: { rules: [{ match: { user: '*.*.*@*.example.org' }, deny: ['DELE'] }] },
    }));
  });

  afterAll(async () => {
    await g?.stop();
    await dovecot?.stop();
  });

  /**
   * Starts the hostile login with `finish` (which sends its last line), then times
   * NOOPs on the logged-in session until the hostile one has its answer.
   */
  async function noopTimesDuring(normal: Pop3TestClient, finish: () => Promise<string>): Promise<{ times: number[]; reply: string }> {
    const answered = finish();
    let done: string | null = null;
    void answered.then((r) => { done = r; }, () => { done = 'failed'; });
    const times: number[] = [];
    for (let i = 0; i < 20 && (done === null || i < 3); i++) {
      const started = performance.now();
      expect(await normal.command('NOOP')).toMatch(/^\+OK/);
      times.push(performance.now() - started);
    }
    return { times, reply: await answered };
  }

  it('keeps a concurrent session answering while AUTH LOGIN carries a 5,000-character name', async () => {
    const normal = await Pop3TestClient.connect({ port: g.port.plain! });
    await normal.login('alice', 'alice-secret');
    const hostile = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await hostile.command('AUTH LOGIN')).toBe('+ VXNlcm5hbWU6');
    expect(await hostile.command(b64('.'.repeat(5000)))).toBe('+ UGFzc3dvcmQ6');
    const { times, reply } = await noopTimesDuring(normal, () => hostile.command(b64('whatever'), 10_000));
    expect(reply).toMatch(/^-ERR/);
    expect(Math.max(...times)).toBeLessThan(500);
    // The normal session is intact and the hostile name matched no rule on the way.
    expect(await normal.command('STAT')).toMatch(/^\+OK/);
    await normal.quit();
    await hostile.close();
  });

  it('keeps a concurrent session answering while USER/PASS carries a hostile name as long as a command line allows', async () => {
    const normal = await Pop3TestClient.connect({ port: g.port.plain! });
    await normal.login('alice', 'alice-secret');
    const hostile = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await hostile.command(`USER ${'a.'.repeat(115)}@legacy.example.or`)).toMatch(/^\+OK/);
    const { times, reply } = await noopTimesDuring(normal, () => hostile.command('PASS whatever', 10_000));
    expect(reply).toMatch(/^-ERR/);
    expect(Math.max(...times)).toBeLessThan(500);
    await normal.quit();
    await hostile.close();
  });

  it('still routes a normal name through the glob and applies the glob rule to it', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('x.y.z@legacy.example.org', 'xyz-secret');
    expect(await c.command('DELE 1')).toMatch(/^-ERR/);
    expect(await c.command('STAT')).toMatch(/^\+OK 1 /);
    await c.quit();
  });
});
