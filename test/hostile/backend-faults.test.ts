/**
 * A backend that refuses, resets or stalls at every stage: the client always
 * gets a POP3 answer (-ERR [SYS/TEMP]) or a closed connection, never a body that
 * looks complete when it is not, and the audit never claims deletions the
 * backend did not confirm.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend } from '../harness/script-backend.ts';
import { assertNoSecrets, auditWhen, fakePop3, hostileConfig, sleep, waitUntil, type FakePop3, type FakePop3Options, stopAfterEach, gatewayOnFake } from './helpers.ts';

const running = stopAfterEach();

const UNAVAILABLE = '-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.';
const TIMEOUT = '-ERR [SYS/TEMP] Mail server did not answer in time.';

const setUp = (opts: FakePop3Options = {}, extra: Record<string, unknown> = {}) => gatewayOnFake(running, opts, extra);

/** The first audit record of `event`, once the (asynchronous) audit file has it. */
async function auditRecord(g: TestGateway, event: string): Promise<Record<string, unknown>> {
  await waitUntil(`an audit ${event} record`, () => g.auditLines().some((l) => l.event === event));
  return g.auditLines().find((l) => l.event === event)!;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * A loopback port whose TCP handshakes never complete: a listener with a full accept queue
 * (backlog 0, one connection parked in it, never accepted), so further SYNs go unanswered.
 */
async function stallingPort(): Promise<{ port: number; close(): Promise<void> }> {
  const py = spawn('python3', ['-c', [
    'import socket, sys',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'print(s.getsockname()[1], flush=True)',
    'sys.stdin.read()',
  ].join('\n')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    py.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    py.once('error', reject);
  });
  const filler = net.connect({ host: '127.0.0.1', port });
  filler.on('error', () => undefined);
  await new Promise((r) => filler.once('connect', r));
  return {
    port,
    close: async () => {
      filler.destroy();
      py.stdin.end();
      if (py.exitCode === null) await new Promise((r) => py.once('exit', r));
    },
  };
}

/** Backend behaviour only for connections that log in (the gateway's probe sees a normal server). */
function onSession(verb: string, act: (conn: Parameters<NonNullable<FakePop3Options['onCommand']>>[0]) => Promise<void> | void): FakePop3Options {
  return {
    onCommand: async (conn, v) => {
      if (v !== verb) return false;
      await act(conn);
      return true;
    },
  };
}

describe('backend unreachable or broken before login (on-login)', () => {
  it('answers PASS with -ERR [SYS/TEMP] when the backend port is closed, and the session goes on', async () => {
    const g = await startTestGateway(await closedPort(), hostileConfig());
    running.push(g);
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.ok('USER alice');
    expect(await c.command('PASS alice-secret')).toBe(UNAVAILABLE);
    await c.ok('USER alice');
    expect(await c.command('PASS alice-secret')).toBe(UNAVAILABLE);
    expect(await c.quit()).toMatch(/^\+OK/);
    await waitUntil('two login records', () => g.auditLines().filter((l) => l.event === 'login').length >= 2);
    const login = g.auditLines().filter((l) => l.event === 'login');
    expect(login.map((l) => l.reason)).toEqual(['backend-unavailable', 'backend-unavailable']);
  });

  it('answers PASS with -ERR [SYS/TEMP] after backend.connectTimeout when the TCP connection never completes', async () => {
    const stalling = await stallingPort();
    running.push(stalling);
    const g = await startTestGateway(stalling.port, hostileConfig({ backend: { connectTimeout: '700ms' } }));
    running.push(g);
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.ok('USER alice');
    const started = Date.now();
    expect(await c.command('PASS alice-secret', 5000)).toBe(UNAVAILABLE);
    expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    expect(await c.quit()).toMatch(/^\+OK/);
  });

  const greetingFaults: Array<[string, FakePop3Options, string]> = [
    ['resets before its greeting', { onConnect: (conn) => (conn.socket.resetAndDestroy(), false) }, UNAVAILABLE],
    ['closes after a half greeting', { onConnect: async (conn) => (await conn.write('+OK hal'), conn.end(), false) }, UNAVAILABLE],
    ['greets with -ERR', { greeting: '-ERR [SYS/TEMP] go away' }, UNAVAILABLE],
    ['never greets', { onConnect: () => false }, UNAVAILABLE],
  ];
  for (const [what, opts, reply] of greetingFaults) {
    it(`answers PASS with -ERR [SYS/TEMP] when the backend ${what}`, async () => {
      const { fake, g } = await setUp(opts, { policy: { timeouts: { backendReply: '700ms' } } });
      const c = await Pop3TestClient.connect({ port: g.port.plain! });
      await c.ok('USER alice');
      expect(await c.command('PASS alice-secret', 5000)).toBe(reply);
      expect(await c.command('CAPA')).toMatch(/^\+OK/);
      await c.readMultiline();
      await c.close();
      expect(fake.allLines().join('\n')).not.toMatch(/USER|PASS|alice/);
    });
  }

  it('closes with -ERR [SYS/TEMP] as the greeting when the backend is unreachable (on-accept)', async () => {
    const g = await startTestGateway(await closedPort(), hostileConfig({ backend: { connect: 'on-accept' } }));
    running.push(g);
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(c.greeting).toBe(UNAVAILABLE);
    await c.waitClosed();
  });

  it('closes with -ERR [SYS/TEMP] as the greeting when the backend never greets (on-accept)', async () => {
    const { g } = await setUp({ onConnect: () => false }, { backend: { connect: 'on-accept' }, policy: { timeouts: { backendReply: '700ms' } } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(c.greeting).toBe(UNAVAILABLE);
    await c.waitClosed();
  });
});

describe('backend faults during login', () => {
  const cases: Array<[string, FakePop3Options, string]> = [
    ['resets on USER', onSession('USER', (conn) => void conn.socket.resetAndDestroy()), UNAVAILABLE],
    ['closes on USER', onSession('USER', (conn) => conn.end()), UNAVAILABLE],
    ['stalls on USER', onSession('USER', () => undefined), TIMEOUT],
    ['resets on PASS', onSession('PASS', (conn) => void conn.socket.resetAndDestroy()), UNAVAILABLE],
    ['stalls on PASS', onSession('PASS', () => undefined), TIMEOUT],
  ];
  for (const [what, opts, reply] of cases) {
    it(`answers -ERR [SYS/TEMP] and closes when the backend ${what}`, async () => {
      const { g } = await setUp(opts, { policy: { timeouts: { backendReply: '700ms' } } });
      const c = await Pop3TestClient.connect({ port: g.port.plain! });
      await c.ok('USER alice');
      expect(await c.command('PASS alice-secret', 5000)).toBe(reply);
      await c.waitClosed();
      await g.logs.waitFor((l) => l.event === 'session-end');
      const next = await Pop3TestClient.connect({ port: g.port.plain! });
      expect(next.greeting).toMatch(/^\+OK/);
      await next.close();
    });
  }
});

describe('a backend that offers no way to log in the gateway can use', () => {
  it('answers -ERR [SYS/TEMP] without blaming the password, sends no credential, and the session goes on', async () => {
    // CAPA without USER and without SASL PLAIN: only a mechanism the gateway cannot run for a PASS.
    const { fake, g } = await setUp({ capa: ['TOP', 'UIDL', 'SASL XOAUTH2', 'PIPELINING'] });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.ok('USER alice');
    expect(await c.command('PASS alice-secret')).toBe(UNAVAILABLE);
    expect(await c.command('NOOP')).toMatch(/^-ERR/); // still in AUTHORIZATION, not closed
    await c.quit();
    const login = g.auditLines().find((l) => l.event === 'login');
    expect(login).toMatchObject({ result: 'err', reason: 'backend-no-login-method' });
    expect(fake.allLines().some((l) => /^(USER|PASS|AUTH)\b/i.test(l))).toBe(false);
  });
});

describe('backend faults after login', () => {
  function slowBody(resetAfter: number | null): FakePop3Options {
    return onSession('RETR', async (conn) => {
      await conn.write('+OK 200000 octets\r\n');
      const block = Buffer.from(`${'b'.repeat(78)}\r\n`.repeat(100));
      for (let i = 0; i < 25; i++) {
        await conn.write(block);
        await sleep(20);
      }
      if (resetAfter !== null) conn.socket.resetAndDestroy();
      // otherwise: stall with half the body sent
    });
  }

  it('closes the client connection without a terminator when the backend resets mid-body', async () => {
    const { g } = await setUp(slowBody(1));
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    expect(await c.command('RETR 1')).toBe('+OK 200000 octets');
    await c.waitClosed(5000);
    const rest = c.buffered.toString('latin1');
    expect(rest.length).toBeGreaterThan(100_000);
    expect(rest).not.toContain('\r\n.\r\n');
    // Nothing after the partial body: an -ERR there would become part of the message.
    expect(rest).not.toContain('-ERR');
    expect(rest.endsWith('b\r\n')).toBe(true);
    const audit = await auditWhen(g, (l) => l.event === 'disconnect');
    expect(audit.find((l) => l.event === 'disconnect')!.reason).toBe('backend-closed');
    // A cut body is never audited as a completed retrieval.
    expect(audit.filter((l) => l.event === 'command' && l.command === 'RETR' && l.result === 'ok')).toEqual([]);
  });

  it('closes the client connection without a terminator when the backend stalls mid-body', async () => {
    const { g } = await setUp(slowBody(null), { policy: { timeouts: { backendReply: '800ms' } } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    expect(await c.command('RETR 1')).toBe('+OK 200000 octets');
    await c.waitClosed(8000);
    const rest = c.buffered.toString('latin1');
    expect(rest).not.toContain('\r\n.\r\n');
    expect(rest).not.toContain('-ERR');
    expect(rest.endsWith('b\r\n')).toBe(true);
  });

  it('answers -ERR [SYS/TEMP] when the backend resets on a single-line command', async () => {
    const { g } = await setUp(onSession('STAT', (conn) => void conn.socket.resetAndDestroy()));
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    expect(await c.command('STAT')).toBe(UNAVAILABLE);
    await c.waitClosed();
  });

  it('records the deletions as not confirmed when the backend resets on QUIT', async () => {
    const { g } = await setUp(onSession('QUIT', (conn) => void conn.socket.resetAndDestroy()));
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    expect(await c.command('DELE 1')).toMatch(/^\+OK/);
    expect(await c.command('DELE 2')).toMatch(/^\+OK/);
    const status = await c.command('QUIT');
    expect(status).toBe(UNAVAILABLE);
    await c.waitClosed();
    const logout = await auditRecord(g, 'logout');
    expect(logout.result).toBe('err');
    expect(logout.reason).toBe('quit-not-confirmed');
    expect(logout.deleted).toEqual([]);
    expect((logout.notDeleted as Array<{ msg: number }>).map((m) => m.msg)).toEqual([1, 2]);
  });

  it('records the deletions as not confirmed when the backend answers QUIT with -ERR', async () => {
    const { g } = await setUp(onSession('QUIT', async (conn) => {
      await conn.write('-ERR [SYS/PERM] could not remove messages\r\n');
      conn.end();
    }));
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    expect(await c.command('DELE 1')).toMatch(/^\+OK/);
    expect(await c.command('QUIT')).toMatch(/^-ERR/);
    await c.waitClosed();
    const logout = await auditRecord(g, 'logout');
    expect(logout.reason).toBe('quit-not-confirmed');
    expect((logout.notDeleted as Array<{ msg: number }>).map((m) => m.msg)).toEqual([1]);
  });

  it('records the deletions as done when the backend confirms QUIT', async () => {
    const { g } = await setUp();
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    expect(await c.command('DELE 2')).toMatch(/^\+OK/);
    expect(await c.quit()).toBe('+OK bye');
    const logout = await auditRecord(g, 'logout');
    expect(logout.result).toBe('ok');
    expect((logout.deleted as Array<{ msg: number }>).map((m) => m.msg)).toEqual([2]);
  });
});
