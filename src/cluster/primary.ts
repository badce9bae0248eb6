/**
 * The primary process of `workers: N | auto`. It accepts no POP3 session itself:
 * - forks N workers (worker.ts) that share the listeners through node:cluster (the primary
 *   accepts and hands connections out round-robin, Node's default on Linux), gives each
 *   the config it validated, and replaces a worker that dies, with a growing delay; it
 *   gives up (exit 1) when workers die 5 times within 10 s or 3 times in a row before any
 *   became ready, rather than fork in a tight loop;
 * - owns what must be shared: live connection counts per client and in total, the policy
 *   counters when `rateLimitStore` is `memory` (shared-counters.ts), and the one audit
 *   file (workers send records, the primary seals the hash chain);
 * - serves the admin endpoint for the whole gateway: /metrics merged from every worker,
 *   /sessions from every worker (each entry carries its worker's pid), kick to whichever
 *   worker holds the session, /healthz ok only when every worker is up and healthy;
 * - SIGHUP: loads and checks the file once, then hands the new config to every worker
 *   (a bad file is refused here and no worker changes); SIGUSR1 reopens the audit file;
 *   SIGTERM/SIGINT: every worker stops accepting and drains for `shutdownGrace`, then the
 *   primary exits 0.
 * Log lines carry `role: primary`; once every worker is up it logs one `listening` line per
 * listener, like a single process does (each worker logs its own as well).
 */
import { lifecycleLogger } from '../log/lifecycle.ts';
import cluster, { type Worker } from 'node:cluster';
import { runtimeProblems } from '../app.ts';
import { startAdminServer, type AdminServer, type SessionView } from '../admin/server.ts';
import { createAuditSink, type AuditSink } from '../audit/sink.ts';
import { formatProblems, loadConfigFile, locateProblems } from '../config/load.ts';
import type { GatewayConfig, Problem } from '../config/schema.ts';
import { checkTlsMaterial, loadTlsMaterial } from '../config/tls-material.ts';
import { createRootLogger, type RootLogger } from '../log/logger.ts';
import { ClusterMetrics } from '../metrics/cluster-metrics.ts';
import { createCounterStore, type CounterStore } from '../policy/counter-store.ts';
import type { Logger } from '../util/logger.ts';
import { IpcPeer } from './ipc.ts';
import type { AuditNote, ConfigReply, ConnAcquire, ConnRelease, HealthReply, ReadyNote, ReloadReply } from './messages.ts';
import { runStoreBatch, SharedConnectionCounts } from './shared-counters.ts';

/** Deaths within DEATH_WINDOW_MS that make the primary give up. */
const MAX_DEATHS = 5;
const DEATH_WINDOW_MS = 10_000;
/** Workers that died before any worker was ever ready, in a row. */
const MAX_START_FAILURES = 3;
const RESTART_BASE_MS = 100;
const RESTART_MAX_MS = 5_000;
/** How long the admin endpoint waits for each worker's answer. */
const ADMIN_ASK_MS = 3_000;
const RELOAD_ASK_MS = 30_000;
/** Past shutdownGrace, how long workers get to close before SIGKILL. */
const STOP_EXTRA_MS = 10_000;

interface Entry {
  readonly worker: Worker;
  readonly pid: number;
  readonly peer: IpcPeer;
  /** The config generation this worker runs. */
  generation: number;
  ready: boolean;
  listeners: ReadyNote['listeners'];
}

export async function runCluster(file: string, config: GatewayConfig, workers: number): Promise<number> {
  const root = createRootLogger(config.logging, undefined, { sharedStdout: true });
  return new ClusterPrimary(file, config, workers, root).run();
}

/** What a worker runs: the admin endpoint is the primary's. */
function workerConfig(config: GatewayConfig): GatewayConfig {
  return { ...config, admin: { ...config.admin, port: null } };
}

