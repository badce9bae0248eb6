/**
 * docs/logrotate/pop3-gateway run by the real logrotate (-f, a state file in a temp dir) against
 * the real gateway process while sessions log in and out: the stanza's paths, owner and
 * `systemctl kill` are rewritten for the test (each rewrite must hit, so a changed stanza fails
 * here), its postrotate signals the gateway's PID with SIGUSR1. No record is lost across the
 * rotated files, `npm run audit -- --verify` follows the chain through them (one compressed),
 * and the new file has the mode the `create` line states.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { auditedPop3sConfig, startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const STANZA = fs.readFileSync(path.join(ROOT, 'docs/logrotate/pop3-gateway'), 'utf8');
type Rec = Record<string, unknown>;

function run(cmd: string, args: string[], cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(cmd, args, { cwd, timeout: 60_000 }, (err, stdout, stderr) =>
      done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** Replaces exactly one occurrence; throws when the stanza no longer has it (the doc drifted). */
function rewrite(text: string, from: RegExp, to: string): string {
  const hits = text.match(new RegExp(from.source, `${from.flags.replace('g', '')}g`))?.length ?? 0;
  if (hits !== 1) throw new Error(`logrotate stanza: expected one ${from} but found ${hits}`);
  return text.replace(from, to);
}

function parseLines(text: string): Rec[] {
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Rec);
}

describe('the shipped logrotate stanza on a live gateway', () => {
  let dovecot: DovecotInstance;
  let gw: CliGateway;
  let dir: string;

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'Subject: rotate\r\n\r\nrotate me\r\n');
    dir = makeTempDir('opslogrotate');
    const cert = await makeCert({ commonName: 'localhost' });
    gw = await startCliGateway(dir, auditedPop3sConfig(cert, dovecot.port));
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('loses no record across two forced rotations during traffic, and the chain verifies across the files', async () => {
    const live = path.join(dir, 'audit.log');
    const mode = /^\s*create\s+(0[0-7]{3})\s/m.exec(STANZA)?.[1];
    expect(mode).toBe('0640');
    const me = os.userInfo().username;
    const group = (await run('id', ['-gn'])).stdout.trim();
    let conf = rewrite(STANZA, /^\/var\/log\/pop3-gateway\/audit\.log(?= \{)/m, live);
    conf = rewrite(conf, /create 0640 pop3gw pop3gw/, `create 0640 ${me} ${group}`);
    conf = rewrite(conf, /systemctl kill --signal=USR1 --kill-whom=main pop3-gateway\.service/, `kill -USR1 ${gw.pid}`);
    const confFile = path.join(dir, 'logrotate.conf');
    fs.writeFileSync(confFile, conf, { mode: 0o644 });
    const state = path.join(dir, 'logrotate.state');

    // Sessions log in and out back to back, two at a time, for the whole test.
    let running = true;
    let completed = 0;
    const session = async (): Promise<void> => {
      const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 10_000 });
      await c.login('alice', 'alice-secret');
      expect(await c.command('STAT')).toMatch(/^\+OK/);
      expect((await c.multiline('RETR 1')).status).toMatch(/^\+OK/);
      expect(await c.quit()).toMatch(/^\+OK/);
      completed++;
    };
    const loop = async (): Promise<void> => {
      while (running) await session();
    };
    const loops = [loop(), loop()];
    try {
      for (let round = 1; round <= 2; round++) {
        const before = completed;
        while (completed < before + 3) await new Promise((r) => setTimeout(r, 20));
        const r = await run('logrotate', ['-f', '-s', state, confFile]);
        expect(r.code, r.stderr).toBe(0);
        // The postrotate's SIGUSR1 made the gateway reopen (once per rotation).
        const deadline = Date.now() + 10_000;
        while (gw.logs.find({ event: 'audit-reopen' }).length < round) {
          if (Date.now() > deadline) throw new Error(`no audit-reopen after rotation ${round}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      const before = completed;
      while (completed < before + 3) await new Promise((r) => setTimeout(r, 20));
    } finally {
      running = false;
      await Promise.all(loops);
    }
    gw.signal('SIGTERM');
    expect(await gw.exit).toBe(0);
    expect(gw.stderr()).not.toContain('Debugger listening');

    // delaycompress: the first rotation is compressed by the second one.
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('audit.log')).sort()).toEqual(['audit.log', 'audit.log.1', 'audit.log.2.gz']);
    const files = [
      parseLines(gunzipSync(fs.readFileSync(`${live}.2.gz`)).toString('utf8')),
      parseLines(fs.readFileSync(`${live}.1`, 'utf8')),
      parseLines(fs.readFileSync(live, 'utf8')),
    ];
    for (const f of files) expect(f.length).toBeGreaterThan(0);
    const all = files.flat();
    // No record lost or repeated: one chain numbered 1..N, and every session complete.
    expect(all.map((r) => r.seq)).toEqual(all.map((_, i) => i + 1));
    const bySession = new Map<string, string[]>();
    for (const r of all) bySession.set(String(r.session), [...(bySession.get(String(r.session)) ?? []), String(r.event)]);
    expect(bySession.size).toBe(completed);
    const shapes = new Set([...bySession.values()].map((events) => events.join(',')));
    expect(shapes.size, [...shapes].join('\n')).toBe(1);
    expect([...shapes][0]).toMatch(/^connect,login,.*command.*,logout,disconnect$/);

    const verify = await run(process.execPath, ['--import', 'tsx', 'src/audit-cli.ts', '--file', live, '--verify']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toContain(`ok: ${all.length} records verified`);
    expect(verify.stdout).toContain('in 3 files');

    // The file logrotate created (and the gateway reopened) has the documented mode.
    expect((fs.statSync(live).mode & 0o777).toString(8).padStart(4, '0')).toBe(mode);
  }, 120_000);
});
