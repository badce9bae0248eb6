/**
 * A lean POP3 client for load generation: node:net / node:tls directly, status
 * lines read from a small buffer, multi-line bodies counted (or collected) by a
 * cross-chunk terminator scanner without per-line work. Not a test harness
 * client: it trusts the peer to speak POP3 and only bounds what it buffers.
 */
import net from 'node:net';
import tls from 'node:tls';

export type TlsMode = 'none' | 'implicit' | 'starttls';

export interface Endpoint {
  host: string;
  port: number;
  tls: TlsMode;
  /** PEM of the CA that signed the server's certificate; certificates are verified. */
  ca?: string;
  /** Name checked against the certificate; default "localhost". */
  servername?: string;
}

const TERMINATOR = Buffer.from('\r\n.\r\n');
/** Unread bytes kept while no read waits (a status line plus the start of a body). */
const MAX_PENDING = 1024 * 1024;

/**
 * Finds the end of a multi-line body: "." alone on a line. The body starts at a
 * line start, so the scanner begins as if "\r\n" had just been seen. Keeps at
 * most 4 bytes across chunks; indexOf does the work inside a chunk.
 */
export class TerminatorScanner {
  private tail: Buffer = Buffer.from('\r\n');

  reset(): void {
    this.tail = Buffer.from('\r\n');
  }

  /** Offset in `chunk` just past the terminating ".\r\n", or -1 when the body goes on. */
  scan(chunk: Buffer): number {
    if (this.tail.length > 0) {
      const edge = Buffer.concat([this.tail, chunk.subarray(0, 4)]);
      const at = edge.indexOf(TERMINATOR);
      if (at >= 0 && at < this.tail.length) return at + TERMINATOR.length - this.tail.length;
    }
    const at = chunk.indexOf(TERMINATOR);
    if (at >= 0) return at + TERMINATOR.length;
    this.tail = chunk.length >= 4 ? Buffer.from(chunk.subarray(chunk.length - 4)) : Buffer.concat([this.tail, chunk]).subarray(-4);
    return -1;
  }
}

/** Removes the dot-stuffing of a body (without its ".\r\n"): a leading "." on any line is dropped. */
export function unstuff(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  while (pos < body.length) {
    const lf = body.indexOf(0x0a, pos);
    const end = lf < 0 ? body.length : lf + 1;
    parts.push(body.subarray(body[pos] === 0x2e ? pos + 1 : pos, end));
    pos = end;
  }
  return Buffer.concat(parts);
}

type Waiter =
  | { kind: 'line'; resolve: (line: string) => void; reject: (err: Error) => void }
  | { kind: 'body'; scanner: TerminatorScanner; octets: number; parts: Buffer[] | null; resolve: (r: BodyResult) => void; reject: (err: Error) => void };

export interface BodyResult {
  /** Bytes received for the body including the final ".\r\n". */
  octets: number;
  /** The raw (still dot-stuffed) body without ".\r\n", when collected. */
  body: Buffer | null;
}

