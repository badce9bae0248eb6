/**
 * A client that stops reading in the middle of a 50 MiB RETR from a real
 * Dovecot: the gateway must apply backpressure (pause the backend) rather than
 * buffer the message, and once the client reads again the body must arrive
 * whole and byte for byte.
 */
import { createHash } from 'node:crypto';
import type net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { assertNoSecrets, forceGc, liveSessions, sleep, waitUntil } from './helpers.ts';

const MiB = 1024 * 1024;

/** About 50 MiB of CRLF lines, many of them starting with a dot (so the relay must keep the stuffing intact). */
function bigMessage(): Buffer {
  const head = 'From: big@example.org\r\nTo: alice@example.org\r\nSubject: fifty\r\nMessage-ID: <fifty@example.org>\r\n\r\n';
  const lines: string[] = [];
  for (let i = 0; i < 1000; i++) {
    lines.push(i % 9 === 0 ? `.dot-leading ${i} ${'d'.repeat(60)}` : i % 13 === 0 ? '.' : `line ${i} ${'x'.repeat(70)}`);
  }
  const block = Buffer.from(`${lines.join('\r\n')}\r\n`);
  const count = Math.ceil((50 * MiB) / block.length);
  return Buffer.concat([Buffer.from(head), ...Array.from({ length: count }, () => block)]);
}

/** A bare TLS client that can stop reading at will (pause) and counts what it got. */
class PausableClient {
  readonly chunks: Buffer[] = [];
  received = 0;
  private text = '';
  private wake: (() => void) | null = null;
  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.received += chunk.length;
      if (this.text !== null && this.text.length < 4096) this.text += chunk.toString('latin1');
      this.wake?.();
    });
    socket.on('close', () => this.wake?.());
  }

  static async connect(port: number): Promise<PausableClient> {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    return new PausableClient(socket);
  }

  async until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (this.socket.destroyed) throw new Error(`connection closed while waiting for ${what}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 200);
      });
    }
  }

  /** Waits for `n` CRLF-terminated lines in total (only for the small replies before the body). */
  async lines(n: number): Promise<string[]> {
    await this.until(`${n} lines`, () => this.text.split('\r\n').length > n);
    return this.text.split('\r\n').slice(0, n);
  }

  resetCapture(): void {
    this.chunks.length = 0;
    this.received = 0;
    this.text = '';
  }

  /** True once the bytes received end with the multi-line terminator. */
  endsWithTerminator(): boolean {
    const tail = Buffer.concat(this.chunks.slice(-2)).subarray(-5).toString('latin1');
    return tail === '\r\n.\r\n';
  }
}

describe('a slow reader during a 50 MiB RETR from Dovecot', () => {
  let dovecot: DovecotInstance;
  let g: TestGateway;
  const big = bigMessage();

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', big);
    g = await startTestGateway(dovecot.port, { policy: { timeouts: { backendReply: '30s' } } });
  }, 60_000);

  afterAll(async () => {
    if (g) assertNoSecrets(g);
    await g?.stop();
    await dovecot?.stop();
  });

  it('pauses the backend instead of buffering, then delivers the whole body intact', async () => {
    const c = await PausableClient.connect(g.port.pop3s!);
    c.socket.write('USER alice\r\nPASS alice-secret\r\n');
    const [greeting, user, pass] = await c.lines(3);
    expect(greeting).toMatch(/^\+OK/);
    expect(user).toMatch(/^\+OK/);
    expect(pass).toMatch(/^\+OK/);
    const session = liveSessions(g.gw).find((s) => s.user === 'alice')!;
    c.resetCapture();

    forceGc();
    const rssBefore = process.memoryUsage().rss;
    c.socket.pause();
    c.socket.write('RETR 1\r\n');

    // Let the pipe fill up until the gateway stops sending: backpressure has reached the backend.
    let last = -1;
    await waitUntil('the relay to stall behind the paused client', () => {
      const now = session.bytesOut;
      const stalled = now === last && now > MiB;
      last = now;
      return stalled;
    }, 20_000).catch(() => undefined);
    await sleep(1000);
    const relayedWhilePaused = session.bytesOut;
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    const backendSocket = session.backend!.conn.socket;
    const clientSocket = (session as unknown as { client: net.Socket }).client;
    const figures = {
      relayedWhilePausedMiB: +(relayedWhilePaused / MiB).toFixed(1),
      rssGrowthMiB: +(rssGrowth / MiB).toFixed(1),
      gatewayWriteBufferKiB: Math.round(clientSocket.writableLength / 1024),
      backendReadBufferKiB: Math.round(backendSocket.readableLength / 1024),
    };
    console.log('slow reader figures', JSON.stringify(figures));
    expect(c.received).toBe(0);
    expect(relayedWhilePaused, JSON.stringify(figures)).toBeLessThan(big.length / 2);
    expect(backendSocket.isPaused(), 'backend socket paused').toBe(true);
    expect(clientSocket.writableLength, JSON.stringify(figures)).toBeLessThan(2 * MiB);
    expect(backendSocket.readableLength, JSON.stringify(figures)).toBeLessThan(2 * MiB);
    expect(rssGrowth, JSON.stringify(figures)).toBeLessThan(20 * MiB);

    // Read again: everything arrives, byte for byte.
    c.socket.resume();
    await c.until('the end of the body', () => c.received > big.length && c.endsWithTerminator(), 60_000);
    const all = Buffer.concat(c.chunks);
    const nl = all.indexOf('\r\n');
    expect(all.subarray(0, nl).toString('latin1')).toMatch(/^\+OK/);
    const stuffed = all.subarray(nl + 2, all.length - 3).toString('latin1');
    const body = Buffer.from(stuffed.replace(/^\./, '').replace(/\r\n\./g, '\r\n'), 'latin1');
    expect(body.length).toBe(big.length);
    expect(createHash('sha256').update(body).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
    c.resetCapture();
    c.socket.write('QUIT\r\n');
    expect((await c.lines(1))[0]).toMatch(/^\+OK/);
    c.socket.destroy();
  }, 90_000);

  it('answers an 8-bit user name with -ERR and goes on', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.pop3s!, tls: true });
    c.sendRaw(Buffer.concat([Buffer.from('USER '), Buffer.from('jörg@exämple.org', 'utf8'), Buffer.from('\r\n')]));
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect(await c.command('PASS whatever')).toBe('-ERR [AUTH] Authentication failed.');
    await c.login('alice', 'alice-secret');
    expect(await c.command('STAT')).toMatch(/^\+OK 1 /);
    await c.quit();
  });
});
