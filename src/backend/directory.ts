/**
 * Which backend a session talks to: the default backend (a pool of one or more
 * servers) or, when `routes` match the login name, a routed one. Also owns the
 * capability/health probe of the default backend.
 */
import type { BackendConfig, GatewayConfig } from '../config/schema.ts';
import type { GatewayMetrics } from '../metrics/metrics.ts';
import { compileUserPattern } from '../policy/user-pattern.ts';
import type { Capabilities } from '../protocol/capa.ts';
import { buildProxyV1, buildProxyV2 } from '../protocol/proxy-header.ts';
import type { Logger } from '../util/logger.ts';
import type { BackendConnection } from './connector.ts';
import type { Cancellation } from './deadline.ts';
import { BackendPool, connectWithFailover } from './pool.ts';
import { BackendProbe } from './probe.ts';

export interface BackendLease {
  readonly conn: BackendConnection;
  /** `default` or the route's match pattern. */
  readonly route: string;
  /** The login name to send to this backend (routes may strip the domain). */
  loginName(user: string): string;
}

interface Route {
  readonly pattern: string;
  readonly matches: (user: string) => boolean;
  readonly cfg: BackendConfig;
  readonly pool: BackendPool;
  readonly localPart: boolean;
}

/**
 * The name without its host: `alice@example.org` and the SDPS form `alice+host`
 * (which has no @) both log in as `alice`.
 */
export function localPart(user: string): string {
  const at = user.lastIndexOf('@');
  if (at > 0) return user.slice(0, at);
  const plus = user.lastIndexOf('+');
  return plus > 0 ? user.slice(0, plus) : user;
}

export class BackendDirectory {
  readonly routing: boolean;
  private readonly pool: BackendPool;
  private readonly routes: Route[];
  private readonly probe: BackendProbe;

  constructor(private readonly config: GatewayConfig, private readonly log: Logger, private readonly metrics: GatewayMetrics) {
    this.pool = new BackendPool(config.backend.servers, config.backend);
    this.routes = config.routes.map((r) => ({
      pattern: r.match,
      matches: compileUserPattern(r.match),
      cfg: r.backend,
      pool: new BackendPool(r.backend.servers, r.backend),
      localPart: r.loginAs === 'local-part',
    }));
    this.routing = this.routes.length > 0;
    this.probe = new BackendProbe(config.backend.servers, config.backend, log, {
      // Probe results mark pool servers too: a server found down is skipped before a client pays for it.
      pool: this.pool,
      responseLineMax: config.limits.responseLine,
      replyTimeout: config.policy.timeouts.backendReply,
    });
  }

  start(): Promise<void> {
    return this.probe.start();
  }

  stop(): void {
    this.probe.stop();
  }

  capabilities(): Capabilities | null {
    return this.probe.capabilities();
  }

  healthy(): boolean {
    return this.probe.healthy();
  }

  /** The name the backend will be sent for `user`: after routing and the route's `loginAs`. */
  loginNameFor(user: string): string {
    return this.routes.find((r) => r.matches(user))?.localPart === true ? localPart(user) : user;
  }

  async connect(user: string | null, client: { ip: string; port: number; localIp: string; localPort: number }, signal: Cancellation): Promise<BackendLease> {
    const route = user === null ? undefined : this.routes.find((r) => r.matches(user));
    const cfg = route?.cfg ?? this.config.backend;
    const pool = route?.pool ?? this.pool;
    const header = cfg.proxyProtocol === false ? null
      : (cfg.proxyProtocol === 'v1' ? buildProxyV1 : buildProxyV2)(
        { address: client.ip, port: client.port }, { address: client.localIp, port: client.localPort });
    const started = performance.now();
    try {
      const conn = await connectWithFailover(pool, cfg, {
        // The probe already knows the default backend's CAPA; a routed backend is asked each time.
        wantCapa: route !== undefined || this.probe.capabilities() === null,
        proxyHeader: header,
        responseLineMax: this.config.limits.responseLine,
        signal,
        replyTimeout: this.config.policy.timeouts.backendReply,
      });
      this.metrics.backendConnect((performance.now() - started) / 1000, 'ok');
      return {
        conn,
        route: route?.pattern ?? 'default',
        loginName: (u) => (route?.localPart === true ? localPart(u) : u),
      };
    } catch (err) {
      this.metrics.backendConnect((performance.now() - started) / 1000, 'error', (err as { code?: string }).code);
      throw err;
    }
  }
}
