/**
 * The client-facing TLS policy, checked from outside with real `openssl s_client` runs against a
 * tls.Server built from TlsMaterial.serverOptions(). Control runs against a deliberately weak
 * server prove the client can speak what the gateway must refuse, so a refusal means something.
 */
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, type TlsConfig } from '../../src/config/schema.ts';
import { loadTlsMaterial, type TlsMaterial } from '../../src/config/tls-material.ts';
import { silentLogger } from '../../src/util/logger.ts';
import { makeCert, type CertFiles } from '../harness/certs.ts';
import { runProcess } from '../harness/child-processes.ts';

interface Handshake { ok: boolean; protocol: string | null; cipher: string | null; alpn: string | null; output: string }

/** One s_client handshake; stdin is closed at once, so it exits right after. */
async function sClient(port: number, args: string[]): Promise<Handshake> {
  const r = await runProcess('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { timeoutMs: 5000, input: '' });
  const output = r.stdout.toString('latin1') + r.stderr.toString('latin1');
  const summary = /New, (\S+), Cipher is (\S+)/.exec(output);
  // The session block names the protocol; the "New," line shows the cipher's version (TLSv1.0 for a
  // SHA-1 suite even over TLS 1.1). TLS 1.3 prints that block only once a ticket came, so fall back.
  const protocol = /^\s*Protocol\s*: (TLSv[\d.]+)$/m.exec(output)?.[1] ?? summary?.[1] ?? null;
  const alpn = /ALPN protocol: (\S+)/.exec(output);
  const ok = r.code === 0 && summary !== null && summary[2] !== '(NONE)';
  return { ok, protocol: ok ? protocol : null, cipher: ok ? summary[2]! : null, alpn: alpn?.[1] ?? null, output };
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A Node client handshake; resolves with the socket once secure (caller destroys it). */
function nodeClient(port: number, options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

async function peerFingerprint(port: number, servername?: string): Promise<string> {
  const s = await nodeClient(port, servername === undefined ? {} : { servername });
  const fp = s.getPeerCertificate().fingerprint256;
  s.destroy();
  return fp;
}

let main: CertFiles;
let exact: CertFiles;
let wildcard: CertFiles;
let material: TlsMaterial;
let server: tls.Server;
let port: number;
const clientErrors: string[] = [];
const open = new Set<tls.TLSSocket>();

beforeAll(async () => {
  main = await makeCert({ commonName: 'gateway.test' });
  exact = await makeCert({ commonName: 'mail.example.org' });
  wildcard = await makeCert({ commonName: '*.example.net' });
  const cfg: TlsConfig = {
    cert: main.certFile, key: main.keyFile, minVersion: 'TLSv1.2', ciphers: DEFAULTS.tls.ciphers, handshakeTimeout: 10_000,
    sni: {
      'mail.example.org': { cert: exact.certFile, key: exact.keyFile },
      '*.example.net': { cert: wildcard.certFile, key: wildcard.keyFile },
    },
  };
  material = await loadTlsMaterial(cfg, silentLogger);
  server = tls.createServer(material.serverOptions(), (s) => {
    s.on('error', () => undefined); // clients here abort on purpose
    open.add(s);
    s.once('close', () => open.delete(s));
    // Stays open after the greeting so a client can still act (renegotiate) on the connection.
    s.write('+OK hello\r\n');
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => clientErrors.push(err.code ?? err.message));
  port = await listen(server);
});

afterAll(async () => {
  for (const s of open) s.destroy();
  await close(server);
});

describe('client-facing TLS (openssl s_client)', () => {
  it('speaks TLS 1.2 with an ECDHE AEAD suite and TLS 1.3 by default', async () => {
    const v12 = await sClient(port, ['-tls1_2']);
    expect(v12).toMatchObject({ ok: true, protocol: 'TLSv1.2' });
    expect(v12.cipher).toMatch(/^ECDHE-RSA-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/);
    expect(await sClient(port, [])).toMatchObject({ ok: true, protocol: 'TLSv1.3' });
  });

  it('offers the DHE suites of the intermediate list (the DH parameters are set)', async () => {
    expect(await sClient(port, ['-tls1_2', '-cipher', 'DHE-RSA-AES128-GCM-SHA256'])).toMatchObject({ ok: true, cipher: 'DHE-RSA-AES128-GCM-SHA256' });
  });

  it.each([['-tls1'], ['-tls1_1']])('refuses %s', async (flag) => {
    const r = await sClient(port, [flag, '-cipher', 'DEFAULT:@SECLEVEL=0']);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/alert protocol version|unsupported protocol|no protocols available/);
  });

  it.each([
    ['static RSA key exchange', 'AES128-SHA256'],
    ['static RSA with GCM', 'AES128-GCM-SHA256'],
    ['an ECDHE CBC suite with SHA-256', 'ECDHE-RSA-AES128-SHA256'],
    ['an ECDHE CBC suite with SHA-1', 'ECDHE-RSA-AES256-SHA'],
  ])('refuses %s (%s)', async (_what, cipher) => {
    const r = await sClient(port, ['-tls1_2', '-cipher', cipher]);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/handshake failure|no shared cipher/);
  });

  it('answers an ALPN offer without "pop3" with a fatal no_application_protocol alert', async () => {
    const r = await sClient(port, ['-alpn', 'imap']);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/alert no application protocol/);
    expect(clientErrors).toContain('ERR_SSL_NO_APPLICATION_PROTOCOL');
  });

  it('negotiates "pop3" when the client offers it among others', async () => {
    expect(await sClient(port, ['-alpn', 'imap,pop3'])).toMatchObject({ ok: true, alpn: 'pop3' });
  });

  it('serves clients that offer no ALPN at all', async () => {
    const r = await sClient(port, ['-tls1_2']);
    expect(r.ok).toBe(true);
    expect(r.output).toContain('No ALPN negotiated');
  });

  it('refuses a client-initiated renegotiation', async () => {
    const r = await runProcess('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2'], {
      timeoutMs: 5000,
      feed: async (child) => {
        // "R" on a line of its own makes s_client renegotiate once the handshake is done.
        await new Promise<void>((resolve) => {
          const onData = (d: Buffer) => {
            if (d.toString('latin1').includes('+OK hello')) resolve();
          };
          child.stdout!.on('data', onData);
        });
        child.stdin!.write('R\n');
        // stdin stays open: a renegotiation that succeeded would leave s_client running into the timeout.
      },
    });
    const output = r.stdout.toString('latin1') + r.stderr.toString('latin1');
    expect(r.timedOut).toBe(false);
    expect(output).toContain('RENEGOTIATING');
    expect(output).toMatch(/no renegotiation/);
  });

  it('has a client that can speak TLS 1.1 and static RSA, so the refusals above are the server\'s', async () => {
    const weak = tls.createServer({
      cert: main.certPem, key: main.keyPem, minVersion: 'TLSv1', ciphers: 'ALL:@SECLEVEL=0',
    }, (s) => s.end());
    const weakPort = await listen(weak);
    try {
      expect(await sClient(weakPort, ['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'])).toMatchObject({ ok: true, protocol: 'TLSv1.1' });
      expect(await sClient(weakPort, ['-tls1_2', '-cipher', 'AES128-SHA256'])).toMatchObject({ ok: true, cipher: 'AES128-SHA256' });
      expect(await sClient(weakPort, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA256'])).toMatchObject({ ok: true });
    } finally {
      await close(weak);
    }
  });
});

describe('session resumption', () => {
  it.each([['TLSv1.2' as const], ['TLSv1.3' as const]])('resumes a %s session from an earlier connection', async (version) => {
    const first = await nodeClient(port, { maxVersion: version });
    // TLS 1.3 tickets arrive after the handshake; 'session' fires once one is usable.
    const session = await new Promise<Buffer>((resolve) => {
      const got = first.getSession();
      if (version === 'TLSv1.2' && got !== undefined) resolve(got);
      else first.once('session', resolve);
    });
    expect(first.isSessionReused()).toBe(false);
    first.destroy();
    const second = await nodeClient(port, { maxVersion: version, session });
    expect(second.getProtocol()).toBe(version);
    expect(second.isSessionReused()).toBe(true);
    second.destroy();
  });
});

describe('SNI', () => {
  it('uses the default certificate without a server name', async () => {
    expect(await peerFingerprint(port)).toBe(main.fingerprint256);
    expect(material.fingerprint256).toBe(main.fingerprint256);
  });

  it('picks the certificate configured for an exact name, whatever its case', async () => {
    expect(await peerFingerprint(port, 'mail.example.org')).toBe(exact.fingerprint256);
    expect(await peerFingerprint(port, 'MAIL.Example.Org')).toBe(exact.fingerprint256);
  });

  it('picks a wildcard entry for one extra label only', async () => {
    expect(await peerFingerprint(port, 'pop.example.net')).toBe(wildcard.fingerprint256);
    expect(await peerFingerprint(port, 'a.pop.example.net')).toBe(main.fingerprint256);
  });

  it('falls back to the default certificate for an unknown name', async () => {
    expect(await peerFingerprint(port, 'unknown.example.com')).toBe(main.fingerprint256);
  });
});

describe('server-side TLSSocket upgrade (STLS) with the same options', () => {
  it('applies SNI and the ALPN rule to an upgraded plain socket', async () => {
    const plain = net.createServer((raw) => {
      raw.on('error', () => undefined);
      const secure = new tls.TLSSocket(raw, { isServer: true, ...material.serverOptions() });
      secure.on('error', () => undefined);
      secure.on('secure', () => secure.end('+OK\r\n'));
    });
    const plainPort = await listen(plain);
    try {
      const s = await nodeClient(plainPort, { servername: 'mail.example.org', ALPNProtocols: ['pop3'] });
      expect(s.getPeerCertificate().fingerprint256).toBe(exact.fingerprint256);
      expect(s.alpnProtocol).toBe('pop3');
      s.destroy();
      await expect(nodeClient(plainPort, { ALPNProtocols: ['imap'] })).rejects.toMatchObject({
        code: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL',
      });
    } finally {
      await close(plain);
    }
  });
});
