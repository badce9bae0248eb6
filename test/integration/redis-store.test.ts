/**
 * The Redis counter store against a real redis-server on loopback: two stores (as two
 * gateways) share counts; when Redis dies they keep answering from local counters and
 * say so once; when it returns on the same port they reconnect and share again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCounterStore, type CounterStore } from '../../src/policy/counter-store.ts';
import { captureLogger } from '../unit/policy/log-sink.ts';

const REDIS = '/usr/bin/redis-server';

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no'];
  const proc = spawn(REDIS, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 5_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    proc.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited with ${code}:\n${output}`));
    });
  });
  return proc;
}

/** Kills by PID (SIGKILL: an outage, not a shutdown) and waits for the exit. */
async function killRedis(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  process.kill(proc.pid!, 'SIGKILL');
  await exited;
}

async function waitFor(what: string, cond: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!existsSync(REDIS))('Redis counter store', () => {
  let dir = '';
  let port = 0;
  let redis: ChildProcess | null = null;
  let a: CounterStore;
  let b: CounterStore;
  const capture = captureLogger();
  const said = (msg: string): number => capture.lines.filter((l) => l.msg === msg).length;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pop3gw-redis-'));
    port = await freePort();
    redis = await startRedis(port, dir);
    const url = `redis://127.0.0.1:${port}`;
    const opts = { retryMaxDelayMs: 100, commandTimeoutMs: 500 };
    a = createCounterStore(url, capture.log, opts);
    b = createCounterStore(url, capture.log.child({ gateway: 'b' }), opts);
    await waitFor('both stores connected', () => !a.degraded && !b.degraded);
  });

  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    if (redis) await killRedis(redis);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('shares counts and blocks between two stores, as between two gateways', async () => {
    expect(a.kind).toBe('redis');
    expect(await a.consume('auth:ip:198.51.100.1', 60_000)).toBe(1);
    expect(await b.consume('auth:ip:198.51.100.1', 60_000)).toBe(2);
    expect(await a.consume('auth:ip:198.51.100.1', 60_000, 3)).toBe(5);
    expect(await b.get('auth:ip:198.51.100.1', 60_000)).toBe(5);

    await a.block('auth:user:x', 30_000);
    const left = await b.blockedFor('auth:user:x');
    expect(left).toBeGreaterThan(29_000);
    expect(left).toBeLessThanOrEqual(30_000);

    await b.reset('auth:user:x');
    expect(await a.blockedFor('auth:user:x')).toBe(0);
  });

  it('rounds a sub-second window up to a second instead of keeping the key forever', async () => {
    expect(await a.consume('short', 200)).toBe(1);
    expect(await b.consume('short', 200)).toBe(2);
    await new Promise((r) => setTimeout(r, 1_100));
    expect(await a.get('short', 200)).toBe(0);
  });

  it('keeps counting on local counters when Redis goes away, and logs it once', async () => {
    expect(said('redis unavailable, using local counters')).toBe(0);
    await killRedis(redis!);
    redis = null;
    await waitFor('store A to notice', () => a.degraded);

    // Each store now counts alone, and answers at once.
    const t0 = Date.now();
    expect(await a.consume('during-outage', 60_000)).toBe(1);
    expect(await a.consume('during-outage', 60_000)).toBe(2);
    expect(await b.consume('during-outage', 60_000)).toBe(1);
    expect(await a.get('during-outage', 60_000)).toBe(2);
    expect(Date.now() - t0).toBeLessThan(400);

    // A lockout set now is kept locally.
    await a.block('locked-during-outage', 60_000);
    expect(await a.blockedFor('locked-during-outage')).toBeGreaterThan(0);

    // Several failed reconnects later, still one line per store.
    await new Promise((r) => setTimeout(r, 400));
    await waitFor('store B to notice', () => b.degraded);
    expect(said('redis unavailable, using local counters')).toBe(2);
    const line = capture.lines.find((l) => l.msg === 'redis unavailable, using local counters')!;
    expect(line.level).toBe('warn');
    expect(line.obj.redis).toBe(`127.0.0.1:${port}`);
  });

  it('reconnects when Redis is back on the same port and shares counts again', async () => {
    redis = await startRedis(port, dir);
    await waitFor('both stores back', () => !a.degraded && !b.degraded);
    expect(said('redis back')).toBe(2);

    expect(await a.consume('after-outage', 60_000)).toBe(1);
    expect(await b.consume('after-outage', 60_000)).toBe(2);
    // The lockout set during the outage still holds on the store that set it.
    expect(await a.blockedFor('locked-during-outage')).toBeGreaterThan(0);
  });

  it('never writes the password of a redis URL to the log', async () => {
    const { log, lines } = captureLogger();
    const s = createCounterStore(`redis://:sup3r-secret@127.0.0.1:${await freePort()}`, log, { retryMaxDelayMs: 50 });
    await waitFor('the failed connection to be logged', () => lines.length > 0);
    await s.close();
    expect(JSON.stringify(lines)).not.toContain('sup3r-secret');
  });
});
