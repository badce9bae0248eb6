/**
 * Everything one session needs from the gateway, fixed when the session starts:
 * a reload builds a new set for new sessions while live ones keep theirs.
 */
import type { AuditSink } from '../audit/sink.ts';
import type { SignalDetector } from '../audit/signals.ts';
import type { Cancellation } from '../backend/deadline.ts';
import type { BackendLease } from '../backend/directory.ts';
import type { Capabilities } from '../protocol/capa.ts';
import type { GatewayConfig, ListenerConfig } from '../config/schema.ts';
import type { GatewayMetrics } from '../metrics/metrics.ts';
import type { AuthLimiter } from '../policy/auth-limits.ts';
import type { CommandPolicy } from '../policy/commands.ts';
import type { NetworkSet } from '../policy/networks.ts';
import type { RuleSet } from '../policy/rules.ts';
import type { Logger } from '../util/logger.ts';
import type { TlsUpgrader } from '../net/tls-engine.ts';

export interface BackendAccess {
  /** Latest capabilities learned by the probe (null: unknown or legacy). */
  capabilities(): Capabilities | null;
  /** True when per-user routes choose the backend (the gateway must know the user first). */
  readonly routing: boolean;
  connect(user: string | null, client: ClientAddress, signal: Cancellation): Promise<BackendLease>;
  /** The name the backend will see for `user` (routing and `loginAs` applied): the per-user counter's key. */
  loginNameFor(user: string): string;
}

export type { ClientAddress } from '../net/listener.ts';
import type { ClientAddress } from '../net/listener.ts';

export interface SessionDeps {
  readonly config: GatewayConfig;
  readonly listener: ListenerConfig;
  readonly log: Logger;
  readonly tls: TlsUpgrader;
  readonly commands: CommandPolicy;
  readonly auth: AuthLimiter;
  readonly rules: RuleSet;
  readonly trusted: NetworkSet;
  readonly backends: BackendAccess;
  readonly audit: AuditSink;
  readonly metrics: GatewayMetrics;
  readonly signals: SignalDetector;
  /** Observed latency of the backend refusing a login, so a lockout reply takes as long. */
  readonly failureLatency: FailureLatency;
}

/** Refusals remembered for the estimate. */
const FAILURE_WINDOW = 16;
/** How far the estimate stays above the slowest remembered refusal. */
const FAILURE_HEADROOM = 1.25;
/**
 * A refusal delayed on purpose is counted in whole seconds: Dovecot checks its failure queue
 * every 500 ms against a seconds clock, so its 2 s auth_failure_delay refuses anywhere from about
 * 1.0 to 2.5 s after the attempt. From a second on, the estimate stays at least this far above the
 * slowest refusal, which covers that range even when every refusal seen came early.
 */
const SECONDS_QUANTUM_MS = 1000;

/**
 * A high estimate of how long the backend takes to refuse a login: every failed login, whatever
 * its reason, is answered on one schedule that is at least this long. Backends quantise their
 * refusal delay (Dovecot checks its failure queue every 500 ms, so a 2 s auth_failure_delay
 * refuses after about 1.0 to 2.5 s depending on when the attempt arrived), so the slowest refusal
 * seen so far is not a bound: with it alone, a locked user was answered at 2.03 s while
 * concurrent wrong passwords came back at 2.31 s; with a quarter's headroom alone, refusals seen
 * at up to 1.5 s set 1.88 s while later ones came back at 2.38 s. The estimate keeps a quarter's
 * headroom over the slowest of the last FAILURE_WINDOW refusals, and at least a second once that
 * is a second or more, and it moves only when it must: up when a refusal took
 * longer than the estimate itself, down once no remembered refusal needs it. Refusals within
 * the backend's usual range leave it where it is, so attempts in flight together share it.
 */
export class FailureLatency {
  private readonly samples: number[] = [];
  private current = 0;

  record(ms: number): void {
    this.samples.push(ms);
    if (this.samples.length > FAILURE_WINDOW) this.samples.shift();
    const slowest = Math.max(...this.samples);
    const needed = slowest >= SECONDS_QUANTUM_MS
      ? Math.max(slowest * FAILURE_HEADROOM, slowest + SECONDS_QUANTUM_MS)
      : slowest * FAILURE_HEADROOM;
    if (ms > this.current || needed < this.current) this.current = needed;
  }

  estimate(): number {
    return this.current;
  }
}
