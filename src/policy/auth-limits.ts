/**
 * Login failure limits: per client (IPv6 by prefix) and per user within `window`, then a
 * lockout; a uniform delay before every failed login's -ERR; and the owner's allowance.
 *
 * No enumeration, no lockout oracle: `check` only tells the session the internal reason.
 * The session answers a refused login exactly as a wrong password (failureVerdict gives
 * the same reply for every reason, failureDelay the same delay), and audits the reason.
 *
 * The owner's allowance: a (user, client) pair that logged in successfully within
 * `knownGoodForMs` (default 24 days) is "known good". While the user is locked because
 * of failures from elsewhere, a known-good pair may still try, under its own counter
 * (maxFailuresPerUser within window for that pair). So an attacker can lock a user
 * everywhere except where the owner really logs in from. An IP lockout applies to all.
 *
 * Retrying the same wrong password counts once (RecentBadPasswords). Trusted networks
 * are never counted, delayed or locked.
 */
import { createHash } from 'node:crypto';
import type { PolicyConfig } from '../config/schema.ts';
import { silentLogger, type Logger } from '../util/logger.ts';
import type { CounterStore } from './counter-store.ts';
import { clientKey, type NetworkSet } from './networks.ts';
import { RecentBadPasswords } from './recent-bad-passwords.ts';
import { normalizeUserName } from './user-pattern.ts';
import { deny, type DenyVerdict } from './verdict.ts';

export type AuthCheck = { allowed: true } | { allowed: false; reason: 'ip-locked' | 'user-locked' };

/** Why a login failed; all of them look the same to the client. */
export type LoginFailureReason = 'bad-credentials' | 'ip-locked' | 'user-locked' | 'bad-credential-chars';

export interface AuthLimiterOptions {
  now?: () => number;
  log?: Logger;
  /** How long a successful (user, client) pair keeps its own allowance (default 24 days). */
  knownGoodForMs?: number;
}

/** 24 days: under the 2^31 ms a timer can hold (see counter-store.ts). */
export const DEFAULT_KNOWN_GOOD_MS = 24 * 24 * 60 * 60_000;

interface Keys {
  readonly ip: string;
  readonly user: string;
  readonly pair: string;
  readonly good: string;
  readonly normalizedUser: string;
}

export class AuthLimiter {
  readonly #cfg: PolicyConfig['auth'];
  readonly #trusted: NetworkSet;
  readonly #store: CounterStore;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #knownGoodMs: number;
  readonly #badPasswords: RecentBadPasswords;
  /** Lockouts this process set (key → expiry), for the metrics gauge. */
  readonly #locks = new Map<string, number>();

  constructor(cfg: PolicyConfig['auth'], trusted: NetworkSet, store: CounterStore, opts: AuthLimiterOptions = {}) {
    this.#cfg = cfg;
    this.#trusted = trusted;
    this.#store = store;
    this.#now = opts.now ?? Date.now;
    this.#log = opts.log ?? silentLogger;
    this.#knownGoodMs = opts.knownGoodForMs ?? DEFAULT_KNOWN_GOOD_MS;
    this.#badPasswords = new RecentBadPasswords(cfg.window, this.#now);
  }

  normalizeUser(user: string): string {
    return normalizeUserName(user);
  }

