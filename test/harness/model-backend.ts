import net from 'node:net';

/**
 * A small, correct RFC 1939 server for property tests: one fixed mailbox (messages with
 * dot-leading lines, a lone "." line, an empty body, a 200 KiB message), users alice and
 * bob. `Pop3Model` is the pure conversation, so a test can compute the exact bytes any
 * command must produce; `startModelBackend` serves it over loopback and injects faults on
 * demand (close part-way through a reply, stall, send garbage).
 *
 * Deletions are never persisted: every connection starts from the same mailbox, which keeps
 * the expected replies of one session independent of the sessions before it.
 */

export interface ModelMessage {
  readonly uid: string;
  /** The message as stored: CRLF lines, ending in CRLF, not dot-stuffed. */
  readonly content: Buffer;
}

export const MODEL_USERS: Readonly<Record<string, string>> = Object.freeze({ alice: 'alice-secret', bob: 'bob-secret' });

function crlf(lines: readonly string[]): Buffer {
  return Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'latin1');
}

function bigBody(): string[] {
  const lines: string[] = [];
  let size = 0;
  for (let i = 0; size < 200 * 1024; i++) {
    const l = i % 5 === 0 ? `.dot line ${i}` : i % 13 === 0 ? '.' : i % 17 === 0 ? '..' : `line ${i} ${'y'.repeat(i % 90)}`;
    lines.push(l);
    size += l.length + 2;
  }
  return lines;
}

/** The fixed mailbox every connection sees. */
export const MODEL_MAILBOX: readonly ModelMessage[] = Object.freeze([
  { uid: 'uid-one', content: crlf(['From: a@example.org', 'Subject: one', 'Message-ID: <one@example.org>', '', 'Hello', '.leading dot', '..two dots', '.', 'end']) },
  { uid: 'uid-empty', content: crlf(['Subject: empty body', '']) },
  { uid: 'uid-big', content: crlf(['From: big@example.org', 'Subject: big', '', ...bigBody()]) },
  { uid: 'uid-long-lines', content: crlf(['Subject: long lines', '', 'z'.repeat(990), `.${'w'.repeat(900)}`, 'tail']) },
  { uid: 'uid-dots-only', content: crlf(['Subject: dots', '', '.', '..', '...', '.']) },
]);

/** RFC 1939 section 3 byte-stuffing plus the terminating ".\r\n". */
export function dotStuff(lines: readonly string[]): Buffer {
  return Buffer.from(`${lines.map((l) => `${l.startsWith('.') ? '.' : ''}${l}\r\n`).join('')}.\r\n`, 'latin1');
}

function linesOf(content: Buffer): string[] {
  const text = content.toString('latin1');
  const body = text.endsWith('\r\n') ? text.slice(0, -2) : text;
  return body === '' ? [] : body.split('\r\n');
}

export interface ModelOptions {
  readonly pipelining?: boolean;
  readonly messages?: readonly ModelMessage[];
  readonly users?: Readonly<Record<string, string>>;
}

export interface ModelReply {
  readonly reply: Buffer;
  /** True after QUIT: the server closes the connection once the reply is written. */
  readonly close: boolean;
}

const line = (text: string): Buffer => Buffer.from(`${text}\r\n`, 'latin1');

/** One RFC 1939 conversation with no I/O: command line in, reply bytes out. */
export class Pop3Model {
  state: 'authorization' | 'transaction' | 'closed' = 'authorization';
  readonly messages: readonly ModelMessage[];
  private readonly users: Readonly<Record<string, string>>;
  private readonly pipelining: boolean;
  private user: string | null = null;
  private readonly deleted = new Set<number>();

  constructor(opts: ModelOptions = {}) {
    this.messages = opts.messages ?? MODEL_MAILBOX;
    this.users = opts.users ?? MODEL_USERS;
    this.pipelining = opts.pipelining ?? true;
  }

  greeting(): Buffer {
    return line('+OK model POP3 server ready.');
  }

