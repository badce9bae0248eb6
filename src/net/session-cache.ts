/**
 * Server-side TLS session cache for session-ID resumption (TLS 1.2 clients that send no ticket).
 * Node turns OpenSSL's internal cache off and resumes IDs only through the server's
 * 'newSession'/'resumeSession' events; this is the store behind them. Bounded: at most `max`
 * sessions, each for `ttlMs` (the contexts' sessionTimeout), the oldest dropped first.
 * Tickets (TLS 1.2 and 1.3) need no state here: see tls-material.ts ticketKeys.
 */
/**
 * The protocol version inside an OpenSSL session (DER SSL_SESSION: SEQUENCE { INTEGER 1,
 * INTEGER sslVersion, ... }), or null when the bytes do not read that way.
 */
export function sessionProtocolVersion(der: Buffer): number | null {
  if (der.length < 2 || der[0] !== 0x30) return null;
  let off = 2;
  const first = der[1]!;
  if (first & 0x80) off += first & 0x7f; // long-form length
  if (der[off] !== 0x02) return null;
  off += 2 + der[off + 1]!; // skip the structure version
  if (der[off] !== 0x02) return null;
  const len = der[off + 1]!;
  if (len < 1 || len > 2 || off + 2 + len > der.length) return null;
  return len === 1 ? der[off + 2]! : der.readUInt16BE(off + 2);
}

const TLS1_3 = 0x0304;

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

  /**
   * Stores a session, except a TLS 1.3 one: OpenSSL reports each 1.3 ticket it issues (two per
   * handshake) as a new session, but 1.3 resumes from the ticket alone and never asks for it.
   */
  set(id: Buffer, data: Buffer): void {
    if (sessionProtocolVersion(data) === TLS1_3) return;
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
