/**
 * The audit file's permissions on the real CLI process: created 0640 at start and again after
 * logrotate's rename + SIGUSR1, with a umask that would otherwise give 0600 (077) — the mode
 * is set, not left to the umask.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { auditedPop3sConfig, startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const modeOf = (f: string): number => fs.statSync(f).mode & 0o777;

describe('audit file mode', () => {
  let dovecot: DovecotInstance;
  let gw: CliGateway;
  let dir: string;
  let file: string;

  beforeAll(async () => {
    dovecot = await startDovecot();
    dir = makeTempDir('auditmode');
    file = path.join(dir, 'audit.log');
    const cert = await makeCert({ commonName: 'localhost' });
    // The child inherits the umask; vitest runs this file in its own process (pool: forks).
    const saved = process.umask(0o077);
    try {
      gw = await startCliGateway(dir, auditedPop3sConfig(cert, dovecot.port, { shutdownGrace: '1s' }));
    } finally {
      process.umask(saved);
    }
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  async function login(): Promise<void> {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('alice', 'alice-secret');
    await c.quit();
  }

  it('is 0640 after start and after a rename + SIGUSR1, under umask 077', async () => {
    await login();
    await until('a record in audit.log', () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('"login"'));
    expect(modeOf(file)).toBe(0o640);

    fs.renameSync(file, `${file}.1`);
    gw.signal('SIGUSR1');
    await gw.logs.waitFor((l) => l.event === 'audit-reopen', 10_000);
    await login();
    await until('a record in the new audit.log', () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').includes('"login"'));
    expect(modeOf(file)).toBe(0o640);
    expect(modeOf(`${file}.1`)).toBe(0o640);
  });
});
