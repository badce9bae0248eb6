/**
 * From the parsed YAML to the frozen GatewayConfig: every key checked, every problem reported
 * with its path, defaults filled in, durations in ms, sizes in bytes, paths made absolute.
 * Pure: no file system, no process.env (the environment comes in through `opts.env`).
 */
import { resolve } from 'node:path';
import {
  DEFAULTS,
  type AdminConfig, type CapaConfig, type CertPair, type GatewayConfig, type LimitsConfig, type LoggingConfig, type LogFormat,
  type Problem, type TlsConfig,
} from './schema.ts';
import { Problems, type LineOf, type Path } from './problems.ts';
import { isMapping, mapping, Section } from './section.ts';
import {
  bindPort, bool, duration, filePath, host, int, INVALID, listOf, nullable, oneOf, size, spec, text, type Spec,
} from './specs.ts';
import { completeListener, readListeners } from './validate-listeners.ts';
import { backendSpec, readRoutes } from './validate-backend.ts';
import { readPolicy } from './validate-policy.ts';
import { checkListeners } from './cross-checks.ts';
import { parseIp } from '../util/cidr.ts';

export interface ValidateOptions {
  /** Folder relative paths resolve against: the YAML file's own folder. */
  readonly baseDir: string;
  /** Absolute path of the YAML file, kept in the config for reloads. */
  readonly file: string | null;
  /** 1-based line of the YAML node at a path, when known. */
  readonly lineOf?: LineOf;
  readonly env?: Record<string, string | undefined>;
}

export type ValidateResult =
  | { readonly ok: true; readonly config: GatewayConfig }
  | { readonly ok: false; readonly problems: Problem[] };

const TOP_KEYS = [
  'listeners', 'tls', 'backend', 'routes', 'workers', 'policy', 'limits', 'capa', 'logging', 'admin', 'shutdownGrace',
];
const TLS_KEYS = ['cert', 'key', 'minVersion', 'ciphers', 'handshakeTimeout', 'sni'];
const LIMIT_KEYS = ['commandLine', 'saslLine', 'responseLine', 'pipelineDepth', 'maxInvalidCommands', 'maxMultiline'];
const LOGGING_KEYS = ['level', 'audit', 'auditHeaders', 'auditPseudonymize', 'auditMode', 'format'];
const ADMIN_KEYS = ['host', 'port', 'token', 'allowedHosts'];
const MIN_TOKEN_LENGTH = 16;

export function validateConfig(raw: unknown, opts: ValidateOptions): ValidateResult {
  const problems = new Problems(opts.lineOf);
  const env = opts.env ?? {};
  if (!isMapping(raw)) {
    problems.found([], raw, `a mapping with keys: ${TOP_KEYS.join(', ')}`);
    return { ok: false, problems: problems.sorted() };
  }
  const root = Section.open(problems, raw, [], TOP_KEYS);
  const { listeners, backend, ...rest } = readDocument(root, opts.baseDir, env);
  if (problems.count > 0 || backend === undefined) return { ok: false, problems: problems.sorted() };
  const config: GatewayConfig = {
    file: opts.file,
    // With no problem reported every listener is complete; the filter only narrows the type.
    listeners: listeners.map(completeListener).filter((l) => l !== null),
    backend,
    ...rest,
  };
  return { ok: true, config: deepFreeze(config) };
}

/**
 * The document's root section after reading an empty one: it knows the spec of every key, which
 * is what document-schema.ts turns into the shipped JSON Schema.
 */
export function describeDocument(): Section {
  const root = Section.probe(TOP_KEYS);
  readDocument(root, '/', {});
  return root;
}

// Every section and key is read on every run, whatever the input: that is what lets
// describeDocument() learn the whole shape from an empty document.
function readDocument(root: Section, baseDir: string, env: Record<string, string | undefined>) {
  const listeners = readListeners(root);
  const tls = readTls(root, baseDir);
  const backend = root.req('backend', backendSpec(baseDir, null));
  const routes = readRoutes(root, baseDir, backend ?? null);
  const workerCount = root.opt('workers', workers, DEFAULTS.workers);
  const policy = readPolicy(root);
  const limits = readLimits(root);
  const capa = readCapa(root);
  const logging = readLogging(root, baseDir, env);
  const admin = readAdmin(root, env);
  const shutdownGrace = root.opt('shutdownGrace', duration(0), DEFAULTS.shutdownGrace);
  checkListeners(root.problems, listeners, admin, policy);
  return { listeners, tls, backend, routes, workers: workerCount, policy, limits, capa, logging, admin, shutdownGrace };
}