  /** A model already in TRANSACTION, as after a successful login (for test oracles). */
  static loggedIn(opts: ModelOptions = {}): Pop3Model {
    const m = new Pop3Model(opts);
    m.state = 'transaction';
    return m;
  }

  capa(): Buffer {
    const caps = ['TOP', 'USER', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', ...(this.pipelining ? ['PIPELINING'] : [])];
    return Buffer.concat([line('+OK Capability list follows'), dotStuff(caps)]);
  }

  /** A command line without its CRLF. */
  handle(text: string): ModelReply {
    const parts = text.split(' ').filter((p) => p !== '');
    const verb = (parts[0] ?? '').toUpperCase();
    const args = parts.slice(1);
    const ok = (t: string): ModelReply => ({ reply: line(t === '' ? '+OK' : `+OK ${t}`), close: false });
    const err = (t: string): ModelReply => ({ reply: line(`-ERR ${t}`), close: false });
    if (this.state === 'closed') return err('connection closing');
    if (verb === 'CAPA') return { reply: this.capa(), close: false };
    if (verb === 'QUIT') {
      this.state = 'closed';
      return { reply: line('+OK Bye'), close: true };
    }
    if (this.state === 'authorization') {
      switch (verb) {
        case 'USER':
          if (args.length !== 1) return err('USER takes one argument');
          this.user = args[0]!;
          return ok('');
        case 'PASS': {
          const user = this.user;
          this.user = null;
          const password = text.slice(text.indexOf(' ') + 1);
          if (user === null) return err('USER first');
          if (Object.hasOwn(this.users, user) && this.users[user] === password && text.includes(' ')) {
            this.state = 'transaction';
            return ok('Logged in.');
          }
          return err('[AUTH] Invalid credentials.');
        }
        default:
          return err('Unknown command in AUTHORIZATION state');
      }
    }
    return this.transaction(verb, args);
  }

  /** Message number argument: 1-based, existing, not deleted. */
  private message(arg: string | undefined): { n: number; m: ModelMessage } | string {
    if (arg === undefined || !/^\d+$/.test(arg)) return 'Invalid message number';
    const n = Number(arg);
    const m = this.messages[n - 1];
    if (n < 1 || m === undefined) return 'No such message';
    if (this.deleted.has(n)) return `Message ${n} already deleted`;
    return { n, m };
  }

  private live(): Array<{ n: number; m: ModelMessage }> {
    return this.messages.map((m, i) => ({ n: i + 1, m })).filter((x) => !this.deleted.has(x.n));
  }

  private transaction(verb: string, args: string[]): ModelReply {
    const single = (t: string): ModelReply => ({ reply: line(t), close: false });
    const multi = (status: string, lines: readonly string[]): ModelReply =>
      ({ reply: Buffer.concat([line(status), dotStuff(lines)]), close: false });
    switch (verb) {
      case 'STAT': {
        const live = this.live();
        return single(`+OK ${live.length} ${live.reduce((a, x) => a + x.m.content.length, 0)}`);
      }
      case 'LIST':
      case 'UIDL': {
        const value = (x: { n: number; m: ModelMessage }): string => `${x.n} ${verb === 'LIST' ? x.m.content.length : x.m.uid}`;
        if (args.length === 0) {
          const live = this.live();
          return multi(verb === 'LIST' ? `+OK ${live.length} messages` : '+OK', live.map(value));
        }
        const found = this.message(args[0]);
        return typeof found === 'string' ? single(`-ERR ${found}`) : single(`+OK ${value(found)}`);
      }
      case 'RETR': {
        const found = this.message(args[0]);
        if (typeof found === 'string') return single(`-ERR ${found}`);
        return multi(`+OK ${found.m.content.length} octets`, linesOf(found.m.content));
      }
      case 'TOP': {
        const found = this.message(args[0]);
        if (typeof found === 'string') return single(`-ERR ${found}`);
        if (args[1] === undefined || !/^\d+$/.test(args[1])) return single('-ERR Invalid line count');
        const all = linesOf(found.m.content);
        const blank = all.indexOf('');
        const head = blank < 0 ? all : all.slice(0, blank + 1);
        const body = blank < 0 ? [] : all.slice(blank + 1, blank + 1 + Number(args[1]));
        return multi('+OK', [...head, ...body]);
      }
      case 'DELE': {
        const found = this.message(args[0]);
        if (typeof found === 'string') return single(`-ERR ${found}`);
        this.deleted.add(found.n);
        return single(`+OK Message ${found.n} deleted`);
      }
      case 'NOOP':
        return single('+OK');
      case 'RSET':
        this.deleted.clear();
        return single('+OK');
      default:
        return single('-ERR Unknown command');
    }
  }
}

/** What goes wrong, and on which command line of the connection (1-based, counting every line received). */
export type BackendFault =
  /** Sends the first `keep` fraction (0 ≤ keep < 1) of the reply, then closes. */
  | { readonly kind: 'close'; readonly atCommand: number; readonly keep: number }
  /** Never answers this command or any later one; keeps the connection open. */
  | { readonly kind: 'stall'; readonly atCommand: number }
  /** Sends these bytes instead of the reply, then stalls. */
  | { readonly kind: 'garbage'; readonly atCommand: number; readonly bytes: Buffer };

export interface FiredFault {
  readonly fault: BackendFault;
  /** The command line the fault replaced the reply to. */
  readonly command: string;
  readonly connection: number;
}

export interface ModelBackend {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections open now. */
  readonly live: number;
  /** Faults that took effect, oldest first. */
  readonly fired: readonly FiredFault[];
  /** Every command line received, per connection (1-based index - 1). */
  readonly received: readonly string[][];
  /** Applies `fault` to the next connection accepted (one shot); null disarms. */
  arm(fault: BackendFault | null): void;
  /** Resolves once no connection is open, or rejects after timeoutMs. */
  waitIdle(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** More unanswered input than this from the gateway is a bug on its side: the connection is cut. */
const MAX_PENDING_INPUT = 64 * 1024;

export async function startModelBackend(opts: ModelOptions = {}): Promise<ModelBackend> {
  const sockets = new Set<net.Socket>();
  const fired: FiredFault[] = [];
  const received: string[][] = [];
  let armed: BackendFault | null = null;
  let connections = 0;

  const serve = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on('error', () => undefined); // the gateway cuts connections on purpose; 'close' tells the rest
    socket.once('close', () => sockets.delete(socket));
    const index = ++connections;
    const lines: string[] = [];
    received.push(lines);
    const fault = armed;
    armed = null;
    const model = new Pop3Model(opts);
    let pending: Buffer = Buffer.alloc(0);
    let silent = false;
    socket.write(model.greeting());
    socket.on('data', (chunk: Buffer) => {
      if (silent) return;
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      for (let nl = pending.indexOf(10); nl >= 0 && !silent; nl = pending.indexOf(10)) {
        const raw = pending.subarray(0, nl);
        pending = pending.subarray(nl + 1);
        const text = (raw.at(-1) === 13 ? raw.subarray(0, -1) : raw).toString('latin1');
        lines.push(text);
        const { reply, close } = model.handle(text);
        if (fault !== null && lines.length === fault.atCommand) {
          fired.push({ fault, command: text, connection: index });
          silent = true;
          if (fault.kind === 'close') socket.end(reply.subarray(0, Math.floor(reply.length * fault.keep)));
          else if (fault.kind === 'garbage') socket.write(fault.bytes);
          return;
        }
        if (close) {
          silent = true;
          socket.end(reply);
          return;
        }
        socket.write(reply);
      }
      if (pending.length > MAX_PENDING_INPUT) socket.destroy();
    });
  };

  const server = net.createServer(serve);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => resolve());
  });
  const address = server.address() as net.AddressInfo;

  return {
    host: '127.0.0.1',
    port: address.port,
    get connections() {
      return connections;
    },
    get live() {
      return sockets.size;
    },
    fired,
    received,
    arm(fault) {
      armed = fault;
    },
    async waitIdle(timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (sockets.size > 0) {
        if (Date.now() > deadline) throw new Error(`model backend: ${sockets.size} connection(s) still open after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
