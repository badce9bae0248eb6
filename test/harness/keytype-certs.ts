import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { CertFiles } from './certs.ts';
import { makeTempDir, runProcess } from './child-processes.ts';

/**
 * Self-signed certificates of a chosen key type (RSA-2048 or ECDSA P-256), made with the
 * openssl CLI: node-forge, which certs.ts uses, signs with RSA only. For tests of dual
 * RSA + ECDSA certificates. Files go to one temp folder removed when the process exits.
 */

export type KeyType = 'rsa' | 'ecdsa';

let dir: string | null = null;
let counter = 0;

export async function makeKeyTypeCert(type: KeyType, commonName = 'localhost', altNames = ['localhost', '127.0.0.1']): Promise<CertFiles> {
  dir ??= makeTempDir('ktcerts');
  const n = ++counter;
  const base = path.join(dir, `${commonName.replace(/[^A-Za-z0-9.-]/g, '_')}-${type}-${n}`);
  const certFile = `${base}.crt`;
  const keyFile = `${base}.key`;
  const newkey = type === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];
  const san = altNames.map((a) => (/^[\d.]+$|:/.test(a) ? `IP:${a}` : `DNS:${a}`)).join(',');
  const r = await runProcess('openssl', [
    'req', '-x509', ...newkey, '-nodes', '-sha256', '-days', '30', '-subj', `/CN=${commonName}`,
    '-addext', `subjectAltName=${san}`, '-keyout', keyFile, '-out', certFile,
  ], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`openssl req failed: ${r.stderr.toString()}`);
  const certPem = fs.readFileSync(certFile, 'utf8');
  return {
    certFile,
    keyFile,
    caFile: certFile,
    certPem,
    keyPem: fs.readFileSync(keyFile, 'utf8'),
    caPem: certPem,
    fingerprint256: new X509Certificate(certPem).fingerprint256,
  };
}

/** What `openssl s_client` saw: the server certificate it printed, and the handshake figures. */
export interface SClientView {
  fingerprint256: string;
  /** "rsa" or "ec", from the certificate itself. */
  keyType: string | undefined;
  /** "Server public key is N bit". */
  publicKeyBits: number | null;
  /** "Peer signature type: ECDSA" (RSA-PSS, RSA...). */
  peerSignatureType: string | null;
}

/**
 * One handshake with `openssl s_client`, sending QUIT; `extra` is e.g. ['-sigalgs', 'ECDSA+SHA256']
 * or ['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'] or ['-starttls', 'pop3'].
 */
export async function sClientView(port: number, extra: string[]): Promise<SClientView> {
  const r = await runProcess('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...extra], { input: 'QUIT\r\n', timeoutMs: 10_000 });
  const out = r.stdout.toString();
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out);
  if (!pem) throw new Error(`no server certificate in s_client output: ${out}${r.stderr.toString()}`);
  const cert = new X509Certificate(pem[0]);
  const bits = /Server public key is (\d+) bit/.exec(out);
  return {
    fingerprint256: cert.fingerprint256,
    keyType: cert.publicKey.asymmetricKeyType,
    publicKeyBits: bits ? Number(bits[1]) : null,
    peerSignatureType: /Peer signature type: (\S+)/.exec(out)?.[1] ?? null,
  };
}
