import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * A small sample POP3 server (RFC 1939, CAPA from RFC 2449, AUTH PLAIN from
 * RFC 5034) serving demo/messages/*.eml to one user, for `npm run demo`.
 *
 * - Plaintext only, meant for 127.0.0.1 behind the gateway.
 * - Each session takes a snapshot of the message folder at login.
 * - DELE marks; QUIT in the TRANSACTION state applies the marks (UPDATE). A
 *   deleted message is hidden from later sessions of this server process, but
 *   the file on disk is never touched: restart the backend and it is back, so
 *   the demo is repeatable.
 * - Commands are handled one at a time in arrival order (pipelining-safe);
 *   reading pauses while the socket's write buffer is full. Lines are capped.
 */

export interface DemoBackendOptions {
  host?: string;
  port?: number;
  /** Folder of *.eml files; default demo/messages next to this file. */
  dir?: string;
  user?: string;
  password?: string;
}

export interface DemoBackend {
  host: string;
  port: number;
  close(): Promise<void>;
}

interface Message {
  uid: string;
  size: number;
  /** CRLF lines, not yet dot-stuffed. */
  lines: Buffer[];
}

const MAX_LINE = 1024; // RFC 2449: commands are at most 255 octets; leave room for AUTH data
const MAX_BAD_COMMANDS = 10;
const IDLE_TIMEOUT_MS = 10 * 60 * 1000; // RFC 1939 §3: at least 10 minutes
const CRLF = Buffer.from('\r\n');

export const DEFAULT_MESSAGE_DIR = fileURLToPath(new URL('./messages/', import.meta.url));

function loadMessages(dir: string, deleted: ReadonlySet<string>): Message[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.eml'))
    .sort()
    .map((file) => {
      const raw = fs.readFileSync(path.join(dir, file));
      const text = raw.toString('latin1').replace(/\r?\n$/, '');
      const lines = text.split(/\r?\n/).map((l) => Buffer.from(l, 'latin1'));
      const size = lines.reduce((n, l) => n + l.length + 2, 0);
      const uid = crypto.createHash('sha256').update(file).update(raw).digest('hex').slice(0, 24);
      return { uid, size, lines };
    })
    .filter((m) => !deleted.has(m.uid));
}

/** Dot-stuffs and terminates a multi-line body (RFC 1939 §3). */
function multiline(lines: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const line of lines) {
    if (line[0] === 0x2e) parts.push(Buffer.from('.'));
    parts.push(line, CRLF);
  }
  parts.push(Buffer.from('.\r\n'));
  return Buffer.concat(parts);
}

/** A status line followed by a dot-stuffed, terminated body. */
function withBody(status: string, lines: Array<Buffer | string>): Buffer {
  return Buffer.concat([Buffer.from(`${status}\r\n`, 'latin1'), multiline(lines.map((l) => (typeof l === 'string' ? Buffer.from(l, 'latin1') : l)))]);
}

type State = 'authorization' | 'transaction' | 'closed';

class DemoSession {
  private state: State = 'authorization';
  private pendingUser: string | null = null;
  private awaitingSasl = false;
  private messages: Message[] = [];
  private marked = new Set<number>();
  private buffer = Buffer.alloc(0);
  private discarding = false;
  private badCommands = 0;
  private readonly challenge: string;

