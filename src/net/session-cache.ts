/**
 * Server-side TLS session cache for session-ID resumption (TLS 1.2 clients that send no ticket).
 * Node turns OpenSSL's internal cache off and resumes IDs only through the server's
 * 'newSession'/'resumeSession' events; this is the store behind them. Bounded: at most `max`
 * sessions, each for `ttlMs` (the contexts' sessionTimeout), the oldest dropped first.
 * Tickets (TLS 1.2 and 1.3) need no state here: see tls-material.ts ticketKeys.
 */
export class TlsSessionCache {
  private readonly map = new Map<string, { data: Buffer; expires: number }>();

  constructor(
    private readonly max = 10_000,
    private readonly ttlMs = 300_000,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.map.size;
  }

  set(id: Buffer, data: Buffer): void {
    const key = id.toString('hex');
    this.map.delete(key);
    this.map.set(key, { data, expires: this.now() + this.ttlMs });
    // Insertion order is age order: drop from the old end, expired entries first on the way.
    for (const [k, v] of this.map) {
      if (this.map.size <= this.max && v.expires > this.now()) break;
      this.map.delete(k);
    }
  }

  get(id: Buffer): Buffer | null {
    const key = id.toString('hex');
    const e = this.map.get(key);
    if (e === undefined) return null;
    if (e.expires <= this.now()) {
      this.map.delete(key);
      return null;
    }
    return e.data;
  }
}
