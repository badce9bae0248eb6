/**
 * Every client TLS handshake, implicit or after STLS, runs through tls.Servers that never
 * listen: accepted sockets are handed to them, so the handshake timeout, SNI, ALPN, session
 * resumption and the cipher policy are OpenSSL's and Node's, configured in one place, and a
 * reload swaps them for new handshakes only.
 *
 * Two servers with the same options: one with the session-ID cache (`newSession` /
 * `resumeSession`), one without. Node serves those two events by parsing every ClientHello
 * before OpenSSL and calling into JavaScript three times per handshake (the hello, and each of
 * the two tickets a TLS 1.3 server issues): 38–115 µs of server CPU per TLS 1.3 handshake
 * here in five runs, 2–5 % of a whole session (`bench/micro/tls-session-ids.ts`), and TLS 1.3
 * never resumes by ID. So the first bytes of a connection are looked at first: a ClientHello
 * that offers TLS 1.3, where TLS 1.3 is allowed, goes to the server without the cache (tickets
 * resume it); anything else (TLS 1.2 clients, a hello split over reads, garbage for OpenSSL to
 * refuse) to the one with it. A client has the handshake timeout to send its first bytes, then
 * the handshake timeout again for the handshake, as before.
 *
 * An SNICallback only when `tls.sni` has entries: with one, Node stops every handshake that
 * names a server (nearly all) for a call into JavaScript, +30 µs of server CPU per handshake
 * even when it finds nothing (`bench/micro/tls-session-ids.ts --sni`). A reload that adds the
 * first entry or removes the last builds the two servers again; ticket keys are the process's,
 * so tickets issued before still resume.
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { offersTls13 } from '../protocol/client-hello.ts';
import { deadlinesOf, type DeadlineQueue } from '../util/deadline-queue.ts';
import { TlsSessionCache } from './session-cache.ts';

/** What a session needs to upgrade its client socket (STLS). */
export interface TlsUpgrader {
  upgrade(raw: Socket, listener: string): Promise<tls.TLSSocket>;
}

interface Waiter {
  resolve(s: tls.TLSSocket): void;
  reject(e: Error): void;
}

/** The raw socket a server-side TLSSocket wraps (Node keeps it as `_parent`). */
function rawOf(s: tls.TLSSocket): Socket | undefined {
  return (s as unknown as { _parent?: Socket })._parent;
}

/** Whether handshakes under `options` can end in TLS 1.2 or older, and whether in TLS 1.3. */
function versionsOf(options: tls.TlsOptions): { below13: boolean; tls13: boolean } {
  const min = options.minVersion ?? tls.DEFAULT_MIN_VERSION;
  const max = options.maxVersion ?? tls.DEFAULT_MAX_VERSION;
  return { below13: min !== 'TLSv1.3', tls13: max === 'TLSv1.3' };
}

export class TlsEngine implements TlsUpgrader {
  /** Handshakes that may end below TLS 1.3: with the session-ID cache. */
  private withIds: tls.Server;
  /** Handshakes that offer TLS 1.3 where it is allowed: tickets only. */
  private ticketsOnly: tls.Server;
  private readonly waiting = new WeakMap<Socket, Waiter>();
  private versions: { below13: boolean; tls13: boolean };
  /** Time a client has to send its first bytes (its ClientHello) before the handshake starts. */
  private helloDeadlines: DeadlineQueue;

  private sni: tls.TlsOptions['SNICallback'];
  private readonly sessions: TlsSessionCache;

  constructor(options: tls.TlsOptions, private readonly onFailure: (listener: string, err: Error) => void = () => undefined) {
    this.sni = options.SNICallback;
    this.versions = versionsOf(options);
    this.helloDeadlines = deadlinesOf(options.handshakeTimeout ?? 120_000);
    this.sessions = new TlsSessionCache(10_000, (options.sessionTimeout ?? 300) * 1000);
    [this.withIds, this.ticketsOnly] = this.createServers(options);
  }

