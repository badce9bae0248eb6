/**
 * Behavioural signals worth a look: a user logging in from a network never seen for them, a
 * user downloading a lot, many users from one address (password spraying, a shared account
 * list), a session deleting many messages. Each comes back as data; the caller writes it to
 * the audit (event "signal") and counts it in metrics (kind label only).
 *
 * State is in memory, per process, and bounded by LRU caps: after a restart every user's
 * known networks are forgotten, so the first login per user is never a signal.
 */
import ipaddr from 'ipaddr.js';
import { parseIp } from '../util/cidr.ts';
import { memoize } from '../util/memo.ts';
import { LruMap } from './lru.ts';

export type SignalKind = 'new-source' | 'download-volume' | 'many-users-one-source' | 'mass-dele';

export interface Signal {
  readonly signal: SignalKind;
  readonly detail: Record<string, unknown>;
}

export interface SignalConfig {
  /** Octets retrieved (RETR/TOP) per user within `window` before a signal; 0 disables. */
  readonly downloadBytesPerUser: number;
  /** Window for download volume, ms. */
  readonly window: number;
  /** Distinct users from one source within `usersWindow` before a signal; 0 disables. */
  readonly usersPerSource: number;
  /** Window for many-users-one-source, ms (default: `window`). */
  readonly usersWindow?: number;
  /** DELE commands in one session before a signal; 0 disables. */
  readonly massDele: number;
  /** Users tracked for new-source and download volume (LRU). */
  readonly maxUsers?: number;
  /** Sources tracked for many-users-one-source (LRU). */
  readonly maxSources?: number;
}

export const DEFAULT_SIGNALS: Required<SignalConfig> = Object.freeze({
  downloadBytesPerUser: 1024 ** 3,
  window: 60 * 60_000,
  usersPerSource: 10,
  usersWindow: 10 * 60_000,
  massDele: 100,
  maxUsers: 100_000,
  maxSources: 10_000,
});

/** Networks remembered per user; a roaming user past this just forgets the oldest. */
const SOURCES_PER_USER = 32;

interface Volume {
  start: number;
  bytes: number;
  fired: boolean;
}

interface SourceUsers {
  /** user → last login time, oldest first. */
  users: Map<string, number>;
  firedAt: number | null;
}

export class SignalDetector {
  private readonly cfg: Required<SignalConfig>;
  private readonly seen: LruMap<string, string[]>;
  private readonly volume: LruMap<string, Volume>;
  private readonly sources: LruMap<string, SourceUsers>;

  constructor(cfg: SignalConfig, private readonly now: () => number = Date.now) {
    this.cfg = {
      ...cfg,
      usersWindow: cfg.usersWindow ?? cfg.window,
      maxUsers: cfg.maxUsers ?? DEFAULT_SIGNALS.maxUsers,
      maxSources: cfg.maxSources ?? DEFAULT_SIGNALS.maxSources,
    };
    this.seen = new LruMap(this.cfg.maxUsers);
    this.volume = new LruMap(this.cfg.maxUsers);
    this.sources = new LruMap(this.cfg.maxSources);
  }

  /**
   * Call on every login attempt that named a user: `ok` false counts towards
   * many-users-one-source (spraying shows as failures) but never teaches a new source.
   */
  onLogin(user: string, ip: string, ok = true): Signal[] {
    const out: Signal[] = [];
    if (ok) {
      const s = this.newSource(user, ip);
      if (s) out.push(s);
    }
    const m = this.manyUsers(user, ip);
    if (m) out.push(m);
    return out;
  }

  /** Octets of a RETR/TOP body relayed to `user`; fires once per user per window. */
  onRetrieved(user: string, octets: number): Signal[] {
    const limit = this.cfg.downloadBytesPerUser;
    if (limit <= 0) return [];
    const t = this.now();
    let v = this.volume.get(user);
    if (v === undefined || t - v.start >= this.cfg.window) {
      v = { start: t, bytes: 0, fired: false };
      this.volume.set(user, v);
    }
    v.bytes += octets;
    if (v.fired || v.bytes < limit) return [];
    v.fired = true;
    return [{ signal: 'download-volume', detail: { user, bytes: v.bytes, windowMs: this.cfg.window } }];
  }

  /** The session's DELE count after each DELE; fires once, when it reaches the threshold. */
  onDele(sessionDeleCount: number): Signal[] {
    const limit = this.cfg.massDele;
    if (limit <= 0 || sessionDeleCount !== limit) return [];
    return [{ signal: 'mass-dele', detail: { deles: sessionDeleCount } }];
  }

  private newSource(user: string, ip: string): Signal | null {
    const net = networkOf(ip);
    const known = this.seen.get(user);
    if (known === undefined) {
      this.seen.set(user, [net]);
      return null;
    }
    if (known.includes(net)) return null;
    known.push(net);
    if (known.length > SOURCES_PER_USER) known.shift();
    return { signal: 'new-source', detail: { user, source: net, knownSources: known.length - 1 } };
  }

  private manyUsers(user: string, ip: string): Signal | null {
    const limit = this.cfg.usersPerSource;
    if (limit <= 0) return null;
    const window = this.cfg.usersWindow;
    const t = this.now();
    const key = hostOf(ip);
    let entry = this.sources.get(key);
    if (entry === undefined) {
      entry = { users: new Map(), firedAt: null };
      this.sources.set(key, entry);
    }
    const users = entry.users;
    users.delete(user);
    users.set(user, t);
    // Oldest first: drop logins that left the window, and never hold more than `limit` users.
    for (const [u, at] of users) {
      if (t - at < window && users.size <= limit) break;
      users.delete(u);
    }
    if (users.size < limit) return null;
    if (entry.firedAt !== null && t - entry.firedAt < window) return null;
    entry.firedAt = t;
    return {
      signal: 'many-users-one-source',
      detail: { source: key, count: users.size, users: [...users.keys()], windowMs: window },
    };
  }
}

/** The network a client is "from" for new-source: its IPv4 /24 or IPv6 /64. Remembered per address. */
export const networkOf: (ip: string) => string = memoize(computeNetworkOf);

function computeNetworkOf(ip: string): string {
  const addr = parseIp(ip);
  if (addr === null) return ip;
  if (addr.kind() === 'ipv4') {
    const [a, b, c] = (addr as ipaddr.IPv4).octets;
    return `${a}.${b}.${c}.0/24`;
  }
  return `${prefix64(addr as ipaddr.IPv6)}/64`;
}

/** One host for many-users-one-source: the IPv4 address, or the IPv6 /64 a host usually owns. Remembered per address. */
export const hostOf: (ip: string) => string = memoize(computeHostOf);

function computeHostOf(ip: string): string {
  const addr = parseIp(ip);
  if (addr === null) return ip;
  if (addr.kind() === 'ipv4') return addr.toString();
  return `${prefix64(addr as ipaddr.IPv6)}/64`;
}

function prefix64(v6: ipaddr.IPv6): string {
  const p = v6.parts;
  return new ipaddr.IPv6([p[0] ?? 0, p[1] ?? 0, p[2] ?? 0, p[3] ?? 0, 0, 0, 0, 0]).toString();
}
