#!/usr/bin/env -S node --single-threaded-gc --min-semi-space-size=8 --no-memory-reducer
/**
 * `npm start -- [--config FILE] [--check]`: the only file that reads argv,
 * installs signal handlers and calls process.exit.
 */
import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { Gateway, GatewayStartError, runtimeProblems } from './app.ts';
import { formatProblems, loadConfigFile, locateProblems } from './config/load.ts';
import { checkTlsMaterial } from './config/tls-material.ts';
import type { GatewayConfig, Problem } from './config/schema.ts';
import { createRootLogger } from './log/logger.ts';
import { runCluster } from './cluster/primary.ts';
import { isClusterWorker, runWorker } from './cluster/worker.ts';

const USAGE = 'usage: pop3-gateway [--config FILE] [--check]';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { config: { type: 'string', short: 'c' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const file = resolve(args.values.config ?? 'gateway.yaml');
  // A worker runs the config its primary validated, not whatever the file says by now.
  if (isClusterWorker()) return runWorker();
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) {
    process.stderr.write(`${formatProblems(file, loaded.problems)}\n`);
    return 2;
  }
  if (args.values.check === true) return check(file, loaded.config);
  const workers = loaded.config.workers === 'auto' ? (await import('node:os')).availableParallelism() : loaded.config.workers;
  if (workers > 1 && !isClusterWorker()) return runCluster(file, loaded.config, workers);
  return serve(file, loaded.config);
}

/** `--check`: config, certificates and runtime safety; every problem at once. */
async function check(file: string, config: GatewayConfig): Promise<number> {
  const problems: Problem[] = [...(await checkTlsMaterial(config.tls))];
  for (const p of runtimeProblems(config)) problems.push({ path: 'listeners', message: p, expected: 'a configuration that keeps passwords off the network' });
  if (problems.length > 0) {
    process.stderr.write(`${formatProblems(file, await locateProblems(file, problems))}\n`);
    return 2;
  }
  process.stdout.write(`${file}: ok\n`);
  return 0;
}

async function serve(file: string, config: GatewayConfig): Promise<number> {
  const log = createRootLogger(config.logging);
  let gateway: Gateway;
  try {
    gateway = await Gateway.start(config, { logger: log });
  } catch (err) {
    if (err instanceof GatewayStartError) for (const p of err.problems) log.error({ event: 'start-refused' }, p);
    else log.error({ event: 'start-failed', err: (err as Error).message }, 'gateway failed to start');
    log.flush();
    return 1;
  }
  let reloading = Promise.resolve();
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => {
      const next = await loadConfigFile(file);
      if (!next.ok) {
        log.error({ event: 'reload-rejected', problems: next.problems }, `reload rejected, keeping the running config:\n${formatProblems(file, next.problems)}`);
        return;
      }
      try {
        await gateway.reload(next.config);
      } catch (err) {
        log.error({ event: 'reload-rejected', err: (err as Error).message }, 'reload rejected, keeping the running config');
      }
    });
  });
  process.on('SIGUSR1', () => gateway.reopenAudit());
  process.on('uncaughtException', (err) => {
    // One session's bug must not take down the others: log it and keep serving.
    log.error({ event: 'uncaught-exception', err: err.stack }, 'uncaught exception');
  });
  return new Promise<number>((done) => {
    const stop = (signal: string): void => {
      log.info({ event: 'signal', signal }, 'stop requested');
      void gateway.stop().then(() => {
        log.flush();
        done(0);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    // Let async stdout (pino) drain, then leave even if a client library holds a handle.
    setTimeout(() => process.exit(code), 100);
  },
  (err) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
