/**
 * APOP end to end (RFC 1939 section 7): only in `backend.connect: on-accept`, where the
 * backend's greeting (and its <timestamp>) reaches the client, with control characters removed.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { poplib } from '../harness/clients.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';

const TIMESTAMP = /<[^<>]+@[^<>]+>/;

function apopDigest(greeting: string, secret: string): string {
  const ts = TIMESTAMP.exec(greeting);
  if (ts === null) throw new Error(`no APOP timestamp in ${JSON.stringify(greeting)}`);
  return createHash('md5').update(ts[0] + secret).digest('hex');
}

describe('APOP against a real Dovecot that offers it', () => {
  let dovecot: DovecotInstance;
  let onAccept: TestGateway;
  let onLogin: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot({ apop: true });
    dovecot.addMessage('alice', 'Subject: apop\r\nMessage-ID: <apop@example.org>\r\n\r\nhello\r\n');
    onAccept = await startTestGateway(dovecot.port, { backend: { connect: 'on-accept', probeInterval: '1h' } });
    onLogin = await startTestGateway(dovecot.port, { backend: { connect: 'on-login', probeInterval: '1h' } });
  });

  afterAll(async () => {
    await onAccept?.stop();
    await onLogin?.stop();
    await dovecot?.stop();
  });

  it('relays the backend greeting with its timestamp and logs in with a digest computed from it', async () => {
    const c = await Pop3TestClient.connect({ port: onAccept.port.pop3s!, tls: true });
    expect(c.greeting).toMatch(/^\+OK Dovecot( \(Debian\))? ready\. <[^<>]+@[^<>]+>$/);
    expect(await c.command(`APOP alice ${apopDigest(c.greeting, 'alice-secret')}`)).toMatch(/^\+OK/);
    expect(await c.command('STAT')).toMatch(/^\+OK 1 \d+$/);
    expect((await c.multiline('RETR 1')).body!.toString()).toContain('Subject: apop');
    await c.quit();
    const login = onAccept.auditLines().find((l) => l.event === 'login' && l.mechanism === 'APOP');
    expect(login?.result).toBe('ok');
    expect(login?.user).toBe('alice');
  });

  it('lets poplib log in with apop() over pop3s', async () => {
    const r = await poplib(`
p = connect_ssl()
p.apop(USER, PASSWORD)
count, size = p.stat()
out({"count": count, "welcome": p.getwelcome()})
p.quit()
`, { port: onAccept.port.pop3s!, user: 'alice', password: 'alice-secret', insecure: true });
    expect(r.stderr).toBe('');
    const res = JSON.parse(r.stdout.trim()) as { count: number; welcome: string };
    expect(res.count).toBe(1);
    expect(res.welcome).toMatch(TIMESTAMP);
  });

  it('refuses APOP in plaintext before STLS even in on-accept mode', async () => {
    const c = await Pop3TestClient.connect({ port: onAccept.port.pop3! });
    expect(c.greeting).toMatch(TIMESTAMP);
    expect(await c.command(`APOP alice ${apopDigest(c.greeting, 'alice-secret')}`)).toMatch(/^-ERR \[AUTH\].*STLS/);
    await c.quit();
  });

  it('neither offers nor accepts APOP in on-login mode, and the session goes on', async () => {
    const c = await Pop3TestClient.connect({ port: onLogin.port.pop3s!, tls: true });
    expect(c.greeting).toBe('+OK POP3 gateway ready.');
    expect(c.greeting).not.toMatch(TIMESTAMP);
    const digest = createHash('md5').update('<1.2@example.org>alice-secret').digest('hex');
    expect(await c.command(`APOP alice ${digest}`)).toMatch(/^-ERR/);
    expect(await c.command('USER alice')).toMatch(/^\+OK/);
    expect(await c.command('PASS alice-secret')).toMatch(/^\+OK/);
    expect(await c.command('STAT')).toMatch(/^\+OK 1 /);
    await c.quit();
    const r = await poplib(`
p = connect_ssl()
try:
    p.apop(USER, PASSWORD)
    out("accepted")
except poplib.error_proto as e:
    out("refused: " + str(e))
p.quit()
`, { port: onLogin.port.pop3s!, user: 'alice', password: 'alice-secret', insecure: true });
    // poplib refuses by itself: the gateway's greeting has no timestamp to digest.
    expect(r.stdout).toMatch(/refused/);
  });

  // Last: Dovecot then delays further logins from the gateway's address (its auth penalty).
  it('answers a wrong digest like any failed login', async () => {
    const c = await Pop3TestClient.connect({ port: onAccept.port.pop3s!, tls: true });
    expect(await c.command(`APOP alice ${apopDigest(c.greeting, 'not-the-secret')}`)).toBe('-ERR [AUTH] Authentication failed.');
    await c.quit();
  });

  it('never writes an APOP digest into a log or the audit', () => {
    const everything = onAccept.logs.text() + onAccept.auditLines().map((l) => JSON.stringify(l)).join('\n');
    expect(everything).not.toMatch(/\b[0-9a-f]{32}\b/);
    expect(everything).not.toContain('alice-secret');
  });
});

describe('a relayed greeting with control characters', () => {
  const GREETING = '+OK Hello\x07 from\x1b[31m the\x00 backend\x7f <4711.1700000000@script.example>';
  let backend: ScriptBackend;
  let gw: TestGateway;
  const apopLines: string[] = [];

  async function serve(conn: ScriptConn): Promise<void> {
    await conn.write(`${GREETING}\r\n`);
    for (;;) {
      const line = await conn.readLine(30_000);
      if (line === null) return;
      const verb = line.split(' ')[0]!.toUpperCase();
      if (verb === 'CAPA') await conn.write('+OK\r\nUSER\r\nUIDL\r\n.\r\n');
      else if (verb === 'APOP') {
        apopLines.push(line);
        const want = createHash('md5').update('<4711.1700000000@script.example>s3cret').digest('hex');
        await conn.write(line === `APOP carol ${want}` ? '+OK maildrop locked\r\n' : '-ERR [AUTH] bad digest\r\n');
      } else if (verb === 'STAT') await conn.write('+OK 0 0\r\n');
      else if (verb === 'QUIT') {
        await conn.write('+OK bye\r\n');
        conn.end();
        return;
      } else await conn.write('-ERR no\r\n');
    }
  }

  beforeAll(async () => {
    backend = await startScriptBackend(serve);
    gw = await startTestGateway(backend.port, { backend: { connect: 'on-accept', probeInterval: '1h' } });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('reaches the client without them, timestamp intact, and APOP still works', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(c.greeting).toBe('+OK Hello from[31m the backend <4711.1700000000@script.example>');
    expect(c.greeting).not.toMatch(/[\x00-\x1f\x7f]/);
    expect(await c.command(`APOP carol ${apopDigest(c.greeting, 's3cret')}`)).toBe('+OK maildrop locked');
    expect(await c.command('STAT')).toBe('+OK 0 0');
    await c.quit();
    expect(apopLines).toHaveLength(1);
  });
});
