/**
 * A rejected secret is never echoed: the same bad config (a too-short admin token and Redis
 * URLs with passwords) through the three outputs an operator sees — `--check`, a refused
 * start, and the `reload-rejected` log line after SIGHUP — shows lengths and `***`, never
 * the secret itself.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert, type CertFiles } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { startCliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SHORT_TOKEN = 'Zq7short';
const REDIS_PASSWORD = 'Hx9redisPass';
type Rec = Record<string, unknown>;

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: ROOT, timeout: 30_000, env: { ...process.env, ...env } },
      (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('secrets in problem reports', () => {
  let dovecot: DovecotInstance;
  let dir: string;
  let cert: CertFiles;
  const good = (): Rec => ({
    listeners: [{ name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' }],
    tls: { cert: cert.certFile, key: cert.keyFile },
    backend: { host: '127.0.0.1', port: dovecot.port },
    logging: { level: 'info', audit: null },
    admin: { host: '127.0.0.1', port: 0 },
    shutdownGrace: '1s',
  });
  // The admin token is too short; the Redis URL lacks its port (so it is rejected) and carries a password.
  const bad = (): Rec => ({
    ...good(),
    admin: { host: '127.0.0.1', port: 0, token: SHORT_TOKEN },
    policy: { rateLimitStore: `redis://:${REDIS_PASSWORD}@127.0.0.1` },
  });

  beforeAll(async () => {
    dovecot = await startDovecot();
    dir = makeTempDir('redaction');
    cert = await makeCert({ commonName: 'localhost' });
  });

  afterAll(async () => {
    await dovecot?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  function expectRedacted(text: string): void {
    expect(text).not.toContain(SHORT_TOKEN);
    expect(text).not.toContain(REDIS_PASSWORD);
    expect(text).toContain(`admin.token: found <redacted, ${SHORT_TOKEN.length} characters>`);
    expect(text).toMatch(/policy\.rateLimitStore: found \\?"redis:\/\/:\*\*\*@127\.0\.0\.1\\?"/);
  }

  it('--check shows the token by its length and the Redis URL with its password masked', async () => {
    const file = path.join(dir, 'check.yaml');
    fs.writeFileSync(file, stringify(bad()));
    const r = await cli(['--config', file, '--check']);
    expect(r.code).toBe(2);
    expectRedacted(r.stderr + r.stdout);
  });

  it('a refused start prints the same redacted problems', async () => {
    const file = path.join(dir, 'start.yaml');
    fs.writeFileSync(file, stringify(bad()));
    const r = await cli(['--config', file]);
    expect(r.code).toBe(2);
    expectRedacted(r.stderr + r.stdout);
  });

  it('a too-short POP3GW_ADMIN_TOKEN is reported by its length, not echoed', async () => {
    const file = path.join(dir, 'env.yaml');
    fs.writeFileSync(file, stringify(good()));
    const r = await cli(['--config', file, '--check'], { POP3GW_ADMIN_TOKEN: SHORT_TOKEN });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`POP3GW_ADMIN_TOKEN has ${SHORT_TOKEN.length} characters`);
    expect(r.stderr + r.stdout).not.toContain(SHORT_TOKEN);
  });

  it('the reload-rejected log line after SIGHUP with the bad config redacts them too', async () => {
    const sub = path.join(dir, 'reload');
    fs.mkdirSync(sub);
    const gw = await startCliGateway(sub, good());
    try {
      gw.writeConfig(bad());
      gw.signal('SIGHUP');
      const line = await gw.logs.waitFor((l) => l.event === 'reload-rejected', 15_000);
      const text = JSON.stringify(line);
      expectRedacted(text);
      expect(gw.logs.text()).not.toContain(SHORT_TOKEN);
      expect(gw.logs.text()).not.toContain(REDIS_PASSWORD);
    } finally {
      await gw.stop();
    }
  });
});
