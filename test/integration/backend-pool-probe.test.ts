/**
 * Failover across pool servers and the capability/health probe, against fake backends on loopback.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { BackendError } from '../../src/backend/errors.ts';
import { BackendPool, connectWithFailover } from '../../src/backend/pool.ts';
import { BackendProbe, proxyLocalHeader } from '../../src/backend/probe.ts';
import type { BackendConfig, BackendServer } from '../../src/config/schema.ts';
import { parseProxyHeader } from '../../src/protocol/proxy-header.ts';
import type { Logger } from '../../src/util/logger.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';

const OPTS = { wantCapa: true, responseLineMax: 512, replyTimeout: 1000 };
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function cfgFor(servers: BackendServer[], over: Partial<BackendConfig> = {}): BackendConfig {
  return {
    servers, tls: 'none', rejectUnauthorized: true, ca: null, servername: null, connectTimeout: 1000,
    connect: 'on-login', proxyProtocol: false, allowPlaintextCredentials: false, probeInterval: 30_000,
    downFor: 30_000, ...over,
  };
}

async function fake(handler: (c: ScriptConn) => Promise<void>): Promise<ScriptBackend> {
  const backend = await startScriptBackend(handler);
  cleanups.push(() => backend.close());
  return backend;
}

function pop3(capa: string[], seen: string[] = [], greeting = '+OK ready') {
  return fake(async (c) => {
    await c.write(`${greeting}\r\n`);
    for (;;) {
      const line = await c.expectLine(/\S/, 10_000);
      if (line === null) return;
      seen.push(line);
      if (line === 'CAPA') await c.write(`+OK\r\n${capa.map((l) => `${l}\r\n`).join('')}.\r\n`);
      else if (line === 'QUIT') return c.end('+OK bye\r\n');
    }
  });
}

/** A loopback port with nothing listening. */
async function deadServer(): Promise<BackendServer> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return { host: '127.0.0.1', port };
}

function serverOf(b: ScriptBackend): BackendServer {
  return { host: b.host, port: b.port };
}

