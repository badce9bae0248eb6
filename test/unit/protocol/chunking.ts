/** Ways to cut one input into chunks, for testing stream parsers against their unsplit result. */
import fc from 'fast-check';

/** Cut `buf` at the given offsets (any order, duplicates and out-of-range ones ignored). */
export function chunksAt(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts)].filter((c) => c > 0 && c < buf.length).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    chunks.push(buf.subarray(from, point));
    from = point;
  }
  chunks.push(buf.subarray(from));
  return chunks;
}

/** The input whole, then split once at every byte offset. */
export function everySingleSplit(buf: Buffer): Buffer[][] {
  const ways: Buffer[][] = [[buf]];
  for (let i = 1; i < buf.length; i++) ways.push([buf.subarray(0, i), buf.subarray(i)]);
  return ways;
}

/** One byte per chunk. */
export function byteByByte(buf: Buffer): Buffer[] {
  return chunksAt(buf, Array.from({ length: buf.length }, (_, i) => i));
}

/** Random cut offsets for an input of `length` bytes. */
export function cutsFor(length: number): fc.Arbitrary<number[]> {
  return fc.array(fc.integer({ min: 1, max: Math.max(1, length - 1) }), { maxLength: Math.min(length, 40) });
}

export const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
