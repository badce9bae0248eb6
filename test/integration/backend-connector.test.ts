/**
 * connectBackend against scripted fake POP3 backends on loopback: plain, implicit TLS and STLS,
 * and the ways a backend can misbehave during setup.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectBackend, type BackendConnection, type ConnectOptions } from '../../src/backend/connector.ts';
import { BackendError } from '../../src/backend/errors.ts';
import type { BackendConfig } from '../../src/config/schema.ts';
import { buildProxyV1, buildProxyV2 } from '../../src/protocol/proxy-header.ts';
import { makeCert, type CertFiles } from '../harness/certs.ts';
import { startScriptBackend, type ScriptBackend, type ScriptConn } from '../harness/script-backend.ts';

const CAPA_LINES = ['TOP', 'USER', 'UIDL', 'PIPELINING', 'SASL PLAIN'];
const OPTS: ConnectOptions = { wantCapa: true, responseLineMax: 512, replyTimeout: 1000 };

let good: CertFiles;
let wrongName: CertFiles;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  good = await makeCert({ commonName: 'localhost' });
  wrongName = await makeCert({ commonName: 'elsewhere.example', altNames: ['elsewhere.example'] });
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function cfgFor(port: number, over: Partial<BackendConfig> = {}): BackendConfig {
  return {
    servers: [{ host: '127.0.0.1', port }], tls: 'none', rejectUnauthorized: true, ca: null, servername: null,
    connectTimeout: 2000, connect: 'on-login', proxyProtocol: false, allowPlaintextCredentials: false,
    probeInterval: 30_000, downFor: 30_000, ...over,
  };
}

async function fake(handler: (c: ScriptConn) => Promise<void>, options: { tls?: tls.TlsOptions } = {}): Promise<ScriptBackend> {
  const backend = await startScriptBackend(handler, options);
  cleanups.push(() => backend.close());
  return backend;
}

function keep(conn: BackendConnection): BackendConnection {
  cleanups.push(() => void conn.socket.destroy());
  return conn;
}

async function connect(backend: ScriptBackend, over: Partial<BackendConfig> = {}, opts: Partial<ConnectOptions> = {}): Promise<BackendConnection> {
  return keep(await connectBackend({ host: backend.host, port: backend.port }, cfgFor(backend.port, over), { ...OPTS, ...opts }));
}

async function failure(p: Promise<unknown>): Promise<BackendError> {
  const err = await p.then((c) => {
    if (c !== null && typeof c === 'object' && 'socket' in c) keep(c as BackendConnection);
    return null;
  }, (e: unknown) => e);
  expect(err).toBeInstanceOf(BackendError);
  return err as BackendError;
}

function capaReply(lines: string[]): string {
  return `+OK Capability list follows\r\n${lines.map((l) => `${l}\r\n`).join('')}.\r\n`;
}

/** Answers commands after the greeting: CAPA with `capa` (null: -ERR), NOOP, QUIT. */
async function commandLoop(c: ScriptConn, capa: string[] | null): Promise<void> {
  for (;;) {
    const line = await c.readLine(10_000);
    if (line === null) return;
    const verb = line.split(' ')[0]!.toUpperCase();
    if (verb === 'CAPA') await c.write(capa === null ? '-ERR Unknown command\r\n' : capaReply(capa));
    else if (verb === 'NOOP') await c.write('+OK noop\r\n');
    else if (verb === 'QUIT') return c.end('+OK bye\r\n');
    else await c.write('-ERR unexpected\r\n');
  }
}

function plainBackend(greeting = '+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>', capa: string[] | null = CAPA_LINES) {
  return fake(async (c) => {
    await c.write(`${greeting}\r\n`);
    await commandLoop(c, capa);
  });
}

