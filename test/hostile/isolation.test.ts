/**
 * An internal error in one session (a bug, simulated here by making one
 * session's own objects throw) ends that session with -ERR [SYS/TEMP] and
 * nothing else: the process stays up and a parallel session carries on.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { startScriptBackend, type ScriptBackend } from '../harness/script-backend.ts';
import type { Pop3Session } from '../../src/relay/session.ts';
import { assertNoSecrets, fakePop3, hostileConfig, liveSessions, waitUntil } from './helpers.ts';

const INTERNAL = '-ERR [SYS/TEMP] Internal gateway error, closing connection.';

let b: ScriptBackend;
let g: TestGateway;
const uncaught: unknown[] = [];
const onUncaught = (err: unknown): void => {
  uncaught.push(err);
};

beforeAll(async () => {
  b = await startScriptBackend(fakePop3().handler);
  g = await startTestGateway(b.port, hostileConfig());
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
});

beforeEach(() => {
  uncaught.length = 0;
});

afterAll(async () => {
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
  if (g) assertNoSecrets(g);
  await g?.stop();
  await b?.close();
});

/** Two logged-in clients and the session object behind the first. */
async function pair(): Promise<{ victim: Pop3TestClient; bystander: Pop3TestClient; session: Pop3Session }> {
  const known = new Set(liveSessions(g.gw));
  const victim = await Pop3TestClient.connect({ port: g.port.plain! });
  await victim.login('alice', 'alice-secret');
  const session = liveSessions(g.gw).find((s) => !known.has(s))!;
  const bystander = await Pop3TestClient.connect({ port: g.port.pop3s!, tls: true });
  await bystander.login('alice', 'alice-secret');
  expect(await bystander.command('STAT')).toMatch(/^\+OK 2 /);
  return { victim, bystander, session };
}

async function bystanderCarriesOn(bystander: Pop3TestClient): Promise<void> {
  expect(await bystander.command('STAT')).toMatch(/^\+OK 2 /);
  const retr = await bystander.multiline('RETR 2');
  expect(retr.body!.toString()).toContain('.dot line');
  expect(await bystander.quit()).toBe('+OK bye');
}

describe('an internal error in one session', () => {
  it('ends only that session when handling a client command throws', async () => {
    const { victim, bystander, session } = await pair();
    (session as unknown as { enqueue: () => never }).enqueue = () => {
      throw new Error('simulated bug while queueing a command');
    };
    expect(await victim.command('STAT')).toBe(INTERNAL);
    await victim.waitClosed();
    await bystanderCarriesOn(bystander);
    const end = await g.logs.waitFor((l) => l.event === 'session-end' && l.session === session.id);
    expect(end.reason).toBe('internal-error');
    expect(g.logs.find({ event: 'internal-error', session: session.id })).toHaveLength(1);
    expect(uncaught).toEqual([]);
  });

  it('ends only that session when reading a backend reply throws', async () => {
    const { victim, bystander, session } = await pair();
    const stream = (session as unknown as { link: { stream: { push: (chunk: Buffer) => void } } }).link.stream;
    stream.push = () => {
      throw new Error('simulated bug while reading the backend');
    };
    expect(await victim.command('STAT')).toBe(INTERNAL);
    await victim.waitClosed();
    await bystanderCarriesOn(bystander);
    const end = await g.logs.waitFor((l) => l.event === 'session-end' && l.session === session.id);
    expect(end.reason).toBe('internal-error');
    expect(uncaught).toEqual([]);
  });

  it('ends only that session when a reply callback throws', async () => {
    const { victim, bystander, session } = await pair();
    const original = session.auditCommand.bind(session);
    session.auditCommand = () => {
      throw new Error('simulated bug while auditing');
    };
    expect(await victim.command('DELE 1')).toMatch(/^\+OK|^-ERR \[SYS\/TEMP\] Internal/);
    await victim.waitClosed();
    session.auditCommand = original;
    await bystanderCarriesOn(bystander);
    expect(uncaught).toEqual([]);
  });

  it('ends only that session when writing to the client throws', async () => {
    const { victim, bystander, session } = await pair();
    session.writeClient = () => {
      throw new Error('simulated bug while writing');
    };
    victim.send('NOOP');
    await victim.waitClosed();
    await bystanderCarriesOn(bystander);
    await waitUntil('the session to end', () => session.closing);
    expect(uncaught).toEqual([]);
  });

  it('drops only the connection whose setup throws, and accepts the next one', async () => {
    const registry = g.gw.registry as unknown as { add: (s: Pop3Session) => void };
    const add = registry.add.bind(g.gw.registry);
    let failures = 0;
    registry.add = (s) => {
      if (failures++ === 0) throw new Error('simulated bug while registering a session');
      add(s);
    };
    try {
      const broken = await Pop3TestClient.connect({ port: g.port.plain!, readGreeting: false });
      await broken.waitClosed();
      await g.logs.waitFor((l) => l.event === 'accept-error');
      const next = await Pop3TestClient.connect({ port: g.port.plain! });
      await next.login('alice', 'alice-secret');
      expect(await next.quit()).toBe('+OK bye');
    } finally {
      registry.add = add;
    }
    expect(uncaught).toEqual([]);
  });
});
