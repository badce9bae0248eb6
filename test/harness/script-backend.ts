import net from 'node:net';
import tls from 'node:tls';

/**
 * A scripted fake POP3 backend for hostile tests: a loopback listener that
 * runs `handler` once per accepted connection. The handler decides every byte
 * (no greeting is sent for it), so it can stall, send garbage, never terminate
 * a body, refuse STLS, and so on.
 */

export interface ScriptConn {
  /** The current socket (a TLSSocket after startTls()). */
  readonly socket: net.Socket;
  /** 1-based index of this connection. */
  readonly index: number;
  /** Every byte received so far (plaintext and decrypted). */
  readonly received: Buffer;
  readonly closed: boolean;
  write(data: string | Buffer): Promise<void>;
  /** Next line without CRLF (latin1); null when the peer closed first. Rejects after timeoutMs (default 5000). */
  readLine(timeoutMs?: number): Promise<string | null>;
  /** Reads lines until one matches, returning it (null at close). */
  expectLine(match: RegExp | string, timeoutMs?: number): Promise<string | null>;
  /** Server-side TLS upgrade of this connection (after answering STLS). */
  startTls(options: tls.TlsOptions): Promise<void>;
  /** Resolves when the connection is closed. */
  waitClosed(timeoutMs?: number): Promise<void>;
  end(data?: string | Buffer): void;
  destroy(): void;
}

export interface ScriptBackend {
  host: '127.0.0.1';
  port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Errors thrown by handlers (a failing handler destroys its connection). */
  readonly errors: Error[];
  /** Resolves once `count` connections have been accepted. */
  waitForConnections(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface ScriptBackendOptions {
  /** Implicit TLS on accept. */
  tls?: tls.TlsOptions;
}

class Conn implements ScriptConn {
  socket: net.Socket;
  received: Buffer = Buffer.alloc(0);
  closed = false;
  private pending: Buffer = Buffer.alloc(0);
  private readonly listeners = new Set<() => void>();

  constructor(socket: net.Socket, readonly index: number) {
    this.socket = socket;
    this.attach(socket);
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      this.pending = Buffer.concat([this.pending, chunk]);
      this.wake();
    });
    socket.on('error', () => undefined); // hostile tests provoke resets; close tells the rest
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const listener of [...this.listeners]) listener();
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.closed || this.socket.destroyed) return resolve();
      this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, () => resolve());
    });
  }

  private async until(what: string, timeoutMs: number, ready: () => boolean): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!ready()) {
      if (this.closed) return;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`script backend conn #${this.index}: timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const listener = () => {
          clearTimeout(timer);
          this.listeners.delete(listener);
          resolve();
        };
        const timer = setTimeout(listener, left);
        this.listeners.add(listener);
      });
    }
  }

  async readLine(timeoutMs = 5000): Promise<string | null> {
    await this.until('a line', timeoutMs, () => this.pending.includes(0x0a));
    const end = this.pending.indexOf(0x0a);
    if (end < 0) return null;
    const raw = this.pending.subarray(0, end);
    this.pending = this.pending.subarray(end + 1);
    return (raw.at(-1) === 0x0d ? raw.subarray(0, -1) : raw).toString('latin1');
  }

  async expectLine(match: RegExp | string, timeoutMs = 5000): Promise<string | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = await this.readLine(Math.max(1, deadline - Date.now()));
      if (line === null) return null;
      if (typeof match === 'string' ? line === match : match.test(line)) return line;
    }
  }

  async startTls(options: tls.TlsOptions): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    this.pending = Buffer.alloc(0);
    const secure = new tls.TLSSocket(plain, { ...options, isServer: true });
    this.socket = secure;
    this.attach(secure);
    let done = false;
    let failure: Error | null = null;
    secure.once('secure', () => (done = true));
    secure.once('error', (err) => (failure = err));
    await this.until('the TLS handshake', 5000, () => done || failure !== null);
    if (failure) throw failure;
    if (!done) throw new Error(`script backend conn #${this.index}: closed during the TLS handshake`);
  }

  async waitClosed(timeoutMs = 5000): Promise<void> {
    await this.until('the connection to close', timeoutMs, () => this.closed);
  }

  end(data?: string | Buffer): void {
    if (data === undefined) this.socket.end();
    else this.socket.end(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export async function startScriptBackend(handler: (conn: ScriptConn) => Promise<void>, options: ScriptBackendOptions = {}): Promise<ScriptBackend> {
  const sockets = new Set<net.Socket>();
  const errors: Error[] = [];
  let connections = 0;
  const waiters: Array<() => void> = [];

  const onConnection = (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const conn = new Conn(socket, ++connections);
    waiters.splice(0).forEach((w) => w());
    handler(conn).catch((err: unknown) => {
      errors.push(err instanceof Error ? err : new Error(String(err)));
      conn.destroy();
    });
  };
  const server = options.tls ? tls.createServer(options.tls, onConnection) : net.createServer(onConnection);
  if (options.tls) server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('script backend: listener has no port');

  return {
    host: '127.0.0.1',
    port: address.port,
    get connections() {
      return connections;
    },
    errors,
    async waitForConnections(count, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (connections < count) {
        if (Date.now() >= deadline) throw new Error(`script backend: timed out after ${timeoutMs} ms waiting for ${count} connections (have ${connections})`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
    },
  };
}
