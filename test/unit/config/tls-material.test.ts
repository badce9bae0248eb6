import { createPrivateKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, type TlsConfig } from '../../../src/config/schema.ts';
import { checkTlsMaterial, generateSelfSigned, loadTlsMaterial, TlsMaterialError } from '../../../src/config/tls-material.ts';
import type { Logger } from '../../../src/util/logger.ts';
import { makeCert, makeTestCa, type CertFiles, type TestCa } from '../../harness/certs.ts';
import { makeTempDir } from '../../harness/child-processes.ts';

interface Entry { level: string; obj: unknown; msg: string | undefined }

function recordingLogger(): { log: Logger; entries: Entry[] } {
  const entries: Entry[] = [];
  const at = (level: string) => (a: object | string, b?: string) => {
    entries.push(typeof a === 'string' ? { level, obj: {}, msg: a } : { level, obj: a, msg: b });
  };
  const log: Logger = {
    trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'),
    child: () => log,
  };
  return { log, entries };
}

function tlsConfig(pair: { cert: string; key: string }, sni: TlsConfig['sni'] = {}): TlsConfig {
  return { ...pair, minVersion: 'TLSv1.2', ciphers: DEFAULTS.tls.ciphers, handshakeTimeout: 10_000, sni };
}

async function rejection(p: Promise<unknown>): Promise<TlsMaterialError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(TlsMaterialError);
  return err as TlsMaterialError;
}

let dir: string;
let good: CertFiles;
let expired: CertFiles;
let ca: TestCa;

