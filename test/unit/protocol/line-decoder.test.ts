import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LineDecoder } from '../../../src/protocol/line-decoder.ts';
import { byteByByte, chunksAt, cutsFor, everySingleSplit, latin1 } from './chunking.ts';

type Event = string | 'OVERFLOW';

/** Feed chunk by chunk and drain after each one, as the session does. */
function decode(chunks: readonly Buffer[], maxLength: number): { events: Event[]; rest: number } {
  const decoder = new LineDecoder(maxLength);
  const events: Event[] = [];
  for (const chunk of chunks) {
    decoder.feed(chunk);
    for (let e = decoder.next(); e !== null; e = decoder.next()) {
      events.push(e.type === 'line' ? e.line.toString('latin1') : 'OVERFLOW');
    }
  }
  return { events, rest: decoder.buffered };
}

interface Fixture {
  name: string;
  input: string;
  max: number;
  events: Event[];
  rest: number;
}

const FIXTURES: Fixture[] = [
  { name: 'two CRLF lines', input: 'USER alice\r\nPASS s3cret\r\n', max: 255, events: ['USER alice', 'PASS s3cret'], rest: 0 },
  { name: 'a lone LF ends a line', input: 'NOOP\nSTAT\r\n', max: 255, events: ['NOOP', 'STAT'], rest: 0 },
  { name: 'empty lines', input: '\r\n\n\r\n', max: 255, events: ['', '', ''], rest: 0 },
  { name: 'a bare CR stays inside the line', input: 'USER a\rDELE 1\r\n', max: 255, events: ['USER a\rDELE 1'], rest: 0 },
  { name: 'only one CR before LF is stripped', input: 'x\r\r\n', max: 255, events: ['x\r'], rest: 0 },
  { name: 'NUL and 8-bit bytes pass through', input: 'USER j\u00fc\u00a0rgen\0\r\n', max: 255, events: ['USER j\u00fc\u00a0rgen\0'], rest: 0 },
  { name: 'an unfinished line is held', input: 'RETR 1\r\nLIST', max: 255, events: ['RETR 1'], rest: 4 },
  { name: 'a line of exactly maxLength with CRLF', input: '12345678\r\nok\r\n', max: 10, events: ['12345678', 'ok'], rest: 0 },
  { name: 'a line of exactly maxLength with a lone LF', input: '123456789\nok\r\n', max: 10, events: ['123456789', 'ok'], rest: 0 },
  { name: 'one byte over maxLength', input: '123456789\r\nok\r\n', max: 10, events: ['OVERFLOW', 'ok'], rest: 0 },
  {
    name: 'an over-long line then a normal line',
    input: `${'A'.repeat(40)}\r\nNOOP\r\n`,
    max: 10,
    events: ['OVERFLOW', 'NOOP'],
    rest: 0,
  },
  { name: 'two over-long lines in a row', input: `${'A'.repeat(12)}\n${'B'.repeat(30)}\r\nQUIT\r\n`, max: 10, events: ['OVERFLOW', 'OVERFLOW', 'QUIT'], rest: 0 },
  { name: 'an over-long unfinished line', input: `ok\r\n${'A'.repeat(25)}`, max: 10, events: ['ok', 'OVERFLOW'], rest: 0 },
];

