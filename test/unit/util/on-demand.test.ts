import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Which of the on-demand packages a fresh process has loaded after `script` (run as an ES module). */
function loadedAfter(script: string): string[] {
  const probe = `${script}
const { createRequire } = await import('node:module');
const cache = Object.keys(createRequire(import.meta.url).cache);
const names = ['node-forge', 'ioredis', 'pino-pretty', 'rate-limiter-flexible/lib/RateLimiterMongo', 'rate-limiter-flexible/lib/RateLimiterRedis.js']
  .filter((n) => cache.some((f) => f.includes(\`/node_modules/\${n}\`)));
process.stdout.write(JSON.stringify(names));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  return JSON.parse(out) as string[];
}

describe('packages loaded on demand', () => {
  it('the gateway modules (everything cli.ts imports) load without node-forge, ioredis, pino-pretty or the limiters they do not use', () => {
    const modules = ['app', 'config/load', 'config/tls-material', 'log/logger', 'cluster/primary', 'cluster/worker'];
    expect(loadedAfter(modules.map((m) => `await import('./src/${m}.ts');`).join('\n'))).toEqual([]);
  });

  it('each is loaded once it is used: a self-signed pair, a redis:// store, readable log lines', () => {
    const used = loadedAfter(`
const { buildSelfSigned } = await import('./src/config/self-signed.ts');
await buildSelfSigned('localhost');
const { createCounterStore } = await import('./src/policy/counter-store.ts');
const { createRootLogger } = await import('./src/log/logger.ts');
const log = createRootLogger({ level: 'warn', format: 'pretty' });
const store = createCounterStore('redis://127.0.0.1:1', log, { connectTimeoutMs: 50, retryMaxDelayMs: 50 });
await store.close();`);
    expect(used.sort()).toEqual(['ioredis', 'node-forge', 'pino-pretty', 'rate-limiter-flexible/lib/RateLimiterRedis.js']);
  });
});
