/**
 * Backend pools (`backend.servers`) with real Dovecot instances: logins spread over the servers,
 * a server that is down is failed over on connect before the client hears anything, skipped for
 * `downFor`, and with every server down the client gets -ERR [SYS/TEMP] at once while /healthz
 * turns 503.
 */
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../harness/audit-wait.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function gateway(servers: Array<{ host: string; port: number }>, backend: Record<string, unknown> = {}): Promise<TestGateway> {
  // The harness merges objects: undefined takes its default host/port out again.
  const gw = await startTestGateway(0, { backend: { host: undefined, port: undefined, servers, ...backend } });
  cleanups.push(() => gw.stop());
  return gw;
}

/** A loopback port where nothing listens. */
async function closedPort(): Promise<{ host: string; port: number }> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return { host: '127.0.0.1', port };
}

/** A broken server: accepts TCP and hangs up at once, without a greeting; counts connections. */
async function brokenServer(): Promise<{ host: string; port: number; connections(): number }> {
  let count = 0;
  const server = net.createServer((s) => {
    count++;
    s.on('error', () => undefined);
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, connections: () => count };
}

async function healthStatus(gw: TestGateway): Promise<number> {
  return (await fetch(`http://127.0.0.1:${gw.port.admin!}/healthz`)).status;
}

async function waitForHealth(gw: TestGateway, status: number, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while ((await healthStatus(gw)) !== status) {
    if (Date.now() > end) throw new Error(`/healthz did not turn ${status} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Logs alice in and returns her first message's body (it names the instance). */
async function aliceReads(gw: TestGateway): Promise<string> {
  const client = await Pop3TestClient.connect({ port: gw.port.plain! });
  await client.login('alice', 'alice-secret');
  const retr = await client.multiline('RETR 1');
  await client.quit();
  return retr.body!.toString('latin1');
}

describe('a pool of Dovecot servers', () => {
  let a: DovecotInstance;
  let b: DovecotInstance;
  const server = (d: DovecotInstance) => ({ host: d.host, port: d.port });

  beforeAll(async () => {
    [a, b] = await Promise.all([startDovecot(), startDovecot()]);
    a.addMessage('alice', 'Subject: a\r\n\r\nserved by instance A\r\n');
    b.addMessage('alice', 'Subject: b\r\n\r\nserved by instance B\r\n');
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it('spreads logins over every server while all are up', async () => {
    const gw = await gateway([server(a), server(b)]);
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await aliceReads(gw)).includes('instance A') ? 'A' : 'B');
    expect([...seen].sort()).toEqual(['A', 'B']);
  });

  it('never lets a closed port listed first reach the client', async () => {
    const gw = await gateway([await closedPort(), server(a)]);
    for (let i = 0; i < 3; i++) {
      const client = await Pop3TestClient.connect({ port: gw.port.plain! });
      await client.ok('USER alice');
      expect(await client.command('PASS alice-secret')).toMatch(/^\+OK/);
      expect((await client.multiline('RETR 1')).body!.toString('latin1')).toContain('instance A');
      await client.quit();
    }
  });

  it('skips a server found down for downFor, then tries it again', async () => {
    const broken = await brokenServer();
    // probeInterval stays 30 s: after the start-up probe, every connection to it is a session's.
    const downFor = 4000;
    const gw = await gateway([{ host: broken.host, port: broken.port }, server(a)], { downFor: `${downFor}ms` });
    const probedAt = Date.now();
    expect(broken.connections()).toBe(1);
    // The start-up probe found it down: no login tries it while downFor runs.
    for (let i = 0; i < 4; i++) expect(await aliceReads(gw)).toContain('instance A');
    expect(broken.connections()).toBe(1);
    expect(Date.now() - probedAt).toBeLessThan(downFor); // else the logins above proved nothing
    await new Promise((r) => setTimeout(r, probedAt + downFor + 200 - Date.now()));
    // Back in the rotation: one of the next two logins tries it first, fails over, and marks it down again.
    for (let i = 0; i < 4; i++) expect(await aliceReads(gw)).toContain('instance A');
    expect(broken.connections()).toBe(2);
  });

  it('fails over on connect to the next server when one Dovecot stopped after the probe saw it up', async () => {
    const gw = await gateway([server(b), server(a)]);
    expect(await healthStatus(gw)).toBe(200);
    await b.stop();
    for (let i = 0; i < 4; i++) {
      const client = await Pop3TestClient.connect({ port: gw.port.plain! });
      await client.ok('USER alice');
      // The first login tries B first (refused), then A: the client hears only A's +OK.
      expect(await client.command('PASS alice-secret')).toMatch(/^\+OK/);
      expect((await client.multiline('RETR 1')).body!.toString('latin1')).toContain('instance A');
      await client.quit();
    }
    // The probe (every 30 s) has not run since: the failover came from the connection attempt.
    expect(gw.logs.find({ event: 'backend-down' })).toEqual([]);
    expect(await waitForAudit(gw, (l) => l.event === 'login' && l.result === 'ok', { count: 4 })).toHaveLength(4);
  });

  it('answers -ERR [SYS/TEMP] at once when every server is down, and /healthz turns 503', async () => {
    // B was stopped by the test before.
    const gw = await gateway([server(a), server(b)], { probeInterval: '200ms' });
    expect(await healthStatus(gw)).toBe(200);
    await gw.logs.waitFor((l) => l.event === 'backend-down' && l.server === `127.0.0.1:${b.port}`);
    await a.stop();
    const client = await Pop3TestClient.connect({ port: gw.port.plain! });
    await client.ok('USER alice');
    const started = Date.now();
    expect(await client.command('PASS alice-secret')).toBe('-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.');
    expect(Date.now() - started).toBeLessThan(2000); // refused at once: no timeout is waited out
    // The session goes on: the client may try again later on the same connection.
    expect(await client.quit()).toMatch(/^\+OK/);
    await waitForHealth(gw, 503);
    await waitForAudit(gw, (l) => l.event === 'login' && l.reason === 'backend-unavailable');
  });
});
