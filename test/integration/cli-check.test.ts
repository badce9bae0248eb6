/**
 * `npm start -- --config FILE --check` (node --import tsx src/cli.ts --config FILE --check):
 * exit 0 on a good config, 2 with every problem as `FILE:LINE path: ...; expected ...`.
 * A missing cert+key pair is fine (start generates one); a broken one is a problem.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert, type CertFiles } from '../harness/certs.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface CheckResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function check(file: string): Promise<CheckResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--config', file, '--check'], { cwd: ROOT, timeout: 30_000 },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr }));
  });
}

/** Lines of `--check` output as { line, path } pairs, for lines of the form `FILE:LINE path: ...`. */
function located(file: string, stderr: string): Array<{ line: number; path: string }> {
  return stderr.split('\n').filter((l) => l !== '').map((l) => {
    expect(l.startsWith(`${file}:`), `not located: ${l}`).toBe(true);
    const m = /^:(\d+) (\S+): .+; expected .+$/.exec(l.slice(file.length));
    expect(m, `malformed: ${l}`).not.toBeNull();
    return { line: Number(m![1]), path: m![2]! };
  });
}

const GOOD = (cert: string, key: string) => [
  'listeners:',
  '  - name: pop3s',
  '    host: 127.0.0.1',
  '    port: 1995',
  '    tls: implicit',
  '  - { name: pop3, host: 127.0.0.1, port: 1110, tls: starttls }',
  'tls:',
  `  cert: ${cert}`,
  `  key: ${key}`,
  'backend:',
  '  host: 127.0.0.1',
  '  port: 2110',
  'logging: { audit: null }',
  '',
].join('\n');

describe('--check', () => {
  let dir: string;
  let pair: CertFiles;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3gw-check-'));
    pair = await makeCert({ commonName: 'localhost' });
    fs.copyFileSync(pair.certFile, path.join(dir, 'good.crt'));
    fs.copyFileSync(pair.keyFile, path.join(dir, 'good.key'));
    // A key of its own, so it cannot belong to good.crt.
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(path.join(dir, 'other.key'), other.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    fs.writeFileSync(path.join(dir, 'garbage.crt'), 'this is not a certificate\n');
    fs.mkdirSync(path.join(dir, 'a-folder.crt'));
  });

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const write = (name: string, text: string): string => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };

  it('exits 0 on a good config whose certificate pair loads (relative paths from the file\'s folder)', async () => {
    const file = write('good.yaml', GOOD('good.crt', 'good.key'));
    const r = await check(file);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${file}: ok\n`);
    expect(r.code).toBe(0);
  });

  it('exits 0 when both cert and key are missing, and generates nothing itself', async () => {
    const file = write('fresh.yaml', GOOD('certs/server.crt', 'certs/server.key'));
    const r = await check(file);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(dir, 'certs'))).toBe(false);
  });

  it('exits 2 on a config with several problems and prints each with its path and line', async () => {
    const file = write('many.yaml', [
      'listeners:', //                                   1
      '  - name: pop3s', //                              2
      '    host: 127.0.0.1', //                          3
      '    port: 99500', //                              4
      '    tls: implicit', //                            5
      '  - name: pop3s', //                              6
      '    host: 127.0.0.1', //                          7
      '    port: 1110', //                               8
      '    tls: startls', //                             9
      'backend:', //                                     10
      '  host: 127.0.0.1', //                            11
      '  port: 2110', //                                 12
      '  conectTimeout: 5s', //                          13
      'policy:', //                                      14
      '  auth:', //                                      15
      '    window: 15 minutes', //                       16
      '  commands:', //                                  17
      '    allow: [USER, PASS, XYZZY]', //               18
      'limits:', //                                      19
      '  maxMultiline: lots', //                         20
      'workers: 0', //                                   21
      '',
    ].join('\n'));
    const r = await check(file);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(located(file, r.stderr)).toEqual([
      { line: 4, path: 'listeners[0].port' },
      { line: 6, path: 'listeners[1].name' },
      { line: 9, path: 'listeners[1].tls' },
      { line: 13, path: 'backend.conectTimeout' },
      { line: 16, path: 'policy.auth.window' },
      { line: 18, path: 'policy.commands.allow[2]' },
      { line: 20, path: 'limits.maxMultiline' },
      { line: 21, path: 'workers' },
    ]);
    expect(r.stderr).toContain('did you mean "connectTimeout"');
    expect(r.stderr).toContain('found "15 minutes"; expected a duration');
  });

  it('exits 2 on certificate pairs that are mismatched, unreadable or half missing, each with its path and line', async () => {
    const file = write('broken-tls.yaml', [
      'listeners:', //                                          1
      '  - { name: pop3s, host: 127.0.0.1, port: 1995, tls: implicit }', // 2
      'tls:', //                                                3
      '  cert: good.crt', //                                    4
      '  key: other.key', //                                    5
      '  sni:', //                                              6
      '    folder.example.org:', //                             7
      '      cert: a-folder.crt', //                            8
      '      key: good.key', //                                 9
      '    garbage.example.org:', //                            10
      '      cert: garbage.crt', //                             11
      '      key: good.key', //                                 12
      '    half.example.org:', //                               13
      '      cert: good.crt', //                                14
      '      key: missing.key', //                              15
      'backend: { host: 127.0.0.1, port: 2110 }', //            16
      '',
    ].join('\n'));
    const r = await check(file);
    expect(r.code).toBe(2);
    expect(located(file, r.stderr)).toEqual([
      { line: 5, path: 'tls.key' },
      { line: 8, path: 'tls.sni["folder.example.org"].cert' },
      { line: 11, path: 'tls.sni["garbage.example.org"].cert' },
      { line: 15, path: 'tls.sni["half.example.org"].key' },
    ]);
    const lines = r.stderr.split('\n');
    expect(lines[0]).toContain('does not belong to the certificate');
    expect(lines[1]).toContain('cannot read');
    expect(lines[2]).toContain('not a PEM certificate');
    expect(lines[3]).toContain('does not exist');
  });

  it('exits 2 on a plaintext listener open to the network, which start would refuse', async () => {
    const file = write('open.yaml', [
      'listeners:',
      '  - { name: pop3, host: 0.0.0.0, port: 1110, tls: none }',
      'tls: { cert: good.crt, key: good.key }',
      'backend: { host: 127.0.0.1, port: 2110 }',
      '',
    ].join('\n'));
    const r = await check(file);
    expect(r.code).toBe(2);
    expect(located(file, r.stderr)).toEqual([{ line: 1, path: 'listeners' }]);
    expect(r.stderr).toContain('requireTls: false');
  });
});
