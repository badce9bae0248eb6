/**
 * Everything one session needs from the gateway, fixed when the session starts:
 * a reload builds a new set for new sessions while live ones keep theirs.
 */
import type { AuditSink } from '../audit/sink.ts';
import type { SignalDetector } from '../audit/signals.ts';
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
  connect(user: string | null, client: ClientAddress, signal: AbortSignal): Promise<BackendLease>;
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

/** Keeps the recent maximum time the backend took to refuse a login. */
export class FailureLatency {
  private readonly samples: number[] = [];
  record(ms: number): void {
    this.samples.push(ms);
    if (this.samples.length > 16) this.samples.shift();
  }
  estimate(): number {
    return this.samples.length === 0 ? 0 : Math.max(...this.samples);
  }
}
