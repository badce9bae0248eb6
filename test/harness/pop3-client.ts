import net from 'node:net';
import tls from 'node:tls';

/**
 * A scripted POP3 client for tests. Lines are read one at a time from a byte
 * buffer (CRLF or lone LF), so the test decides what it expects next; every wait
 * times out with an error naming what it was waiting for.
 */

export interface Pop3ConnectOptions {
  host?: string;
  port: number;
  /** Implicit TLS: true (no certificate checks) or tls.connect options. */
  tls?: boolean | tls.ConnectionOptions;
  /** Default timeout for every wait (ms); default 5000. */
  timeoutMs?: number;
  /** Read the greeting line during connect() (default true). */
  readGreeting?: boolean;
  /** Bytes written right after the TCP connection opens, before anything else (e.g. a PROXY header). */
  preamble?: Buffer | string;
  /** Source address to connect from (e.g. 127.0.0.2: any 127/8 address works on Linux). */
  localAddress?: string;
}

export interface MultilineReply {
  status: string;
  /** The body un-stuffed, lines joined with CRLF and ending in CRLF; null when status is not +OK. */
  body: Buffer | null;
}

interface Waiter {
  what: string;
  check: () => boolean;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class Pop3TestClient {
  greeting = '';
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>;
  /** Set when the connection closed; the error that closed it, if any. */
  closeError: Error | null = null;
  isClosed = false;

  private socket: net.Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private waiters: Waiter[] = [];
  private readonly timeoutMs: number;
  private resolveClosed!: () => void;
  private readonly host: string;

  private constructor(socket: net.Socket, host: string, timeoutMs: number) {
    this.socket = socket;
    this.host = host;
    this.timeoutMs = timeoutMs;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    this.attach(socket);
  }

  static async connect(opts: Pop3ConnectOptions): Promise<Pop3TestClient> {
    const host = opts.host ?? '127.0.0.1';
    const timeoutMs = opts.timeoutMs ?? 5000;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`timed out after ${timeoutMs} ms waiting to connect to ${host}:${opts.port}`));
      }, timeoutMs);
      const tlsOptions = opts.tls === true ? { rejectUnauthorized: false } : opts.tls;
      // tls.connect passes localAddress on to net.connect, though its option type does not list it.
      const bind: object = opts.localAddress === undefined ? {} : { localAddress: opts.localAddress };
      const s: net.Socket =
        tlsOptions && !opts.preamble
          ? tls.connect({ servername: net.isIP(host) ? undefined : host, ...tlsOptions, ...bind, host, port: opts.port })
          : net.connect({ host, port: opts.port, ...bind });
      s.once(tlsOptions && !opts.preamble ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        s.destroy();
        reject(new Error(`could not connect to ${host}:${opts.port}: ${err.message}`));
      });
    });
    const client = new Pop3TestClient(socket, host, timeoutMs);
    if (opts.preamble) {
      client.sendRaw(opts.preamble);
      if (opts.tls) await client.upgrade(opts.tls === true ? { rejectUnauthorized: false } : opts.tls);
    }
    if (opts.readGreeting !== false) client.greeting = await client.readLine();
    return client;
  }

  get tlsSocket(): tls.TLSSocket | null {
    return this.socket instanceof tls.TLSSocket ? this.socket : null;
  }

  /** Bytes received but not read yet. */
  get buffered(): Buffer {
    return this.buffer;
  }

  send(line: string): void {
    this.sendRaw(Buffer.from(`${line}\r\n`, 'latin1'));
  }

  sendRaw(data: Buffer | string): void {
    if (this.isClosed) throw new Error(`cannot send: connection already closed${this.closeError ? ` (${this.closeError.message})` : ''}`);
    this.socket.write(data);
  }

  /** The next line without its CRLF (latin1, so bytes round-trip). */
  async readLine(timeoutMs = this.timeoutMs): Promise<string> {
    await this.waitFor('a line', timeoutMs, () => this.buffer.includes(0x0a));
    const end = this.buffer.indexOf(0x0a);
    const raw = this.buffer.subarray(0, end);
    this.buffer = this.buffer.subarray(end + 1);
    return (raw.at(-1) === 0x0d ? raw.subarray(0, -1) : raw).toString('latin1');
  }

  /** Reads a multi-line body up to the "." line; un-stuffs leading dots. */
  async readMultiline(timeoutMs = this.timeoutMs): Promise<Buffer> {
    const lines: Buffer[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = await this.readLine(Math.max(1, deadline - Date.now())).catch((err: Error) => {
        throw new Error(`${err.message} (inside a multi-line body after ${lines.length} lines)`);
      });
      if (line === '.') break;
      lines.push(Buffer.from(line.startsWith('.') ? line.slice(1) : line, 'latin1'));
    }
    return Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\r\n')]));
  }

  /** Sends a command and returns its status line. */
  async command(line: string, timeoutMs = this.timeoutMs): Promise<string> {
    this.send(line);
    return this.readLine(timeoutMs);
  }

  /** Sends a command and throws unless the status is +OK. */
  async ok(line: string, timeoutMs = this.timeoutMs): Promise<string> {
    const status = await this.command(line, timeoutMs);
    if (!status.startsWith('+OK')) throw new Error(`expected +OK to ${JSON.stringify(redact(line))}, got ${JSON.stringify(status)}`);
    return status;
  }

  /** Sends a command that answers with a body on +OK (RETR, TOP, LIST, UIDL, CAPA). */
  async multiline(line: string, timeoutMs = this.timeoutMs): Promise<MultilineReply> {
    const status = await this.command(line, timeoutMs);
    return { status, body: status.startsWith('+OK') ? await this.readMultiline(timeoutMs) : null };
  }

  /** USER + PASS; throws unless both are +OK. */
  async login(user: string, password: string): Promise<void> {
    await this.ok(`USER ${user}`);
    await this.ok(`PASS ${password}`);
  }

  /**
   * Sends STLS, expects +OK, then upgrades this same socket. Refuses when bytes
   * arrived after the +OK in plaintext (a server bug worth seeing), unless
   * allowBuffered.
   */
  async startTls(opts: tls.ConnectionOptions & { allowBuffered?: boolean } = {}): Promise<string> {
    const status = await this.command('STLS');
    if (!status.startsWith('+OK')) throw new Error(`expected +OK to STLS, got ${JSON.stringify(status)}`);
    await this.upgrade(opts);
    return status;
  }

  /** Upgrades the current socket to TLS without sending anything first. */
  async upgrade(opts: tls.ConnectionOptions & { allowBuffered?: boolean } = {}): Promise<void> {
    const { allowBuffered, ...tlsOpts } = opts;
    if (this.buffer.length > 0 && !allowBuffered) {
      throw new Error(`plaintext bytes arrived before the TLS upgrade: ${JSON.stringify(this.buffer.toString('latin1'))}`);
    }
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    plain.on('error', () => undefined); // errors surface on the TLS socket
    const secure = tls.connect({
      rejectUnauthorized: false,
      servername: net.isIP(this.host) ? undefined : this.host,
      ...tlsOpts,
      socket: plain,
    });
    this.handshakeDone = false;
    this.socket = secure;
    this.attach(secure);
    await this.waitFor('the TLS handshake', this.timeoutMs, () => this.handshakeDone);
  }

  /** Sends QUIT (if still open), returns its status and waits for the server to close. */
  async quit(timeoutMs = this.timeoutMs): Promise<string | null> {
    if (this.isClosed) return null;
    const status = await this.command('QUIT', timeoutMs).catch(() => null);
    this.socket.end();
    try {
      await this.waitClosed(timeoutMs);
    } catch (err) {
      this.socket.destroy();
      throw new Error(`${(err as Error).message} after QUIT (status ${JSON.stringify(status)})`);
    }
    return status;
  }

  /** Closes the connection at once. */
  async close(): Promise<void> {
    this.socket.destroy();
    await this.closed;
  }

  /** Waits for the peer to close the connection. */
  async waitClosed(timeoutMs = this.timeoutMs): Promise<void> {
    await this.waitFor('the connection to close', timeoutMs, () => this.isClosed);
  }

  private handshakeDone = false;

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on('secureConnect', () => {
      this.handshakeDone = true;
      this.wake();
    });
    socket.on('error', (err) => {
      this.closeError ??= err;
      this.wake();
    });
    socket.on('close', () => {
      this.isClosed = true;
      this.resolveClosed();
      this.wake();
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.check()) {
        this.finish(waiter);
        waiter.resolve();
      } else if (this.isClosed || this.closeError) {
        this.finish(waiter);
        const why = this.closeError ? `error: ${this.closeError.message}` : 'connection closed';
        const pending = this.buffer.length > 0 ? `; unread bytes: ${JSON.stringify(this.buffer.toString('latin1').slice(0, 200))}` : '';
        waiter.reject(new Error(`${why} while waiting for ${waiter.what}${pending}`));
      }
    }
  }

  private finish(waiter: Waiter): void {
    clearTimeout(waiter.timer);
    this.waiters = this.waiters.filter((w) => w !== waiter);
  }

  private waitFor(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        what,
        check,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.finish(waiter);
          const pending = this.buffer.length > 0 ? `; unread bytes: ${JSON.stringify(this.buffer.toString('latin1').slice(0, 200))}` : '';
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${pending}`));
        }, timeoutMs),
      };
      this.waiters.push(waiter);
      this.wake();
    });
  }
}

function redact(line: string): string {
  return /^(PASS|APOP|AUTH)\b/i.test(line) ? `${line.split(' ')[0]} [redacted]` : line;
}
