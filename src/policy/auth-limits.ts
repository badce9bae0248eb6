/**
 * Login failure limits: per client (IPv6 by prefix) and per user within `window`, then a
 * lockout; a uniform delay before every failed login's -ERR; and the owner's allowance.
 *
 * Charge before you act: `charge` consumes an attempt's points atomically before its credentials
 * may go to the backend, and the counts decide; the ticket is then settled as `succeeded`
 * (points given back), `failed` (kept; the limit starts the lockout) or `abandoned` (nothing was
 * sent). `recordFailure` counts failures refused before the backend (bad characters, long names).
 *
 * No enumeration, no lockout oracle: `check` only tells the session the internal reason.
 * The session answers a refused login exactly as a wrong password (failureVerdict gives
 * the same reply for every reason, failureDelay the same delay), and audits the reason.
 *
 * The owner's allowance: a (user, client) pair that logged in successfully within
 * `knownGoodForMs` (default 24 days) is "known good" (a login renews the flag once less than
 * half of the period is left on it, so at least 12 days after the last login by default). While the user is locked because
 * of failures from elsewhere, a known-good pair may still try, under its own counter
 * (maxFailuresPerUser within window for that pair). So an attacker can lock a user
 * everywhere except where the owner really logs in from. An IP lockout applies to all.
 *
 * Retrying the same wrong password counts once (RecentBadPasswords). Trusted networks
 * are never counted, delayed or locked.
 */
import { hash } from 'node:crypto';
import type { PolicyConfig } from '../config/schema.ts';
import { silentLogger, type Logger } from '../util/logger.ts';
import { andThen, type MaybePromise } from '../util/maybe-async.ts';
import { memoize } from '../util/memo.ts';
import type { CounterOp, CounterStore } from './counter-store.ts';
import { clientKey, type NetworkSet } from './networks.ts';
import { RecentBadPasswords } from './recent-bad-passwords.ts';
import { normalizeUserName } from './user-pattern.ts';
import { deny, type DenyVerdict } from './verdict.ts';

export type AuthCheck = { allowed: true } | { allowed: false; reason: 'ip-locked' | 'user-locked' };

/** Why a login failed; all of them look the same to the client. */
export type LoginFailureReason =
  | 'bad-credentials' | 'ip-locked' | 'user-locked' | 'bad-credential-chars' | 'name-too-long' | 'client-gone';

/**
 * An attempt paid for before its credentials go to the backend (see `charge`). Settle it
 * exactly once: `succeeded`, `failed`, or `abandoned` when nothing was sent after all.
 */
export interface AuthTicket {
  readonly ip: string;
  /** The points this attempt consumed; null when it was not charged (trusted, or a wrong password already counted). */
  readonly counts: { readonly ip: number; readonly user: number; readonly pair: number } | null;
  /** Milliseconds left on the pair's known-good flag when the attempt was charged (0: not known good). */
  readonly goodForMs: number;
  /** Hashed on failure so the same wrong password counts once; never logged. */
  readonly password: string | null;
  readonly keys: Keys;
}

export type ChargeResult = { allowed: true; ticket: AuthTicket } | { allowed: false; reason: 'ip-locked' | 'user-locked' };

type TryCharge = { allowed: true; ticket: AuthTicket } | { allowed: false; reason: 'ip-locked' | 'user-locked'; locked: boolean };

