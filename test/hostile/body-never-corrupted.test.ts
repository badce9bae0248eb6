/**
 * Issue 9 item 12: a backend that dies (or stalls) in the middle of a multi-line body. The gateway
 * must close the client connection and write nothing more: the client's bytes end exactly with the
 * partial body, then EOF, so it sees an unterminated reply and discards it. An -ERR written there
 * would become part of the stored message. Between replies the client still gets -ERR [SYS/TEMP].
 */
import { describe, expect, it } from 'vitest';
import { poplib } from '../harness/clients.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import type { ScriptConn } from '../harness/script-backend.ts';
import { auditWhen, gatewayOnFake, liveSessions, sleep, stopAfterEach, waitUntil, type FakePop3Options } from './helpers.ts';

const running = stopAfterEach();

/** What the backend has sent of the body when it dies: whole lines, then half of one. */
const PARTIAL = `Subject: cut short\r\n\r\n${'a body line that the client will never see the end of\r\n'.repeat(400)}half a li`;

type Death = 'close' | 'reset' | 'stall';

async function die(conn: ScriptConn, how: Death): Promise<void> {
  if (how === 'close') conn.end();
  if (how === 'reset') {
    await sleep(100); // let the gateway read what was sent before the RST discards it
    conn.socket.resetAndDestroy();
  }
  // 'stall': say nothing more; the gateway's reply timer fires
}

/** On `command` (exactly this line), the backend sends `status`, PARTIAL, then dies `how`. */
function dyingBody(command: string, status: string, how: Death): FakePop3Options {
  return {
    onCommand: async (conn, _verb, line) => {
      if (line.toUpperCase() !== command) return false;
      await conn.write(`${status}\r\n${PARTIAL}`);
      await die(conn, how);
      return true;
    },
  };
}

const FAST_TIMEOUT = { policy: { timeouts: { backendReply: '600ms' } } };

describe('a backend that dies in the middle of a body', () => {
  const cases: Array<[string, string, Death]> = [
    ['RETR 1', '+OK 30000 octets', 'close'],
    ['RETR 1', '+OK 30000 octets', 'reset'],
    ['RETR 1', '+OK 30000 octets', 'stall'],
    ['TOP 1 10', '+OK top of message follows', 'close'],
    ['LIST', '+OK 2 messages', 'reset'],
    ['UIDL', '+OK', 'stall'],
  ];
  for (const [command, status, how] of cases) {
    it(`${command}: after a backend ${how} the client's bytes end exactly with the partial body, then EOF`, async () => {
      const { g } = await gatewayOnFake(running, dyingBody(command, status, how), FAST_TIMEOUT);
      const c = await Pop3TestClient.connect({ port: g.port.plain! });
      await c.login('alice', 'alice-secret');
      expect(await c.command(command)).toBe(status);
      await c.waitClosed(5000);
      expect(c.buffered.toString('latin1')).toBe(PARTIAL);
      const audit = await auditWhen(g, (l) => l.event === 'disconnect');
      const reason = audit.find((l) => l.event === 'disconnect')!.reason;
      expect(reason).toBe(how === 'stall' ? 'backend-timeout' : 'backend-closed');
      expect(g.logs.text()).toContain('body-cut');
    });
  }

  it('writes nothing for the commands pipelined behind the cut body either', async () => {
    const { g } = await gatewayOnFake(running, dyingBody('RETR 2', '+OK 30000 octets', 'close'));
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    c.sendRaw('STAT\r\nRETR 2\r\nNOOP\r\nSTAT\r\n');
    expect(await c.readLine()).toMatch(/^\+OK 2 /);
    expect(await c.readLine()).toBe('+OK 30000 octets');
    await c.waitClosed(5000);
    expect(c.buffered.toString('latin1')).toBe(PARTIAL);
  });

  it('writes nothing into a body when an administrator kicks the session in the middle of it', async () => {
    const { g } = await gatewayOnFake(running, dyingBody('RETR 1', '+OK 30000 octets', 'stall'));
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    expect(await c.command('RETR 1')).toBe('+OK 30000 octets');
    await waitUntil('the partial body', () => c.buffered.length === PARTIAL.length);
    for (const session of liveSessions(g.gw)) session.kick('kicked');
    await c.waitClosed(5000);
    expect(c.buffered.toString('latin1')).toBe(PARTIAL);
  });

  it('still answers -ERR [SYS/TEMP] when the backend dies between replies', async () => {
    const { g } = await gatewayOnFake(running, {
      onCommand: (conn, verb) => {
        if (verb !== 'NOOP') return false;
        conn.end();
        return true;
      },
    });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    expect((await c.multiline('RETR 1')).body!.toString('latin1')).toContain('first body');
    expect(await c.command('NOOP')).toBe('-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.');
    await c.waitClosed(5000);
    expect(c.buffered.length).toBe(0);
  });

  it('makes python poplib retr() raise instead of returning a message', async () => {
    const { g } = await gatewayOnFake(running, dyingBody('RETR 1', '+OK 30000 octets', 'close'));
    const r = await poplib(`
p = connect()
p.user(USER); p.pass_(PASSWORD)
try:
    resp, lines, octets = p.retr(1)
    out({"returned": True, "lines": len(lines), "err": any(l.startswith(b"-ERR") for l in lines)})
except Exception as e:
    out({"returned": False, "error": type(e).__name__})
`, { port: g.port.plain!, user: 'alice', password: 'alice-secret' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout.trim())).toEqual({ returned: false, error: 'error_proto' });
  });
});
