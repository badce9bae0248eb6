/**
 * Remembers which (user, wrong password) pairs failed recently, so a phone retrying an
 * old password counts as one failure, not one per poll. Only keyed hashes are kept:
 * HMAC-SHA256 with a random key made per process and never stored or logged, so no
 * password outlives the call and the hashes are worthless outside this process (two
 * gateways sharing Redis each count a retried password once). Bounded in size and age.
 */
import { createHmac, randomBytes } from 'node:crypto';

export class RecentBadPasswords {
  readonly #key = randomBytes(32);
  /** hash → expiry; Map order is insertion order, and every entry lives windowMs, so the oldest is first. */
  readonly #entries = new Map<string, number>();
  readonly #windowMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;

  constructor(windowMs: number, now: () => number, maxEntries = 100_000) {
    this.#windowMs = windowMs;
    this.#now = now;
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * True when this (user, password) already failed within the window (then it is not
   * recorded again: the window runs from the first failure); otherwise records it.
   */
  seenBefore(normalizedUser: string, password: string): boolean {
    if (this.has(normalizedUser, password)) return true;
    this.remember(normalizedUser, password);
    return false;
  }

  /** True when this (user, password) failed within the window; records nothing. */
  has(normalizedUser: string, password: string): boolean {
    const now = this.#now();
    this.#prune(now);
    // Nothing recorded (the usual case: no recent failures): no HMAC to compute per login.
    if (this.#entries.size === 0) return false;
    const expires = this.#entries.get(this.#hash(normalizedUser, password));
    return expires !== undefined && expires > now;
  }

  /** Records a failed (user, password); a pair already recorded keeps its first time. */
  remember(normalizedUser: string, password: string): void {
    const now = this.#now();
    this.#prune(now);
    const h = this.#hash(normalizedUser, password);
    const expires = this.#entries.get(h);
    if (expires !== undefined && expires > now) return;
    // Re-inserting moves the key to the end, keeping the oldest-first order.
    this.#entries.delete(h);
    this.#entries.set(h, now + this.#windowMs);
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  #hash(normalizedUser: string, password: string): string {
    return createHmac('sha256', this.#key).update(normalizedUser).update('\0').update(password).digest('base64url');
  }

  #prune(now: number): void {
    for (const [h, expires] of this.#entries) {
      if (expires > now) return;
      this.#entries.delete(h);
    }
  }
}
