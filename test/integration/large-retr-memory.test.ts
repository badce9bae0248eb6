/**
 * A 100 MiB RETR through the gateway (in this process) from a real Dovecot over pop3s,
 * read at full speed by a streaming client that un-stuffs and hashes as it goes and keeps
 * nothing. The process RSS, sampled every 50 ms, must stay flat: the gateway relays slices
 * with backpressure and never holds the body.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';

const MiB = 1024 * 1024;
const MESSAGE_SIZE = 100 * MiB;
/** Far below the message size: a gateway that buffered the body would need > 100 MiB. */
const MAX_RSS_GROWTH = 40 * MiB;

v8.setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function idOf(file: string, name: string): number {
  const line = fs.readFileSync(file, 'utf8').split('\n').find((l) => l.split(':')[0] === name);
  if (line === undefined) throw new Error(`${name} not in ${file}`);
  return Number(line.split(':')[2]);
}

/**
 * Writes a ~100 MiB message straight into the user's maildir (tmp/ then new/, like the
 * harness's addMessage) one 1 MiB block at a time, so this process never holds it.
 * Lines starting with "." and lines that are only "." make Dovecot dot-stuff the body.
 */
function writeLargeMessage(dovecot: DovecotInstance, user: string): { file: string; size: number; sha256: string; stuffedLines: number } {
  const md = dovecot.maildir(user);
  const name = `${Math.floor(Date.now() / 1000)}.M1P${process.pid}Q100mib.pop3gw-test`;
  const tmp = path.join(md, 'tmp', name);
  const hash = createHash('sha256');
  const fd = fs.openSync(tmp, 'w');
  let size = 0;
  let stuffedLines = 0;
  const write = (buf: Buffer): void => {
    fs.writeSync(fd, buf);
    hash.update(buf);
    size += buf.length;
  };
  write(Buffer.from('From: big@example.org\r\nTo: alice@example.org\r\nSubject: 100 MiB\r\nMessage-ID: <100mib@example.org>\r\n\r\n'));
  for (let block = 0; size < MESSAGE_SIZE; block++) {
    const lines: string[] = [];
    let blockSize = 0;
    for (let i = 0; blockSize < MiB; i++) {
      const l = i % 50 === 0 ? `.dot line ${block}/${i}` : i % 97 === 0 ? '.' : `block ${block} line ${i} ${'z'.repeat(60)}`;
      if (l.startsWith('.')) stuffedLines++;
      lines.push(l);
      blockSize += l.length + 2;
    }
    write(Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1'));
  }
  fs.closeSync(fd);
  fs.chownSync(tmp, idOf('/etc/passwd', 'nobody'), idOf('/etc/group', 'nogroup'));
  const file = path.join(md, 'new', name);
  fs.renameSync(tmp, file);
  return { file, size, sha256: hash.digest('hex'), stuffedLines };
}

/** Un-stuffs a multi-line body as it streams past, hashing and counting; keeps no body bytes. */
class StreamingBody {
  octetsOnWire = 0;
  octets = 0;
  done = false;
  private readonly hash = createHash('sha256');
  private state: 'start' | 'dot' | 'dot-cr' | 'mid' = 'start';

  /** Returns the offset just past the terminator, or -1 when the body goes on. */
  push(buf: Buffer, from = 0): number {
    let pos = from;
    while (pos < buf.length) {
      const b = buf[pos]!;
      if (this.state === 'start') {
        if (b === 0x2e) {
          this.state = 'dot';
          pos++;
          continue;
        }
        this.state = 'mid';
      } else if (this.state === 'dot') {
        if (b === 0x0d) {
          this.state = 'dot-cr';
          pos++;
          continue;
        }
        this.state = 'mid'; // a stuffed dot: dropped
      } else if (this.state === 'dot-cr') {
        if (b === 0x0a) {
          this.done = true;
          this.octetsOnWire += pos + 1 - from;
          return pos + 1;
        }
        this.emit(Buffer.from('\r'));
        this.state = 'mid';
      }
      const nl = buf.indexOf(0x0a, pos);
      const end = nl < 0 ? buf.length : nl + 1;
      this.emit(buf.subarray(pos, end));
      pos = end;
      if (nl >= 0) this.state = 'start';
    }
    this.octetsOnWire += buf.length - from;
    return -1;
  }

  sha256(): string {
    return this.hash.digest('hex');
  }

  private emit(slice: Buffer): void {
    this.hash.update(slice);
    this.octets += slice.length;
  }
}

/** A minimal POP3 client over TLS that reads status lines, then streams RETR's body. */
class StreamingClient {
  private pending: Buffer = Buffer.alloc(0);
  private body: StreamingBody | null = null;
  private wake: (() => void) | null = null;
  private failure: Error | null = null;

  private constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => {
      if (this.body !== null && !this.body.done) {
        const end = this.body.push(chunk);
        if (end >= 0) this.pending = chunk.subarray(end);
      } else {
        this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      }
      this.wake?.();
    });
    socket.on('error', (err) => {
      this.failure = err;
      this.wake?.();
    });
    socket.on('close', () => {
      this.failure ??= new Error('connection closed');
      this.wake?.();
    });
  }

  static async connect(port: number): Promise<StreamingClient> {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', resolve);
      socket.once('error', reject);
    });
    const client = new StreamingClient(socket);
    await client.line();
    return client;
  }

  private async until(ready: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.failure) throw this.failure;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  async line(timeoutMs = 10_000): Promise<string> {
    await this.until(() => this.pending.includes(0x0a), timeoutMs);
    const nl = this.pending.indexOf(0x0a);
    const text = this.pending.subarray(0, nl).toString('latin1').replace(/\r$/, '');
    this.pending = this.pending.subarray(nl + 1);
    return text;
  }

  async command(text: string): Promise<string> {
    this.socket.write(`${text}\r\n`);
    return this.line();
  }

  /** Sends RETR n; the body is consumed by `body` as it arrives. */
  async retr(n: number, body: StreamingBody, timeoutMs: number): Promise<string> {
    this.socket.write(`RETR ${n}\r\n`);
    const status = await this.line();
    if (!status.startsWith('+OK')) return status;
    this.body = body;
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    if (rest.length > 0) {
      const end = body.push(rest);
      if (end >= 0) this.pending = rest.subarray(end);
    }
    await this.until(() => body.done, timeoutMs);
    this.body = null;
    return status;
  }

  end(): void {
    this.socket.end();
  }
}

