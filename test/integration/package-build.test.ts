/**
 * The production build as an operator gets it: `npm pack` (its `prepack` compiles src/ to
 * dist/ with tsconfig.build.json), the tarball installed into an empty folder, then the `bin`
 * it declares run through `npx pop3-gateway`: `--check` exits 0 on a good config and 2 on a
 * bad one, and the compiled gateway, started from the installed package, relays a login and
 * a RETR to a real Dovecot. Dependencies come from the npm cache (the registry if missing).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert, type CertFiles } from '../harness/certs.ts';
import { makeTempDir, runProcess, type RunResult } from '../harness/child-processes.ts';
import { startCliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { gatewayNodeFlags } from '../harness/node-flags.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const NPM = 'npm';

const out = (r: RunResult): string => `exit ${r.code}\nstdout: ${r.stdout.toString()}\nstderr: ${r.stderr.toString()}`;

describe('the packed production build', () => {
  let packDir: string;
  let installDir: string;
  let tarball: string;
  let cert: CertFiles;
  let dovecot: DovecotInstance | null = null;

  beforeAll(async () => {
    packDir = makeTempDir('pack');
    installDir = makeTempDir('install');
    cert = await makeCert({ commonName: 'localhost' });
    const pack = await runProcess(NPM, ['pack', '--pack-destination', packDir], { cwd: ROOT, timeoutMs: 120_000 });
    expect(pack.code, out(pack)).toBe(0);
    const name = fs.readdirSync(packDir).find((f) => f.endsWith('.tgz'));
    expect(name, 'npm pack wrote no tarball').toBeDefined();
    tarball = path.join(packDir, name!);
    fs.writeFileSync(path.join(installDir, 'package.json'), '{ "name": "pack-test", "private": true }\n');
    const install = await runProcess(NPM, ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball],
      { cwd: installDir, timeoutMs: 180_000 });
    expect(install.code, out(install)).toBe(0);
  }, 300_000);

  afterAll(async () => {
    await dovecot?.stop();
  });

  const writeConfig = (name: string, body: string): string => {
    const file = path.join(installDir, name);
    fs.writeFileSync(file, body);
    return file;
  };
  const config = (backendPort: number, pop3sPort: number): string => [
    'listeners:',
    `  - { name: pop3s, host: 127.0.0.1, port: ${pop3sPort}, tls: implicit }`,
    'tls:',
    `  cert: ${cert.certFile}`,
    `  key: ${cert.keyFile}`,
    `backend: { host: 127.0.0.1, port: ${backendPort} }`,
    'logging: { level: info, audit: null }',
    'admin: { port: null }',
    '',
  ].join('\n');

  it('ships the compiled JavaScript and the example config, and no TypeScript source', async () => {
    const list = await runProcess('tar', ['-tzf', tarball]);
    const files = list.stdout.toString().split('\n').filter((l) => l !== '');
    expect(files).toContain('package/dist/src/cli.js');
    expect(files).toContain('package/gateway.yaml');
    expect(files.filter((f) => f.endsWith('.ts'))).toEqual([]);
    const cli = fs.readFileSync(path.join(installDir, 'node_modules', 'pop3-gateway', 'dist', 'src', 'cli.js'), 'utf8');
    // The bin runs with the node flags the systemd unit and `npm start` use (README Benchmark).
    expect(cli.startsWith(`#!/usr/bin/env -S node ${gatewayNodeFlags().join(' ')}\n`)).toBe(true);
    expect(gatewayNodeFlags()).toEqual(['--single-threaded-gc', '--min-semi-space-size=8', '--no-memory-reducer']);
    expect(cli).not.toMatch(/from '\.[^']*\.ts'/);
  });

  it('npx pop3-gateway --check exits 0 on a good config', async () => {
    const file = writeConfig('good.yaml', config(1110, 1995));
    const r = await runProcess('npx', ['--no-install', 'pop3-gateway', '--config', file, '--check'], { cwd: installDir, timeoutMs: 40_000 });
    expect(r.code, out(r)).toBe(0);
  });

  it('npx pop3-gateway --check exits 2 and names the key on a bad config', async () => {
    const file = writeConfig('bad.yaml', config(1110, 1995).replace('tls: implicit', 'tls: sometimes'));
    const r = await runProcess('npx', ['--no-install', 'pop3-gateway', '--config', file, '--check'], { cwd: installDir, timeoutMs: 40_000 });
    expect(r.code, out(r)).toBe(2);
    expect(r.stderr.toString()).toMatch(/bad\.yaml:\d+ listeners\[0\]\.tls: /);
  });

  it('the installed, compiled gateway relays a login and a RETR to Dovecot', async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'Subject: packed\r\n\r\nfrom the tarball\r\n');
    const dir = makeTempDir('packrun');
    const cli = fs.realpathSync(path.join(installDir, 'node_modules', '.bin', 'pop3-gateway'));
    const gw = await startCliGateway(dir, {
      listeners: [{ name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' }],
      tls: { cert: cert.certFile, key: cert.keyFile },
      backend: { host: '127.0.0.1', port: dovecot.port },
      logging: { level: 'info', audit: null },
      admin: { port: null },
    }, { entry: [cli], cwd: installDir });
    try {
      const client = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
      await client.login('alice', 'alice-secret');
      const retr = await client.multiline('RETR 1');
      expect(retr.status.startsWith('+OK')).toBe(true);
      expect(retr.body!.toString()).toContain('from the tarball');
      await client.quit();
    } finally {
      await gw.stop();
    }
  });
});
