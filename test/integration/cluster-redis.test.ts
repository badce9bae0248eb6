/**
 * `workers: 2` with `rateLimitStore: redis://…`: the failure counters and lockouts live in a
 * real Redis (each worker talks to it), while live connection counts still go through the
 * primary, so both kinds of limit hold across workers.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { metricValue, startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { freePorts } from '../harness/ports.ts';
import { startRedis, type RedisInstance } from '../harness/redis.ts';

const DOVECOT_NO_AUTH_PENALTY = 'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}';

describe('gateway with workers: 2 and a Redis counter store', () => {
  let dovecot: DovecotInstance;
  let redis: RedisInstance;
  let gw: CliGateway;
  let port: { pop3s: number; pop3: number; admin: number };
  const open: Pop3TestClient[] = [];

  const tlsClient = async (): Promise<Pop3TestClient> => {
    const c = await Pop3TestClient.connect({ port: port.pop3s, tls: true, timeoutMs: 8000 });
    open.push(c);
    expect(c.greeting).toMatch(/^\+OK/);
    return c;
  };

  const workersOf = async (clients: Pop3TestClient[]): Promise<Set<number>> => {
    const ports = new Set(clients.map((c) => `127.0.0.1:${c.tlsSocket!.localPort}`));
    const res = await fetch(`http://127.0.0.1:${port.admin}/sessions`);
    const list = (await res.json()) as Array<{ client: string; worker: number }>;
    return new Set(list.filter((s) => ports.has(s.client)).map((s) => s.worker));
  };

  beforeAll(async () => {
    [dovecot, redis] = await Promise.all([startDovecot({ extraConfig: DOVECOT_NO_AUTH_PENALTY }), startRedis()]);
    const dir = makeTempDir('cluster-redis');
    const cert = await makeCert({ commonName: 'localhost' });
    const [pop3s, pop3, admin] = await freePorts(3);
    port = { pop3s, pop3, admin };
    gw = await startCliGateway(dir, {
      listeners: [
        { name: 'pop3s', host: '127.0.0.1', port: port.pop3s, tls: 'implicit' },
        { name: 'pop3', host: '127.0.0.1', port: port.pop3, tls: 'starttls' },
      ],
      tls: { cert: cert.certFile, key: cert.keyFile },
      backend: { host: '127.0.0.1', port: dovecot.port },
      workers: 2,
      policy: {
        auth: { failureDelay: '50ms', maxFailuresPerUser: 3, maxFailuresPerIp: 1000, lockout: '5m', maxAttemptsPerSession: 3 },
        connections: { maxPerIp: 3 },
        rateLimitStore: redis.url,
      },
      logging: { level: 'info', audit: null },
      admin: { host: '127.0.0.1', port: port.admin },
      shutdownGrace: '3s',
    });
  });

  afterAll(async () => {
    await Promise.all(open.splice(0).map((c) => c.close()));
    await gw?.stop();
    await Promise.all([dovecot?.stop(), redis?.stop()]);
  });

  it('keeps lockouts in Redis and live connection counts in the primary, across both workers', async () => {
    const clients = [await tlsClient(), await tlsClient(), await tlsClient()];
    expect((await workersOf(clients)).size).toBe(2);
    // the per-IP limit (primary) holds with Redis configured
    const refused = await Pop3TestClient.connect({ port: port.pop3, timeoutMs: 8000 });
    expect(refused.greeting).toMatch(/^-ERR \[SYS\/TEMP\]/);
    await refused.close();
    for (const [i, c] of clients.entries()) {
      await c.ok('USER bob');
      expect(await c.command(`PASS wrong-${i}`)).toBe('-ERR [AUTH] Authentication failed.');
    }
    await Promise.all(open.splice(0).map((c) => c.close()));

    const client = new Redis(redis.url, { lazyConnect: true });
    try {
      await client.connect();
      const keys = await client.keys('pop3gw*');
      expect(keys.some((k) => k.includes('b:auth:user:'))).toBe(true); // the lockout flag is in Redis
    } finally {
      client.disconnect();
    }

    // the counts freed, the lockout held: bob's right password is refused on both workers
    for (let t = Date.now(); ; ) {
      const text = await (await fetch(`http://127.0.0.1:${port.admin}/metrics`)).text();
      if (metricValue(text, 'pop3gw_sessions_active{listener="pop3s"}') === 0) break;
      if (Date.now() - t > 5000) throw new Error('sessions did not end');
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 100)); // the slot's release note follows the session's end
    const again = [await tlsClient(), await tlsClient()];
    expect((await workersOf(again)).size).toBe(2);
    for (const c of again) {
      await c.ok('USER bob');
      expect(await c.command('PASS bob-secret')).toBe('-ERR [AUTH] Authentication failed.');
    }
    await Promise.all(open.splice(0).map((c) => c.close()));
    expect(gw.logs.find({ event: 'cluster-store-down' })).toHaveLength(0);

    process.kill(gw.pid, 'SIGTERM');
    expect(await gw.exit).toBe(0);
  });
});
