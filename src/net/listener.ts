/**
 * One listening socket. Per connection, in order: the PROXY header (if this
 * listener sits behind a trusted balancer), connection limits (before any TLS
 * work, so a refused client costs no handshake), implicit TLS, then a session.
 */
import net from 'node:net';
import type { ListenerConfig } from '../config/schema.ts';
import type { ConnectionLimiter } from '../policy/connection-limits.ts';
import { NetworkSet } from '../policy/networks.ts';
import { REPLIES } from '../protocol/replies.ts';
import type { Logger } from '../util/logger.ts';
import type { GatewayMetrics } from '../metrics/metrics.ts';
import type { TlsUpgrader } from './tls-engine.ts';
import { readProxyHeader } from './proxy-in.ts';

export interface ClientAddress {
  readonly ip: string;
  readonly port: number;
  /** Where the client connected to (for PROXY headers to the backend). */
  readonly localIp: string;
  readonly localPort: number;
}

/** What the listener needs per connection; swapped on reload. */
export interface ListenerEnv {
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  readonly tls: TlsUpgrader;
  readonly handshakeTimeout: number;
  readonly limiter: ConnectionLimiter;
}

export interface ListenerRuntime {
  env(): ListenerEnv;
  /**
   * Hands an accepted, limited, (implicit-)TLS-terminated connection to a new session, which
   * calls `ended` once when it ends (the connection's slot is given back then).
   */
  open(socket: net.Socket, address: ClientAddress, tls: string | false, ended: () => void): void;
}

export class Pop3Listener {
  private readonly server: net.Server;
  private readonly trustedProxies: NetworkSet;
  private readonly handshakes = new Set<net.Socket>();

  constructor(readonly config: ListenerConfig, private readonly rt: ListenerRuntime) {
    this.trustedProxies = new NetworkSet(config.trustedProxies);
    this.server = net.createServer({ noDelay: true, pauseOnConnect: false }, (raw) => {
      void this.accept(raw).catch((err) => {
        this.rt.env().log.error({ event: 'accept-error', listener: config.name, err: String(err) }, 'accept failed');
        raw.destroy();
      });
    });
    this.server.on('error', (err) => this.rt.env().log.error({ event: 'listener-error', listener: config.name, err: err.message }, 'listener error'));
  }

  listen(host = this.config.host, port = this.config.port): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, exclusive: false }, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  /** The bound address (port 0 in tests becomes a real port). */
  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  /** Stops accepting; live sessions go on. Connections still in a handshake are dropped. */
  close(): Promise<void> {
    for (const s of this.handshakes) s.destroy();
    // server.close()'s callback waits for every live connection to end; the shutdown grace
    // period must start as soon as the port stops accepting, so do not wait for it.
    this.server.close();
    return Promise.resolve();
  }

  get listening(): boolean {
    return this.server.listening;
  }

  private async accept(raw: net.Socket): Promise<void> {
    const deps = this.rt.env();
    const metrics = deps.metrics;
    raw.setNoDelay(true);
    raw.on('error', () => undefined); // per-connection errors end the connection; the session logs them
    this.handshakes.add(raw);
    raw.once('close', () => this.handshakes.delete(raw));
    let address: ClientAddress = {
      ip: normalizeIp(raw.remoteAddress ?? ''), port: raw.remotePort ?? 0,
      localIp: normalizeIp(raw.localAddress ?? ''), localPort: raw.localPort ?? 0,
    };
    if (this.config.proxyProtocol) {
      if (!this.trustedProxies.contains(address.ip)) {
        deps.log.warn({ event: 'proxy-untrusted', listener: this.config.name, peer: address.ip }, 'PROXY header from an untrusted source refused');
        metrics.connection(this.config.name, 'refused');
        raw.destroy();
        return;
      }
      const header = await readProxyHeader(raw, deps.handshakeTimeout);
      if (!header.ok) {
        deps.log.warn({ event: 'proxy-invalid', listener: this.config.name, peer: address.ip, reason: header.reason }, 'bad PROXY header');
        metrics.connection(this.config.name, 'refused');
        raw.destroy();
        return;
      }
      if (header.source !== null) {
        address = { ip: normalizeIp(header.source.address), port: header.source.port,
          localIp: normalizeIp(header.destination?.address ?? address.localIp), localPort: header.destination?.port ?? address.localPort };
      }
    }
    const acquired = deps.limiter.acquire(address.ip);
    const slot = acquired instanceof Promise ? await acquired : acquired;
    if (!slot.ok) {
      metrics.connection(this.config.name, 'refused');
      metrics.policyRefusal(slot.reason);
      deps.log.info({ event: 'connection-refused', listener: this.config.name, client: address.ip, reason: slot.reason }, 'connection refused');
      // A TLS client cannot read a plaintext -ERR: on implicit TLS the refusal is a close, before any handshake.
      if (this.config.tls === 'implicit') raw.destroy();
      else raw.end(`${slot.reason === 'max-total' ? REPLIES.tooManyConnections : REPLIES.tooManyConnectionsFromIp}\r\n`);
      return;
    }
    let socket: net.Socket = raw;
    let tlsProtocol: string | false = false;
    if (this.config.tls === 'implicit') {
      try {
        const secure = await deps.tls.upgrade(raw, this.config.name);
        socket = secure;
        tlsProtocol = secure.getProtocol() ?? 'TLS';
      } catch {
        metrics.connection(this.config.name, 'tls-failed');
        slot.release();
        raw.destroy();
        return;
      }
    }
    this.handshakes.delete(raw);
    if (raw.destroyed) {
      slot.release();
      return;
    }
    metrics.connection(this.config.name, 'accepted');
    // readProxyHeader leaves a plaintext socket paused (so no byte is lost meanwhile), and a
    // 'data' listener does not resume an explicitly paused stream. open() attaches the
    // session's listener synchronously, before the flow starts on the next tick.
    if (socket === raw && raw.isPaused()) raw.resume();
    try {
      this.rt.open(socket, address, tlsProtocol, slot.release);
    } catch (err) {
      slot.release();
      throw err;
    }
  }
}

/** "::ffff:127.0.0.1" → "127.0.0.1", so policy, logs and audit see one form. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}
