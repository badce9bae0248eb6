/**
 * Shared login counters through a real Redis (issue 3): two gateway PROCESSES (`node --import tsx
 * src/cli.ts`, what `npm start` runs) with `policy.rateLimitStore: redis://...` in front of one
 * Dovecot. Failures at one count at the other; with Redis stopped both keep serving logins on
 * local counters and say so in their logs; when Redis returns they reconnect and share again.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../harness/certs.ts';
import { makeTempDir, spawnServer, stopChild } from '../harness/child-processes.ts';
import { startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startRedis, type RedisInstance } from '../harness/redis.ts';
import { DOVECOT_NO_AUTH_PENALTY, attemptLogin, eventually, fromIp } from './policy-helpers.ts';

const AUTH_FAILED = '-ERR [AUTH] Authentication failed.';
const USERS = ['bob', 'carol', 'dave', 'erin'];

/** redis-server again on a given port (the harness picks a fresh one), stopped by PID. */
async function restartRedisOn(port: number): Promise<ChildProcess> {
  const dir = makeTempDir('redis2');
  const child = spawnServer('/usr/bin/redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no',
  ]);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start again:\n${out}`)), 5000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}:\n${out}`));
    });
  });
  return child;
}

describe('two gateway processes sharing login counters through Redis', () => {
  let dovecot: DovecotInstance;
  let redis: RedisInstance;
  let redisAgain: ChildProcess | null = null;
  let a: CliGateway;
  let b: CliGateway;
  const dirs: string[] = [];

  beforeAll(async () => {
    [dovecot, redis] = await Promise.all([
      startDovecot({ users: USERS.map((name) => ({ name, password: `${name}-secret` })), extraConfig: DOVECOT_NO_AUTH_PENALTY }),
      startRedis(),
    ]);
    const cert = await makeCert({ commonName: 'localhost' });
    const config = (dir: string) => ({
      listeners: [{ name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' }],
      tls: { cert: cert.certFile, key: cert.keyFile },
      backend: { host: '127.0.0.1', port: dovecot.port },
      policy: {
        auth: { maxFailuresPerIp: 20, maxFailuresPerUser: 3, window: '1m', lockout: '1m', failureDelay: '100ms', maxAttemptsPerSession: 5 },
        rateLimitStore: redis.url,
      },
      logging: { level: 'info', audit: path.join(dir, 'audit.log') },
      admin: { host: '127.0.0.1', port: 0 },
      shutdownGrace: '1s',
    });
    for (let i = 0; i < 2; i++) dirs.push(makeTempDir('policy-redis-gw'));
    [a, b] = await Promise.all([startCliGateway(dirs[0]!, config(dirs[0]!)), startCliGateway(dirs[1]!, config(dirs[1]!))]);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (redisAgain !== null) await stopChild(redisAgain);
    await redis?.stop();
    await dovecot?.stop();
  });

  const audit = (i: 0 | 1) => {
    const file = path.join(dirs[i]!, 'audit.log');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  };
  const loginAt = (i: 0 | 1, ip: string) => fromIp(audit(i), ip).filter((l) => l.event === 'login');

  it('counts failures at one gateway at the other: the lockout is reached across both', async () => {
    expect((await attemptLogin(a.port.pop3s!, { ip: '127.0.0.2', user: 'carol', password: 'wrong-1' })).reply).toBe(AUTH_FAILED);
    expect((await attemptLogin(a.port.pop3s!, { ip: '127.0.0.3', user: 'carol', password: 'wrong-2' })).reply).toBe(AUTH_FAILED);
    // The third failure, and the only one gateway B sees: B locks carol.
    expect((await attemptLogin(b.port.pop3s!, { ip: '127.0.0.4', user: 'carol', password: 'wrong-3' })).reply).toBe(AUTH_FAILED);
    await b.logs.waitFor((l) => l.event === 'auth-lockout' && l.scope === 'user', 3000);
    expect(a.logs.find({ event: 'auth-lockout' })).toHaveLength(0);
    // Both refuse carol's right password now, and their audits say why.
    expect((await attemptLogin(a.port.pop3s!, { ip: '127.0.0.5', user: 'carol', password: 'carol-secret' })).reply).toBe(AUTH_FAILED);
    expect((await attemptLogin(b.port.pop3s!, { ip: '127.0.0.6', user: 'carol', password: 'carol-secret' })).reply).toBe(AUTH_FAILED);
    await eventually(() => loginAt(0, '127.0.0.5').length === 1 && loginAt(1, '127.0.0.6').length === 1, 'both audit records');
    expect(loginAt(0, '127.0.0.5')[0]).toMatchObject({ result: 'denied', reason: 'user-locked' });
    expect(loginAt(1, '127.0.0.6')[0]).toMatchObject({ result: 'denied', reason: 'user-locked' });
    // The shared state is in Redis (user names only as hashes).
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      const keys = await client.keys('pop3gw:*');
      expect(keys.some((k) => k.startsWith('pop3gw:b:auth:user:'))).toBe(true);
      expect(keys.some((k) => k.startsWith('pop3gw:c:auth:ip:127.0.0.2'))).toBe(true);
      expect(keys.join(' ')).not.toContain('carol');
    } finally {
      client.disconnect();
    }
  });

  it('keeps serving logins on local counters when Redis stops, and logs it', async () => {
    await redis.stop();
    await Promise.all([a, b].map((g) => g.logs.waitFor((l) => l.event === 'redis-down', 5000)));
    for (const [g, ip] of [[a, '127.0.0.10'], [b, '127.0.0.11']] as const) {
      const ok = await attemptLogin(g.port.pop3s!, { ip, user: 'bob', password: 'bob-secret' });
      expect(ok.reply).toMatch(/^\+OK/);
      expect(ok.ms).toBeLessThan(1000);
    }
    // Failures still count, now per gateway: three at A lock dave at A only.
    for (const [i, ip] of ['127.0.0.12', '127.0.0.13', '127.0.0.14'].entries()) {
      expect((await attemptLogin(a.port.pop3s!, { ip, user: 'dave', password: `nope-${i}` })).reply).toBe(AUTH_FAILED);
    }
    expect((await attemptLogin(a.port.pop3s!, { ip: '127.0.0.15', user: 'dave', password: 'dave-secret' })).reply).toBe(AUTH_FAILED);
    expect((await attemptLogin(b.port.pop3s!, { ip: '127.0.0.16', user: 'dave', password: 'dave-secret' })).reply).toMatch(/^\+OK/);
    await eventually(() => loginAt(0, '127.0.0.15').length === 1, 'the audit record');
    expect(loginAt(0, '127.0.0.15')[0]).toMatchObject({ reason: 'user-locked' });
    expect(await a.logs.waitFor((l) => l.event === 'redis-down')).toMatchObject({ level: 'warn', redis: `127.0.0.1:${redis.port}` });
  });

  it('reconnects when Redis is back and shares the counters again', async () => {
    redisAgain = await restartRedisOn(redis.port);
    await Promise.all([a, b].map((g) => g.logs.waitFor((l) => l.event === 'redis-up', 8000)));
    expect((await attemptLogin(b.port.pop3s!, { ip: '127.0.0.20', user: 'erin', password: 'bad-1' })).reply).toBe(AUTH_FAILED);
    expect((await attemptLogin(b.port.pop3s!, { ip: '127.0.0.21', user: 'erin', password: 'bad-2' })).reply).toBe(AUTH_FAILED);
    expect((await attemptLogin(a.port.pop3s!, { ip: '127.0.0.22', user: 'erin', password: 'bad-3' })).reply).toBe(AUTH_FAILED);
    expect((await attemptLogin(b.port.pop3s!, { ip: '127.0.0.23', user: 'erin', password: 'erin-secret' })).reply).toBe(AUTH_FAILED);
    await eventually(() => loginAt(1, '127.0.0.23').length === 1, 'the audit record');
    expect(loginAt(1, '127.0.0.23')[0]).toMatchObject({ reason: 'user-locked' });
  });

  it('never writes a password to either gateway\'s log or audit', () => {
    const everything = a.logs.text() + b.logs.text() + JSON.stringify(audit(0)) + JSON.stringify(audit(1));
    for (const user of USERS) expect(everything).not.toContain(`${user}-secret`);
    expect(everything).not.toContain('wrong-1');
  });
});
