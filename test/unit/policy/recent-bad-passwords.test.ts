import { describe, expect, it } from 'vitest';
import { RecentBadPasswords } from '../../../src/policy/recent-bad-passwords.ts';

describe('RecentBadPasswords', () => {
  it('recognises a (user, password) pair seen within the window', () => {
    let now = 0;
    const r = new RecentBadPasswords(1_000, () => now);
    expect(r.seenBefore('bob', 'pw')).toBe(false);
    now = 999;
    expect(r.seenBefore('bob', 'pw')).toBe(true);
  });

  it('keeps users and passwords apart, including where their text could run together', () => {
    const r = new RecentBadPasswords(1_000, () => 0);
    r.seenBefore('bob', 'pw');
    expect(r.seenBefore('bob', 'pw2')).toBe(false);
    expect(r.seenBefore('carol', 'pw')).toBe(false);
    r.seenBefore('ab', 'c');
    expect(r.seenBefore('a', 'bc')).toBe(false);
  });

  it('forgets a pair when its window has passed and drops expired entries', () => {
    let now = 0;
    const r = new RecentBadPasswords(1_000, () => now);
    r.seenBefore('bob', 'a');
    r.seenBefore('bob', 'b');
    now = 1_000;
    expect(r.seenBefore('bob', 'a')).toBe(false);
    expect(r.size).toBe(1);
  });

  it('never holds more than maxEntries, dropping the oldest', () => {
    const r = new RecentBadPasswords(60_000, () => 0, 3);
    for (const p of ['a', 'b', 'c', 'd']) r.seenBefore('bob', p);
    expect(r.size).toBe(3);
    expect(r.seenBefore('bob', 'd')).toBe(true);
    expect(r.seenBefore('bob', 'a')).toBe(false);
  });

  it('uses a different key in each instance, so its hashes mean nothing elsewhere', () => {
    const a = new RecentBadPasswords(60_000, () => 0);
    const b = new RecentBadPasswords(60_000, () => 0);
    a.seenBefore('bob', 'pw');
    expect(b.seenBefore('bob', 'pw')).toBe(false);
    // No password text inside the instance, whatever its internals look like.
    expect(JSON.stringify(a)).not.toContain('pw');
  });
});
