/**
 * The composition root: builds every part from a validated config, wires them,
 * starts listeners and the admin endpoint, reloads and stops. Nothing else
 * creates long-lived objects.
 */
import { lifecycleLogger } from './log/lifecycle.ts';
import { access } from 'node:fs/promises';
import { createAuditSink, type AuditSink } from './audit/sink.ts';
import { DEFAULT_SIGNALS, SignalDetector } from './audit/signals.ts';
import { BackendDirectory } from './backend/directory.ts';
import { startAdminServer } from './admin/server.ts';
import type { GatewayConfig, PolicyConfig } from './config/schema.ts';
import { loadTlsMaterial } from './config/tls-material.ts';
import { pairFiles } from './config/cert-pair.ts';
import { createRootLogger, type RootLogger } from './log/logger.ts';
import { GatewayMetrics } from './metrics/metrics.ts';
import { CertFileWatcher, tlsFiles } from './net/cert-watch.ts';
import { Pop3Listener } from './net/listener.ts';
import { TlsEngine } from './net/tls-engine.ts';
import { AuthLimiter } from './policy/auth-limits.ts';
import { CommandPolicy } from './policy/commands.ts';
import { ConnectionLimiter } from './policy/connection-limits.ts';
import { createCounterStore, type CounterStore } from './policy/counter-store.ts';
import { NetworkSet } from './policy/networks.ts';
import { RuleSet } from './policy/rules.ts';
import { startupProblems, startupWarnings } from './policy/tls-gate.ts';
import { FailureLatency, type SessionDeps } from './relay/deps.ts';
import { SessionRegistry } from './relay/registry.ts';
import { Pop3Session } from './relay/session.ts';
import type { Logger } from './util/logger.ts';

export class GatewayStartError extends Error {
  readonly code = 'GATEWAY_START';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
  }
}

export interface GatewayOptions {
  /** A logger to use instead of JSON lines on stdout (tests capture logs this way). */
  readonly logger?: RootLogger | Logger;
  readonly env?: NodeJS.ProcessEnv;
  /** Listen on port 0 for every listener (tests). */
  readonly ephemeralPorts?: boolean;
  /** Cluster workers (src/cluster/worker.ts): counters and audit records go through the primary. */
  readonly counterStore?: CounterStore;
  readonly auditSink?: AuditSink;
  readonly connectionLimiter?: ConnectionLimiterFactory;
}

export type ConnectionLimiterFactory = (
  cfg: PolicyConfig['connections'], trusted: NetworkSet, store: CounterStore, ipv6Prefix: number,
) => ConnectionLimiter;

interface Generation {
  readonly config: GatewayConfig;
  readonly auth: AuthLimiter;
  readonly deps: Map<string, SessionDeps>;
  readonly limiter: ConnectionLimiter;
  readonly backends: BackendDirectory;
}

