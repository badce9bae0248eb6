/**
 * Helpers for the hostile-input tests: a scripted POP3 backend that behaves
 * correctly unless a test overrides one verb (so the gateway's probe and the
 * parts of a session the test does not target just work), access to the live
 * sessions of an in-process gateway, and resource counting for leak checks.
 */
import { createHook } from 'node:async_hooks';
import tls from 'node:tls';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Gateway } from '../../src/app.ts';
import type { Pop3Session } from '../../src/relay/session.ts';
import type { ScriptConn } from '../harness/script-backend.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { startScriptBackend, type ScriptBackend } from '../harness/script-backend.ts';
import { afterEach } from 'vitest';

export interface FakeState {
  user: string | null;
  loggedIn: boolean;
  /** True once the connection ran STLS and TLS is up. */
  tls: boolean;
}

/**
 * Called for every line the fake backend receives. Return true when the test
 * answered (or deliberately did not answer) the line itself.
 */
export type CommandHook = (conn: ScriptConn, verb: string, line: string, state: FakeState) => Promise<boolean> | boolean;

export interface FakePop3Options {
  greeting?: string;
  /** CAPA lines (without the +OK and the terminator). */
  capa?: string[];
  /** Needed to answer STLS. */
  tlsOptions?: tls.TlsOptions;
  users?: Record<string, string>;
  messages?: Buffer[];
  /** Runs first on each connection; return false to skip the default greeting (the hook greets or not). */
  onConnect?: (conn: ScriptConn) => Promise<boolean> | boolean;
  onCommand?: CommandHook;
}

export interface FakePop3 {
  handler: (conn: ScriptConn) => Promise<void>;
  /** Every line received, per connection index, in order. */
  lines: Map<number, string[]>;
  /** Lines of connections that got past the gateway's probe, i.e. that sent USER, PASS, AUTH or APOP. */
  allLines(): string[];
}

export const DEFAULT_MESSAGES = [
  Buffer.from('From: a@example.org\r\nSubject: one\r\n\r\nfirst body\r\n'),
  Buffer.from('From: b@example.org\r\nSubject: two\r\n\r\n.dot line\r\nsecond body\r\n'),
];

function stuff(message: Buffer): Buffer {
  const text = message.toString('latin1').replace(/\r\n\./g, '\r\n..');
  return Buffer.from(text.startsWith('.') ? `.${text}` : text, 'latin1');
}

/** A well-behaved RFC 1939 server, scripted: tests override single verbs through `onCommand`. */
export function fakePop3(opts: FakePop3Options = {}): FakePop3 {
  const users = opts.users ?? { alice: 'alice-secret' };
  const messages = opts.messages ?? DEFAULT_MESSAGES;
  const capa = opts.capa ?? ['USER', 'UIDL', 'TOP', ...(opts.tlsOptions ? ['STLS'] : [])];
  const lines = new Map<number, string[]>();
  const handler = async (conn: ScriptConn): Promise<void> => {
    const mine: string[] = [];
    lines.set(conn.index, mine);
    const greet = opts.onConnect ? await opts.onConnect(conn) : true;
    if (greet) await conn.write(`${opts.greeting ?? '+OK fake POP3 ready'}\r\n`);
    const state: FakeState = { user: null, loggedIn: false, tls: false };
    for (;;) {
      const line = await conn.readLine(120_000);
      if (line === null) return;
      mine.push(line);
      const verb = (line.split(' ')[0] ?? '').toUpperCase();
      if (opts.onCommand && (await opts.onCommand(conn, verb, line, state))) continue;
      const arg = line.split(' ')[1];
      const n = Number(arg);
      const msg = Number.isInteger(n) && n >= 1 ? messages[n - 1] : undefined;
      switch (verb) {
        case 'CAPA':
          await conn.write(`+OK Capability list follows\r\n${capa.map((c) => `${c}\r\n`).join('')}.\r\n`);
          break;
        case 'STLS':
          if (!opts.tlsOptions || state.tls) {
            await conn.write('-ERR no TLS\r\n');
            break;
          }
          await conn.write('+OK Begin TLS\r\n');
          await conn.startTls(opts.tlsOptions);
          state.tls = true;
          break;
        case 'USER':
          state.user = arg ?? null;
          await conn.write('+OK\r\n');
          break;
        case 'PASS':
          if (state.user !== null && users[state.user] === line.slice(5)) {
            state.loggedIn = true;
            await conn.write(`+OK ${state.user} has ${messages.length} messages\r\n`);
          } else {
            await conn.write('-ERR [AUTH] invalid login\r\n');
          }
          break;
        case 'STAT':
          await conn.write(`+OK ${messages.length} ${messages.reduce((a, m) => a + m.length, 0)}\r\n`);
          break;
        case 'LIST':
        case 'UIDL':
          if (arg === undefined) {
            const rows = messages.map((m, i) => `${i + 1} ${verb === 'LIST' ? m.length : `uid-${i + 1}`}\r\n`).join('');
            await conn.write(`+OK\r\n${rows}.\r\n`);
          } else if (msg === undefined) {
            await conn.write('-ERR no such message\r\n');
          } else {
            await conn.write(`+OK ${n} ${verb === 'LIST' ? msg.length : `uid-${n}`}\r\n`);
          }
          break;
        case 'RETR':
        case 'TOP':
          if (msg === undefined) await conn.write('-ERR no such message\r\n');
          else await conn.write(Buffer.concat([Buffer.from(`+OK ${msg.length} octets\r\n`), stuff(msg), Buffer.from('.\r\n')]));
          break;
        case 'DELE':
          await conn.write(msg === undefined ? '-ERR no such message\r\n' : `+OK message ${n} deleted\r\n`);
          break;
        case 'NOOP':
        case 'RSET':
          await conn.write('+OK\r\n');
          break;
        case 'QUIT':
          await conn.write('+OK bye\r\n');
          conn.end();
          return;
        default:
          await conn.write('-ERR unknown command\r\n');
      }
    }
  };
  return {
    handler,
    lines,
    allLines: () => [...lines.values()].flat(),
  };
}

