/**
 * Periodic capability and health probe of the backend servers: connect (as the sessions do,
 * TLS included), read the greeting and CAPA, QUIT. The gateway builds the CAPA it shows clients
 * before login from this, and /healthz reports it. Rounds never overlap; timers are unref'ed.
 */
import type { BackendConfig, BackendServer } from '../config/schema.ts';
import type { Capabilities } from '../protocol/capa.ts';
import type { Logger } from '../util/logger.ts';
import { connectBackend, serverLabel as label, type BackendConnection } from './connector.ts';
import { asBackendError, type BackendError } from './errors.ts';
import type { BackendPool } from './pool.ts';

export interface ProbeOptions {
  readonly responseLineMax: number;
  readonly replyTimeout: number;
  /** When given, probe results also mark its servers up or down. */
  readonly pool?: BackendPool;
  readonly onChange?: (healthy: boolean) => void;
  readonly now?: () => number;
}

export interface ServerHealth {
  readonly server: BackendServer;
  /** null until the first probe of this server finished. */
  readonly healthy: boolean | null;
  readonly capa: Capabilities | null;
  readonly checkedAt: number | null;
  readonly error: BackendError | null;
  readonly connectMs: number | null;
}

const PROXY_V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/**
 * A PROXY header saying "this connection is the proxy's own" (v1 UNKNOWN, v2 LOCAL): the
 * spec's form for health checks, so a backend that requires the header still answers the probe.
 */
export function proxyLocalHeader(version: 'v1' | 'v2'): Buffer {
  if (version === 'v1') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  // Version 2, command LOCAL (0x20); family/transport UNSPEC (0x00); no address block.
  return Buffer.from([...PROXY_V2_SIGNATURE, 0x20, 0x00, 0x00, 0x00]);
}

export class BackendProbe {
  /** The most recent failure of any server, or null. */
  lastError: BackendError | null = null;
  onChange: ((healthy: boolean) => void) | null;

  private readonly health: ServerHealth[];
  private readonly now: () => number;
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<void> | null = null;
  private controller: AbortController | null = null;
  private wasHealthy = false;

  constructor(
    private readonly servers: readonly BackendServer[],
    private readonly cfg: BackendConfig,
    private readonly log: Logger,
    private readonly opts: ProbeOptions,
  ) {
    this.onChange = opts.onChange ?? null;
    this.now = opts.now ?? Date.now;
    this.health = servers.map((server) => ({ server, healthy: null, capa: null, checkedAt: null, error: null, connectMs: null }));
  }

  /** Probes now; resolves when that first round is done, then repeats every probeInterval. */
  start(): Promise<void> {
    if (this.controller !== null) return this.round ?? Promise.resolve();
    this.controller = new AbortController();
    return this.runRound();
  }

  /** Stops the timer and abandons probes in flight. */
  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.controller?.abort();
    this.controller = null;
  }

  /** True when at least one server answered the latest probe. */
  healthy(): boolean {
    return this.health.some((h) => h.healthy === true);
  }

  /** CAPA of the healthy server checked most recently; null when none is healthy or none has CAPA. */
  capabilities(): Capabilities | null {
    let best: ServerHealth | null = null;
    for (const h of this.health) {
      if (h.healthy !== true || h.capa === null) continue;
      if (best === null || (h.checkedAt ?? 0) > (best.checkedAt ?? 0)) best = h;
    }
    return best?.capa ?? null;
  }

  /** Per-server state (admin, /healthz). */
  status(): readonly ServerHealth[] {
    return [...this.health];
  }

  /** One probe round over every server, in parallel. Also usable without start(). */
  probeOnce(): Promise<void> {
    this.round ??= Promise.all(this.servers.map((s, i) => this.probeServer(s, i))).then(() => {
      this.round = null;
      const healthy = this.healthy();
      if (healthy !== this.wasHealthy) {
        this.wasHealthy = healthy;
        this.onChange?.(healthy);
      }
    });
    return this.round;
  }

  private async runRound(): Promise<void> {
    await this.probeOnce();
    if (this.controller === null) return; // stopped meanwhile
    this.timer = setTimeout(() => void this.runRound(), this.cfg.probeInterval);
    this.timer.unref();
  }

  private async probeServer(server: BackendServer, index: number): Promise<void> {
    const before = this.health[index]!;
    const signal = this.controller?.signal;
    let conn: BackendConnection;
    try {
      conn = await connectBackend(server, this.cfg, {
        wantCapa: true,
        proxyHeader: this.cfg.proxyProtocol === false ? null : proxyLocalHeader(this.cfg.proxyProtocol),
        responseLineMax: this.opts.responseLineMax,
        replyTimeout: this.opts.replyTimeout,
        signal,
      });
    } catch (err) {
      const error = asBackendError(err, label(server));
      if (signal?.aborted === true) return; // stopped: not the server's fault
      this.lastError = error;
      this.health[index] = { server, healthy: false, capa: before.capa, checkedAt: this.now(), error, connectMs: null };
      if (error.retryable) this.opts.pool?.markDown(server);
      if (before.healthy !== false) {
        this.log.warn({ event: 'backend-down', server: label(server), code: error.code, err: error.message }, 'backend probe failed');
      }
      return;
    }
    this.quit(conn);
    this.health[index] = { server, healthy: true, capa: conn.capa, checkedAt: this.now(), error: null, connectMs: conn.connectMs };
    this.opts.pool?.markUp(server);
    if (before.healthy === false) {
      this.log.info({ event: 'backend-up', server: label(server) }, 'backend answers the probe again');
    }
  }

  /** QUIT politely, then make sure the socket goes away even if the backend never closes. */
  private quit(conn: BackendConnection): void {
    const socket = conn.socket;
    const timer = setTimeout(() => socket.destroy(), this.opts.replyTimeout);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.resume(); // discard the +OK so the backend's FIN is seen
    socket.end('QUIT\r\n');
  }
}