describe('a 100 MiB RETR through the gateway', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  let message: { file: string; size: number; sha256: string; stuffedLines: number };

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'Subject: warm-up\r\nMessage-ID: <warm@example.org>\r\n\r\nsmall\r\n.dotted\r\n');
    message = writeLargeMessage(dovecot, 'alice');
    gw = await startTestGateway(dovecot.port, { backend: { probeInterval: '1h' } });
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('keeps the process RSS flat while relaying it at full speed, byte for byte', async () => {
    const c = await StreamingClient.connect(gw.port.pop3s!);
    expect(await c.command('USER alice')).toMatch(/^\+OK/);
    expect(await c.command('PASS alice-secret')).toMatch(/^\+OK/);
    expect(await c.command('LIST')).toMatch(/^\+OK/);
    const listing: Array<[number, number]> = [];
    for (let l = await c.line(); l !== '.'; l = await c.line()) listing.push(l.split(' ').map(Number) as [number, number]);
    expect(listing).toHaveLength(2);
    // Dovecot numbers the maildir files in its own order: find the big one by size.
    const [bigMsg, listSize] = listing.find(([, size]) => size > MESSAGE_SIZE / 2)!;
    const smallMsg = listing.find(([n]) => n !== bigMsg)![0];
    // Warm up TLS buffers and code paths with the small message first.
    const warm = new StreamingBody();
    expect(await c.retr(smallMsg, warm, 10_000)).toMatch(/^\+OK/);
    expect(warm.octets).toBeGreaterThan(0);

    gc();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 50);
    const body = new StreamingBody();
    const started = performance.now();
    let status: string;
    try {
      status = await c.retr(bigMsg, body, 60_000);
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - started) / 1000;
    peak = Math.max(peak, process.memoryUsage().rss);
    expect(await c.command('QUIT')).toMatch(/^\+OK/);
    c.end();

    const growth = peak - baseline;
    console.log(`100 MiB RETR: ${(body.octetsOnWire / MiB).toFixed(1)} MiB on the wire in ${seconds.toFixed(2)} s ` +
      `(${(body.octetsOnWire / MiB / seconds).toFixed(0)} MiB/s); RSS baseline ${(baseline / MiB).toFixed(0)} MiB, ` +
      `peak growth ${(growth / MiB).toFixed(1)} MiB`);
    expect(status).toMatch(/^\+OK/);
    // Un-stuffed, the body is exactly the file Dovecot stored and the size LIST announced.
    expect(body.octets).toBe(message.size);
    expect(body.octets).toBe(listSize);
    expect(body.octetsOnWire).toBe(message.size + message.stuffedLines + 3);
    expect(body.sha256()).toBe(message.sha256);
    expect(growth).toBeLessThan(MAX_RSS_GROWTH);

    const retr = gw.auditLines().find((l) => l.event === 'command' && l.command === 'RETR' && l.msg === bigMsg);
    expect(retr?.result).toBe('ok');
  }, 90_000);
});
