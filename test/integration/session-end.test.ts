/**
 * A session's end lets go of its connection slot and its registry entry through the session's
 * whenClosed callbacks (src/relay/session.ts): in the turn it ends, and even when another such
 * callback throws; and the two ways a session can fail to start (its greeting throws, or no
 * session can be opened at all) give the slot back too. Real Dovecot behind the gateway,
 * maxPerIp 1, so a slot not given back would refuse the next connection from the same address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

interface SessionView {
  whenClosed(fn: () => void): void;
  closed: Promise<void>;
}

describe('session end', () => {
  let dc: DovecotInstance;
  let gw: TestGateway;
  const sessions: SessionView[] = [];
  let throwing = false;
  let failAdd = false;

  beforeAll(async () => {
    dc = await startDovecot();
    dc.addMessage('bob', 'Subject: hi\r\n\r\nHello.\r\n');
    gw = await startTestGateway(dc.port, { policy: { connections: { maxPerIp: 1 } } });
    const registry = gw.gw.registry as unknown as { add(s: SessionView): void };
    const add = registry.add.bind(registry);
    registry.add = (s) => {
      if (failAdd) {
        failAdd = false;
        throw new Error('registry refused');
      }
      sessions.push(s);
      // Runs before the registry's and the listener's own callbacks.
      if (throwing) s.whenClosed(() => { throw new Error('boom'); });
      add(s);
    };
  });

  afterAll(async () => {
    await gw?.stop();
    await dc?.stop();
  });

  async function oneSession(): Promise<SessionView> {
    const before = sessions.length;
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(c.greeting).toMatch(/^\+OK/);
    await c.login('bob', 'bob-secret');
    expect(await c.command('STAT')).toMatch(/^\+OK 1 /);
    await c.quit();
    const s = sessions[before]!;
    await s.closed;
    return s;
  }

  it('gives the slot back and leaves the registry when it ends, so the address may connect again', async () => {
    await oneSession();
    expect(gw.gw.registry.size).toBe(0);
    await oneSession();
    expect(gw.gw.registry.size).toBe(0);
  });

  it('gives the slot back even when another end callback throws, and logs that one', async () => {
    throwing = true;
    try {
      await oneSession();
      expect(gw.gw.registry.size).toBe(0);
      expect(gw.logs.find({ msg: 'session end callback failed' }).length).toBeGreaterThan(0);
      // The slot came back: maxPerIp 1 would refuse this one otherwise.
      await oneSession();
    } finally {
      throwing = false;
    }
  });

  it('answers closed at once for a session that has already ended', async () => {
    const s = await oneSession();
    let ran = false;
    s.whenClosed(() => (ran = true));
    expect(ran).toBe(true);
    await s.closed;
  });

  it('ends a session whose greeting throws with the internal-error reply, and gives its slot back', async () => {
    const metrics = gw.gw.metrics as unknown as { sessionOpened(l: string): void };
    const opened = metrics.sessionOpened.bind(metrics);
    metrics.sessionOpened = () => {
      metrics.sessionOpened = opened;
      throw new Error('greeting broke');
    };
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(c.greeting).toBe('-ERR [SYS/TEMP] Internal gateway error, closing connection.');
    await c.waitClosed();
    await gw.logs.waitFor((l) => l.msg === 'internal error in session' && String(l.err).includes('greeting broke'));
    expect(gw.gw.registry.size).toBe(0);
    await oneSession();
  });

  it('closes the connection and gives its slot back when no session can be opened for it', async () => {
    failAdd = true;
    const c = await Pop3TestClient.connect({ port: gw.port.plain!, readGreeting: false });
    await c.waitClosed();
    await gw.logs.waitFor((l) => l.msg === 'accept failed' && String(l.err).includes('registry refused'));
    expect(failAdd).toBe(false);
    await oneSession();
  });
});