  constructor(
    private readonly socket: net.Socket,
    private readonly opts: Required<DemoBackendOptions>,
    private readonly deleted: Set<string>,
  ) {
    this.challenge = `<${process.pid}.${Date.now()}.${crypto.randomBytes(4).toString('hex')}@${os.hostname()}>`;
    socket.setTimeout(IDLE_TIMEOUT_MS, () => this.close('-ERR idle timeout, closing'));
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.drainLines();
    });
    socket.on('drain', () => {
      socket.resume();
      this.drainLines();
    });
    socket.on('error', () => socket.destroy());
    this.reply(`+OK demo POP3 server ready ${this.challenge}`);
  }

  private reply(line: string | Buffer): boolean {
    if (this.socket.destroyed) return true;
    return this.socket.write(typeof line === 'string' ? Buffer.from(`${line}\r\n`, 'latin1') : line);
  }

  private close(last: string): void {
    this.reply(last);
    this.state = 'closed';
    this.socket.end();
  }

  /** Handles complete lines in order; stops while the peer is not reading. */
  private drainLines(): void {
    while (this.state !== 'closed') {
      const nl = this.buffer.indexOf(0x0a);
      if (nl < 0) {
        if (this.buffer.length > MAX_LINE) {
          this.buffer = Buffer.alloc(0);
          if (!this.discarding) this.reply('-ERR line too long');
          this.discarding = true;
        }
        return;
      }
      const raw = this.buffer.subarray(0, nl);
      this.buffer = this.buffer.subarray(nl + 1);
      if (this.discarding || raw.length > MAX_LINE) {
        if (!this.discarding) this.reply('-ERR line too long');
        this.discarding = false;
        continue;
      }
      const line = (raw.at(-1) === 0x0d ? raw.subarray(0, -1) : raw).toString('latin1');
      if (!this.handle(line)) {
        this.socket.pause();
        return;
      }
    }
  }

  /** Returns false when the write buffer is full. */
  private handle(line: string): boolean {
    if (this.awaitingSasl) return this.saslResponse(line);
    const space = line.indexOf(' ');
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const args = space < 0 ? [] : line.slice(space + 1).split(' ').filter((a) => a !== '');
    if (verb === 'CAPA') return this.capa();
    if (verb === 'QUIT') return this.quit();
    if (verb === 'NOOP' && this.state === 'transaction') return this.reply('+OK');
    if (this.state === 'authorization') {
      if (verb === 'USER') return this.user(args);
      if (verb === 'PASS') return this.pass(space < 0 ? '' : line.slice(space + 1));
      if (verb === 'APOP') return this.apop(args);
      if (verb === 'AUTH') return this.auth(args);
    } else {
      const handler = this.transaction[verb];
      if (handler) return handler(args);
    }
    if (++this.badCommands >= MAX_BAD_COMMANDS) {
      this.close('-ERR too many bad commands, closing');
      return true;
    }
    return this.reply(`-ERR unknown command or not allowed now: ${verb.slice(0, 16)}`);
  }

  // RFC 2449 §5
  private capa(): boolean {
    const caps = ['CAPA', 'TOP', 'UIDL', 'RESP-CODES', 'PIPELINING', 'EXPIRE NEVER', 'IMPLEMENTATION pop3-gateway-demo'];
    if (this.state === 'authorization') caps.push('USER', 'SASL PLAIN');
    return this.reply(withBody('+OK capability list follows', caps));
  }

  // RFC 1939 §7 USER
  private user(args: string[]): boolean {
    if (args.length !== 1) return this.reply('-ERR usage: USER name');
    this.pendingUser = args[0]!;
    return this.reply('+OK send PASS');
  }

  // RFC 1939 §7 PASS (the password may contain spaces)
  private pass(password: string): boolean {
    if (this.pendingUser === null) return this.reply('-ERR send USER first');
    const user = this.pendingUser;
    this.pendingUser = null;
    return this.login(user === this.opts.user && password === this.opts.password);
  }

  // RFC 1939 §7 APOP: digest = MD5(greeting timestamp + shared secret)
  private apop(args: string[]): boolean {
    if (args.length !== 2) return this.reply('-ERR usage: APOP name digest');
    const expected = crypto.createHash('md5').update(this.challenge + this.opts.password, 'latin1').digest('hex');
    const given = Buffer.from(args[1]!.toLowerCase());
    const ok = args[0] === this.opts.user && given.length === expected.length && crypto.timingSafeEqual(given, Buffer.from(expected));
    return this.login(ok);
  }

  // RFC 5034 AUTH PLAIN, with or without an initial response
  private auth(args: string[]): boolean {
    if (args.length === 0) return this.reply(withBody('+OK', ['PLAIN']));
    if (args[0]!.toUpperCase() !== 'PLAIN') return this.reply('-ERR unsupported mechanism');
    if (args.length === 1) {
      this.awaitingSasl = true;
      return this.reply('+ ');
    }
    return this.saslPlain(args[1]!);
  }

  private saslResponse(line: string): boolean {
    this.awaitingSasl = false;
    if (line === '*') return this.reply('-ERR authentication cancelled');
    return this.saslPlain(line);
  }

  private saslPlain(b64: string): boolean {
    const parts = Buffer.from(b64, 'base64').toString('utf8').split('\0');
    if (parts.length !== 3) return this.reply('-ERR malformed AUTH PLAIN response');
    const [authzid, authcid, password] = parts as [string, string, string];
    return this.login((authzid === '' || authzid === authcid) && authcid === this.opts.user && password === this.opts.password);
  }

  private login(ok: boolean): boolean {
    if (!ok) return this.reply('-ERR [AUTH] invalid user name or password');
    this.messages = loadMessages(this.opts.dir, this.deleted);
    this.state = 'transaction';
    const octets = this.messages.reduce((n, m) => n + m.size, 0);
    return this.reply(`+OK ${this.opts.user} has ${this.messages.length} messages (${octets} octets)`);
  }

  /** A message number that exists and is not marked deleted, or null. */
  private lookup(arg: string | undefined): Message | null {
    if (arg === undefined || !/^[1-9]\d{0,8}$/.test(arg)) return null;
    const n = Number(arg);
    const message = this.messages[n - 1];
    return message && !this.marked.has(n) ? message : null;
  }

  private live(): Array<[number, Message]> {
    return this.messages.map((m, i) => [i + 1, m] as [number, Message]).filter(([n]) => !this.marked.has(n));
  }

  private readonly transaction: Record<string, (args: string[]) => boolean> = {
    // RFC 1939 §5 STAT
    STAT: () => {
      const live = this.live();
      return this.reply(`+OK ${live.length} ${live.reduce((n, [, m]) => n + m.size, 0)}`);
    },
    // RFC 1939 §5 LIST
    LIST: (args) => {
      if (args.length > 0) {
        const m = this.lookup(args[0]);
        return this.reply(m ? `+OK ${args[0]} ${m.size}` : '-ERR no such message');
      }
      const live = this.live();
      return this.reply(withBody(`+OK ${live.length} messages`, live.map(([n, m]) => `${n} ${m.size}`)));
    },
    // RFC 1939 §7 UIDL
    UIDL: (args) => {
      if (args.length > 0) {
        const m = this.lookup(args[0]);
        return this.reply(m ? `+OK ${args[0]} ${m.uid}` : '-ERR no such message');
      }
      return this.reply(withBody('+OK', this.live().map(([n, m]) => `${n} ${m.uid}`)));
    },
    // RFC 1939 §5 RETR
    RETR: (args) => {
      const m = this.lookup(args[0]);
      if (!m) return this.reply('-ERR no such message');
      return this.reply(withBody(`+OK ${m.size} octets`, m.lines));
    },
    // RFC 1939 §7 TOP: the header, the blank line, then n body lines
    TOP: (args) => {
      const m = this.lookup(args[0]);
      if (!m) return this.reply('-ERR no such message');
      if (args[1] === undefined || !/^\d{1,9}$/.test(args[1])) return this.reply('-ERR usage: TOP msg n');
      const blank = m.lines.findIndex((l) => l.length === 0);
      const end = blank < 0 ? m.lines.length : Math.min(m.lines.length, blank + 1 + Number(args[1]));
      return this.reply(withBody('+OK', m.lines.slice(0, end)));
    },
    // RFC 1939 §5 DELE
    DELE: (args) => {
      if (!this.lookup(args[0])) return this.reply('-ERR no such message');
      this.marked.add(Number(args[0]));
      return this.reply(`+OK message ${args[0]} deleted`);
    },
    // RFC 1939 §5 RSET
    RSET: () => {
      this.marked.clear();
      return this.reply(`+OK maildrop has ${this.messages.length} messages`);
    },
  };

  // RFC 1939 §6 QUIT: the UPDATE state applies the DELE marks
  private quit(): boolean {
    if (this.state === 'transaction') {
      for (const n of this.marked) {
        const m = this.messages[n - 1];
        if (m) this.deleted.add(m.uid);
      }
      this.close(`+OK demo POP3 server signing off (${this.messages.length - this.marked.size} messages left)`);
    } else {
      this.close('+OK demo POP3 server signing off');
    }
    return true;
  }
}

export async function startDemoBackend(options: DemoBackendOptions = {}): Promise<DemoBackend> {
  const opts: Required<DemoBackendOptions> = {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 1110,
    dir: options.dir ?? DEFAULT_MESSAGE_DIR,
    user: options.user ?? 'demo',
    password: options.password ?? 'demo',
  };
  if (!fs.statSync(opts.dir).isDirectory()) throw new Error(`demo backend: ${opts.dir} is not a folder`);
  const deleted = new Set<string>();
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    new DemoSession(socket, opts, deleted);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port }, () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('demo backend: listener has no port');
  return {
    host: opts.host,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

function argValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

// Run directly: tsx demo/backend.ts [--host 127.0.0.1] [--port 1110] [--dir demo/messages]
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const argv = process.argv.slice(2);
  const backend = await startDemoBackend({
    host: argValue(argv, '--host'),
    port: argValue(argv, '--port') === undefined ? undefined : Number(argValue(argv, '--port')),
    dir: argValue(argv, '--dir'),
  });
  process.stdout.write(`demo POP3 backend listening on ${backend.host}:${backend.port} (user demo, password demo)\n`);
  const stop = () => void backend.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
