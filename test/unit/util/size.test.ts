import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatSize, parseSize } from '../../../src/util/size.ts';

describe('parseSize', () => {
  it.each([
    ['512B', 512],
    ['64KiB', 65_536],
    ['10MiB', 10 * 1024 ** 2],
    ['500MiB', 500 * 1024 ** 2],
    ['1GiB', 1024 ** 3],
    ['64KB', 64_000],
    ['64kB', 64_000],
    ['10MB', 10_000_000],
    ['2GB', 2_000_000_000],
    ['10 MiB', 10 * 1024 ** 2],
    ['4096', 4096],
    [4096, 4096],
    [0, 0],
  ])('reads %j as %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each([
    ['10Mb'], ['10mib'], ['1.5MiB'], ['-1B'], ['MiB'], [''], ['10  MiB'], ['lots'], [-1], [1.5], [null], [undefined], [{}],
  ])('refuses %j', (v) => {
    expect(parseSize(v)).toBeNull();
  });

  it('refuses a size too large to be exact in a double', () => {
    expect(parseSize('99999999999TiB')).toBeNull();
  });
});

describe('formatSize', () => {
  it.each([
    [0, '0B'], [512, '512B'], [65_536, '64KiB'], [10 * 1024 ** 2, '10MiB'], [10_000_000, '10MB'], [1_000, '1KB'], [1_023, '1023B'],
  ])('writes %d bytes as %j', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it('refuses negative and fractional sizes', () => {
    expect(() => formatSize(-1)).toThrow(RangeError);
    expect(() => formatSize(0.5)).toThrow(RangeError);
  });

  it('writes what parseSize reads back, for any size', () => {
    fc.assert(fc.property(fc.nat({ max: 2 ** 45 }), (bytes) => parseSize(formatSize(bytes)) === bytes));
  });
});
