/**
 * The core relay end to end: real Dovecot behind the gateway, real clients in front
 * (python3 poplib, curl, openssl s_client) over implicit TLS and STLS.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { curlPop3, opensslClient, poplib } from '../harness/clients.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

/** A 5 MiB message whose body has many lines starting with a dot. */
function bigMessage(): Buffer {
  const lines = ['From: a@example.org', 'To: alice@example.org', 'Subject: big', 'Message-ID: <big@example.org>', ''];
  let size = 0;
  for (let i = 0; size < 5 * 1024 * 1024; i++) {
    const l = i % 7 === 0 ? `.dot-leading line ${i}` : i % 11 === 0 ? '.' : `line ${i} ${'x'.repeat(60)}`;
    lines.push(l);
    size += l.length + 2;
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n`);
}

describe('gateway in front of a real Dovecot', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  const big = bigMessage();

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'From: x@example.org\r\nSubject: one\r\nMessage-ID: <one@example.org>\r\n\r\nHello\r\n.leading dot\r\n');
    dovecot.addMessage('alice', big);
    dovecot.addMessage('alice', 'Subject: three\r\n\r\nthird\r\n');
    gw = await startTestGateway(dovecot.port);
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('retrieves a 5 MiB message with dot-leading lines over implicit TLS, byte for byte (poplib)', async () => {
    const r = await poplib(`
import hashlib
p = connect_ssl()
p.user(USER); p.pass_(PASSWORD)
count, size = p.stat()
resp, lines, octets = p.retr(2)
data = b"\\r\\n".join(lines) + b"\\r\\n"
out({"count": count, "sha": hashlib.sha256(data).hexdigest(), "len": len(data)})
p.quit()
`, { port: gw.port.pop3s!, user: 'alice', password: 'alice-secret', insecure: true });
    expect(r.stderr).toBe('');
    const res = JSON.parse(r.stdout.trim()) as { count: number; sha: string; len: number };
    expect(res.count).toBe(3);
    expect(res.len).toBe(big.length);
    expect(res.sha).toBe(createHash('sha256').update(big).digest('hex'));
  });

  it('serves STAT, LIST, UIDL and TOP after STLS (poplib)', async () => {
    const r = await poplib(`
p = connect()
p.stls(context=CTX)
p.user(USER); p.pass_(PASSWORD)
resp, listing, _ = p.list()
resp2, uidl, _ = p.uidl()
resp3, top, _ = p.top(1, 0)
out({"list": [l.decode() for l in listing], "uidl": len(uidl), "top": [l.decode() for l in top], "single": p.list(2).decode()})
p.quit()
`, { port: gw.port.pop3!, user: 'alice', password: 'alice-secret', insecure: true });
    expect(r.stderr).toBe('');
    const res = JSON.parse(r.stdout.trim()) as { list: string[]; uidl: number; top: string[]; single: string };
    expect(res.list).toHaveLength(3);
    expect(res.uidl).toBe(3);
    expect(res.top).toContain('Subject: one');
    expect(res.single).toMatch(/^\+OK 2 \d+$/);
  });

  it('retrieves message 1 with curl over pop3s', async () => {
    const r = await curlPop3(`pop3s://127.0.0.1:${gw.port.pop3s}/1`, { user: 'alice', password: 'alice-secret', insecure: true });
    expect(r.stderr).toBe('');
    expect(r.stdout.toString()).toContain('Subject: one');
    expect(r.stdout.toString()).toContain('.leading dot');
  });

  it('logs in with openssl s_client -starttls pop3', async () => {
    const r = await opensslClient({ host: '127.0.0.1', port: gw.port.pop3!, starttls: true, input: 'USER alice\nPASS alice-secret\nSTAT\nQUIT', timeoutMs: 10_000 });
    expect(r.stdout).toMatch(/\+OK 3 \d+/);
  });

  it('runs AUTH PLAIN and AUTH LOGIN through the gateway', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(await c.command(`AUTH PLAIN ${Buffer.from('\0alice\0alice-secret').toString('base64')}`)).toMatch(/^\+OK/);
    expect(await c.command('STAT')).toMatch(/^\+OK 3 /);
    await c.quit();
    const d = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(await d.command('AUTH LOGIN')).toBe('+ VXNlcm5hbWU6');
    expect(await d.command(Buffer.from('alice').toString('base64'))).toBe('+ UGFzc3dvcmQ6');
    expect(await d.command(Buffer.from('alice-secret').toString('base64'))).toMatch(/^\+OK/);
    await d.quit();
  });

  it('answers 20 pipelined commands in order', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('alice', 'alice-secret');
    const cmds = Array.from({ length: 20 }, (_, i) => (i % 4 === 0 ? 'NOOP' : i % 4 === 1 ? 'STAT' : i % 4 === 2 ? 'LIST 1' : 'BOGUS'));
    c.sendRaw(cmds.map((x) => `${x}\r\n`).join(''));
    const replies: string[] = [];
    for (let i = 0; i < 20; i++) replies.push(await c.readLine());
    replies.forEach((r, i) => {
      if (i % 4 === 0) expect(r).toMatch(/^\+OK/);
      if (i % 4 === 1) expect(r).toMatch(/^\+OK 3 /);
      if (i % 4 === 2) expect(r).toMatch(/^\+OK 1 \d+$/);
      if (i % 4 === 3) expect(r).toMatch(/^-ERR/);
    });
    await c.quit();
  });

  it('never runs commands sent in plaintext after STLS before the handshake', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3! });
    c.sendRaw('STLS\r\nUSER alice\r\nPASS alice-secret\r\n');
    expect(await c.readLine()).toMatch(/^\+OK/);
    await c.upgrade({ rejectUnauthorized: false, allowBuffered: true });
    // The injected USER was dropped: PASS now has no USER.
    expect(await c.command('PASS alice-secret')).toMatch(/^-ERR/);
    await c.quit();
  });

  it('refuses USER before STLS on the starttls listener, and CAPA agrees', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3! });
    const capa = await c.multiline('CAPA');
    expect(capa.body!.toString()).toContain('STLS');
    expect(capa.body!.toString()).not.toMatch(/^USER/m);
    expect(capa.body!.toString()).not.toMatch(/^SASL/m);
    expect(await c.command('USER alice')).toMatch(/^-ERR \[AUTH\].*STLS/);
    await c.startTls({ rejectUnauthorized: false });
    const after = await c.multiline('CAPA');
    expect(after.body!.toString()).not.toContain('STLS');
    expect(after.body!.toString()).toMatch(/^USER/m);
    expect(after.body!.toString()).toMatch(/^SASL PLAIN LOGIN/m);
    await c.quit();
  });

  it('DELE + QUIT removes the message; RSET undoes DELE; a dropped connection deletes nothing', async () => {
    const extra = dovecot.addMessage('bob', 'Subject: gone\r\n\r\nbye\r\n');
    dovecot.addMessage('bob', 'Subject: stays\r\n\r\nhi\r\n');
    expect(dovecot.messageFiles('bob')).toHaveLength(2);
    // Dropped connection: nothing deleted.
    const a = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await a.login('bob', 'bob-secret');
    expect(await a.command('DELE 1')).toMatch(/^\+OK/);
    await a.close();
    await new Promise((r) => setTimeout(r, 300));
    expect(dovecot.messageFiles('bob')).toHaveLength(2);
    // RSET undoes.
    const b = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await b.login('bob', 'bob-secret');
    await b.command('DELE 1');
    expect(await b.command('RSET')).toMatch(/^\+OK/);
    await b.quit();
    expect(dovecot.messageFiles('bob')).toHaveLength(2);
    // DELE + QUIT deletes.
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('bob', 'bob-secret');
    await c.command('DELE 1');
    expect(await c.quit()).toMatch(/^\+OK/);
    await new Promise((r) => setTimeout(r, 200));
    expect(dovecot.messageFiles('bob')).toHaveLength(1);
    expect(fs.existsSync(extra)).toBe(false);
    const logout = gw.auditLines().filter((l) => l.event === 'logout' && l.user === 'bob');
    expect(logout.some((l) => Array.isArray(l.notDeleted) && (l.notDeleted as unknown[]).length === 1)).toBe(true);
    expect(logout.some((l) => Array.isArray(l.deleted) && (l.deleted as unknown[]).length === 1)).toBe(true);
  });

  it('answers a wrong password with [AUTH] and never logs any password used', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.command('USER alice');
    expect(await c.command('PASS not-the-password')).toBe('-ERR [AUTH] Authentication failed.');
    await c.quit();
    const everything = gw.logs.text() + fs.readFileSync(gw.auditFile, 'utf8');
    for (const secret of ['alice-secret', 'bob-secret', 'not-the-password', Buffer.from('\0alice\0alice-secret').toString('base64')]) {
      expect(everything).not.toContain(secret);
    }
  });
});
