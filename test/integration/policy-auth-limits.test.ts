/**
 * Login limits end to end (issue 3, auth): real Dovecot behind the gateway, clients connecting
 * from different loopback source addresses (127.0.0.x), short windows. Each test uses its own
 * source addresses and users so the counters of one test never decide another.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { DOVECOT_NO_AUTH_PENALTY, attemptLogin, attemptPlain, eventually, fromIp, metricValue, scrape, sleep } from './policy-helpers.ts';

const FAILURE_DELAY = 300;
const LOCKOUT = 3000;
const AUTH_FAILED = '-ERR [AUTH] Authentication failed.';
const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'hank', 'ivy', 'judy', 'kim', 'liam'];

describe('login limits through the gateway in front of a real Dovecot', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: NAMES.map((name) => ({ name, password: `${name}-secret` })), extraConfig: DOVECOT_NO_AUTH_PENALTY });
    gw = await startTestGateway(dovecot.port, {
      policy: {
        auth: {
          maxFailuresPerIp: 4, maxFailuresPerUser: 3, window: '20s', lockout: `${LOCKOUT}ms`,
          failureDelay: `${FAILURE_DELAY}ms`, maxAttemptsPerSession: 3,
        },
      },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  const pop3s = () => gw.port.pop3s!;
  const loginAudit = (ip: string) => fromIp(gw.auditLines(), ip).filter((l) => l.event === 'login');

  it('locks a source address out after maxFailuresPerIp failures, for `lockout`, and only that address', async () => {
    for (let i = 1; i <= 4; i++) {
      const a = await attemptLogin(pop3s(), { ip: '127.0.0.2', user: `ghost${i}`, password: `guess${i}` });
      expect(a.reply).toBe(AUTH_FAILED);
    }
    const lockedAt = Date.now();
    // The right password from the locked address: refused, same bytes as a wrong password.
    const refused = await attemptLogin(pop3s(), { ip: '127.0.0.2', user: 'alice', password: 'alice-secret' });
    expect(refused.reply).toBe(AUTH_FAILED);
    // Another address is not affected.
    const other = await attemptLogin(pop3s(), { ip: '127.0.0.3', user: 'alice', password: 'alice-secret' });
    expect(other.reply).toMatch(/^\+OK/);
    await eventually(() => loginAudit('127.0.0.2').some((l) => l.reason === 'ip-locked'), 'an ip-locked audit record');
    const reasons = loginAudit('127.0.0.2').map((l) => l.reason);
    expect(reasons).toEqual(['bad-credentials', 'bad-credentials', 'bad-credentials', 'bad-credentials', 'ip-locked']);
    // The record names the user the attempt was for, and the real reason.
    expect(loginAudit('127.0.0.2').at(-1)).toMatchObject({ result: 'denied', reason: 'ip-locked', user: 'alice' });
    expect(gw.logs.find({ event: 'auth-lockout', scope: 'ip', client: 'auth:ip:127.0.0.2' })).toHaveLength(1);
    // After the lockout the address may log in again.
    await sleep(Math.max(0, lockedAt + LOCKOUT + 200 - Date.now()));
    const after = await attemptLogin(pop3s(), { ip: '127.0.0.2', user: 'alice', password: 'alice-secret' });
    expect(after.reply).toMatch(/^\+OK/);
  });

  it('locks a user out after maxFailuresPerUser failures from different addresses, and says so only in the audit', async () => {
    for (const [i, ip] of ['127.0.0.4', '127.0.0.5', '127.0.0.6'].entries()) {
      expect((await attemptLogin(pop3s(), { ip, user: 'carol', password: `wrong-${i}` })).reply).toBe(AUTH_FAILED);
    }
    const refused = await attemptLogin(pop3s(), { ip: '127.0.0.7', user: 'carol', password: 'carol-secret' });
    expect(refused.reply).toBe(AUTH_FAILED);
    await eventually(() => loginAudit('127.0.0.7').length === 1, 'the audit record of the refused login');
    expect(loginAudit('127.0.0.7')[0]).toMatchObject({ result: 'denied', reason: 'user-locked', user: 'carol' });
    expect(loginAudit('127.0.0.4')[0]).toMatchObject({ result: 'err', reason: 'bad-credentials', user: 'carol' });
    expect(gw.logs.lines().some((l) => l.event === 'login' && l.result === 'failed' && l.reason === 'user-locked')).toBe(true);
    expect(gw.logs.find({ event: 'auth-lockout', scope: 'user' }).length).toBeGreaterThanOrEqual(1);
    // Lockouts are visible to monitoring while they last (carol's is 3 s old at most here).
    expect(metricValue(await scrape(gw.port.admin!), 'pop3gw_lockouts_active')).toBeGreaterThanOrEqual(1);
  });

  it('still lets the owner in from an address that logged in before while the user is locked from elsewhere', async () => {
    expect((await attemptLogin(pop3s(), { ip: '127.0.0.60', user: 'erin', password: 'erin-secret' })).reply).toMatch(/^\+OK/);
    await sleep(100); // the success is recorded after the +OK
    for (const [i, ip] of ['127.0.0.61', '127.0.0.62', '127.0.0.63'].entries()) {
      await attemptLogin(pop3s(), { ip, user: 'erin', password: `attack-${i}` });
    }
    const stranger = await attemptLogin(pop3s(), { ip: '127.0.0.64', user: 'erin', password: 'erin-secret' });
    expect(stranger.reply).toBe(AUTH_FAILED);
    const owner = await attemptLogin(pop3s(), { ip: '127.0.0.60', user: 'erin', password: 'erin-secret' });
    expect(owner.reply).toMatch(/^\+OK/);
    await eventually(() => loginAudit('127.0.0.64').length === 1, 'the stranger\'s audit record');
    expect(loginAudit('127.0.0.64')[0]).toMatchObject({ reason: 'user-locked' });
  });

  it('counts a wrong password retried again and again (a phone with an old password) only once', async () => {
    for (let session = 0; session < 3; session++) {
      const c = await Pop3TestClient.connect({ port: pop3s(), tls: true, localAddress: '127.0.0.70' });
      for (let i = 0; i < 2; i++) expect((await attemptLogin(pop3s(), { ip: '127.0.0.70', user: 'frank', password: 'old-password', client: c, keep: true })).reply).toBe(AUTH_FAILED);
      await c.quit();
    }
    // Six failures, above both limits, yet neither the address nor the user is locked.
    expect((await attemptLogin(pop3s(), { ip: '127.0.0.70', user: 'frank', password: 'frank-secret' })).reply).toMatch(/^\+OK/);
    expect(gw.logs.find({ event: 'auth-lockout', client: 'auth:ip:127.0.0.70' })).toHaveLength(0);
  });

  it('counts spellings of one user name together (GRACE, " grace ", Grace)', async () => {
    expect((await attemptLogin(pop3s(), { ip: '127.0.0.80', user: 'GRACE', password: 'wrong-a' })).reply).toBe(AUTH_FAILED);
    expect((await attemptPlain(pop3s(), { ip: '127.0.0.81', authcid: ' grace ', password: 'wrong-b' })).reply).toBe(AUTH_FAILED);
    expect((await attemptPlain(pop3s(), { ip: '127.0.0.82', authcid: 'Grace', password: 'wrong-c' })).reply).toBe(AUTH_FAILED);
    const refused = await attemptLogin(pop3s(), { ip: '127.0.0.83', user: 'grace', password: 'grace-secret' });
    expect(refused.reply).toBe(AUTH_FAILED);
    await eventually(() => loginAudit('127.0.0.83').length === 1, 'the audit record');
    expect(loginAudit('127.0.0.83')[0]).toMatchObject({ reason: 'user-locked' });
  });

  it('closes a session after maxAttemptsPerSession failed logins', async () => {
    const c = await Pop3TestClient.connect({ port: pop3s(), tls: true, localAddress: '127.0.0.90' });
    for (let i = 0; i < 3; i++) {
      expect((await attemptLogin(pop3s(), { ip: '127.0.0.90', user: `cap${i}`, password: 'x', client: c, keep: true })).reply).toBe(AUTH_FAILED);
    }
    await c.waitClosed(3000);
    await eventually(() => fromIp(gw.auditLines(), '127.0.0.90').some((l) => l.event === 'disconnect'), 'the disconnect record');
    expect(fromIp(gw.auditLines(), '127.0.0.90').find((l) => l.event === 'disconnect')).toMatchObject({ reason: 'too-many-failures' });
  });

  it('adds no delay to a successful login', async () => {
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const a = await attemptLogin(pop3s(), { ip: '127.0.0.92', user: 'kim', password: 'kim-secret' });
      expect(a.reply).toMatch(/^\+OK/);
      times.push(a.ms);
    }
    console.log(`successful login PASS→+OK (ms): ${times.map(Math.round).join(', ')}`);
    expect(Math.min(...times)).toBeLessThan(FAILURE_DELAY / 2);
  });

  it('refuses decoded SASL credentials with NUL, CR or LF like a wrong password, without asking the backend', async () => {
    const logBefore = dovecot.readLog().length;
    const plain = await attemptPlain(pop3s(), { ip: '127.0.0.93', authcid: 'ivy', password: 'ivy-secret\r\nDELE 1' });
    expect(plain.reply).toBe(AUTH_FAILED);
    expect(plain.ms).toBeGreaterThanOrEqual(FAILURE_DELAY - 5);
    const c = await Pop3TestClient.connect({ port: pop3s(), tls: true, localAddress: '127.0.0.94' });
    expect(await c.command('AUTH LOGIN')).toMatch(/^\+ /);
    const t0 = performance.now();
    expect(await c.command(Buffer.from('ivy\0admin').toString('base64'))).toBe(AUTH_FAILED);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(FAILURE_DELAY - 5);
    // The session goes on: the real credentials work.
    await c.login('ivy', 'ivy-secret');
    await c.quit();
    await eventually(() => loginAudit('127.0.0.94').length === 2, 'both audit records');
    expect(loginAudit('127.0.0.93')[0]).toMatchObject({ result: 'err', reason: 'bad-credential-chars' });
    expect(loginAudit('127.0.0.94').map((l) => [l.result, l.reason ?? null])).toEqual([['err', 'bad-credential-chars'], ['ok', null]]);
    // Dovecot never heard of the poisoned attempts: only the good login reached it.
    await eventually(() => /Login: user=<ivy>/.test(dovecot.readLog().slice(logBefore)), 'Dovecot to log the good login');
    expect(dovecot.readLog().slice(logBefore)).not.toMatch(/auth failed[^\n]*user=<ivy/);
  });

  it('counts every refused login in the metrics by reason and never writes a password anywhere', async () => {
    const text = await scrape(gw.port.admin!);
    expect(metricValue(text, 'pop3gw_policy_refusals_total', { reason: 'ip-locked' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'pop3gw_policy_refusals_total', { reason: 'user-locked' })).toBeGreaterThanOrEqual(3);
    expect(metricValue(text, 'pop3gw_policy_refusals_total', { reason: 'bad-credentials' })).toBeGreaterThanOrEqual(20);
    expect(metricValue(text, 'pop3gw_policy_refusals_total', { reason: 'bad-credential-chars' })).toBe(2);
    expect(metricValue(text, 'pop3gw_logins_total', { result: 'locked' })).toBeGreaterThanOrEqual(4);
    const everything = gw.logs.text() + fs.readFileSync(gw.auditFile, 'utf8');
    for (const name of NAMES) expect(everything).not.toContain(`${name}-secret`);
    for (const secret of ['old-password', 'attack-0', 'wrong-b', 'guess1']) expect(everything).not.toContain(secret);
  });
});
