/**
 * A legacy backend with no CAPA, no TLS and no SASL: a real popa3d behind the gateway.
 * The gateway adds TLS, synthesizes CAPA, accepts AUTH PLAIN/LOGIN from the client and
 * logs in with USER/PASS, and serializes pipelined commands toward a backend that does
 * not advertise PIPELINING.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curlPop3, poplib } from '../harness/clients.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startPopa3d, type Popa3dInstance } from '../harness/popa3d.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';

const MESSAGES = [
  'From: old@example.org\r\nTo: legacy@example.org\r\nSubject: first legacy\r\nMessage-ID: <legacy-1@example.org>\r\n\r\nHello from popa3d.\r\n.a line with a leading dot\r\n..two dots\r\n',
  'From: old@example.org\r\nSubject: second legacy\r\nMessage-ID: <legacy-2@example.org>\r\n\r\nSecond body line 1\r\nSecond body line 2\r\n',
  'From: old@example.org\r\nSubject: third legacy\r\nMessage-ID: <legacy-3@example.org>\r\n\r\nthird\r\n',
];

function capaLines(body: Buffer | null): string[] {
  return (body?.toString('latin1') ?? '').split('\r\n').filter((l) => l !== '');
}

describe('a real popa3d (no CAPA, no TLS, no SASL) behind the gateway', () => {
  let legacy: Popa3dInstance;
  let gw: TestGateway;
  /** The same backend, with LAST added to the allowlist. */
  let gwLast: TestGateway;

  beforeAll(async () => {
    legacy = await startPopa3d();
    for (const m of MESSAGES) legacy.addMessage(m);
    gw = await startTestGateway(legacy.port, { backend: { probeInterval: '1h' } });
    gwLast = await startTestGateway(legacy.port, {
      backend: { probeInterval: '1h' },
      policy: { commands: { allow: ['CAPA', 'USER', 'PASS', 'AUTH', 'STLS', 'STAT', 'LIST', 'UIDL', 'TOP', 'RETR', 'DELE', 'NOOP', 'RSET', 'LAST', 'QUIT'] } },
    });
  });

  afterAll(async () => {
    await gwLast?.stop();
    await gw?.stop();
    await legacy?.stop();
  });

  it('logs in and retrieves a message with dot-leading lines over implicit TLS (poplib)', async () => {
    const r = await poplib(`
p = connect_ssl()
p.user(USER); p.pass_(PASSWORD)
count, size = p.stat()
resp, lines, octets = p.retr(1)
out({"count": count, "lines": [l.decode("latin1") for l in lines], "uidl": len(p.uidl()[1]), "top": [l.decode() for l in p.top(2, 0)[1]]})
p.quit()
`, { port: gw.port.pop3s!, user: legacy.user, password: legacy.password, insecure: true });
    expect(r.stderr).toBe('');
    const res = JSON.parse(r.stdout.trim()) as { count: number; lines: string[]; uidl: number; top: string[] };
    expect(res.count).toBe(3);
    expect(res.lines).toContain('Subject: first legacy');
    expect(res.lines).toContain('.a line with a leading dot');
    expect(res.lines).toContain('..two dots');
    expect(res.uidl).toBe(3);
    expect(res.top).toContain('Subject: second legacy');
    expect(res.top).not.toContain('Second body line 1');
  });

  it('retrieves message 2 with curl over pop3s', async () => {
    const r = await curlPop3(`pop3s://127.0.0.1:${gw.port.pop3s}/2`, { user: legacy.user, password: legacy.password, insecure: true });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const text = r.stdout.toString('latin1');
    expect(text).toContain('Subject: second legacy');
    expect(text).toContain('Second body line 2\r\n');
  });

  it('synthesizes a CAPA for the backend that has none', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    const capa = await c.multiline('CAPA');
    expect(capa.status).toMatch(/^\+OK/);
    const lines = capaLines(capa.body);
    for (const want of ['TOP', 'UIDL', 'USER', 'SASL PLAIN LOGIN', 'PIPELINING']) expect(lines).toContain(want);
    expect(lines).not.toContain('STLS');
    // popa3d's -ERR lines carry no response codes, so the gateway does not claim they do.
    expect(lines).not.toContain('RESP-CODES');
    expect(lines).not.toContain('AUTH-RESP-CODE');
    // After login the list is for the TRANSACTION state: no USER, no SASL.
    await c.login(legacy.user, legacy.password);
    const after = capaLines((await c.multiline('CAPA')).body);
    expect(after).toContain('TOP');
    expect(after).toContain('PIPELINING');
    expect(after).not.toContain('USER');
    expect(after.some((l) => l.startsWith('SASL'))).toBe(false);
    await c.quit();
  });

  it('offers USER and SASL on the STLS listener only after TLS', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3! });
    const before = capaLines((await c.multiline('CAPA')).body);
    expect(before).toContain('STLS');
    expect(before).not.toContain('USER');
    expect(before.some((l) => l.startsWith('SASL'))).toBe(false);
    await c.startTls({ rejectUnauthorized: false });
    const after = capaLines((await c.multiline('CAPA')).body);
    expect(after).not.toContain('STLS');
    expect(after).toContain('USER');
    expect(after).toContain('SASL PLAIN LOGIN');
    await c.login(legacy.user, legacy.password);
    expect(await c.command('STAT')).toMatch(/^\+OK 3 \d+$/);
    await c.quit();
  });

  it('answers 10 pipelined commands in order', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login(legacy.user, legacy.password);
    c.sendRaw(['STAT', 'LIST', 'UIDL 2', 'TOP 1 0', 'NOOP', 'RETR 3', 'LIST 9', 'UIDL', 'LIST 2', 'NOOP'].map((x) => `${x}\r\n`).join(''));
    const stat = await c.readLine();
    expect(stat).toMatch(/^\+OK 3 \d+$/);
    expect(await c.readLine()).toMatch(/^\+OK/);
    const listing = (await c.readMultiline()).toString('latin1').split('\r\n').filter((l) => l !== '');
    expect(listing.map((l) => l.split(' ')[0])).toEqual(['1', '2', '3']);
    expect(await c.readLine()).toMatch(/^\+OK 2 \S+$/);
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect((await c.readMultiline()).toString('latin1')).toContain('Subject: first legacy');
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect((await c.readMultiline()).toString('latin1')).toContain('\r\nthird\r\n');
    expect(await c.readLine()).toMatch(/^-ERR/);
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect((await c.readMultiline()).toString('latin1').split('\r\n').filter((l) => l !== '')).toHaveLength(3);
    expect(await c.readLine()).toBe(`+OK 2 ${listing[1]!.split(' ')[1]}`);
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect(c.buffered.length).toBe(0);
    await c.quit();
  });

  it('logs in with AUTH PLAIN and AUTH LOGIN although popa3d has no AUTH', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(await c.command(`AUTH PLAIN ${Buffer.from(`\0${legacy.user}\0${legacy.password}`).toString('base64')}`)).toMatch(/^\+OK/);
    expect(await c.command('STAT')).toMatch(/^\+OK 3 /);
    await c.quit();
    const d = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(await d.command('AUTH LOGIN')).toBe('+ VXNlcm5hbWU6');
    expect(await d.command(Buffer.from(legacy.user).toString('base64'))).toBe('+ UGFzc3dvcmQ6');
    expect(await d.command(Buffer.from(legacy.password).toString('base64'))).toMatch(/^\+OK/);
    const top = await d.multiline('TOP 3 0');
    expect(top.body!.toString('latin1')).toContain('Subject: third legacy');
    await d.quit();
    const logins = gw.auditLines().filter((l) => l.event === 'login' && l.result === 'ok');
    expect(logins.map((l) => l.mechanism)).toEqual(expect.arrayContaining(['PLAIN', 'LOGIN']));
  });

  it('relays LAST when the allowlist names it: after RETR 1 popa3d answers +OK 1, and CAPA has no tag for it', async () => {
    const c = await Pop3TestClient.connect({ port: gwLast.port.pop3s!, tls: true });
    await c.login(legacy.user, legacy.password);
    expect(await c.command('LAST')).toBe('+OK 0');
    expect((await c.multiline('RETR 1')).status).toMatch(/^\+OK/);
    expect(await c.command('LAST')).toBe('+OK 1');
    expect(await c.command('LAST 2')).toBe('-ERR Syntax error in command.');
    const capa = capaLines((await c.multiline('CAPA')).body);
    expect(capa.some((l) => /LAST/i.test(l))).toBe(false);
    expect(await c.command('STAT')).toMatch(/^\+OK 3 /);
    await c.quit();
    const metrics = await (await fetch(`http://127.0.0.1:${gwLast.port.admin}/metrics`)).text();
    expect(metrics).toMatch(/pop3gw_command_duration_seconds_count\{[^}]*verb="LAST"[^}]*result="ok"[^}]*\} 2\b|pop3gw_command_duration_seconds_count\{[^}]*result="ok"[^}]*verb="LAST"[^}]*\} 2\b/);
  });

  it('refuses LAST outside TRANSACTION, and by default as not permitted while the session goes on', async () => {
    const c = await Pop3TestClient.connect({ port: gwLast.port.pop3s!, tls: true });
    expect(await c.command('LAST')).toBe('-ERR Command not valid in this state.');
    await c.quit();
    const d = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await d.login(legacy.user, legacy.password);
    expect((await d.multiline('RETR 1')).status).toMatch(/^\+OK/);
    expect(await d.command('LAST')).toBe('-ERR Command not permitted by policy.');
    expect(await d.command('STAT')).toMatch(/^\+OK 3 /);
    await d.quit();
  });

  it('never writes the legacy password into a log or the audit', () => {
    const everything = gw.logs.text() + gw.auditLines().map((l) => JSON.stringify(l)).join('\n');
    expect(everything).not.toContain(legacy.password);
    expect(everything).not.toContain(Buffer.from(`\0${legacy.user}\0${legacy.password}`).toString('base64'));
  });
});

