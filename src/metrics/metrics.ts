/**
 * Prometheus metrics for one gateway instance. Each instance owns its registry (never
 * prom-client's global one), so two gateways in one process never collide. Labels are bounded:
 * listener names come from config, verbs and reasons from fixed sets; never a user or an IP.
 */
import * as prom from 'prom-client';
import { KNOWN_VERBS } from '../config/schema.ts';
import { CountedHistogram } from './counted-histogram.ts';
import { TallyCounter } from './tally-counter.ts';

/** Policy refusal reasons used as a label; anything else is counted as "other". */
export const POLICY_REASONS = [
  'not-in-allowlist', 'tls-required', 'rule-deny', 'max-messages', 'max-bytes',
  'max-per-ip', 'max-total', 'conn-rate', 'ip-locked', 'user-locked',
  'bad-credentials', 'bad-credential-chars', 'name-too-long', 'client-gone', 'too-many-invalid', 'line-too-long',
] as const;

/** BackendError codes (backend/connector.ts); anything else is "OTHER". */
export const BACKEND_ERROR_CODES = ['CONNECT', 'TIMEOUT', 'TLS', 'GREETING', 'NO_STLS', 'PROTOCOL', 'CLOSED'] as const;

export const SIGNAL_KINDS = ['new-source', 'download-volume', 'many-users-one-source', 'mass-dele'] as const;

export type ConnectionResult = 'accepted' | 'refused' | 'tls-failed';
export type LoginResult = 'ok' | 'failed' | 'locked' | 'error';
export type CommandResult = 'ok' | 'err' | 'denied';
export type Direction = 'client_to_backend' | 'backend_to_client';

/**
 * How often the event-loop delay histogram (`nodejs_eventloop_lag_*`) takes a sample, ms.
 * prom-client's default, 10 ms, is a timer waking the process 100 times a second: an idle gateway
 * used 9.5–10 ms of CPU per second for it (the Node pipe, 0), 0.1 ms of CPU per session at
 * 100 sessions/s. At 100 ms: 1.6 ms per second; a stall still shows whenever it holds up a sample.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * prom-client's process and Node series, minus the three gauges it names `*_total`
 * (nodejs_active_{handles,requests,resources}_total): `promtool check metrics` rejects a
 * non-counter with that suffix, and the same totals stay available per type, unsummed.
 */
export function collectProcessMetrics(registry: prom.Registry): void {
  prom.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name);
  }
}

const VERBS = new Set<string>(KNOWN_VERBS);
const REASONS = new Set<string>(POLICY_REASONS);
const CODES = new Set<string>(BACKEND_ERROR_CODES);
const SIGNALS = new Set<string>(SIGNAL_KINDS);

export class GatewayMetrics {
  readonly registry = new prom.Registry();
  private lockoutsFn: () => number = () => 0;
  private backendUpFn: () => boolean = () => true;

  private readonly connections = new TallyCounter({
    name: 'pop3gw_connections_total',
    help: 'Client connections by listener and result (accepted, refused by limits, TLS handshake failed).',
    labelNames: ['listener', 'result'] as const,
    registers: [this.registry],
  });

  /** Open sessions per listener, kept as plain counts and set on the gauge when it is read. */
  private readonly openSessions = new Map<string, number>();
  private readonly sessionsActive = new prom.Gauge({
    name: 'pop3gw_sessions_active',
    help: 'Client sessions currently open, by listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
    collect: () => {
      for (const [listener, n] of this.openSessions) this.sessionsActive.set({ listener }, n);
    },
  });

