/**
 * Relayed SASL against a backend that misbehaves in ways no real server does (issue 9 item 4):
 * it accepts a cancelled exchange, or logs in before it has seen any credentials. Neither may
 * give the client a session, let alone one without a user; an unreadable CRAM-MD5 response is
 * never forwarded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';
import { eventually } from './policy-helpers.ts';

const AUTH_FAILED = '-ERR [AUTH] Authentication failed.';
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

/** Offers CRAM-MD5 and SCRAM-SHA-256; CRAM-MD5 accepts whatever the client answers, even "*"; SCRAM logs in at once. */
function yesBackend(conns: ScriptConn[]): (conn: ScriptConn) => Promise<void> {
  return async (conn) => {
    conns.push(conn);
    await conn.write('+OK yes-man ready\r\n');
    for (;;) {
      const line = await conn.readLine(60_000);
      if (line === null) return;
      const verb = line.split(' ')[0]!.toUpperCase();
      if (verb === 'CAPA') await conn.write('+OK\r\nUSER\r\nSASL PLAIN CRAM-MD5 SCRAM-SHA-256\r\n.\r\n');
      else if (line === 'AUTH CRAM-MD5') {
        await conn.write(`+ ${b64('<1.2@yes>')}\r\n`);
        if ((await conn.readLine(60_000)) === null) return;
        await conn.write('+OK accepted anything\r\n');
      } else if (line === 'AUTH SCRAM-SHA-256') await conn.write('+OK logged in without credentials\r\n');
      else if (verb === 'QUIT') {
        await conn.write('+OK bye\r\n');
        return;
      } else await conn.write('-ERR no\r\n');
    }
  };
}

describe('relayed SASL against a backend that says yes to anything', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;
  const conns: ScriptConn[] = [];

  beforeAll(async () => {
    backend = await startScriptBackend(yesBackend(conns));
    gw = await startTestGateway(backend.port, { policy: { auth: { failureDelay: '50ms', maxAttemptsPerSession: 10 } } });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  it('never forwards an unreadable CRAM-MD5 response and gives no session when the backend accepts the cancel', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 8000 });
    expect(await c.command('AUTH CRAM-MD5')).toMatch(/^\+ /);
    expect(await c.command(b64('nobody-without-a-digest'))).toBe(AUTH_FAILED);
    expect(await c.command('STAT')).toMatch(/^-ERR/);
    await c.quit();
    const received = conns.map((k) => k.received.toString('latin1')).join('');
    expect(received).not.toContain(b64('nobody-without-a-digest'));
    expect(received).toContain('\r\n*\r\n');
    expect(gw.logs.find({ event: 'backend-protocol-violation', reason: 'accepted-cancelled-auth' })).toHaveLength(1);
  });

  it('gives no session when the backend logs in before the client sent any credentials', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 8000 });
    expect(await c.command('AUTH SCRAM-SHA-256')).toMatch(/^-ERR/);
    expect(await c.command('STAT')).toMatch(/^-ERR/);
    await c.quit();
    await eventually(() => gw.logs.find({ event: 'backend-protocol-violation', reason: 'login-without-user' }).length === 1, 'the violation logged');
    expect(gw.auditLines().some((l) => l.event === 'login' && l.result === 'ok')).toBe(false);
  });
});