/** The live session objects of an in-process gateway (test-only access to the registry's map). */
export function liveSessions(gw: Gateway): Pop3Session[] {
  const reg = gw.registry as unknown as { sessions: Map<string, Pop3Session> };
  return [...reg.sessions.values()];
}

/** Waits until `check` holds, polling; throws with `what` after `timeoutMs`. */
export async function waitUntil(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Active resources keeping the event loop alive (sockets, servers, ref'ed timers), as process.getActiveResourcesInfo() counts them. */
export function totalResources(): number {
  return process.getActiveResourcesInfo().length;
}

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Deep merge of YAML-shaped objects (arrays and scalars in `b` win). */
export function deepMerge(a: Raw, b: Raw): Raw {
  const out: Raw = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = isObject(v) && isObject(cur) ? deepMerge(cur, v) : v;
  }
  return out;
}

/**
 * Config overrides that keep scripted backends simple: no repeated probes, no
 * lockouts from the many failures hostile tests provoke, short backend timeouts.
 */
export function hostileConfig(extra: Raw = {}): Raw {
  return deepMerge({
    backend: { probeInterval: '1h' },
    policy: {
      auth: { failureDelay: '10ms', maxFailuresPerIp: 10_000, maxFailuresPerUser: 10_000, maxAttemptsPerSession: 100 },
      connections: { maxPerIp: 1000 },
      timeouts: { backendReply: '2s' },
    },
  }, extra);
}

/**
 * Counts live sockets, TLS wraps and timers (unref'ed ones too, which
 * getActiveResourcesInfo() leaves out) through async_hooks, from now on.
 */
export function trackResources(types: readonly string[] = ['TCPWRAP', 'TLSWRAP', 'Timeout']): {
  counts(): Record<string, number>;
  total(): number;
  stop(): void;
} {
  const live = new Map<number, string>();
  const hook = createHook({
    init(id, type) {
      if (types.includes(type)) live.set(id, type);
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return {
    counts() {
      const out: Record<string, number> = {};
      for (const t of live.values()) out[t] = (out[t] ?? 0) + 1;
      return out;
    },
    total: () => live.size,
    stop: () => hook.disable(),
  };
}

let gcFn: (() => void) | null = null;

/** A full garbage collection (V8's gc exposed at run time), so GC-bound resources can be counted. */
export function forceGc(): void {
  if (gcFn === null) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

/** Audit records once one matching `ready` is in the file (the audit sink writes asynchronously). */
export async function auditWhen(
  g: { auditLines(): Array<Record<string, unknown>> },
  ready: (l: Record<string, unknown>) => boolean,
  timeoutMs = 5000,
): Promise<Array<Record<string, unknown>>> {
  await waitUntil('an audit record', () => g.auditLines().some(ready), timeoutMs);
  return g.auditLines();
}

/** Passwords used by the hostile tests: none may appear in a log line or an audit record. */
export const SECRETS = ['alice-secret', 'pässword', 'dGhpcyBpcyBub3QgZW5kaW5n'];

/** Throws when a password shows up in the gateway's logs or audit file. */
export function assertNoSecrets(g: { logs: { text(): string }; auditLines(): Array<Record<string, unknown>> }): void {
  const text = `${g.logs.text()}\n${JSON.stringify(g.auditLines())}`;
  for (const secret of SECRETS) {
    if (text.includes(secret)) throw new Error(`a password (${secret.slice(0, 2)}…) appears in the gateway's logs or audit`);
  }
}

type Running = { stop(): Promise<void> } | { close(): Promise<void> };

/**
 * What a test starts (gateways, fake backends) goes in the returned list; after each
 * test every gateway's logs and audit are checked for leaked passwords, then all of
 * it is stopped, newest first.
 */
export function stopAfterEach(): Running[] {
  const running: Running[] = [];
  afterEach(async () => {
    const all = running.splice(0).reverse();
    try {
      for (const r of all) if ('logs' in r) assertNoSecrets(r as TestGateway);
    } finally {
      for (const r of all) await ('stop' in r ? r.stop() : r.close());
    }
  });
  return running;
}

/** A gateway in front of a fresh fake backend (`fakePop3(opts)`), both stopped after the test. */
export async function gatewayOnFake(
  running: Running[], opts: FakePop3Options = {}, extra: Record<string, unknown> = {},
): Promise<{ fake: FakePop3; b: ScriptBackend; g: TestGateway }> {
  const fake = fakePop3(opts);
  const b = await startScriptBackend(fake.handler);
  running.push(b);
  const g = await startTestGateway(b.port, hostileConfig(extra));
  running.push(g);
  return { fake, b, g };
}
