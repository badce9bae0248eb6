/**
 * Client-facing TLS: certificates → SecureContexts and the server options every listener uses
 * (implicit TLS via tls.createServer, STLS via new tls.TLSSocket(socket, { isServer: true, ... })).
 * OpenSSL (node:tls) does the TLS; node-forge only makes the self-signed certificate.
 * `cert`/`key` may be lists (one pair per key type, as nginx and HAProxy allow): all go into one
 * context and OpenSSL serves ECDSA to clients whose signature algorithms allow it, RSA otherwise.
 */
import tls from 'node:tls';
import { constants, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { CertPair, Problem, TlsConfig } from './schema.ts';
import type { Logger } from '../util/logger.ts';
import {
  foreignKeyType, inspectPair, isMissing, issuePath, keyTypeClashes, pairsOf, type Leaf, type LoadedPair, type PairFiles, type PairIssue, type SinglePair,
} from './cert-pair.ts';
import { SniMap } from './sni-map.ts';
import { generateSelfSigned } from './self-signed.ts';

export { generateSelfSigned } from './self-signed.ts';

export interface TlsMaterial {
  /** Context of the default certificate. */
  readonly secureContext: tls.SecureContext;
  /** SHA-256 fingerprint of the default certificate, "AB:CD:..." (for logs and tests); the first one of a list. */
  readonly fingerprint256: string;
  /** A fresh options object for tls.createServer or a server-side new tls.TLSSocket. */
  serverOptions(): tls.TlsOptions;
}

export type TlsMaterialErrorCode = 'MISSING' | 'UNREADABLE' | 'PARSE' | 'MISMATCH' | 'KEY_TYPE' | 'CONTEXT' | 'GENERATE';

export class TlsMaterialError extends Error {
  override readonly name = 'TlsMaterialError';
  constructor(
    readonly code: TlsMaterialErrorCode,
    /** Config path, e.g. `tls.key`, `tls.cert[1]` or `tls.sni["mail.example.org"].cert`. */
    readonly path: string,
    /** The file at fault. */
    readonly file: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

export interface TlsMaterialOptions {
  /** 48 bytes; default: random once per process, so tickets survive reloads (not restarts). */
  readonly ticketKeys?: Buffer;
  readonly now?: () => number;
}

/** ALPN id for POP3 over TLS (RFC 8314 §7 / IANA "pop3"). */
const ALPN = ['pop3'];
/** Mozilla intermediate: X25519, then the NIST curves older clients have. */
const ECDH_CURVES = 'X25519:prime256v1:secp384r1';
/** Seconds a resumable session stays valid (also the TLS 1.3 ticket lifetime hint). */
const SESSION_TIMEOUT_S = 300;
/** Sessions resume only where this matches: every context we build shares it. */
const SESSION_ID_CONTEXT = 'pop3-gateway';
/**
 * A client-initiated renegotiation costs the server a full handshake and has a history of attacks
 * (CVE-2009-3555, CVE-2011-1473); POP3 needs none. TLS 1.3 has no renegotiation at all.
 */
const SECURE_OPTIONS = constants.SSL_OP_NO_RENEGOTIATION;

let processTicketKeys: Buffer | null = null;
/** Made on first use, never at import: one key set per process so reloads keep tickets valid. */
function defaultTicketKeys(): Buffer {
  processTicketKeys ??= randomBytes(48);
  return processTicketKeys;
}

type FatalIssue = PairIssue & { code: 'MISSING' | 'UNREADABLE' | 'PARSE' | 'MISMATCH' | 'KEY_TYPE' };

/** Every pair of one config pair (one, or one per key type), in config order. */
interface LoadedSet {
  readonly cert: readonly Buffer[];
  readonly key: readonly Buffer[];
  readonly leaves: readonly LoadedPair['leaf'][];
}

/**
 * An issue that stops the gateway. Expiry only warns at load (a reload must not take TLS down
 * over a date); `--check` reports it as a problem.
 */
function isFatal(issue: PairIssue): issue is FatalIssue {
  return issue.code !== 'EXPIRED' && issue.code !== 'NOT_YET_VALID';
}

function sniBase(name: string): string {
  return `tls.sni[${JSON.stringify(name)}]`;
}

function contextOptions(cfg: TlsConfig, pairs: { cert: readonly Buffer[]; key: readonly Buffer[] }, ticketKeys: Buffer): tls.SecureContextOptions {
  return {
    // Lists: OpenSSL files each certificate and key under its key type.
    cert: [...pairs.cert],
    key: [...pairs.key],
    minVersion: cfg.minVersion,
    ciphers: cfg.ciphers,
    // Mozilla intermediate: the client knows best whether it has AES hardware (else ChaCha20).
    honorCipherOrder: false,
    ecdhCurve: ECDH_CURVES,
    // The DHE-RSA suites in the intermediate list need parameters; 'auto' picks well-known groups sized to the key.
    dhparam: 'auto',
    secureOptions: SECURE_OPTIONS,
    sessionIdContext: SESSION_ID_CONTEXT,
    sessionTimeout: SESSION_TIMEOUT_S,
    ticketKeys,
  };
}

/** What OpenSSL says when it refuses a pair (e.g. "ee key too small"); the message carries no key bytes. */
function refusal(files: SinglePair, err: unknown): string {
  return `OpenSSL refused ${files.cert} / ${files.key}: ${(err as Error).message}`;
}

/** The first pair OpenSSL refuses on its own, to name it when the whole list is refused. */
function refusedAlone(cfg: TlsConfig, files: readonly PairFiles[], set: LoadedSet): { files: PairFiles; err: unknown } | null {
  for (let i = 0; i < files.length; i++) {
    try {
      tls.createSecureContext(contextOptions(cfg, { cert: [set.cert[i]!], key: [set.key[i]!] }, randomBytes(48)));
    } catch (err) {
      return { files: files[i]!, err };
    }
  }
  return null;
}

function buildContext(cfg: TlsConfig, files: readonly PairFiles[], set: LoadedSet, ticketKeys: Buffer): tls.SecureContext {
  try {
    return tls.createSecureContext(contextOptions(cfg, set, ticketKeys));
  } catch (err) {
    const alone = files.length > 1 ? refusedAlone(cfg, files, set) : null;
    const at = alone?.files ?? files[0]!;
    throw new TlsMaterialError('CONTEXT', at.certPath, at.cert, refusal(at, alone?.err ?? err));
  }
}

async function loadOne(files: PairFiles, log: Logger, now: number): Promise<LoadedPair> {
  const inspection = await inspectPair(files, now);
  for (const issue of inspection.issues) {
    if (isFatal(issue)) throw new TlsMaterialError(issue.code, issuePath(files, issue.which), issue.file, issue.message);
  }
  // Without a fatal issue the pair is always loaded; the check keeps the types honest.
  if (inspection.pair === null) throw new TlsMaterialError('PARSE', files.certPath, files.cert, `cannot load ${files.cert}`);
  for (const issue of inspection.issues) {
    log.warn({ path: issuePath(files, issue.which), file: issue.file }, `TLS certificate problem: ${issue.message}`);
  }
  return inspection.pair;
}

/** Loads every pair of `pair`; two certificates of one key type are refused (OpenSSL would keep one). */
async function loadSet(pair: CertPair, base: string, log: Logger, now: number): Promise<{ files: PairFiles[]; set: LoadedSet }> {
  const files = pairsOf(pair, base);
  const loaded: LoadedPair[] = [];
  for (const f of files) loaded.push(await loadOne(f, log, now));
  const clash = keyTypeClashes(loaded.map((l, i) => ({ files: files[i]!, leaf: l.leaf })))[0];
  if (clash !== undefined) throw new TlsMaterialError('KEY_TYPE', clash.files.certPath, clash.file, clash.message);
  return { files, set: { cert: loaded.map((l) => l.cert), key: loaded.map((l) => l.key), leaves: loaded.map((l) => l.leaf) } };
}

/**
 * Generates the default pair when both files are absent; a single missing file is an error later.
 * Only for a single pair: a list names certificates the operator has, so a missing one is an error.
 */
async function ensureDefaultPair(cfg: TlsConfig, log: Logger, now: number): Promise<void> {
  const files = pairsOf(cfg, 'tls');
  if (files.length !== 1) return;
  const [{ cert, key }] = files as [PairFiles];
  const inspection = await inspectPair({ cert, key }, now);
  if (!isMissing(inspection, 'cert') || !isMissing(inspection, 'key')) return;
  try {
    await generateSelfSigned(cert, key, hostname() || 'localhost');
  } catch (err) {
    // EEXIST: another worker generated it first; the load that follows checks the result.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw new TlsMaterialError('GENERATE', files[0]!.certPath, cert,
      `cannot write a self-signed certificate to ${cert} / ${key}: ${(err as Error).message}`);
  }
  log.warn({ cert, key },
    'generated a self-signed certificate because tls.cert and tls.key were missing; clients will not trust it, install a real one');
}

export async function loadTlsMaterial(cfg: TlsConfig, log: Logger, options: TlsMaterialOptions = {}): Promise<TlsMaterial> {
  const now = (options.now ?? Date.now)();
  const ticketKeys = options.ticketKeys ?? defaultTicketKeys();
  await ensureDefaultPair(cfg, log, now);
  const main = await loadSet(cfg, 'tls', log, now);
  const secureContext = buildContext(cfg, main.files, main.set, ticketKeys);

  const sniEntries: Array<[string, tls.SecureContext]> = [];
  for (const [name, pair] of Object.entries(cfg.sni)) {
    const loaded = await loadSet(pair, sniBase(name), log, now);
    // A warning at load, like expiry (such configs started before this check); `--check` reports it.
    loaded.set.leaves.forEach((leaf, i) => {
      const issue = foreignKeyType(main.set.leaves, { files: loaded.files[i]!, leaf });
      if (issue !== null) log.warn({ path: loaded.files[i]!.certPath, file: issue.file }, `TLS certificate problem: ${issue.message}`);
    });
    sniEntries.push([name, buildContext(cfg, loaded.files, loaded.set, ticketKeys)]);
  }
  const sni = new SniMap(sniEntries);

  // Unknown names get no context, so the server's current default certificate is used (after a
  // reload that is the new one, even if this callback outlives this material).
  const SNICallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    cb(null, sni.lookup(servername));
  };

  const fingerprint256 = main.set.leaves[0]!.fingerprint256;
  return Object.freeze({
    secureContext,
    fingerprint256,
    serverOptions(): tls.TlsOptions {
      return {
        // tls.createServer builds its default context from these and ignores `secureContext`;
        // new tls.TLSSocket uses `secureContext`. Both come from the same options.
        ...contextOptions(cfg, main.set, ticketKeys),
        secureContext,
        // Node 20 answers an ALPN list without "pop3" with a fatal no_application_protocol
        // alert; clients that send no ALPN at all are served normally.
        ALPNProtocols: [...ALPN],
        // Only with `sni` entries: a callback costs every handshake a call into JavaScript
        // (the TLS engine builds its servers again when a reload adds the first or drops the last).
        ...(sniEntries.length > 0 ? { SNICallback } : {}),
        handshakeTimeout: cfg.handshakeTimeout,
      };
    },
  });
}

function toProblems(issues: readonly PairIssue[], files: PairFiles): Problem[] {
  return issues.map((issue) => ({ path: issuePath(files, issue.which), message: issue.message, expected: issue.expected }));
}

const CONTEXT_EXPECTED = 'an RSA key of at least 2048 bits or an EC key, with its certificate';

/** Tries the same options as at start, so what OpenSSL refuses (weak keys, bad chains) shows up here. */
function contextProblem(cfg: TlsConfig, path: string, what: string, pairs: { cert: Buffer[]; key: Buffer[] }): Problem | null {
  try {
    tls.createSecureContext(contextOptions(cfg, pairs, randomBytes(48)));
    return null;
  } catch (err) {
    return { path, message: `OpenSSL refused ${what}: ${(err as Error).message}`, expected: CONTEXT_EXPECTED };
  }
}

/** Every problem of one config pair: each file pair alone, then the list as a whole. */
async function checkSet(cfg: TlsConfig, pair: CertPair, base: string, allowGenerate: boolean): Promise<{ problems: Problem[]; leaves: Leaf[] }> {
  const all = pairsOf(pair, base);
  const problems: Problem[] = [];
  const leaves: Leaf[] = [];
  const loaded: LoadedPair[] = [];
  for (const files of all) {
    const inspection = await inspectPair(files);
    if (allowGenerate && all.length === 1 && isMissing(inspection, 'cert') && isMissing(inspection, 'key')) return { problems: [], leaves: [] };
    const own = toProblems(inspection.issues, files);
    if (inspection.pair !== null) {
      leaves.push({ files, leaf: inspection.pair.leaf });
      loaded.push(inspection.pair);
      const refused = own.length > 0 ? null
        : contextProblem(cfg, files.certPath, `${files.cert} / ${files.key}`, { cert: [inspection.pair.cert], key: [inspection.pair.key] });
      if (refused !== null) own.push(refused);
    }
    problems.push(...own);
  }
  for (const clash of keyTypeClashes(leaves)) {
    problems.push({ path: clash.files.certPath, message: clash.message, expected: clash.expected });
  }
  if (problems.length === 0 && all.length > 1) {
    const whole = contextProblem(cfg, `${base}.cert`, `the list ${all.map((f) => f.cert).join(', ')}`,
      { cert: loaded.map((l) => l.cert), key: loaded.map((l) => l.key) });
    if (whole !== null) problems.push(whole);
  }
  return { problems, leaves };
}

/**
 * For `--check`: every problem with the default pair(s) and each SNI pair. Both default files
 * absent is fine for a single pair (a self-signed pair is generated at start); one of them
 * absent is not, nor any file of a list.
 */
export async function checkTlsMaterial(cfg: TlsConfig): Promise<Problem[]> {
  const main = await checkSet(cfg, cfg, 'tls', true);
  const problems = main.problems;
  const defaults = main.leaves.map((l) => l.leaf);
  for (const [name, pair] of Object.entries(cfg.sni)) {
    const sni = await checkSet(cfg, pair, sniBase(name), false);
    problems.push(...sni.problems);
    for (const leaf of sni.leaves) {
      const issue = foreignKeyType(defaults, leaf);
      if (issue !== null) problems.push({ path: leaf.files.certPath, message: issue.message, expected: issue.expected });
    }
  }
  return problems;
}
