/**
 * docs/fail2ban/filter.d/pop3-gateway.conf checked by the real fail2ban-regex (Debian `fail2ban`)
 * against the audit file of a live gateway after real logins from distinct loopback addresses:
 * wrong passwords and an address lockout match, with exactly the right address and count; a
 * user lockout, a successful login, a user name forging a "client" field and every other record
 * do not. No password is anywhere in the file.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir } from '../harness/child-processes.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const FILTER = path.join(ROOT, 'docs/fail2ban/filter.d/pop3-gateway.conf');
const JAIL = path.join(ROOT, 'docs/fail2ban/jail.d/pop3-gateway.conf');
/** A user name that tries to make the filter read another address out of the line. */
const FORGED = 'x","client":"10.9.9.9:1","reason":"bad-credentials';

function fail2banRegex(args: string[], cmd = 'fail2ban-regex'): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('the fail2ban filter on real failed logins', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  const passwords: string[] = ['alice-secret', 'bob-secret'];
  let n = 0;

  /** One connection, one USER/PASS; a new wrong password each time (repeats are not counted). */
  const attempt = async (from: string, user: string, password: string | null): Promise<string> => {
    const pass = password ?? `Wrong-${++n}-pa55word`;
    passwords.push(pass);
    const ipv6 = from.includes(':');
    const c = await Pop3TestClient.connect({ host: ipv6 ? '::1' : '127.0.0.1', port: ipv6 ? gw.port.pop3s6! : gw.port.pop3s!, tls: true, localAddress: from });
    await c.command(`USER ${user}`);
    const reply = await c.command(`PASS ${pass}`);
    await c.quit();
    return reply;
  };

  beforeAll(async () => {
    dovecot = await startDovecot();
    gw = await startTestGateway(dovecot.port, {
      listeners: [
        { name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' },
        { name: 'pop3s6', host: '::1', port: 0, tls: 'implicit' },
      ],
      policy: { auth: { maxFailuresPerIp: 4, maxFailuresPerUser: 3, failureDelay: '20ms' } },
    });
    // 127.0.0.2: three wrong passwords for bob (bob is then locked), two for dave: the fourth
    // failure locks the address, so the fifth attempt is refused as ip-locked.
    for (let i = 0; i < 3; i++) expect(await attempt('127.0.0.2', 'bob', null)).toMatch(/^-ERR \[AUTH\]/);
    for (let i = 0; i < 2; i++) expect(await attempt('127.0.0.2', 'dave', null)).toMatch(/^-ERR \[AUTH\]/);
    // 127.0.0.3: bob's right password, refused because bob is locked (not this address's doing),
    // then a wrong password for a user name that forges a client field.
    expect(await attempt('127.0.0.3', 'bob', 'bob-secret')).toMatch(/^-ERR \[AUTH\]/);
    expect(await attempt('127.0.0.3', FORGED, null)).toMatch(/^-ERR \[AUTH\]/);
    // 127.0.0.4 logs in fine; ::1 gets one password wrong.
    expect(await attempt('127.0.0.4', 'alice', 'alice-secret')).toMatch(/^\+OK/);
    expect(await attempt('::1', 'alice', null)).toMatch(/^-ERR \[AUTH\]/);
    // 127.0.0.5 guesses and hangs up before the answer; 127.0.0.6 sends a name too long to be one.
    const hangUp = await Pop3TestClient.connect({ host: '127.0.0.1', port: gw.port.pop3s!, tls: true, localAddress: '127.0.0.5' });
    await hangUp.command('USER carol');
    hangUp.send(`PASS Wrong-${++n}-pa55word`);
    passwords.push(`Wrong-${n}-pa55word`);
    // Long enough for the PASS to reach the backend; the answer (failureDelay or later) is not awaited.
    await new Promise((r) => setTimeout(r, 150));
    await hangUp.close();
    const long = await Pop3TestClient.connect({ host: '127.0.0.1', port: gw.port.pop3s!, tls: true, localAddress: '127.0.0.6' });
    const plain = Buffer.from(`\0${'x'.repeat(300)}\0Wrong-long-pa55word`).toString('base64');
    passwords.push('Wrong-long-pa55word');
    expect(await long.command('AUTH PLAIN')).toMatch(/^\+ /);
    expect(await long.command(plain)).toMatch(/^-ERR \[AUTH\]/);
    await long.quit();
    // The hung-up guess is audited when the backend's refusal comes back, after the disconnect.
    const guessed = () => gw.auditLines().some((r) => r.event === 'login' && String(r.client).startsWith('127.0.0.5:'));
    for (let i = 0; i < 100 && !guessed(); i++) await new Promise((r) => setTimeout(r, 50));
  }, 60_000);

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('the audit holds what the test did: the reasons the filter must tell apart', () => {
    const logins = gw.auditLines().filter((r) => r.event === 'login');
    const by = (client: string) => logins.filter((r) => String(r.client).startsWith(client)).map((r) => r.reason ?? r.result);
    expect(by('127.0.0.2:')).toEqual(['bad-credentials', 'bad-credentials', 'bad-credentials', 'bad-credentials', 'ip-locked']);
    expect(by('127.0.0.3:')).toEqual(['user-locked', 'bad-credentials']);
    expect(by('127.0.0.4:')).toEqual(['ok']);
    expect(by('[::1]:')).toEqual(['bad-credentials']);
    // client-gone when the backend's refusal came after the hang-up, else the refusal itself.
    expect(by('127.0.0.5:')).toHaveLength(1);
    expect(['client-gone', 'bad-credentials']).toContain(by('127.0.0.5:')[0]);
    expect(by('127.0.0.6:')).toEqual(['name-too-long']);
    expect(logins.find((r) => r.user === FORGED)).toBeDefined();
  });

  it('fail2ban-regex matches exactly the failing addresses, as many times as they failed', async () => {
    const r = await fail2banRegex(['-o', 'ip', gw.auditFile, FILTER]);
    expect(r.code, r.stderr).toBe(0);
    const ips = r.stdout.split('\n').filter((l) => l !== '');
    const counts: Record<string, number> = {};
    for (const ip of ips) counts[ip] = (counts[ip] ?? 0) + 1;
    expect(counts).toEqual({ '127.0.0.2': 5, '127.0.0.3': 1, '::1': 1, '127.0.0.5': 1, '127.0.0.6': 1 });
  });

  it('matches no other line: not a success, a user lockout, a forged field, nor any other record', async () => {
    const total = gw.auditLines().length;
    const r = await fail2banRegex(['--print-all-matched', gw.auditFile, FILTER]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Lines: ${total} lines, 0 ignored, 9 matched, ${total - 9} missed`);
    // Every line got its time from the record's own "time" field.
    expect(r.stdout).toMatch(new RegExp(`\\[${total}\\] \\^\\\\\\{"time":"Year-Month-DayT24hour`));
    const matched = r.stdout.split('\n').filter((l) => l.startsWith('|  {')).map((l) => JSON.parse(l.slice(3)) as Record<string, unknown>);
    expect(matched).toHaveLength(9);
    for (const rec of matched) {
      expect(rec.event).toBe('login');
      expect(['bad-credentials', 'ip-locked', 'client-gone', 'name-too-long']).toContain(rec.reason);
    }
    expect(r.stdout).not.toContain('10.9.9.9 ');
  });

  it('never has a password in the lines it reads', () => {
    const text = fs.readFileSync(gw.auditFile, 'utf8');
    expect(passwords.length).toBeGreaterThan(8);
    for (const p of passwords) expect(text).not.toContain(p);
  });

  it('ships a jail that uses this filter on the audit file the logrotate stanza rotates', () => {
    const jail = fs.readFileSync(JAIL, 'utf8');
    const rotate = fs.readFileSync(path.join(ROOT, 'docs/logrotate/pop3-gateway'), 'utf8');
    const rotated = /^(\/\S+)\s*\{/m.exec(rotate)![1]!;
    expect(jail).toMatch(/^\[pop3-gateway\]$/m);
    expect(jail).toMatch(/^filter\s*=\s*pop3-gateway$/m);
    expect(jail).toMatch(new RegExp(`^logpath\\s*=\\s*${rotated.replaceAll('.', '\\.')}$`, 'm'));
    expect(jail).toMatch(/^port\s*=\s*pop3,pop3s$/m);
  });

  it('passes fail2ban-client -t with the filter and the jail installed in a copy of /etc/fail2ban', async () => {
    const dir = makeTempDir('opsf2b');
    try {
      fs.cpSync('/etc/fail2ban', dir, { recursive: true });
      // The distribution's own sshd jail reads the journal, which a test machine may not have.
      fs.rmSync(path.join(dir, 'jail.d/defaults-debian.conf'), { force: true });
      fs.copyFileSync(FILTER, path.join(dir, 'filter.d/pop3-gateway.conf'));
      const jail = fs.readFileSync(JAIL, 'utf8').replace(/^logpath\s*=.*$/m, `logpath = ${gw.auditFile}`);
      fs.writeFileSync(path.join(dir, 'jail.d/pop3-gateway.conf'), jail);
      const ok = await fail2banRegex(['-c', dir, '-t'], 'fail2ban-client');
      expect(ok.stdout + ok.stderr).toContain('OK: configuration test is successful');
      expect(ok.code).toBe(0);
      const dump = await fail2banRegex(['-c', dir, '-d'], 'fail2ban-client');
      expect(dump.stdout).toContain("['add', 'pop3-gateway', 'auto']");
      expect(dump.stdout).toContain(`['set', 'pop3-gateway', 'addlogpath', '${gw.auditFile}', 'head']`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
