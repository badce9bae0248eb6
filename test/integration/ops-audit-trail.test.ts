/**
 * The audit trail end to end: real Dovecot behind the gateway, real clients in front
 * (python3 poplib, curl). Every record is checked against what the client itself saw:
 * the UIDL unique-id, the LIST size, the octets of the RETR/TOP body.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { curlPop3, poplib } from '../harness/clients.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const KEY = 'ops-audit-test-key';
type Rec = Record<string, unknown>;

const MSG1 = 'From: x@example.org\r\nSubject: first of three\r\nMessage-ID: <m1@ops.example.org>\r\n\r\nHello one\r\n';
const MSG2 = 'From: y@example.org\r\nSubject: second\r\nMessage-ID: <m2@ops.example.org>\r\n\r\nHello two\r\nmore\r\n';
const MSG3 = 'From: z@example.org\r\nSubject: third\r\n\r\nbye\r\n';

function auditText(gw: TestGateway): string {
  return fs.readFileSync(gw.auditFile, 'utf8');
}

/** Waits until the audit file holds a record matching `pred` (the sink writes asynchronously). */
async function waitForRecord(gw: TestGateway, pred: (r: Rec) => boolean, timeoutMs = 5000): Promise<Rec> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = gw.auditLines().find(pred);
    if (hit !== undefined) return hit;
    if (Date.now() > deadline) throw new Error(`no matching audit record within ${timeoutMs} ms; have:\n${auditText(gw)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function sessionRecords(gw: TestGateway, session: string): Rec[] {
  return gw.auditLines().filter((r) => r.session === session);
}

describe('audit trail through a real Dovecot', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot();
    for (const m of [MSG1, MSG2, MSG3]) dovecot.addMessage('alice', m);
    gw = await startTestGateway(dovecot.port, {
      logging: { auditHeaders: ['Message-ID', 'Subject'] },
      policy: { rules: [{ match: { user: 'alice' }, deny: ['NOOP'] }] },
    });
  }, 30_000);

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('records a poplib session: connect, refusals, login, RETR/TOP/DELE with unique-ids and sizes, logout and disconnect', async () => {
    const r = await poplib(`
p = connect()
refused = None
try:
    p.user(USER)
except poplib.error_proto as e:
    refused = e.args[0]
p.stls(context=CTX)
p.user(USER); p.pass_(PASSWORD)
_, uidl, _ = p.uidl()
_, listing, _ = p.list()
r1 = p.retr(1)
r2 = p.top(2, 0)
denied = None
try:
    p.noop()
except poplib.error_proto as e:
    denied = e.args[0]
p.dele(3)
local = p.sock.getsockname()
out({"refused": refused, "denied": denied, "uidl": uidl, "list": listing,
     "retr": len(b"\\r\\n".join(r1[1]) + b"\\r\\n"), "top": len(b"\\r\\n".join(r2[1]) + b"\\r\\n"), "port": local[1]})
p.quit()
`, { port: gw.port.pop3!, user: 'alice', password: 'alice-secret', insecure: true });
    expect(r.stderr).toBe('');
    const res = JSON.parse(r.stdout.trim()) as { refused: string; denied: string; uidl: string[]; list: string[]; retr: number; top: number; port: number };
    expect(res.refused).toMatch(/^-ERR \[AUTH\]/);
    expect(res.denied).toMatch(/^-ERR/);
    const uid = new Map(res.uidl.map((l) => [Number(l.split(' ')[0]), l.split(' ')[1]!]));
    const size = new Map(res.list.map((l) => [Number(l.split(' ')[0]), Number(l.split(' ')[1])]));
    expect(uid.size).toBe(3);

    const logout = await waitForRecord(gw, (x) => x.event === 'disconnect' && x.client === `127.0.0.1:${res.port}`);
    // Other commands (STAT, LIST, UIDL) may be audited too; the mail-access ones must be, in order.
    const recs = sessionRecords(gw, logout.session as string)
      .filter((x) => x.event !== 'command' || ['RETR', 'TOP', 'DELE', 'QUIT'].includes(x.command as string));
    const events = recs.map((x) => `${x.event}${x.command ? ` ${x.command}` : ''}`);
    expect(events).toEqual([
      'connect', 'policy USER', 'login', 'command RETR', 'command TOP', 'policy NOOP', 'command DELE', 'command QUIT', 'logout', 'disconnect',
    ]);
    for (const x of recs) {
      expect(x.client).toBe(`127.0.0.1:${res.port}`);
      expect(x.listener).toBe('pop3');
      expect(typeof x.time).toBe('string');
    }
    const [connect, policyUser, login, retr, top, policyNoop, dele, , out, disc] = recs as [Rec, Rec, Rec, Rec, Rec, Rec, Rec, Rec, Rec, Rec];
    expect(connect.tls).toBe(false);
    expect(connect.user).toBeUndefined();
    expect(policyUser).toMatchObject({ result: 'denied', reason: 'tls-required' });
    expect(login).toMatchObject({ user: 'alice', result: 'ok', mechanism: 'USER' });
    expect(login.tls).toMatch(/^TLSv1\.[23]$/);
    expect(retr).toMatchObject({ user: 'alice', result: 'ok', msg: 1, uid: uid.get(1), size: size.get(1), octets: MSG1.length });
    expect(res.retr).toBe(MSG1.length);
    expect(retr.headers).toEqual({ 'Message-ID': '<m1@ops.example.org>', Subject: 'first of three' });
    expect(top).toMatchObject({ user: 'alice', result: 'ok', msg: 2, uid: uid.get(2), size: size.get(2), octets: res.top });
    expect(policyNoop).toMatchObject({ user: 'alice', result: 'denied', reason: 'rule-deny' });
    expect(dele).toMatchObject({ user: 'alice', result: 'ok', msg: 3, uid: uid.get(3), size: size.get(3) });
    expect(out).toMatchObject({ user: 'alice', result: 'ok', deleted: [{ msg: 3, uid: uid.get(3), size: size.get(3) }], notDeleted: [] });
    expect(disc.user).toBe('alice');
    expect(disc.reason).toBe('quit');
    expect(disc.bytesIn as number).toBeGreaterThan(50);
    expect(disc.bytesOut as number).toBeGreaterThan(MSG1.length);
    expect(disc.durationMs as number).toBeGreaterThanOrEqual(0);
    expect(disc.durationMs as number).toBeLessThan(15_000);
    expect(dovecot.messageFiles('alice')).toHaveLength(2);
  });

  it('a DELE on a connection that drops is recorded as not deleted, and the message stays on disk', async () => {
    dovecot.addMessage('bob', 'Subject: keep me\r\n\r\nstill here\r\n');
    const r = await poplib(`
p = connect_ssl()
p.user(USER); p.pass_(PASSWORD)
uid = p.uidl(1).split()[2]
p.dele(1)
port = p.sock.getsockname()[1]
p.sock.close()
out({"uid": uid, "port": port})
`, { port: gw.port.pop3s!, user: 'bob', password: 'bob-secret', insecure: true });
    expect(r.stderr).toBe('');
    const res = JSON.parse(r.stdout.trim()) as { uid: string; port: number };
    const disc = await waitForRecord(gw, (x) => x.event === 'disconnect' && x.client === `127.0.0.1:${res.port}`);
    const out = sessionRecords(gw, disc.session as string).find((x) => x.event === 'logout')!;
    expect(out).toMatchObject({ user: 'bob', result: 'err', reason: 'quit-not-confirmed', deleted: [] });
    expect(out.notDeleted).toEqual([expect.objectContaining({ msg: 1, uid: res.uid })]);
    expect(disc.reason).toBe('client-closed');
    await new Promise((r) => setTimeout(r, 300));
    expect(dovecot.messageFiles('bob')).toHaveLength(1);
  });

  it('a DELE followed by QUIT (curl -X DELE) is recorded as deleted with the message unique-id', async () => {
    dovecot.addMessage('bob', 'Subject: delete me\r\n\r\ngone soon\r\n');
    expect(dovecot.messageFiles('bob')).toHaveLength(2);
    const uidl = await curlPop3(`pop3s://127.0.0.1:${gw.port.pop3s}/`, { user: 'bob', password: 'bob-secret', insecure: true, extra: ['-X', 'UIDL'] });
    expect(uidl.stderr).toBe('');
    const uid2 = /^2 (\S+)/m.exec(uidl.stdout.toString())?.[1];
    expect(uid2).toBeTruthy();
    const before = gw.auditLines().length;
    const dele = await curlPop3(`pop3s://127.0.0.1:${gw.port.pop3s}/2`, { user: 'bob', password: 'bob-secret', insecure: true, extra: ['-X', 'DELE', '-I'] });
    expect(dele.stderr).toBe('');
    const out = await waitForRecord(gw, (x) => x.event === 'logout' && x.user === 'bob' && Array.isArray(x.deleted) && (x.deleted as unknown[]).length > 0);
    expect(out.deleted).toEqual([expect.objectContaining({ msg: 2, uid: uid2 })]);
    expect(out.notDeleted).toEqual([]);
    const recs = gw.auditLines().slice(before).filter((x) => x.session === out.session);
    expect(recs.find((x) => x.command === 'DELE')).toMatchObject({ result: 'ok', msg: 2, uid: uid2 });
    expect(recs.find((x) => x.event === 'login')).toMatchObject({ result: 'ok', user: 'bob' });
    await new Promise((r) => setTimeout(r, 300));
    expect(dovecot.messageFiles('bob')).toHaveLength(1);
  });

  it('records a failed login with its reason, and no password appears anywhere in the audit file', async () => {
    const r = await poplib(`
p = connect_ssl()
p.user(USER)
try:
    p.pass_("wrong-horse-battery")
    out({"ok": True})
except poplib.error_proto as e:
    out({"err": e.args[0]})
p.quit()
`, { port: gw.port.pop3s!, user: 'alice', password: 'alice-secret', insecure: true });
    expect(JSON.parse(r.stdout.trim())).toEqual({ err: '-ERR [AUTH] Authentication failed.' });
    const failed = await waitForRecord(gw, (x) => x.event === 'login' && x.result === 'err');
    expect(failed.reason).toBe('bad-credentials');
    const text = auditText(gw) + gw.logs.text();
    for (const secret of ['alice-secret', 'bob-secret', 'wrong-horse-battery', Buffer.from('bob:bob-secret').toString('base64')]) {
      expect(text).not.toContain(secret);
    }
  });
});

