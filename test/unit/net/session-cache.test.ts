import { describe, expect, it } from 'vitest';
import { sessionProtocolVersion, TlsSessionCache } from '../../../src/net/session-cache.ts';

/** The start of a DER SSL_SESSION: SEQUENCE { INTEGER 1, INTEGER version, ... }. */
const der = (version: number, longForm = false) => Buffer.from([
  0x30, ...(longForm ? [0x81, 0x88] : [0x20]), 0x02, 0x01, 0x01, 0x02, 0x02, version >> 8, version & 0xff, 0x04, 0x02, 0x13, 0x02,
]);

const id = (n: number) => Buffer.from([n]);
const data = (n: number) => Buffer.from(`session-${n}`);

describe('TLS session cache', () => {
  it('returns a stored session by its ID and null for an unknown one', () => {
    const c = new TlsSessionCache(10, 1000);
    c.set(id(1), data(1));
    expect(c.get(id(1))).toEqual(data(1));
    expect(c.get(id(2))).toBeNull();
  });

  it('forgets a session once its lifetime is over', () => {
    let now = 0;
    const c = new TlsSessionCache(10, 1000, () => now);
    c.set(id(1), data(1));
    now = 999;
    expect(c.get(id(1))).toEqual(data(1));
    now = 1000;
    expect(c.get(id(1))).toBeNull();
    expect(c.size).toBe(0);
  });

  it('reads the protocol version of an OpenSSL session, and null from other bytes', () => {
    expect(sessionProtocolVersion(der(0x0303))).toBe(0x0303);
    expect(sessionProtocolVersion(der(0x0304, true))).toBe(0x0304);
    expect(sessionProtocolVersion(Buffer.from('not a session'))).toBeNull();
    expect(sessionProtocolVersion(Buffer.alloc(0))).toBeNull();
  });

  it('keeps TLS 1.2 sessions and skips TLS 1.3 ones (those resume from the ticket alone)', () => {
    const c = new TlsSessionCache(10, 60_000);
    c.set(id(1), der(0x0303));
    c.set(id(2), der(0x0304));
    expect(c.get(id(1))).toEqual(der(0x0303));
    expect(c.get(id(2))).toBeNull();
    expect(c.size).toBe(1);
  });

  it('holds at most max sessions, dropping the oldest first', () => {
    const c = new TlsSessionCache(3, 60_000);
    for (let i = 1; i <= 5; i++) c.set(id(i), data(i));
    expect(c.size).toBe(3);
    expect(c.get(id(1))).toBeNull();
    expect(c.get(id(2))).toBeNull();
    expect(c.get(id(5))).toEqual(data(5));
  });
});
