/**
 * Clients that vanish (TCP reset) at every stage of a session. The gateway
 * stays up, the next session works, the backend connection is cut without
 * QUIT (so the backend never enters UPDATE), and no socket or timer is left
 * behind once things settle.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';
import { assertNoSecrets, auditWhen, fakePop3, forceGc, hostileConfig, liveSessions, sleep, totalResources, trackResources, waitUntil, type FakePop3 } from './helpers.ts';

let fake: FakePop3;
let b: ScriptBackend;
let g: TestGateway;
const conns: ScriptConn[] = [];
let tracker: ReturnType<typeof trackResources>;

beforeAll(async () => {
  tracker = trackResources();
  fake = fakePop3({
    onConnect: (conn) => {
      conns.push(conn);
      return true;
    },
    onCommand: async (conn, verb, line) => {
      if (verb === 'PASS' && line.endsWith('slow')) {
        await sleep(1500);
        await conn.write('+OK slowly in\r\n');
        return true;
      }
      if (verb === 'USER' && line === 'USER slowgreet') return false;
      if (verb === 'RETR') {
        await conn.write('+OK slow body follows\r\n');
        const block = Buffer.from(`${'r'.repeat(78)}\r\n`.repeat(50));
        for (let i = 0; i < 400 && !conn.closed; i++) {
          await conn.write(block);
          await sleep(10);
        }
        if (!conn.closed) await conn.write('.\r\n');
        return true;
      }
      return false;
    },
    users: { alice: 'alice-secret', slow: 'slow' },
  });
  b = await startScriptBackend(fake.handler);
  g = await startTestGateway(b.port, hostileConfig({ policy: { timeouts: { backendReply: '5s' } } }));
});

afterAll(async () => {
  if (g) assertNoSecrets(g);
  await g?.stop();
  await b?.close();
  tracker?.stop();
});

function reset(sock: net.Socket): void {
  if (!sock.destroyed) sock.resetAndDestroy();
}

/** The raw socket under a test client, for a TCP reset. */
function rawSocket(c: Pop3TestClient): net.Socket {
  return (c as unknown as { socket: net.Socket }).socket;
}

/** An implicit-TLS client over a raw socket of our own, so the test can reset the TCP connection under TLS. */
async function tlsClient(): Promise<{ c: Pop3TestClient; raw: net.Socket }> {
  const c = await Pop3TestClient.connect({ port: g.port.pop3s!, readGreeting: false });
  const raw = rawSocket(c);
  await c.upgrade();
  c.greeting = await c.readLine();
  return { c, raw };
}

/** One way for a client to vanish; resolves once it has. */
type Stage = () => Promise<void>;

const stages: Array<[string, Stage]> = [
  ['before its ClientHello on implicit TLS', async () => {
    const s = net.connect({ host: '127.0.0.1', port: g.port.pop3s! });
    await new Promise((r) => s.once('connect', r));
    await sleep(30);
    reset(s);
  }],
  ['during the implicit TLS handshake', async () => {
    const s = net.connect({ host: '127.0.0.1', port: g.port.pop3s! });
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])); // a ClientHello cut short
    await sleep(30);
    reset(s);
  }],
  ['during the STLS handshake', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.pop3! });
    expect(await c.command('STLS')).toMatch(/^\+OK/);
    const raw = rawSocket(c);
    raw.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    await sleep(30);
    reset(raw);
  }],
  ['right after connecting', async () => {
    const s = net.connect({ host: '127.0.0.1', port: g.port.plain! });
    await new Promise((r) => s.once('connect', r));
    reset(s);
  }],
  ['after the greeting', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    reset(rawSocket(c));
  }],
  ['after the greeting over implicit TLS', async () => {
    const { c, raw } = await tlsClient();
    expect(c.greeting).toMatch(/^\+OK/);
    reset(raw);
  }],
  ['while the backend checks the password', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.ok('USER slow');
    c.send('PASS slow');
    await waitUntil('the backend to see PASS', () => fake.allLines().filter((l) => l === 'PASS slow').length > passSeen);
    passSeen++;
    reset(rawSocket(c));
  }],
  ['after login', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    await c.ok('DELE 1');
    reset(rawSocket(c));
  }],
  ['in the middle of a slow RETR', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.login('alice', 'alice-secret');
    expect(await c.command('RETR 1')).toBe('+OK slow body follows');
    await c.readLine();
    await sleep(50);
    reset(rawSocket(c));
  }],
  ['in the middle of a slow RETR over TLS', async () => {
    const { c, raw } = await tlsClient();
    await c.login('alice', 'alice-secret');
    expect(await c.command('RETR 2')).toBe('+OK slow body follows');
    await c.readLine();
    await sleep(50);
    reset(raw);
  }],
  ['in the middle of a slow RETR over TLS, with a TLS close', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.pop3s!, tls: true });
    await c.login('alice', 'alice-secret');
    expect(await c.command('RETR 1')).toBe('+OK slow body follows');
    await c.readLine();
    await sleep(50);
    await c.close();
  }],
];
let passSeen = 0;

async function settle(): Promise<void> {
  await waitUntil('every session to end', () => liveSessions(g.gw).length === 0, 10_000);
  await waitUntil('every backend connection to close', () => conns.every((c) => c.closed), 10_000);
  await sleep(300);
}

async function collect(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    forceGc();
    await sleep(50);
  }
}