const workers = spec<number | 'auto'>('auto, or a positive integer', (v) =>
  v === 'auto' || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 1) ? v : INVALID,
{ anyOf: [{ const: 'auto' }, { type: 'integer', minimum: 1 }] });

function readTls(root: Section, baseDir: string): TlsConfig {
  const s = root.sub('tls', TLS_KEYS);
  const file = filePath(baseDir);
  const files = oneOrMore(file);
  const before = s.problems.count;
  const cert = s.opt('cert', files, resolve(baseDir, DEFAULTS.tls.cert));
  const key = s.opt('key', files, resolve(baseDir, DEFAULTS.tls.key));
  // An invalid list reads as the default single file: comparing lengths then would only add noise.
  if (s.problems.count === before) checkPaired(s.problems, s.path, cert, key);
  const tls = {
    cert,
    key,
    minVersion: s.opt('minVersion', oneOf<'TLSv1.2' | 'TLSv1.3'>(['TLSv1.2', 'TLSv1.3']), DEFAULTS.tls.minVersion),
    ciphers: s.opt('ciphers', text, DEFAULTS.tls.ciphers),
    handshakeTimeout: s.opt('handshakeTimeout', duration(1), DEFAULTS.tls.handshakeTimeout),
    sni: s.opt('sni', sniMap(sniFile(file)), {}),
  };
  if (typeof cert !== 'string' && cert.length > 1 && Object.keys(tls.sni).length > 0) {
    s.problems.add(
      s.at('sni'),
      `tls.cert lists ${cert.length} certificates and tls.sni has entries: for an SNI name, clients that prefer `
        + 'the other key type would still get a default certificate (Node installs one SNI certificate over the default ones)',
      'a list in tls.cert without tls.sni, or a single tls.cert file with tls.sni',
    );
  }
  return tls;
}

// Node's SNI hook (UseSNIContext in src/crypto/crypto_common.cc) copies only one certificate of
// the chosen context into the connection; every other key type keeps the default context's.
const SNI_ONE_FILE = 'a single file per SNI entry (Node serves only one certificate per SNI name)';

/** An SNI entry's cert or key: one file; a list is refused with the reason, not as a wrong type. */
function sniFile(file: Spec<string>): Spec<string> {
  return {
    expected: file.expected,
    schema: file.schema,
    check(v, path, p) {
      if (!Array.isArray(v)) return file.check(v, path, p);
      p.add(path, `found a list of ${v.length}: an SNI name gets one certificate, never one per key type`, SNI_ONE_FILE);
      return INVALID;
    },
  };
}

/**
 * `tls.cert`/`tls.key`: one file, or a list of them, one pair per key type (RSA, ECDSA), as
 * nginx's repeated ssl_certificate; OpenSSL then chooses by what the client offers.
 */
function oneOrMore(file: Spec<string>): Spec<string | readonly string[]> {
  const list = listOf(file, { min: 1 });
  const expected = `${file.expected}, or a list of them (one per key type, e.g. RSA and ECDSA)`;
  return {
    expected,
    schema: { oneOf: [file.schema, list.schema], description: expected },
    check(v, path, p) {
      if (Array.isArray(v)) return list.check(v, path, p);
      if (typeof v === 'string') return file.check(v, path, p);
      p.found(path, v, expected);
      return INVALID;
    },
  };
}

/** `cert[i]` goes with `key[i]`: both name as many files. */
function checkPaired(problems: Problems, path: Path, cert: string | readonly string[], key: string | readonly string[]): void {
  const count = (f: string | readonly string[]): number => (typeof f === 'string' ? 1 : f.length);
  if (count(cert) === count(key)) return;
  problems.add(
    [...path, 'key'],
    `key names ${count(key)} file(s) but cert names ${count(cert)}`,
    'one key file per certificate file, in the same order',
  );
}

const SNI_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

const SNI_EXPECTED = 'a mapping of server name to {cert, key}';

