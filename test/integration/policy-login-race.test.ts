/**
 * Issue 9 items 1 and 2: a login attempt is charged before its credentials reach the backend.
 * 40 sessions from one address send PASS at once (limits 10 per address, 5 per user) to a real
 * Dovecot that answers a wrong password after its default 2 s `auth_failure_delay`, in memory,
 * cluster (`workers: 2`) and Redis modes: at most 5 reach Dovecot (counted in Dovecot's own log),
 * the right password sent while they are in flight is refused, and so it is after the lockout.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { freePorts } from '../harness/ports.ts';
import { startRedis, type RedisInstance } from '../harness/redis.ts';
import { DOVECOT_NO_AUTH_PENALTY, attemptLogin, sleep } from './policy-helpers.ts';

const AUTH_FAILED = '-ERR [AUTH] Authentication failed.';
const SESSIONS = 40;
const AUTH = { maxFailuresPerIp: 10, maxFailuresPerUser: 5, window: '60s', lockout: '60s', failureDelay: '100ms' };
/** Dovecot's default failure delay: a wrong password is answered after 2 s, the right one at once. */
const DOVECOT_CONFIG = `auth_failure_delay = 2s\n${DOVECOT_NO_AUTH_PENALTY}`;

/** Logins for `user` that reached Dovecot: its refusals and its successes, from its own log. */
function backendAttempts(dovecot: DovecotInstance, user: string): number {
  const log = dovecot.readLog();
  const refused = log.split('\n').filter((l) => l.includes(`(${user},`) && /mismatch/i.test(l)).length;
  const ok = log.split('\n').filter((l) => l.includes(`Login: user=<${user}>`)).length;
  return refused + ok;
}

/**
 * 39 wrong passwords at the same moment, then (while they are still waiting on Dovecot's
 * 2 s refusal) the right one; then the right one again once all are answered.
 */
async function race(port: number, ip: string, user: string, dovecot: DovecotInstance): Promise<void> {
  const clients = await Promise.all(
    Array.from({ length: SESSIONS }, () => Pop3TestClient.connect({ port, tls: true, localAddress: ip, timeoutMs: 15_000 })),
  );
  try {
    await Promise.all(clients.map((c) => c.ok(`USER ${user}`)));
    const wrong = clients.slice(0, -1).map((c, i) => c.command(`PASS wrong-${i}`));
    await sleep(300);
    const right = await clients.at(-1)!.command(`PASS ${user}-secret`);
    const replies = await Promise.all(wrong);
    expect(right).toBe(AUTH_FAILED);
    expect(replies.every((r) => r === AUTH_FAILED)).toBe(true);
    const reached = backendAttempts(dovecot, user);
    console.log(`${user}: ${reached} of ${SESSIONS} logins reached Dovecot`);
    expect(reached).toBeGreaterThanOrEqual(1);
    expect(reached).toBeLessThanOrEqual(5);
    // After the lockout started, the right password from another address is refused as well.
    const after = await attemptLogin(port, { ip: '127.0.0.1', user, password: `${user}-secret` });
    expect(after.reply).toBe(AUTH_FAILED);
    expect(backendAttempts(dovecot, user)).toBe(reached);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

const USERS = ['racer1', 'racer2', 'racer3', 'crowd'];
let dovecot: DovecotInstance;

beforeAll(async () => {
  dovecot = await startDovecot({ users: USERS.map((name) => ({ name, password: `${name}-secret` })), extraConfig: DOVECOT_CONFIG });
});

afterAll(async () => {
  await dovecot?.stop();
});

describe('parallel PASS cannot race the lockout', () => {
  describe('memory store', () => {
    let gw: TestGateway;
    beforeAll(async () => {
      gw = await startTestGateway(dovecot.port, { policy: { auth: AUTH, connections: { maxPerIp: 100 } } });
    });
    afterAll(async () => {
      await gw?.stop();
    });

    it('lets at most maxFailuresPerUser of 40 simultaneous guesses reach the backend and refuses the right password among them', async () => {
      await race(gw.port.pop3s!, '127.0.0.61', 'racer1', dovecot);
    }, 30_000);

    it('logs in all of 40 simultaneous sessions with the right password from one address: over the limit they wait, not fail', async () => {
      const clients = await Promise.all(
        Array.from({ length: SESSIONS }, () => Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, localAddress: '127.0.0.64', timeoutMs: 15_000 })),
      );
      try {
        await Promise.all(clients.map((c) => c.ok('USER crowd')));
        const replies = await Promise.all(clients.map((c) => c.command('PASS crowd-secret')));
        expect(replies.filter((r) => r.startsWith('+OK'))).toHaveLength(SESSIONS);
      } finally {
        await Promise.all(clients.map((c) => c.close()));
      }
    }, 30_000);
  });

  describe('Redis store', () => {
    let redis: RedisInstance;
    let gw: TestGateway;
    beforeAll(async () => {
      redis = await startRedis();
      gw = await startTestGateway(dovecot.port, { policy: { auth: AUTH, connections: { maxPerIp: 100 }, rateLimitStore: redis.url } });
    });
    afterAll(async () => {
      await gw?.stop();
      await redis?.stop();
    });

    it('lets at most maxFailuresPerUser of 40 simultaneous guesses reach the backend through a shared Redis', async () => {
      await race(gw.port.pop3s!, '127.0.0.62', 'racer2', dovecot);
    }, 30_000);
  });

  describe('workers: 2', () => {
    let gw: CliGateway;
    beforeAll(async () => {
      const dir = makeTempDir('login-race');
      const cert = await makeCert({ commonName: 'localhost' });
      const [pop3s, admin] = await freePorts(2);
      gw = await startCliGateway(dir, {
        listeners: [{ name: 'pop3s', host: '127.0.0.1', port: pop3s, tls: 'implicit' }],
        tls: { cert: cert.certFile, key: cert.keyFile },
        backend: { host: '127.0.0.1', port: dovecot.port },
        workers: 2,
        policy: { auth: AUTH, connections: { maxPerIp: 100 } },
        logging: { level: 'info', audit: path.join(dir, 'audit.log') },
        admin: { host: '127.0.0.1', port: admin },
      });
    }, 90_000);
    afterAll(async () => {
      await gw?.stop();
    });

    it('lets at most maxFailuresPerUser of 40 simultaneous guesses reach the backend across both workers', async () => {
      await race(gw.port.pop3s!, '127.0.0.63', 'racer3', dovecot);
    }, 30_000);
  });
});
