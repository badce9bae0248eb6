/**
 * PROXY protocol in: listeners with `proxyProtocol: true` read a v1/v2 header before anything
 * else (before TLS on an implicit listener), only from `trustedProxies`, and the address in it
 * is what policy, logs and the audit see. Direct tests send the header by hand; the others put a
 * real HAProxy (send-proxy / send-proxy-v2) between a client bound to 127.0.0.5 and the gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProxyV1, buildProxyV2 } from '../../src/protocol/proxy-header.ts';
import { proxyLocalHeader } from '../../src/backend/probe.ts';
import { waitForAudit } from '../harness/audit-wait.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { startHaproxy, type HaproxyInstance } from '../harness/haproxy.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

const CLIENT_IP = '127.0.0.5';
const HEADER_TIMEOUT_MS = 2000;

type Audit = Record<string, unknown>;

function v1(src: string, srcPort: number, dstPort = 110): string {
  return buildProxyV1({ address: src, port: srcPort }, { address: '127.0.0.1', port: dstPort }).toString('latin1');
}

function v2(src: string, srcPort: number, dstPort = 110): Buffer {
  return buildProxyV2({ address: src, port: srcPort }, { address: src.includes(':') ? '::1' : '127.0.0.1', port: dstPort });
}

/** The audit records of one session, found by the client address it was given. */
async function sessionRecords(gw: TestGateway, client: string, event = 'disconnect'): Promise<Audit[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const lines = gw.auditLines();
    const start = lines.find((l) => l.event === 'connect' && l.client === client);
    const records = start === undefined ? [] : lines.filter((l) => l.session === start.session);
    if (records.some((l) => l.event === event)) return records;
    if (Date.now() > deadline) throw new Error(`no ${event} audit record for client ${client}; audit: ${JSON.stringify(lines)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A connection the gateway should drop without writing a byte. */
async function expectSilentClose(client: Pop3TestClient, withinMs: number): Promise<number> {
  const started = Date.now();
  await client.waitClosed(withinMs);
  expect(client.buffered.toString('latin1')).toBe('');
  return Date.now() - started;
}

describe('a listener that expects a PROXY header', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'Subject: through the proxy\r\n\r\nhello\r\n');
    const proxied = { proxyProtocol: true, trustedProxies: ['127.0.0.1/32'] };
    gw = await startTestGateway(dovecot.port, {
      listeners: [
        { name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit', ...proxied },
        { name: 'plain', host: '127.0.0.1', port: 0, tls: 'none', requireTls: false, ...proxied },
        { name: 'untrusted', host: '127.0.0.1', port: 0, tls: 'none', requireTls: false, proxyProtocol: true, trustedProxies: ['10.0.0.0/8'] },
        { name: 'direct', host: '127.0.0.1', port: 0, tls: 'none' },
      ],
      tls: { handshakeTimeout: `${HEADER_TIMEOUT_MS}ms` },
      policy: { connections: { maxPerIp: 2 } },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('takes the client address from a PROXY v1 header for the audit, the logs and the login', async () => {
    const client = await Pop3TestClient.connect({ port: gw.port.plain!, preamble: v1('192.0.2.10', 40001) });
    expect(client.greeting).toMatch(/^\+OK/);
    await client.login('alice', 'alice-secret');
    await client.quit();
    const records = await sessionRecords(gw, '192.0.2.10:40001');
    expect(records.map((r) => r.event)).toEqual(expect.arrayContaining(['connect', 'login', 'logout', 'disconnect']));
    expect(records.every((r) => r.client === '192.0.2.10:40001')).toBe(true);
    expect(gw.logs.find({ event: 'session-start', client: '192.0.2.10:40001' })).toHaveLength(1);
  });

  it('takes the client address from a PROXY v2 header, IPv6 included', async () => {
    const c4 = await Pop3TestClient.connect({ port: gw.port.plain!, preamble: v2('198.51.100.20', 40002) });
    expect(c4.greeting).toMatch(/^\+OK/);
    await c4.quit();
    const c6 = await Pop3TestClient.connect({ port: gw.port.plain!, preamble: v2('2001:db8::20', 40003) });
    expect(c6.greeting).toMatch(/^\+OK/);
    await c6.quit();
    expect((await sessionRecords(gw, '198.51.100.20:40002')).length).toBeGreaterThanOrEqual(2);
    expect((await sessionRecords(gw, '[2001:db8::20]:40003')).length).toBeGreaterThanOrEqual(2);
  });

  it('uses the socket address when a PROXY v2 header says LOCAL', async () => {
    const client = await Pop3TestClient.connect({ port: gw.port.plain!, preamble: proxyLocalHeader('v2') });
    expect(client.greeting).toMatch(/^\+OK/);
    await client.quit();
    // The harness client always connects from 127.0.0.1; LOCAL carries no address of its own.
    const local = await waitForAudit(gw, (l) => l.event === 'connect' && l.listener === 'plain' && String(l.client).startsWith('127.0.0.1:'));
    expect(local).toHaveLength(1);
  });

  it('counts per-IP connection limits against the address in the header, not the proxy', async () => {
    const held = [
      await Pop3TestClient.connect({ port: gw.port.plain!, preamble: v1('203.0.113.30', 41001) }),
      await Pop3TestClient.connect({ port: gw.port.plain!, preamble: v1('203.0.113.30', 41002) }),
    ];
    try {
      // Every connection comes from 127.0.0.1: a limit on the socket address would refuse the last one too.
      const third = await Pop3TestClient.connect({ port: gw.port.plain!, preamble: v1('203.0.113.30', 41003) });
      expect(third.greeting).toMatch(/^-ERR \[SYS\/TEMP\] Too many connections from your address/);
      await third.waitClosed();
      const other = await Pop3TestClient.connect({ port: gw.port.plain!, preamble: v1('203.0.113.31', 41004) });
      expect(other.greeting).toMatch(/^\+OK/);
      await other.quit();
      expect(gw.logs.find({ event: 'connection-refused', client: '203.0.113.30' })).toHaveLength(1);
    } finally {
      for (const c of held) await c.quit();
    }
  });

  it('closes the connection without a reply when the header is malformed', async () => {
    const before = gw.logs.lines().length;
    for (const bad of [
      'PROXY TCP4 999.0.2.1 127.0.0.1 40000 110\r\n', // not an address
      'PROXY TCP4 192.0.2.1 127.0.0.1 40000\r\n', // a field missing
      'PROXY TCP4 192.0.2.1 127.0.0.1 40000 110\n', // bare LF
      Buffer.concat([v2('192.0.2.1', 40000).subarray(0, 12), Buffer.from([0x31, 0x11, 0, 12])]), // version 3
    ]) {
      const client = await Pop3TestClient.connect({ port: gw.port.plain!, preamble: bad, readGreeting: false });
      await expectSilentClose(client, 2000);
    }
    expect(gw.logs.find({ event: 'proxy-invalid', listener: 'plain' }).length).toBeGreaterThanOrEqual(4);
    // Nothing reached a session (the captured log is written synchronously, unlike the audit file).
    expect(gw.logs.lines().slice(before).filter((l) => l.event === 'session-start')).toEqual([]);
  });

  it('closes a plain POP3 client that sends no header once the header timeout has passed', async () => {
    // A POP3 client waits for the greeting, so it sends nothing: only the timeout can end this.
    const client = await Pop3TestClient.connect({ port: gw.port.plain!, readGreeting: false });
    const ms = await expectSilentClose(client, HEADER_TIMEOUT_MS + 3000);
    expect(ms).toBeGreaterThanOrEqual(HEADER_TIMEOUT_MS - 100);
    expect(gw.logs.find({ event: 'proxy-invalid', reason: 'no header in time' }).length).toBeGreaterThanOrEqual(1);
  });

  it('closes at once when the first bytes are not a PROXY signature', async () => {
    const client = await Pop3TestClient.connect({ port: gw.port.plain!, preamble: 'CAPA\r\n', readGreeting: false });
    const ms = await expectSilentClose(client, 2000);
    expect(ms).toBeLessThan(HEADER_TIMEOUT_MS / 2);
    expect(gw.logs.find({ event: 'proxy-invalid', reason: 'no PROXY protocol signature' }).length).toBeGreaterThanOrEqual(1);
  });

  it('refuses a valid header from a source outside trustedProxies', async () => {
    const client = await Pop3TestClient.connect({ port: gw.port.untrusted!, preamble: v1('192.0.2.40', 40040), readGreeting: false });
    const ms = await expectSilentClose(client, 2000);
    expect(ms).toBeLessThan(HEADER_TIMEOUT_MS / 2);
    expect(gw.logs.find({ event: 'proxy-untrusted', listener: 'untrusted', peer: '127.0.0.1' })).toHaveLength(1);
    expect(gw.auditLines().filter((l) => l.listener === 'untrusted')).toEqual([]);
  });

  it('treats a PROXY header as plain POP3 input on a listener that does not expect one', async () => {
    const client = await Pop3TestClient.connect({ port: gw.port.direct!, preamble: v1('192.0.2.50', 40050) });
    expect(client.greeting).toMatch(/^\+OK/);
    expect(await client.readLine()).toMatch(/^-ERR/);
    await client.quit();
    const records = await waitForAudit(gw, (l) => l.listener === 'direct' && l.event === 'disconnect');
    expect(records.every((l) => String(l.client).startsWith('127.0.0.1:'))).toBe(true);
  });

  it('reads the header before the TLS handshake on an implicit-TLS listener', async () => {
    const client = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, preamble: v2('192.0.2.60', 40060, 995) });
    expect(client.tlsSocket).not.toBeNull();
    expect(client.greeting).toMatch(/^\+OK/);
    await client.login('alice', 'alice-secret');
    await client.quit();
    const records = await sessionRecords(gw, '192.0.2.60:40060');
    expect(records.find((r) => r.event === 'login')).toMatchObject({ result: 'ok', user: 'alice', listener: 'pop3s' });
    expect(records[0]!.tls).toMatch(/^TLSv1\.[23]$/);
  });

  it('drops a TLS client that starts its handshake without a header', async () => {
    const client = await Pop3TestClient.connect({ port: gw.port.pop3s!, preamble: Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]), readGreeting: false });
    await expectSilentClose(client, 2000);
  });
});

describe('the gateway behind a real HAProxy', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  const proxies: HaproxyInstance[] = [];

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'Subject: via haproxy\r\n\r\nfrom the maildir\r\n');
    const proxied = { proxyProtocol: true, trustedProxies: ['127.0.0.1/32'] };
    gw = await startTestGateway(dovecot.port, {
      listeners: [
        { name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit', ...proxied },
        { name: 'pop3', host: '127.0.0.1', port: 0, tls: 'starttls', ...proxied },
      ],
    });
  });

  afterAll(async () => {
    for (const p of proxies) await p.stop();
    await gw?.stop();
    await dovecot?.stop();
  });

  it('sees the client at 127.0.0.5 through send-proxy-v2 in front of the implicit-TLS port', async () => {
    const hp = await startHaproxy({ backends: [{ host: '127.0.0.1', port: gw.port.pop3s! }], sendProxy: 'v2' });
    proxies.push(hp);
    const client = await Pop3TestClient.connect({ port: hp.port, tls: true, localAddress: CLIENT_IP });
    const clientAddress = `${CLIENT_IP}:${client.tlsSocket!.localPort!}`;
    expect(client.greeting).toMatch(/^\+OK/);
    await client.login('alice', 'alice-secret');
    const retr = await client.multiline('RETR 1');
    expect(retr.body!.toString('latin1')).toContain('from the maildir');
    await client.quit();

    const records = await sessionRecords(gw, clientAddress);
    expect(records.map((r) => r.event)).toEqual(expect.arrayContaining(['connect', 'login', 'command', 'logout', 'disconnect']));
    expect(records.every((r) => r.client === clientAddress && r.listener === 'pop3s')).toBe(true);
    expect(records.find((r) => r.event === 'command' && r.command === 'RETR')).toMatchObject({ user: 'alice', result: 'ok' });
    expect(gw.logs.find({ event: 'session-start', client: clientAddress })).toHaveLength(1);
    // HAProxy really was in the path: it logged the connection from the client.
    await hp.waitForLog(new RegExp(`${CLIENT_IP.replace(/\./g, '\\.')}:\\d+ .* fe be/s0 `));
  });

  it('sees the client at 127.0.0.5 through send-proxy (v1) in front of the STLS port', async () => {
    const hp = await startHaproxy({ backends: [{ host: '127.0.0.1', port: gw.port.pop3! }], sendProxy: 'v1' });
    proxies.push(hp);
    const client = await Pop3TestClient.connect({ port: hp.port, localAddress: CLIENT_IP });
    expect(client.greeting).toMatch(/^\+OK/);
    await client.startTls();
    // The TLS socket runs over the same TCP connection, so its local port is the client's.
    const clientAddress = `${CLIENT_IP}:${client.tlsSocket!.localPort!}`;
    await client.login('alice', 'alice-secret');
    expect(await client.ok('STAT')).toMatch(/^\+OK 1 /);
    await client.quit();

    const records = await sessionRecords(gw, clientAddress);
    expect(records.find((r) => r.event === 'login')).toMatchObject({ result: 'ok', user: 'alice', listener: 'pop3' });
    expect(gw.logs.find({ event: 'session-start', client: clientAddress })).toHaveLength(1);
  });

  it('drops the connection when HAProxy sends no header to a listener that requires one', async () => {
    const hp = await startHaproxy({ backends: [{ host: '127.0.0.1', port: gw.port.pop3s! }], sendProxy: false });
    proxies.push(hp);
    // The TLS ClientHello arrives where the header should be: not a PROXY signature, so closed.
    await expect(Pop3TestClient.connect({ port: hp.port, tls: true, localAddress: CLIENT_IP, timeoutMs: 3000 })).rejects.toThrow();
    await gw.logs.waitFor((l) => l.event === 'proxy-invalid' && l.listener === 'pop3s' && l.reason === 'no PROXY protocol signature');
  });
});
