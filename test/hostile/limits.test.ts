/**
 * Line and size limits, both directions: what a client or a backend can make
 * the gateway hold, and what happens when either breaks the framing rules.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend } from '../harness/script-backend.ts';
import { assertNoSecrets, auditWhen, fakePop3, hostileConfig, liveSessions, sleep, waitUntil, type FakePop3, type FakePop3Options, stopAfterEach, gatewayOnFake } from './helpers.ts';

const running = stopAfterEach();

const setUp = (opts: FakePop3Options = {}, extra: Record<string, unknown> = {}) => gatewayOnFake(running, opts, extra);

async function loggedIn(g: TestGateway): Promise<Pop3TestClient> {
  const c = await Pop3TestClient.connect({ port: g.port.plain! });
  await c.login('alice', 'alice-secret');
  return c;
}

/** Everything the client got after what it already read, once the gateway closed the connection. */
async function restUntilClosed(c: Pop3TestClient, timeoutMs = 8000): Promise<string> {
  await c.waitClosed(timeoutMs);
  return c.buffered.toString('latin1');
}

const PROTOCOL_ERROR = '-ERR [SYS/TEMP] Mail server protocol error.';

describe('client command lines', () => {
  it('answers a command line over limits.commandLine with -ERR and goes on', async () => {
    const { g } = await setUp();
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await c.command(`USER ${'a'.repeat(300)}`)).toBe('-ERR Line too long.');
    await c.login('alice', 'alice-secret');
    expect(await c.command('STAT')).toMatch(/^\+OK 2 /);
    await c.quit();
  });

  it('answers a line that never ends once, and holds at most one line limit plus a chunk of it', async () => {
    const { g } = await setUp();
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    const session = liveSessions(g.gw)[0]!;
    const chunk = Buffer.alloc(16 * 1024, 0x41);
    let maxHeld = 0;
    for (let sent = 0; sent < 1024 * 1024; sent += chunk.length) {
      c.sendRaw(chunk);
      if (sent % (128 * 1024) === 0) {
        await sleep(5);
        maxHeld = Math.max(maxHeld, session.decoder.buffered);
      }
    }
    await sleep(200);
    maxHeld = Math.max(maxHeld, session.decoder.buffered);
    expect(maxHeld).toBeLessThanOrEqual(255 + 64 * 1024);
    expect(session.bytesIn).toBeGreaterThanOrEqual(1024 * 1024); // it really read the whole MiB
    c.sendRaw('\r\n');
    expect(await c.readLine()).toBe('-ERR Line too long.');
    // Exactly one -ERR: the next reply is the CAPA's.
    expect(await c.command('CAPA')).toMatch(/^\+OK/);
    await c.readMultiline();
    await c.quit();
  });

  it('closes the session after limits.maxInvalidCommands over-long lines', async () => {
    const { g } = await setUp({}, { limits: { maxInvalidCommands: 3 } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    const long = `${'X'.repeat(400)}\r\n`;
    c.sendRaw(long.repeat(5));
    expect(await c.readLine()).toBe('-ERR Line too long.');
    expect(await c.readLine()).toBe('-ERR Line too long.');
    expect(await c.readLine()).toBe('-ERR Too many invalid commands, closing connection.');
    expect(await restUntilClosed(c)).toBe('');
  });

  it('accepts commands ended by a bare LF', async () => {
    const { g } = await setUp();
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    c.sendRaw('USER alice\nPASS alice-secret\nSTAT\n');
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect(await c.readLine()).toBe('+OK alice has 2 messages');
    expect(await c.readLine()).toMatch(/^\+OK 2 \d+$/);
    await c.quit();
  });

  for (const [name, bytes] of [
    ['a bare CR', 'NOOP\rDELE 1\r\n'],
    ['a NUL', 'NOOP\x00DELE 1\r\n'],
    ['a bare CR before the verb', '\rDELE 1\r\n'],
    ['a CR inside an argument', 'LIST 1\rDELE 1\r\n'],
  ] as const) {
    it(`refuses a command with ${name} inside and never lets a second command reach the backend`, async () => {
      const { fake, g } = await setUp();
      const c = await loggedIn(g);
      c.sendRaw(bytes);
      expect(await c.readLine()).toMatch(/^-ERR/);
      expect(await c.command('NOOP')).toBe('+OK');
      await c.quit();
      const all = fake.allLines();
      expect(all.some((l) => /DELE/.test(l))).toBe(false);
      expect(all.some((l) => /[\r\0]/.test(l))).toBe(false);
    });
  }

  it('passes an 8-bit (UTF-8) user name through unchanged', async () => {
    const name = Buffer.from('jörg', 'utf8');
    const password = Buffer.from('pässword', 'utf8');
    const { fake, g } = await setUp({ users: { [name.toString('latin1')]: password.toString('latin1') } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    c.sendRaw(Buffer.concat([Buffer.from('USER '), name, Buffer.from('\r\n')]));
    expect(await c.readLine()).toMatch(/^\+OK/);
    c.sendRaw(Buffer.concat([Buffer.from('PASS '), password, Buffer.from('\r\n')]));
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect(await c.command('STAT')).toMatch(/^\+OK 2 /);
    await c.quit();
    expect(fake.allLines()).toContain(`USER ${name.toString('latin1')}`);
    const login = (await auditWhen(g, (l) => l.event === 'login')).find((l) => l.event === 'login');
    expect(login?.user).toBe('jörg');
  });

  it('refuses 8-bit bytes in the verb and goes on', async () => {
    const { g } = await setUp();
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    c.sendRaw(Buffer.from([0xc3, 0xbc, 0x53, 0x45, 0x52, 0x20, 0x61, 0x0d, 0x0a]));
    expect(await c.readLine()).toMatch(/^-ERR/);
    c.sendRaw(Buffer.from([0xff, 0xfe, 0x0d, 0x0a]));
    expect(await c.readLine()).toMatch(/^-ERR/);
    await c.login('alice', 'alice-secret');
    await c.quit();
  });
});

describe('AUTH exchanges that never end', () => {
  /** A backend offering SASL XOAUTH2 that answers every line of the exchange with another challenge. */
  function endlessSasl(): FakePop3Options {
    let inAuth = false;
    return {
      capa: ['USER', 'SASL XOAUTH2'],
      onCommand: async (conn, verb) => {
        if (verb === 'AUTH' || inAuth) {
          inAuth = true;
          await conn.write('+ \r\n');
          return true;
        }
        return false;
      },
    };
  }

  it('closes a relayed exchange the client keeps feeding when the auth timeout expires', async () => {
    const { g } = await setUp(endlessSasl(), { policy: { timeouts: { auth: '1500ms' } } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await c.command('AUTH XOAUTH2')).toBe('+ ');
    const started = Date.now();
    let last = '';
    let rounds = 0;
    while (Date.now() - started < 6000 && !c.isClosed) {
      c.send('dGhpcyBpcyBub3QgZW5kaW5n');
      last = await c.readLine(3000).catch(() => '(closed)');
      if (last !== '+ ') break;
      rounds++;
      await sleep(100);
    }
    if (last === '+ ') last = await c.readLine(3000); // closed between two rounds: the -ERR is buffered
    expect(rounds).toBeGreaterThan(3);
    expect(last).toBe('-ERR Authentication timeout, closing connection.');
    expect(Date.now() - started).toBeLessThan(4000);
    await c.waitClosed();
  });

  it('closes a relayed exchange the client never answers when the auth timeout expires', async () => {
    const { g } = await setUp(endlessSasl(), { policy: { timeouts: { auth: '1s' } } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await c.command('AUTH XOAUTH2')).toBe('+ ');
    expect(await c.readLine(4000)).toBe('-ERR Authentication timeout, closing connection.');
    await c.waitClosed();
  });

  it('closes a local PLAIN exchange the client never answers when the auth timeout expires', async () => {
    const { fake, g } = await setUp({}, { policy: { timeouts: { auth: '1s' } } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await c.command('AUTH PLAIN')).toBe('+ ');
    expect(await c.readLine(4000)).toBe('-ERR Authentication timeout, closing connection.');
    await c.waitClosed();
    expect(fake.allLines().some((l) => l.startsWith('AUTH'))).toBe(false);
  });
});

describe('SASL line limit (limits.saslLine)', () => {
  /** XOAUTH2 relayed: "+ " then one client line; +OK when that line is a well-formed token. */
  function xoauth2(): FakePop3Options & { tokens: string[] } {
    const tokens: string[] = [];
    let inAuth = false;
    return {
      tokens,
      capa: ['USER', 'SASL XOAUTH2'],
      onCommand: async (conn, verb, line) => {
        if (inAuth) {
          inAuth = false;
          tokens.push(line);
          await conn.write(/^[A-Za-z0-9+/=]+$/.test(line) ? '+OK welcome\r\n' : '-ERR [AUTH] bad token\r\n');
          return true;
        }
        if (verb === 'AUTH') {
          inAuth = true;
          await conn.write('+ \r\n');
          return true;
        }
        return false;
      },
    };
  }

  function token(size: number): string {
    const json = `user=alice\x01auth=Bearer ${'t'.repeat(size)}\x01\x01`;
    return Buffer.from(json).toString('base64').slice(0, size);
  }

  it('relays a 10 KiB XOAUTH2 token whole', async () => {
    const opts = xoauth2();
    const { g } = await setUp(opts);
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await c.command('AUTH XOAUTH2')).toBe('+ ');
    const t = token(10 * 1024);
    expect(await c.command(t)).toBe('+OK welcome');
    expect(opts.tokens).toEqual([t]);
    expect(await c.command('STAT')).toMatch(/^\+OK 2 /);
    await c.quit();
  });

  it('refuses a 100 KiB XOAUTH2 token without relaying any of it, and the session goes on', async () => {
    const opts = xoauth2();
    const { fake, g } = await setUp(opts);
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await c.command('AUTH XOAUTH2')).toBe('+ ');
    const reply = await c.command(token(100 * 1024));
    expect(reply).toMatch(/^-ERR/);
    // Exactly one reply to the refused exchange, then a normal pre-login session.
    expect(await c.command('CAPA')).toMatch(/^\+OK/);
    await c.readMultiline();
    await c.login('alice', 'alice-secret');
    await c.quit();
    expect(fake.allLines().every((l) => l.length < 16 * 1024)).toBe(true);
    // The backend only ever saw the cancel that ended its side of the exchange.
    expect(opts.tokens).toEqual(['*']);
  });

  it('refuses a 100 KiB PLAIN response and the session goes on', async () => {
    const { g } = await setUp();
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await c.command('AUTH PLAIN')).toBe('+ ');
    expect(await c.command('A'.repeat(100 * 1024))).toMatch(/^-ERR/);
    expect(await c.command('CAPA')).toMatch(/^\+OK/);
    await c.readMultiline();
    await c.login('alice', 'alice-secret');
    await c.quit();
  });
});

describe('backend replies that break the rules', () => {
  it('closes cleanly with -ERR [SYS/TEMP] when a status line is over 512 octets', async () => {
    const { g } = await setUp({ onCommand: async (conn, verb) => {
      if (verb !== 'STAT') return false;
      await conn.write(`+OK 2 ${'9'.repeat(600)}\r\n`);
      return true;
    } });
    const c = await loggedIn(g);
    expect(await c.command('STAT')).toBe(PROTOCOL_ERROR);
    expect(await restUntilClosed(c)).toBe('');
  });

  it('closes cleanly when an over-long line arrives without any line end', async () => {
    const { g } = await setUp({ onCommand: async (conn, verb) => {
      if (verb !== 'NOOP') return false;
      await conn.write(`+OK ${'z'.repeat(100_000)}`);
      return true;
    } });
    const c = await loggedIn(g);
    expect(await c.command('NOOP')).toBe(PROTOCOL_ERROR);
    expect(await restUntilClosed(c)).toBe('');
  });

  it('closes with -ERR [SYS/TEMP] when the greeting is over 512 octets (on-accept)', async () => {
    const { g } = await setUp({ greeting: `+OK ${'g'.repeat(700)}` }, { backend: { connect: 'on-accept' } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(c.greeting).toBe('-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.');
    await c.waitClosed();
  });

  it('ends a multi-line reply that never terminates at limits.maxMultiline, without a terminator', async () => {
    const { g } = await setUp({ onCommand: async (conn, verb) => {
      if (verb !== 'RETR') return false;
      await conn.write('+OK endless\r\n');
      const line = Buffer.from(`${'y'.repeat(98)}\r\n`);
      const block = Buffer.concat(Array.from({ length: 1000 }, () => line));
      for (let i = 0; i < 40 && !conn.closed; i++) await conn.write(block); // up to 4 MB
      return true;
    } }, { limits: { maxMultiline: '1MiB' } });
    const c = await loggedIn(g);
    expect(await c.command('RETR 1')).toBe('+OK endless');
    const rest = await restUntilClosed(c);
    expect(rest.length).toBeGreaterThan(512 * 1024);
    expect(rest.length).toBeLessThan(1024 * 1024 + 64 * 1024);
    expect(rest).not.toContain('\r\n.\r\n');
    // Cut in the middle of the body: nothing more is written (an -ERR would join the message).
    expect(rest).not.toContain('-ERR');
    await g.logs.waitFor((l) => l.event === 'backend-protocol-violation' && l.reason === 'multiline-too-large');
  });

  it('ends a multi-line reply that stalls half way at the backend reply timeout, without a terminator', async () => {
    const { g } = await setUp({ onCommand: async (conn, verb) => {
      if (verb !== 'RETR') return false;
      await conn.write('+OK 5000 octets\r\nSubject: half\r\n\r\nfirst half of the body\r\n');
      return true; // and never another byte
    } }, { policy: { timeouts: { backendReply: '1s' } } });
    const c = await loggedIn(g);
    const started = Date.now();
    expect(await c.command('RETR 1')).toBe('+OK 5000 octets');
    const rest = await restUntilClosed(c);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(rest).not.toContain('\r\n.\r\n');
    expect(rest).toBe('Subject: half\r\n\r\nfirst half of the body\r\n');
  });

  it('closes the session when the backend sends a reply nobody asked for', async () => {
    const { b, g } = await setUp({ onCommand: async (conn, verb) => {
      if (verb !== 'PASS') return false;
      await conn.write('+OK logged in\r\n');
      await sleep(200);
      await conn.write('+OK surprise\r\n');
      return true;
    } });
    const c = await loggedIn(g);
    expect(await c.readLine(3000)).toBe(PROTOCOL_ERROR);
    expect(await restUntilClosed(c)).toBe('');
    await g.logs.waitFor((l) => l.event === 'backend-protocol-violation' && l.reason === 'unsolicited-reply');
    expect(b.connections).toBeGreaterThanOrEqual(2);
  });

  it('closes the session when a reply is followed by an extra line in the same packet', async () => {
    const { g } = await setUp({ onCommand: async (conn, verb) => {
      if (verb !== 'NOOP') return false;
      await conn.write('+OK\r\n+OK extra\r\n');
      return true;
    } });
    const c = await loggedIn(g);
    // The NOOP reply itself may or may not get out first; the session must end either way.
    const first = await c.command('NOOP');
    const rest = await restUntilClosed(c);
    expect([first, ...rest.split('\r\n').filter((l) => l !== '')]).toContain(PROTOCOL_ERROR);
    expect(rest).not.toContain('extra');
  });

  it('closes the session when a SASL continuation answers a command that is not AUTH', async () => {
    const { g } = await setUp({ onCommand: async (conn, verb) => {
      if (verb !== 'STAT') return false;
      await conn.write('+ c2VuZCBtZSBtb3Jl\r\n');
      return true;
    } });
    const c = await loggedIn(g);
    expect(await c.command('STAT')).toBe(PROTOCOL_ERROR);
    expect(await restUntilClosed(c)).toBe('');
  });

  it('never relays a line a backend sends right behind its greeting', async () => {
    const { g } = await setUp({ onConnect: async (conn) => {
      await conn.write('+OK ready\r\n+OK injected\r\n');
      return false;
    } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.ok('USER alice');
    // Had the stray line been taken as the reply to USER, the backend's own reply would pass for PASS's.
    expect(await c.command('PASS wrong-password')).toBe(PROTOCOL_ERROR);
    expect(await restUntilClosed(c)).toBe('');
  });

  it('closes with -ERR when a status line is not POP3', async () => {
    const { g } = await setUp({ onCommand: async (conn, verb) => {
      if (verb !== 'STAT') return false;
      await conn.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
      return true;
    } });
    const c = await loggedIn(g);
    expect(await c.command('STAT')).toBe(PROTOCOL_ERROR);
    expect(await restUntilClosed(c)).toBe('');
  });

  it('closes with -ERR [SYS/TEMP] when the greeting is not POP3 (on-accept)', async () => {
    const { g } = await setUp({ greeting: 'HTTP/1.1 400 Bad Request' }, { backend: { connect: 'on-accept' } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(c.greeting).toMatch(/^-ERR \[SYS\/TEMP\]/);
    await c.waitClosed();
  });
});

describe('bounded input while the session waits', () => {
  it('stops reading a client that floods during a slow login', async () => {
    const { g } = await setUp({ onCommand: async (conn, verb) => {
      if (verb !== 'PASS') return false;
      await sleep(1500);
      await conn.write('+OK slow login\r\n');
      return true;
    } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.ok('USER alice');
    c.send('PASS alice-secret');
    const session = liveSessions(g.gw)[0]!;
    await waitUntil('the login to start', () => session.busy);
    const flood = Buffer.from('NOOP\r\n'.repeat(50_000)); // 300 KB of pipelined commands
    c.sendRaw(flood);
    await sleep(600);
    expect(session.decoder.buffered).toBeLessThan(32 * 1024 + 128 * 1024);
    expect(await c.readLine(5000)).toBe('+OK slow login');
  });
});
