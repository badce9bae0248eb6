/**
 * The operational log (pino JSON lines): one line when a session starts, one when it ends,
 * and one per command with the session id, the verb, the result and the duration.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';

type Line = Record<string, unknown>;

async function serve(conn: ScriptConn): Promise<void> {
  await conn.write('+OK log backend ready\r\n');
  for (;;) {
    const line = await conn.readLine(30_000);
    if (line === null) return;
    const [verb = '', arg] = line.toUpperCase().split(' ');
    if (verb === 'CAPA') await conn.write('+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n');
    else if (verb === 'USER') await conn.write('+OK\r\n');
    else if (verb === 'PASS') await conn.write(line === 'PASS right' ? '+OK in\r\n' : '-ERR [AUTH] no\r\n');
    else if (verb === 'STAT') await conn.write('+OK 1 40\r\n');
    else if (verb === 'LIST') await conn.write(arg === undefined ? '+OK\r\n1 40\r\n.\r\n' : arg === '1' ? '+OK 1 40\r\n' : '-ERR no such message\r\n');
    else if (verb === 'UIDL') await conn.write(arg === undefined ? '+OK\r\n1 uid-1\r\n.\r\n' : arg === '1' ? '+OK 1 uid-1\r\n' : '-ERR no such message\r\n');
    else if (verb === 'RETR') await conn.write(arg === '1' ? '+OK\r\nSubject: log\r\n\r\nbody\r\n.\r\n' : '-ERR no such message\r\n');
    else if (verb === 'TOP') await conn.write(arg === '1' ? '+OK\r\nSubject: log\r\n\r\n.\r\n' : '-ERR no such message\r\n');
    else if (verb === 'NOOP' || verb === 'DELE' || verb === 'RSET') await conn.write('+OK\r\n');
    else if (verb === 'QUIT') {
      await conn.write('+OK bye\r\n');
      conn.end();
      return;
    } else await conn.write('-ERR unknown\r\n');
  }
}

describe('session and command log lines', () => {
  let backend: ScriptBackend;
  let gw: TestGateway;

  beforeAll(async () => {
    backend = await startScriptBackend(serve);
    gw = await startTestGateway(backend.port, { backend: { probeInterval: '1h' } });
  });

  afterAll(async () => {
    await gw?.stop();
    await backend?.close();
  });

  /** Runs `script` in one session and returns that session's log lines, once it has ended. */
  async function session(port: number, tls: boolean, script: (c: Pop3TestClient) => Promise<void>): Promise<{ id: string; lines: Line[] }> {
    const before = new Set(gw.logs.lines().filter((l) => l.event === 'session-start').map((l) => l.session));
    const c = await Pop3TestClient.connect({ port, tls });
    const start = await gw.logs.waitFor((l) => l.event === 'session-start' && !before.has(l.session));
    const id = start.session as string;
    await script(c);
    await gw.logs.waitFor((l) => l.event === 'session-end' && l.session === id);
    return { id, lines: gw.logs.lines().filter((l) => l.session === id) };
  }

  function commands(lines: Line[]): Array<{ verb: unknown; result: unknown }> {
    return lines.filter((l) => l.event === 'command').map((l) => ({ verb: l.verb, result: l.result }));
  }

  it('writes one start line, one end line and one line per command, all with the session id', async () => {
    const { id, lines } = await session(gw.port.pop3s!, true, async (c) => {
      await c.multiline('CAPA');
      await c.command('USER carol');
      await c.command('PASS right');
      await c.command('STAT');
      await c.multiline('LIST');
      await c.multiline('UIDL');
      await c.multiline('TOP 1 0');
      await c.multiline('RETR 1');
      await c.command('RETR 9');
      await c.command('DELE 1');
      await c.command('RSET');
      await c.command('NOOP');
      await c.command('XYZZY');
      await c.quit();
    });
    expect(id).toMatch(/^\S{8,}$/);
    expect(lines.filter((l) => l.event === 'session-start')).toHaveLength(1);
    expect(lines.filter((l) => l.event === 'session-end')).toHaveLength(1);
    expect(lines[0]!.event).toBe('session-start');
    expect(lines.at(-1)!.event).toBe('session-end');
    // Every key once per line (JSON.parse keeps the last of a repeated key, so check the text).
    for (const text of gw.logs.text().split('\n').filter((t) => t.includes(`"session":"${id}"`))) {
      expect(text.match(/"client":/g) ?? [], text).toHaveLength(1);
    }
    expect(commands(lines)).toEqual([
      { verb: 'CAPA', result: 'ok' },
      { verb: 'USER', result: 'ok' },
      { verb: 'PASS', result: 'ok' },
      { verb: 'STAT', result: 'ok' },
      { verb: 'LIST', result: 'ok' },
      { verb: 'UIDL', result: 'ok' },
      { verb: 'TOP', result: 'ok' },
      { verb: 'RETR', result: 'ok' },
      { verb: 'RETR', result: 'err' },
      { verb: 'DELE', result: 'ok' },
      { verb: 'RSET', result: 'ok' },
      { verb: 'NOOP', result: 'ok' },
      // An unknown verb is logged as OTHER, not as typed.
      { verb: 'OTHER', result: 'err' },
      { verb: 'QUIT', result: 'ok' },
    ]);
    for (const l of lines) {
      // JSON lines from pino: level, time and message on every one.
      expect(typeof l.level).toBe('number');
      expect(typeof l.time).toBe('number');
      expect(l.listener).toBe('pop3s');
      if (l.event === 'command') expect(typeof l.ms === 'number' && l.ms >= 0, JSON.stringify(l)).toBe(true);
    }
    const start = lines[0]!;
    expect(start.client).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(start.tls).toMatch(/^TLSv1\.[23]$/);
    const end = lines.at(-1)!;
    expect(end).toMatchObject({ reason: 'quit', user: 'carol' });
    expect(typeof end.ms).toBe('number');
    expect(end.bytesIn).toBeGreaterThan(0);
    expect(end.bytesOut).toBeGreaterThan(0);
    // Message commands name the message (not as `msg`, which is pino's message key).
    expect(lines.find((l) => l.event === 'command' && l.verb === 'RETR')).toMatchObject({ msgNum: 1, msg: 'command' });
  });

  it('logs failed logins, refusals and a session that never logs in, and never a password', async () => {
    const { lines } = await session(gw.port.pop3!, false, async (c) => {
      await c.command('USER carol'); // before STLS: refused
      await c.command('STAT'); // not in this state
      await c.startTls({ rejectUnauthorized: false });
      await c.command('USER carol');
      await c.command('PASS wrong-password-here');
      await c.command(`AUTH PLAIN ${Buffer.from('\0carol\0right').toString('base64')}`);
      await c.command('QUIT');
      await c.waitClosed();
    });
    const got = lines.filter((l) => l.event === 'command' || l.event === 'policy').map((l) => ({ verb: l.verb, result: l.result }));
    expect(got).toEqual([
      { verb: 'USER', result: 'denied' },
      { verb: 'STAT', result: 'err' },
      { verb: 'STLS', result: 'ok' },
      { verb: 'USER', result: 'ok' },
      { verb: 'PASS', result: 'err' },
      { verb: 'AUTH', result: 'ok' },
      { verb: 'QUIT', result: 'ok' },
    ]);
    const never = await session(gw.port.pop3s!, true, async (c) => {
      await c.close();
    });
    expect(never.lines.map((l) => l.event)).toEqual(['session-start', 'session-end']);
    expect(never.lines[1]).toMatchObject({ reason: 'client-closed' });
    const text = gw.logs.text();
    for (const secret of ['wrong-password-here', 'right', Buffer.from('\0carol\0right').toString('base64')]) {
      expect(text).not.toMatch(new RegExp(`\\b${secret.replace(/[+/=]/g, '\\$&')}\\b`));
    }
  });

  it('ends a live session with a session-end line when the gateway stops, after the grace period', async () => {
    const other = await startTestGateway(backend.port, { backend: { probeInterval: '1h' } });
    const c = await Pop3TestClient.connect({ port: other.port.pop3s!, tls: true });
    await c.login('carol', 'right');
    const started = performance.now();
    await other.stop(); // shutdown grace 500 ms in the test gateway
    const ms = performance.now() - started;
    expect(ms).toBeGreaterThanOrEqual(400);
    expect(ms).toBeLessThan(3000);
    expect(await c.readLine()).toBe('-ERR [SYS/TEMP] Server shutting down, try again later.');
    await c.waitClosed(2000);
    const end = other.logs.find({ event: 'session-end' });
    expect(end).toHaveLength(1);
    expect(end[0]).toMatchObject({ reason: 'shutdown', user: 'carol' });
  });
});
