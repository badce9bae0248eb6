import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { TlsEngine } from '../../../src/net/tls-engine.ts';
import { makeCert, type CertFiles } from '../../harness/certs.ts';

type Route = 'withIds' | 'ticketsOnly';

/** A loopback listener that hands each connection to the engine, and which server took it. */
async function engineOn(options: Partial<tls.TlsOptions> = {}): Promise<{ engine: TlsEngine; port: number; routes: Route[]; failures: string[]; cert: CertFiles; close(): void }> {
  const cert = await makeCert({ commonName: 'localhost' });
  const failures: string[] = [];
  const engine = new TlsEngine({ cert: cert.certPem, key: cert.keyPem, handshakeTimeout: 1000, ...options }, (_l, err) => failures.push(err.message));
  const routes: Route[] = [];
  // The two servers are private: the test watches which one is handed each connection.
  const servers = engine as unknown as Record<Route, tls.Server>;
  for (const r of ['withIds', 'ticketsOnly'] as const) servers[r].prependListener('connection', () => routes.push(r));
  const server = net.createServer((raw) => {
    raw.on('error', () => undefined);
    engine.upgrade(raw, 'test').then((s) => s.end('+OK hello\r\n'), () => raw.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { engine, port: (server.address() as net.AddressInfo).port, routes, failures, cert, close: () => server.close() };
}

function greetingOver(port: number, cert: CertFiles, opts: tls.ConnectionOptions = {}): Promise<{ line: string; protocol: string | null }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', ca: cert.caPem, servername: 'localhost', ...opts });
    s.once('data', (d: Buffer) => {
      resolve({ line: d.toString('latin1'), protocol: s.getProtocol() });
      s.destroy();
    });
    s.once('error', reject);
  });
}

let close: (() => void) | null = null;
afterEach(() => close?.());

describe('TLS engine: which server serves a handshake', () => {
  it('a hello that offers TLS 1.3 skips the session-ID cache; a TLS 1.2 hello gets it', async () => {
    const e = await engineOn();
    close = e.close;
    expect(await greetingOver(e.port, e.cert)).toEqual({ line: '+OK hello\r\n', protocol: 'TLSv1.3' });
    expect(await greetingOver(e.port, e.cert, { maxVersion: 'TLSv1.2' })).toEqual({ line: '+OK hello\r\n', protocol: 'TLSv1.2' });
    expect(e.routes).toEqual(['ticketsOnly', 'withIds']);
  });

  it('a hello split over several reads goes to the server with the cache and still completes', async () => {
    const e = await engineOn();
    close = e.close;
    const raw = net.connect({ port: e.port, host: '127.0.0.1' });
    await new Promise((r) => raw.once('connect', r));
    // TLS over a JS stream of our own, so its first write (the hello) reaches the socket in two pieces.
    let first = true;
    const pieces = new Duplex({
      read: () => undefined,
      write(chunk: Buffer, _enc, done) {
        if (!first) {
          raw.write(chunk, done);
          return;
        }
        first = false;
        raw.write(chunk.subarray(0, 9));
        setTimeout(() => raw.write(chunk.subarray(9), done), 50);
      },
    });
    raw.on('data', (d: Buffer) => pieces.push(d));
    const s = tls.connect({ socket: pieces, ca: e.cert.caPem, servername: 'localhost' });
    const line = await new Promise<string>((resolve, reject) => {
      s.once('data', (d: Buffer) => resolve(d.toString('latin1')));
      s.once('error', reject);
    });
    expect(line).toBe('+OK hello\r\n');
    expect(s.getProtocol()).toBe('TLSv1.3');
    s.destroy();
    raw.destroy();
    expect(e.routes).toEqual(['withIds']);
  });

  it('TLS 1.3 only: every handshake skips the cache, without waiting for the hello', async () => {
    const e = await engineOn({ minVersion: 'TLSv1.3' });
    close = e.close;
    const raw = net.connect({ port: e.port, host: '127.0.0.1' });
    await new Promise((r) => raw.once('connect', r));
    await new Promise((r) => setTimeout(r, 50));
    expect(e.routes).toEqual(['ticketsOnly']);
    raw.destroy();
  });

  it('garbage instead of a hello is refused by OpenSSL as before', async () => {
    const e = await engineOn();
    close = e.close;
    const raw = net.connect({ port: e.port, host: '127.0.0.1' });
    raw.on('error', () => undefined);
    await new Promise((r) => raw.once('connect', r));
    raw.write('USER bob\r\n');
    await new Promise((r) => raw.once('close', r));
    expect(e.routes).toEqual(['withIds']);
    expect(e.failures.length).toBe(1);
  });

  it('no hello within the handshake timeout: closed and counted as a failed handshake', async () => {
    const e = await engineOn();
    close = e.close;
    const raw = net.connect({ port: e.port, host: '127.0.0.1' });
    raw.on('error', () => undefined);
    const started = Date.now();
    await new Promise((r) => raw.once('close', r));
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(e.routes).toEqual([]);
    expect(e.failures).toEqual(['TLS handshake timeout (no ClientHello)']);
  });

  it('a client gone before its hello: one failure, no timer left to fire', async () => {
    const e = await engineOn();
    close = e.close;
    const raw = net.connect({ port: e.port, host: '127.0.0.1' });
    await new Promise((r) => raw.once('connect', r));
    await new Promise((r) => setTimeout(r, 30));
    raw.destroy();
    await new Promise((r) => setTimeout(r, 1300));
    expect(e.failures).toEqual(['connection closed during the TLS handshake']);
    expect(e.routes).toEqual([]);
  });

  it('a socket already gone when the handshake is asked for: rejected at once, one failure, no server', async () => {
    const cert = await makeCert({ commonName: 'localhost' });
    const failures: string[] = [];
    const engine = new TlsEngine({ cert: cert.certPem, key: cert.keyPem, handshakeTimeout: 1000 }, (_l, err) => failures.push(err.message));
    const routes: Route[] = [];
    const servers = engine as unknown as Record<Route, tls.Server>;
    for (const r of ['withIds', 'ticketsOnly'] as const) servers[r].prependListener('connection', () => routes.push(r));
    const gone = new net.Socket();
    gone.destroy();
    const started = Date.now();
    await expect(engine.upgrade(gone, 'test')).rejects.toThrow('connection closed before the TLS handshake');
    expect(Date.now() - started).toBeLessThan(500);
    expect(failures).toEqual(['connection closed before the TLS handshake']);
    expect(routes).toEqual([]);
  });
});

