/**
 * The validated, frozen configuration every other module receives.
 * Durations are milliseconds, sizes are bytes, paths are absolute (resolved
 * against the YAML file's folder). Only config/validate.ts builds these.
 */

export type ListenerTls = 'implicit' | 'starttls' | 'none';
export type BackendTls = 'none' | 'implicit' | 'starttls';

export interface ListenerConfig {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly tls: ListenerTls;
  /** USER/PASS/APOP/AUTH refused until the session is encrypted. */
  readonly requireTls: boolean;
  /** True when the YAML said `requireTls` explicitly (a `none` listener needs that to allow plaintext auth). */
  readonly requireTlsExplicit: boolean;
  /**
   * `requireTls: report`: plaintext logins are let through but audited as "would refuse"
   * (reason tls-required), so a fleet of legacy clients can be found before enforcing.
   */
  readonly requireTlsReport?: boolean;
  readonly proxyProtocol: boolean;
  /** CIDRs allowed to send a PROXY header (default: loopback only). */
  readonly trustedProxies: readonly string[];
  /** Per-listener allowlist; null means policy.commands.allow. */
  readonly allow: readonly string[] | null;
}

/**
 * Certificate and key files: one path, or a list with one pair per key type (RSA, ECDSA...),
 * `cert[i]` with `key[i]`; OpenSSL then picks the certificate by what the client offers.
 */
export interface CertPair {
  readonly cert: string | readonly string[];
  readonly key: string | readonly string[];
}

export interface TlsConfig extends CertPair {
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher string for TLS <= 1.2 (TLS 1.3 suites are OpenSSL's). */
  readonly ciphers: string;
  readonly handshakeTimeout: number;
  readonly sni: Readonly<Record<string, CertPair>>;
}

export interface BackendServer {
  readonly host: string;
  readonly port: number;
}

export interface BackendConfig {
  /** One or more servers; a pool when more than one. */
  readonly servers: readonly BackendServer[];
  readonly tls: BackendTls;
  readonly rejectUnauthorized: boolean;
  /** Absolute path to a CA file, or null for the system store. */
  readonly ca: string | null;
  /** Name checked against the backend certificate; default the host. */
  readonly servername: string | null;
  readonly connectTimeout: number;
  readonly connect: 'on-login' | 'on-accept';
  readonly proxyProtocol: false | 'v1' | 'v2';
  /** Sending credentials to a `tls: none` backend must be opted into (loopback is always allowed). */
  readonly allowPlaintextCredentials: boolean;
  /** How often the capability/health probe runs. */
  readonly probeInterval: number;
  /** How long a failed pool server is skipped. */
  readonly downFor: number;
}

export interface RouteConfig {
  /** exact name, `*@domain`, `user@host`/`user+host`, or `/regex/flags`. */
  readonly match: string;
  readonly backend: BackendConfig;
  readonly loginAs: 'as-is' | 'local-part';
}

export interface RuleMatch {
  readonly user: string | null;
  /** CIDR, optionally prefixed with `!` to negate. */
  readonly network: string | null;
}

export interface RuleConfig {
  readonly match: RuleMatch;
  readonly deny: readonly string[];
  readonly allow: readonly string[] | null;
  readonly maxMessages: number | null;
  readonly maxBytes: number | null;
  readonly mode: 'enforce' | 'report';
}

export interface PolicyConfig {
  readonly commands: { readonly allow: readonly string[] };
  readonly auth: {
    readonly maxFailuresPerIp: number;
    readonly maxFailuresPerUser: number;
    readonly window: number;
    readonly lockout: number;
    readonly failureDelay: number;
    /** Failed attempts in one session before the gateway closes it. */
    readonly maxAttemptsPerSession: number;
    /** IPv6 clients are counted per prefix of this length. */
    readonly ipv6Prefix: number;
  };
  readonly connections: {
    readonly maxPerIp: number;
    readonly maxTotal: number;
    /** New connections per IP per `rateWindow`; 0 disables. */
    readonly ratePerIp: number;
    readonly rateWindow: number;
  };
  readonly timeouts: {
    readonly idle: number;
    readonly auth: number;
    readonly backendReply: number;
  };
  readonly rateLimitStore: 'memory' | string;
  readonly trustedNetworks: readonly string[];
  readonly rules: readonly RuleConfig[];
}

/** Bounds on everything a peer can make us hold (not in CONTRACT's example; all have defaults). */
export interface LimitsConfig {
  /** RFC 2449: 255 octets including CRLF. */
  readonly commandLine: number;
  /** SASL response lines (XOAUTH2/OAUTHBEARER tokens run to several KiB). */
  readonly saslLine: number;
  /** RFC 2449: 512 octets including CRLF; a backend line past this ends the session. */
  readonly responseLine: number;
  /** Commands in flight per session before the gateway stops reading the client. */
  readonly pipelineDepth: number;
  /** Unknown/invalid commands before the gateway closes the session. */
  readonly maxInvalidCommands: number;
  /** A multi-line reply larger than this ends the session. */
  readonly maxMultiline: number;
}

export interface CapaConfig {
  /** 'hide' drops the backend's IMPLEMENTATION, 'relay' passes it, any other text replaces it. */
  readonly implementation: string;
}

export interface LoggingConfig {
  readonly level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** Absolute path, or null for no audit file. */
  readonly audit: string | null;
  readonly auditHeaders: readonly string[];
  readonly auditPseudonymize: boolean;
  /** Log lines on stdout: pino-pretty, JSON lines, or auto (pretty on a terminal, JSON otherwise). */
  readonly format: LogFormat;
  /** Permission bits a new audit file is created with (`auditMode: "0640"`); an existing file keeps its own. */
  readonly auditMode: number;
}

export type LogFormat = 'pretty' | 'json' | 'auto';

export interface AdminConfig {
  readonly host: string;
  /** null disables the admin endpoint. */
  readonly port: number | null;
  readonly token: string | null;
  /**
   * Names (or addresses) a `Host` header may carry besides the bind address and, on loopback,
   * localhost/127.0.0.1/[::1]; anything else is refused (DNS rebinding).
   */
  readonly allowedHosts: readonly string[];
}

export interface GatewayConfig {
  /** Absolute path of the YAML file (for reload), or null when built in code. */
  readonly file: string | null;
  readonly listeners: readonly ListenerConfig[];
  readonly tls: TlsConfig;
  readonly backend: BackendConfig;
  readonly routes: readonly RouteConfig[];
  readonly workers: number | 'auto';
  readonly policy: PolicyConfig;
  readonly limits: LimitsConfig;
  readonly capa: CapaConfig;
  readonly logging: LoggingConfig;
  readonly admin: AdminConfig;
  readonly shutdownGrace: number;
}

/** One config problem: where, what is wrong, what is expected. */
export interface Problem {
  /** YAML path, e.g. `policy.auth.window` or `listeners[1].port`. */
  readonly path: string;
  readonly message: string;
  readonly expected: string;
  /** 1-based line in the YAML file, when known. */
  readonly line?: number;
}

/** Verbs whose reply framing the gateway knows (RFC 1939, 2449, 1734/5034, 2595). */
export const KNOWN_VERBS = [
  'CAPA', 'USER', 'PASS', 'APOP', 'AUTH', 'STLS',
  'STAT', 'LIST', 'UIDL', 'TOP', 'RETR', 'DELE', 'NOOP', 'RSET', 'QUIT', 'LAST',
] as const;
export type KnownVerb = (typeof KNOWN_VERBS)[number];

/** Mozilla "intermediate" (v5.7) cipher list for TLS 1.2; TLS 1.3 suites are all acceptable. */
export const MOZILLA_INTERMEDIATE_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'DHE-RSA-AES128-GCM-SHA256',
  'DHE-RSA-AES256-GCM-SHA384',
  'DHE-RSA-CHACHA20-POLY1305',
].join(':');