  /**
   * May this login be tried? Always does the same store look-ups, locked or not, so its
   * own duration says nothing either (the failure delay covers it anyway).
   */
  async check(ip: string, user: string): Promise<AuthCheck> {
    if (this.#trusted.contains(ip)) return { allowed: true };
    const k = this.#keys(ip, user);
    const [ipLock, userLock, pairLock, good] = await Promise.all([
      this.#store.blockedFor(k.ip),
      this.#store.blockedFor(k.user),
      this.#store.blockedFor(k.pair),
      this.#store.blockedFor(k.good),
    ]);
    if (ipLock > 0) return { allowed: false, reason: 'ip-locked' };
    if (pairLock > 0) return { allowed: false, reason: 'user-locked' };
    if (userLock > 0 && good === 0) return { allowed: false, reason: 'user-locked' };
    return { allowed: true };
  }

  /**
   * Call for a login the backend rejected. `password` is what the client sent (null for
   * SASL mechanisms whose secret we can't compare); it is only hashed, never kept.
   * `counted` is false when the same wrong password was already counted in the window.
   */
  async recordFailure(
    ip: string,
    user: string,
    password: string | null,
  ): Promise<{ counted: boolean; lockout: 'ip' | 'user' | null }> {
    if (this.#trusted.contains(ip)) return { counted: false, lockout: null };
    const k = this.#keys(ip, user);
    if (password !== null && this.#badPasswords.seenBefore(k.normalizedUser, password)) {
      return { counted: false, lockout: null };
    }
    const good = (await this.#store.blockedFor(k.good)) > 0;
    const { window, maxFailuresPerIp, maxFailuresPerUser } = this.#cfg;
    // lockout: 0 means count and delay, never lock (a 0-length block is not a valid store call).
    const locking = this.#cfg.lockout > 0;
    const [ipCount, userCount, pairCount] = await Promise.all([
      this.#store.consume(k.ip, window),
      this.#store.consume(k.user, window),
      good ? this.#store.consume(k.pair, window) : Promise.resolve(0),
    ]);
    // `>=` rather than "just crossed": a failure while still over the limit in the same
    // window locks again, so the limit holds for the whole window.
    const locks: Array<Promise<void>> = [];
    let lockout: 'ip' | 'user' | null = null;
    if (locking && ipCount >= maxFailuresPerIp) {
      locks.push(this.#lock(k.ip, 'ip', k.ip));
      lockout = 'ip';
    }
    if (locking && userCount >= maxFailuresPerUser) {
      locks.push(this.#lock(k.user, 'user', k.ip));
      lockout ??= 'user';
    }
    if (locking && good && pairCount >= maxFailuresPerUser) {
      locks.push(this.#lock(k.pair, 'pair', k.ip));
      lockout ??= 'user';
    }
    await Promise.all(locks);
    return { counted: true, lockout };
  }

  /** Marks (user, client) known good and clears that pair's own failures. No delay is added. */
  async recordSuccess(ip: string, user: string): Promise<void> {
    if (this.#trusted.contains(ip)) return;
    const k = this.#keys(ip, user);
    // The store's timed flag marks the pair, so every gateway sharing the store knows it.
    await Promise.all([this.#store.block(k.good, this.#knownGoodMs), this.#store.reset(k.pair)]);
  }

  /** The delay before a failed login's -ERR, measured from the command's arrival. */
  failureDelay(ip: string): number {
    return this.#trusted.contains(ip) ? 0 : this.#cfg.failureDelay;
  }

  /** What is left of failureDelay for a command that arrived at `arrivedAt` (same clock as `now`). */
  delayRemaining(ip: string, arrivedAt: number): number {
    return Math.max(0, arrivedAt + this.failureDelay(ip) - this.#now());
  }

  /**
   * The reply for a failed login, whatever the reason: only the reason (for the audit)
   * differs. The attempt that reaches maxAttemptsPerSession (0 = no cap) gets the same
   * bytes and then closes the session, so even the cap says nothing about why.
   */
  failureVerdict(reason: LoginFailureReason, failuresInSession: number): DenyVerdict {
    const cap = this.#cfg.maxAttemptsPerSession;
    if (cap > 0 && failuresInSession >= cap) return deny(reason, 'authFailed', true);
    return deny(reason, 'authFailed');
  }

  /** Lockouts set by this process that are still running (other gateways' are not seen). */
  activeLockouts(): number {
    const now = this.#now();
    for (const [key, until] of this.#locks) if (until <= now) this.#locks.delete(key);
    return this.#locks.size;
  }

  async #lock(key: string, scope: 'ip' | 'user' | 'pair', ipKey: string): Promise<void> {
    const ms = this.#cfg.lockout;
    await this.#store.block(key, ms);
    this.#locks.set(key, this.#now() + ms);
    // No user name here: the audit record of the attempt carries it (pseudonymised if configured).
    this.#log.info({ event: 'auth-lockout', scope, client: ipKey, ms }, 'login lockout');
  }

  #keys(ip: string, user: string): Keys {
    const normalizedUser = normalizeUserName(user);
    // Unkeyed hash: bounded key length, no user names in Redis, same key in every gateway.
    const u = createHash('sha256').update(normalizedUser).digest('base64url').slice(0, 22);
    const c = clientKey(ip, this.#cfg.ipv6Prefix);
    return {
      ip: `auth:ip:${c}`,
      user: `auth:user:${u}`,
      pair: `auth:pair:${u}:${c}`,
      good: `auth:good:${u}:${c}`,
      normalizedUser,
    };
  }
}
