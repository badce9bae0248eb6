/**
 * Opens one backend connection: TCP (plus an optional PROXY header), then implicit TLS or
 * greeting → CAPA → STLS, then the greeting and CAPA the session works with. Every phase has a
 * timeout; any failure destroys the socket and throws a BackendError. There is no plaintext
 * fallback: a `starttls` backend without a working STLS is an error (RFC 2595 §2.2, STYLE trap 8).
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import type { BackendConfig, BackendServer } from '../config/schema.ts';
import { parseCapa, type Capabilities } from '../protocol/capa.ts';
import { sanitizeLine, type StatusLine } from '../protocol/response.ts';
import { isLoopbackHost } from '../policy/networks.ts';
import { memoize } from '../util/memo.ts';
import { abortedError, step, type Cancellation, type StepSpec } from './deadline.ts';
import { asBackendError, BackendError } from './errors.ts';
import { ReplyReader } from './line-reader.ts';

export interface BackendConnection {
  /** The TLSSocket when the backend link is encrypted. No 'data' listener, not paused. */
  readonly socket: net.Socket;
  readonly greeting: StatusLine;
  /** The whole greeting line without control characters (keeps an APOP <timestamp>). */
  readonly greetingLine: string;
  /** null: not asked, or the backend answered CAPA with -ERR (an RFC 1939-only server). */
  readonly capa: Capabilities | null;
  /** Negotiated protocol, e.g. 'TLSv1.3', or false for plaintext. */
  readonly tls: string | false;
  /** Bytes received beyond the last reply consumed: normally empty; anything else is unsolicited. */
  readonly leftover: Buffer;
  readonly server: BackendServer;
  /** Milliseconds from the start until the connection was ready. */
  readonly connectMs: number;
}

export interface ConnectOptions {
  readonly wantCapa: boolean;
  /** Written first on the raw TCP connection (before any TLS). */
  readonly proxyHeader?: Buffer | null;
  /** limits.responseLine. */
  readonly responseLineMax: number;
  /** Aborted when the client went away: the socket is destroyed, the call rejects with CLOSED. */
  readonly signal?: Cancellation;
  /** Timeout for each reply (greeting, CAPA, STLS). */
  readonly replyTimeout: number;
  /** Largest CAPA body accepted; default 64 KiB. */
  readonly capaMax?: number;
}

const DEFAULT_CAPA_MAX = 64 * 1024;
const CAPA = Buffer.from('CAPA\r\n', 'latin1');
const STLS = Buffer.from('STLS\r\n', 'latin1');
/** TLS errors that mean the peer vanished rather than that TLS itself failed. */
const TRANSPORT_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT']);

type Phase = { server: string; signal: Cancellation | undefined };

/**
 * A step's spec, written out rather than spread from the phase: `{ ...p, timeoutMs, what }` made
 * V8 build two new hidden classes per connect (`--log-maps`), never reused.
 */
function stepSpec(p: Phase, timeoutMs: number, what: string): StepSpec {
  return { server: p.server, signal: p.signal, timeoutMs, what };
}

function tcpConnect(socket: net.Socket, timeoutMs: number, p: Phase): Promise<void> {
  return step<void>(stepSpec(p, timeoutMs, 'TCP connection'), (resolve, reject) => {
    const onConnect = (): void => resolve();
    const onError = (err: Error): void =>
      reject(new BackendError('CONNECT', `cannot connect: ${err.message}`, { server: p.server, cause: err }));
    socket.once('connect', onConnect);
    socket.once('error', onError);
    return () => {
      socket.off('connect', onConnect);
      socket.off('error', onError);
    };
  });
}

async function tlsOptions(server: BackendServer, cfg: BackendConfig, p: Phase): Promise<tls.ConnectionOptions> {
  let ca: Buffer | undefined;
  if (cfg.ca !== null) {
    try {
      ca = await readFile(cfg.ca);
    } catch (err) {
      throw new BackendError('TLS', `cannot read backend.ca ${cfg.ca}: ${(err as Error).message}`, { server: p.server, cause: err });
    }
  }
  return {
    // The name checked against the certificate (an IP host is checked against IP SANs).
    host: server.host,
    // SNI carries host names only (RFC 6066 §3), so no servername for an IP literal.
    servername: cfg.servername ?? (net.isIP(server.host) === 0 ? server.host : undefined),
    ca,
    rejectUnauthorized: cfg.rejectUnauthorized,
    minVersion: 'TLSv1.2',
  };
}

/** TLS over the already connected `raw` socket (implicit TLS after a PROXY header, or STLS). */
function tlsHandshake(raw: net.Socket, options: tls.ConnectionOptions, timeoutMs: number, p: Phase): Promise<tls.TLSSocket> {
  return step<tls.TLSSocket>(stepSpec(p, timeoutMs, 'TLS handshake'), (resolve, reject) => {
    const secure = tls.connect({ ...options, socket: raw });
    // Stays for the socket's life: an error after the hand-off must never be unhandled.
    secure.on('error', () => undefined);
    let done = false;
    const onSecure = (): void => {
      done = true;
      resolve(secure);
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      const code = err.code ?? '';
      reject(TRANSPORT_ERRORS.has(code)
        ? new BackendError('CLOSED', `connection lost during the TLS handshake: ${err.message}`, { server: p.server, cause: err })
        : new BackendError('TLS', `TLS handshake failed: ${err.message}`, { server: p.server, cause: err }));
    };
    const onClose = (): void => reject(new BackendError('CLOSED', 'connection closed during the TLS handshake', { server: p.server }));
    secure.once('secureConnect', onSecure);
    secure.on('error', onError);
    secure.once('close', onClose);
    return () => {
      secure.off('secureConnect', onSecure);
      secure.off('error', onError);
      secure.off('close', onClose);
      // A timeout or an abort leaves the handshake half done: nothing else would close it.
      if (!done) secure.destroy();
    };
  });
}

