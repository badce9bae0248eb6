/**
 * Reads and checks one certificate/key pair. Shared by the loader (which throws on the first
 * issue) and by `--check` (which reports them all), so both agree on what is wrong.
 */
import { readFile } from 'node:fs/promises';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import type { CertPair } from './schema.ts';

export type PairIssueCode = 'MISSING' | 'UNREADABLE' | 'PARSE' | 'MISMATCH' | 'EXPIRED' | 'NOT_YET_VALID';

export interface PairIssue {
  readonly code: PairIssueCode;
  readonly which: 'cert' | 'key';
  readonly file: string;
  readonly message: string;
  readonly expected: string;
}

export interface LoadedPair {
  /** The whole cert file: the leaf, then any intermediates. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The first certificate in the file (the one clients see as the server's). */
  readonly leaf: X509Certificate;
}

export interface PairInspection {
  /** Set when both files were read and parsed and the key matches (validity dates may still be off). */
  readonly pair: LoadedPair | null;
  readonly issues: readonly PairIssue[];
}

type Read = { ok: true; data: Buffer } | { ok: false; issue: PairIssue };

async function readOne(file: string, which: 'cert' | 'key'): Promise<Read> {
  try {
    return { ok: true, data: await readFile(file) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    const missing = code === 'ENOENT';
    return {
      ok: false,
      issue: {
        code: missing ? 'MISSING' : 'UNREADABLE',
        which,
        file,
        message: missing ? `${file} does not exist` : `cannot read ${file} (${code})`,
        expected: which === 'cert' ? 'a readable PEM certificate file' : 'a readable PEM private key file',
      },
    };
  }
}

function parseCert(file: string, data: Buffer): X509Certificate | PairIssue {
  try {
    return new X509Certificate(data);
  } catch (err) {
    return {
      code: 'PARSE', which: 'cert', file,
      message: `${file} is not a PEM certificate (${(err as Error).message})`,
      expected: 'a PEM "BEGIN CERTIFICATE" block',
    };
  }
}

function parseKey(file: string, data: Buffer): KeyObject | PairIssue {
  try {
    return createPrivateKey(data);
  } catch (err) {
    // The OpenSSL message names the failure, never the key material.
    return {
      code: 'PARSE', which: 'key', file,
      message: `${file} is not an unencrypted PEM private key (${(err as Error).message})`,
      expected: 'a PEM private key without a passphrase',
    };
  }
}

/** Which files exist: the loader generates a self-signed pair only when both are absent. */
export function isMissing(inspection: PairInspection, which: 'cert' | 'key'): boolean {
  return inspection.issues.some((i) => i.which === which && i.code === 'MISSING');
}

export async function inspectPair(pair: CertPair, now: number = Date.now()): Promise<PairInspection> {
  const [certRead, keyRead] = await Promise.all([readOne(pair.cert, 'cert'), readOne(pair.key, 'key')]);
  const issues: PairIssue[] = [];
  if (!certRead.ok) issues.push(certRead.issue);
  if (!keyRead.ok) issues.push(keyRead.issue);
  const leaf = certRead.ok ? parseCert(pair.cert, certRead.data) : null;
  const key = keyRead.ok ? parseKey(pair.key, keyRead.data) : null;
  if (leaf !== null && !(leaf instanceof X509Certificate)) issues.push(leaf);
  if (key !== null && !isKeyObject(key)) issues.push(key);
  if (!(leaf instanceof X509Certificate)) return { pair: null, issues };

  const notAfter = Date.parse(leaf.validTo);
  const notBefore = Date.parse(leaf.validFrom);
  if (notAfter < now) {
    issues.push({
      code: 'EXPIRED', which: 'cert', file: pair.cert,
      message: `${pair.cert} expired on ${leaf.validTo}`,
      expected: 'a certificate that is currently valid',
    });
  } else if (notBefore > now) {
    issues.push({
      code: 'NOT_YET_VALID', which: 'cert', file: pair.cert,
      message: `${pair.cert} is not valid before ${leaf.validFrom}`,
      expected: 'a certificate that is currently valid',
    });
  }
  if (key === null || !isKeyObject(key) || !certRead.ok || !keyRead.ok) return { pair: null, issues };
  if (!leaf.checkPrivateKey(key)) {
    issues.push({
      code: 'MISMATCH', which: 'key', file: pair.key,
      message: `${pair.key} does not belong to the certificate in ${pair.cert}`,
      expected: 'the private key of the certificate',
    });
    return { pair: null, issues };
  }
  return { pair: { cert: certRead.data, key: keyRead.data, leaf }, issues };
}

function isKeyObject(v: KeyObject | PairIssue): v is KeyObject {
  return typeof (v as KeyObject).export === 'function';
}
