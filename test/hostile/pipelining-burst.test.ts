/**
 * Bursts of pipelined commands in one write: every command answered, in
 * order; no more than limits.pipelineDepth in flight at the backend (the
 * gateway stops reading the client instead); what it holds stays bounded.
 */
import type net from 'node:net';
import { describe, expect, it } from 'vitest';
import { startDovecot } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend } from '../harness/script-backend.ts';
import { assertNoSecrets, fakePop3, hostileConfig, liveSessions, sleep, waitUntil, stopAfterEach } from './helpers.ts';

const running = stopAfterEach();

function linesIn(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) n++;
  return n;
}

/**
 * A pipelining backend that numbers its replies and, on the first NOOP after
 * login, stops answering for `holdMs` to see how many more commands pile up.
 */
function numberingBackend(holdMs: number) {
  const seen = { held: false, outstandingAtHold: 0, replies: 0 };
  const fake = fakePop3({
    capa: ['USER', 'UIDL', 'PIPELINING'],
    onCommand: async (conn, verb, _line, state) => {
      if (!state.loggedIn || (verb !== 'NOOP' && verb !== 'STAT')) return false;
      if (!seen.held) {
        seen.held = true;
        await sleep(holdMs);
        // Lines received on this connection beyond the ones handled so far (this NOOP included).
        seen.outstandingAtHold = linesIn(conn.received) - fake.lines.get(conn.index)!.length;
      }
      await conn.write(`+OK ${++seen.replies} ${verb}\r\n`);
      return true;
    },
  });
  return { fake, seen };
}

describe('pipelined bursts', () => {
  it('answers 1000 NOOP/STAT sent in one write, in order, with at most pipelineDepth in flight', async () => {
    const { fake, seen } = numberingBackend(800);
    const b = await startScriptBackend(fake.handler);
    running.push(b);
    const g = await startTestGateway(b.port, hostileConfig({ limits: { pipelineDepth: 64 } }));
    running.push(g);
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    const session = liveSessions(g.gw)[0]!;
    const verbs = Array.from({ length: 1000 }, (_, i) => (i % 3 === 2 ? 'STAT' : 'NOOP'));
    c.sendRaw(verbs.map((v) => `${v}\r\n`).join(''));
    await sleep(400); // inside the backend's hold
    const clientSocket = (session as unknown as { client: net.Socket }).client;
    const heldInput = session.decoder.buffered;
    expect(session.queue.clientDepth).toBe(64);
    expect(clientSocket.isPaused(), 'the gateway stopped reading the client').toBe(true);
    for (let i = 0; i < verbs.length; i++) {
      expect(await c.readLine(10_000)).toBe(`+OK ${i + 1} ${verbs[i]}`);
    }
    // The held NOOP plus the ones behind it: exactly the depth (pipelined, and no further).
    expect(seen.outstandingAtHold + 1).toBe(64);
    expect(heldInput).toBeLessThanOrEqual(6 * 1000);
    expect(await c.quit()).toBe('+OK bye');
  });

  it('respects a small pipelineDepth', async () => {
    const { fake, seen } = numberingBackend(500);
    const b = await startScriptBackend(fake.handler);
    running.push(b);
    const g = await startTestGateway(b.port, hostileConfig({ limits: { pipelineDepth: 4 } }));
    running.push(g);
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    c.sendRaw('NOOP\r\n'.repeat(200));
    for (let i = 1; i <= 200; i++) expect(await c.readLine(10_000)).toBe(`+OK ${i} NOOP`);
    expect(seen.outstandingAtHold + 1).toBe(4);
    await c.quit();
  });

  it('holds a bounded amount of a large burst while the backend is slow', async () => {
    const { fake } = numberingBackend(3000);
    const b = await startScriptBackend(fake.handler);
    running.push(b);
    const g = await startTestGateway(b.port, hostileConfig());
    running.push(g);
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    const session = liveSessions(g.gw)[0]!;
    const burst = Buffer.from('NOOP\r\n'.repeat(200_000)); // 1.2 MB
    c.sendRaw(burst);
    await sleep(1000);
    const held = session.decoder.buffered;
    const read = session.bytesIn;
    expect(held).toBeLessThanOrEqual(32 * 1024 + 64 * 1024);
    expect(read).toBeLessThan(burst.length / 2); // the rest waits in the kernel, not in the gateway
    await c.close();
    await waitUntil('the session to end', () => liveSessions(g.gw).length === 0);
  });

  it('answers 1000 pipelined NOOP/STAT in order through Dovecot', async () => {
    const dovecot = await startDovecot();
    running.push(dovecot);
    dovecot.addMessage('alice', 'Subject: one\r\n\r\nbody\r\n');
    const g = await startTestGateway(dovecot.port, {});
    running.push(g);
    const c = await Pop3TestClient.connect({ port: g.port.pop3s!, tls: true });
    await c.login('alice', 'alice-secret');
    const verbs = Array.from({ length: 1000 }, (_, i) => (i % 2 === 0 ? 'NOOP' : 'STAT'));
    c.sendRaw(verbs.map((v) => `${v}\r\n`).join(''));
    for (const verb of verbs) {
      const line = await c.readLine(15_000);
      if (verb === 'NOOP') expect(line).toBe('+OK');
      else expect(line).toMatch(/^\+OK 1 \d+$/);
    }
    expect(await c.quit()).toMatch(/^\+OK/);
  });
});
