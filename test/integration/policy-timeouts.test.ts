/**
 * Timeouts end to end (issue 3): idle (a real Dovecot: the backend session is cut without QUIT,
 * so a DELE never takes effect), auth (time allowed before login, however busy the client is),
 * and backendReply (a scripted backend that stops answering).
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';
import { eventually, fakeBackend, receivedLines, sleep } from './policy-helpers.ts';

describe('idle timeout (1s) in front of a real Dovecot', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot();
    gw = await startTestGateway(dovecot.port, { policy: { timeouts: { idle: '1s', auth: '30s' } } });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('ends an idle session with -ERR and a clean close, and cuts the backend without QUIT so a DELE never happens', async () => {
    dovecot.addMessage('bob', 'Subject: keep me\r\n\r\nstill here\r\n');
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 5000 });
    await c.login('bob', 'bob-secret');
    expect(await c.command('DELE 1')).toMatch(/^\+OK/);
    const t0 = Date.now();
    expect(await c.readLine(4000)).toBe('-ERR Idle timeout, closing connection.');
    const waited = Date.now() - t0;
    await c.waitClosed(3000);
    expect(c.closeError).toBeNull(); // a FIN, not a reset
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(2500);
    await eventually(() => /pop3\(bob\)[^\n]*Disconnected/.test(dovecot.readLog()), 'Dovecot to log the end of bob\'s session');
    const line = dovecot.readLog().split('\n').find((l) => /pop3\(bob\)[^\n]*Disconnected/.test(l))!;
    expect(line).not.toMatch(/Logged out/); // Dovecot logs "Logged out" only after a QUIT
    // Still there (Dovecot moved it from new/ to cur/ when the mailbox was opened).
    const files = dovecot.messageFiles('bob');
    expect(files).toHaveLength(1);
    expect(fs.readFileSync(files[0]!, 'utf8')).toContain('keep me');
    await eventually(() => gw.auditLines().some((l) => l.event === 'disconnect' && l.user === 'bob'), 'the logout and disconnect records');
    expect(gw.auditLines().find((l) => l.event === 'logout' && l.user === 'bob')).toMatchObject({ result: 'err', deleted: [], reason: 'quit-not-confirmed' });
    expect(gw.auditLines().find((l) => l.event === 'disconnect' && l.user === 'bob')).toMatchObject({ reason: 'idle-timeout' });
  });

  it('keeps a session that keeps talking for well past the idle timeout, and times it out once it stops', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 5000 });
    await c.login('bob', 'bob-secret');
    const t0 = Date.now();
    while (Date.now() - t0 < 2_600) {
      await new Promise((r) => setTimeout(r, 300));
      expect(await c.command('NOOP')).toMatch(/^\+OK/);
    }
    const quiet = Date.now();
    expect(await c.readLine(4000)).toBe('-ERR Idle timeout, closing connection.');
    expect(Date.now() - quiet).toBeGreaterThanOrEqual(900);
    await c.waitClosed(3000);
  });
});

describe('auth and backendReply timeouts against a scripted backend', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;
  const conns: ScriptConn[] = [];

  beforeAll(async () => {
    backend = await startScriptBackend(fakeBackend({ stall: ['RETR'], conns }));
    gw = await startTestGateway(backend.port, { policy: { timeouts: { idle: '30s', auth: '800ms', backendReply: '500ms' } } });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('closes a session that has not logged in within `auth`, even while it keeps sending commands', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    const t0 = Date.now();
    const replies: string[] = [];
    let last = '';
    while (!c.isClosed && Date.now() - t0 < 4000) {
      try {
        last = await c.command('CAPA', 3000);
        if (last.startsWith('+OK')) await c.readMultiline(3000);
        else break;
        replies.push(last);
      } catch {
        break;
      }
      await sleep(150);
    }
    const elapsed = Date.now() - t0;
    // The reply may have arrived while the loop slept: it is still in the buffer.
    if (last.startsWith('+OK')) last = await c.readLine(1000);
    expect(last).toBe('-ERR Authentication timeout, closing connection.');
    await c.waitClosed(3000);
    expect(replies.length).toBeGreaterThanOrEqual(3); // it was busy all along
    expect(elapsed).toBeGreaterThanOrEqual(700);
    expect(elapsed).toBeLessThan(2500);
    await eventually(() => gw.auditLines().some((l) => l.event === 'disconnect' && l.reason === 'auth-timeout'), 'the disconnect record');
  });

  /** RETR 1 gets the backend-timeout reply after backendReply (not before, not much later), then the close. */
  async function expectBackendTimeout(c: Pop3TestClient): Promise<void> {
    const t0 = Date.now();
    expect(await c.command('RETR 1', 4000)).toBe('-ERR [SYS/TEMP] Mail server did not answer in time.');
    const waited = Date.now() - t0;
    await c.waitClosed(3000);
    expect(waited).toBeGreaterThanOrEqual(400);
    expect(waited).toBeLessThan(2000);
  }

  it('answers -ERR [SYS/TEMP] soon after the backend stops answering, closes the session and the backend connection', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('ok', 'right');
    expect(await c.command('STAT')).toMatch(/^\+OK/);
    const mine = conns.at(-1)!;
    await expectBackendTimeout(c);
    await mine.waitClosed(3000);
    expect(receivedLines([mine])).not.toContain('QUIT');
    await eventually(() => gw.auditLines().some((l) => l.event === 'disconnect' && l.reason === 'backend-timeout'), 'the disconnect record');
    expect(gw.logs.lines().some((l) => l.event === 'session-end' && l.reason === 'backend-timeout')).toBe(true);
  });

  it('keeps a session idle for longer than backendReply with nothing in flight, and still times out a reply that does not come after it', async () => {
    // The reply timer is the backend socket's inactivity timer, armed once: while idle it fires
    // and is ignored; the next command's write must bring it back.
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('ok', 'right');
    expect(await c.command('STAT')).toMatch(/^\+OK/);
    await sleep(1300);
    expect(c.isClosed).toBe(false);
    await expectBackendTimeout(c);
  });
});

