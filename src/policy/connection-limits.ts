/**
 * Connection limits (policy.connections): live connections per client and in total,
 * counted exactly in this process, and new connections per client per `rateWindow`,
 * counted in the shared store. The counts have a synchronous path so a refused client
 * costs no TLS handshake. Clients are keyed like auth limits (IPv6 by prefix).
 * Trusted networks are exempt from the per-client limits and the rate, not from maxTotal.
 * A limit of 0 means no limit.
 */
import type { PolicyConfig } from '../config/schema.ts';
import { silentLogger, type Logger } from '../util/logger.ts';
import type { MaybePromise } from '../util/maybe-async.ts';
import type { CounterStore } from './counter-store.ts';
import { clientKey, type NetworkSet } from './networks.ts';

export type ConnectionRefusal = 'max-per-ip' | 'max-total' | 'conn-rate';
export type Acquired = { ok: true; release: () => void };
export type Acquire = Acquired | { ok: false; reason: ConnectionRefusal };

export class ConnectionLimiter {
  readonly #cfg: PolicyConfig['connections'];
  readonly #trusted: NetworkSet;
  readonly #store: CounterStore;
  readonly #ipv6Prefix: number;
  readonly #log: Logger;
  /** Live counts; shared with the limiter a reload replaces, whose sessions are still open. */
  #counts: { readonly perClient: Map<string, number>; total: number } = { perClient: new Map(), total: 0 };

  constructor(
    cfg: PolicyConfig['connections'],
    trusted: NetworkSet,
    store: CounterStore,
    ipv6Prefix: number,
    opts: { log?: Logger } = {},
  ) {
    this.#cfg = cfg;
    this.#trusted = trusted;
    this.#store = store;
    this.#ipv6Prefix = ipv6Prefix;
    this.#log = opts.log ?? silentLogger;
  }

  /**
   * Call before first use when this limiter replaces `previous` (a config reload): the
   * connections still open under the old one keep counting against the new limits.
   */
  continueFrom(previous: ConnectionLimiter): void {
    this.#counts = previous.#counts;
  }

  /**
   * The counts and then the rate; a rate refusal gives its slot back. Answers at once when there
   * is no rate to ask the store about (the default): no promise per connection for nothing.
   */
  acquire(ip: string): MaybePromise<Acquire> {
    const slot = this.tryAcquireSync(ip);
    if (!slot.ok || !this.#rated(ip)) return slot;
    return this.#withinRate(ip).then((ok): Acquire => {
      if (ok) return slot;
      slot.release();
      return { ok: false, reason: 'conn-rate' };
    });
  }

  /** Only the live counts, synchronously: call before any TLS work, then checkRate. */
  tryAcquireSync(ip: string): { ok: true; release: () => void } | { ok: false; reason: 'max-per-ip' | 'max-total' } {
    const { maxPerIp, maxTotal } = this.#cfg;
    const trusted = this.#trusted.contains(ip);
    const key = clientKey(ip, this.#ipv6Prefix);
    const mine = this.#counts.perClient.get(key) ?? 0;
    if (!trusted && maxPerIp > 0 && mine >= maxPerIp) return { ok: false, reason: 'max-per-ip' };
    if (maxTotal > 0 && this.#counts.total >= maxTotal) return { ok: false, reason: 'max-total' };
    this.#counts.perClient.set(key, mine + 1);
    this.#counts.total += 1;
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.#counts.total -= 1;
        const left = (this.#counts.perClient.get(key) ?? 1) - 1;
        if (left > 0) this.#counts.perClient.set(key, left);
        else this.#counts.perClient.delete(key);
      },
    };
  }

  /**
   * Counts this new connection against ratePerIp per rateWindow; false when over. If the
   * store itself fails, the connection is let through: the live counts still bound it.
   */
  checkRate(ip: string): Promise<boolean> {
    return this.#rated(ip) ? this.#withinRate(ip) : Promise.resolve(true);
  }

  /** Whether new connections from `ip` count against a rate (one is set, and `ip` is not trusted). */
  #rated(ip: string): boolean {
    return this.#cfg.ratePerIp > 0 && !this.#trusted.contains(ip);
  }

  async #withinRate(ip: string): Promise<boolean> {
    try {
      const n = await this.#store.consume(`conn:${clientKey(ip, this.#ipv6Prefix)}`, this.#cfg.rateWindow);
      return n <= this.#cfg.ratePerIp;
    } catch (err) {
      this.#log.warn({ event: 'conn-rate-unavailable', err: (err as Error).message }, 'connection rate not checked');
      return true;
    }
  }

  active(): number {
    return this.#counts.total;
  }

  activeFor(ip: string): number {
    return this.#counts.perClient.get(clientKey(ip, this.#ipv6Prefix)) ?? 0;
  }
}
