/**
 * PROXY protocol out: `backend.proxyProtocol: v1 | v2` tells a real Dovecot (haproxy = yes on
 * both its ports, so it requires the header) who the client really is. The full chain is
 * client (127.0.0.5) → HAProxy (send-proxy-v2) → gateway → Dovecot, and both the gateway's
 * audit and Dovecot's own log name 127.0.0.5. The capability probe, which has no client,
 * sends PROXY v2 LOCAL / v1 UNKNOWN so that such a Dovecot still answers it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildProxyV1 } from '../../src/protocol/proxy-header.ts';
import { waitForAudit } from '../harness/audit-wait.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { startHaproxy, type HaproxyInstance } from '../harness/haproxy.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

const CLIENT_IP = '127.0.0.5';
const proxied = { proxyProtocol: true, trustedProxies: ['127.0.0.1/32'] };

async function healthz(gw: TestGateway): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${gw.port.admin!}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function waitForLog(dovecot: DovecotInstance, pattern: RegExp, timeoutMs = 5000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const log = dovecot.readLog();
    if (pattern.test(log)) return log;
    if (Date.now() > end) throw new Error(`timed out waiting for ${String(pattern)} in the Dovecot log:\n${log}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the gateway in front of a Dovecot that requires a PROXY header', () => {
  let dovecot: DovecotInstance;
  let gwV2: TestGateway;
  let gwV1: TestGateway;
  let hp: HaproxyInstance;

  beforeAll(async () => {
    dovecot = await startDovecot({ haproxyTrustedNetworks: ['127.0.0.0/8'] });
    dovecot.addMessage('alice', 'Subject: proxied twice\r\n\r\nthe real client is 127.0.0.5\r\n');
    const listeners = [
      { name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit', ...proxied },
      { name: 'plain', host: '127.0.0.1', port: 0, tls: 'none', requireTls: false, ...proxied },
    ];
    gwV2 = await startTestGateway(dovecot.port, { listeners, backend: { proxyProtocol: 'v2' } });
    gwV1 = await startTestGateway(dovecot.port, { listeners, backend: { proxyProtocol: 'v1' } });
    hp = await startHaproxy({ backends: [{ host: '127.0.0.1', port: gwV2.port.pop3s! }], sendProxy: 'v2' });
  });

  afterAll(async () => {
    await hp?.stop();
    await gwV1?.stop();
    await gwV2?.stop();
    await dovecot?.stop();
  });

  it('names 127.0.0.5 in the gateway audit and in Dovecot\'s log for client → HAProxy → gateway → Dovecot', async () => {
    const client = await Pop3TestClient.connect({ port: hp.port, tls: true, localAddress: CLIENT_IP });
    const clientAddress = `${CLIENT_IP}:${client.tlsSocket!.localPort!}`;
    await client.login('alice', 'alice-secret');
    const retr = await client.multiline('RETR 1');
    expect(retr.body!.toString('latin1')).toContain('the real client is 127.0.0.5');
    await client.quit();

    const [login] = await waitForAudit(gwV2, (l) => l.event === 'login' && l.client === clientAddress);
    expect(login).toMatchObject({ result: 'ok', user: 'alice', listener: 'pop3s' });
    await waitForAudit(gwV2, (l) => l.event === 'command' && l.command === 'RETR' && l.client === clientAddress);
    // Dovecot trusts the gateway's header and logs the forwarded address as the remote IP.
    await waitForLog(dovecot, /Login: user=<alice>.*rip=127\.0\.0\.5\b/);
    expect(dovecot.readLog()).not.toMatch(/Login: user=<alice>.*rip=127\.0\.0\.1\b/);
  });

  it('probes that Dovecot with a PROXY v2 LOCAL header, so /healthz reports the backend up', async () => {
    // Without a header that Dovecot never answers (last test), so a green probe proves the header.
    expect(await healthz(gwV2)).toMatchObject({ status: 200, body: { status: 'ok', backend: true } });
  });

  it('sends a PROXY v1 header with backend.proxyProtocol v1, and probes with PROXY UNKNOWN', async () => {
    expect(await healthz(gwV1)).toMatchObject({ status: 200, body: { status: 'ok', backend: true } });
    const preamble = buildProxyV1({ address: '192.0.2.77', port: 47001 }, { address: '127.0.0.1', port: 110 });
    const client = await Pop3TestClient.connect({ port: gwV1.port.plain!, preamble });
    await client.login('bob', 'bob-secret');
    expect(await client.ok('STAT')).toMatch(/^\+OK 0 0/);
    await client.quit();
    const [login] = await waitForAudit(gwV1, (l) => l.event === 'login' && l.client === '192.0.2.77:47001');
    expect(login).toMatchObject({ result: 'ok', user: 'bob' });
    await waitForLog(dovecot, /Login: user=<bob>.*rip=192\.0\.2\.77\b/);
  });

  it('cannot use that Dovecot without a header: the probe fails and a login gets -ERR [SYS/TEMP]', async () => {
    // Dovecot waits a few seconds for the header it requires, then drops the connection.
    const gwNone = await startTestGateway(dovecot.port, { policy: { timeouts: { backendReply: '8s' } } });
    try {
      expect(await healthz(gwNone)).toMatchObject({ status: 503, body: { backend: false } });
      const client = await Pop3TestClient.connect({ port: gwNone.port.plain!, timeoutMs: 12_000 });
      await client.ok('USER alice');
      expect(await client.command('PASS alice-secret')).toMatch(/^-ERR \[SYS\/TEMP\]/);
      await client.quit();
    } finally {
      await gwNone.stop();
    }
  }, 30_000);
});
