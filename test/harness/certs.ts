import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import forge from 'node-forge';
import { makeTempDir } from './child-processes.ts';

/**
 * Test certificates built with node-forge. The RSA keys come from node:crypto
 * (forge's pure-JS keygen takes seconds) and are made once per test process:
 * one for the CA, one shared by every leaf. Files go to one temp folder that
 * is removed when the process exits.
 */

export interface CertFiles {
  certFile: string;
  keyFile: string;
  /** The CA that signed the cert (the cert itself when self-signed). */
  caFile: string;
  certPem: string;
  keyPem: string;
  caPem: string;
  /** Like X509Certificate.fingerprint256: "AB:CD:...". */
  fingerprint256: string;
}

export interface TestCa {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
  fingerprint256: string;
  commonName: string;
}

export interface MakeCertOptions {
  commonName?: string;
  /** DNS names and IP addresses; default ['localhost', '127.0.0.1', '::1']. */
  altNames?: string[];
  /** Signing CA; default the process-wide test CA. `null` makes a self-signed cert. */
  ca?: TestCa | null;
  notBefore?: Date;
  notAfter?: Date;
}

let tempDir: string | null = null;
let counter = 0;
let leafKey: Promise<crypto.KeyPairKeyObjectResult> | null = null;
const caCache = new Map<string, Promise<TestCa>>();

function certDir(): string {
  if (tempDir === null) {
    const dir = makeTempDir('certs');
    // Dovecot's config process reads these as root, but keep the folder
    // traversable for services that drop privileges.
    fs.chmodSync(dir, 0o755);
    tempDir = dir;
  }
  return tempDir;
}

function generateKey(): Promise<crypto.KeyPairKeyObjectResult> {
  return new Promise((resolve, reject) => {
    crypto.generateKeyPair('rsa', { modulusLength: 2048 }, (err, publicKey, privateKey) =>
      err ? reject(err) : resolve({ publicKey, privateKey }),
    );
  });
}

function sharedLeafKey(): Promise<crypto.KeyPairKeyObjectResult> {
  leafKey ??= generateKey();
  return leafKey;
}

function toForge(pair: crypto.KeyPairKeyObjectResult): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey; pem: string } {
  const pem = pair.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const privateKey = forge.pki.privateKeyFromPem(pem);
  const publicKey = forge.pki.publicKeyFromPem(pair.publicKey.export({ type: 'spki', format: 'pem' }).toString());
  return { privateKey, publicKey, pem };
}

function serialNumber(): string {
  // Positive (high bit clear), 16 bytes.
  const bytes = crypto.randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

function writeFile(name: string, content: string): string {
  const file = path.join(certDir(), name);
  fs.writeFileSync(file, content, { mode: 0o644 });
  return file;
}

function fingerprint(pem: string): string {
  return new crypto.X509Certificate(pem).fingerprint256;
}

/** The process-wide test CA for `name` (created on first use, then cached). */
export function makeTestCa(name = 'pop3-gateway test CA'): Promise<TestCa> {
  let ca = caCache.get(name);
  if (ca === undefined) {
    ca = (async () => {
      const keys = toForge(await generateKey());
      const cert = forge.pki.createCertificate();
      cert.publicKey = keys.publicKey;
      cert.serialNumber = serialNumber();
      cert.validity.notBefore = new Date(Date.now() - 60 * 60 * 1000);
      cert.validity.notAfter = new Date(Date.now() + 10 * 365 * 24 * 60 * 60 * 1000);
      const subject = [{ name: 'commonName', value: name }];
      cert.setSubject(subject);
      cert.setIssuer(subject);
      cert.setExtensions([
        { name: 'basicConstraints', cA: true, critical: true },
        { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
        { name: 'subjectKeyIdentifier' },
      ]);
      cert.sign(keys.privateKey, forge.md.sha256.create());
      const certPem = forge.pki.certificateToPem(cert);
      const n = ++counter;
      return {
        certFile: writeFile(`ca-${n}.crt`, certPem),
        keyFile: writeFile(`ca-${n}.key`, keys.pem),
        certPem,
        keyPem: keys.pem,
        fingerprint256: fingerprint(certPem),
        commonName: name,
      };
    })();
    caCache.set(name, ca);
  }
  return ca;
}

/** A leaf certificate (server and client auth) signed by `ca` or self-signed. */
export async function makeCert(options: MakeCertOptions = {}): Promise<CertFiles> {
  const commonName = options.commonName ?? 'localhost';
  const altNames = options.altNames ?? ['localhost', '127.0.0.1', '::1'];
  const ca = options.ca === undefined ? await makeTestCa() : options.ca;
  const keys = toForge(await sharedLeafKey());

  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - 60 * 60 * 1000);
  cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 365 * 24 * 60 * 60 * 1000);
  cert.setSubject([{ name: 'commonName', value: commonName }]);
  const extensions: object[] = [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    {
      name: 'subjectAltName',
      altNames: altNames.map((n) => (net.isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })),
    },
  ];
  let signingKey = keys.privateKey;
  if (ca === null) {
    cert.setIssuer([{ name: 'commonName', value: commonName }]);
  } else {
    const caCert = forge.pki.certificateFromPem(ca.certPem);
    cert.setIssuer(caCert.subject.attributes);
    signingKey = forge.pki.privateKeyFromPem(ca.keyPem);
  }
  cert.setExtensions(extensions);
  cert.sign(signingKey, forge.md.sha256.create());

  const certPem = forge.pki.certificateToPem(cert);
  const n = ++counter;
  const safeName = commonName.replace(/[^A-Za-z0-9.-]/g, '_');
  const certFile = writeFile(`${safeName}-${n}.crt`, certPem);
  const keyFile = writeFile(`${safeName}-${n}.key`, keys.pem);
  return {
    certFile,
    keyFile,
    caFile: ca === null ? certFile : ca.certFile,
    certPem,
    keyPem: keys.pem,
    caPem: ca === null ? certPem : ca.certPem,
    fingerprint256: fingerprint(certPem),
  };
}
