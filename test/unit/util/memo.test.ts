import { describe, expect, it } from 'vitest';
import { memoize } from '../../../src/util/memo.ts';

describe('memoize', () => {
  it('answers a repeated argument from memory, null and undefined answers included', () => {
    const calls: string[] = [];
    const f = memoize((s: string) => {
      calls.push(s);
      return s === 'none' ? null : s === 'undef' ? undefined : s.length;
    });
    expect([f('abc'), f('abc'), f('none'), f('none'), f('undef'), f('undef')]).toEqual([3, 3, null, null, undefined, undefined]);
    expect(calls).toEqual(['abc', 'none', 'undef']);
  });

  it('keeps at most max answers: past that it starts over, and still answers right', () => {
    const calls: number[] = [];
    const f = memoize((n: number) => {
      calls.push(n);
      return n * 2;
    }, 3);
    for (const n of [1, 2, 3]) f(n);
    expect(f(1)).toBe(2);
    expect(calls).toEqual([1, 2, 3]);
    expect(f(4)).toBe(8); // the fourth distinct value: the memory starts over with it
    expect(f(1)).toBe(2);
    expect(calls).toEqual([1, 2, 3, 4, 1]);
    // A flood of distinct values is answered right and does not grow the memory past max.
    for (let i = 100; i < 1100; i++) expect(f(i)).toBe(2 * i);
  });

  it('refuses a size that is not a positive integer', () => {
    expect(() => memoize((x: number) => x, 0)).toThrow(RangeError);
    expect(() => memoize((x: number) => x, 1.5)).toThrow(RangeError);
  });
});
