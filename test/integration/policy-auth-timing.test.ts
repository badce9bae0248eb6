/**
 * What a failed login costs in time, end to end (issue 3, auth): no user enumeration and no
 * lockout oracle through reply bytes or reply time (against a real Dovecot), trusted networks
 * without the delay (against a backend that refuses at once, so the
 * gateway's own delay is all there is to see), and `lockout: 0`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { startScriptBackend, type ScriptBackend } from '../harness/script-backend.ts';
import { DOVECOT_NO_AUTH_PENALTY, attemptLogin, eventually, fakeBackend, fromIp } from './policy-helpers.ts';

const AUTH_FAILED = '-ERR [AUTH] Authentication failed.';

describe('no enumeration through a gateway in front of a real Dovecot', () => {
  // Above Dovecot's own refusal time (its failure timer fires every 500 ms), so the gateway's
  // delay is what every failed login waits for.
  const FAILURE_DELAY = 700;
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: ['dave', 'judy'].map((name) => ({ name, password: `${name}-secret` })),
      extraConfig: DOVECOT_NO_AUTH_PENALTY,
    });
    gw = await startTestGateway(dovecot.port, {
      policy: { auth: { maxFailuresPerIp: 4, maxFailuresPerUser: 3, window: '20s', lockout: '10s', failureDelay: `${FAILURE_DELAY}ms` } },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('answers a locked-out user with the right password, a wrong password and an unknown user with the same bytes after the same delay', async () => {
    const port = gw.port.pop3s!;
    await Promise.all(['127.0.0.20', '127.0.0.21', '127.0.0.22'].map((ip, i) => attemptLogin(port, { ip, user: 'dave', password: `nope-${i}` })));
    const samples: Record<'locked' | 'wrong' | 'unknown', number[]> = { locked: [], wrong: [], unknown: [] };
    const seen = new Set<string>();
    for (let round = 0; round < 3; round++) {
      const locked = await attemptLogin(port, { ip: `127.0.0.${30 + round}`, user: 'dave', password: 'dave-secret' });
      // The same wrong password each round: it counts once, so judy never gets locked herself.
      const wrong = await attemptLogin(port, { ip: `127.0.0.${40 + round}`, user: 'judy', password: 'not-judys' });
      const unknown = await attemptLogin(port, { ip: `127.0.0.${50 + round}`, user: `nosuchuser${round}`, password: 'whatever' });
      for (const [k, a] of [['locked', locked], ['wrong', wrong], ['unknown', unknown]] as const) {
        samples[k].push(a.ms);
        seen.add(JSON.stringify([a.userReply, a.reply]));
      }
    }
    // One and the same USER reply and PASS reply for all three.
    expect([...seen]).toEqual([JSON.stringify(['+OK Send your password.', AUTH_FAILED])]);
    const all = [...samples.locked, ...samples.wrong, ...samples.unknown];
    // Medians per kind: a scheduling hiccup on this shared machine only ever adds time to one sample.
    const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
    const medians = Object.values(samples).map(median);
    const spread = Math.max(...medians) - Math.min(...medians);
    console.log(`no-enumeration PASS→-ERR (ms): ${JSON.stringify(Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(Math.round)])))}, spread of medians ${Math.round(spread)}`);
    for (const ms of all) expect(ms).toBeGreaterThanOrEqual(FAILURE_DELAY - 5);
    for (const ms of all) expect(ms).toBeLessThan(FAILURE_DELAY + 400);
    expect(spread).toBeLessThan(100);
    // Only the audit tells them apart.
    const login = (ip: string) => fromIp(gw.auditLines(), ip).filter((l) => l.event === 'login');
    await eventually(() => login('127.0.0.52').length === 1, 'the audit record of the last attempt');
    for (const round of [0, 1, 2]) {
      expect(login(`127.0.0.${30 + round}`)[0]).toMatchObject({ result: 'denied', reason: 'user-locked' });
      expect(login(`127.0.0.${40 + round}`)[0]).toMatchObject({ result: 'err', reason: 'bad-credentials' });
      expect(login(`127.0.0.${50 + round}`)[0]).toMatchObject({ result: 'err', reason: 'bad-credentials' });
    }
  });
});

describe('failure delay exemptions, against a backend that refuses at once', () => {
  const FAILURE_DELAY = 300;
  let backend: ScriptBackend;
  let gw: TestGateway;

  beforeAll(async () => {
    backend = await startScriptBackend(fakeBackend());
    gw = await startTestGateway(backend.port, {
      policy: {
        auth: { maxFailuresPerIp: 4, maxFailuresPerUser: 3, window: '20s', lockout: '10s', failureDelay: `${FAILURE_DELAY}ms`, maxAttemptsPerSession: 10 },
        trustedNetworks: ['127.0.0.9/32'],
      },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('delays a failure from an untrusted address by failureDelay', async () => {
    const a = await attemptLogin(gw.port.pop3s!, { ip: '127.0.0.8', user: 'someone', password: 'bad' });
    expect(a.reply).toBe(AUTH_FAILED);
    expect(a.ms).toBeGreaterThanOrEqual(FAILURE_DELAY - 5);
  });

  it('exempts trusted networks from the failure delay and from lockouts', async () => {
    const times: number[] = [];
    const first = await attemptLogin(gw.port.pop3s!, { ip: '127.0.0.9', user: 'ok', password: 'typo-0', keep: true });
    times.push(first.ms);
    for (let i = 1; i < 6; i++) {
      const a = await attemptLogin(gw.port.pop3s!, { ip: '127.0.0.9', user: 'ok', password: `typo-${i}`, client: first.client, keep: true });
      expect(a.reply).toBe(AUTH_FAILED);
      times.push(a.ms);
    }
    await first.client.quit();
    console.log(`trusted-network failures PASS→-ERR (ms): ${times.map(Math.round).join(', ')}`);
    for (const ms of times) expect(ms).toBeLessThan(FAILURE_DELAY / 3);
    // Six distinct wrong passwords, above both limits, yet neither the address nor the user is locked.
    expect((await attemptLogin(gw.port.pop3s!, { ip: '127.0.0.9', user: 'ok', password: 'right' })).reply).toMatch(/^\+OK/);
    expect((await attemptLogin(gw.port.pop3s!, { ip: '127.0.0.10', user: 'ok', password: 'right' })).reply).toMatch(/^\+OK/);
  });
});

describe('a gateway configured with lockout: 0', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;

  beforeAll(async () => {
    backend = await startScriptBackend(fakeBackend());
    gw = await startTestGateway(backend.port, {
      policy: { auth: { maxFailuresPerIp: 1, maxFailuresPerUser: 1, lockout: 0, failureDelay: '50ms' } },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('counts and delays failures but never locks anyone out, and never answers with an internal error', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await attemptLogin(gw.port.pop3s!, { ip: '127.0.0.2', user: 'ok', password: `bad-${i}` })).reply).toBe(AUTH_FAILED);
    }
    expect((await attemptLogin(gw.port.pop3s!, { ip: '127.0.0.2', user: 'ok', password: 'right' })).reply).toMatch(/^\+OK/);
    expect(gw.logs.find({ event: 'internal-error' })).toHaveLength(0);
    expect(gw.logs.find({ event: 'auth-lockout' })).toHaveLength(0);
  });
});