  /** The pair of servers for `options`; the one for session IDs gets the cache's two listeners. */
  private createServers(options: tls.TlsOptions): [tls.Server, tls.Server] {
    const withIds = this.createServer(options);
    // Session IDs: without these two listeners Node resumes tickets only.
    withIds.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
      this.sessions.set(id, data);
      done();
    });
    withIds.on('resumeSession', (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
      done(null, this.sessions.get(id));
    });
    return [withIds, this.createServer(options)];
  }

  private createServer(options: tls.TlsOptions): tls.Server {
    // The server keeps its SNICallback internally; routed through a field a reload can swap.
    const sni: tls.TlsOptions['SNICallback'] = options.SNICallback === undefined
      ? undefined
      : (name, cb) => (this.sni === undefined ? cb(null, undefined) : this.sni(name, cb));
    const server = tls.createServer({ ...options, SNICallback: sni });
    server.on('secureConnection', (s: tls.TLSSocket) => {
      const raw = rawOf(s);
      const w = raw === undefined ? undefined : this.waiting.get(raw);
      if (w === undefined) {
        s.destroy();
        return;
      }
      this.waiting.delete(raw!);
      w.resolve(s);
    });
    server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
      const raw = rawOf(s);
      const w = raw === undefined ? undefined : this.waiting.get(raw);
      s.destroy();
      if (w !== undefined) {
        this.waiting.delete(raw!);
        w.reject(err);
      }
    });
    return server;
  }

  /** New certificates and settings for handshakes that start from now on. */
  update(options: tls.TlsOptions): void {
    if ((options.SNICallback === undefined) !== (this.sni === undefined)) {
      // Handshakes under way finish on the servers they started on.
      [this.withIds, this.ticketsOnly] = this.createServers(options);
    } else {
      this.withIds.setSecureContext(options);
      this.ticketsOnly.setSecureContext(options);
    }
    this.sni = options.SNICallback;
    this.versions = versionsOf(options);
    this.helloDeadlines = deadlinesOf(options.handshakeTimeout ?? 120_000);
  }

  upgrade(raw: Socket, listener: string): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      if (raw.destroyed) {
        const err = new Error('connection closed before the TLS handshake');
        this.onFailure(listener, err);
        reject(err);
        return;
      }
      const onClose = (): void => {
        if (!this.waiting.has(raw)) return;
        this.waiting.delete(raw);
        const err = new Error('connection closed during the TLS handshake');
        this.onFailure(listener, err);
        reject(err);
      };
      this.waiting.set(raw, {
        resolve: (s) => {
          raw.off('close', onClose);
          resolve(s);
        },
        reject: (e) => {
          raw.off('close', onClose);
          this.onFailure(listener, e);
          reject(e);
        },
      });
      raw.once('close', onClose);
      const { below13, tls13 } = this.versions;
      if (!below13) this.ticketsOnly.emit('connection', raw);
      else if (!tls13) this.withIds.emit('connection', raw);
      else this.routeByHello(raw);
    });
  }

  /**
   * Waits for the client's first bytes, puts them back and hands the socket to the server its
   * hello calls for. No bytes within the handshake timeout: the handshake fails as Node's own
   * timeout would fail it.
   */
  private routeByHello(raw: Socket): void {
    const onData = (chunk: Buffer): void => {
      deadline.cancel();
      raw.off('data', onData);
      raw.off('close', onGone);
      raw.pause();
      raw.unshift(chunk);
      (offersTls13(chunk) === true ? this.ticketsOnly : this.withIds).emit('connection', raw);
    };
    const onGone = (): void => {
      deadline.cancel();
      raw.off('data', onData);
    };
    const deadline = this.helloDeadlines.add(() => {
      raw.off('data', onData);
      raw.off('close', onGone);
      const w = this.waiting.get(raw);
      this.waiting.delete(raw);
      raw.destroy();
      w?.reject(Object.assign(new Error('TLS handshake timeout (no ClientHello)'), { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' }));
    });
    raw.on('data', onData);
    raw.once('close', onGone);
    // A socket paused by its last reader (STLS, a PROXY header) hands over what it buffered too.
    raw.resume();
  }
}