export interface AuthLimiterOptions {
  now?: () => number;
  log?: Logger;
  /** How long a successful (user, client) pair keeps its own allowance (default 24 days). */
  knownGoodForMs?: number;
  /**
   * How long an attempt refused only because other attempts are still in flight (their points
   * are charged, no lockout is set) waits for them to settle before it is refused (default 3 s).
   * 0: refuse at once.
   */
  inFlightWaitMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

/** A waiting attempt looks again after this long, plus up to as much again at random. */
const IN_FLIGHT_POLL_MS = 40;

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
  readonly #inFlightWaitMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
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
    this.#inFlightWaitMs = opts.inFlightWaitMs ?? 3_000;
    this.#sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.#badPasswords = new RecentBadPasswords(cfg.window, this.#now);
  }

  normalizeUser(user: string): string {
    return normalizeUserName(user);
  }

  /**
   * Is this (client, user) locked right now? A read-only view for tools and tests: it never
   * decides whether an attempt reaches the backend (a look-up then a later count is raceable;
   * `charge` decides). Always does the same store look-ups, locked or not.
   */
  async check(ip: string, user: string): Promise<AuthCheck> {
    if (this.#trusted.contains(ip)) return { allowed: true };
    const k = this.#keys(ip, user);
    const [ipLock, userLock, pairLock, good] = await this.#store.batch([
      { op: 'blockedFor', key: k.ip },
      { op: 'blockedFor', key: k.user },
      { op: 'blockedFor', key: k.pair },
      { op: 'blockedFor', key: k.good },
    ]) as [number, number, number, number];
    if (ipLock > 0) return { allowed: false, reason: 'ip-locked' };
    if (pairLock > 0) return { allowed: false, reason: 'user-locked' };
    if (userLock > 0 && good === 0) return { allowed: false, reason: 'user-locked' };
    return { allowed: true };
  }

  /**
   * Charge before you act: the attempt's points are consumed atomically (memory, cluster IPC
   * and Redis stores alike) before the credentials may go to the backend, and the counts that
   * come back decide. So N parallel sessions cannot all pass a read-only look-up and then all
   * reach the backend: at most the limit do, the rest are refused like a wrong password and
   * their points given back (a refused attempt costs nothing, as a locked one always did).
   * A wrong password this user already failed with in the window is not charged again (it
   * says nothing new); its locks are still read. `user` is the name the backend will see.
   */
  charge(ip: string, user: string, password: string | null): MaybePromise<ChargeResult> {
    // Over a limit only because attempts still in flight hold their points (no lockout set):
    // those may yet succeed and give them back, so this one waits for them to settle rather
    // than refuse a right password (50 mail clients behind one NAT logging in at once). The
    // limit on what reaches the backend is the same; if they fail, their lockout refuses it.
    const deadline = this.#now() + this.#inFlightWaitMs;
    const attempt = (): MaybePromise<ChargeResult> => andThen(this.#tryCharge(ip, user, password), (r) => {
      if (r.allowed) return r;
      if (r.locked || this.#now() >= deadline) return { allowed: false, reason: r.reason };
      return this.#sleep(IN_FLIGHT_POLL_MS * (1 + Math.random())).then(attempt);
    });
    return attempt();
  }

  /**
   * One try at charging. With the memory store it runs to its end at once (the flag read, the
   * counts and a refund in one go, nothing in between); with Redis or over IPC, step by step.
   */
  #tryCharge(ip: string, user: string, password: string | null): MaybePromise<TryCharge> {
    const k = this.#keys(ip, user);
    if (this.#trusted.contains(ip)) return { allowed: true, ticket: { ip, counts: null, goodForMs: 0, password: null, keys: k } };
    return andThen(this.#run([{ op: 'blockedFor', key: k.good }]), ([goodForMs]) => this.#chargeCounts(ip, k, goodForMs!, password));
  }

  /** The locks read and the attempt counted in one batch (the memory store and the cluster primary's run it with nothing in between). */
  #chargeCounts(ip: string, k: Keys, goodForMs: number, password: string | null): MaybePromise<TryCharge> {
    const good = goodForMs > 0;
    const repeat = password !== null && this.#badPasswords.has(k.normalizedUser, password);
    const { window } = this.#cfg;
    const ops: CounterOp[] = [
      { op: 'blockedFor', key: k.ip },
      { op: 'blockedFor', key: k.user },
      { op: 'blockedFor', key: k.pair },
    ];
    if (!repeat) {
      ops.push({ op: 'consume', key: k.ip, windowMs: window, points: 1 }, { op: 'consume', key: k.user, windowMs: window, points: 1 });
      if (good) ops.push({ op: 'consume', key: k.pair, windowMs: window, points: 1 });
    }
    return andThen(this.#run(ops), (r): MaybePromise<TryCharge> => {
      const counts = repeat ? null : { ip: r[3]!, user: r[4]!, pair: good ? r[5]! : 0 };
      const ticket: AuthTicket = { ip, counts, goodForMs, password, keys: k };
      const refusal = this.#refusal(r[0]!, r[1]!, r[2]!, counts, good);
      if (refusal === null) return { allowed: true, ticket };
      return andThen(this.#refund(ticket), () => ({ allowed: false as const, ...refusal }));
    });
  }

  /** Why an attempt with these locks and counts is refused (and whether a lock, rather than a count, says so), or null. */
  #refusal(
    ipLock: number, userLock: number, pairLock: number, counts: AuthTicket['counts'], good: boolean,
  ): { reason: 'ip-locked' | 'user-locked'; locked: boolean } | null {
    // lockout: 0 means count and delay, never lock: then no count refuses either.
    const locking = this.#cfg.lockout > 0;
    const over = (n: number | undefined, max: number) => locking && n !== undefined && n > max;
    if (ipLock > 0 || over(counts?.ip, this.#cfg.maxFailuresPerIp)) return { reason: 'ip-locked', locked: ipLock > 0 };
    if (pairLock > 0 || (good && over(counts?.pair, this.#cfg.maxFailuresPerUser))) return { reason: 'user-locked', locked: pairLock > 0 };
    if (!good && (userLock > 0 || over(counts?.user, this.#cfg.maxFailuresPerUser))) return { reason: 'user-locked', locked: userLock > 0 };
    return null;
  }

  /** A batch through the store: answered at once where the store can (memory), else its promise. */
  #run(ops: readonly CounterOp[]): MaybePromise<number[]> {
    return this.#store.batchNow?.(ops) ?? this.#store.batch(ops);
  }

  /**
   * The backend accepted: the charge is given back, the pair becomes known good and its failures
   * are cleared. A pair still known good for more than half of `knownGoodForMs` keeps its flag
   * as it is: re-setting it on every login was a store call (a Redis round trip) and a re-armed
   * timer per session, and the pair stays known good for at least half the period after its last login.
   */
  succeeded(t: AuthTicket): MaybePromise<void> {
    if (this.#trusted.contains(t.ip)) return;
    const fresh = t.goodForMs > this.#knownGoodMs / 2;
    const ops: CounterOp[] = t.counts === null ? [] : this.#refunds(t);
    if (!fresh) ops.push({ op: 'block', key: t.keys.good, ms: this.#knownGoodMs });
    ops.push({ op: 'reset', key: t.keys.pair });
    return andThen(this.#run(ops), () => undefined);
  }

  /**
   * The backend refused (or the client left before its answer): the charge stays, the
   * password is remembered (hashed), and a count at the limit starts the lockout.
   */
  async failed(t: AuthTicket): Promise<{ lockout: 'ip' | 'user' | null }> {
    if (t.password !== null) this.#badPasswords.remember(t.keys.normalizedUser, t.password);
    const c = t.counts;
    if (c === null || this.#cfg.lockout <= 0) return { lockout: null };
    const { maxFailuresPerIp, maxFailuresPerUser } = this.#cfg;
    const locks: Array<Promise<void>> = [];
    let lockout: 'ip' | 'user' | null = null;
    if (c.ip >= maxFailuresPerIp) {
      locks.push(this.#lock(t.keys.ip, 'ip', t.keys.ip, maxFailuresPerIp));
      lockout = 'ip';
    }
    if (c.user >= maxFailuresPerUser) {
      locks.push(this.#lock(t.keys.user, 'user', t.keys.ip, maxFailuresPerUser));
      lockout ??= 'user';
    }
    if (t.goodForMs > 0 && c.pair >= maxFailuresPerUser) {
      locks.push(this.#lock(t.keys.pair, 'pair', t.keys.ip, maxFailuresPerUser));
      lockout ??= 'user';
    }
    await Promise.all(locks);
    return { lockout };
  }

  /** Nothing was sent to the backend after all (the client left first): the charge is given back. */
  async abandoned(t: AuthTicket): Promise<void> {
    await this.#refund(t);
  }

  #refund(t: AuthTicket): MaybePromise<void> {
    if (t.counts === null) return;
    const ops = this.#refunds(t);
    if (t.goodForMs > 0) ops.push({ op: 'refund', key: t.keys.pair, windowMs: this.#cfg.window, points: 1 });
    return andThen(this.#run(ops), () => undefined);
  }

  /** Giving back a charged attempt's client and user points. */
  #refunds(t: AuthTicket): CounterOp[] {
    const w = this.#cfg.window;
    return [{ op: 'refund', key: t.keys.ip, windowMs: w, points: 1 }, { op: 'refund', key: t.keys.user, windowMs: w, points: 1 }];
  }

  /**
   * Call for a login the backend rejected. `password` is what the client sent (null for
   * SASL mechanisms whose secret we can't compare); it is only hashed, never kept.
   * `counted` is false when the same wrong password was already counted in the window.
   */
  async recordFailure(
    ip: string,
    user: string | null,
    password: string | null,
  ): Promise<{ counted: boolean; lockout: 'ip' | 'user' | null }> {
    if (this.#trusted.contains(ip)) return { counted: false, lockout: null };
    if (user === null) return this.#recordIpFailure(ip);
    const k = this.#keys(ip, user);
    if (password !== null && this.#badPasswords.seenBefore(k.normalizedUser, password)) {
      return { counted: false, lockout: null };
    }
    const good = (await this.#store.blockedFor(k.good)) > 0;
    const { window, maxFailuresPerIp, maxFailuresPerUser } = this.#cfg;
    // lockout: 0 means count and delay, never lock (a 0-length block is not a valid store call).
    const locking = this.#cfg.lockout > 0;
    const ops: CounterOp[] = [{ op: 'consume', key: k.ip, windowMs: window, points: 1 }, { op: 'consume', key: k.user, windowMs: window, points: 1 }];
    if (good) ops.push({ op: 'consume', key: k.pair, windowMs: window, points: 1 });
    const [ipCount, userCount, pairCount = 0] = await this.#store.batch(ops) as [number, number, number?];
    // `>=` rather than "just crossed": a failure while still over the limit in the same
    // window locks again, so the limit holds for the whole window.
    const locks: Array<Promise<void>> = [];
    let lockout: 'ip' | 'user' | null = null;
    if (locking && ipCount >= maxFailuresPerIp) {
      locks.push(this.#lock(k.ip, 'ip', k.ip, maxFailuresPerIp));
      lockout = 'ip';
    }
    if (locking && userCount >= maxFailuresPerUser) {
      locks.push(this.#lock(k.user, 'user', k.ip, maxFailuresPerUser));
      lockout ??= 'user';
    }
    if (locking && good && pairCount >= maxFailuresPerUser) {
      locks.push(this.#lock(k.pair, 'pair', k.ip, maxFailuresPerUser));
      lockout ??= 'user';
    }
    await Promise.all(locks);
    return { counted: true, lockout };
  }

  /** A failure that names no user we may key on (an over-long name): only the source pays. */
  async #recordIpFailure(ip: string): Promise<{ counted: boolean; lockout: 'ip' | null }> {
    const key = `auth:ip:${clientKey(ip, this.#cfg.ipv6Prefix)}`;
    const n = await this.#store.consume(key, this.#cfg.window);
    if (this.#cfg.lockout <= 0 || n < this.#cfg.maxFailuresPerIp) return { counted: true, lockout: null };
    await this.#lock(key, 'ip', key, this.#cfg.maxFailuresPerIp);
    return { counted: true, lockout: 'ip' };
  }

  /** Marks (user, client) known good and clears that pair's own failures (what `succeeded` does, without a ticket). */
  async recordSuccess(ip: string, user: string): Promise<void> {
    if (this.#trusted.contains(ip)) return;
    const k = this.#keys(ip, user);
    // The store's timed flag marks the pair, so every gateway sharing the store knows it.
    await this.#store.batch([{ op: 'block', key: k.good, ms: this.#knownGoodMs }, { op: 'reset', key: k.pair }]);
  }

  /** The delay before a failed login's -ERR, measured from the command's arrival. */
  failureDelay(ip: string): number {
    return this.#trusted.contains(ip) ? 0 : this.#cfg.failureDelay;
  }

  /**
   * What is left of the failure schedule for a command that arrived at `arrivedAt` (same clock
   * as `now`): failureDelay, or `backendFailureMs` (a high estimate of the backend's own refusal
   * time) when longer, so that every failed login, whatever its reason, is answered at one time.
   */
  delayRemaining(ip: string, arrivedAt: number, backendFailureMs = 0): number {
    if (this.#trusted.contains(ip)) return 0;
    return Math.max(0, arrivedAt + Math.max(this.failureDelay(ip), backendFailureMs) - this.#now());
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

  /**
   * Blocks `key` for `lockout`, and sets its count to one below the limit: once the lockout
   * ends one more attempt may be charged, and its failure locks again (while a burst of
   * parallel ones is refused), so the limit holds for the whole window as before.
   */
  async #lock(key: string, scope: 'ip' | 'user' | 'pair', ipKey: string, max: number): Promise<void> {
    const ms = this.#cfg.lockout;
    await this.#store.block(key, ms);
    await this.#store.setCount(key, this.#cfg.window, Math.max(0, max - 1));
    this.#locks.set(key, this.#now() + ms);
    // No user name here: the audit record of the attempt carries it (pseudonymised if configured).
    this.#log.info({ event: 'auth-lockout', scope, client: ipKey, ms }, 'login lockout');
  }

  #keys(ip: string, user: string): Keys {
    const { normalizedUser, u } = userKey(user);
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

/**
 * A login name's normalised form and its key part, remembered per name as given: NFKC and a
 * SHA-256 per login came to ~10 µs of a session's CPU, for the same few names polled over and over.
 */
const userKey = memoize((user: string): { normalizedUser: string; u: string } => {
  const normalizedUser = normalizeUserName(user);
  // Unkeyed hash: bounded key length, no user names in Redis, same key in every gateway.
  return { normalizedUser, u: hash('sha256', normalizedUser, 'base64url').slice(0, 22) };
});