async function healthySession(): Promise<void> {
  const c = await Pop3TestClient.connect({ port: g.port.pop3s!, tls: true });
  await c.login('alice', 'alice-secret');
  expect(await c.command('STAT')).toMatch(/^\+OK 2 /);
  expect(await c.quit()).toBe('+OK bye');
}

describe('clients that reset the connection', () => {
  for (const [what, stage] of stages) {
    it(`survives a client that resets ${what}, and cuts the backend without QUIT`, async () => {
      const before = conns.length;
      await stage();
      await settle();
      // Backend connections opened for this client were closed, and none got a QUIT.
      const opened = conns.slice(before);
      expect(opened.every((c) => c.closed)).toBe(true);
      for (const conn of opened) expect(fake.lines.get(conn.index) ?? []).not.toContain('QUIT');
      await healthySession();
    });
  }

  it('audits a login cut by a client reset as deletions not confirmed', async () => {
    await settle();
    const audit = await auditWhen(g, (l) => l.event === 'logout' && l.reason === 'quit-not-confirmed');
    const logouts = audit.filter((l) => l.event === 'logout' && l.reason === 'quit-not-confirmed');
    expect(logouts.some((l) => (l.notDeleted as Array<{ msg: number }>).some((m) => m.msg === 1))).toBe(true);
  });

  it('leaves no socket or timer behind after a batch of vanishing clients', async () => {
    // Warm up every path once so lazily created things (TLS contexts, caches) exist before the baseline.
    for (const [, stage] of stages) await stage();
    await settle();
    await healthySession();
    await settle();
    // TLS wraps are released by the garbage collector: collect first, so what is counted is what is still referenced.
    await collect();
    const baseline = tracker.counts();
    const baselineTotal = tracker.total();
    const activeBefore = totalResources();
    for (let round = 0; round < 3; round++) {
      await Promise.all(stages.map(([, stage]) => stage()));
    }
    await settle();
    await healthySession();
    await settle();
    // Closing TLS sockets leaves a short unref'ed destroy timer in session.close(); let those run out.
    await waitUntil('resources to return to the baseline', () => tracker.total() <= baselineTotal + 3, 5000)
      .catch(() => undefined);
    await collect();
    const after = tracker.counts();
    const report = JSON.stringify({ baseline, after, activeBefore, activeAfter: totalResources() });
    expect(tracker.total(), report).toBeLessThanOrEqual(baselineTotal + 3);
    expect(totalResources(), report).toBeLessThanOrEqual(activeBefore + 3);
    expect(g.gw.registry.size).toBe(0);
  });
});

describe('clients that go silent', () => {
  let quiet: TestGateway;
  const quietConns: ScriptConn[] = [];
  let quietFake: FakePop3;
  let quietBackend: ScriptBackend;

  beforeAll(async () => {
    quietFake = fakePop3({ onConnect: (conn) => (quietConns.push(conn), true) });
    quietBackend = await startScriptBackend(quietFake.handler);
    quiet = await startTestGateway(quietBackend.port, hostileConfig({
      tls: { handshakeTimeout: '1s' },
      policy: { timeouts: { auth: '1s', idle: '1500ms' } },
    }));
  });

  afterAll(async () => {
    if (quiet) assertNoSecrets(quiet);
    await quiet?.stop();
    await quietBackend?.close();
  });

  it('drops a client that opens an implicit-TLS connection and sends nothing', async () => {
    const s = net.connect({ host: '127.0.0.1', port: quiet.port.pop3s! });
    s.on('error', () => undefined);
    const started = Date.now();
    await new Promise((r) => s.once('close', r));
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('drops a client that stops half way through its ClientHello', async () => {
    const s = net.connect({ host: '127.0.0.1', port: quiet.port.pop3s! });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
    const started = Date.now();
    await new Promise((r) => s.once('close', r));
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('counts a silent implicit-TLS client as a failed handshake', async () => {
    const failed = async (): Promise<number> => {
      const m = /pop3gw_tls_handshake_failures_total\{listener="(pop3s)"\} (\d+)/.exec(await quiet.gw.metrics.text());
      return m === null ? 0 : Number(m[2]);
    };
    const before = await failed();
    const s = net.connect({ host: '127.0.0.1', port: quiet.port.pop3s! });
    s.on('error', () => undefined);
    const started = Date.now();
    await new Promise((r) => s.once('close', r));
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    let now = before;
    for (let i = 0; i < 50 && now === before; i++, await sleep(20)) now = await failed();
    expect(now).toBe(before + 1);
  });

  it('drops a client that answers STLS with silence', async () => {
    const c = await Pop3TestClient.connect({ port: quiet.port.pop3! });
    expect(await c.command('STLS')).toMatch(/^\+OK/);
    const started = Date.now();
    await c.waitClosed(5000);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('closes a client that never logs in at the auth timeout', async () => {
    const c = await Pop3TestClient.connect({ port: quiet.port.plain! });
    await c.ok('USER alice');
    expect(await c.readLine(4000)).toBe('-ERR Authentication timeout, closing connection.');
    await c.waitClosed();
  });

  it('closes an idle logged-in client at the idle timeout and cuts the backend without QUIT', async () => {
    const before = quietConns.length;
    const c = await Pop3TestClient.connect({ port: quiet.port.plain! });
    await c.login('alice', 'alice-secret');
    expect(await c.readLine(5000)).toBe('-ERR Idle timeout, closing connection.');
    await c.waitClosed();
    const opened = quietConns.slice(before);
    expect(opened.length).toBe(1);
    await opened[0]!.waitClosed();
    expect(quietFake.lines.get(opened[0]!.index)).not.toContain('QUIT');
  });
});
