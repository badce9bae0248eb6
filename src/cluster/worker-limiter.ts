/**
 * A worker's connection limits: the live per-client and total counts are the primary's
 * (shared-counters.ts), so `maxPerIp` and `maxTotal` hold across all workers. The local
 * counts of ConnectionLimiter are kept as well: they are this worker's share (never above
 * the shared count) and the fallback when the primary does not answer in time. The rate
 * goes through the store as in a single process.
 *
 * Slot ids are chosen here, so a slot whose request timed out is released by id: the
 * release follows the request on the same ordered channel, and nothing leaks even when
 * the primary grants it late.
 */
import type { PolicyConfig } from '../config/schema.ts';
import type { CounterStore } from '../policy/counter-store.ts';
import { ConnectionLimiter, type Acquire } from '../policy/connection-limits.ts';
import { clientKey, type NetworkSet } from '../policy/networks.ts';
import type { Logger } from '../util/logger.ts';
import type { IpcPeer } from './ipc.ts';
import type { ConnAcquire, ConnAcquireReply } from './messages.ts';

export const DEFAULT_ACQUIRE_TIMEOUT_MS = 1_000;

export class ClusterConnectionLimiter extends ConnectionLimiter {
  readonly #cfg: PolicyConfig['connections'];
  readonly #trusted: NetworkSet;
  readonly #ipv6Prefix: number;
  readonly #peer: IpcPeer;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  /** Per process, not per limiter: a reload builds a new limiter while the old one's slots are still held. */
  static #nextSlot = 1;

  constructor(
    cfg: PolicyConfig['connections'],
    trusted: NetworkSet,
    store: CounterStore,
    ipv6Prefix: number,
    peer: IpcPeer,
    opts: { log: Logger; timeoutMs?: number },
  ) {
    super(cfg, trusted, store, ipv6Prefix, { log: opts.log });
    this.#cfg = cfg;
    this.#trusted = trusted;
    this.#ipv6Prefix = ipv6Prefix;
    this.#peer = peer;
    this.#log = opts.log;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS;
  }

  override async acquire(ip: string): Promise<Acquire> {
    const slot = ClusterConnectionLimiter.#nextSlot++;
    const req: ConnAcquire = {
      slot,
      key: clientKey(ip, this.#ipv6Prefix),
      trusted: this.#trusted.contains(ip),
      maxPerIp: this.#cfg.maxPerIp,
      maxTotal: this.#cfg.maxTotal,
    };
    let shared: boolean;
    try {
      const reply = await this.#peer.request<ConnAcquireReply>('conn-acquire', req, this.#timeoutMs);
      if (!reply.ok) return reply;
      shared = true;
    } catch (err) {
      this.#peer.notify('conn-release', { slot });
      this.#log.warn({ event: 'cluster-limits-down', err: (err as Error).message }, 'primary did not answer: connection counted locally only');
      shared = false;
    }
    const local = this.tryAcquireSync(ip);
    if (!local.ok) {
      if (shared) this.#peer.notify('conn-release', { slot });
      return local;
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      local.release();
      if (shared) this.#peer.notify('conn-release', { slot });
    };
    if (!(await this.checkRate(ip))) {
      release();
      return { ok: false, reason: 'conn-rate' };
    }
    return { ok: true, release };
  }
}
