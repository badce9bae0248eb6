/**
 * Dual RSA + ECDSA certificates (`tls.cert`/`tls.key` as lists), as nginx and HAProxy serve
 * them: OpenSSL picks the certificate by what the client offers. Real clients: openssl s_client
 * (TLS 1.3 signature algorithms, TLS 1.2 cipher suites, STLS) and python3 poplib logging in to a
 * real Dovecot; a renewal of one list item on disk, SIGHUP with new lists, and `--check`.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CertFiles } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { poplib } from '../harness/clients.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { makeKeyTypeCert, sClientView } from '../harness/keytype-certs.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const ECDSA_ONLY = ['-sigalgs', 'ECDSA+SHA256'];
const RSA_ONLY = ['-sigalgs', 'RSA-PSS+SHA256:RSA+SHA256'];
type Rec = Record<string, unknown>;

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = await fn();
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Installs a pair under fixed names in `dir` (as a renewal would), returning the paths. */
function install(dir: string, name: string, c: CertFiles): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  fs.writeFileSync(cert, c.certPem);
  fs.writeFileSync(key, c.keyPem);
  return { cert, key };
}

/** python3 poplib over implicit TLS 1.2 restricted to `cipher`: logs in, STATs, hashes the peer certificate. */
async function poplibWith(port: number, cipher: string): Promise<{ count: number; fingerprint256: string }> {
  const r = await poplib(`
import hashlib
CTX.maximum_version = ssl.TLSVersion.TLSv1_2
CTX.set_ciphers(${JSON.stringify(cipher)})
p = connect_ssl()
der = p.sock.getpeercert(True)
p.user(USER); p.pass_(PASSWORD)
count, size = p.stat()
out({"count": count, "sha": hashlib.sha256(der).hexdigest()})
p.quit()
`, { port, user: 'alice', password: 'alice-secret', insecure: true });
  expect(r.stderr).toBe('');
  const res = JSON.parse(r.stdout.trim()) as { count: number; sha: string };
  return { count: res.count, fingerprint256: res.sha.toUpperCase().match(/../g)!.join(':') };
}

