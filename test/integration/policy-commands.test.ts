/**
 * Command allowlists, the POP3 state machine and TLS before passwords, end to end (issue 3):
 * a real Dovecot for what the client sees, a scripted backend to show that refused commands
 * never reach the backend.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';
import { eventually, fakeBackend, metricValue, receivedLines } from './policy-helpers.ts';

const ALL_BUT_TOP = ['CAPA', 'USER', 'PASS', 'APOP', 'AUTH', 'STLS', 'STAT', 'LIST', 'UIDL', 'RETR', 'DELE', 'NOOP', 'RSET', 'QUIT'];
const NOT_PERMITTED = '-ERR Command not permitted by policy.';
const BAD_STATE = '-ERR Command not valid in this state.';

const listeners = [
  { name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' },
  { name: 'pop3', host: '127.0.0.1', port: 0, tls: 'starttls' },
  { name: 'plain', host: '127.0.0.1', port: 0, tls: 'none' },
  // Its own allowlist: TOP (forbidden globally) allowed, RETR and UIDL not.
  { name: 'narrow', host: '127.0.0.1', port: 0, tls: 'none', commands: { allow: ['CAPA', 'USER', 'PASS', 'STAT', 'LIST', 'TOP', 'NOOP', 'QUIT'] } },
];

const capaLines = (body: Buffer | null) => (body ?? Buffer.alloc(0)).toString('latin1').split('\r\n').filter((l) => l !== '');

describe('command policy through the gateway in front of a real Dovecot', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot();
    for (let i = 1; i <= 3; i++) dovecot.addMessage('alice', `Subject: m${i}\r\n\r\nbody ${i}\r\n`);
    gw = await startTestGateway(dovecot.port, { listeners, policy: { commands: { allow: ALL_BUT_TOP } } });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  const metrics = () => gw.gw.metrics.text();

  it('answers a verb outside policy.commands.allow with -ERR by itself, and the session goes on', async () => {
    const before = metricValue(await metrics(), 'pop3gw_policy_refusals_total', { reason: 'not-in-allowlist' });
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('alice', 'alice-secret');
    expect(await c.command('TOP 1 0')).toBe(NOT_PERMITTED);
    expect(await c.command('STAT')).toMatch(/^\+OK 3 /);
    expect((await c.multiline('RETR 1')).body!.toString()).toContain('body 1');
    expect(await c.quit()).toMatch(/^\+OK/);
    expect(metricValue(await metrics(), 'pop3gw_policy_refusals_total', { reason: 'not-in-allowlist' })).toBe(before + 1);
    await eventually(() => gw.auditLines().some((l) => l.event === 'policy' && l.command === 'TOP'), 'the policy audit record');
    expect(gw.auditLines().find((l) => l.event === 'policy' && l.command === 'TOP')).toMatchObject({ result: 'denied', reason: 'not-in-allowlist', user: 'alice' });
    expect(gw.logs.find({ event: 'policy', verb: 'TOP', reason: 'not-in-allowlist', result: 'denied' })).toHaveLength(1);
  });

  it('leaves the capabilities of forbidden verbs out of CAPA, before and after login', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    const before = capaLines((await c.multiline('CAPA')).body);
    expect(before).not.toContain('TOP');
    expect(before).toContain('UIDL');
    expect(before).toContain('USER');
    await c.login('alice', 'alice-secret');
    const after = capaLines((await c.multiline('CAPA')).body);
    expect(after).not.toContain('TOP');
    expect(after).toContain('UIDL');
    await c.quit();
  });

  it('applies each listener its own allowlist', async () => {
    const narrow = await Pop3TestClient.connect({ port: gw.port.narrow! });
    const capa = capaLines((await narrow.multiline('CAPA')).body);
    expect(capa).toContain('TOP');
    expect(capa).not.toContain('UIDL');
    await narrow.login('alice', 'alice-secret');
    expect((await narrow.multiline('TOP 1 0')).status).toMatch(/^\+OK/);
    expect(await narrow.command('RETR 1')).toBe(NOT_PERMITTED);
    expect(await narrow.command('UIDL 1')).toBe(NOT_PERMITTED);
    expect(await narrow.command('STAT')).toMatch(/^\+OK 3 /);
    await narrow.quit();
    const global = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await global.login('alice', 'alice-secret');
    expect(await global.command('TOP 1 0')).toBe(NOT_PERMITTED);
    expect((await global.multiline('RETR 1')).status).toMatch(/^\+OK/);
    await global.quit();
  });

  it('enforces the POP3 state machine by itself: out-of-state commands, USER twice, PASS without USER, unknown verbs', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(await c.command('STAT')).toBe(BAD_STATE);
    expect(await c.command('NOOP')).toBe(BAD_STATE);
    expect(await c.command('RETR 1')).toBe(BAD_STATE);
    expect(await c.command('PASS alice-secret')).toBe('-ERR Send USER first.');
    expect(await c.command('XYZZY')).toBe('-ERR Unknown command.');
    expect(await c.command('USER alice')).toMatch(/^\+OK/);
    expect(await c.command('USER bob')).toBe(BAD_STATE);
    // The first USER still stands: the session went on through every refusal.
    expect(await c.command('PASS alice-secret')).toMatch(/^\+OK/);
    expect(await c.command('USER alice')).toBe('-ERR Already authenticated.');
    expect(await c.command('STLS')).toBe(BAD_STATE);
    expect(await c.command('XYZZY')).toBe('-ERR Unknown command.');
    expect(await c.command('NOOP')).toMatch(/^\+OK/);
    await c.quit();
  });

  it('refuses USER, PASS, APOP and AUTH before STLS on the starttls listener, and CAPA agrees', async () => {
    const before = metricValue(await metrics(), 'pop3gw_policy_refusals_total', { reason: 'tls-required' });
    const c = await Pop3TestClient.connect({ port: gw.port.pop3! });
    const capa = capaLines((await c.multiline('CAPA')).body);
    expect(capa).toContain('STLS');
    expect(capa.some((l) => l === 'USER' || l.startsWith('SASL'))).toBe(false);
    for (const line of ['USER alice', 'PASS alice-secret', 'APOP alice 0123456789abcdef0123456789abcdef', `AUTH PLAIN ${Buffer.from('\0alice\0alice-secret').toString('base64')}`, 'AUTH LOGIN']) {
      expect(await c.command(line)).toMatch(/^-ERR \[AUTH\] .*STLS/);
    }
    await c.startTls({ rejectUnauthorized: false });
    const after = capaLines((await c.multiline('CAPA')).body);
    expect(after).not.toContain('STLS');
    expect(after).toContain('USER');
    expect(after.find((l) => l.startsWith('SASL'))).toMatch(/^SASL PLAIN LOGIN/);
    await c.login('alice', 'alice-secret');
    await c.quit();
    expect(metricValue(await metrics(), 'pop3gw_policy_refusals_total', { reason: 'tls-required' })).toBe(before + 5);
    expect(gw.logs.find({ event: 'policy', reason: 'tls-required' }).length).toBeGreaterThanOrEqual(5);
    await eventually(() => gw.auditLines().filter((l) => l.event === 'policy' && l.reason === 'tls-required').length >= 5, 'the policy records');
    expect(gw.auditLines().filter((l) => l.event === 'policy' && l.reason === 'tls-required').map((l) => l.command))
      .toEqual(expect.arrayContaining(['USER', 'PASS', 'APOP', 'AUTH']));
  });

  it('answers a too-long line and unknown verbs with -ERR, closes after maxInvalidCommands, and counts both', async () => {
    const before = await metrics();
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(await c.command(`NOOP ${'x'.repeat(300)}`)).toBe('-ERR Line too long.');
    for (let i = 0; i < 8; i++) expect(await c.command('XYZZY')).toBe('-ERR Unknown command.');
    expect(await c.command('XYZZY')).toBe('-ERR Too many invalid commands, closing connection.');
    await c.waitClosed(3000);
    const after = await metrics();
    for (const reason of ['line-too-long', 'too-many-invalid']) {
      expect(metricValue(after, 'pop3gw_policy_refusals_total', { reason }) - metricValue(before, 'pop3gw_policy_refusals_total', { reason })).toBe(1);
    }
    expect(gw.logs.lines().some((l) => l.event === 'session-end' && l.reason === 'too-many-invalid')).toBe(true);
  });

  it('takes logins on a tls: none listener bound to loopback without requireTls written out', async () => {
    const plain = await Pop3TestClient.connect({ port: gw.port.plain! });
    const capa = capaLines((await plain.multiline('CAPA')).body);
    expect(capa).toContain('USER');
    expect(capa).not.toContain('STLS');
    await plain.login('alice', 'alice-secret');
    await plain.quit();
  });
});

describe('refused commands never reach the backend', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;
  const conns: ScriptConn[] = [];

  beforeAll(async () => {
    backend = await startScriptBackend(fakeBackend({ conns }));
    gw = await startTestGateway(backend.port, {
      listeners,
      // on-accept: the session's backend connection is open from the start, so it could see everything.
      backend: { connect: 'on-accept' },
      policy: { commands: { allow: ALL_BUT_TOP } },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('keeps out-of-state, unknown, disallowed and pre-STLS commands away from the backend', async () => {
    const starttls = await Pop3TestClient.connect({ port: gw.port.pop3! });
    for (const line of ['USER ok', 'PASS right', 'STAT', 'XYZZY', 'TOP 1 0']) expect(await starttls.command(line)).toMatch(/^-ERR/);
    await starttls.quit();
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    for (const line of ['STAT', 'NOOP', 'RETR 1', 'DELE 1', 'PASS right', 'XYZZY', 'TOP 1 0']) expect(await c.command(line)).toMatch(/^-ERR/);
    expect(await c.command('USER ok')).toMatch(/^\+OK/);
    expect(await c.command('USER other')).toBe(BAD_STATE);
    expect(await c.command('PASS right')).toMatch(/^\+OK/);
    expect(await c.command('TOP 1 0')).toBe(NOT_PERMITTED);
    expect(await c.command('USER ok')).toMatch(/^-ERR/);
    expect(await c.command('STAT')).toMatch(/^\+OK/);
    await c.quit();
    await eventually(() => conns.every((x) => x.closed), 'the backend connections to close');
    const lines = receivedLines(conns);
    // What did reach it: the probe's CAPA/QUIT, one login, one STAT, the QUITs.
    expect(lines.filter((l) => !/^(CAPA|QUIT)$/.test(l))).toEqual(['USER ok', 'PASS right', 'STAT']);
  });
});
