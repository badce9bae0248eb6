/**
 * Small helpers shared by the policy end-to-end tests (test/integration/policy-*.test.ts):
 * one login attempt from a chosen loopback source address, timed from PASS to its reply,
 * and reading counters out of the Prometheus text.
 */
import { Pop3TestClient } from '../harness/pop3-client.ts';
import type { ScriptConn } from '../harness/script-backend.ts';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Attempt {
  /** The USER reply (or the AUTH reply for SASL attempts). */
  userReply: string;
  /** The reply to PASS (or to the last SASL step). */
  reply: string;
  /** Milliseconds from writing PASS to reading its reply. */
  ms: number;
  client: Pop3TestClient;
}

/**
 * Connects from `ip` over implicit TLS, sends USER then PASS and times PASS. The session is
 * left open (the caller quits or keeps going); `keep: false` quits it.
 */
export async function attemptLogin(
  port: number,
  opts: { ip: string; user: string; password: string; keep?: boolean; client?: Pop3TestClient },
): Promise<Attempt> {
  const client = opts.client ?? (await Pop3TestClient.connect({ port, tls: true, localAddress: opts.ip, timeoutMs: 8000 }));
  const userReply = await client.command(`USER ${opts.user}`);
  const t0 = performance.now();
  const reply = await client.command(`PASS ${opts.password}`);
  const ms = performance.now() - t0;
  if (opts.keep !== true) await client.quit().catch(() => undefined);
  return { userReply, reply, ms, client };
}

/** AUTH PLAIN with an initial response, timed from AUTH to its reply. */
export async function attemptPlain(
  port: number,
  opts: { ip: string; authcid: string; password: string; keep?: boolean },
): Promise<Attempt> {
  const client = await Pop3TestClient.connect({ port, tls: true, localAddress: opts.ip, timeoutMs: 8000 });
  const b64 = Buffer.from(`\0${opts.authcid}\0${opts.password}`, 'utf8').toString('base64');
  const t0 = performance.now();
  const reply = await client.command(`AUTH PLAIN ${b64}`);
  const ms = performance.now() - t0;
  if (opts.keep !== true) await client.quit().catch(() => undefined);
  return { userReply: '', reply, ms, client };
}

/** The value of one sample in Prometheus text (0 when the series does not exist yet). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (m === null || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const part of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(part[1]!, part[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return 0;
}

/** GET http://127.0.0.1:port/metrics, as text. */
export async function scrape(adminPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
  return res.text();
}

/** Audit records whose client address starts with `ip:`. */
export function fromIp(lines: Array<Record<string, unknown>>, ip: string): Array<Record<string, unknown>> {
  return lines.filter((l) => typeof l.client === 'string' && l.client.startsWith(`${ip}:`));
}

/** Polls `check` until it is true or `timeoutMs` passes (audit writes are asynchronous). */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/**
 * Dovecot config that turns off its anvil auth penalty. Behind the gateway every login reaches
 * Dovecot from the gateway's own address, so Dovecot's per-IP penalty (2 s, 4 s, 8 s ... up to
 * 15 s before each auth reply after failures) would slow every user once anyone failed, and would
 * drown the gateway's own per-client limits that these tests measure. (In production: send the
 * real client address with backend.proxyProtocol, or turn the penalty off the same way.)
 * Dovecot still answers a failed login only on its 500 ms failure timer.
 */
export const DOVECOT_NO_AUTH_PENALTY = 'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}';

/**
 * A scripted POP3 backend for "never reached the backend" and stall tests: user `ok` with
 * password `right`, three small messages; every line it receives is kept in `conn.received`.
 * Verbs in `stall` are read and never answered. Every other command gets a plausible reply.
 * Each accepted connection is pushed onto `conns` when given.
 */
export function fakeBackend(opts: { stall?: readonly string[]; conns?: ScriptConn[] } = {}): (conn: ScriptConn) => Promise<void> {
  const stall = new Set((opts.stall ?? []).map((v) => v.toUpperCase()));
  const message = (n: string) => `Subject: message ${n}\r\n\r\nbody of ${n}\r\n`;
  return async (conn) => {
    opts.conns?.push(conn);
    await conn.write('+OK fake ready\r\n');
    let user = '';
    for (;;) {
      const line = await conn.readLine(120_000);
      if (line === null) return;
      const [verb = '', arg = ''] = line.split(' ');
      const v = verb.toUpperCase();
      if (stall.has(v)) continue;
      switch (v) {
        case 'CAPA': await conn.write('+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n'); break;
        case 'USER': user = arg; await conn.write('+OK\r\n'); break;
        case 'PASS': await conn.write(user === 'ok' && arg === 'right' ? '+OK in\r\n' : '-ERR [AUTH] no\r\n'); break;
        case 'STAT': await conn.write('+OK 3 120\r\n'); break;
        case 'LIST': await conn.write(arg === '' ? '+OK\r\n1 40\r\n2 40\r\n3 40\r\n.\r\n' : `+OK ${arg} 40\r\n`); break;
        case 'UIDL': await conn.write(arg === '' ? '+OK\r\n1 u1\r\n2 u2\r\n3 u3\r\n.\r\n' : `+OK ${arg} u${arg}\r\n`); break;
        case 'RETR': case 'TOP': await conn.write(`+OK\r\n${message(arg)}.\r\n`); break;
        case 'QUIT': conn.end('+OK bye\r\n'); return;
        default: await conn.write('+OK\r\n');
      }
    }
  };
}

/** Every line every backend connection received, as text. */
export function receivedLines(conns: ReadonlyArray<{ received: Buffer }>): string[] {
  return conns.flatMap((c) => c.received.toString('latin1').split('\r\n').filter((l) => l !== ''));
}