/** `tls.sni`: server name → {cert, key}. Names are stored lower-case (RFC 6066 names match in any case). */
function sniMap(file: Spec<string>): Spec<Record<string, CertPair>> {
  const certPair = mapping<CertPair>('a mapping with cert and key', ['cert', 'key'], (pair) => {
    const cert = pair.req('cert', file);
    const key = pair.req('key', file);
    return cert === undefined || key === undefined ? INVALID : { cert, key };
  });
  return {
    expected: SNI_EXPECTED,
    get schema() {
      // JSON Schema has no case-insensitive pattern: upper-case letters are let through here.
      const name = SNI_NAME.source.replaceAll('a-z', 'A-Za-z');
      return { type: ['object', 'null'], propertyNames: { pattern: name }, additionalProperties: certPair.schema, description: SNI_EXPECTED };
    },
    check(raw, path, problems) {
      const out: Record<string, CertPair> = {};
      if (raw === null) return out;
      if (!isMapping(raw)) {
        problems.found(path, raw, SNI_EXPECTED);
        return INVALID;
      }
      let bad = false;
      for (const [name, value] of Object.entries(raw)) {
        const lower = name.toLowerCase();
        if (!SNI_NAME.test(lower)) {
          problems.add([...path, name], `"${name}" is not a server name`, 'a DNS name like mail.example.org or *.example.org');
          bad = true;
        }
        const pair = certPair.check(value, [...path, name], problems);
        if (pair === INVALID) bad = true;
        else out[lower] = pair;
      }
      return bad ? INVALID : out;
    },
  };
}

function readLimits(root: Section): LimitsConfig {
  const s = root.sub('limits', LIMIT_KEYS);
  const d = DEFAULTS.limits;
  const limits = {
    // RFC 2449 fixes 255 octets; below 64 even "USER " plus a modest address would not fit.
    commandLine: s.opt('commandLine', size(64), d.commandLine),
    saslLine: s.opt('saslLine', size(1), d.saslLine),
    responseLine: s.opt('responseLine', size(512), d.responseLine),
    pipelineDepth: s.opt('pipelineDepth', int(1), d.pipelineDepth),
    maxInvalidCommands: s.opt('maxInvalidCommands', int(1), d.maxInvalidCommands),
    maxMultiline: s.opt('maxMultiline', size(1), d.maxMultiline),
  };
  // A SASL response line is a command line's continuation; a shorter cap would cut AUTH short.
  if (limits.saslLine < limits.commandLine) {
    s.problems.add(
      s.at('saslLine'),
      `saslLine (${limits.saslLine} bytes) is smaller than commandLine (${limits.commandLine} bytes)`,
      'a size at least as large as limits.commandLine',
    );
  }
  return limits;
}

// The text replaces the backend's IMPLEMENTATION line in CAPA, so it must stay on one short line.
const IMPLEMENTATION = /^[\x20-\x7e]{1,200}$/;
const implementation = spec<string>('hide, relay, or printable text of at most 200 characters', (v) =>
  typeof v === 'string' && IMPLEMENTATION.test(v) && v.trim() !== '' ? v : INVALID,
{ type: 'string', pattern: IMPLEMENTATION.source });