class ClusterPrimary {
  private readonly log: Logger;
  private readonly entries = new Map<number, Entry>();
  private readonly counts = new SharedConnectionCounts();
  private readonly metrics = new ClusterMetrics(() => this.readyEntries().length);
  private store!: CounterStore;
  private audit!: AuditSink;
  private admin: AdminServer | null = null;
  private generation = 1;
  private deaths: number[] = [];
  private startFailures = 0;
  private everReady = false;
  private announced = false;
  private stopping = false;
  private reloading: Promise<void> = Promise.resolve();
  private finish: (code: number) => void = () => undefined;

  constructor(
    private readonly file: string,
    private config: GatewayConfig,
    private readonly workers: number,
    private readonly root: RootLogger,
  ) {
    this.log = root.child({ role: 'primary' });
  }

  async run(): Promise<number> {
    // Checked once here: a config every worker would refuse must not become a restart loop.
    const problems = runtimeProblems(this.config);
    if (problems.length > 0) {
      for (const p of problems) this.log.error({ event: 'start-refused' }, p);
      return this.bail(1);
    }
    try {
      await loadTlsMaterial(this.config.tls, this.log); // generates the self-signed pair once, before workers race for it
      this.audit = await createAuditSink(this.config.logging, {
        key: process.env.POP3GW_AUDIT_KEY ?? null, log: this.log, onError: () => this.metrics.auditError(),
      });
      this.store = createCounterStore('memory', this.log);
      await this.startAdmin(this.config);
    } catch (err) {
      this.log.error({ event: 'start-failed', err: (err as Error).message }, 'gateway failed to start');
      await this.audit?.close();
      return this.bail(1);
    }
    if (this.config.listeners.some((l) => l.port === 0)) {
      this.log.warn({ event: 'config-warning' }, 'a listener has port 0: with several workers each worker gets a port of its own');
    }
    const done = new Promise<number>((resolve) => (this.finish = resolve));
    this.installSignals();
    for (let i = 0; i < this.workers; i++) this.fork();
    this.log.info({ event: 'cluster', workers: this.workers, config: this.file }, 'starting workers');
    return done;
  }

  private bail(code: number): number {
    this.root.flush();
    return code;
  }

  private installSignals(): void {
    process.on('SIGHUP', () => {
      this.reloading = this.reloading.then(() => this.reload()).catch((err: unknown) => {
        this.log.error({ event: 'reload-rejected', err: (err as Error).message }, 'reload failed');
      });
    });
    process.on('SIGUSR1', () => this.audit.reopen());
    process.on('SIGTERM', () => void this.shutdown('SIGTERM', 0));
    process.on('SIGINT', () => void this.shutdown('SIGINT', 0));
    process.on('uncaughtException', (err) => {
      this.log.error({ event: 'uncaught-exception', err: err.stack }, 'uncaught exception');
    });
  }

  private fork(): void {
    const worker = cluster.fork();
    const pid = worker.process.pid ?? 0;
    const peer = new IpcPeer((message, done) => {
      if (!worker.isConnected()) return done(new Error('worker disconnected'));
      worker.send(message as object, (err: Error | null) => done(err ?? null));
    });
    const entry: Entry = { worker, pid, peer, generation: this.generation, ready: false, listeners: {} };
    this.entries.set(worker.id, entry);
    const id = worker.id;
    peer
      .handle('config', (): ConfigReply => {
        entry.generation = this.generation;
        return { config: workerConfig(this.config), generation: this.generation };
      })
      .handle('store-batch', (body) => runStoreBatch(this.store, body))
      .handle('conn-acquire', (body) => this.counts.acquire(id, body as ConnAcquire))
      .handle('audit-flush', () => this.audit.flush())
      .onNote('conn-release', (body) => this.counts.release(id, (body as ConnRelease).slot))
      .onNote('audit', (body) => this.audit.write((body as AuditNote).fields))
      .onNote('ready', (body) => this.onReady(entry, body as ReadyNote));
    worker.on('message', (m: unknown) => peer.receive(m));
    worker.on('exit', (code: number | null, signal: string | null) => this.onExit(entry, code, signal));
    worker.on('error', (err: Error) => this.log.warn({ event: 'worker-error', worker: id, pid, err: err.message }, 'worker channel error'));
    this.log.info({ event: 'worker-started', worker: id, pid }, 'worker started');
  }

