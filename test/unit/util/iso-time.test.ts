import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isoTime } from '../../../src/util/iso-time.ts';

describe('isoTime', () => {
  it('is toISOString for any millisecond, in any order of calls', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: -8.64e15, max: 8.64e15 }), { minLength: 1, maxLength: 20 }), (all) => {
      for (const ms of all) if (isoTime(ms) !== new Date(ms).toISOString()) return false;
      return true;
    }), { numRuns: 3000 });
  });

  it('is toISOString for each millisecond across second, minute, year and epoch boundaries', () => {
    for (const start of [Date.UTC(2026, 11, 31, 23, 59, 58), 0 - 1500, Date.UTC(9999, 11, 31, 23, 59, 59), Date.UTC(1000, 0, 1) - 1000]) {
      for (let ms = start; ms < start + 3000; ms++) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it('is what pino and the audit wrote before: now, many times within one second', () => {
    const now = Date.now();
    for (let i = 0; i < 1000; i++) expect(isoTime(now + i)).toBe(new Date(now + i).toISOString());
  });
});