function readCapa(root: Section): CapaConfig {
  const s = root.sub('capa', ['implementation']);
  return { implementation: s.opt('implementation', implementation, DEFAULTS.capa.implementation) };
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
// RFC 5322 field names: printable ASCII without the colon.
const HEADER_NAME = /^[\x21-\x39\x3b-\x7e]+$/;
const headerName = spec<string>('a header field name like Message-ID', (v) =>
  typeof v === 'string' && HEADER_NAME.test(v) ? v : INVALID, { type: 'string', pattern: HEADER_NAME.source });

/**
 * An octal mode as a quoted string: YAML reads an unquoted 0640 as the decimal 640. The owner
 * (the gateway) must be able to write; execute bits and world-writable modes make no sense here.
 */
const fileMode = spec<number>('an octal file mode as a quoted string like "0640" (owner rw, no execute bits, not world-writable)',
  (v) => {
    if (typeof v !== 'string' || !/^0?[0-7]{3}$/.test(v)) return INVALID;
    const mode = parseInt(v, 8);
    return (mode & 0o600) === 0o600 && (mode & 0o111) === 0 && (mode & 0o002) === 0 ? mode : INVALID;
  }, { type: 'string', pattern: '^0?[0-7]{3}$' });

function readLogging(root: Section, baseDir: string, env: Record<string, string | undefined>): LoggingConfig {
  const s = root.sub('logging', LOGGING_KEYS);
  const d = DEFAULTS.logging;
  const logging: LoggingConfig = {
    level: s.opt('level', oneOf(LEVELS), d.level),
    audit: s.opt('audit', nullable(filePath(baseDir)), d.audit),
    auditHeaders: s.opt('auditHeaders', listOf(headerName, { dedupe: true }), [...d.auditHeaders]),
    auditPseudonymize: s.opt('auditPseudonymize', bool, d.auditPseudonymize),
    auditMode: s.opt('auditMode', fileMode, d.auditMode),
    format: s.opt('format', oneOf<LogFormat>(['auto', 'pretty', 'json']), d.format),
  };
  // Without a key the hashes would be unkeyed, and a dictionary of user names would undo them.
  if (logging.auditPseudonymize && !env.POP3GW_AUDIT_KEY) {
    s.problems.add(
      s.at('auditPseudonymize'),
      'auditPseudonymize is true but the environment variable POP3GW_AUDIT_KEY is not set',
      'POP3GW_AUDIT_KEY set to a secret key, or auditPseudonymize: false',
    );
  }
  return logging;
}

// Short tokens can be guessed; printable ASCII only, because it travels in an HTTP header.
const isToken = (v: unknown): boolean =>
  typeof v === 'string' && v.length >= MIN_TOKEN_LENGTH && /^[\x21-\x7e]+$/.test(v);
const token = spec<string>(`a string of at least ${MIN_TOKEN_LENGTH} characters without spaces`, (v) =>
  isToken(v) ? (v as string) : INVALID, { type: 'string', minLength: MIN_TOKEN_LENGTH, pattern: '^[\\x21-\\x7e]+$' });

// A Host header's name part: a DNS name or an address (IPv6 with or without brackets), no port.
const allowedHost = spec<string>('a host name or IP address without a port, like admin.example.org', (v) =>
  typeof v === 'string' && (/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(v) || parseIp(/^\[(.*)\]$/.exec(v)?.[1] ?? v) !== null) ? v : INVALID,
  { type: 'string', minLength: 1 });

function readAdmin(root: Section, env: Record<string, string | undefined>): AdminConfig {
  const d = DEFAULTS.admin;
  // `admin: null` (written, not merely absent; YAML reads an empty `admin:` the same) turns the
  // endpoint off: no listener at all.
  if (root.value('admin') === null) return { ...d, port: null, allowedHosts: [] };
  const s = root.sub('admin', ADMIN_KEYS);
  const before = s.problems.count;
  const written = s.opt('token', nullable(token), d.token);
  let fromEnv: string | null = null;
  const envToken = env.POP3GW_ADMIN_TOKEN;
  if (written === null && envToken !== undefined && envToken !== '') {
    if (!isToken(envToken)) {
      s.problems.add(
        s.at('token'),
        `the environment variable POP3GW_ADMIN_TOKEN has ${envToken.length} characters or contains spaces`,
        token.expected,
      );
    } else {
      fromEnv = envToken;
    }
  }
  const tokenReported = s.problems.count > before;
  const admin: AdminConfig = {
    host: s.opt('host', host, d.host),
    port: s.opt('port', nullable(bindPort), d.port),
    token: written ?? fromEnv,
    allowedHosts: s.opt('allowedHosts', listOf(allowedHost, { dedupe: true }), []),
  };
  // Off loopback anyone on the network could list and kick sessions: a token is not optional there.
  if (admin.port !== null && admin.token === null && !tokenReported && !isLoopback(admin.host)) {
    s.problems.add(
      s.at('host'),
      `the admin endpoint on ${admin.host} is reachable from other machines but has no token`,
      'admin.token (or env POP3GW_ADMIN_TOKEN) set, a loopback admin.host like 127.0.0.1, or admin: null',
    );
  }
  return admin;
}

function isLoopback(h: string): boolean {
  return h.toLowerCase() === 'localhost' || parseIp(h)?.range() === 'loopback';
}

/** Freezes every object and array reachable from `value`, so no module can change the config. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
