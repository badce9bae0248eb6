/**
 * A self-signed certificate for a first start without cert files (CONTRACT: "missing cert+key =>
 * a self-signed pair is generated"). The key is ECDSA P-256: its handshake signature costs a
 * fraction of an RSA-2048 one, which the profiles show as the largest single item of a full TLS
 * session. Node generates the key and signs; node-forge only encodes the X.509 structure (forge
 * signs RSA only, so its TBSCertificate gets the EC key and algorithm put in). Its TLS never
 * faces a client.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { createHash, generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import type forgeModule from 'node-forge';
import { onDemand } from '../util/on-demand.ts';

const ONE_YEAR_MS = 365 * 24 * 60 * 60 * 1000;
/** ecdsa-with-SHA256 (RFC 5758 §3.2: the parameters field is absent). */
const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
/** Loaded when a pair is first generated: a gateway with cert files never needs it. */
const loadForge = onDemand<typeof forgeModule>('node-forge');

function generateEcKeyPair(): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return new Promise((resolve, reject) => {
    generateKeyPair('ec', { namedCurve: 'prime256v1' }, (err, publicKey, privateKey) => {
      if (err) reject(err);
      else resolve({ publicKey, privateKey });
    });
  });
}

function altName(name: string): { type: number; value?: string; ip?: string } {
  // type 7 is iPAddress, type 2 is dNSName (RFC 5280 GeneralName).
  return isIP(name) !== 0 ? { type: 7, ip: name } : { type: 2, value: name };
}

const binary = (b: Buffer): string => b.toString('binary');
const algorithm = (asn1: typeof forgeModule.asn1) => asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
  asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(ECDSA_WITH_SHA256).getBytes()),
]);

/** Builds the PEM pair in memory; exported for callers that want no files (tests, demo). */
export async function buildSelfSigned(commonName: string): Promise<{ cert: string; key: string }> {
  const keys = await generateEcKeyPair();
  const spki = keys.publicKey.export({ type: 'spki', format: 'der' });
  const forge = loadForge();
  const { asn1 } = forge;
  const cert = forge.pki.createCertificate();
  // A positive serial: the leading 0x01 nibble keeps the DER INTEGER from reading as negative.
  cert.serialNumber = '01' + randomBytes(15).toString('hex');
  const now = Date.now();
  cert.validity.notBefore = new Date(now - 60_000); // tolerate a little clock skew on clients
  cert.validity.notAfter = new Date(now + ONE_YEAR_MS);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const names = [...new Set([commonName, 'localhost', '127.0.0.1', '::1'])];
  // RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits (the EC point, the SPKI's tail).
  const point = spki.subarray(spki.length - 65);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: names.map(altName) },
    { name: 'subjectKeyIdentifier', value: asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OCTETSTRING, false,
      binary(createHash('sha1').update(point).digest())) },
  ]);
  // forge encodes the TBSCertificate around an RSA key; swap in the EC key and the ECDSA algorithm.
  cert.publicKey = forge.pki.setRsaPublicKey(new forge.jsbn.BigInteger('3'), new forge.jsbn.BigInteger('3'));
  cert.siginfo.algorithmOid = ECDSA_WITH_SHA256;
  // getTBSCertificate is public in forge (x509.js) but missing from its type definitions.
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forgeModule.pki.Certificate): forgeModule.asn1.Asn1 }).getTBSCertificate(cert);
  const fields = tbs.value as forgeModule.asn1.Asn1[];
  fields[2] = algorithm(asn1);
  fields[6] = asn1.fromDer(binary(spki));
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), 'binary');
  const signature = sign('sha256', tbsDer, keys.privateKey); // DER ECDSA-Sig-Value
  const der = asn1.toDer(asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    algorithm(asn1),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, `\0${binary(signature)}`),
  ])).getBytes();
  return {
    cert: forge.pem.encode({ type: 'CERTIFICATE', body: der }, { maxline: 64 }),
    key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
}

/**
 * Writes a new ECDSA P-256 self-signed pair valid for one year. Never overwrites an existing file
 * ('wx'): two workers racing at first start must not leave a cert and a key that don't match.
 */
export async function generateSelfSigned(certFile: string, keyFile: string, commonName: string): Promise<void> {
  const pair = await buildSelfSigned(commonName);
  await mkdir(dirname(certFile), { recursive: true });
  await mkdir(dirname(keyFile), { recursive: true });
  await writeFile(keyFile, pair.key, { mode: 0o600, flag: 'wx' });
  await writeFile(certFile, pair.cert, { mode: 0o644, flag: 'wx' });
}
