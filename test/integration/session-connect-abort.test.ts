/**
 * A client that hangs up while its backend connection is still being made (the backend accepted
 * TCP but has not greeted): the session ends and the half-made backend connection is cut at once,
 * not after backend.connectTimeout. The session only keeps a cancel handle while a connect runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';
import { fakeBackend } from './policy-helpers.ts';

describe('a client that hangs up during its backend connect', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;
  let stallGreeting = false;
  const stalled: ScriptConn[] = [];

  beforeAll(async () => {
    const serve = fakeBackend();
    backend = await startScriptBackend(async (conn) => {
      if (!stallGreeting) return serve(conn);
      stalled.push(conn);
      await conn.waitClosed(20_000).catch(() => undefined);
    });
    gw = await startTestGateway(backend.port, { backend: { connect: 'on-login', probeInterval: '1h', connectTimeout: '15s' } });
    await backend.waitForConnections(1); // the start-up probe
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('cuts the backend connection that was still waiting for its greeting, well before connectTimeout', async () => {
    stallGreeting = true;
    const before = backend.connections;
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(await c.command('USER ok')).toMatch(/^\+OK/);
    c.send('PASS right');
    await backend.waitForConnections(before + 1, 5000);
    const t0 = Date.now();
    await c.close();
    await stalled.at(-1)!.waitClosed(3000);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});
