/**
 * TLS before passwords at start-up (issue 3): a `tls: none` listener off loopback and outside
 * policy.trustedNetworks would take passwords in plaintext, so the gateway refuses to start
 * (Gateway.start throws, the CLI exits non-zero, --check exits 2), unless `requireTls: false`
 * is written on that listener (then it starts and warns). Nothing here serves traffic: the
 * refusals happen before any socket is bound, and the one start on 0.0.0.0 takes no connection.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway, GatewayStartError, runtimeProblems } from '../../src/app.ts';
import { validateConfig } from '../../src/config/validate.ts';
import type { GatewayConfig } from '../../src/config/schema.ts';
import { makeCert, type CertFiles } from '../harness/certs.ts';
import { runProcess } from '../harness/child-processes.ts';
import { captureLogs } from '../harness/log-capture.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
type Raw = Record<string, unknown>;

describe('a tls: none listener that is not on loopback', () => {
  let dir: string;
  let cert: CertFiles;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3gw-policy-startup-'));
    cert = await makeCert({ commonName: 'localhost' });
  });

  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const raw = (listener: Raw, policy: Raw = {}): Raw => ({
    listeners: [{ name: 'open', port: 0, tls: 'none', ...listener }],
    tls: { cert: cert.certFile, key: cert.keyFile },
    backend: { host: '127.0.0.1', port: 1 },
    policy,
    logging: { level: 'info', audit: null },
    admin: { port: null },
  });

  const config = (r: Raw): GatewayConfig => {
    const v = validateConfig(r, { baseDir: dir, file: null, env: {} });
    if (!v.ok) throw new Error(JSON.stringify(v.problems));
    return v.config;
  };

  const cli = (r: Raw, name: string, check: boolean) => {
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(file, stringify(r));
    return runProcess(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--config', file, ...(check ? ['--check'] : [])], { cwd: ROOT, timeoutMs: 20_000 });
  };

  it('makes Gateway.start throw, naming the listener and the way out', async () => {
    const c = config(raw({ host: '0.0.0.0' }));
    expect(runtimeProblems(c)).toHaveLength(1);
    const err = await Gateway.start(c, { logger: pino({ level: 'silent' }) }).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(GatewayStartError);
    const problems = (err as GatewayStartError).problems;
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/listeners\[0\] \(open\): tls: none on 0\.0\.0\.0/);
    expect(problems[0]).toMatch(/requireTls: false/);
  });

  it('is accepted on a host inside policy.trustedNetworks, and on loopback', () => {
    expect(runtimeProblems(config(raw({ host: '192.0.2.10' }, { trustedNetworks: ['192.0.2.0/24'] })))).toEqual([]);
    expect(runtimeProblems(config(raw({ host: '192.0.2.10' })))).toHaveLength(1);
    expect(runtimeProblems(config(raw({ host: '127.0.0.1' })))).toEqual([]);
    expect(runtimeProblems(config(raw({ host: '::1' })))).toEqual([]);
  });

  it('starts with a warning when requireTls: false is written on it', async () => {
    const c = config(raw({ host: '0.0.0.0', requireTls: false }));
    expect(runtimeProblems(c)).toEqual([]);
    const logs = captureLogs();
    const gw = await Gateway.start(c, { logger: pino({ level: 'info' }, logs.stream), ephemeralPorts: true });
    try {
      const warning = logs.lines().find((l) => l.event === 'config-warning');
      expect(warning?.level).toBe(40);
      expect(String(warning?.msg)).toMatch(/listeners\[0\] \(open\): requireTls: false, passwords may be sent in plaintext/);
    } finally {
      await gw.stop(100);
    }
  });

  it('makes --check exit 2 with the reason, and 0 once requireTls: false is written', async () => {
    const bad = await cli(raw({ host: '0.0.0.0' }), 'bad-check', true);
    expect(bad.code).toBe(2);
    expect(bad.stderr.toString()).toMatch(/tls: none on 0\.0\.0\.0/);
    expect(bad.stderr.toString()).toMatch(/requireTls: false/);
    const ok = await cli(raw({ host: '0.0.0.0', requireTls: false }), 'ok-check', true);
    expect(ok.stderr.toString()).toBe('');
    expect(ok.code).toBe(0);
  });

  it('makes the CLI exit non-zero without listening, and log why', async () => {
    const r = await cli(raw({ host: '0.0.0.0' }), 'bad-start', false);
    expect(r.code).not.toBe(0);
    expect(r.code).not.toBeNull();
    const lines = r.stdout.toString().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Raw);
    expect(lines.some((l) => l.event === 'listening')).toBe(false);
    const refused = lines.find((l) => l.event === 'start-refused');
    expect(String(refused?.msg)).toMatch(/listeners\[0\] \(open\): tls: none on 0\.0\.0\.0/);
  });
});