describe('dual RSA + ECDSA certificates in a running gateway', () => {
  let dovecot: DovecotInstance;
  let dir: string;
  let gw: TestGateway;
  let rsa: CertFiles;
  let ecdsa: CertFiles;
  let ecdsa2: CertFiles;

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'From: x@example.org\r\nSubject: dual\r\n\r\nhello\r\n');
    dir = makeTempDir('dualcerts');
    [rsa, ecdsa, ecdsa2] = await Promise.all([makeKeyTypeCert('rsa'), makeKeyTypeCert('ecdsa'), makeKeyTypeCert('ecdsa')]);
    const r = install(dir, 'rsa', rsa);
    const e = install(dir, 'ecdsa', ecdsa);
    gw = await startTestGateway(dovecot.port, { tls: { cert: [r.cert, e.cert], key: [r.key, e.key] } });
  });

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('shows s_client the ECDSA P-256 certificate when it offers only ECDSA signatures, the RSA-2048 one when only RSA (TLS 1.3)', async () => {
    const [ec, rs] = await Promise.all([sClientView(gw.port.pop3s!, ECDSA_ONLY), sClientView(gw.port.pop3s!, RSA_ONLY)]);
    expect(ec).toEqual({ fingerprint256: ecdsa.fingerprint256, keyType: 'ec', publicKeyBits: 256, peerSignatureType: 'ECDSA' });
    expect(rs).toEqual({ fingerprint256: rsa.fingerprint256, keyType: 'rsa', publicKeyBits: 2048, peerSignatureType: 'RSA-PSS' });
  });

  it('chooses by cipher suite under TLS 1.2, and ECDSA for a client that offers both', async () => {
    const [ec, rs, both] = await Promise.all([
      sClientView(gw.port.pop3s!, ['-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256']),
      sClientView(gw.port.pop3s!, ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256']),
      sClientView(gw.port.pop3s!, []),
    ]);
    expect([ec.keyType, ec.fingerprint256]).toEqual(['ec', ecdsa.fingerprint256]);
    expect([rs.keyType, rs.fingerprint256]).toEqual(['rsa', rsa.fingerprint256]);
    // OpenSSL's own client lists ECDSA signatures first.
    expect(both.fingerprint256).toBe(ecdsa.fingerprint256);
  });

  it('chooses the same way after STLS', async () => {
    const [ec, rs] = await Promise.all([
      sClientView(gw.port.pop3!, ['-starttls', 'pop3', ...ECDSA_ONLY]),
      sClientView(gw.port.pop3!, ['-starttls', 'pop3', ...RSA_ONLY]),
    ]);
    expect(ec.fingerprint256).toBe(ecdsa.fingerprint256);
    expect(rs.fingerprint256).toBe(rsa.fingerprint256);
  });

  it('lets python3 poplib log in to Dovecot over either certificate', async () => {
    const [ec, rs] = await Promise.all([
      poplibWith(gw.port.pop3s!, 'ECDHE-ECDSA-AES128-GCM-SHA256'),
      poplibWith(gw.port.pop3s!, 'ECDHE-RSA-AES128-GCM-SHA256'),
    ]);
    expect(ec).toEqual({ count: 1, fingerprint256: ecdsa.fingerprint256 });
    expect(rs).toEqual({ count: 1, fingerprint256: rsa.fingerprint256 });
  });

  it('picks up a renewal of the second item of the list by itself, the first one unchanged', async () => {
    install(dir, 'ecdsa', ecdsa2);
    await eventually('the renewed ECDSA certificate', () => sClientView(gw.port.pop3s!, ECDSA_ONLY), (v) => v.fingerprint256 === ecdsa2.fingerprint256);
    await gw.logs.waitFor((l) => l.event === 'tls-reload', 5000);
    expect((await sClientView(gw.port.pop3s!, RSA_ONLY)).fingerprint256).toBe(rsa.fingerprint256);
  }, 30_000);
});

