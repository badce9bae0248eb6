import { describe, expect, it } from 'vitest';
import { TlsSessionCache } from '../../../src/net/session-cache.ts';

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

  it('holds at most max sessions, dropping the oldest first', () => {
    const c = new TlsSessionCache(3, 60_000);
    for (let i = 1; i <= 5; i++) c.set(id(i), data(i));
    expect(c.size).toBe(3);
    expect(c.get(id(1))).toBeNull();
    expect(c.get(id(2))).toBeNull();
    expect(c.get(id(5))).toEqual(data(5));
  });
});