/** The first line the relay would see on `socket` after attaching its 'data' listener. */
function firstLine(socket: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString('latin1');
      const end = got.indexOf('\r\n');
      if (end >= 0) {
        socket.off('data', onData);
        resolve(got.slice(0, end));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

function stlsBackend(stlsReply: string, options: { capa?: string[] | null; postTlsCapa?: string[]; cert?: CertFiles } = {}) {
  const cert = options.cert ?? good;
  return fake(async (c) => {
    await c.write('+OK plain greeting\r\n');
    for (;;) {
      const line = await c.readLine(10_000);
      if (line === null) return;
      if (line === 'CAPA') {
        const capa = options.capa === undefined ? ['STLS', 'USER'] : options.capa;
        await c.write(capa === null ? '-ERR no CAPA\r\n' : capaReply(capa));
      } else if (line === 'STLS') {
        await c.write(stlsReply);
        if (!stlsReply.startsWith('+OK')) continue;
        await c.startTls({ cert: cert.certPem, key: cert.keyPem });
        return commandLoop(c, options.postTlsCapa ?? ['USER', 'X-POST-TLS']);
      } else {
        await c.write('-ERR unexpected\r\n');
      }
    }
  });
}

describe('connectBackend over plain TCP', () => {
  it('reads the greeting and the CAPA list and hands over a clean socket', async () => {
    const backend = await plainBackend();
    const conn = await connect(backend);
    expect(conn.greeting).toEqual({ kind: 'ok', code: null, text: 'POP3 ready <1896.697170952@dbc.mtview.ca.us>' });
    expect(conn.greetingLine).toBe('+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>');
    expect(conn.capa?.lines).toEqual(CAPA_LINES);
    expect(conn.capa?.pipelining).toBe(true);
    expect(conn.tls).toBe(false);
    expect(conn.leftover.length).toBe(0);
    expect(conn.server).toEqual({ host: '127.0.0.1', port: backend.port });
    expect(conn.connectMs).toBeGreaterThan(0);
    expect(conn.socket.listenerCount('data')).toBe(0);
  });

  it('lets the relay read the next reply by just attaching a data listener', async () => {
    const backend = await plainBackend();
    const conn = await connect(backend);
    conn.socket.write('NOOP\r\n');
    // The reply arrives before anyone listens: it must wait in the socket, not be lost.
    await new Promise((r) => setTimeout(r, 50));
    expect(await firstLine(conn.socket)).toBe('+OK noop');
  });

  it('removes control characters from the greeting line', async () => {
    const backend = await plainBackend('+OK hello\x07 there\x1b[2J <a@b>');
    expect((await connect(backend)).greetingLine).toBe('+OK hello there[2J <a@b>');
  });

  it('does not ask CAPA when not asked to', async () => {
    let received = '';
    const backend = await fake(async (c) => {
      await c.write('+OK hi\r\n');
      await c.waitClosed(10_000);
      received = c.received.toString('latin1');
    });
    const conn = await connect(backend, {}, { wantCapa: false });
    expect(conn.capa).toBeNull();
    conn.socket.destroy();
    await backend.waitForConnections(1);
    await expect.poll(() => received, { timeout: 2000 }).toBe('');
  });

  it('takes a -ERR to CAPA as a legacy server without capabilities', async () => {
    const backend = await plainBackend('+OK old server', null);
    const conn = await connect(backend);
    expect(conn.capa).toBeNull();
    expect(conn.leftover.length).toBe(0);
  });

  it('returns bytes sent beyond the CAPA list as leftover for the relay to refuse', async () => {
    const backend = await fake(async (c) => {
      await c.write('+OK hi\r\n');
      await c.readLine();
      await c.write(`${capaReply(['USER'])}+OK unsolicited\r\n`);
      await c.waitClosed(10_000);
    });
    const conn = await connect(backend);
    expect(conn.leftover.toString('latin1')).toBe('+OK unsolicited\r\n');
  });

  it('un-stuffs dot-stuffed CAPA lines', async () => {
    const backend = await fake(async (c) => {
      await c.write('+OK hi\r\n');
      await c.readLine();
      await c.write('+OK\r\n..X-DOTTED\r\nUSER\r\n.\r\n');
      await c.waitClosed(10_000);
    });
    expect((await connect(backend)).capa?.lines).toEqual(['.X-DOTTED', 'USER']);
  });

  it('fails with CONNECT at once when nothing listens', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const started = Date.now();
    const err = await failure(connectBackend({ host: '127.0.0.1', port }, cfgFor(port), OPTS));
    expect(err.code).toBe('CONNECT');
    expect(err.retryable).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('fails with TIMEOUT within replyTimeout when the backend accepts but never greets', async () => {
    const backend = await fake(async (c) => c.waitClosed(10_000));
    const started = Date.now();
    const err = await failure(connect(backend, {}, { replyTimeout: 200 }));
    const elapsed = Date.now() - started;
    expect(err.code).toBe('TIMEOUT');
    expect(err.retryable).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(190);
    expect(elapsed).toBeLessThan(1500);
  });

  it('fails with GREETING and keeps the response code when the greeting is -ERR', async () => {
    const backend = await plainBackend('-ERR [SYS/TEMP] overloaded');
    const err = await failure(connect(backend));
    expect(err).toMatchObject({ code: 'GREETING', responseCode: 'SYS/TEMP', retryable: false });
  });

  it.each([
    ['a greeting that is not POP3', 'SSH-2.0-OpenSSH_9.6\r\n'],
    ['a greeting line longer than responseLine', `+OK ${'x'.repeat(600)}\r\n`],
  ])('fails with PROTOCOL on %s', async (_what, greeting) => {
    const backend = await fake(async (c) => {
      await c.write(greeting);
      await c.waitClosed(10_000);
    });
    expect((await failure(connect(backend))).code).toBe('PROTOCOL');
  });

  it('fails with PROTOCOL when the CAPA list exceeds its cap', async () => {
    const backend = await plainBackend('+OK hi', Array.from({ length: 50 }, (_, i) => `X-CAP-${i} ${'y'.repeat(40)}`));
    expect((await failure(connect(backend, {}, { capaMax: 1024 }))).code).toBe('PROTOCOL');
  });

  it('fails with CLOSED when the backend hangs up in the middle of the CAPA list', async () => {
    const backend = await fake(async (c) => {
      await c.write('+OK hi\r\n');
      await c.readLine();
      c.end('+OK\r\nUSER\r\n');
    });
    const err = await failure(connect(backend));
    expect(err).toMatchObject({ code: 'CLOSED', retryable: true });
  });

  it('refuses tls: none to a non-loopback host without touching the network', async () => {
    const err = await failure(connectBackend({ host: '192.0.2.1', port: 110 }, cfgFor(110), OPTS));
    expect(err).toMatchObject({ code: 'PLAINTEXT_CREDENTIALS', retryable: false });
  });
});

describe('the PROXY header', () => {
  it.each([['v1', buildProxyV1], ['v2', buildProxyV2]] as const)('is the very first thing a plain backend receives (%s)', async (_v, build) => {
    const header = build({ address: '203.0.113.7', port: 51000 }, { address: '198.51.100.1', port: 110 });
    let firstBytes: Buffer | null = null;
    const backend = await fake(async (c) => {
      // Nothing may come before the greeting except the header (the backend speaks first).
      await new Promise((r) => setTimeout(r, 50));
      firstBytes = Buffer.from(c.received);
      await c.write('+OK hi\r\n');
      // The header is still in this fake's line buffer: skip to the command.
      await c.expectLine(/CAPA$/);
      await c.write(capaReply(['USER']));
      await c.waitClosed(10_000);
    });
    const conn = await connect(backend, {}, { proxyHeader: header });
    expect(firstBytes).toEqual(header);
    expect(conn.capa?.lines).toEqual(['USER']);
  });

  it('goes out before the TLS handshake on an implicit TLS backend', async () => {
    const header = buildProxyV2({ address: '203.0.113.7', port: 51000 }, { address: '198.51.100.1', port: 995 });
    let seenHeader: Buffer | null = null;
    const server = net.createServer((raw) => {
      raw.on('error', () => undefined);
      let buffered = Buffer.alloc(0);
      const onData = (d: Buffer) => {
        buffered = Buffer.concat([buffered, d]);
        if (buffered.length < header.length) return;
        raw.off('data', onData);
        seenHeader = buffered.subarray(0, header.length);
        // The rest is the ClientHello: feed it to a TLS server through a stream of our own.
        const pipe = new Duplex({
          read() {},
          write(chunk, _enc, cb) {
            raw.write(chunk, cb);
          },
        });
        pipe.push(buffered.subarray(header.length));
        raw.on('data', (more: Buffer) => pipe.push(more));
        raw.on('end', () => pipe.push(null));
        const secure = new tls.TLSSocket(pipe, { isServer: true, cert: good.certPem, key: good.keyPem });
        secure.on('error', () => undefined);
        secure.on('secure', () => secure.write(`+OK over TLS\r\n`));
      };
      raw.on('data', onData);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;
    const conn = keep(await connectBackend({ host: '127.0.0.1', port }, cfgFor(port, { tls: 'implicit', ca: good.caFile }),
      { ...OPTS, wantCapa: false, proxyHeader: header }));
    expect(seenHeader).toEqual(header);
    expect(conn.greetingLine).toBe('+OK over TLS');
    expect(conn.tls).toMatch(/^TLSv1\.[23]$/);
  });
});

describe('connectBackend with implicit TLS', () => {
  function tlsBackend(cert: CertFiles) {
    return fake(async (c) => {
      await c.write('+OK secure hello\r\n');
      await commandLoop(c, ['USER', 'SASL PLAIN']);
    }, { tls: { cert: cert.certPem, key: cert.keyPem } });
  }

  it('verifies the certificate against the configured CA and reads greeting and CAPA over TLS', async () => {
    const backend = await tlsBackend(good);
    const conn = await connect(backend, { tls: 'implicit', ca: good.caFile });
    expect(conn.socket).toBeInstanceOf(tls.TLSSocket);
    expect(conn.tls).toMatch(/^TLSv1\.[23]$/);
    expect(conn.greetingLine).toBe('+OK secure hello');
    expect(conn.capa?.sasl).toEqual(['PLAIN']);
  });

  it('fails with TLS when the certificate does not name the backend, and does not retry', async () => {
    const backend = await tlsBackend(wrongName);
    const err = await failure(connect(backend, { tls: 'implicit', ca: wrongName.caFile }));
    expect(err).toMatchObject({ code: 'TLS', retryable: false });
    expect(err.message).toMatch(/IP: 127\.0\.0\.1 is not in the cert's list|altnames/i);
  });

  it('checks the certificate against backend.servername when it is set', async () => {
    const backend = await tlsBackend(wrongName);
    const conn = await connect(backend, { tls: 'implicit', ca: wrongName.caFile, servername: 'elsewhere.example' });
    expect(conn.greetingLine).toBe('+OK secure hello');
  });

  it('fails with TLS when the certificate is from a CA it does not trust', async () => {
    const backend = await tlsBackend(good);
    expect((await failure(connect(backend, { tls: 'implicit' }))).code).toBe('TLS');
  });

  it('accepts any certificate only when rejectUnauthorized is false', async () => {
    const backend = await tlsBackend(wrongName);
    const conn = await connect(backend, { tls: 'implicit', rejectUnauthorized: false });
    expect(conn.greetingLine).toBe('+OK secure hello');
  });

  it('fails with TLS when the CA file cannot be read', async () => {
    const backend = await tlsBackend(good);
    const err = await failure(connect(backend, { tls: 'implicit', ca: '/nonexistent/ca.pem' }));
    expect(err.code).toBe('TLS');
    expect(err.message).toContain('/nonexistent/ca.pem');
  });

  it('fails with TIMEOUT when the handshake never completes', async () => {
    const backend = await fake(async (c) => c.waitClosed(10_000)); // plain TCP: never answers the ClientHello
    const started = Date.now();
    const err = await failure(connect(backend, { tls: 'implicit', ca: good.caFile, connectTimeout: 200 }));
    expect(err.code).toBe('TIMEOUT');
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe('connectBackend with STLS', () => {
  it('upgrades, sends the server name, and asks CAPA again over TLS', async () => {
    let servername: string | false | null = null;
    const backend = await fake(async (c) => {
      await c.write('+OK plain greeting\r\n');
      expect(await c.readLine()).toBe('CAPA');
      await c.write(capaReply(['STLS', 'USER', 'X-PRE-TLS']));
      expect(await c.readLine()).toBe('STLS');
      await c.write('+OK Begin TLS\r\n');
      await c.startTls({ cert: good.certPem, key: good.keyPem });
      servername = (c.socket as tls.TLSSocket).servername;
      await commandLoop(c, ['USER', 'X-POST-TLS']);
    });
    const conn = await connect(backend, { tls: 'starttls', ca: good.caFile, servername: 'localhost' });
    expect(conn.tls).toMatch(/^TLSv1\.[23]$/);
    expect(conn.greetingLine).toBe('+OK plain greeting');
    expect(conn.capa?.lines).toEqual(['USER', 'X-POST-TLS']);
    expect(servername).toBe('localhost');
  });

  it('never lets plaintext sent along with the STLS reply reach the session', async () => {
    const backend = await stlsBackend('+OK Begin TLS\r\n+OK injected\r\n');
    const conn = await connect(backend, { tls: 'starttls', ca: good.caFile });
    expect(conn.capa?.has('X-POST-TLS')).toBe(true);
    expect(conn.leftover.length).toBe(0);
    conn.socket.write('NOOP\r\n');
    await new Promise((r) => setTimeout(r, 50)); // the reply waits in the TLS socket until someone listens
    expect(await firstLine(conn.socket)).toBe('+OK noop');
  });

  it('fails with NO_STLS when STLS is refused, and never sends anything else in plaintext', async () => {
    let received = '';
    const backend = await fake(async (c) => {
      await c.write('+OK hi\r\n');
      await c.readLine();
      await c.write(capaReply(['STLS', 'USER']));
      await c.readLine();
      await c.write('-ERR [SYS/TEMP] TLS is down\r\n');
      await c.waitClosed(10_000);
      received = c.received.toString('latin1');
    });
    const err = await failure(connect(backend, { tls: 'starttls', ca: good.caFile }));
    expect(err).toMatchObject({ code: 'NO_STLS', retryable: false, responseCode: 'SYS/TEMP' });
    await expect.poll(() => received, { timeout: 2000 }).toBe('CAPA\r\nSTLS\r\n');
    expect(received).not.toMatch(/USER|PASS|AUTH|APOP/);
  });

  it('fails with NO_STLS when CAPA does not list STLS, without sending STLS or credentials', async () => {
    let received = '';
    const backend = await fake(async (c) => {
      await c.write('+OK hi\r\n');
      await c.readLine();
      await c.write(capaReply(['USER', 'TOP']));
      await c.waitClosed(10_000);
      received = c.received.toString('latin1');
    });
    expect((await failure(connect(backend, { tls: 'starttls', ca: good.caFile }))).code).toBe('NO_STLS');
    await expect.poll(() => received, { timeout: 2000 }).toBe('CAPA\r\n');
  });

  it('fails with NO_STLS when the backend has no CAPA at all', async () => {
    const backend = await stlsBackend('+OK\r\n', { capa: null });
    expect((await failure(connect(backend, { tls: 'starttls', ca: good.caFile }))).code).toBe('NO_STLS');
  });

  it('fails with TLS when the upgraded connection presents a certificate for another name', async () => {
    const backend = await stlsBackend('+OK Begin TLS\r\n', { cert: wrongName });
    const err = await failure(connect(backend, { tls: 'starttls', ca: wrongName.caFile }));
    expect(err).toMatchObject({ code: 'TLS', retryable: false });
  });
});

describe('abandoning a connection attempt', () => {
  it('destroys the socket and fails with CLOSED when the signal fires mid-phase', async () => {
    let closedAt = 0;
    const backend = await fake(async (c) => {
      await c.waitClosed(10_000);
      closedAt = Date.now();
    });
    const controller = new AbortController();
    const pending = connect(backend, {}, { signal: controller.signal, replyTimeout: 5000 });
    await backend.waitForConnections(1);
    const abortedAt = Date.now();
    controller.abort();
    const err = await failure(pending);
    expect(err.code).toBe('CLOSED');
    await expect.poll(() => closedAt, { timeout: 2000 }).toBeGreaterThan(0);
    expect(closedAt - abortedAt).toBeLessThan(1000);
  });

  it('does not even connect when the signal has already fired', async () => {
    const backend = await plainBackend();
    const controller = new AbortController();
    controller.abort();
    expect((await failure(connect(backend, {}, { signal: controller.signal }))).code).toBe('CLOSED');
    await new Promise((r) => setTimeout(r, 50));
    expect(backend.connections).toBe(0);
  });
});

describe('resources', () => {
  function timers(): number {
    return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  }

  it('leaves no timers behind after successes and failures', async () => {
    const ok = await plainBackend();
    const silent = await fake(async (c) => c.waitClosed(10_000));
    const refusing = await plainBackend('-ERR go away');
    await new Promise((r) => setTimeout(r, 20));
    const before = timers();
    for (let i = 0; i < 3; i++) {
      (await connect(ok)).socket.destroy();
      await failure(connect(silent, {}, { replyTimeout: 50 }));
      await failure(connect(refusing));
    }
    await new Promise((r) => setTimeout(r, 20));
    expect(timers()).toBeLessThanOrEqual(before);
  });
});