  private readonly logins = new TallyCounter({
    name: 'pop3gw_logins_total',
    help: 'Login attempts by result (ok, failed credentials, locked out, backend error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  /** Observed on every command: a histogram without prom-client's label checks per observation. */
  private readonly commands = new CountedHistogram({
    name: 'pop3gw_command_duration_seconds',
    help: 'Client commands by verb and result, with the time until the reply ended (bodies included).',
    labelNames: ['verb', 'result'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
    registers: [this.registry],
  });

  private readonly refusals = new TallyCounter({
    name: 'pop3gw_policy_refusals_total',
    help: 'Commands, logins and connections refused by policy, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  private bytesIn!: prom.Counter.Internal;
  private bytesOut!: prom.Counter.Internal;
  /** Bytes relayed since the last scrape: plain sums per chunk, added to the counter when it is read. */
  private pendingIn = 0;
  private pendingOut = 0;
  private readonly bytesRelayed = new prom.Counter({
    name: 'pop3gw_bytes_total',
    help: 'Bytes relayed, by direction.',
    labelNames: ['direction'] as const,
    registers: [this.registry],
    // prom-client calls this before every read of the counter (a scrape, the cluster's aggregation).
    collect: () => this.flushBytes(),
  });

  /** Observed on every session's backend connect: the same cheap histogram as the commands'. */
  private readonly backendConnects = new CountedHistogram({
    name: 'pop3gw_backend_connect_seconds',
    help: 'Time to connect to the backend (through greeting and TLS), by result.',
    labelNames: ['result'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  private readonly backendErrors = new TallyCounter({
    name: 'pop3gw_backend_errors_total',
    help: 'Failed backend connections, by error code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  private readonly tlsFailures = new TallyCounter({
    name: 'pop3gw_tls_handshake_failures_total',
    help: 'Client TLS handshakes that failed (implicit TLS or STLS), by listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  private readonly signals = new TallyCounter({
    name: 'pop3gw_signals_total',
    help: 'Audit signals raised (new source, download volume, many users from one source, mass DELE).',
    labelNames: ['signal'] as const,
    registers: [this.registry],
  });

  private readonly auditErrors = new prom.Counter({
    name: 'pop3gw_audit_errors_total',
    help: 'Audit records that did not reach the audit file (write failed, buffer full, record unwritable).',
    registers: [this.registry],
  });

  constructor() {
    const self = this;
    new prom.Gauge({
      name: 'pop3gw_backend_up',
      help: 'Whether the last health probe of the default backend succeeded (1) or not (0).',
      registers: [this.registry],
      // Several workers: the cluster shows the worst one, not a sum.
      aggregator: 'min',
      collect() {
        this.set(self.backendUpFn() ? 1 : 0);
      },
    });
    new prom.Gauge({
      name: 'pop3gw_lockouts_active',
      help: 'Addresses and users currently locked out after failed logins.',
      registers: [this.registry],
      collect() {
        let n: number;
        try {
          n = self.lockoutsFn();
        } catch {
          n = NaN; // unknown (e.g. the shared store is down): NaN rather than a misleading 0
        }
        this.set(n);
      },
    });
    collectProcessMetrics(this.registry);
    // Series that exist from the start, so rate() and alerts work before the first event.
    for (const r of ['ok', 'failed', 'locked', 'error'] as const) this.logins.zero([r]);
    for (const d of ['client_to_backend', 'backend_to_client'] as const) this.bytesRelayed.inc({ direction: d }, 0);
    this.bytesIn = this.bytesRelayed.labels({ direction: 'client_to_backend' });
    this.bytesOut = this.bytesRelayed.labels({ direction: 'backend_to_client' });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  connection(listener: string, result: ConnectionResult): void {
    this.connections.inc([listener, result]);
  }

  sessionOpened(listener: string): void {
    this.openSessions.set(listener, (this.openSessions.get(listener) ?? 0) + 1);
  }

  sessionClosed(listener: string): void {
    this.openSessions.set(listener, (this.openSessions.get(listener) ?? 0) - 1);
  }

  login(result: LoginResult): void {
    this.logins.inc([result]);
  }

  command(verb: string, result: CommandResult, seconds: number): void {
    // Verbs arrive upper-cased from the parser; anything else is looked up once more, upper-cased.
    let label = verb;
    if (!VERBS.has(verb)) {
      const upper = verb.toUpperCase();
      label = VERBS.has(upper) ? upper : 'OTHER';
    }
    this.commands.observe([label, result], Math.max(0, seconds));
  }

  policyRefusal(reason: string): void {
    this.refusals.inc([REASONS.has(reason) ? reason : 'other']);
  }

  /**
   * Called for every relayed chunk and every command and reply line: only a sum here. A
   * prom-client inc hashes its label set and updates its series each time (a twentieth of the CPU
   * of a NOOP in a warmed profile); the sums reach the counter whenever it is read.
   */
  bytes(direction: Direction, n: number): void {
    if (!(n > 0)) return;
    if (direction === 'backend_to_client') this.pendingOut += n;
    else this.pendingIn += n;
  }

  private flushBytes(): void {
    if (this.pendingIn > 0) this.bytesIn.inc(this.pendingIn);
    if (this.pendingOut > 0) this.bytesOut.inc(this.pendingOut);
    this.pendingIn = 0;
    this.pendingOut = 0;
  }

  backendConnect(seconds: number, result: 'ok' | 'error', code?: string): void {
    this.backendConnects.observe([result], Math.max(0, seconds));
    if (result === 'error') this.backendErrors.inc([code !== undefined && CODES.has(code) ? code : 'OTHER']);
  }

  tlsHandshakeFailure(listener: string): void {
    this.tlsFailures.inc([listener]);
  }

  signal(kind: string): void {
    this.signals.inc([SIGNALS.has(kind) ? kind : 'other']);
  }

  auditError(): void {
    this.auditErrors.inc();
  }

  /** Whether the default backend answers its probe, asked at each scrape (BackendDirectory.healthy). */
  setBackendHealth(fn: () => boolean): void {
    this.backendUpFn = fn;
  }

  /** How many lockouts are active, asked at each scrape (AuthLimiter.activeLockouts). */
  setLockoutsGauge(fn: () => number): void {
    this.lockoutsFn = fn;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
