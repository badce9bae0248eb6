/**
 * Just enough of the Chrome DevTools Protocol to ask a Node process started
 * with `--inspect=127.0.0.1:0` for a full garbage collection and its
 * process.memoryUsage(): a minimal WebSocket client over node:net (text frames,
 * client-masked, no extensions). Used by the memory measurement only.
 */
import crypto from 'node:crypto';
import net from 'node:net';

export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

const TIMEOUT_MS = 10_000;

class CdpSocket {
  private buf: Buffer = Buffer.alloc(0);
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.failAll(err));
    socket.on('close', () => this.failAll(new Error('inspector connection closed')));
  }

  static open(wsUrl: string): Promise<CdpSocket> {
    const url = new URL(wsUrl);
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: url.hostname, port: Number(url.port) });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`inspector at ${wsUrl} did not answer the upgrade`));
      }, TIMEOUT_MS);
      let head = '';
      const onHead = (chunk: Buffer) => {
        head += chunk.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        clearTimeout(timer);
        socket.removeListener('data', onHead);
        socket.removeAllListeners('error');
        if (!head.startsWith('HTTP/1.1 101')) {
          socket.destroy();
          reject(new Error(`inspector refused the upgrade: ${head.split('\r\n')[0]}`));
          return;
        }
        const cdp = new CdpSocket(socket);
        const rest = Buffer.from(head.slice(end + 4), 'latin1');
        if (rest.length > 0) cdp.onData(rest);
        resolve(cdp);
      };
      socket.on('data', onHead);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        socket.write([
          `GET ${url.pathname} HTTP/1.1`, `Host: ${url.host}`, 'Upgrade: websocket', 'Connection: Upgrade',
          `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}`, 'Sec-WebSocket-Version: 13', '', '',
        ].join('\r\n'));
      });
    });
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.nextId++;
    const payload = Buffer.from(JSON.stringify({ id, method, params }));
    const mask = crypto.randomBytes(4);
    const len = payload.length;
    const header = len < 126 ? Buffer.from([0x81, 0x80 | len])
      : len < 65536 ? Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff])
        : (() => {
          const h = Buffer.alloc(10);
          h[0] = 0x81;
          h[1] = 0x80 | 127;
          h.writeBigUInt64BE(BigInt(len), 2);
          return h;
        })();
    const masked = Buffer.alloc(len);
    for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ mask[i % 4]!;
    this.socket.write(Buffer.concat([header, mask, masked]));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`inspector: no answer to ${method}`));
      }, TIMEOUT_MS);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.buf.length < 2) return;
      const opcode = this.buf[0]! & 0x0f;
      let len = this.buf[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buf.length < 4) return;
        len = this.buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buf.length < 10) return;
        len = Number(this.buf.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buf.length < off + len) return;
      const payload = this.buf.subarray(off, off + len);
      this.buf = this.buf.subarray(off + len);
      if (opcode === 0x1) this.onMessage(payload.toString('utf8'));
      else if (opcode === 0x8) this.socket.destroy();
    }
  }

  private onMessage(text: string): void {
    const msg = JSON.parse(text) as { id?: number; result?: unknown; error?: { message: string } };
    if (msg.id === undefined) return; // an event: not subscribed to any, ignore
    const w = this.waiting.get(msg.id);
    if (w === undefined) return;
    this.waiting.delete(msg.id);
    if (msg.error !== undefined) w.reject(new Error(`inspector: ${msg.error.message}`));
    else w.resolve(msg.result);
  }

  private failAll(err: Error): void {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}

/** Runs a full GC in the inspected process, then returns its process.memoryUsage(). */
export async function collectAndMeasure(wsUrl: string): Promise<MemoryUsage> {
  const cdp = await CdpSocket.open(wsUrl);
  try {
    await cdp.call('HeapProfiler.collectGarbage');
    const r = (await cdp.call('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    })) as { result?: { value?: string } };
    const value = r.result?.value;
    if (typeof value !== 'string') throw new Error('inspector: process.memoryUsage() gave no value');
    return JSON.parse(value) as MemoryUsage;
  } finally {
    cdp.close();
  }
}

/**
 * A V8 CPU profile of the inspected process while `run` runs (so a warm-up can come first, out
 * of the profile): Profiler.start before, Profiler.stop after. `intervalUs` is the sampling period.
 */
export function profileDuring<T>(wsUrl: string, run: () => Promise<T>, intervalUs = 200): Promise<{ result: T; profile: unknown }> {
  return recordDuring(wsUrl, run, [
    ['Profiler.enable', {}], ['Profiler.setSamplingInterval', { interval: intervalUs }], ['Profiler.start', {}],
  ], 'Profiler.stop');
}

/**
 * V8's sampling heap profiler while `run` runs: where the process allocates (collected objects
 * included), as a tree of allocation sites with self sizes in bytes (sampled every `intervalBytes`).
 * `includeMinorGarbage: false` leaves out what died young: what is left is what the scavenger
 * had to copy (and the old generation to mark), the costly part of a garbage-collected heap.
 */
export function allocationsDuring<T>(
  wsUrl: string, run: () => Promise<T>, intervalBytes = 4096, opts: { includeMinorGarbage?: boolean } = {},
): Promise<{ result: T; profile: unknown }> {
  return recordDuring(wsUrl, run, [
    ['HeapProfiler.enable', {}],
    ['HeapProfiler.startSampling', {
      samplingInterval: intervalBytes, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: opts.includeMinorGarbage ?? true,
    }],
  ], 'HeapProfiler.stopSampling');
}

/** Sends `start` (method, params) in order, runs `run`, then `stop`, whose answer holds the profile. */
async function recordDuring<T>(
  wsUrl: string, run: () => Promise<T>, start: Array<[string, Record<string, unknown>]>, stop: string,
): Promise<{ result: T; profile: unknown }> {
  const cdp = await CdpSocket.open(wsUrl);
  try {
    for (const [method, params] of start) await cdp.call(method, params);
    const result = await run();
    const stopped = (await cdp.call(stop)) as { profile?: unknown };
    if (stopped.profile === undefined) throw new Error(`inspector: ${stop} gave no profile`);
    return { result, profile: stopped.profile };
  } finally {
    cdp.close();
  }
}
