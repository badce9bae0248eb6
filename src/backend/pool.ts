/**
 * Server choice for a backend with several servers: round-robin over the healthy ones, a failed
 * server skipped for `downFor`, and failover to the next server for failures that are about that
 * server (CONNECT, TIMEOUT, CLOSED). Failures that are about the configuration (TLS verification,
 * NO_STLS, a -ERR greeting) stop at once: another server would only repeat them.
 */
import type { BackendConfig, BackendServer } from '../config/schema.ts';
import { connectBackend, type BackendConnection, type ConnectOptions } from './connector.ts';
import { asBackendError, BackendError } from './errors.ts';

function keyOf(server: BackendServer): string {
  return `${server.host}|${server.port}`;
}

export class BackendPool {
  /** Server key → time (ms) until which it is skipped. */
  private readonly downUntil = new Map<string, number>();
  private cursor = 0;

  constructor(
    readonly servers: readonly BackendServer[],
    private readonly cfg: Pick<BackendConfig, 'downFor'>,
    private readonly now: () => number = Date.now,
  ) {
    if (servers.length === 0) throw new RangeError('BackendPool needs at least one server');
  }

  /**
   * Every server, in the order to try them: healthy ones first, rotating the start on each call
   * so load spreads; then the down ones, soonest back first (better than failing outright).
   */
  pick(): readonly BackendServer[] {
    const n = this.servers.length;
    const start = this.cursor % n;
    this.cursor = (start + 1) % n;
    const rotated = start === 0 ? this.servers : [...this.servers.slice(start), ...this.servers.slice(0, start)];
    // The common case, every server up (and often only one): no sorting, no look-ups per server.
    if (this.downUntil.size === 0) return rotated;
    const up = rotated.filter((s) => !this.isDown(s));
    const down = rotated.filter((s) => this.isDown(s))
      .sort((a, b) => (this.downUntil.get(keyOf(a)) ?? 0) - (this.downUntil.get(keyOf(b)) ?? 0));
    return [...up, ...down];
  }

  markDown(server: BackendServer): void {
    this.downUntil.set(keyOf(server), this.now() + this.cfg.downFor);
  }

  markUp(server: BackendServer): void {
    if (this.downUntil.size !== 0) this.downUntil.delete(keyOf(server));
  }

  isDown(server: BackendServer): boolean {
    const until = this.downUntil.get(keyOf(server));
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.downUntil.delete(keyOf(server));
    return false;
  }
}

/** Called after each attempt, e.g. for logs and metrics; `error` is null on success. */
export type AttemptListener = (server: BackendServer, error: BackendError | null) => void;

export async function connectWithFailover(
  pool: BackendPool,
  cfg: BackendConfig,
  opts: ConnectOptions,
  onAttempt?: AttemptListener,
): Promise<BackendConnection> {
  let last: BackendError | null = null;
  for (const server of pool.pick()) {
    try {
      const conn = await connectBackend(server, cfg, opts);
      pool.markUp(server);
      onAttempt?.(server, null);
      return conn;
    } catch (err) {
      const error = asBackendError(err);
      onAttempt?.(server, error);
      // The client left: not the server's fault, and no point trying another.
      if (opts.signal?.aborted === true) throw error;
      if (!error.retryable) throw error;
      pool.markDown(server);
      last = error;
    }
  }
  // Unreachable (a pool has a server, each attempt returns or sets `last`), but keeps types honest.
  throw last ?? new BackendError('CONNECT', 'no backend server to try');
}
