/**
 * Rules after login (policy.rules), end to end in front of a real Dovecot (issue 3): a read-only
 * mailbox, a network rule (clients bound to 127.0.0.2), maxMessages and maxBytes per session, an
 * allow-list rule, and a report-only rule that lets commands through and audits "would deny".
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { eventually, metricValue, scrape } from './policy-helpers.ts';

const NOT_PERMITTED = '-ERR Command not permitted by policy.';
const LIMIT = '-ERR Retrieval limit for this session reached.';
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];

const capaLines = (body: Buffer | null) => (body ?? Buffer.alloc(0)).toString('latin1').split('\r\n').filter((l) => l !== '');
/** A message of exactly `size` octets. */
const sized = (subject: string, size: number) => {
  const head = `Subject: ${subject}\r\n\r\n`;
  return `${head}${'x'.repeat(size - head.length - 2)}\r\n`;
};

describe('rules after login through the gateway in front of a real Dovecot', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: USERS.map((name) => ({ name, password: `${name}-secret` })) });
    for (const user of USERS) for (let i = 1; i <= 3; i++) dovecot.addMessage(user, sized(`${user} ${i}`, 1000));
    dovecot.addMessage('dave', sized('dave small', 300));
    gw = await startTestGateway(dovecot.port, {
      policy: {
        rules: [
          { match: { user: 'bob' }, deny: ['DELE'] },
          { match: { network: '127.0.0.2/32' }, deny: ['TOP'] },
          { match: { user: 'carol' }, maxMessages: 2 },
          { match: { user: 'dave' }, maxBytes: '2500B' },
          { match: { user: 'erin' }, allow: ['STAT', 'LIST', 'UIDL', 'NOOP', 'CAPA'] },
          { match: { user: 'frank' }, deny: ['DELE', 'TOP'], maxMessages: 1, mode: 'report' },
        ],
      },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  const policyAudit = (user: string) => gw.auditLines().filter((l) => l.event === 'policy' && l.user === user);
  const refusals = async (reason: string) => metricValue(await scrape(gw.port.admin!), 'pop3gw_policy_refusals_total', { reason });

  it('keeps a read-only mailbox read-only: DELE is refused and the message is still on disk after QUIT', async () => {
    const before = await refusals('rule-deny');
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('bob', 'bob-secret');
    expect(await c.command('DELE 1')).toBe(NOT_PERMITTED);
    expect((await c.multiline('RETR 1')).body!.toString()).toContain('Subject: bob 1');
    expect(await c.quit()).toMatch(/^\+OK/);
    await eventually(() => gw.auditLines().some((l) => l.event === 'logout' && l.user === 'bob'), 'the logout record');
    expect(dovecot.messageFiles('bob')).toHaveLength(3);
    expect(await refusals('rule-deny')).toBe(before + 1);
    expect(policyAudit('bob')).toEqual([expect.objectContaining({ command: 'DELE', result: 'denied', reason: 'rule-deny' })]);
    expect(gw.auditLines().find((l) => l.event === 'command' && l.user === 'bob' && l.command === 'DELE'))
      .toMatchObject({ result: 'denied', msg: 1, reason: 'rule-deny' });
    expect(gw.auditLines().find((l) => l.event === 'logout' && l.user === 'bob')).toMatchObject({ result: 'ok', deleted: [] });
  });

  it('applies a network rule only to clients in that network (127.0.0.2 may not TOP, 127.0.0.1 may)', async () => {
    const inside = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, localAddress: '127.0.0.2' });
    await inside.login('alice', 'alice-secret');
    expect(capaLines((await inside.multiline('CAPA')).body)).not.toContain('TOP');
    expect(await inside.command('TOP 1 0')).toBe(NOT_PERMITTED);
    expect((await inside.multiline('RETR 1')).status).toMatch(/^\+OK/);
    await inside.quit();
    const outside = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, localAddress: '127.0.0.1' });
    await outside.login('alice', 'alice-secret');
    expect(capaLines((await outside.multiline('CAPA')).body)).toContain('TOP');
    expect((await outside.multiline('TOP 1 0')).body!.toString()).toContain('Subject: alice 1');
    await outside.quit();
    await eventually(() => policyAudit('alice').length > 0, 'the policy record');
    expect(policyAudit('alice').map((l) => [l.command, l.reason, l.client?.toString().split(':')[0]])).toEqual([['TOP', 'rule-deny', '127.0.0.2']]);
  });

  it('stops retrievals at maxMessages per session, and a new session starts from zero', async () => {
    const before = await refusals('max-messages');
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('carol', 'carol-secret');
    expect((await c.multiline('RETR 1')).status).toMatch(/^\+OK/);
    expect((await c.multiline('TOP 2 0')).status).toMatch(/^\+OK/);
    expect(await c.command('RETR 3')).toBe(LIMIT);
    expect(await c.command('TOP 1 0')).toBe(LIMIT);
    expect(await c.command('STAT')).toMatch(/^\+OK 3 /); // the session goes on
    await c.quit();
    const d = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await d.login('carol', 'carol-secret');
    expect((await d.multiline('RETR 3')).status).toMatch(/^\+OK/);
    await d.quit();
    expect(await refusals('max-messages')).toBe(before + 2);
  });

  it('refuses a retrieval that would take the session past maxBytes, and lets smaller ones through', async () => {
    const before = await refusals('max-bytes');
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('dave', 'dave-secret');
    expect((await c.multiline('RETR 1')).status).toMatch(/^\+OK/); // 1000
    expect((await c.multiline('RETR 2')).status).toMatch(/^\+OK/); // 2000
    expect(await c.command('RETR 3')).toBe(LIMIT); //                  3000 > 2500: refused before anything is relayed
    expect((await c.multiline('RETR 4')).body!.toString()).toContain('Subject: dave small'); // 2300
    expect(await c.command('RETR 4')).toBe(LIMIT); //                  2600 > 2500
    await c.quit();
    expect(await refusals('max-bytes')).toBe(before + 2);
    await eventually(() => gw.auditLines().some((l) => l.event === 'logout' && l.user === 'dave'), 'the logout record');
    const relayed = gw.auditLines().filter((l) => l.event === 'command' && l.user === 'dave' && l.command === 'RETR' && l.result === 'ok');
    expect(relayed.map((l) => l.msg)).toEqual([1, 2, 4]);
  });

  it('lets an allow-list rule narrow the session to the verbs it names (QUIT always works)', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('erin', 'erin-secret');
    const capa = capaLines((await c.multiline('CAPA')).body);
    expect(capa).toContain('UIDL');
    expect(capa).not.toContain('TOP');
    expect(await c.command('STAT')).toMatch(/^\+OK 3 /);
    expect((await c.multiline('UIDL')).status).toMatch(/^\+OK/);
    expect(await c.command('RETR 1')).toBe(NOT_PERMITTED);
    expect(await c.command('DELE 1')).toBe(NOT_PERMITTED);
    expect(await c.command('RSET')).toBe(NOT_PERMITTED);
    expect(await c.quit()).toMatch(/^\+OK/);
    expect(dovecot.messageFiles('erin')).toHaveLength(3);
  });

  it('lets commands through under a report-only rule and audits each as would-deny', async () => {
    const before = await refusals('rule-deny');
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('frank', 'frank-secret');
    // CAPA is not narrowed in report mode.
    expect(capaLines((await c.multiline('CAPA')).body)).toContain('TOP');
    expect((await c.multiline('TOP 1 0')).status).toMatch(/^\+OK/);
    expect((await c.multiline('RETR 2')).status).toMatch(/^\+OK/); // second retrieval: over maxMessages 1
    expect(await c.command('DELE 3')).toMatch(/^\+OK/);
    expect(await c.quit()).toMatch(/^\+OK/);
    // The DELE really happened.
    await eventually(() => dovecot.messageFiles('frank').length === 2, 'the DELE to take effect');
    await eventually(() => policyAudit('frank').length === 3, 'three would-deny records');
    expect(policyAudit('frank').map((l) => [l.command, l.result, l.reason])).toEqual([
      ['TOP', 'would-deny', 'rule-deny'],
      ['RETR', 'would-deny', 'max-messages'],
      ['DELE', 'would-deny', 'rule-deny'],
    ]);
    expect(gw.logs.find({ event: 'policy', result: 'would-deny' }).map((l) => l.verb)).toEqual(['TOP', 'RETR', 'DELE']);
    // Nothing was refused, so the refusal counter did not move.
    expect(await refusals('rule-deny')).toBe(before);
    await eventually(() => gw.auditLines().some((l) => l.event === 'logout' && l.user === 'frank'), 'the logout record');
    expect(gw.auditLines().find((l) => l.event === 'logout' && l.user === 'frank')).toMatchObject({ result: 'ok', deleted: [expect.objectContaining({ msg: 3 })] });
  });

  it('never leaks a password into the logs or the audit', () => {
    const everything = gw.logs.text() + fs.readFileSync(gw.auditFile, 'utf8');
    for (const user of USERS) expect(everything).not.toContain(`${user}-secret`);
  });
});
