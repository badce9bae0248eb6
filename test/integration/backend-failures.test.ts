/**
 * When the backend is down, hangs, or the client goes away in the middle of a body:
 * the client gets -ERR [SYS/TEMP] promptly, and a dropped client never makes the
 * backend enter UPDATE (its DELEs are not applied).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { waitForAudit } from '../harness/audit-wait.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { freePort } from '../harness/ports.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';

const SYS_TEMP = /^-ERR \[SYS\/TEMP\] /;

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

describe('a backend port where nothing listens', () => {
  let onLogin: TestGateway;
  let onAccept: TestGateway;

  beforeAll(async () => {
    const port = await freePort();
    onLogin = await startTestGateway(port, { backend: { probeInterval: '1h' } });
    onAccept = await startTestGateway(port, { backend: { connect: 'on-accept', probeInterval: '1h' } });
  });

  afterAll(async () => {
    await onLogin?.stop();
    await onAccept?.stop();
  });

  it('answers PASS with -ERR [SYS/TEMP] at once and keeps the session', async () => {
    const c = await Pop3TestClient.connect({ port: onLogin.port.pop3s!, tls: true });
    expect(c.greeting).toBe('+OK POP3 gateway ready.');
    expect(await c.command('USER alice')).toMatch(/^\+OK/);
    const first = await timed(() => c.command('PASS alice-secret'));
    expect(first.value).toMatch(SYS_TEMP);
    expect(first.ms).toBeLessThan(1000);
    // Not a verdict on the password: the client may simply try again.
    expect(await c.command('USER alice')).toMatch(/^\+OK/);
    const second = await timed(() => c.command('PASS alice-secret'));
    expect(second.value).toMatch(SYS_TEMP);
    expect(second.ms).toBeLessThan(1000);
    expect(await c.quit()).toMatch(/^\+OK/);
    const logins = await waitForAudit(onLogin, (l) => l.event === 'login', { count: 2 });
    expect(logins.map((l) => l.reason)).toEqual(['backend-unavailable', 'backend-unavailable']);
  });

  it('answers AUTH PLAIN the same way', async () => {
    const c = await Pop3TestClient.connect({ port: onLogin.port.pop3s!, tls: true });
    const r = await timed(() => c.command(`AUTH PLAIN ${Buffer.from('\0alice\0alice-secret').toString('base64')}`));
    expect(r.value).toMatch(SYS_TEMP);
    expect(r.ms).toBeLessThan(1000);
    await c.quit();
  });

  it('greets with -ERR [SYS/TEMP] and closes in on-accept mode', async () => {
    const r = await timed(() => Pop3TestClient.connect({ port: onAccept.port.pop3s!, tls: true }));
    expect(r.value.greeting).toMatch(SYS_TEMP);
    expect(r.ms).toBeLessThan(1000);
    await r.value.waitClosed(2000);
  });
});

describe('a backend that accepts and then says nothing', () => {
  let silent: ScriptBackend;
  let stalling: ScriptBackend;
  let onLogin: TestGateway;
  let onAccept: TestGateway;
  let stallGw: TestGateway;
  const silentConns: ScriptConn[] = [];
  const stallConns: ScriptConn[] = [];
  const timeouts = { backend: { connectTimeout: '300ms', probeInterval: '1h' }, policy: { timeouts: { backendReply: '400ms' } } };

  beforeAll(async () => {
    silent = await startScriptBackend(async (conn) => {
      silentConns.push(conn);
      await conn.waitClosed(60_000);
    });
    // Greets and answers CAPA and USER, then never answers PASS.
    stalling = await startScriptBackend(async (conn) => {
      stallConns.push(conn);
      await conn.write('+OK stalling backend\r\n');
      for (;;) {
        const line = await conn.readLine(60_000);
        if (line === null) return;
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'CAPA') await conn.write('+OK\r\nUSER\r\n.\r\n');
        else if (verb === 'USER') await conn.write('+OK\r\n');
        else if (verb === 'QUIT') {
          await conn.write('+OK\r\n');
          conn.end();
          return;
        }
      }
    });
    [onLogin, onAccept, stallGw] = await Promise.all([
      startTestGateway(silent.port, timeouts),
      startTestGateway(silent.port, { ...timeouts, backend: { ...timeouts.backend, connect: 'on-accept' } }),
      startTestGateway(stalling.port, timeouts),
    ]);
  });

  afterAll(async () => {
    await Promise.all([onLogin?.stop(), onAccept?.stop(), stallGw?.stop()]);
    await silent?.close();
    await stalling?.close();
  });

  it('answers PASS with -ERR [SYS/TEMP] once the greeting is overdue, and drops that connection', async () => {
    const c = await Pop3TestClient.connect({ port: onLogin.port.pop3s!, tls: true });
    expect(await c.command('USER alice')).toMatch(/^\+OK/);
    const before = silent.connections;
    const r = await timed(() => c.command('PASS alice-secret'));
    expect(r.value).toMatch(SYS_TEMP);
    expect(r.ms).toBeGreaterThanOrEqual(250);
    expect(r.ms).toBeLessThan(1500);
    expect(silent.connections).toBe(before + 1);
    await silentConns.at(-1)!.waitClosed(1000);
    await c.quit();
  });

  it('greets with -ERR [SYS/TEMP] within the timeout in on-accept mode', async () => {
    const r = await timed(() => Pop3TestClient.connect({ port: onAccept.port.pop3s!, tls: true }));
    expect(r.value.greeting).toMatch(SYS_TEMP);
    expect(r.ms).toBeLessThan(1500);
    await r.value.waitClosed(2000);
    await silentConns.at(-1)!.waitClosed(1000);
  });

  it('ends the session with -ERR [SYS/TEMP] when the backend never answers PASS', async () => {
    const c = await Pop3TestClient.connect({ port: stallGw.port.pop3s!, tls: true });
    expect(await c.command('USER alice')).toMatch(/^\+OK/);
    const r = await timed(() => c.command('PASS alice-secret'));
    expect(r.value).toMatch(SYS_TEMP);
    expect(r.ms).toBeGreaterThanOrEqual(300);
    expect(r.ms).toBeLessThan(1500);
    await c.waitClosed(2000);
    await stallConns.at(-1)!.waitClosed(1000);
    expect(stallConns.at(-1)!.received.toString('latin1')).not.toContain('QUIT');
  });
});

describe('a client that drops in the middle of a large RETR (real Dovecot)', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  let bigFile: string;
  let smallFile: string;
  const small = 'Subject: small\r\nMessage-ID: <small@example.org>\r\n\r\nkeep me\r\n';

  beforeAll(async () => {
    dovecot = await startDovecot();
    const line = `${'y'.repeat(70)}\r\n`;
    const big = Buffer.from(`Subject: big\r\nMessage-ID: <big@example.org>\r\n\r\n${line.repeat(Math.ceil((24 * 1024 * 1024) / line.length))}`);
    bigFile = dovecot.addMessage('bob', big);
    smallFile = dovecot.addMessage('bob', small);
    gw = await startTestGateway(dovecot.port, { backend: { probeInterval: '1h' } });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('closes the backend without QUIT, applies no DELE, and the next session works', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('bob', 'bob-secret');
    expect(await c.command('DELE 2')).toMatch(/^\+OK/);
    expect(await c.command('RETR 1')).toMatch(/^\+OK/);
    // Wait for about 1 MiB of the 24 MiB body, then vanish.
    const deadline = Date.now() + 5000;
    while (c.buffered.length < 1024 * 1024 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(c.buffered.length).toBeGreaterThanOrEqual(1024 * 1024);
    await c.close();

    // Dovecot reports how the session ended: a dropped connection, never "Logged out" (QUIT).
    const deadlineLog = Date.now() + 3000;
    let ended = '';
    while (Date.now() < deadlineLog) {
      ended = dovecot.readLog().split('\n').filter((l) => /pop3\(bob\).*Disconnected/.test(l)).join('\n');
      if (ended !== '') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(ended).toMatch(/Disconnected/);
    expect(ended).not.toMatch(/Logged out/);
    expect(ended).toMatch(/del=0\//);
    // Message 2 (the one marked deleted) is still there; Dovecot may have moved it from new/ to cur/.
    // (messageFiles sorts by path, and cur/ sorts before new/: compare as sets.)
    const names = dovecot.messageFiles('bob').map((f) => path.basename(f).split(':')[0]).sort();
    expect(names).toEqual([path.basename(bigFile), path.basename(smallFile)].sort());

    // The audit is written asynchronously: wait for the session's last record.
    for (const until = Date.now() + 2000; Date.now() < until;) {
      if (gw.auditLines().some((l) => l.event === 'disconnect' && l.user === 'bob')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const logout = gw.auditLines().filter((l) => l.event === 'logout' && l.user === 'bob');
    expect(logout).toHaveLength(1);
    expect(logout[0]!.deleted).toEqual([]);
    expect((logout[0]!.notDeleted as Array<{ msg: number }>).map((m) => m.msg)).toEqual([2]);
    const disconnect = gw.auditLines().filter((l) => l.event === 'disconnect' && l.user === 'bob');
    expect(disconnect.at(-1)!.reason).toBe('client-closed');

    const d = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await d.login('bob', 'bob-secret');
    expect(await d.command('STAT')).toMatch(/^\+OK 2 \d+$/);
    const body = (await d.multiline('RETR 2')).body!;
    expect(createHash('sha256').update(body).digest('hex')).toBe(createHash('sha256').update(small).digest('hex'));
    expect(await d.quit()).toMatch(/^\+OK/);
    expect(dovecot.messageFiles('bob')).toHaveLength(2);
  });
});