export const DEFAULTS = {
  listenerRequireTls: true,
  trustedProxies: ['127.0.0.0/8', '::1/128'],
  tls: {
    cert: 'certs/server.crt',
    key: 'certs/server.key',
    minVersion: 'TLSv1.2',
    ciphers: MOZILLA_INTERMEDIATE_CIPHERS,
    handshakeTimeout: 10_000,
  },
  backend: {
    tls: 'none',
    rejectUnauthorized: true,
    connectTimeout: 5_000,
    connect: 'on-login',
    proxyProtocol: false,
    allowPlaintextCredentials: false,
    probeInterval: 30_000,
    downFor: 30_000,
  },
  workers: 1,
  policy: {
    allow: ['CAPA', 'USER', 'PASS', 'APOP', 'AUTH', 'STLS', 'STAT', 'LIST', 'UIDL', 'TOP', 'RETR', 'DELE', 'NOOP', 'RSET', 'QUIT'],
    maxFailuresPerIp: 10,
    maxFailuresPerUser: 5,
    window: 15 * 60_000,
    lockout: 15 * 60_000,
    failureDelay: 1_000,
    maxAttemptsPerSession: 3,
    ipv6Prefix: 64,
    maxPerIp: 50,
    maxTotal: 10_000,
    ratePerIp: 0,
    rateWindow: 60_000,
    idle: 10 * 60_000,
    auth: 60_000,
    backendReply: 30_000,
  },
  limits: {
    commandLine: 255,
    saslLine: 16 * 1024,
    responseLine: 512,
    pipelineDepth: 64,
    maxInvalidCommands: 10,
    maxMultiline: 256 * 1024 * 1024,
  },
  capa: { implementation: 'hide' },
  logging: { level: 'info', audit: null, auditHeaders: [], auditPseudonymize: false, auditMode: 0o640, format: 'auto' },
  admin: { host: '127.0.0.1', port: 9110, token: null, allowedHosts: [] },
  shutdownGrace: 30_000,
} as const;