describe('backendReply against a backend that answers slowly but steadily', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;

  beforeAll(async () => {
    // RETR's body comes a line every 200 ms for 1.6 s: each read is activity, so a 500 ms reply timeout never runs out.
    backend = await startScriptBackend(async (conn) => {
      await conn.write('+OK drip ready\r\n');
      for (;;) {
        const line = await conn.readLine(30_000);
        if (line === null) return;
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'QUIT') {
          conn.end('+OK bye\r\n');
          return;
        }
        if (verb !== 'RETR') {
          await conn.write(verb === 'CAPA' ? '+OK\r\nUSER\r\n.\r\n' : '+OK\r\n');
          continue;
        }
        await conn.write('+OK\r\nSubject: drip\r\n\r\n');
        for (let i = 0; i < 8; i++) {
          await sleep(200);
          await conn.write(`line ${i}\r\n`);
        }
        await conn.write('.\r\n');
      }
    });
    gw = await startTestGateway(backend.port, { policy: { timeouts: { idle: '30s', auth: '30s', backendReply: '500ms' } } });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('relays the whole body, taking three times the reply timeout', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 5000 });
    await c.login('ok', 'right');
    const t0 = Date.now();
    expect(await c.command('RETR 1', 4000)).toBe('+OK');
    const body = await c.readMultiline(4000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_500);
    expect(body.toString('latin1')).toContain('line 0\r\nline 1\r\nline 2\r\nline 3\r\nline 4\r\nline 5\r\nline 6\r\nline 7');
    expect(await c.command('NOOP')).toMatch(/^\+OK/);
    await c.quit();
  });
});

describe('backendReply across a relayed SASL exchange', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;
  const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

  beforeAll(async () => {
    // CRAM-MD5: a challenge at once, then 450 ms to judge the client's answer.
    backend = await startScriptBackend(async (conn) => {
      await conn.write('+OK cram ready\r\n');
      for (;;) {
        const line = await conn.readLine(30_000);
        if (line === null) return;
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'CAPA') await conn.write('+OK\r\nUSER\r\nSASL CRAM-MD5\r\n.\r\n');
        else if (line === 'AUTH CRAM-MD5') {
          await conn.write(`+ ${b64('<1.2@cram>')}\r\n`);
          if ((await conn.readLine(30_000)) === null) return;
          await sleep(450);
          await conn.write('+OK in\r\n');
        } else if (verb === 'QUIT') {
          conn.end('+OK bye\r\n');
          return;
        } else await conn.write('+OK\r\n');
      }
    });
    gw = await startTestGateway(backend.port, { policy: { timeouts: { idle: '30s', auth: '30s', backendReply: '600ms' } } });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('counts the client\'s answer sent to the backend as activity, so a slow client and a slow backend together are not a timeout', async () => {
    // Challenge at t, answer forwarded at t + 400 ms, backend's reply at t + 850: 850 ms after the
    // challenge, but only 450 after the last thing the gateway wrote to the backend.
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 5000 });
    expect(await c.command('AUTH CRAM-MD5')).toMatch(/^\+ /);
    await sleep(400);
    expect(await c.command(b64(`ok ${'0'.repeat(32)}`), 4000)).toMatch(/^\+OK/);
    expect(await c.command('NOOP')).toMatch(/^\+OK/);
    await c.quit();
  });
});
