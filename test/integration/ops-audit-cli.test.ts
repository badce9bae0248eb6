/**
 * `npm run audit` on an audit file recorded by real sessions through the gateway
 * in front of a real Dovecot: queries by user, time, unique-id, event and address,
 * and --verify on the real file, then on an edited and on a shortened copy.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { poplib } from '../harness/clients.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
type Rec = Record<string, unknown>;
interface Run { code: number; stdout: string; stderr: string }

function audit(args: string[]): Promise<Run> {
  const { POP3GW_AUDIT_KEY: _drop, ...env } = process.env;
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/audit-cli.ts', ...args], { cwd: ROOT, env, timeout: 30_000 },
      (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

function jsonLines(text: string): Rec[] {
  return text.trim() === '' ? [] : text.trim().split('\n').map((l) => JSON.parse(l) as Rec);
}

describe('npm run audit on a recorded audit file', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  let file: string;
  let lines: string[];
  let aliceUid1: string;
  let dir: string;

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'Subject: a1\r\n\r\nalpha\r\n');
    dovecot.addMessage('alice', 'Subject: a2\r\n\r\nbeta\r\n');
    dovecot.addMessage('bob', 'Subject: b1\r\n\r\ngamma\r\n');
    gw = await startTestGateway(dovecot.port);
    const session = (user: string, password: string, script: string) => poplib(`
p = connect_ssl()
p.user(USER); p.pass_(PASSWORD)
${script}
p.quit()
`, { port: gw.port.pop3s!, user, password, insecure: true });
    const a = await session('alice', 'alice-secret', 'out({"uid": p.uidl(1).split()[2]})\np.retr(1)\np.retr(2)\np.dele(2)');
    expect(a.stderr).toBe('');
    aliceUid1 = (JSON.parse(a.stdout.trim()) as { uid: string }).uid;
    const b = await session('bob', 'bob-secret', 'p.retr(1)');
    expect(b.stderr).toBe('');
    // The gateway stops (flushing the audit); the test gateway's folder goes with it, so keep a copy.
    dir = makeTempDir('opsaudit');
    file = path.join(dir, 'audit.log');
    await gw.gw.stop(500);
    fs.copyFileSync(gw.auditFile, file);
    lines = fs.readFileSync(file, 'utf8').trim().split('\n');
  }, 40_000);

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('answers queries by user, time, unique-id, event and address, as a table and as JSON', async () => {
    const all = lines.map((l) => JSON.parse(l) as Rec);
    expect(all.some((r) => r.user === 'bob')).toBe(true);
    const [table, json, byUid, logins, byIp, otherIp] = await Promise.all([
      audit(['--file', file, '--user', 'alice', '--since', '24h']),
      audit(['--file', file, '--user', 'alice', '--since', '24h', '--json']),
      audit(['--file', file, '--uid', aliceUid1, '--json']),
      audit(['--file', file, '--event', 'login', '--json']),
      audit(['--file', file, '--ip', '127.0.0.1', '--json']),
      audit(['--file', file, '--ip', '192.0.2.0/24', '--json']),
    ]);
    for (const r of [table, json, byUid, logins, byIp, otherIp]) expect(r.code, r.stderr).toBe(0);

    // The table: one row per record of alice, none of bob.
    const aliceRecords = all.filter((r) => r.user === 'alice');
    expect(table.stdout).toContain('alice');
    expect(table.stdout).not.toContain('bob');
    expect(table.stdout).toContain(aliceUid1);
    expect(table.stderr).toContain(`${aliceRecords.length} records`);

    const aliceJson = jsonLines(json.stdout);
    expect(aliceJson.length).toBe(aliceRecords.length);
    expect(aliceJson.every((r) => r.user === 'alice')).toBe(true);
    expect(aliceJson.map((r) => r.event)).toEqual(expect.arrayContaining(['login', 'command', 'logout', 'disconnect']));

    const uidHits = jsonLines(byUid.stdout);
    expect(uidHits.length).toBeGreaterThan(0);
    expect(uidHits.every((r) => r.uid === aliceUid1)).toBe(true);
    expect(uidHits.some((r) => r.command === 'RETR' && r.msg === 1)).toBe(true);

    const loginHits = jsonLines(logins.stdout);
    expect(loginHits.map((r) => r.user).sort()).toEqual(['alice', 'bob']);
    expect(loginHits.every((r) => r.event === 'login' && r.result === 'ok')).toBe(true);

    expect(jsonLines(byIp.stdout)).toHaveLength(all.length);
    expect(jsonLines(otherIp.stdout)).toHaveLength(0);
    expect(otherIp.stderr).toContain('no matching records');
  }, 40_000);

  it('--verify passes on the recorded file and names an edited record and a deleted one', async () => {
    const edited = path.join(dir, 'edited', 'audit.log');
    const shortened = path.join(dir, 'shortened', 'audit.log');
    fs.mkdirSync(path.dirname(edited));
    fs.mkdirSync(path.dirname(shortened));
    // Edit: the RETR of alice's first message now claims message 2.
    const retrAt = lines.findIndex((l) => (JSON.parse(l) as Rec).uid === aliceUid1);
    expect(retrAt).toBeGreaterThan(0);
    const copy = [...lines];
    copy[retrAt] = copy[retrAt]!.replace('"msg":1', '"msg":2');
    expect(copy[retrAt]).not.toBe(lines[retrAt]);
    fs.writeFileSync(edited, `${copy.join('\n')}\n`);
    // Delete: one record in the middle is gone.
    const gone = Math.floor(lines.length / 2);
    fs.writeFileSync(shortened, `${lines.filter((_, i) => i !== gone).join('\n')}\n`);

    const [ok, bad, missing] = await Promise.all([
      audit(['--file', file, '--verify']),
      audit(['--file', edited, '--verify']),
      audit(['--file', shortened, '--verify']),
    ]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`ok: ${lines.length} records verified`);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain(`${edited}:${retrAt + 1}`);
    expect(bad.stdout).toContain('hash-mismatch');
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain(`${shortened}:${gone + 1}`);
    expect(missing.stdout).toContain('seq-gap');
  }, 40_000);
});
