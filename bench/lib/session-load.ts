/**
 * Full-session load (connect + handshake, USER/PASS, STAT, QUIT, close) from a
 * worker thread, so the clients' TLS work runs on its own event loop and not
 * on the bench's. The main side calls runSessionLoad(); the same file is the
 * worker's entry point.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { RawPop3, type Endpoint } from './raw-pop3.ts';
import { percentile } from './stats.ts';

export interface SessionLoadOptions {
  endpoint: Endpoint;
  user: string;
  password: string;
  concurrency: number;
  durationMs: number;
  /**
   * Sessions started per second in all, spread evenly over the clients: each waits for its next
   * slot, and one that falls behind starts its next session at once. Without it each client
   * starts its next session as soon as one ends (a closed loop: as many as the proxy can take,
   * so a cheaper proxy also runs at a higher rate and pays fewer wake-ups per session).
   */
  ratePerSecond?: number;
}

export interface SessionLoadResult {
  sessions: number;
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
  perSecond: number;
  /** Wall time of one whole session, ms. */
  p50Ms: number;
  p99Ms: number;
  tlsProtocol: string | null;
}

type ToWorker = { type: 'go' };
type FromWorker = { type: 'ready' } | { type: 'done'; result: SessionLoadResult } | { type: 'failed'; message: string };

/** Runs the load in a worker; `onStart` / `onEnd` bracket the measured window (e.g. CPU readings). */
export function runSessionLoad(opts: SessionLoadOptions, onStart: () => void, onEnd: () => void): Promise<SessionLoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(tsWorkerBootstrap(import.meta.url), { eval: true, workerData: opts });
    let settled = false;
    const finish = (err: Error | null, result?: SessionLoadResult) => {
      if (settled) return;
      settled = true;
      void worker.terminate();
      if (err !== null) reject(err);
      else resolve(result!);
    };
    worker.on('message', (msg: FromWorker) => {
      if (msg.type === 'ready') {
        onStart();
        worker.postMessage({ type: 'go' } satisfies ToWorker);
      } else if (msg.type === 'done') {
        onEnd();
        finish(null, msg.result);
      } else {
        finish(new Error(`session load failed: ${msg.message}`));
      }
    });
    worker.on('error', (err) => finish(err));
    worker.on('exit', (code) => finish(new Error(`session load worker exited with ${code} before reporting`)));
  });
}

/**
 * Workers do not inherit the main thread's `--import tsx` hooks on Node 20, so
 * the worker registers tsx itself and then imports the TypeScript module.
 */
export function tsWorkerBootstrap(moduleUrl: string): string {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  return `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(moduleUrl)}); })`;
}

async function oneSession(opts: SessionLoadOptions): Promise<string | null> {
  const c = await RawPop3.connect(opts.endpoint, 10_000);
  try {
    await c.withTimeout(c.login(opts.user, opts.password), 10_000, 'login');
    await c.withTimeout(c.ok('STAT'), 10_000, 'STAT');
    await c.quit(10_000);
    return c.tlsProtocol;
  } finally {
    c.destroy();
  }
}

async function runLoad(opts: SessionLoadOptions): Promise<SessionLoadResult> {
  const started = performance.now();
  const deadline = started + opts.durationMs;
  const durations: number[] = [];
  const errorSamples: string[] = [];
  let errors = 0;
  let tlsProtocol: string | null = null;
  const rate = opts.ratePerSecond;
  const loop = async (_: unknown, i: number): Promise<void> => {
    // Paced: client i starts at i/rate s, then every concurrency/rate s.
    const every = rate === undefined ? 0 : (1000 * opts.concurrency) / rate;
    let next = started + (rate === undefined ? 0 : (1000 * i) / rate);
    while (performance.now() < deadline) {
      if (every > 0) {
        const wait = next - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (performance.now() >= deadline) break;
        // A client that fell more than one slot behind does not burst to catch up.
        next = Math.max(next + every, performance.now() - every);
      }
      const t0 = performance.now();
      try {
        tlsProtocol = await oneSession(opts);
        durations.push(performance.now() - t0);
      } catch (err) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push((err as Error).message);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  const elapsedMs = performance.now() - started;
  durations.sort((a, b) => a - b);
  return {
    sessions: durations.length,
    errors,
    errorSamples,
    elapsedMs,
    perSecond: durations.length / (elapsedMs / 1000),
    p50Ms: percentile(durations, 0.5),
    p99Ms: percentile(durations, 0.99),
    tlsProtocol,
  };
}

if (!isMainThread && parentPort !== null) {
  const port = parentPort;
  const opts = workerData as SessionLoadOptions;
  port.once('message', (msg: ToWorker) => {
    if (msg.type !== 'go') return;
    runLoad(opts).then(
      (result) => port.postMessage({ type: 'done', result } satisfies FromWorker),
      (err: unknown) => port.postMessage({ type: 'failed', message: String(err) } satisfies FromWorker),
    );
  });
  port.postMessage({ type: 'ready' } satisfies FromWorker);
}