  private onReady(entry: Entry, note: ReadyNote): void {
    entry.ready = true;
    entry.listeners = note.listeners;
    this.everReady = true;
    this.startFailures = 0;
    this.log.info({ event: 'worker-ready', worker: entry.worker.id, pid: entry.pid }, 'worker ready');
    if (entry.generation < this.generation) void this.reloadWorker(entry).then((r) => this.logReload([r]));
    if (!this.announced && this.readyEntries().length >= this.workers) {
      this.announced = true;
      for (const l of this.config.listeners) {
        const a = entry.listeners[l.name] ?? { host: l.host, port: l.port };
        lifecycleLogger(this.log).info({ event: 'listening', listener: l.name, host: a.host, port: a.port, tls: l.tls, workers: this.workers }, 'listening');
      }
    }
  }

  private onExit(entry: Entry, code: number | null, signal: string | null): void {
    const id = entry.worker.id;
    this.entries.delete(id);
    entry.peer.close('worker exited');
    const freed = this.counts.releaseWorker(id);
    if (this.stopping) {
      this.log.info({ event: 'worker-stopped', worker: id, pid: entry.pid, code, signal }, 'worker stopped');
      if (this.entries.size === 0) void this.finishStop();
      return;
    }
    const now = Date.now();
    this.deaths = this.deaths.filter((t) => now - t < DEATH_WINDOW_MS);
    this.deaths.push(now);
    if (!entry.ready && !this.everReady) this.startFailures += 1;
    this.log.warn({ event: 'worker-exit', worker: id, pid: entry.pid, code, signal, freedConnections: freed }, 'worker died');
    if (this.deaths.length >= MAX_DEATHS || this.startFailures >= MAX_START_FAILURES) {
      this.log.error(
        { event: 'workers-failing', deaths: this.deaths.length, windowMs: DEATH_WINDOW_MS, startFailures: this.startFailures },
        this.startFailures >= MAX_START_FAILURES
          ? `workers fail to start (${this.startFailures} in a row): giving up`
          : `workers keep dying (${this.deaths.length} within ${DEATH_WINDOW_MS / 1000} s): giving up`,
      );
      void this.shutdown('workers-failing', 1);
      return;
    }
    const delay = Math.min(RESTART_BASE_MS * 2 ** (this.deaths.length - 1), RESTART_MAX_MS);
    this.metrics.workerRestarted();
    this.log.info({ event: 'worker-restart', inMs: delay }, 'starting a new worker');
    setTimeout(() => {
      if (!this.stopping) this.fork();
    }, delay);
  }

  private readyEntries(): Entry[] {
    return [...this.entries.values()].filter((e) => e.ready);
  }

  /** Asks every ready worker; workers that fail or are too slow are left out. */
  private async ask<T>(type: string, body: unknown, timeoutMs = ADMIN_ASK_MS): Promise<Array<{ entry: Entry; value: T }>> {
    const ready = this.readyEntries();
    const answers = await Promise.allSettled(ready.map((e) => e.peer.request<T>(type, body, timeoutMs)));
    const out: Array<{ entry: Entry; value: T }> = [];
    answers.forEach((a, i) => {
      if (a.status === 'fulfilled') out.push({ entry: ready[i]!, value: a.value });
      else this.log.warn({ event: 'worker-no-answer', pid: ready[i]!.pid, request: type, err: String(a.reason) }, 'worker did not answer');
    });
    return out;
  }

  private async startAdmin(config: GatewayConfig): Promise<void> {
    if (config.admin.port === null) return;
    this.admin = await startAdminServer(config.admin, {
      metricsText: async () => this.metrics.text((await this.ask<unknown>('metrics', null)).map((a) => a.value)),
      sessions: {
        list: async () => (await this.ask<SessionView[]>('sessions', null)).flatMap((a) => a.value),
        kick: async (id) => (await this.ask<boolean>('kick', { id })).some((a) => a.value === true),
      },
      health: async () => {
        const answers = await this.ask<HealthReply>('health', null);
        const workers = answers.map((a) => ({ ok: a.value.ok, ...a.value.details }));
        const ok = !this.stopping && answers.length >= this.workers && answers.every((a) => a.value.ok);
        return { ok, details: { workers, expected: this.workers, stopping: this.stopping } };
      },
      log: this.log,
    });
    lifecycleLogger(this.log).info({ event: 'listening', listener: 'admin', host: config.admin.host, port: this.admin.port }, 'admin endpoint listening');
  }