async function readGreeting(reader: ReplyReader, opts: ConnectOptions, connectTimeout: number, p: Phase): Promise<{ greeting: StatusLine; line: string }> {
  // The greeting is part of connecting: a server that accepts but never greets fails within
  // connectTimeout, so a pool moves on quickly instead of waiting a whole reply timeout.
  const reply = await reader.readStatus('greeting', Math.min(opts.replyTimeout, connectTimeout), p.signal);
  const line = sanitizeLine(reply.line.toString('latin1'));
  if (reply.status.kind !== 'ok') {
    throw new BackendError('GREETING', `refused with ${JSON.stringify(line.slice(0, 120))}`,
      { server: p.server, responseCode: reply.status.code });
  }
  return { greeting: reply.status, line };
}

/** CAPA (RFC 2449): the capabilities, or null when the backend predates CAPA (-ERR). */
async function askCapa(socket: net.Socket, reader: ReplyReader, opts: ConnectOptions, p: Phase): Promise<Capabilities | null> {
  socket.write(CAPA);
  const reply = await reader.readStatus('CAPA reply', opts.replyTimeout, p.signal);
  if (reply.status.kind === 'err') return null;
  if (reply.status.kind !== 'ok') throw new BackendError('PROTOCOL', 'CAPA got a continuation', { server: p.server });
  return parseCapa(await reader.readBody('CAPA list', opts.replyTimeout, p.signal));
}

/** STLS (RFC 2595 §4): offered, accepted, and nothing read past its reply survives the upgrade. */
async function startTls(socket: net.Socket, reader: ReplyReader, capa: Capabilities | null, opts: ConnectOptions, p: Phase): Promise<void> {
  if (capa === null || !capa.has('STLS')) {
    throw new BackendError('NO_STLS', capa === null ? 'CAPA refused, so STLS is not offered' : 'STLS is not in CAPA', { server: p.server });
  }
  socket.write(STLS);
  const reply = await reader.readStatus('STLS reply', opts.replyTimeout, p.signal);
  // Response injection (CVE-2011-0411 style): bytes after the reply came in plaintext; drop them.
  reader.detach();
  if (reply.status.kind !== 'ok') {
    throw new BackendError('NO_STLS', 'STLS refused', { server: p.server, responseCode: reply.status.code });
  }
}

/** Whether a backend host is loopback, remembered per host: an address parse and range walk per connect otherwise. */
const loopbackHost = memoize(isLoopbackHost);

function plaintextRefused(server: BackendServer, cfg: BackendConfig): boolean {
  return cfg.tls === 'none' && !cfg.allowPlaintextCredentials && !loopbackHost(server.host);
}

/** `host:port` (`[v6]:port`) per configured server: an IP test per connect is a regex run per session. */
const labels = new WeakMap<BackendServer, string>();

export function serverLabel(server: BackendServer): string {
  let label = labels.get(server);
  if (label === undefined) {
    label = net.isIPv6(server.host) ? `[${server.host}]:${server.port}` : `${server.host}:${server.port}`;
    labels.set(server, label);
  }
  return label;
}

export async function connectBackend(server: BackendServer, cfg: BackendConfig, opts: ConnectOptions): Promise<BackendConnection> {
  const started = performance.now();
  const label = serverLabel(server);
  const p: Phase = { server: label, signal: opts.signal };
  if (plaintextRefused(server, cfg)) {
    // Belt and braces: config checks refuse this too; credentials must never cross in clear.
    throw new BackendError('PLAINTEXT_CREDENTIALS', 'tls: none to a non-loopback backend without allowPlaintextCredentials', { server: label });
  }
  if (opts.signal?.aborted === true) throw abortedError(label);
  const limits = { lineMax: opts.responseLineMax, bodyMax: opts.capaMax ?? DEFAULT_CAPA_MAX };
  const raw = net.connect({ host: server.host, port: server.port });
  // Attached where the socket is made and kept: the phases and the relay add their own.
  raw.on('error', () => undefined);
  let socket: net.Socket = raw;
  let reader: ReplyReader | null = null;
  try {
    const deadline = performance.now() + cfg.connectTimeout;
    const left = (): number => Math.max(1, deadline - performance.now());
    await tcpConnect(raw, cfg.connectTimeout, p);
    raw.setNoDelay(true);
    if (opts.proxyHeader) raw.write(opts.proxyHeader);

    if (cfg.tls === 'implicit') {
      socket = await tlsHandshake(raw, await tlsOptions(server, cfg, p), left(), p);
    }
    reader = new ReplyReader(socket, limits, label);
    const { greeting, line } = await readGreeting(reader, opts, cfg.connectTimeout, p);
    let capa: Capabilities | null = null;

    if (cfg.tls === 'starttls') {
      const plainCapa = await askCapa(socket, reader, opts, p);
      await startTls(socket, reader, plainCapa, opts, p);
      reader = null;
      socket = await tlsHandshake(raw, await tlsOptions(server, cfg, p), cfg.connectTimeout, p);
      reader = new ReplyReader(socket, limits, label);
      // The pre-TLS list could have been forged in transit: ask again over TLS.
    }
    if (opts.wantCapa) capa = await askCapa(socket, reader, opts, p);
    const leftover = reader.detach();
    return {
      socket,
      greeting,
      greetingLine: line,
      capa,
      tls: socket instanceof tls.TLSSocket ? (socket.getProtocol() ?? 'unknown') : false,
      leftover,
      server,
      connectMs: performance.now() - started,
    };
  } catch (err) {
    reader?.detach();
    socket.destroy();
    raw.destroy();
    throw asBackendError(err, label);
  }
}
