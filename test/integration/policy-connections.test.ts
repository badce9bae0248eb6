/**
 * Connection limits end to end (issue 3): maxPerIp, maxTotal and ratePerIp/rateWindow, on the
 * starttls and plain listeners (an -ERR [SYS/TEMP] line, then close) and on the implicit TLS
 * listener (a close before any handshake). The backend connects on accept, so every accepted
 * session opens exactly one backend connection and a refused one must open none.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend } from '../harness/script-backend.ts';
import { eventually, fakeBackend, metricValue, scrape, sleep } from './policy-helpers.ts';

const PER_IP = '-ERR [SYS/TEMP] Too many connections from your address, try again later.';
const TOTAL = '-ERR [SYS/TEMP] Too many connections, try again later.';

/** Opens a plain TCP connection from `ip` and returns everything it received until the server closed it. */
function refusedPlain(port: number, ip: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress: ip });
    let got = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connection from ${ip} was not closed within 3 s; received ${JSON.stringify(got)}`));
    }, 3000);
    s.on('data', (c: Buffer) => (got += c.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(got);
    });
  });
}

/** Starts a TLS handshake from `ip`; resolves with how it ended. */
function tlsAttempt(port: number, ip: string): Promise<{ secure: boolean; error: string | null; bytes: number }> {
  return new Promise((resolve) => {
    let bytes = 0;
    const raw = net.connect({ host: '127.0.0.1', port, localAddress: ip });
    raw.on('data', (c: Buffer) => (bytes += c.length)); // bytes before the handshake: there must be none
    const s = tls.connect({ socket: raw, rejectUnauthorized: false });
    let secure = false;
    let error: string | null = null;
    s.on('secureConnect', () => {
      secure = true;
      s.destroy();
    });
    s.on('error', (err) => (error = err.message));
    s.on('close', () => resolve({ secure, error, bytes }));
    setTimeout(() => s.destroy(), 3000).unref();
  });
}

describe('connection limits (maxPerIp 2, maxTotal 4)', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;

  beforeAll(async () => {
    backend = await startScriptBackend(fakeBackend());
    gw = await startTestGateway(backend.port, {
      backend: { connect: 'on-accept' },
      policy: { connections: { maxPerIp: 2, maxTotal: 4 } },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('refuses a third connection from one address on every listener, without opening a backend connection', async () => {
    const open = [
      await Pop3TestClient.connect({ port: gw.port.pop3!, localAddress: '127.0.0.2' }),
      await Pop3TestClient.connect({ port: gw.port.plain!, localAddress: '127.0.0.2' }),
    ];
    const backendBefore = backend.connections;
    expect(await refusedPlain(gw.port.pop3!, '127.0.0.2')).toBe(`${PER_IP}\r\n`);
    expect(await refusedPlain(gw.port.plain!, '127.0.0.2')).toBe(`${PER_IP}\r\n`);
    // Implicit TLS: a plaintext -ERR is useless to a TLS client, so the connection is just closed.
    const implicit = await tlsAttempt(gw.port.pop3s!, '127.0.0.2');
    expect(implicit).toMatchObject({ secure: false, bytes: 0 });
    // Another address is still served, and the open sessions go on.
    const other = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, localAddress: '127.0.0.3' });
    expect(await other.command('CAPA')).toMatch(/^\+OK/);
    await other.readMultiline();
    expect(await open[0]!.command('NOOP')).toMatch(/^-ERR/); // before login: refused by the state machine, session alive
    await sleep(100);
    expect(backend.connections - backendBefore).toBe(1); // only "other"
    for (const c of [...open, other]) await c.quit();
    // The slots are given back.
    await eventually(() => gw.gw.registry.size === 0, 'the sessions to end');
    const again = await Pop3TestClient.connect({ port: gw.port.pop3!, localAddress: '127.0.0.2' });
    expect(again.greeting).toMatch(/^\+OK/);
    await again.quit();
    const log = gw.logs.find({ event: 'connection-refused', reason: 'max-per-ip' });
    expect(log.length).toBe(3);
    expect(log.every((l) => l.client === '127.0.0.2')).toBe(true);
  });

  it('refuses a connection past maxTotal with its own reply, whatever the address', async () => {
    const open: Pop3TestClient[] = [];
    for (const ip of ['127.0.0.4', '127.0.0.4', '127.0.0.5', '127.0.0.5']) open.push(await Pop3TestClient.connect({ port: gw.port.plain!, localAddress: ip }));
    const backendBefore = backend.connections;
    expect(await refusedPlain(gw.port.plain!, '127.0.0.6')).toBe(`${TOTAL}\r\n`);
    expect(await refusedPlain(gw.port.pop3!, '127.0.0.7')).toBe(`${TOTAL}\r\n`);
    expect(await tlsAttempt(gw.port.pop3s!, '127.0.0.8')).toMatchObject({ secure: false, bytes: 0 });
    await sleep(100);
    expect(backend.connections).toBe(backendBefore);
    for (const c of open) await c.quit();
    expect(gw.logs.find({ event: 'connection-refused', reason: 'max-total' })).toHaveLength(3);
  });

  it('counts every refused connection in the metrics by reason', async () => {
    const text = await scrape(gw.port.admin!);
    expect(metricValue(text, 'pop3gw_policy_refusals_total', { reason: 'max-per-ip' })).toBe(3);
    expect(metricValue(text, 'pop3gw_policy_refusals_total', { reason: 'max-total' })).toBe(3);
    const refused = ['pop3s', 'pop3', 'plain'].reduce((n, listener) => n + metricValue(text, 'pop3gw_connections_total', { listener, result: 'refused' }), 0);
    expect(refused).toBe(6);
  });
});

describe('connection rate (ratePerIp 3 per rateWindow 2s)', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;

  beforeAll(async () => {
    backend = await startScriptBackend(fakeBackend());
    gw = await startTestGateway(backend.port, {
      backend: { connect: 'on-accept' },
      policy: { connections: { ratePerIp: 3, rateWindow: '2s' } },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('refuses the fourth new connection from one address within the window, and accepts again after it', async () => {
    const start = Date.now();
    for (let i = 0; i < 3; i++) {
      const c = await Pop3TestClient.connect({ port: gw.port.plain!, localAddress: '127.0.0.9' });
      await c.quit();
    }
    const backendBefore = backend.connections;
    expect(await refusedPlain(gw.port.pop3!, '127.0.0.9')).toBe(`${PER_IP}\r\n`);
    expect(await tlsAttempt(gw.port.pop3s!, '127.0.0.9')).toMatchObject({ secure: false, bytes: 0 });
    // Other addresses have their own budget.
    const other = await Pop3TestClient.connect({ port: gw.port.plain!, localAddress: '127.0.0.10' });
    await other.quit();
    await sleep(100);
    expect(backend.connections - backendBefore).toBe(1);
    await sleep(Math.max(0, start + 2300 - Date.now()));
    const later = await Pop3TestClient.connect({ port: gw.port.plain!, localAddress: '127.0.0.9' });
    expect(later.greeting).toMatch(/^\+OK/);
    await later.quit();
    expect(gw.logs.find({ event: 'connection-refused', reason: 'conn-rate' })).toHaveLength(2);
    expect(metricValue(await scrape(gw.port.admin!), 'pop3gw_policy_refusals_total', { reason: 'conn-rate' })).toBe(2);
  });
});