describe('LineDecoder', () => {
  for (const f of FIXTURES) {
    it(`gives the same events for "${f.name}" however the input is split`, () => {
      const input = latin1(f.input);
      const expected = { events: f.events, rest: f.rest };
      for (const chunks of everySingleSplit(input)) expect(decode(chunks, f.max)).toEqual(expected);
      expect(decode(byteByByte(input), f.max)).toEqual(expected);
      fc.assert(
        fc.property(cutsFor(input.length), (cuts) => {
          expect(decode(chunksAt(input, cuts), f.max)).toEqual(expected);
        }),
        { numRuns: 200 },
      );
    });
  }

  it('agrees with a reference splitter on random input and random chunking', () => {
    const alphabet = fc.constantFrom('a', 'b', ' ', '\r', '\n', '\0', '\u00e9');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 120 }), fc.integer({ min: 1, max: 12 }), fc.array(fc.integer({ min: 1, max: 119 })), (chars, max, cuts) => {
        const text = chars.join('');
        const expected: Event[] = [];
        let start = 0;
        for (let lf = text.indexOf('\n'); lf >= 0; lf = text.indexOf('\n', start)) {
          const raw = text.slice(start, lf);
          expected.push(lf + 1 - start > max ? 'OVERFLOW' : raw.endsWith('\r') ? raw.slice(0, -1) : raw);
          start = lf + 1;
        }
        const tail = text.length - start;
        if (tail >= max) expected.push('OVERFLOW');
        const result = decode(chunksAt(latin1(text), cuts), max);
        expect(result.events).toEqual(expected);
        expect(result.rest).toBe(tail >= max ? 0 : tail);
      }),
      { numRuns: 500 },
    );
  });

  it('reports an over-long line once and never holds much more than maxLength of it', () => {
    const decoder = new LineDecoder(100);
    const chunk = Buffer.alloc(1024, 0x41);
    let overflows = 0;
    for (let i = 0; i < 1024; i++) {
      decoder.feed(chunk);
      for (let e = decoder.next(); e !== null; e = decoder.next()) {
        expect(e.type).toBe('overflow');
        overflows++;
      }
      expect(decoder.buffered).toBeLessThanOrEqual(100 + chunk.length);
    }
    decoder.feed(latin1('tail of the long line\r\nQUIT\r\n'));
    expect(decoder.next()).toEqual({ type: 'line', line: latin1('QUIT') });
    expect(decoder.next()).toBeNull();
    expect(overflows).toBe(1);
  });

  it('decodes a line fed one byte at a time in linear time', () => {
    const size = 64 * 1024;
    const decoder = new LineDecoder(size + 2);
    const one = Buffer.from('x');
    // CPU time, not wall time: other processes on a loaded machine must not fail this.
    // A quadratic decoder would copy ~2 GiB here and take far longer.
    const started = process.cpuUsage();
    for (let i = 0; i < size; i++) {
      decoder.feed(one);
      expect(decoder.next()).toBeNull();
    }
    decoder.feed(latin1('\r\n'));
    const event = decoder.next();
    const cpu = process.cpuUsage(started);
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(2000);
    expect(event?.type === 'line' && event.line.length).toBe(size);
  });

  it('drops everything buffered on clear, so lines sent after STLS are never parsed', () => {
    const decoder = new LineDecoder(255);
    decoder.feed(latin1('STLS\r\nUSER mallory\r\n'));
    decoder.feed(latin1('PASS x\r\n'));
    expect(decoder.next()).toEqual({ type: 'line', line: latin1('STLS') });
    decoder.clear();
    expect(decoder.buffered).toBe(0);
    expect(decoder.next()).toBeNull();
    decoder.feed(latin1('CAPA\r\n'));
    expect(decoder.next()).toEqual({ type: 'line', line: latin1('CAPA') });
  });

  it('forgets a pending overflow on clear', () => {
    const decoder = new LineDecoder(10);
    decoder.feed(latin1('A'.repeat(20)));
    expect(decoder.next()).toEqual({ type: 'overflow' });
    decoder.clear();
    decoder.feed(latin1('NOOP\r\n'));
    expect(decoder.next()).toEqual({ type: 'line', line: latin1('NOOP') });
  });

  it('hands over the unconsumed bytes across chunks with takeBuffered', () => {
    const decoder = new LineDecoder(255);
    decoder.feed(latin1('+OK begin\r\n\x16\x03'));
    decoder.feed(latin1('\x01\x02'));
    decoder.feed(latin1('\x05'));
    expect(decoder.next()).toEqual({ type: 'line', line: latin1('+OK begin') });
    expect(decoder.buffered).toBe(5);
    expect(decoder.takeBuffered()).toEqual(latin1('\x16\x03\x01\x02\x05'));
    expect(decoder.buffered).toBe(0);
    expect(decoder.takeBuffered()).toEqual(Buffer.alloc(0));
    decoder.feed(latin1('NOOP\r\n'));
    expect(decoder.next()).toEqual({ type: 'line', line: latin1('NOOP') });
  });

  it('applies a raised maxLength to the next line', () => {
    const decoder = new LineDecoder(12);
    decoder.feed(latin1(`AUTH PLAIN\r\n${'Q'.repeat(50)}\r\n`));
    expect(decoder.next()).toEqual({ type: 'line', line: latin1('AUTH PLAIN') });
    decoder.maxLength = 100;
    expect(decoder.next()).toEqual({ type: 'line', line: latin1('Q'.repeat(50)) });
  });

  it('keeps lines intact when the same decoder sees many small chunks over time', () => {
    const decoder = new LineDecoder(255);
    const got: string[] = [];
    for (let i = 0; i < 500; i++) {
      for (const chunk of byteByByte(latin1(`DELE ${i}\r\n`))) {
        decoder.feed(chunk);
        for (let e = decoder.next(); e !== null; e = decoder.next()) {
          if (e.type === 'line') got.push(e.line.toString('latin1'));
        }
      }
    }
    expect(got).toEqual(Array.from({ length: 500 }, (_, i) => `DELE ${i}`));
    expect(decoder.buffered).toBe(0);
  });

  it('refuses a maxLength that is not a positive integer', () => {
    expect(() => new LineDecoder(0)).toThrow(RangeError);
    expect(() => new LineDecoder(2.5)).toThrow(RangeError);
  });
});
