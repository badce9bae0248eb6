/**
 * `workers: N | auto`: the primary forks N workers that share the listening
 * sockets (node:cluster), replaces a worker that dies, and passes SIGHUP and
 * SIGTERM/SIGINT on to every worker.
 */
import cluster from 'node:cluster';
import type { GatewayConfig } from '../config/schema.ts';
import { createRootLogger } from '../log/logger.ts';

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

export function runCluster(file: string, config: GatewayConfig, workers: number): Promise<number> {
  const log = createRootLogger(config.logging.level).child({ role: 'primary' });
  let stopping = false;
  const fork = (): void => {
    const w = cluster.fork();
    w.on('exit', (code, signal) => {
      if (stopping) return;
      log.warn({ event: 'worker-exit', worker: w.id, code, signal }, 'worker died; starting a new one');
      setTimeout(fork, 250);
    });
  };
  for (let i = 0; i < workers; i++) fork();
  log.info({ event: 'cluster', workers, config: file }, 'started workers');
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
  });
  process.on('SIGUSR1', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGUSR1');
  });
  return new Promise((done) => {
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'signal', signal }, 'stopping workers');
      const live = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
      if (live.length === 0) done(0);
      let left = live.length;
      for (const w of live) {
        w!.once('exit', () => {
          if (--left === 0) done(0);
        });
        w!.process.kill(signal);
      }
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGTERM'));
  });
}
