/**
 * `requireTls: report` rolls out "TLS before passwords" without a flag day: legacy clients
 * still log in over plaintext, and every such login is audited as "would refuse".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

describe('a starttls listener with requireTls: report', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot();
    gw = await startTestGateway(dovecot.port, {
      listeners: [
        { name: 'pop3', host: '127.0.0.1', port: 10110, tls: 'starttls', requireTls: 'report' },
        { name: 'strict', host: '127.0.0.1', port: 10111, tls: 'starttls' },
      ],
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  const policy = () => gw.auditLines().filter((l) => l.event === 'policy' && l.reason === 'tls-required');

  it('offers USER and SASL before STLS, as it will accept them', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3! });
    const capa = (await c.multiline('CAPA')).body!.toString();
    expect(capa).toMatch(/^STLS$/m);
    expect(capa).toMatch(/^USER$/m);
    expect(capa).toMatch(/^SASL PLAIN LOGIN/m);
    await c.quit();
  });

  it('lets a plaintext login through and audits each credential command as would-deny', async () => {
    const before = policy().length;
    const c = await Pop3TestClient.connect({ port: gw.port.pop3! });
    expect(await c.command('USER alice')).toMatch(/^\+OK/);
    expect(await c.command('PASS alice-secret')).toMatch(/^\+OK/);
    expect(await c.command('STAT')).toMatch(/^\+OK/);
    await c.quit();
    const records = policy().slice(before);
    expect(records.map((r) => r.command)).toEqual(['USER', 'PASS']);
    expect(records.every((r) => r.result === 'would-deny' || r.mode === 'report')).toBe(true);
    expect(gw.auditLines().some((l) => l.event === 'login' && l.result === 'ok' && l.user === 'alice' && l.tls === false)).toBe(true);
  });

  it('audits nothing for a client that used STLS first', async () => {
    const before = policy().length;
    const c = await Pop3TestClient.connect({ port: gw.port.pop3! });
    await c.startTls({ rejectUnauthorized: false });
    await c.login('alice', 'alice-secret');
    await c.quit();
    expect(policy().length).toBe(before);
  });

  it('still enforces on the listener that does not say report', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.strict! });
    expect(await c.command('USER alice')).toMatch(/^-ERR \[AUTH\].*STLS/);
    await c.quit();
  });
});
