/**
 * Client-facing TLS: certificates → SecureContexts and the server options every listener uses
 * (implicit TLS via tls.createServer, STLS via new tls.TLSSocket(socket, { isServer: true, ... })).
 * OpenSSL (node:tls) does the TLS; node-forge only makes the self-signed certificate.
 */
import tls from 'node:tls';
import { constants, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { CertPair, Problem, TlsConfig } from './schema.ts';
import type { Logger } from '../util/logger.ts';
import { inspectPair, isMissing, type LoadedPair, type PairIssue } from './cert-pair.ts';
import { SniMap } from './sni-map.ts';
import { generateSelfSigned } from './self-signed.ts';

export { generateSelfSigned } from './self-signed.ts';

export interface TlsMaterial {
  /** Context of the default certificate. */
  readonly secureContext: tls.SecureContext;
  /** SHA-256 fingerprint of the default certificate, "AB:CD:..." (for logs and tests). */
  readonly fingerprint256: string;
  /** A fresh options object for tls.createServer or a server-side new tls.TLSSocket. */
  serverOptions(): tls.TlsOptions;
}

export type TlsMaterialErrorCode = 'MISSING' | 'UNREADABLE' | 'PARSE' | 'MISMATCH' | 'CONTEXT' | 'GENERATE';

export class TlsMaterialError extends Error {
  override readonly name = 'TlsMaterialError';
  constructor(
    readonly code: TlsMaterialErrorCode,
    /** Config path, e.g. `tls.key` or `tls.sni["mail.example.org"].cert`. */
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

type FatalIssue = PairIssue & { code: 'MISSING' | 'UNREADABLE' | 'PARSE' | 'MISMATCH' };

/**
 * An issue that stops the gateway. Expiry only warns at load (a reload must not take TLS down
 * over a date); `--check` reports it as a problem.
 */
function isFatal(issue: PairIssue): issue is FatalIssue {
  return issue.code !== 'EXPIRED' && issue.code !== 'NOT_YET_VALID';
}

function configPath(base: string, which: 'cert' | 'key'): string {
  return `${base}.${which}`;
}

function sniBase(name: string): string {
  return `tls.sni[${JSON.stringify(name)}]`;
}

function contextOptions(cfg: TlsConfig, pair: { cert: Buffer; key: Buffer }, ticketKeys: Buffer): tls.SecureContextOptions {
  return {
    cert: pair.cert,
    key: pair.key,
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

function buildContext(cfg: TlsConfig, files: CertPair, pair: LoadedPair, base: string, ticketKeys: Buffer): tls.SecureContext {
  try {
    return tls.createSecureContext(contextOptions(cfg, pair, ticketKeys));
  } catch (err) {
    // e.g. "ee key too small" under OpenSSL's security level; the message carries no key bytes.
    throw new TlsMaterialError('CONTEXT', configPath(base, 'cert'), files.cert,
      `OpenSSL refused ${files.cert} / ${files.key}: ${(err as Error).message}`);
  }
}

async function loadPair(pair: CertPair, base: string, log: Logger, now: number): Promise<LoadedPair> {
  const inspection = await inspectPair(pair, now);
  for (const issue of inspection.issues) {
    if (isFatal(issue)) throw new TlsMaterialError(issue.code, configPath(base, issue.which), issue.file, issue.message);
  }
  // Without a fatal issue the pair is always loaded; the check keeps the types honest.
  if (inspection.pair === null) throw new TlsMaterialError('PARSE', configPath(base, 'cert'), pair.cert, `cannot load ${pair.cert}`);
  for (const issue of inspection.issues) {
    log.warn({ path: configPath(base, issue.which), file: issue.file }, `TLS certificate problem: ${issue.message}`);
  }
  return inspection.pair;
}

/** Generates the default pair when both files are absent; a single missing file is an error later. */
async function ensureDefaultPair(cfg: TlsConfig, log: Logger, now: number): Promise<void> {
  const inspection = await inspectPair(cfg, now);
  if (!isMissing(inspection, 'cert') || !isMissing(inspection, 'key')) return;
  try {
    await generateSelfSigned(cfg.cert, cfg.key, hostname() || 'localhost');
  } catch (err) {
    // EEXIST: another worker generated it first; the load that follows checks the result.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw new TlsMaterialError('GENERATE', 'tls.cert', cfg.cert,
      `cannot write a self-signed certificate to ${cfg.cert} / ${cfg.key}: ${(err as Error).message}`);
  }
  log.warn({ cert: cfg.cert, key: cfg.key },
    'generated a self-signed certificate because tls.cert and tls.key were missing; clients will not trust it, install a real one');
}

export async function loadTlsMaterial(cfg: TlsConfig, log: Logger, options: TlsMaterialOptions = {}): Promise<TlsMaterial> {
  const now = (options.now ?? Date.now)();
  const ticketKeys = options.ticketKeys ?? defaultTicketKeys();
  await ensureDefaultPair(cfg, log, now);
  const main = await loadPair(cfg, 'tls', log, now);
  const secureContext = buildContext(cfg, cfg, main, 'tls', ticketKeys);

  const sniEntries: Array<[string, tls.SecureContext]> = [];
  for (const [name, pair] of Object.entries(cfg.sni)) {
    const loaded = await loadPair(pair, sniBase(name), log, now);
    sniEntries.push([name, buildContext(cfg, pair, loaded, sniBase(name), ticketKeys)]);
  }
  const sni = new SniMap(sniEntries);

  // Unknown names get no context, so the server's current default certificate is used (after a
  // reload that is the new one, even if this callback outlives this material).
  const SNICallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    cb(null, sni.lookup(servername));
  };

  const fingerprint256 = main.leaf.fingerprint256;
  return Object.freeze({
    secureContext,
    fingerprint256,
    serverOptions(): tls.TlsOptions {
      return {
        // tls.createServer builds its default context from these and ignores `secureContext`;
        // new tls.TLSSocket uses `secureContext`. Both come from the same options.
        ...contextOptions(cfg, main, ticketKeys),
        secureContext,
        // Node 20 answers an ALPN list without "pop3" with a fatal no_application_protocol
        // alert; clients that send no ALPN at all are served normally.
        ALPNProtocols: [...ALPN],
        // Always set, even without `sni` entries, so a reload that adds some has a callback to swap.
        SNICallback,
        handshakeTimeout: cfg.handshakeTimeout,
      };
    },
  });
}

function toProblems(issues: readonly PairIssue[], base: string): Problem[] {
  return issues.map((issue) => ({ path: configPath(base, issue.which), message: issue.message, expected: issue.expected }));
}

async function checkPair(cfg: TlsConfig, pair: CertPair, base: string, allowGenerate: boolean): Promise<Problem[]> {
  const inspection = await inspectPair(pair);
  if (allowGenerate && isMissing(inspection, 'cert') && isMissing(inspection, 'key')) return [];
  const problems = toProblems(inspection.issues, base);
  if (inspection.pair !== null && problems.length === 0) {
    try {
      // Same options as at start, so what OpenSSL refuses (weak keys, bad chains) shows up here.
      tls.createSecureContext(contextOptions(cfg, inspection.pair, randomBytes(48)));
    } catch (err) {
      problems.push({
        path: configPath(base, 'cert'),
        message: `OpenSSL refused ${pair.cert} / ${pair.key}: ${(err as Error).message}`,
        expected: 'an RSA key of at least 2048 bits or an EC key, with its certificate',
      });
    }
  }
  return problems;
}

/**
 * For `--check`: every problem with the default pair and each SNI pair. Both default files
 * absent is fine (a self-signed pair is generated at start); one of them absent is not.
 */
export async function checkTlsMaterial(cfg: TlsConfig): Promise<Problem[]> {
  const problems = await checkPair(cfg, cfg, 'tls', true);
  for (const [name, pair] of Object.entries(cfg.sni)) {
    problems.push(...(await checkPair(cfg, pair, sniBase(name), false)));
  }
  return problems;
}