describe('why tls.sni entries take one file: Node installs one certificate of an SNI context', () => {
  it('serves the default RSA certificate for an SNI name whose context holds RSA and ECDSA, to an RSA-only client', async () => {
    const [rsa, ecdsa, mailRsa, mailEcdsa] = await Promise.all([
      makeKeyTypeCert('rsa'), makeKeyTypeCert('ecdsa'), makeKeyTypeCert('rsa', 'mail.example.org'), makeKeyTypeCert('ecdsa', 'mail.example.org'),
    ]);
    const mail = tls.createSecureContext({ cert: [mailRsa.certPem, mailEcdsa.certPem], key: [mailRsa.keyPem, mailEcdsa.keyPem] });
    const server = tls.createServer({
      cert: [rsa.certPem, ecdsa.certPem], key: [rsa.keyPem, ecdsa.keyPem],
      SNICallback: (_name, cb) => cb(null, mail),
    }, (s) => s.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const sni = ['-servername', 'mail.example.org'];
      // Node's UseSNIContext copies the context's last certificate (ECDSA) over the default's.
      expect((await sClientView(port, [...sni, ...ECDSA_ONLY])).fingerprint256).toBe(mailEcdsa.fingerprint256);
      // ...and leaves the default RSA certificate in place: the wrong name. If Node ever installs
      // the whole context, this fails, and tls.sni may take lists like tls.cert.
      expect((await sClientView(port, [...sni, ...RSA_ONLY])).fingerprint256).toBe(rsa.fingerprint256);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

function check(file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--config', file, '--check'], { cwd: ROOT, timeout: 30_000 },
      (err, stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

describe('dual certificates through the real gateway process: --check and SIGHUP', () => {
  let dir: string;
  let gw: CliGateway;
  let certs: Record<'rsa' | 'ecdsa' | 'rsa2' | 'ecdsa2', CertFiles>;
  const config = (cert: string[], key: string[]): Rec => ({
    listeners: [{ name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' }],
    // Relative paths: resolved against the YAML file's folder. Nothing listens on the backend: handshakes need none.
    tls: { cert, key },
    backend: { host: '127.0.0.1', port: 9 },
    logging: { level: 'info', audit: null },
    admin: null,
    shutdownGrace: '1s',
  });
  const nextLog = (pred: (l: Rec) => boolean, timeoutMs = 15_000): Promise<Rec> => {
    const seen = new Set(gw.logs.lines());
    return gw.logs.waitFor((l) => !seen.has(l) && pred(l), timeoutMs);
  };

  beforeAll(async () => {
    dir = makeTempDir('dualcli');
    const [rsa, ecdsa, rsa2, ecdsa2] = await Promise.all([
      makeKeyTypeCert('rsa'), makeKeyTypeCert('ecdsa'), makeKeyTypeCert('rsa'), makeKeyTypeCert('ecdsa'),
    ]);
    certs = { rsa: rsa!, ecdsa: ecdsa!, rsa2: rsa2!, ecdsa2: ecdsa2! };
    for (const [name, c] of Object.entries(certs)) install(dir, name, c);
    gw = await startCliGateway(dir, config(['rsa.crt', 'ecdsa.crt'], ['rsa.key', 'ecdsa.key']));
  });

  afterAll(async () => {
    await gw?.stop();
  });

  it('--check accepts an RSA + ECDSA list and reports a second RSA certificate at tls.cert[1]', async () => {
    const good = path.join(dir, 'good.yaml');
    fs.writeFileSync(good, JSON.stringify(config(['rsa.crt', 'ecdsa.crt'], ['rsa.key', 'ecdsa.key'])));
    const ok = await check(good);
    expect([ok.code, ok.stderr]).toEqual([0, '']);
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, JSON.stringify(config(['rsa.crt', 'rsa2.crt', 'ecdsa.crt'], ['rsa.key', 'rsa2.key', 'nowhere.key'])));
    const r = await check(bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('tls.cert[1]');
    expect(r.stderr).toContain('second RSA certificate');
    expect(r.stderr).toContain('tls.key[2]');
    expect(r.stderr).toContain('nowhere.key does not exist');
  });

  it('serves both certificates, and SIGHUP with new lists replaces both', async () => {
    expect((await sClientView(gw.port.pop3s!, ECDSA_ONLY)).fingerprint256).toBe(certs.ecdsa.fingerprint256);
    expect((await sClientView(gw.port.pop3s!, RSA_ONLY)).fingerprint256).toBe(certs.rsa.fingerprint256);
    // New paths, not rewritten files: only the reload can bring them in, not the file watcher.
    gw.writeConfig(config(['ecdsa2.crt', 'rsa2.crt'], ['ecdsa2.key', 'rsa2.key']));
    const reloaded = nextLog((l) => l.event === 'reload' && l.msg === 'configuration reloaded');
    gw.signal('SIGHUP');
    // The first item of the list is the fingerprint logged.
    expect((await reloaded).fingerprint256).toBe(certs.ecdsa2.fingerprint256);
    expect((await sClientView(gw.port.pop3s!, ECDSA_ONLY)).fingerprint256).toBe(certs.ecdsa2.fingerprint256);
    expect((await sClientView(gw.port.pop3s!, RSA_ONLY)).fingerprint256).toBe(certs.rsa2.fingerprint256);
  });

  it('rejects a SIGHUP whose list has two ECDSA certificates and keeps serving the current pair', async () => {
    gw.writeConfig(config(['ecdsa.crt', 'ecdsa2.crt'], ['ecdsa.key', 'ecdsa2.key']));
    const rejected = nextLog((l) => l.event === 'reload-rejected');
    gw.signal('SIGHUP');
    expect(String((await rejected).err)).toMatch(/tls\.cert\[1\]/);
    expect((await sClientView(gw.port.pop3s!, ECDSA_ONLY)).fingerprint256).toBe(certs.ecdsa2.fingerprint256);
    expect((await sClientView(gw.port.pop3s!, RSA_ONLY)).fingerprint256).toBe(certs.rsa2.fingerprint256);
  });
});
