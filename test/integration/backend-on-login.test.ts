/**
 * `backend.connect: on-login`: clients that never try to log in cost the backend nothing.
 * The backend counts its connections; the capability probe makes exactly one at start
 * (probeInterval is long, so it makes no other during the test).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';

async function serve(conn: ScriptConn): Promise<void> {
  await conn.write('+OK counted backend ready\r\n');
  for (;;) {
    const line = await conn.readLine(30_000);
    if (line === null) return;
    const verb = line.split(' ')[0]!.toUpperCase();
    if (verb === 'CAPA') await conn.write('+OK\r\nUSER\r\nUIDL\r\nTOP\r\nPIPELINING\r\n.\r\n');
    else if (verb === 'USER') await conn.write('+OK\r\n');
    else if (verb === 'PASS') await conn.write('+OK logged in\r\n');
    else if (verb === 'STAT') await conn.write('+OK 0 0\r\n');
    else if (verb === 'QUIT') {
      await conn.write('+OK bye\r\n');
      conn.end();
      return;
    } else await conn.write('-ERR no\r\n');
  }
}

const settle = (ms = 200) => new Promise((r) => setTimeout(r, ms));

describe('on-login mode', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;
  let afterProbe = 0;

  beforeAll(async () => {
    backend = await startScriptBackend(serve);
    gw = await startTestGateway(backend.port, { backend: { connect: 'on-login', probeInterval: '1h' } });
    await backend.waitForConnections(1);
    await settle();
    afterProbe = backend.connections;
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('has only the start-up probe connection once the gateway runs', () => {
    expect(afterProbe).toBe(1);
  });

  it('opens no backend connection for a client that connects and never logs in', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(c.greeting).toBe('+OK POP3 gateway ready.');
    await settle(300);
    expect(backend.connections).toBe(afterProbe);
    await c.close();
    await settle();
    expect(backend.connections).toBe(afterProbe);
  });

  it('opens none for 30 clients that only send CAPA, STLS, USER, a cancelled AUTH, NOOP and QUIT', async () => {
    const clients = Array.from({ length: 30 }, async (_, i) => {
      const kind = i % 3;
      const c = await Pop3TestClient.connect({ port: kind === 0 ? gw.port.pop3s! : kind === 1 ? gw.port.pop3! : gw.port.plain!, tls: kind === 0 });
      expect((await c.multiline('CAPA')).status).toMatch(/^\+OK/);
      if (kind === 1) {
        await c.startTls({ rejectUnauthorized: false });
        expect((await c.multiline('CAPA')).status).toMatch(/^\+OK/);
      }
      expect(await c.command(`USER user${i}`)).toMatch(/^\+OK/);
      expect(await c.command('AUTH PLAIN')).toBe('+ ');
      expect(await c.command('*')).toMatch(/^-ERR/);
      expect(await c.command('NOOP')).toMatch(/^-ERR/);
      expect(await c.quit()).toMatch(/^\+OK/);
    });
    await Promise.all(clients);
    await settle();
    expect(backend.connections).toBe(afterProbe);
  });

  it('opens exactly one backend connection at PASS', async () => {
    const before = backend.connections;
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(await c.command('USER dave')).toMatch(/^\+OK/);
    await settle();
    expect(backend.connections).toBe(before);
    expect(await c.command('PASS dave-secret')).toBe('+OK logged in');
    expect(backend.connections).toBe(before + 1);
    expect(await c.command('STAT')).toBe('+OK 0 0');
    await c.quit();
    expect(backend.connections).toBe(before + 1);
  });
});

describe('on-accept mode, for contrast', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;

  beforeAll(async () => {
    backend = await startScriptBackend(serve);
    gw = await startTestGateway(backend.port, { backend: { connect: 'on-accept', probeInterval: '1h' } });
    await backend.waitForConnections(1);
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('connects to the backend for every client at once and relays its greeting', async () => {
    const before = backend.connections;
    const a = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    const b = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(a.greeting).toBe('+OK counted backend ready');
    expect(backend.connections).toBe(before + 2);
    await a.quit();
    await b.quit();
  });
});
