/**
 * Audit rotation on the real CLI process: audit.log renamed away, SIGUSR1, and the next
 * records go to a new audit.log; `npm run audit -- --verify` checks one hash chain across
 * audit.log.1 and audit.log, and queries read both.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { auditedPop3sConfig, startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
type Rec = Record<string, unknown>;

function audit(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/audit-cli.ts', ...args], { cwd: ROOT, timeout: 30_000 },
      (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

function records(file: string): Rec[] {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Rec);
}

async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('audit file rotation with SIGUSR1', () => {
  let dovecot: DovecotInstance;
  let gw: CliGateway;
  let dir: string;

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'Subject: rotate\r\n\r\nrotate me\r\n');
    dir = makeTempDir('opsrotate');
    const cert = await makeCert({ commonName: 'localhost' });
    gw = await startCliGateway(dir, auditedPop3sConfig(cert, dovecot.port, { admin: { host: '127.0.0.1', port: 0 } }));
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('writes to a new audit.log after SIGUSR1, and --verify follows the chain across both files', async () => {
    const live = path.join(dir, 'audit.log');
    const rotated = path.join(dir, 'audit.log.1');
    const session = async (): Promise<number> => {
      const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 8000 });
      const port = c.tlsSocket!.localPort!;
      await c.login('alice', 'alice-secret');
      expect((await c.multiline('RETR 1')).status).toMatch(/^\+OK/);
      expect(await c.quit()).toMatch(/^\+OK/);
      return port;
    };
    const first = await session();
    await until('the first session in audit.log', () => records(live).some((r) => r.event === 'disconnect' && r.client === `127.0.0.1:${first}`));
    fs.renameSync(live, rotated);
    const reopened = gw.logs.waitFor((l) => l.event === 'audit-reopen', 10_000);
    gw.signal('SIGUSR1');
    const head = await reopened;
    // Node's default for SIGUSR1 (open the inspector on 127.0.0.1:9229) must not happen.
    expect(gw.stderr()).not.toContain('Debugger listening');
    await until('a new audit.log', () => fs.existsSync(live));

    const second = await session();
    gw.signal('SIGTERM');
    expect(await gw.exit).toBe(0);

    const old = records(rotated);
    const now = records(live);
    expect(old.every((r) => r.client === `127.0.0.1:${first}`)).toBe(true);
    expect(old.map((r) => r.event)).toContain('disconnect');
    expect(now.length).toBeGreaterThan(0);
    expect(now.every((r) => r.client === `127.0.0.1:${second}`)).toBe(true);
    expect(now.map((r) => r.event)).toEqual(expect.arrayContaining(['connect', 'login', 'command', 'logout', 'disconnect']));
    // The chain continues: the operational log named the head at the reopen.
    expect(head.seq).toBe(old.at(-1)!.seq);
    expect(now[0]!.seq).toBe((old.at(-1)!.seq as number) + 1);
    expect(now[0]!.prev).toBe(old.at(-1)!.hash);

    const [verify, query] = await Promise.all([
      audit(['--file', live, '--verify']),
      audit(['--file', live, '--user', 'alice', '--event', 'login', '--json']),
    ]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toContain(`ok: ${old.length + now.length} records verified`);
    expect(verify.stdout).toContain('in 2 files');
    const logins = query.stdout.trim().split('\n').map((l) => JSON.parse(l) as Rec);
    expect(logins.map((r) => r.client).sort()).toEqual([`127.0.0.1:${first}`, `127.0.0.1:${second}`].sort());
  });

  it('--verify notices when a rotated file lost its last record', async () => {
    const copy = path.join(dir, 'cut');
    fs.mkdirSync(copy);
    const lines = fs.readFileSync(path.join(dir, 'audit.log.1'), 'utf8').split('\n').filter((l) => l !== '');
    fs.writeFileSync(path.join(copy, 'audit.log.1'), `${lines.slice(0, -1).join('\n')}\n`);
    fs.copyFileSync(path.join(dir, 'audit.log'), path.join(copy, 'audit.log'));
    const r = await audit(['--file', path.join(copy, 'audit.log'), '--verify']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${path.join(copy, 'audit.log')}:1`);
    expect(r.stdout).toContain('seq-gap');
  });
});
