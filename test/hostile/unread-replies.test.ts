/**
 * A client that sends commands but never reads the replies: the gateway's
 * own replies (CAPA, -ERR) must not pile up in memory without bound. It stops
 * reading the client instead, and answers everything once the client reads.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { startScriptBackend } from '../harness/script-backend.ts';
import { assertNoSecrets, fakePop3, hostileConfig, liveSessions, sleep, waitUntil, stopAfterEach } from './helpers.ts';

const running = stopAfterEach();

describe('a client that does not read its replies', () => {
  it('stops reading a client that does not read its replies, then answers every command once it does', async () => {
    const b = await startScriptBackend(fakePop3().handler);
    running.push(b);
    const g = await startTestGateway(b.port, hostileConfig());
    running.push(g);
    const sock = net.connect({ host: '127.0.0.1', port: g.port.plain! });
    await new Promise((r) => sock.once('connect', r));
    sock.pause(); // reads nothing: replies pile up in the kernel, then in the gateway
    await waitUntil('the session', () => liveSessions(g.gw).length === 1);
    const session = liveSessions(g.gw)[0]!;
    const clientSocket = (session as unknown as { client: net.Socket }).client;
    let firstPause = 0;
    const pause = clientSocket.pause.bind(clientSocket);
    clientSocket.pause = () => {
      firstPause ||= Date.now();
      return pause();
    };
    // Pre-login CAPA: 6 bytes in, ~75 bytes out, answered by the gateway itself (no backend to slow it).
    // 11 MB of replies: more than the kernel's socket buffers take, so the gateway must hold them or stop reading.
    const n = 150_000;
    sock.write('CAPA\r\n'.repeat(n));
    let maxUnread = 0;
    const deadline = Date.now() + 15_000;
    // Until the gateway has read everything (no backpressure: fails below) or has stopped reading for a second.
    while (session.bytesIn < n * 6 && (firstPause === 0 || Date.now() - firstPause < 1000) && Date.now() < deadline) {
      maxUnread = Math.max(maxUnread, clientSocket.writableLength);
      await sleep(20);
    }
    maxUnread = Math.max(maxUnread, clientSocket.writableLength);
    const figures = { paused: firstPause > 0, maxUnreadKiB: Math.round(maxUnread / 1024), readKiB: Math.round(session.bytesIn / 1024), sentKiB: Math.round(session.bytesOut / 1024) };
    expect(maxUnread, JSON.stringify(figures)).toBeLessThan(128 * 1024);
    expect(firstPause, JSON.stringify(figures)).toBeGreaterThan(0);
    expect(session.bytesIn, JSON.stringify(figures)).toBeLessThan(n * 6);
    // Reading again: every CAPA gets its reply, none lost, none twice.
    let replies = 0;
    let carry = '';
    sock.on('data', (chunk: Buffer) => {
      const text = carry + chunk.toString('latin1');
      replies += text.split('\r\n.\r\n').length - 1;
      carry = text.slice(-4);
    });
    sock.resume();
    await waitUntil('every CAPA reply', () => replies >= n, 25_000);
    await sleep(100);
    expect(replies).toBe(n);
    sock.end('QUIT\r\n');
    await waitUntil('the session to end', () => liveSessions(g.gw).length === 0);
  }, 40_000);

});
