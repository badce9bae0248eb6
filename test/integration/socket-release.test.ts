/**
 * A session lets go of its sockets once they have closed (src/relay/socket-release.ts). Node keeps
 * a closed socket's handle objects, and so the socket, until a full collection; any listener left
 * on it kept the whole session alive as long, promoted to the old generation. Real Dovecot
 * behind the gateway; the sockets and the listeners are read off the session objects as the
 * registry gets them.
 */
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

interface SessionView {
  closed: Promise<void>;
  client: Socket;
  backend: { conn: { socket: Socket } } | null;
  link: object | null;
}

/** The handler functions an object holds as own fields (the session's and its backend link's listeners). */
function handlersOf(o: object | null | undefined): Set<unknown> {
  if (o === null || o === undefined) return new Set();
  return new Set(Object.values(o).filter((v) => typeof v === 'function'));
}

/** Events of `sock` that still have one of `handlers` among their listeners. */
function heldBy(sock: Socket, handlers: Set<unknown>): string[] {
  return sock.eventNames().map(String).filter((e) => sock.listeners(e).some((f) => handlers.has(f)));
}

describe('sockets released when they close', () => {
  let dc: DovecotInstance;
  let gw: TestGateway;
  const sessions: SessionView[] = [];

  beforeAll(async () => {
    dc = await startDovecot();
    dc.addMessage('bob', 'Subject: hi\r\n\r\nHello.\r\n');
    gw = await startTestGateway(dc.port);
    const registry = gw.gw.registry as unknown as { add(s: SessionView): void };
    const add = registry.add.bind(registry);
    registry.add = (s) => {
      sessions.push(s);
      add(s);
    };
  });

  afterAll(async () => {
    await gw?.stop();
    await dc?.stop();
  });

  async function session(run: (c: Pop3TestClient) => Promise<void>, listener: 'pop3s' | 'pop3' = 'pop3s'): Promise<SessionView> {
    const before = sessions.length;
    const c = await Pop3TestClient.connect({ port: gw.port[listener]!, tls: listener === 'pop3s' });
    await run(c);
    const s = sessions[before]!;
    await s.closed;
    // The 'close' events of both sockets come a turn or two after the session's end.
    for (let i = 0; i < 50 && (!s.client.destroyed || (s.backend !== null && !s.backend.conn.socket.destroyed)); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 50));
    return s;
  }

  it('after QUIT: no session listener on the client or the backend socket, and late errors are swallowed', async () => {
    const s = await session(async (c) => {
      await c.login('bob', 'bob-secret');
      expect(await c.command('STAT')).toMatch(/^\+OK 1 /);
      await c.quit();
    });
    expect(s.backend).not.toBeNull();
    // Checked against the listeners the session holds: the test sees them while it runs.
    expect(handlersOf(s).size).toBeGreaterThan(3);
    expect(heldBy(s.client, handlersOf(s))).toEqual([]);
    expect(heldBy(s.backend!.conn.socket, handlersOf(s.link))).toEqual([]);
    // An 'error' with no listener would throw out of emit (and take the process down).
    expect(() => s.client.emit('error', new Error('late'))).not.toThrow();
    expect(() => s.backend!.conn.socket.emit('error', new Error('late'))).not.toThrow();
  });

  it('after the client hangs up mid-session: both sockets released too', async () => {
    const s = await session(async (c) => {
      await c.login('bob', 'bob-secret');
      await c.close();
    });
    expect(heldBy(s.client, handlersOf(s))).toEqual([]);
    expect(heldBy(s.backend!.conn.socket, handlersOf(s.link))).toEqual([]);
    expect(() => s.client.emit('error', new Error('late'))).not.toThrow();
  });

  it('after STLS: neither the TLS socket nor the plain one under it holds the session', async () => {
    const s = await session(async (c) => {
      await c.startTls();
      await c.login('bob', 'bob-secret');
      await c.quit();
    }, 'pop3');
    const plain = (s.client as unknown as { _parent?: Socket })._parent;
    expect(plain).toBeDefined();
    expect(heldBy(s.client, handlersOf(s))).toEqual([]);
    expect(heldBy(plain!, handlersOf(s))).toEqual([]);
    expect(() => plain!.emit('error', new Error('late'))).not.toThrow();
  });

  it('before login (no backend): the client socket is released', async () => {
    const s = await session(async (c) => {
      await c.command('USER bob');
      await c.quit();
    });
    expect(s.backend).toBeNull();
    expect(heldBy(s.client, handlersOf(s))).toEqual([]);
  });
});

describe('a backend connection dropped after a failed routed login', () => {
  let dc: DovecotInstance;
  let gw: TestGateway;
  const dropped: Array<{ link: object; socket: Socket }> = [];

  beforeAll(async () => {
    dc = await startDovecot();
    // With routes the session connects per login, and lets the connection go when the login fails.
    gw = await startTestGateway(dc.port, { routes: [{ match: 'nobody-routed', backend: { host: '127.0.0.1', port: dc.port } }] });
    type Routed = SessionView & { dropBackend(): void };
    const registry = gw.gw.registry as unknown as { add(s: Routed): void };
    const add = registry.add.bind(registry);
    registry.add = (s) => {
      const drop = s.dropBackend.bind(s);
      s.dropBackend = () => {
        if (s.backend !== null && s.link !== null) dropped.push({ link: s.link, socket: s.backend.conn.socket });
        drop();
      };
      add(s);
    };
  });

  afterAll(async () => {
    await gw?.stop();
    await dc?.stop();
  });

  it('carries none of the link listeners, and swallows late errors', async () => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(await c.command('USER bob')).toMatch(/^\+OK/);
    expect(await c.command('PASS wrong')).toMatch(/^-ERR/);
    await c.quit();
    expect(dropped).toHaveLength(1);
    const { link, socket } = dropped[0]!;
    expect(handlersOf(link).size).toBeGreaterThan(3);
    expect(heldBy(socket, handlersOf(link))).toEqual([]);
    expect(() => socket.emit('error', new Error('late'))).not.toThrow();
  });
});