function isLoopbackHost(h: string): boolean {
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

/** Problems that make a config unsafe to run even though it is well-formed. */
export function runtimeProblems(config: GatewayConfig): string[] {
  const trusted = new NetworkSet(config.policy.trustedNetworks);
  const problems = startupProblems(config.listeners, trusted);
  const backends = [config.backend, ...config.routes.map((r) => r.backend)];
  for (const b of backends) {
    if (b.tls === 'none' && !b.allowPlaintextCredentials && !b.servers.every((s) => isLoopbackHost(s.host))) {
      problems.push(`backend ${b.servers.map((s) => `${s.host}:${s.port}`).join(',')} has tls: none on a non-loopback address: ` +
        'passwords would cross the network in plaintext; use tls: starttls or implicit, or set allowPlaintextCredentials: true');
    }
  }
  return problems;
}

export class Gateway {
  readonly registry = new SessionRegistry();
  readonly metrics = new GatewayMetrics();
  /** Kept across reloads: known sources and volumes must not be forgotten on SIGHUP. */
  private readonly signals = new SignalDetector(DEFAULT_SIGNALS);
  private listeners: Pop3Listener[] = [];
  private admin: { port: number; close(): Promise<void> } | null = null;
  private gen!: Generation;
  private stopping = false;
  private ephemeral = false;
  private certWatch: CertFileWatcher | null = null;
  private certReload: Promise<void> = Promise.resolve();
  private makeLimiter: ConnectionLimiterFactory = (cfg, trusted, store, prefix) => new ConnectionLimiter(cfg, trusted, store, prefix);

  private constructor(
    private readonly log: Logger,
    private readonly env: NodeJS.ProcessEnv,
    private readonly store: CounterStore,
    private readonly audit: AuditSink,
    private readonly tls: TlsEngine,
    private readonly failureLatency: FailureLatency,
  ) {}

  static async start(config: GatewayConfig, opts: GatewayOptions = {}): Promise<Gateway> {
    const log: Logger = opts.logger ?? createRootLogger(config.logging);
    const env = opts.env ?? process.env;
    const problems = runtimeProblems(config);
    if (problems.length > 0) throw new GatewayStartError(problems);
    for (const w of startupWarnings(config.listeners, new NetworkSet(config.policy.trustedNetworks))) log.warn({ event: 'config-warning' }, w);
    const material = await loadTlsMaterial(config.tls, log);
    const metricsHolder: { m?: GatewayMetrics } = {};
    const tls = new TlsEngine(material.serverOptions(), (listener) => metricsHolder.m?.tlsHandshakeFailure(listener));
    const store = opts.counterStore ?? createCounterStore(config.policy.rateLimitStore, log);
    const audit = opts.auditSink ?? await createAuditSink(config.logging, {
      key: env.POP3GW_AUDIT_KEY ?? null, log, onError: () => metricsHolder.m?.auditError(),
    });
    const gw = new Gateway(log, env, store, audit, tls, new FailureLatency());
    metricsHolder.m = gw.metrics;
    gw.ephemeral = opts.ephemeralPorts === true;
    if (opts.connectionLimiter !== undefined) gw.makeLimiter = opts.connectionLimiter;
    gw.gen = await gw.build(config);
    for (const l of config.listeners) {
      const listener = new Pop3Listener(l, {
        env: () => ({ log: gw.log, metrics: gw.metrics, tls: gw.tls, handshakeTimeout: gw.gen.config.tls.handshakeTimeout, limiter: gw.gen.limiter }),
        open: (socket, address, tlsProtocol, ended) => {
          const session = new Pop3Session(gw.gen.deps.get(l.name)!, socket, address, tlsProtocol);
          gw.registry.add(session);
          session.whenClosed(ended);
          // A bug while greeting ends this session (logged, the client told), not the process.
          session.start().catch((err: unknown) => session.internalError(err));
        },
      });
      const addr = await listener.listen(l.host, opts.ephemeralPorts === true ? 0 : l.port);
      gw.listeners.push(listener);
      lifecycleLogger(log).info({ event: 'listening', listener: l.name, host: addr.address, port: addr.port, tls: l.tls }, 'listening');
    }
    await gw.startAdmin(config);
    gw.watchCertificates(config);
    return gw;
  }

  private async build(config: GatewayConfig): Promise<Generation> {
    const trusted = new NetworkSet(config.policy.trustedNetworks);
    const prev = this.gen as Generation | undefined;
    // An unchanged auth policy keeps its limiter (and its in-memory lockout and retry memory).
    const sameAuth = prev !== undefined && JSON.stringify([prev.config.policy.auth, prev.config.policy.trustedNetworks])
      === JSON.stringify([config.policy.auth, config.policy.trustedNetworks]);
    const auth = sameAuth ? prev.auth : new AuthLimiter(config.policy.auth, trusted, this.store, { log: this.log });
    this.metrics.setLockoutsGauge(() => auth.activeLockouts());
    const limiter = this.makeLimiter(config.policy.connections, trusted, this.store, config.policy.auth.ipv6Prefix);
    if (prev !== undefined) limiter.continueFrom(prev.limiter);
    const backends = new BackendDirectory(config, this.log, this.metrics);
    await backends.start();
    this.metrics.setBackendHealth(() => backends.healthy());
    const commands = new CommandPolicy(config.policy.commands.allow, config.listeners);
    const rules = new RuleSet(config.policy.rules);
    const signals = this.signals;
    const deps = new Map<string, SessionDeps>();
    for (const l of config.listeners) {
      deps.set(l.name, {
        config, listener: l, log: this.log, tls: this.tls, commands, auth, rules, trusted, backends,
        audit: this.audit, metrics: this.metrics, signals, failureLatency: this.failureLatency,
      });
    }
    return { config, auth, deps, limiter, backends };
  }

  get config(): GatewayConfig {
    return this.gen.config;
  }

  /** Bound addresses by listener name (ports are real even when the config said 0). */
  addresses(): Record<string, { host: string; port: number }> {
    const out: Record<string, { host: string; port: number }> = {};
    for (const l of this.listeners) out[l.config.name] = { host: l.address().address, port: l.address().port };
    return out;
  }

  get adminPort(): number | null {
    return this.admin?.port ?? null;
  }

  private async startAdmin(config: GatewayConfig): Promise<void> {
    if (config.admin.port === null) return;
    this.admin = await startAdminServer(this.ephemeral ? { ...config.admin, port: 0 } : config.admin, {
      metricsText: async () => ({ contentType: this.metrics.contentType, body: await this.metrics.text() }),
      sessions: { list: () => this.registry.list(), kick: (id) => this.registry.kick(id) },
      health: () => this.health(),
      log: this.log,
    });
    lifecycleLogger(this.log).info({ event: 'listening', listener: 'admin', host: config.admin.host, port: this.admin.port }, 'admin endpoint listening');
  }

  /** What /healthz reports: listening, backend reachable, not stopping. */
  async health(): Promise<{ ok: boolean; details: Record<string, unknown> }> {
    const listening = this.listeners.every((l) => l.listening);
    const backend = this.gen.backends.healthy();
    return { ok: listening && backend && !this.stopping, details: { listening, backend, sessions: this.registry.size, stopping: this.stopping } };
  }

  /**
   * Applies a new validated config to new sessions and new connections; live
   * sessions keep the parts they started with. Listener changes need a restart.
   */
  async reload(config: GatewayConfig): Promise<void> {
    const problems = runtimeProblems(config);
    if (problems.length > 0) throw new GatewayStartError(problems);
    const material = await loadTlsMaterial(config.tls, this.log);
    const next = await this.build(config);
    this.tls.update(material.serverOptions());
    const old = this.gen;
    this.gen = next;
    old.backends.stop();
    const sameListeners = JSON.stringify(old.config.listeners) === JSON.stringify(config.listeners);
    if (!sameListeners) this.log.warn({ event: 'reload' }, 'listener changes take effect after a restart');
    if (JSON.stringify(old.config.admin) !== JSON.stringify(config.admin)) {
      await this.admin?.close();
      this.admin = null;
      await this.startAdmin(config);
    }
    this.watchCertificates(config);
    this.log.info({ event: 'reload', fingerprint256: material.fingerprint256 }, 'configuration reloaded');
  }

  /** Polls the certificate and key files (SNI pairs too): a renewal on disk reloads them by itself. */
  private watchCertificates(config: GatewayConfig): void {
    this.certWatch?.close();
    this.certWatch = new CertFileWatcher(tlsFiles(config.tls), () => void this.reloadCertificates());
  }

  /**
   * The certificate files changed: new handshakes get the new ones, live sessions keep theirs.
   * Anything wrong (a half-written renewal, a key that does not match) keeps the current ones.
   */
  reloadCertificates(): Promise<void> {
    this.certReload = this.certReload.then(async () => {
      if (this.stopping) return;
      const cfg = this.gen.config.tls;
      try {
        // A file gone is a renewal in progress, not a fresh install: never generate a pair here.
        await Promise.all(pairFiles(cfg).map((f) => access(f)));
        const material = await loadTlsMaterial(cfg, this.log);
        if (this.stopping) return;
        this.tls.update(material.serverOptions());
        this.log.info({ event: 'tls-reload', fingerprint256: material.fingerprint256 }, 'certificate files changed: reloaded');
      } catch (err) {
        this.log.error({ event: 'tls-reload-failed', err: (err as Error).message }, 'certificate files changed but cannot be loaded: keeping the current ones');
      }
    });
    return this.certReload;
  }

  /** Reopens the audit file (after logrotate moved it). */
  reopenAudit(): void {
    this.audit.reopen();
  }

  /**
   * Stops accepting, lets live sessions finish for `graceMs`, then ends the rest
   * without letting their backends reach UPDATE.
   */
  async stop(graceMs = this.gen.config.shutdownGrace): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.certWatch?.close();
    this.log.info({ event: 'stopping', sessions: this.registry.size, graceMs }, 'stopping');
    await Promise.all(this.listeners.map((l) => l.close()));
    const clean = await this.registry.drain(graceMs);
    if (!clean) {
      this.registry.closeAll();
      await this.registry.drain(2000);
    }
    this.gen.backends.stop();
    await this.admin?.close();
    await this.audit.close();
    await this.store.close();
    this.log.info({ event: 'stopped' }, 'stopped');
  }
}
