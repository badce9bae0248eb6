/**
 * `npm run audit` prints what unauthenticated clients typed: a login name carrying a C1 CSI
 * (U+009B) and a right-to-left override (U+202E), sent as a real login attempt through the
 * gateway to a real Dovecot, comes out of the table escaped, never raw.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');

function audit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const { POP3GW_AUDIT_KEY: _drop, ...env } = process.env;
    execFile(process.execPath, ['--import', 'tsx', 'src/audit-cli.ts', ...args], { cwd: ROOT, env, timeout: 20_000 },
      (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('npm run audit table output', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot();
    gw = await startTestGateway(dovecot.port);
  }, 30_000);

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('escapes C1 controls and bidi overrides from a login name instead of printing them raw', async () => {
    const name = 'mal\u009b2Jlory\u202egpj.exe';
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    c.sendRaw(Buffer.from(`USER ${name}\r\n`, 'utf8')); // UTF-8 on the wire, as a real client sends it
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect(await c.command('PASS wrong-password')).toMatch(/^-ERR/);
    await c.quit();
    const login = gw.auditLines().find((r) => r.event === 'login');
    expect(login?.user).toBe(name);

    const r = await audit(['--file', gw.auditFile, '--event', 'login']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('mal\\x9b2Jlory\\u{202e}gpj.exe');
    expect(r.stdout).not.toMatch(/[\u0080-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c\u2028\u2029]/);
    expect(r.stdout.replace(/\n/g, '')).not.toMatch(/[\p{Cc}\p{Cf}]/u);
  });
});