describe('TLS engine: SNI callback only when there are SNI entries', () => {
  /** The certificate a handshake for `servername` got from the engine at `port`, whether it resumed, and its ticket. */
  const cn = (port: number, servername: string, session?: Buffer) => new Promise<{ cn: string; reused: boolean; session: Buffer | null }>((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false, session });
    let ticket: Buffer | null = null;
    let seen = { cn: '', reused: false };
    s.on('session', (t: Buffer) => (ticket = t));
    s.once('secureConnect', () => (seen = { cn: String(s.getPeerCertificate().subject?.CN), reused: s.isSessionReused() }));
    s.once('error', reject);
    s.on('data', () => undefined);
    s.once('close', () => resolve({ ...seen, session: ticket }));
  });

  it('a reload that adds the first entry serves it, one that drops the last stops; tickets resume across both', async () => {
    const main = await makeCert({ commonName: 'localhost' });
    const mail = await makeCert({ commonName: 'mail.example.test', altNames: ['mail.example.test'] });
    const base = { cert: main.certPem, key: main.keyPem, handshakeTimeout: 2000, ticketKeys: Buffer.alloc(48, 7) };
    const mailCtx = tls.createSecureContext({ cert: mail.certPem, key: mail.keyPem });
    const withSni: tls.TlsOptions = { ...base, SNICallback: (name, cb) => cb(null, name === 'mail.example.test' ? mailCtx : undefined) };
    const e = await engineOn(base);
    close = e.close;
    const first = await cn(e.port, 'mail.example.test');
    expect(first.cn).toBe('localhost');
    e.engine.update(withSni);
    expect((await cn(e.port, 'mail.example.test')).cn).toBe('mail.example.test');
    expect((await cn(e.port, 'localhost')).cn).toBe('localhost');
    // A ticket from the servers before the rebuild still resumes (same ticket keys).
    expect(first.session).not.toBeNull();
    expect((await cn(e.port, 'localhost', first.session!)).reused).toBe(true);
    e.engine.update(base);
    expect((await cn(e.port, 'mail.example.test')).cn).toBe('localhost');
  });
});
