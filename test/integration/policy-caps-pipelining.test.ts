/**
 * Issue 9 item 5: per-session caps (rules maxMessages / maxBytes) hold under pipelining, in front
 * of a real Dovecot. A RETR/TOP reserves its message (and its size, from the gateway's own LIST n)
 * when it is accepted, in client order, before it is queued; its reply settles the reservation.
 * Also item 14's other half: Dovecot has RESP-CODES, and the gateway passes it on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { eventually } from './policy-helpers.ts';

const LIMIT = '-ERR Retrieval limit for this session reached.';
const USERS = ['carl', 'dora', 'tom', 'rita', 'olga'];
const SIZE = 4000;

/** A message of exactly `size` octets. */
const sized = (subject: string, size: number) => {
  const head = `Subject: ${subject}\r\n\r\n`;
  return `${head}${'x'.repeat(size - head.length - 2)}\r\n`;
};

const pipelined = (...commands: string[]) => commands.map((c) => `${c}\r\n`).join('');

describe('per-session caps under pipelining, in front of a real Dovecot', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: USERS.map((name) => ({ name, password: `${name}-secret` })) });
    for (const user of USERS) for (let i = 1; i <= 3; i++) dovecot.addMessage(user, sized(`${user} ${i}`, SIZE));
    gw = await startTestGateway(dovecot.port, {
      policy: {
        rules: [
          { match: { user: 'carl' }, maxMessages: 2 },
          { match: { user: 'dora' }, maxBytes: '10KiB' },
          { match: { user: 'tom' }, maxBytes: '10KiB' },
          { match: { user: 'rita' }, maxMessages: 2 },
          { match: { user: 'olga' }, maxMessages: 2, mode: 'report' },
        ],
      },
    });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  async function session(user: string): Promise<Pop3TestClient> {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login(user, `${user}-secret`);
    return c;
  }

  /** Reads one multi-line reply and returns its body's Subject. */
  async function subjectOf(c: Pop3TestClient): Promise<string> {
    expect(await c.readLine()).toMatch(/^\+OK/);
    return /^Subject: (.*)$/m.exec((await c.readMultiline()).toString('latin1'))?.[1] ?? '';
  }

  it('answers ten pipelined RETR 1 in one write with maxMessages 2 by exactly two bodies, then -ERRs; the session goes on', async () => {
    const c = await session('carl');
    c.sendRaw(pipelined(...Array.from({ length: 10 }, () => 'RETR 1')));
    expect(await subjectOf(c)).toBe('carl 1');
    expect(await subjectOf(c)).toBe('carl 1');
    for (let i = 0; i < 8; i++) expect(await c.readLine()).toBe(LIMIT);
    expect(await c.command('STAT')).toBe(`+OK 3 ${3 * SIZE}`);
    expect(c.buffered.length).toBe(0);
    await c.quit();
    await eventually(() => gw.auditLines().filter((l) => l.event === 'policy' && l.user === 'carl').length === 8, 'eight policy records');
    const relayed = gw.auditLines().filter((l) => l.event === 'command' && l.user === 'carl' && l.command === 'RETR' && l.result === 'ok');
    expect(relayed).toHaveLength(2);
  });

  it('holds maxBytes 10KiB against pipelined RETRs: two 4000-octet bodies, the rest refused before any byte is relayed', async () => {
    const c = await session('dora');
    c.sendRaw(pipelined('RETR 1', 'RETR 1', 'RETR 1', 'RETR 1', 'RETR 1'));
    expect(await subjectOf(c)).toBe('dora 1');
    expect(await subjectOf(c)).toBe('dora 1');
    for (let i = 0; i < 3; i++) expect(await c.readLine()).toBe(LIMIT);
    expect(await c.command('RETR 2')).toBe(LIMIT);
    expect(await c.command('NOOP')).toBe('+OK');
    expect(c.buffered.length).toBe(0);
    await c.quit();
  });

  it('counts TOP n 100000 against maxBytes (the message size as an upper bound) and maxMessages', async () => {
    const bytes = await session('tom');
    bytes.sendRaw(pipelined('TOP 1 100000', 'TOP 2 100000', 'TOP 3 100000'));
    expect(await subjectOf(bytes)).toBe('tom 1');
    expect(await subjectOf(bytes)).toBe('tom 2');
    expect(await bytes.readLine()).toBe(LIMIT);
    await bytes.quit();
    const count = await session('rita');
    count.sendRaw(pipelined('TOP 1 100000', 'TOP 2 0', 'TOP 3 100000', 'RETR 1'));
    expect(await subjectOf(count)).toBe('rita 1');
    expect(await subjectOf(count)).toBe('rita 2');
    expect(await count.readLine()).toBe(LIMIT);
    expect(await count.readLine()).toBe(LIMIT);
    await count.quit();
  });

  it('settles TOP to what it relayed: headers only leave room for whole messages', async () => {
    const c = await session('tom');
    c.sendRaw(pipelined('TOP 1 0', 'TOP 2 0'));
    expect(await subjectOf(c)).toBe('tom 1');
    expect(await subjectOf(c)).toBe('tom 2');
    // Both TOPs answered: each now counts the headers it relayed, not the 4000 it reserved.
    c.sendRaw(pipelined('RETR 1', 'RETR 2', 'RETR 3'));
    expect(await subjectOf(c)).toBe('tom 1');
    expect(await subjectOf(c)).toBe('tom 2');
    expect(await c.readLine()).toBe(LIMIT); // 2 x 4000 + two headers + 4000 > 10 KiB
    await c.quit();
  });

  it('keeps the order of replies when refusals and relayed bodies are pipelined together', async () => {
    const c = await session('carl');
    c.sendRaw(pipelined('RETR 2', 'STAT', 'RETR 3', 'NOOP', 'RETR 1', 'LIST 1', 'TOP 1 0', 'UIDL 3'));
    expect(await subjectOf(c)).toBe('carl 2');
    expect(await c.readLine()).toBe(`+OK 3 ${3 * SIZE}`);
    expect(await subjectOf(c)).toBe('carl 3');
    expect(await c.readLine()).toBe('+OK');
    expect(await c.readLine()).toBe(LIMIT);
    expect(await c.readLine()).toBe(`+OK 1 ${SIZE}`);
    expect(await c.readLine()).toBe(LIMIT);
    expect(await c.readLine()).toMatch(/^\+OK 3 \S+$/);
    expect(c.buffered.length).toBe(0);
    await c.quit();
  });

  it('gives a reservation back when Dovecot answers -ERR (no such message)', async () => {
    const c = await session('carl');
    c.sendRaw(pipelined('RETR 9', 'RETR 9'));
    expect(await c.readLine()).toMatch(/^-ERR (?!Retrieval limit)/);
    expect(await c.readLine()).toMatch(/^-ERR (?!Retrieval limit)/);
    c.sendRaw(pipelined('RETR 1', 'RETR 2', 'RETR 3'));
    expect(await subjectOf(c)).toBe('carl 1');
    expect(await subjectOf(c)).toBe('carl 2');
    expect(await c.readLine()).toBe(LIMIT);
    await c.quit();
  });

  it('in report mode lets every pipelined RETR through and audits each one past the cap as would-deny', async () => {
    const c = await session('olga');
    c.sendRaw(pipelined('RETR 1', 'RETR 2', 'RETR 3', 'RETR 1'));
    expect(await subjectOf(c)).toBe('olga 1');
    expect(await subjectOf(c)).toBe('olga 2');
    expect(await subjectOf(c)).toBe('olga 3');
    expect(await subjectOf(c)).toBe('olga 1');
    await c.quit();
    await eventually(() => gw.auditLines().filter((l) => l.event === 'policy' && l.user === 'olga').length === 2, 'two would-deny records');
    expect(gw.auditLines().filter((l) => l.event === 'policy' && l.user === 'olga').map((l) => [l.result, l.reason]))
      .toEqual([['would-deny', 'max-messages'], ['would-deny', 'max-messages']]);
  });

  it('passes on RESP-CODES and AUTH-RESP-CODE because Dovecot advertises them', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    const lines = (await c.multiline('CAPA')).body!.toString('latin1').split('\r\n');
    expect(lines).toContain('RESP-CODES');
    expect(lines).toContain('AUTH-RESP-CODE');
    await c.quit();
  });
});