/**
 * popa3d happens to read pipelined input correctly, so it cannot show whether the gateway
 * waited. These scripted backends record every command that arrived while an earlier one
 * was still unanswered: one has no CAPA at all, the other advertises PIPELINING.
 */
function pipelineWatcher(capaReply: string) {
  const overlaps: string[] = [];
  const commands: string[] = [];
  async function serve(conn: ScriptConn): Promise<void> {
    await conn.write('+OK legacy ready\r\n');
    let consumed = 0;
    for (;;) {
      const line = await conn.readLine(30_000);
      if (line === null) return;
      consumed += Buffer.byteLength(line, 'latin1') + 2;
      // Give a pipelining client time to send more before answering.
      await new Promise((r) => setTimeout(r, 15));
      if (conn.received.length > consumed) overlaps.push(line);
      const [verb = '', arg] = line.split(' ');
      commands.push(verb.toUpperCase());
      switch (verb.toUpperCase()) {
        case 'CAPA': await conn.write(capaReply); break;
        case 'USER': await conn.write('+OK\r\n'); break;
        case 'PASS': await conn.write('+OK logged in\r\n'); break;
        case 'STAT': await conn.write('+OK 2 200\r\n'); break;
        case 'LIST': await conn.write(arg === undefined ? '+OK\r\n1 100\r\n2 100\r\n.\r\n' : `+OK ${arg} 100\r\n`); break;
        case 'UIDL': await conn.write(arg === undefined ? '+OK\r\n1 u1\r\n2 u2\r\n.\r\n' : `+OK ${arg} u${arg}\r\n`); break;
        case 'RETR': await conn.write(`+OK\r\nSubject: m${arg}\r\n\r\n..dotted\r\n.\r\n`); break;
        case 'NOOP': await conn.write('+OK\r\n'); break;
        case 'QUIT': await conn.write('+OK bye\r\n'); conn.end(); return;
        default: await conn.write('-ERR no\r\n');
      }
    }
  }
  return { overlaps, commands, serve };
}

