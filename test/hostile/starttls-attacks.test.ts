/**
 * STARTTLS attacks ("Why TLS is better without STARTTLS", Poddebniak et al., 2021):
 * plaintext injected around the client's STLS, responses injected by a hostile
 * backend before the gateway's own STLS, STLS refused or missing at the backend
 * (never a plaintext fallback), and STLS used where it does not belong.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCert, type CertFiles } from '../harness/certs.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend } from '../harness/script-backend.ts';
import { assertNoSecrets, auditWhen, fakePop3, hostileConfig, sleep, type FakePop3 } from './helpers.ts';

let cert: CertFiles;
const running: Array<{ stop(): Promise<void> } | { close(): Promise<void> }> = [];

async function cleanup(): Promise<void> {
  const all = running.splice(0).reverse();
  try {
    for (const r of all) if ('logs' in r) assertNoSecrets(r as TestGateway);
  } finally {
    for (const r of all) await ('stop' in r ? r.stop() : r.close());
  }
}

beforeAll(async () => {
  cert = await makeCert({ commonName: 'backend.test' });
});

afterEach(cleanup);

async function backend(fake: FakePop3): Promise<ScriptBackend> {
  const b = await startScriptBackend(fake.handler);
  running.push(b);
  return b;
}

async function gateway(port: number, extra: Record<string, unknown> = {}): Promise<TestGateway> {
  const g = await startTestGateway(port, hostileConfig(extra));
  running.push(g);
  return g;
}

function received(b: { lines: Map<number, string[]> }): string {
  return [...b.lines.values()].flat().join('\n');
}

describe('client-side command injection around STLS', () => {
  it('runs nothing that was sent after STLS in the same packet', async () => {
    const fake = fakePop3();
    const b = await backend(fake);
    const g = await gateway(b.port);
    const c = await Pop3TestClient.connect({ port: g.port.pop3! });
    c.sendRaw('STLS\r\nUSER alice\r\nPASS alice-secret\r\n');
    expect(await c.readLine()).toMatch(/^\+OK/);
    // upgrade() throws if any plaintext followed the +OK (replies to the injected commands).
    await c.upgrade();
    // Had the injected USER survived, this PASS would log in; it must be refused.
    expect(await c.command('PASS alice-secret')).toBe('-ERR Send USER first.');
    expect(await c.command('NOOP')).toMatch(/^-ERR/);
    await c.close();
    expect(received(fake)).not.toMatch(/USER|PASS/);
    const audit = await auditWhen(g, (l) => l.event === 'disconnect');
    expect(audit.filter((l) => l.event === 'login')).toEqual([]);
  });

  it('never parses plaintext that arrives in its own packet between STLS and the ClientHello', async () => {
    const fake = fakePop3();
    const b = await backend(fake);
    const g = await gateway(b.port);
    const c = await Pop3TestClient.connect({ port: g.port.pop3! });
    expect(await c.command('STLS')).toMatch(/^\+OK/);
    c.sendRaw('USER alice\r\nPASS alice-secret\r\n');
    await sleep(100);
    // The injected bytes are the first bytes of the "TLS" stream: the handshake fails and the session ends.
    await expect(c.upgrade()).rejects.toThrow();
    await c.waitClosed();
    await g.logs.waitFor((l) => l.event === 'session-end');
    expect(g.logs.find({ event: 'session-end' })[0]!.reason).toBe('tls-failed');
    expect(received(fake)).not.toMatch(/USER|PASS/);
    const audit = await auditWhen(g, (l) => l.event === 'disconnect');
    expect(audit.filter((l) => l.event === 'login')).toEqual([]);
    // The gateway still serves the next client.
    const next = await Pop3TestClient.connect({ port: g.port.pop3! });
    await next.startTls();
    await next.login('alice', 'alice-secret');
    await next.quit();
  });

  it('never parses plaintext sent before the STLS reply was read, in a second write', async () => {
    const fake = fakePop3();
    const b = await backend(fake);
    const g = await gateway(b.port);
    const c = await Pop3TestClient.connect({ port: g.port.pop3! });
    c.sendRaw('STLS\r\n');
    c.sendRaw('USER alice\r\n');
    expect(await c.readLine()).toMatch(/^\+OK/);
    // Either dropped with the rest of the plaintext buffer, or read as TLS garbage: never a command.
    const upgraded = await c.upgrade().then(() => true, () => false);
    if (upgraded) expect(await c.command('PASS alice-secret')).toBe('-ERR Send USER first.');
    await c.close();
    expect(received(fake)).not.toMatch(/USER|PASS/);
  });
});

describe('STLS where it does not belong', () => {
  let b: ScriptBackend;
  let g: TestGateway;

  beforeAll(async () => {
    b = await startScriptBackend(fakePop3().handler);
    g = await startTestGateway(b.port, hostileConfig());
  });

  afterAll(async () => {
    if (g) assertNoSecrets(g);
    await g?.stop();
    await b?.close();
  });

  it('refuses a second STLS once TLS is active', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.pop3! });
    await c.startTls();
    expect(await c.command('STLS')).toBe('-ERR TLS is already active.');
    expect(await c.command('NOOP')).toMatch(/^-ERR/); // the session goes on
    await c.quit();
  });

  it('refuses STLS after login', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.pop3! });
    await c.startTls();
    await c.login('alice', 'alice-secret');
    expect(await c.command('STLS')).toMatch(/^-ERR/);
    expect(await c.command('STAT')).toMatch(/^\+OK 2 /);
    await c.quit();
  });

  it('refuses STLS on the implicit-TLS listener', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.pop3s!, tls: true });
    expect(await c.command('STLS')).toBe('-ERR STLS not available here.');
    await c.login('alice', 'alice-secret');
    await c.quit();
  });

  it('refuses STLS on a listener without TLS', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    expect(await c.command('STLS')).toBe('-ERR STLS not available here.');
    await c.login('alice', 'alice-secret');
    await c.quit();
  });

  it('lists STLS before the upgrade and USER and SASL only after it', async () => {
    const c = await Pop3TestClient.connect({ port: g.port.pop3! });
    const before = (await c.multiline('CAPA')).body!.toString('latin1').split('\r\n');
    expect(before).toContain('STLS');
    expect(before).not.toContain('USER');
    expect(before.some((l) => l.startsWith('SASL'))).toBe(false);
    await c.startTls();
    const after = (await c.multiline('CAPA')).body!.toString('latin1').split('\r\n');
    expect(after).not.toContain('STLS');
    expect(after).toContain('USER');
    expect(after.find((l) => l.startsWith('SASL '))).toMatch(/\bPLAIN\b/);
    await c.quit();
  });
});

describe('backend-side response injection before the gateway\'s STLS', () => {
  function injectingBackend(split: boolean): FakePop3 {
    return fakePop3({
      tlsOptions: { cert: cert.certPem, key: cert.keyPem },
      onCommand: async (conn, verb, _line, state) => {
        if (verb !== 'STLS' || state.tls) return false;
        if (split) {
          await conn.write('+OK begin\r\n');
          await sleep(50);
          await conn.write('+OK injected\r\n');
        } else {
          await conn.write('+OK begin\r\n+OK injected\r\n');
        }
        await conn.startTls({ cert: cert.certPem, key: cert.keyPem }).catch(() => undefined);
        state.tls = true;
        return true;
      },
    });
  }

  it('discards a reply injected with the STLS reply: a wrong password still fails', async () => {
    const fake = injectingBackend(false);
    const b = await backend(fake);
    const g = await gateway(b.port, { backend: { tls: 'starttls', ca: cert.caFile } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.ok('USER alice');
    expect(await c.command('PASS wrong')).toBe('-ERR [AUTH] Authentication failed.');
    await c.close();
  });

  it('discards a reply injected with the STLS reply: later replies stay matched to their commands', async () => {
    const fake = injectingBackend(false);
    const b = await backend(fake);
    const g = await gateway(b.port, { backend: { tls: 'starttls', ca: cert.caFile } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    const seen: string[] = [];
    seen.push(await c.command('USER alice'));
    seen.push(await c.command('PASS alice-secret'));
    seen.push(await c.command('STAT'));
    seen.push(await c.command('NOOP'));
    seen.push(await c.command('DELE 1'));
    expect(seen[1]).toBe('+OK alice has 2 messages');
    expect(seen[2]).toMatch(/^\+OK 2 \d+$/);
    expect(seen[4]).toBe('+OK message 1 deleted');
    expect(seen.join('\n')).not.toContain('injected');
    expect(await c.quit()).toBe('+OK bye');
    // Credentials only crossed after TLS: the plaintext part of the backend connection never had them.
    for (const lines of fake.lines.values()) {
      const stls = lines.indexOf('STLS');
      const pass = lines.findIndex((l) => l.startsWith('PASS'));
      if (pass >= 0) expect(stls).toBeGreaterThanOrEqual(0);
      if (pass >= 0) expect(pass).toBeGreaterThan(stls);
    }
  });

  it('fails closed when the injected reply arrives in its own packet before the handshake', async () => {
    const fake = injectingBackend(true);
    const b = await backend(fake);
    const g = await gateway(b.port, { backend: { tls: 'starttls', ca: cert.caFile } });
    const c = await Pop3TestClient.connect({ port: g.port.plain! });
    await c.ok('USER alice');
    // Either the stray line is read as a broken ServerHello (backend unavailable) or it was dropped; never relayed.
    const reply = await c.command('PASS alice-secret');
    expect(reply).not.toContain('injected');
    if (reply.startsWith('+OK')) {
      expect(reply).toBe('+OK alice has 2 messages');
      expect(await c.command('STAT')).toMatch(/^\+OK 2 \d+$/);
    } else {
      expect(reply).toBe('-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.');
    }
    await c.close();
  });
});

describe('a backend whose STLS does not work, with backend.tls: starttls', () => {
  const cases: Array<[string, () => FakePop3]> = [
    ['answers STLS with -ERR', () => fakePop3({ capa: ['USER', 'STLS'], onCommand: async (conn, verb) => {
      if (verb !== 'STLS') return false;
      await conn.write('-ERR TLS not available today\r\n');
      return true;
    } })],
    ['drops the connection at STLS', () => fakePop3({ capa: ['USER', 'STLS'], onCommand: (conn, verb) => {
      if (verb !== 'STLS') return false;
      conn.destroy();
      return true;
    } })],
    ['does not list STLS in CAPA', () => fakePop3({ capa: ['USER', 'UIDL'] })],
    ['refuses CAPA', () => fakePop3({ onCommand: async (conn, verb) => {
      if (verb !== 'CAPA') return false;
      await conn.write('-ERR what is CAPA\r\n');
      return true;
    } })],
  ];

  for (const [what, make] of cases) {
    it(`answers -ERR [SYS/TEMP] and sends no credentials in plaintext when the backend ${what}`, async () => {
      const fake = make();
      const b = await backend(fake);
      const g = await gateway(b.port, { backend: { tls: 'starttls', ca: cert.caFile } });
      const c = await Pop3TestClient.connect({ port: g.port.pop3s!, tls: true });
      await c.ok('USER alice');
      expect(await c.command('PASS alice-secret')).toBe('-ERR [SYS/TEMP] Mail server temporarily unavailable, try again later.');
      // The session goes on (pre-login) and a retry fails the same way.
      await c.ok('USER alice');
      expect(await c.command('PASS alice-secret')).toMatch(/^-ERR \[SYS\/TEMP\]/);
      await c.close();
      expect(b.connections).toBeGreaterThanOrEqual(2);
      const all = received(fake);
      expect(all).not.toContain('alice');
      expect(all).not.toContain('alice-secret');
      expect(all).not.toMatch(/^(USER|PASS|AUTH|APOP)/m);
    });
  }
});
