/**
 * What the primary and its workers say to each other (see ipc.ts for the envelope).
 *
 * worker → primary requests: `config`, `store-batch` (a `CounterStore.batch`), `conn-acquire`, `audit-flush`;
 *   notes: `ready`, `conn-release`, `audit`.
 * primary → worker requests: `reload`, `metrics`, `sessions`, `kick`, `health`.
 */
import type { AuditFields } from '../audit/record.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { ConnectionRefusal } from '../policy/connection-limits.ts';

export interface ConfigReply {
  readonly config: GatewayConfig;
  /** Bumped by every accepted SIGHUP; lets the primary catch up a worker that started during one. */
  readonly generation: number;
}

/** The limits travel with each request, so the primary's counts need no config of their own. */
export interface ConnAcquire {
  readonly slot: number;
  readonly key: string;
  readonly trusted: boolean;
  readonly maxPerIp: number;
  readonly maxTotal: number;
}

export type ConnAcquireReply = { ok: true } | { ok: false; reason: Exclude<ConnectionRefusal, 'conn-rate'> };

export interface ConnRelease {
  readonly slot: number;
}

export interface AuditNote {
  readonly fields: AuditFields;
}

export interface ReadyNote {
  readonly listeners: Record<string, { host: string; port: number }>;
}

export interface ReloadRequest {
  readonly config: GatewayConfig;
  readonly generation: number;
}

export type ReloadReply = { ok: true } | { ok: false; error: string };

export interface HealthReply {
  readonly ok: boolean;
  readonly details: Record<string, unknown>;
}
