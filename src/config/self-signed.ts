/**
 * A self-signed certificate for a first start without cert files (CONTRACT: "missing cert+key =>
 * a self-signed pair is generated"). node-forge is used for X.509 only; its TLS never faces a client.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import forge from 'node-forge';

const ONE_YEAR_MS = 365 * 24 * 60 * 60 * 1000;

function generateKeyPair(): Promise<forge.pki.rsa.KeyPair> {
  return new Promise((resolve, reject) => {
    // workers: -1 lets forge use Node's native generateKeyPair (about 0.1 s instead of several).
    forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001, workers: -1 }, (err, pair) => {
      if (err) reject(err);
      else resolve(pair);
    });
  });
}

function altName(name: string): { type: number; value?: string; ip?: string } {
  // type 7 is iPAddress, type 2 is dNSName (RFC 5280 GeneralName).
  return isIP(name) !== 0 ? { type: 7, ip: name } : { type: 2, value: name };
}

/** Builds the PEM pair in memory; exported for callers that want no files (tests, demo). */
export async function buildSelfSigned(commonName: string): Promise<{ cert: string; key: string }> {
  const keys = await generateKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  // A positive serial: the leading 0x01 nibble keeps the DER INTEGER from reading as negative.
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60_000); // tolerate a little clock skew on clients
  cert.validity.notAfter = new Date(now + ONE_YEAR_MS);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const names = [...new Set([commonName, 'localhost', '127.0.0.1', '::1'])];
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: names.map(altName) },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(keys.privateKey) };
}

/**
 * Writes a new RSA 2048 self-signed pair valid for one year. Never overwrites an existing file
 * ('wx'): two workers racing at first start must not leave a cert and a key that don't match.
 */
export async function generateSelfSigned(certFile: string, keyFile: string, commonName: string): Promise<void> {
  const pair = await buildSelfSigned(commonName);
  await mkdir(dirname(certFile), { recursive: true });
  await mkdir(dirname(keyFile), { recursive: true });
  await writeFile(keyFile, pair.key, { mode: 0o600, flag: 'wx' });
  await writeFile(certFile, pair.cert, { mode: 0o644, flag: 'wx' });
}
