/**
 * Reads and checks one certificate/key pair. Shared by the loader (which throws on the first
 * issue) and by `--check` (which reports them all), so both agree on what is wrong. A config
 * pair may hold lists (one pair per key type): `pairsOf` splits it, `keyTypeClashes` checks
 * that the list really has one certificate per key type.
 */
import { readFile } from 'node:fs/promises';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import type { CertPair } from './schema.ts';

export type PairIssueCode = 'MISSING' | 'UNREADABLE' | 'PARSE' | 'MISMATCH' | 'EXPIRED' | 'NOT_YET_VALID' | 'KEY_TYPE';

/** One certificate file and its key file. */
export interface SinglePair {
  readonly cert: string;
  readonly key: string;
}

/** One pair out of a config pair, with the config paths its problems are reported at. */
export interface PairFiles extends SinglePair {
  /** `tls.cert` for a single path, `tls.cert[1]` for an item of a list. */
  readonly certPath: string;
  readonly keyPath: string;
}

function asList(files: string | readonly string[]): readonly string[] {
  return typeof files === 'string' ? [files] : files;
}

/**
 * The pairs of `pair`, `cert[i]` with `key[i]`. The validator makes both lists equally long;
 * should they not be, the extra files are left out here rather than paired with nothing.
 */
export function pairsOf(pair: CertPair, base: string): PairFiles[] {
  const certs = asList(pair.cert);
  const keys = asList(pair.key);
  const at = (which: 'cert' | 'key', i: number): string =>
    typeof pair[which] === 'string' ? `${base}.${which}` : `${base}.${which}[${i}]`;
  const out: PairFiles[] = [];
  for (let i = 0; i < Math.min(certs.length, keys.length); i++) {
    out.push({ cert: certs[i]!, key: keys[i]!, certPath: at('cert', i), keyPath: at('key', i) });
  }
  return out;
}

/** Every file a config pair names (to watch for renewals, to check they exist). */
export function pairFiles(pair: CertPair): string[] {
  return [...asList(pair.cert), ...asList(pair.key)];
}

export function issuePath(files: PairFiles, which: 'cert' | 'key'): string {
  return which === 'cert' ? files.certPath : files.keyPath;
}

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

export async function inspectPair(pair: SinglePair, now: number = Date.now()): Promise<PairInspection> {
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

/** What OpenSSL files a certificate under: one slot per type, so a second one replaces the first. */
export function keyTypeOf(leaf: X509Certificate): string {
  const key = leaf.publicKey;
  switch (key.asymmetricKeyType) {
    case 'rsa': return 'RSA';
    case 'rsa-pss': return 'RSA-PSS';
    case 'ec': return 'ECDSA';
    case 'ed25519': return 'Ed25519';
    case 'ed448': return 'Ed448';
    case 'dsa': return 'DSA';
    default: return String(key.asymmetricKeyType ?? 'unknown');
  }
}

export interface Leaf {
  readonly files: PairFiles;
  readonly leaf: X509Certificate;
}

/**
 * A certificate whose key type an earlier one in the same list already has. OpenSSL keeps one
 * certificate per key type and would silently serve only one of them, so this is a config problem.
 */
export function keyTypeClashes(leaves: readonly Leaf[]): Array<PairIssue & { files: PairFiles }> {
  const seen = new Map<string, PairFiles>();
  const out: Array<PairIssue & { files: PairFiles }> = [];
  for (const { files, leaf } of leaves) {
    const type = keyTypeOf(leaf);
    const first = seen.get(type);
    if (first === undefined) {
      seen.set(type, files);
      continue;
    }
    out.push({
      code: 'KEY_TYPE', which: 'cert', file: files.cert, files,
      message: `${files.cert} is a second ${type} certificate after ${first.cert} (${first.certPath}); OpenSSL would serve only one of them`,
      expected: 'at most one certificate per key type (e.g. one RSA and one ECDSA)',
    });
  }
  return out;
}

/**
 * An SNI certificate of a key type the default certificates lack. Node installs the SNI
 * certificate over the default context's, so the default's own key type stays in place and a
 * client that prefers it gets the default certificate for this name.
 */
export function foreignKeyType(defaults: readonly X509Certificate[], sni: Leaf): PairIssue | null {
  const types = new Set(defaults.map(keyTypeOf));
  const type = keyTypeOf(sni.leaf);
  if (types.size === 0 || types.has(type)) return null;
  const theirs = [...types].join('/');
  return {
    code: 'KEY_TYPE', which: 'cert', file: sni.files.cert,
    message: `${sni.files.cert} is ${type} but the default certificate is ${theirs}: clients that prefer ${theirs} `
      + 'would get the default certificate for this name',
    expected: `an SNI certificate of the default certificate's key type (${theirs})`,
  };
}

function isKeyObject(v: KeyObject | PairIssue): v is KeyObject {
  return typeof (v as KeyObject).export === 'function';
}