describe('pseudonymized audit', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', MSG1);
    gw = await startTestGateway(dovecot.port, { logging: { auditPseudonymize: true } }, { POP3GW_AUDIT_KEY: KEY });
  }, 30_000);

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('writes hashed user names, and npm run audit -- --user alice with the key still finds them', async () => {
    const r = await curlPop3(`pop3s://127.0.0.1:${gw.port.pop3s}/1`, { user: 'alice', password: 'alice-secret', insecure: true });
    expect(r.stderr).toBe('');
    await waitForRecord(gw, (x) => x.event === 'disconnect' && typeof x.user === 'string');
    await gw.gw.stop(500); // flushes the audit file
    const recs = gw.auditLines();
    const users = new Set(recs.map((x) => x.user).filter((u) => u !== undefined));
    expect(users.size).toBe(1);
    expect([...users][0]).toMatch(/^u:[0-9a-f]{16}$/);
    expect(auditText(gw)).not.toContain('alice');

    const { POP3GW_AUDIT_KEY: _drop, ...base } = process.env;
    const run = (env: NodeJS.ProcessEnv) => new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/audit-cli.ts', '--file', gw.auditFile, '--user', 'alice', '--json'],
        { cwd: ROOT, env, timeout: 30_000 },
        (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
    const [withKey, withoutKey] = await Promise.all([run({ ...base, POP3GW_AUDIT_KEY: KEY }), run(base)]);
    expect(withKey.code).toBe(0);
    const found = withKey.stdout.trim().split('\n').map((l) => JSON.parse(l) as Rec);
    expect(found.map((x) => x.event)).toEqual(expect.arrayContaining(['login', 'command', 'logout', 'disconnect']));
    expect(found.find((x) => x.command === 'RETR')).toMatchObject({ msg: 1, result: 'ok' });
    // Without the key the hashed names cannot be matched by name.
    expect(withoutKey.stdout).not.toContain('"event":"login"');
  }, 40_000);
});