export class RawPop3 {
  greeting = '';
  tlsProtocol: string | null = null;
  private socket: net.Socket;
  private pending: Buffer = Buffer.alloc(0);
  private waiter: Waiter | null = null;
  private closedError: Error | null = null;
  readonly closed: Promise<void>;
  private markClosed!: () => void;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
    this.attach(socket);
  }

  /** Connects, does the TLS handshake (implicit) and reads the greeting; STLS is done for `starttls`. */
  static async connect(ep: Endpoint, timeoutMs = 10_000): Promise<RawPop3> {
    const socket = await openSocket(ep, ep.tls === 'implicit', timeoutMs);
    const client = new RawPop3(socket);
    if (socket instanceof tls.TLSSocket) client.tlsProtocol = socket.getProtocol();
    client.greeting = await client.withTimeout(client.readLine(), timeoutMs, 'greeting');
    if (!client.greeting.startsWith('+OK')) throw new Error(`bad greeting: ${client.greeting}`);
    if (ep.tls === 'starttls') await client.startTls(ep, timeoutMs);
    return client;
  }

  get isClosed(): boolean {
    return this.closedError !== null;
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  private fail(err: Error): void {
    if (this.closedError === null) {
      this.closedError = err;
      this.markClosed();
    }
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }

  private onData(chunk: Buffer): void {
    if (this.pending.length > 0) {
      chunk = Buffer.concat([this.pending, chunk]);
      this.pending = Buffer.alloc(0);
    }
    this.feed(chunk);
  }

  private feed(buf: Buffer): void {
    while (buf.length > 0 && this.waiter !== null) {
      const w = this.waiter;
      if (w.kind === 'line') {
        const lf = buf.indexOf(0x0a);
        if (lf < 0) break;
        const end = lf > 0 && buf[lf - 1] === 0x0d ? lf - 1 : lf;
        const line = buf.toString('latin1', 0, end);
        buf = buf.subarray(lf + 1);
        this.waiter = null;
        w.resolve(line);
      } else {
        const end = w.scanner.scan(buf);
        const used = end < 0 ? buf : buf.subarray(0, end);
        w.octets += used.length;
        w.parts?.push(used);
        buf = end < 0 ? Buffer.alloc(0) : buf.subarray(end);
        if (end >= 0) {
          this.waiter = null;
          const body = w.parts === null ? null : Buffer.concat(w.parts);
          w.resolve({ octets: w.octets, body: body === null ? null : body.subarray(0, body.length - 3) });
        }
      }
    }
    if (buf.length > 0) {
      if (this.pending.length + buf.length > MAX_PENDING) {
        this.socket.destroy(new Error(`more than ${MAX_PENDING} unread bytes buffered`));
        return;
      }
      this.pending = this.pending.length > 0 ? Buffer.concat([this.pending, buf]) : Buffer.from(buf);
    }
  }

  private wait<T>(make: (resolve: (v: T) => void, reject: (err: Error) => void) => Waiter): Promise<T> {
    if (this.waiter !== null) return Promise.reject(new Error('a read is already waiting'));
    if (this.closedError !== null && this.pending.length === 0) return Promise.reject(this.closedError);
    return new Promise<T>((resolve, reject) => {
      this.waiter = make(resolve, reject);
      if (this.pending.length > 0) {
        const buf = this.pending;
        this.pending = Buffer.alloc(0);
        this.feed(buf);
      }
      if (this.waiter !== null && this.closedError !== null) this.fail(this.closedError);
    });
  }

  readLine(): Promise<string> {
    return this.wait<string>((resolve, reject) => ({ kind: 'line', resolve, reject }));
  }

  /** Reads a multi-line body after its +OK line; `collect` keeps the bytes (small bodies only). */
  readBody(collect = false): Promise<BodyResult> {
    return this.wait<BodyResult>((resolve, reject) => ({
      kind: 'body', scanner: new TerminatorScanner(), octets: 0, parts: collect ? [] : null, resolve, reject,
    }));
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Sends one command and returns its status line. */
  async command(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.readLine();
  }

  /** Sends a command that must answer +OK; throws with the reply otherwise. */
  async ok(line: string): Promise<string> {
    const reply = await this.command(line);
    if (!reply.startsWith('+OK')) throw new Error(`${line.split(' ')[0]} answered: ${reply}`);
    return reply;
  }

  async login(user: string, password: string): Promise<void> {
    await this.ok(`USER ${user}`);
    const reply = await this.command(`PASS ${password}`);
    if (!reply.startsWith('+OK')) throw new Error(`login as ${user} refused: ${reply}`);
  }

  /** RETR n (or any multi-line command): status line plus body; null body when -ERR. */
  async multiline(line: string, collect = false): Promise<{ status: string; body: BodyResult | null }> {
    const status = await this.command(line);
    if (!status.startsWith('+OK')) return { status, body: null };
    return { status, body: await this.readBody(collect) };
  }

  private async startTls(ep: Endpoint, timeoutMs: number): Promise<void> {
    await this.ok('STLS');
    // Whatever the server sent after +OK in plaintext is not trusted: drop it (there should be none).
    this.pending = Buffer.alloc(0);
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.on('close', () => undefined);
    const secure = await openSocket({ ...ep, tls: 'implicit' }, true, timeoutMs, plain);
    this.socket = secure;
    this.attach(secure);
    this.tlsProtocol = secure instanceof tls.TLSSocket ? secure.getProtocol() : null;
  }

  /** QUIT, wait for +OK and the server's close. */
  async quit(timeoutMs = 5000): Promise<string> {
    const reply = await this.withTimeout(this.command('QUIT'), timeoutMs, 'QUIT reply');
    this.socket.end();
    await this.withTimeout(this.closed, timeoutMs, 'close after QUIT');
    return reply;
  }

  destroy(): void {
    this.socket.destroy();
  }

  async withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        p,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            this.destroy();
            reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
          }, ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function openSocket(ep: Endpoint, secure: boolean, timeoutMs: number, over?: net.Socket): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s: net.Socket = secure
      ? tls.connect({
        ...(over ? { socket: over } : { host: ep.host, port: ep.port }),
        servername: ep.servername ?? 'localhost',
        ...(ep.ca !== undefined ? { ca: ep.ca } : { rejectUnauthorized: false }),
      })
      : net.connect({ host: ep.host, port: ep.port });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`timed out after ${timeoutMs} ms connecting to ${ep.host}:${ep.port}`));
    }, timeoutMs);
    s.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      s.destroy();
      reject(err);
    });
  });
}