/** Logs in, sends 10 commands in one write, checks every reply in order; returns the backend's verbs. */
async function tenPipelined(port: number, commands: string[]): Promise<string[]> {
  const c = await Pop3TestClient.connect({ port, tls: true });
  c.sendRaw('USER legacy\r\nPASS pw\r\n');
  expect(await c.readLine()).toMatch(/^\+OK/);
  expect(await c.readLine()).toMatch(/^\+OK/);
  const before = commands.length;
  c.sendRaw(['STAT', 'LIST 1', 'RETR 1', 'NOOP', 'UIDL', 'RETR 2', 'LIST', 'NOOP', 'STAT', 'UIDL 2'].map((x) => `${x}\r\n`).join(''));
  expect(await c.readLine()).toBe('+OK 2 200');
  expect(await c.readLine()).toBe('+OK 1 100');
  expect(await c.readLine()).toBe('+OK');
  expect((await c.readMultiline()).toString('latin1')).toBe('Subject: m1\r\n\r\n.dotted\r\n');
  expect(await c.readLine()).toBe('+OK');
  expect(await c.readLine()).toBe('+OK');
  expect((await c.readMultiline()).toString('latin1')).toBe('1 u1\r\n2 u2\r\n');
  expect(await c.readLine()).toBe('+OK');
  expect((await c.readMultiline()).toString('latin1')).toBe('Subject: m2\r\n\r\n.dotted\r\n');
  expect(await c.readLine()).toBe('+OK');
  expect((await c.readMultiline()).toString('latin1')).toBe('1 100\r\n2 100\r\n');
  expect(await c.readLine()).toBe('+OK');
  expect(await c.readLine()).toBe('+OK 2 200');
  expect(await c.readLine()).toBe('+OK 2 u2');
  expect(c.buffered.length).toBe(0);
  await c.quit();
  return commands.slice(before);
}

