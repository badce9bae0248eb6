/**
 * Issue 9 item 7: a failed login's reply time says nothing about why it failed. In front of a
 * real Dovecot with its default 2 s `auth_failure_delay` (anvil penalty off), a wrong password,
 * an unknown user and a locked-out user with the right password are all answered on one
 * schedule: the gateway's failureDelay or, when longer, the backend's observed refusal time
 * (the longest of its recent refusals).
 * Few samples (5 of each, in parallel sessions): Dovecot makes every one of them take 2 s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { DOVECOT_NO_AUTH_PENALTY, attemptLogin, eventually, fromIp, sleep } from './policy-helpers.ts';

const AUTH_FAILED = '-ERR [AUTH] Authentication failed.';
const BACKEND_DELAY = 2000;
const median = (v: number[]): number => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;

describe('one reply schedule for every failed login, in front of Dovecot with auth_failure_delay = 2s', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  const WRONG = ['w1', 'w2', 'w3', 'w4', 'w5'];

  beforeAll(async () => {
    dovecot = await startDovecot({
      users: [...WRONG, 'lockme'].map((name) => ({ name, password: `${name}-secret` })),
      extraConfig: `auth_failure_delay = 2s\n${DOVECOT_NO_AUTH_PENALTY}`,
    });
    gw = await startTestGateway(dovecot.port, {
      // failureDelay well below Dovecot's own delay: the backend's refusal time must set the schedule.
      policy: { auth: { maxFailuresPerIp: 100, maxFailuresPerUser: 3, window: '60s', lockout: '60s', failureDelay: '300ms' } },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('answers wrong password, unknown user and locked user after the same time, none sooner than the backend refuses', async () => {
    const port = gw.port.pop3s!;
    // Dovecot checks its failure queue every 500 ms against whole seconds, so it refuses after
    // 1.5 to 2.5 s depending on when the attempt arrived. Failures started 250 ms apart show the
    // gateway that whole range (and lock lockme): production traffic does the same.
    await Promise.all([0, 1, 2, 3, 4, 5].map(async (i) => {
      await sleep(250 * i);
      await attemptLogin(port, { ip: `127.0.0.${130 + i}`, user: i < 3 ? 'lockme' : `warmup${i}`, password: `nope-${i}` });
    }));
    const kinds = {
      wrong: (i: number) => ({ ip: `127.0.0.${140 + i}`, user: WRONG[i]!, password: 'not-it' }),
      unknown: (i: number) => ({ ip: `127.0.0.${150 + i}`, user: `nobody${i}`, password: 'whatever' }),
      locked: (i: number) => ({ ip: `127.0.0.${160 + i}`, user: 'lockme', password: 'lockme-secret' }),
    };
    // Round i starts 200 ms after round i-1, so the rounds meet Dovecot's timer at different points
    // (its own refusal time varies by up to a second); each round has one attempt of each kind.
    const samples: Record<string, number[]> = { wrong: [], unknown: [], locked: [] };
    await Promise.all([0, 1, 2, 3, 4].map(async (i) => {
      await sleep(200 * i);
      await Promise.all(Object.entries(kinds).map(async ([kind, opts]) => {
        const r = await attemptLogin(port, opts(i));
        expect(r.reply).toBe(AUTH_FAILED);
        samples[kind]!.push(r.ms);
      }));
    }));
    const medians = Object.values(samples).map(median);
    const spread = Math.max(...medians) - Math.min(...medians);
    console.log(`failure schedule PASS→-ERR (ms): ${JSON.stringify(Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(Math.round)])))}, spread of medians ${Math.round(spread)}`);
    for (const ms of Object.values(samples).flat()) expect(ms).toBeGreaterThanOrEqual(BACKEND_DELAY - 20);
    expect(spread).toBeLessThan(50);
    // Only the audit tells them apart.
    await eventually(() => fromIp(gw.auditLines(), '127.0.0.164').some((l) => l.event === 'login'), 'the audit of the last locked attempt');
    expect(fromIp(gw.auditLines(), '127.0.0.160').find((l) => l.event === 'login')).toMatchObject({ result: 'denied', reason: 'user-locked' });
    expect(fromIp(gw.auditLines(), '127.0.0.150').find((l) => l.event === 'login')).toMatchObject({ result: 'err', reason: 'bad-credentials' });
  }, 30_000);
});
