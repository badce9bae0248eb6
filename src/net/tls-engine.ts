/**
 * Every client TLS handshake, implicit or after STLS, runs through one tls.Server
 * that never listens: accepted sockets are handed to it, so the handshake timeout,
 * SNI, ALPN, session resumption and the cipher policy are OpenSSL's and Node's,
 * configured in one place, and a reload swaps them for new handshakes only.
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
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

export class TlsEngine implements TlsUpgrader {
  private readonly server: tls.Server;
  private readonly waiting = new WeakMap<Socket, Waiter>();

  private sni: tls.TlsOptions['SNICallback'];
  private readonly sessions: TlsSessionCache;

  constructor(options: tls.TlsOptions, private readonly onFailure: (listener: string, err: Error) => void = () => undefined) {
    this.sni = options.SNICallback;
    // The server keeps its SNICallback internally; route it through a field a reload can swap.
    this.server = tls.createServer({
      ...options,
      SNICallback: (name, cb) => (this.sni === undefined ? cb(null, undefined) : this.sni(name, cb)),
    });
    // Session IDs: without these two listeners Node resumes tickets only.
    this.sessions = new TlsSessionCache(10_000, (options.sessionTimeout ?? 300) * 1000);
    this.server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
      this.sessions.set(id, data);
      done();
    });
    this.server.on('resumeSession', (id: Buffer, done: (err: Error | null, data: Buffer | null) => void) => {
      done(null, this.sessions.get(id));
    });
    this.server.on('secureConnection', (s: tls.TLSSocket) => {
      const raw = rawOf(s);
      const w = raw === undefined ? undefined : this.waiting.get(raw);
      if (w === undefined) {
        s.destroy();
        return;
      }
      this.waiting.delete(raw!);
      w.resolve(s);
    });
    this.server.on('tlsClientError', (err: Error, s: tls.TLSSocket) => {
      const raw = rawOf(s);
      const w = raw === undefined ? undefined : this.waiting.get(raw);
      s.destroy();
      if (w !== undefined) {
        this.waiting.delete(raw!);
        w.reject(err);
      }
    });
  }

  /** New certificates and settings for handshakes that start from now on. */
  update(options: tls.TlsOptions): void {
    this.server.setSecureContext(options);
    this.sni = options.SNICallback;
  }

  upgrade(raw: Socket, listener: string): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
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
      this.server.emit('connection', raw);
    });
  }
}