describe('pipelining toward scripted backends', () => {
  const legacy = pipelineWatcher('-ERR unknown command\r\n');
  const modern = pipelineWatcher('+OK\r\nPIPELINING\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n');
  let legacyBackend: ScriptBackend;
  let modernBackend: ScriptBackend;
  let legacyGw: TestGateway;
  let modernGw: TestGateway;

  beforeAll(async () => {
    legacyBackend = await startScriptBackend(legacy.serve);
    modernBackend = await startScriptBackend(modern.serve);
    legacyGw = await startTestGateway(legacyBackend.port, { backend: { probeInterval: '1h' } });
    modernGw = await startTestGateway(modernBackend.port, { backend: { probeInterval: '1h' } });
  });

  afterAll(async () => {
    await legacyGw?.stop();
    await modernGw?.stop();
    await legacyBackend?.close();
    await modernBackend?.close();
  });

  it('sends 10 pipelined client commands one at a time to a backend without PIPELINING', async () => {
    const relayed = await tenPipelined(legacyGw.port.pop3s!, legacy.commands);
    // Every client command reached the backend (plus the gateway's own UIDL n / LIST n look-ups)...
    for (const verb of ['STAT', 'LIST', 'RETR', 'NOOP', 'UIDL', 'QUIT']) expect(relayed).toContain(verb);
    expect(relayed.filter((v) => v === 'RETR')).toHaveLength(2);
    // ...and none, USER/PASS included, was sent while another was unanswered.
    expect(legacy.overlaps).toEqual([]);
  });

  it('pipelines toward a backend whose CAPA (learned by the probe) lists PIPELINING', async () => {
    const relayed = await tenPipelined(modernGw.port.pop3s!, modern.commands);
    expect(relayed.filter((v) => v === 'RETR')).toHaveLength(2);
    expect(modern.overlaps.length).toBeGreaterThan(0);
  });

  it('logs in to it one command at a time all the same: PASS only after the reply to USER', async () => {
    // Dovecot's pop3-login answers a USER and PASS sent together ~40 ms late (backend-login.ts).
    const before = modern.commands.length;
    const c = await Pop3TestClient.connect({ port: modernGw.port.pop3s!, tls: true });
    c.sendRaw('USER legacy\r\nPASS pw\r\n');
    expect(await c.readLine()).toMatch(/^\+OK/);
    expect(await c.readLine()).toBe('+OK logged in');
    await c.quit();
    // This session's login reached the backend, USER first...
    const mine = modern.commands.slice(before);
    expect(mine.indexOf('USER')).toBeGreaterThanOrEqual(0);
    expect(mine.indexOf('PASS')).toBeGreaterThan(mine.indexOf('USER'));
    // ...and no USER there (this test's or an earlier one's) had its PASS already behind it.
    expect(modern.overlaps.filter((l) => /^USER /i.test(l))).toEqual([]);
  });
});
