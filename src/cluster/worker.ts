/**
 * One worker process of `workers: N | auto`. It takes the config the primary validated
 * (not the file, which may have changed since), runs a Gateway on the shared listeners,
 * and routes what must be shared through the primary: live connection counts
 * (worker-limiter.ts), the policy counters when the store is `memory` (worker-store.ts;
 * with Redis the worker talks to Redis itself) and audit records (worker-audit.ts).
 * It answers the primary's admin questions (metrics, sessions, kick, health) and reloads.
 *
 * Signals: SIGTERM/SIGINT stop this worker gracefully (the primary sends SIGTERM; a
 * terminal's Ctrl-C reaches every process of the group). SIGHUP and SIGUSR1 are the
 * primary's business and are ignored here, so a signal sent to the whole process group
 * neither kills a worker nor reloads it twice.
 */
import cluster from 'node:cluster';
import { Gateway, GatewayStartError } from '../app.ts';
import type { GatewayConfig } from '../config/schema.ts';
import { createRootLogger } from '../log/logger.ts';
import { IpcPeer } from './ipc.ts';
import type { ConfigReply, ReloadReply, ReloadRequest } from './messages.ts';
import { IpcAuditSink } from './worker-audit.ts';
import { ClusterConnectionLimiter } from './worker-limiter.ts';
import { IpcCounterStore } from './worker-store.ts';

const CONFIG_TIMEOUT_MS = 10_000;

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export async function runWorker(): Promise<number> {
  const peer = new IpcPeer((message, done) => {
    if (process.send === undefined) return done(new Error('no IPC channel'));
    process.send(message, undefined, undefined, (err: Error | null) => done(err ?? null));
  });
  process.on('message', (m) => peer.receive(m));
  // When the primary is gone node:cluster ends this process; pending requests fail first.
  process.once('disconnect', () => peer.close('primary gone'));
  // Installed first: a signal during startup must neither kill the worker nor be lost.
  let stopRequested: string | null = null;
  let onStop = (signal: string): void => {
    stopRequested ??= signal;
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGHUP', () => undefined); // the primary reloads every worker
  process.on('SIGUSR1', () => undefined); // the primary writes the audit file

  let config: GatewayConfig;
  try {
    config = deepFreeze((await peer.request<ConfigReply>('config', null, CONFIG_TIMEOUT_MS)).config);
  } catch (err) {
    process.stderr.write(`worker ${process.pid}: no config from the primary: ${(err as Error).message}\n`);
    return 1;
  }
  if (stopRequested !== null) return 0;
  const root = createRootLogger(config.logging, undefined, { sharedStdout: true });
  const log = root.child({ role: 'worker', worker: cluster.worker?.id ?? 0 });

  let gateway: Gateway;
  try {
    gateway = await Gateway.start(config, {
      logger: log,
      counterStore: config.policy.rateLimitStore === 'memory' ? new IpcCounterStore(peer, log) : undefined,
      auditSink: config.logging.audit === null ? undefined : new IpcAuditSink(peer, log),
      connectionLimiter: (cfg, trusted, store, prefix) => new ClusterConnectionLimiter(cfg, trusted, store, prefix, peer, { log }),
    });
  } catch (err) {
    if (err instanceof GatewayStartError) for (const p of err.problems) log.error({ event: 'start-refused' }, p);
    else log.error({ event: 'start-failed', err: (err as Error).message }, 'worker failed to start');
    root.flush();
    return 1;
  }

  peer
    .handle('metrics', () => gateway.metrics.registry.getMetricsAsJSON())
    .handle('sessions', () => gateway.registry.list().map((s) => ({ ...s, worker: process.pid })))
    .handle('kick', (body) => gateway.registry.kick(String((body as { id?: unknown }).id)))
    .handle('health', async () => {
      const h = await gateway.health();
      return { ok: h.ok, details: { pid: process.pid, ...h.details } };
    })
    .handle('reload', async (body): Promise<ReloadReply> => {
      try {
        await gateway.reload(deepFreeze((body as ReloadRequest).config));
        return { ok: true };
      } catch (err) {
        log.error({ event: 'reload-rejected', err: (err as Error).message }, 'reload rejected, keeping the running config');
        return { ok: false, error: (err as Error).message };
      }
    });

  process.on('uncaughtException', (err) => {
    // One session's bug must not take down the others: log it and keep serving.
    log.error({ event: 'uncaught-exception', err: err.stack }, 'uncaught exception');
  });
  peer.notify('ready', { listeners: gateway.addresses() });

  return new Promise<number>((done) => {
    let stopping = false;
    onStop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'signal', signal }, 'stop requested');
      void gateway.stop().then(() => {
        root.flush();
        done(0);
      });
    };
    if (stopRequested !== null) onStop(stopRequested);
  });
}