function recordingLogger(): { log: Logger; entries: Array<{ level: string; obj: Record<string, unknown> }> } {
  const entries: Array<{ level: string; obj: Record<string, unknown> }> = [];
  const at = (level: string) => (a: object | string) => {
    entries.push({ level, obj: typeof a === 'string' ? {} : (a as Record<string, unknown>) });
  };
  const log: Logger = { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return { log, entries };
}

describe('connectWithFailover', () => {
  it('moves from a dead server to a live one and marks the dead one down', async () => {
    const dead = await deadServer();
    const live = serverOf(await pop3(['USER']));
    const pool = new BackendPool([dead, live], { downFor: 30_000 });
    const attempts: Array<[number, string | null]> = [];
    const conn = await connectWithFailover(pool, cfgFor([dead, live]), OPTS, (s, e) => attempts.push([s.port, e?.code ?? null]));
    cleanups.push(() => void conn.socket.destroy());
    expect(conn.server).toEqual(live);
    expect(attempts).toEqual([[dead.port, 'CONNECT'], [live.port, null]]);
    expect(pool.isDown(dead)).toBe(true);
    // The next session goes straight to the live server.
    expect(pool.pick()[0]).toEqual(live);
  });

  it('stops at the first server when the failure is not about that server', async () => {
    const refusingSeen: string[] = [];
    const otherSeen: string[] = [];
    const refusing = serverOf(await pop3(['USER'], refusingSeen, '-ERR [SYS/PERM] misconfigured'));
    const other = await pop3(['USER'], otherSeen);
    const pool = new BackendPool([refusing, serverOf(other)], { downFor: 30_000 });
    const err = await connectWithFailover(pool, cfgFor([refusing, serverOf(other)]), OPTS).then(() => null, (e: BackendError) => e);
    expect(err?.code).toBe('GREETING');
    expect(other.connections).toBe(0);
    expect(pool.isDown(refusing)).toBe(false);
  });

  it('reports the last failure when every server is down', async () => {
    const a = await deadServer();
    const b = await deadServer();
    const pool = new BackendPool([a, b], { downFor: 30_000 });
    const err = await connectWithFailover(pool, cfgFor([a, b]), OPTS).then(() => null, (e: BackendError) => e);
    expect(err?.code).toBe('CONNECT');
    expect(pool.isDown(a) && pool.isDown(b)).toBe(true);
  });

  it('does not try the next server once the client went away', async () => {
    const silent = await fake(async (c) => c.waitClosed(10_000));
    const other = await pop3(['USER']);
    const servers = [serverOf(silent), serverOf(other)];
    const pool = new BackendPool(servers, { downFor: 30_000 });
    const controller = new AbortController();
    const pending = connectWithFailover(pool, cfgFor(servers), { ...OPTS, signal: controller.signal });
    await silent.waitForConnections(1);
    controller.abort();
    const err = await pending.then(() => null, (e: BackendError) => e);
    expect(err?.code).toBe('CLOSED');
    expect(other.connections).toBe(0);
    expect(pool.isDown(servers[0]!)).toBe(false);
  });
});

describe('BackendProbe', () => {
  it('records the capabilities and health of the backend, then says QUIT', async () => {
    const seen: string[] = [];
    const backend = await pop3(['USER', 'PIPELINING', 'SASL PLAIN'], seen);
    const probe = new BackendProbe([serverOf(backend)], cfgFor([serverOf(backend)]), recordingLogger().log, { responseLineMax: 512, replyTimeout: 1000 });
    cleanups.push(() => probe.stop());
    expect(probe.healthy()).toBe(false);
    expect(probe.capabilities()).toBeNull();
    await probe.start();
    expect(probe.healthy()).toBe(true);
    expect(probe.capabilities()?.sasl).toEqual(['PLAIN']);
    expect(probe.status()[0]).toMatchObject({ healthy: true, error: null });
    await expect.poll(() => seen, { timeout: 2000 }).toEqual(['CAPA', 'QUIT']);
  });

  it('reports a dead backend as unhealthy with the error, and its recovery', async () => {
    const server = await deadServer();
    const { log, entries } = recordingLogger();
    const changes: boolean[] = [];
    const pool = new BackendPool([server], { downFor: 30_000 });
    const probe = new BackendProbe([server], cfgFor([server]), log, { responseLineMax: 512, replyTimeout: 1000, pool, onChange: (h) => changes.push(h) });
    await probe.probeOnce();
    expect(probe.healthy()).toBe(false);
    expect(probe.lastError?.code).toBe('CONNECT');
    expect(pool.isDown(server)).toBe(true);
    expect(entries.filter((e) => e.obj.event === 'backend-down')).toHaveLength(1);
    await probe.probeOnce();
    expect(entries.filter((e) => e.obj.event === 'backend-down')).toHaveLength(1); // logged once, not every round

    // Something starts listening on that port: the next round sees it.
    const revived = net.createServer((s) => {
      s.on('error', () => undefined);
      s.write('+OK back\r\n');
      s.on('data', (d) => {
        if (d.toString().startsWith('CAPA')) s.write('+OK\r\nUSER\r\n.\r\n');
        else s.end('+OK bye\r\n');
      });
    });
    await new Promise<void>((r) => revived.listen(server.port, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => revived.close(() => r())));
    await probe.probeOnce();
    expect(probe.healthy()).toBe(true);
    expect(pool.isDown(server)).toBe(false);
    expect(changes).toEqual([true]);
    expect(entries.filter((e) => e.obj.event === 'backend-up')).toHaveLength(1);
  });

  it('tells onChange when the backend goes down after being up', async () => {
    let up = true;
    const backend = await fake(async (c) => {
      if (!up) return c.destroy();
      await c.write('+OK\r\n');
      await c.expectLine('CAPA');
      await c.write('+OK\r\nUSER\r\n.\r\n');
      await c.waitClosed(10_000);
    });
    const changes: boolean[] = [];
    const probe = new BackendProbe([serverOf(backend)], cfgFor([serverOf(backend)]), recordingLogger().log, {
      responseLineMax: 512, replyTimeout: 1000, onChange: (h) => changes.push(h),
    });
    await probe.probeOnce();
    up = false;
    await probe.probeOnce();
    expect(changes).toEqual([true, false]);
    expect(probe.capabilities()).toBeNull();
    expect(probe.lastError?.code).toBe('CLOSED');
  });

  it('probes again every probeInterval until stopped', async () => {
    const backend = await pop3(['USER']);
    const probe = new BackendProbe([serverOf(backend)], cfgFor([serverOf(backend)], { probeInterval: 50 }), recordingLogger().log, {
      responseLineMax: 512, replyTimeout: 1000,
    });
    await probe.start();
    await backend.waitForConnections(3, 2000);
    probe.stop();
    await new Promise((r) => setTimeout(r, 30));
    const count = backend.connections;
    await new Promise((r) => setTimeout(r, 150));
    expect(backend.connections).toBe(count);
  });

  it('sends a LOCAL PROXY header when the backend expects PROXY headers', async () => {
    let first: Buffer | null = null;
    const backend = await fake(async (c) => {
      await new Promise((r) => setTimeout(r, 30));
      first = Buffer.from(c.received);
      await c.write('+OK\r\n');
      await c.expectLine(/CAPA$/);
      await c.write('+OK\r\nUSER\r\n.\r\n');
      await c.waitClosed(10_000);
    });
    const probe = new BackendProbe([serverOf(backend)], cfgFor([serverOf(backend)], { proxyProtocol: 'v2' }), recordingLogger().log, {
      responseLineMax: 512, replyTimeout: 1000,
    });
    await probe.probeOnce();
    expect(first).toEqual(proxyLocalHeader('v2'));
    expect(probe.healthy()).toBe(true);
  });
});

describe('proxyLocalHeader', () => {
  it('builds the v1 UNKNOWN line and the 16-byte v2 LOCAL header', () => {
    expect(proxyLocalHeader('v1').toString('latin1')).toBe('PROXY UNKNOWN\r\n');
    expect(proxyLocalHeader('v2').toString('hex')).toBe('0d0a0d0a000d0a515549540a' + '20000000');
  });

  it('is understood by our own PROXY parser as a header without addresses', () => {
    for (const v of ['v1', 'v2'] as const) {
      const parsed = parseProxyHeader(proxyLocalHeader(v));
      expect(parsed).toMatchObject({ status: 'ok', length: proxyLocalHeader(v).length, info: { family: 'UNKNOWN', source: null } });
    }
  });
});