beforeAll(async () => {
  dir = makeTempDir('tlsmat');
  ca = await makeTestCa();
  good = await makeCert({ commonName: 'pop.example.org' });
  expired = await makeCert({
    commonName: 'old.example.org',
    notBefore: new Date(Date.now() - 3 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  });
});

describe('generateSelfSigned', () => {
  it('writes an ECDSA P-256 certificate for the name, localhost and both loopback addresses, with a private key file', async () => {
    const cert = path.join(dir, 'gen1', 'nested', 'server.crt');
    const key = path.join(dir, 'gen1', 'keys', 'server.key');
    await generateSelfSigned(cert, key, 'mail.example.org');
    const x509 = new X509Certificate(fs.readFileSync(cert));
    expect(x509.subject).toBe('CN=mail.example.org');
    expect(x509.subjectAltName).toBe('DNS:mail.example.org, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(x509.publicKey.asymmetricKeyType).toBe('ec');
    expect(x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(x509.verify(x509.publicKey)).toBe(true); // self-signed, and the signature checks out
    expect(x509.checkPrivateKey(createPrivateKey(fs.readFileSync(key)))).toBe(true);
    const days = (Date.parse(x509.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(364);
    expect(days).toBeLessThan(366);
    expect(fs.statSync(key).mode & 0o777).toBe(0o600);
  });

  it('never overwrites an existing file', async () => {
    const cert = path.join(dir, 'gen2', 'server.crt');
    const key = path.join(dir, 'gen2', 'server.key');
    fs.mkdirSync(path.dirname(key), { recursive: true });
    fs.writeFileSync(key, 'keep me');
    await expect(generateSelfSigned(cert, key, 'localhost')).rejects.toMatchObject({ code: 'EEXIST' });
    expect(fs.readFileSync(key, 'utf8')).toBe('keep me');
  });
});

describe('loadTlsMaterial', () => {
  it('generates a self-signed pair with a warning when both files are missing', async () => {
    const cert = path.join(dir, 'fresh', 'server.crt');
    const key = path.join(dir, 'fresh', 'server.key');
    const { log, entries } = recordingLogger();
    const material = await loadTlsMaterial(tlsConfig({ cert, key }), log);
    expect(material.fingerprint256).toBe(new X509Certificate(fs.readFileSync(cert)).fingerprint256);
    expect(fs.statSync(key).mode & 0o777).toBe(0o600);
    const warning = entries.find((e) => e.level === 'warn');
    expect(warning?.obj).toEqual({ cert, key });
    expect(warning?.msg).toMatch(/^generated a self-signed certificate/);
  });

  it('loads the same generated pair again on the next start instead of replacing it', async () => {
    const cert = path.join(dir, 'again', 'server.crt');
    const key = path.join(dir, 'again', 'server.key');
    const first = await loadTlsMaterial(tlsConfig({ cert, key }), recordingLogger().log);
    const { log, entries } = recordingLogger();
    const second = await loadTlsMaterial(tlsConfig({ cert, key }), log);
    expect(second.fingerprint256).toBe(first.fingerprint256);
    expect(entries).toEqual([]);
  });

  it('refuses to start when only the key is missing, naming the file, and generates nothing', async () => {
    const key = path.join(dir, 'nokey', 'server.key');
    const err = await rejection(loadTlsMaterial(tlsConfig({ cert: good.certFile, key }), recordingLogger().log));
    expect(err.code).toBe('MISSING');
    expect(err.path).toBe('tls.key');
    expect(err.message).toContain(key);
    expect(fs.existsSync(key)).toBe(false);
  });

  it('refuses to start when only the certificate is missing', async () => {
    const cert = path.join(dir, 'nocert', 'server.crt');
    const err = await rejection(loadTlsMaterial(tlsConfig({ cert, key: good.keyFile }), recordingLogger().log));
    expect(err).toMatchObject({ code: 'MISSING', path: 'tls.cert', file: cert });
  });

  it('refuses a key that does not belong to the certificate', async () => {
    const err = await rejection(loadTlsMaterial(tlsConfig({ cert: good.certFile, key: ca.keyFile }), recordingLogger().log));
    expect(err).toMatchObject({ code: 'MISMATCH', path: 'tls.key', file: ca.keyFile });
  });

  it('refuses a certificate file that holds no certificate', async () => {
    const err = await rejection(loadTlsMaterial(tlsConfig({ cert: good.keyFile, key: good.keyFile }), recordingLogger().log));
    expect(err).toMatchObject({ code: 'PARSE', path: 'tls.cert' });
  });

  it('names the SNI entry whose files are broken', async () => {
    const missing = path.join(dir, 'sni-missing.key');
    const err = await rejection(loadTlsMaterial(
      tlsConfig({ cert: good.certFile, key: good.keyFile }, { 'mail.example.org': { cert: good.certFile, key: missing } }),
      recordingLogger().log,
    ));
    expect(err).toMatchObject({ code: 'MISSING', path: 'tls.sni["mail.example.org"].key', file: missing });
  });

  it('starts with an expired certificate but warns about it', async () => {
    const { log, entries } = recordingLogger();
    const material = await loadTlsMaterial(tlsConfig({ cert: expired.certFile, key: expired.keyFile }), log);
    expect(material.fingerprint256).toBe(expired.fingerprint256);
    expect(entries.filter((e) => e.level === 'warn').map((e) => e.msg)).toEqual([expect.stringMatching(/expired/)]);
  });

  it('never puts key material in an error message', async () => {
    const err = await rejection(loadTlsMaterial(tlsConfig({ cert: good.certFile, key: ca.keyFile }), recordingLogger().log));
    const body = ca.keyPem.split('\n')[1]!;
    expect(err.message).not.toContain(body);
  });

  it('gives server options with the configured policy and a fresh object each time', async () => {
    const material = await loadTlsMaterial(tlsConfig({ cert: good.certFile, key: good.keyFile }), recordingLogger().log);
    const a = material.serverOptions();
    const b = material.serverOptions();
    expect(a).not.toBe(b);
    expect(a).toMatchObject({
      minVersion: 'TLSv1.2',
      ciphers: DEFAULTS.tls.ciphers,
      honorCipherOrder: false,
      ecdhCurve: 'X25519:prime256v1:secp384r1',
      ALPNProtocols: ['pop3'],
      handshakeTimeout: 10_000,
      secureContext: material.secureContext,
    });
    // No SNI entries, no callback: with one Node calls into JavaScript on every handshake.
    expect(a.SNICallback).toBeUndefined();
    expect(a.ticketKeys?.length).toBe(48);
  });

  it('gives an SNICallback when tls.sni has entries: a configured name gets its pair, others none', async () => {
    const material = await loadTlsMaterial(tlsConfig({ cert: good.certFile, key: good.keyFile }, { 'mail.example.test': { cert: good.certFile, key: good.keyFile } }), recordingLogger().log);
    const cb = material.serverOptions().SNICallback!;
    expect(typeof cb).toBe('function');
    const lookup = (name: string) => new Promise<unknown>((r) => cb(name, (_e, ctx) => r(ctx)));
    expect(await lookup('mail.example.test')).toBeDefined();
    expect(await lookup('other.example.test')).toBeUndefined();
  });

  it('keeps the session ticket keys across reloads so resumed sessions survive a SIGHUP', async () => {
    const cfg = tlsConfig({ cert: good.certFile, key: good.keyFile });
    const one = await loadTlsMaterial(cfg, recordingLogger().log);
    const two = await loadTlsMaterial(cfg, recordingLogger().log);
    expect(one.serverOptions().ticketKeys?.equals(two.serverOptions().ticketKeys!)).toBe(true);
  });
});

describe('checkTlsMaterial', () => {
  it('finds nothing wrong with a valid pair', async () => {
    expect(await checkTlsMaterial(tlsConfig({ cert: good.certFile, key: good.keyFile }))).toEqual([]);
  });

  it('accepts missing default files, since a self-signed pair is generated at start, and writes nothing', async () => {
    const cert = path.join(dir, 'check-none', 'server.crt');
    const key = path.join(dir, 'check-none', 'server.key');
    expect(await checkTlsMaterial(tlsConfig({ cert, key }))).toEqual([]);
    expect(fs.existsSync(path.dirname(cert))).toBe(false);
  });

  it('reports a lone missing default file', async () => {
    const key = path.join(dir, 'check-lone', 'server.key');
    expect(await checkTlsMaterial(tlsConfig({ cert: good.certFile, key }))).toEqual([
      { path: 'tls.key', message: `${key} does not exist`, expected: expect.any(String) },
    ]);
  });

  it('reports a file that cannot be read', async () => {
    // A folder where the file should be: unreadable even for root, unlike a chmod 000 file.
    const cert = path.join(dir, 'a-folder.crt');
    fs.mkdirSync(cert, { recursive: true });
    const problems = await checkTlsMaterial(tlsConfig({ cert, key: good.keyFile }));
    expect(problems).toEqual([{ path: 'tls.cert', message: expect.stringContaining(`cannot read ${cert}`), expected: expect.any(String) }]);
  });

  it('reports a key that does not match the certificate', async () => {
    const problems = await checkTlsMaterial(tlsConfig({ cert: good.certFile, key: ca.keyFile }));
    expect(problems).toEqual([{ path: 'tls.key', message: expect.stringContaining('does not belong'), expected: expect.any(String) }]);
  });

  it('reports an expired certificate', async () => {
    const problems = await checkTlsMaterial(tlsConfig({ cert: expired.certFile, key: expired.keyFile }));
    expect(problems).toEqual([{ path: 'tls.cert', message: expect.stringContaining('expired'), expected: expect.any(String) }]);
  });

  it('reports a certificate that is not valid yet', async () => {
    const future = await makeCert({ notBefore: new Date(Date.now() + 86_400_000), notAfter: new Date(Date.now() + 2 * 86_400_000) });
    const problems = await checkTlsMaterial(tlsConfig({ cert: future.certFile, key: future.keyFile }));
    expect(problems.map((p) => p.message)).toEqual([expect.stringContaining('not valid before')]);
  });

  it('reports every problem of every SNI entry under its own path, missing SNI files included', async () => {
    const missing = path.join(dir, 'nowhere.crt');
    const problems = await checkTlsMaterial(tlsConfig({ cert: good.certFile, key: good.keyFile }, {
      'old.example.org': { cert: expired.certFile, key: ca.keyFile },
      '*.example.net': { cert: missing, key: path.join(dir, 'nowhere.key') },
    }));
    expect(problems.map((p) => p.path)).toEqual([
      'tls.sni["old.example.org"].cert',
      'tls.sni["old.example.org"].key',
      'tls.sni["*.example.net"].cert',
      'tls.sni["*.example.net"].key',
    ]);
    expect(problems.map((p) => p.message)).toEqual([
      expect.stringContaining('expired'),
      expect.stringContaining('does not belong'),
      `${missing} does not exist`,
      expect.stringContaining('does not exist'),
    ]);
  });
});
