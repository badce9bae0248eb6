import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../../src/util/duration.ts';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['10s', 10_000],
    ['15m', 900_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['0s', 0],
    [0, 0],
  ])('reads %j as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    ['15 minutes'], ['15 m'], ['10'], ['1.5s'], ['-5s'], ['5S'], ['s'], [''], ['1w'], [' 10s'], ['10s '],
    [1000], [-1], [null], [undefined], [true], [['10s']],
  ])('refuses %j', (v) => {
    expect(parseDuration(v)).toBeNull();
  });

  it('refuses a bare number other than 0, whose unit nobody could tell', () => {
    expect(parseDuration(30)).toBeNull();
  });

  it('refuses a duration too large to be exact in a double', () => {
    expect(parseDuration('999999999999999999d')).toBeNull();
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0ms'], [250, '250ms'], [10_000, '10s'], [900_000, '15m'], [90_000, '1m30s'], [86_400_001, '1d1ms'],
  ])('writes %d ms as %j', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('refuses negative and fractional milliseconds', () => {
    expect(() => formatDuration(-1)).toThrow(RangeError);
    expect(() => formatDuration(1.5)).toThrow(RangeError);
  });

  it('writes what parseDuration reads back, for any duration', () => {
    fc.assert(fc.property(fc.nat({ max: 10 * 365 * 86_400_000 }), (ms) => parseDuration(formatDuration(ms)) === ms));
  });
});
