/**
 * docs/haproxy.cfg.example, run by a real HAProxy in front of two gateways and a Dovecot. Only
 * addresses, ports, the log target and the check interval are rewritten for loopback and speed;
 * everything else (send-proxy-v2, leastconn, the POP3 tcp-check over TLS and plaintext,
 * timeouts) is the file as shipped.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForAudit } from '../harness/audit-wait.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { startHaproxyConfig, type HaproxyInstance } from '../harness/haproxy.ts';
import { freePort } from '../harness/ports.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

const EXAMPLE = path.resolve(import.meta.dirname, '../../docs/haproxy.cfg.example');
const CLIENT_IP = '127.0.0.5';
// With `inter` this short, HAProxy also bounds a check's connect + TLS handshake by it
// (min(timeout connect, inter)): 1 s leaves room on a loaded test machine.
const CHECK_MS = 1000;

function rewrite(text: string, ports: { pop3s: number; pop3: number }, gws: TestGateway[]): string {
  const out = text
    .replace('log /dev/log local0', 'log stderr format raw local0 info')
    .replace(/^(\s*)bind :995$/m, `$1bind 127.0.0.1:${ports.pop3s}`)
    .replace(/^(\s*)bind :110$/m, `$1bind 127.0.0.1:${ports.pop3}`)
    .replace(/^(\s*server gw([12])) 10\.0\.0\.1[12]:(995|110)$/gm, (_m, head: string, n: string, port: string) =>
      `${head} 127.0.0.1:${gws[Number(n) - 1]!.port[port === '995' ? 'pop3s' : 'pop3']!}`)
    .replace(/inter 10s/g, `inter ${CHECK_MS}ms`);
  if (/10\.0\.0\.|bind :/.test(out.replace(/#.*$/gm, ''))) throw new Error(`example not fully rewritten:\n${out}`);
  return out;
}

describe('the shipped HAProxy example in front of two gateways', () => {
  let dovecot: DovecotInstance;
  const gws: TestGateway[] = [];
  let hp: HaproxyInstance;
  let ports: { pop3s: number; pop3: number };

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'Subject: balanced\r\n\r\nthrough haproxy\r\n');
    const proxied = { proxyProtocol: true, trustedProxies: ['127.0.0.1/32'] };
    for (let i = 0; i < 2; i++) {
      gws.push(await startTestGateway(dovecot.port, {
        listeners: [
          { name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit', ...proxied },
          { name: 'pop3', host: '127.0.0.1', port: 0, tls: 'starttls', ...proxied },
        ],
      }));
    }
    ports = { pop3s: await freePort(), pop3: await freePort() };
    hp = await startHaproxyConfig(rewrite(fs.readFileSync(EXAMPLE, 'utf8'), ports, gws), ports);
  });

  afterAll(async () => {
    await hp?.stop();
    for (const gw of gws) await gw.stop();
    await dovecot?.stop();
  });

  it('keeps both gateways up through the POP3 health checks over TLS and plaintext', async () => {
    for (const gw of gws) {
      for (const listener of ['pop3s', 'pop3']) {
        // Checks arrive with a PROXY v2 LOCAL header: the gateway uses HAProxy's own address and
        // greets; HAProxy sends QUIT only after its `expect string +OK` passed.
        await gw.logs.waitFor(() => gw.logs.find({ event: 'session-end', reason: 'quit', listener }).length >= 2, CHECK_MS * 8);
      }
      expect(gw.logs.find({ event: 'proxy-invalid' })).toEqual([]);
      const checks = await waitForAudit(gw, (l) => l.event === 'connect' && l.listener === 'pop3s');
      expect(checks.every((l) => String(l.client).startsWith('127.0.0.1:') && l.tls !== false)).toBe(true);
    }
    // Every server's latest state is UP (HAProxy logs changes only; servers start UP).
    for (const name of ['gateways_pop3s/gw1', 'gateways_pop3s/gw2', 'gateways_pop3/gw1', 'gateways_pop3/gw2']) {
      const states = [...hp.readLog().matchAll(new RegExp(`Server ${name} is (UP|DOWN)`, 'g'))].map((m) => m[1]);
      expect(states.at(-1) ?? 'UP').toBe('UP');
    }
  }, 30_000);

  it('balances held sessions over both gateways, and each sees the client at 127.0.0.5', async () => {
    const tlsClients = [
      await Pop3TestClient.connect({ port: ports.pop3s, tls: true, localAddress: CLIENT_IP }),
      await Pop3TestClient.connect({ port: ports.pop3s, tls: true, localAddress: CLIENT_IP }),
    ];
    const stlsClient = await Pop3TestClient.connect({ port: ports.pop3, localAddress: CLIENT_IP });
    await stlsClient.startTls();
    const clients = [...tlsClients, stlsClient];
    for (const c of clients) {
      await c.login('alice', 'alice-secret');
      expect((await c.multiline('RETR 1')).body!.toString('latin1')).toContain('through haproxy');
    }
    // leastconn: with two sessions held on the POP3S port, each gateway has one.
    const isLogin = (l: Record<string, unknown>): boolean => l.event === 'login' && l.result === 'ok' && l.listener === 'pop3s';
    for (const gw of gws) await waitForAudit(gw, isLogin);
    expect(gws.map((gw) => gw.auditLines().filter(isLogin).length)).toEqual([1, 1]);
    const addresses = clients.map((c) => `${CLIENT_IP}:${c.tlsSocket!.localPort!}`);
    const stls = (l: Record<string, unknown>): boolean => l.event === 'login' && l.listener === 'pop3';
    await Promise.any(gws.map((gw) => waitForAudit(gw, stls)));
    const seen = gws.flatMap((gw) => gw.auditLines().filter((l) => l.event === 'login').map((l) => l.client));
    expect(seen.sort()).toEqual([...addresses].sort());
    for (const c of clients) await c.quit();
  });

  it('marks a stopped gateway down and sends new clients to the other one', async () => {
    await gws[1]!.gw.stop(200);
    await hp.waitForLog(/Server gateways_pop3s\/gw2 is DOWN/, CHECK_MS * 10);
    await hp.waitForLog(/Server gateways_pop3\/gw2 is DOWN/, CHECK_MS * 10);
    const isLogin = (l: Record<string, unknown>): boolean => l.event === 'login';
    // The previous test waited for its logins to reach the audit file.
    const before = gws[0]!.auditLines().filter(isLogin).length;
    for (let i = 0; i < 3; i++) {
      const c = await Pop3TestClient.connect({ port: ports.pop3s, tls: true, localAddress: CLIENT_IP });
      await c.login('alice', 'alice-secret');
      await c.quit();
    }
    expect(await waitForAudit(gws[0]!, isLogin, { count: before + 3 })).toHaveLength(before + 3);
  }, 30_000);
});