  private async reload(): Promise<void> {
    const next = await loadConfigFile(this.file);
    if (!next.ok) {
      this.log.error({ event: 'reload-rejected', problems: next.problems }, `reload rejected, keeping the running config:\n${formatProblems(this.file, next.problems)}`);
      return;
    }
    const problems: Problem[] = [...(await checkTlsMaterial(next.config.tls))];
    for (const p of runtimeProblems(next.config)) problems.push({ path: 'listeners', message: p, expected: 'a configuration that keeps passwords off the network' });
    if (problems.length > 0) {
      const located = await locateProblems(this.file, problems);
      this.log.error({ event: 'reload-rejected', problems: located }, `reload rejected, keeping the running config:\n${formatProblems(this.file, located)}`);
      return;
    }
    const old = this.config;
    if (JSON.stringify(old.workers) !== JSON.stringify(next.config.workers)) {
      this.log.warn({ event: 'reload' }, 'a change of `workers` takes effect after a restart');
    }
    if (old.policy.rateLimitStore !== next.config.policy.rateLimitStore || JSON.stringify(old.logging) !== JSON.stringify(next.config.logging)) {
      this.log.warn({ event: 'reload' }, 'changes to policy.rateLimitStore and logging take effect after a restart');
    }
    this.config = next.config;
    this.generation += 1;
    if (JSON.stringify(old.admin) !== JSON.stringify(next.config.admin)) {
      await this.admin?.close();
      this.admin = null;
      await this.startAdmin(next.config).catch((err: unknown) => {
        this.log.error({ event: 'admin-error', err: (err as Error).message }, 'admin endpoint could not restart');
      });
    }
    this.logReload(await Promise.all(this.readyEntries().map((e) => this.reloadWorker(e))));
  }

  private async reloadWorker(entry: Entry): Promise<{ pid: number } & ReloadReply> {
    const generation = this.generation;
    try {
      const r = await entry.peer.request<ReloadReply>('reload', { config: workerConfig(this.config), generation }, RELOAD_ASK_MS);
      if (r.ok) entry.generation = Math.max(entry.generation, generation);
      return { pid: entry.pid, ...r };
    } catch (err) {
      return { pid: entry.pid, ok: false, error: (err as Error).message };
    }
  }

  private logReload(results: Array<{ pid: number } & ReloadReply>): void {
    const failed = results.filter((r) => !r.ok);
    if (failed.length === 0) {
      this.log.info({ event: 'reload', generation: this.generation, workers: results.map((r) => r.pid) }, 'configuration reloaded');
    } else {
      this.log.error({ event: 'reload-partial', generation: this.generation, failed }, 'some workers kept their previous config');
    }
  }

  private async shutdown(reason: string, code: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.exitCode = code;
    const graceMs = this.config.shutdownGrace;
    this.log.info({ event: 'stopping', reason, workers: this.entries.size, graceMs }, 'stopping workers');
    for (const e of this.entries.values()) e.worker.process.kill('SIGTERM');
    this.killTimer = setTimeout(() => {
      for (const e of this.entries.values()) {
        this.log.warn({ event: 'worker-kill', pid: e.pid }, 'worker did not stop in time: killing it');
        e.worker.process.kill('SIGKILL');
      }
    }, graceMs + STOP_EXTRA_MS);
    if (this.entries.size === 0) await this.finishStop();
  }

  private exitCode = 0;
  private killTimer: NodeJS.Timeout | undefined;
  private finished = false;

  private async finishStop(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.killTimer);
    await this.admin?.close();
    await this.audit.close();
    await this.store.close();
    this.log.info({ event: 'stopped' }, 'stopped');
    this.root.flush();
    this.finish(this.exitCode);
  }
}
