import fs from 'node:fs';
import net from 'node:net';
import { makeTempDir, spawnServer, stopChild } from './child-processes.ts';
import { freePort } from './ports.ts';

/** A throw-away redis-server on 127.0.0.1: no persistence, own folder, stopped by PID. */

export interface RedisInstance {
  host: '127.0.0.1';
  port: number;
  url: string;
  pid: number;
  dir: string;
  stop(): Promise<void>;
}

const REDIS = process.env.POP3GW_REDIS_BIN ?? '/usr/bin/redis-server';

function ping(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => done(false), timeoutMs);
    let buf = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

export async function startRedis(): Promise<RedisInstance> {
  let lastError: unknown = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce();
    } catch (err) {
      lastError = err;
      if (!/Address already in use/i.test(String(err))) break;
    }
  }
  throw lastError;
}

async function startOnce(): Promise<RedisInstance> {
  const dir = makeTempDir('redis');
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
  const port = await freePort();
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--protected-mode', 'yes',
    '--save', '',
    '--appendonly', 'no',
    '--dir', dir,
    '--daemonize', 'no',
    '--logfile', '',
    '--loglevel', 'warning',
  ];
  const child = spawnServer(REDIS, args);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  let dead = false;
  child.once('exit', () => (dead = true));
  let spawnError: Error | null = null;
  child.once('error', (err) => (spawnError = err));

  const deadline = Date.now() + 5000;
  let ready = false;
  while (!ready && !dead && spawnError === null && Date.now() < deadline) {
    ready = await ping(port, 500);
    if (!ready) await new Promise((r) => setTimeout(r, 20));
  }
  if (!ready) {
    await stopChild(child, 'SIGTERM', 1000);
    removeDir();
    throw new Error(`startRedis failed (${spawnError ? String(spawnError) : dead ? 'redis-server exited' : 'timeout'}): ${output}`);
  }

  let stopped: Promise<void> | null = null;
  return {
    host: '127.0.0.1',
    port,
    url: `redis://127.0.0.1:${port}`,
    pid: child.pid!,
    dir,
    stop() {
      stopped ??= (async () => {
        await stopChild(child, 'SIGTERM', 3000);
            removeDir();
      })();
      return stopped;
    },
  };
}
