import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TerminatorScanner, dotStuff, unstuffLines } from '../../../src/protocol/multiline.ts';
import { byteByByte, chunksAt, cutsFor, everySingleSplit, latin1 } from './chunking.ts';

/** Offset (in the whole stream) just past the terminator, or -1, scanning chunk by chunk. */
function scanStream(chunks: readonly Buffer[], scanner = new TerminatorScanner()): number {
  scanner.reset();
  let base = 0;
  for (const chunk of chunks) {
    const end = scanner.scan(chunk);
    if (end >= 0) return base + end;
    base += chunk.length;
  }
  return -1;
}

/** The definition: a body starts at a line start, so prefix the status line's CRLF and search. */
function reference(body: string): number {
  const at = `\r\n${body}`.indexOf('\r\n.\r\n');
  return at < 0 ? -1 : at + 3;
}

const FIXTURES: { name: string; body: string; end: number }[] = [
  { name: 'an empty body', body: '.\r\n', end: 3 },
  { name: 'an empty body followed by the next reply', body: '.\r\n+OK 2 200\r\n', end: 3 },
  { name: 'a one-line body', body: 'hello\r\n.\r\n', end: 10 },
  { name: 'dot-stuffed lines', body: '..foo\r\n...\r\n..\r\n.\r\n', end: 19 },
  { name: 'a stuffed single dot line', body: '..\r\n.\r\n', end: 7 },
  { name: 'a line starting with a dot and more text', body: '.x\r\n. \r\n.\r\n', end: 11 },
  { name: 'a dot line ended by a lone LF', body: 'a\r\n.\nb\r\n.\r\n', end: 11 },
  { name: 'a lone-LF body that never ends', body: 'a\n.\n', end: -1 },
  { name: 'a body that starts with an empty line', body: '\r\n.\r\n', end: 5 },
  { name: 'a dot line with a doubled CR', body: 'x\r\n.\r\r\n.\r\n', end: 10 },
  { name: 'CR runs before the terminator', body: 'x\r\r\r\n.\r\n', end: 8 },
  { name: 'a body without terminator yet', body: 'line\r\n.', end: -1 },
  { name: 'a body ending in an unfinished terminator', body: 'line\r\n.\r', end: -1 },
  { name: 'a message with headers and a leading-dot line', body: 'Subject: x\r\n\r\n..dot\r\nend\r\n.\r\n-ERR next\r\n', end: 29 },
];

describe('TerminatorScanner', () => {
  for (const f of FIXTURES) {
    it(`finds the end of ${f.name} wherever the chunks are cut`, () => {
      expect(reference(f.body)).toBe(f.end);
      const input = latin1(f.body);
      for (const chunks of everySingleSplit(input)) expect(scanStream(chunks)).toBe(f.end);
      expect(scanStream(byteByByte(input))).toBe(f.end);
      fc.assert(
        fc.property(cutsFor(input.length), (cuts) => {
          expect(scanStream(chunksAt(input, cuts))).toBe(f.end);
        }),
        { numRuns: 200 },
      );
    });
  }

  it('finds ".\\r\\n" split three ways after a chunk that ended with CRLF', () => {
    for (const chunks of [
      ['a\r\n', '.', '\r', '\n'],
      ['a\r\n', '.\r', '\n'],
      ['a\r\n', '.', '\r\n'],
      ['a\r', '\n.', '\r\n'],
      ['a\r\n.', '\r\n'],
      ['', '.', '\r\n'],
    ]) {
      const expected = chunks.join('').length;
      expect(scanStream(chunks.map(latin1))).toBe(expected);
    }
  });

  it('reports the end inside the chunk where the body ends at the chunk edge', () => {
    const scanner = new TerminatorScanner();
    scanner.reset();
    expect(scanner.scan(latin1('line one\r\n'))).toBe(-1);
    expect(scanner.scan(latin1('line two\r\n.\r\n'))).toBe(13);
  });

  it('starts scanning at the given offset, after a status line in the same chunk', () => {
    const scanner = new TerminatorScanner();
    const chunk = latin1('+OK 2 messages\r\n.\r\n');
    scanner.reset();
    expect(scanner.scan(chunk, 16)).toBe(19);
    scanner.reset();
    expect(scanner.scan(latin1('+OK\r\n1 10\r\n.\r\n+OK\r\n'), 5)).toBe(14);
  });

  it('can be reset and reused for the next body', () => {
    const scanner = new TerminatorScanner();
    expect(scanStream([latin1('a\r\n.')], scanner)).toBe(-1);
    expect(scanStream([latin1('.\r\n')], scanner)).toBe(3);
  });

  it('agrees with the definition on random bodies and random chunking', () => {
    const alphabet = fc.constantFrom('\r', '\n', '.', 'a', '\r\n', '\r\n.');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 60 }), fc.array(fc.integer({ min: 1, max: 150 })), (parts, cuts) => {
        const body = parts.join('');
        expect(scanStream(chunksAt(latin1(body), cuts))).toBe(reference(body));
      }),
      { numRuns: 2000 },
    );
  });

  it('finds the terminator behind many lines that end in a dot, in one chunk and split anywhere', () => {
    // Past a few such lines the scanner searches for the whole terminator instead of ".\r\n".
    const body = `${'The end.\r\nAnd again..\r\n'.repeat(20)}x.\r\n.\r\n+OK next\r\n`;
    const want = reference(body);
    expect(want).toBeGreaterThan(0);
    expect(scanStream([latin1(body)])).toBe(want);
    for (const chunks of everySingleSplit(latin1(body))) expect(scanStream(chunks)).toBe(want);
    const noEnd = 'The end.\r\n'.repeat(10) + '..\r\n';
    expect(scanStream([latin1(noEnd)])).toBe(-1);
  });

  it('agrees with the definition on random text with many dots and line ends, chunked at random', () => {
    const alphabet = fc.constantFrom('.\r\n', 'a.\r\n', '..\r\n', '.', 'a', '\r\n', '\r', '\n');
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 80 }), fc.array(fc.integer({ min: 1, max: 200 })), (parts, cuts) => {
        const body = parts.join('');
        expect(scanStream(chunksAt(latin1(body), cuts))).toBe(reference(body));
        expect(scanStream([latin1(body)])).toBe(reference(body));
      }),
      { numRuns: 2000 },
    );
  });

  it('scans 32 MiB in 64 KiB chunks well under a second', () => {
    const line = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n..stuffed line\r\n.x\r\n';
    const chunk = latin1(line.repeat(Math.ceil(65536 / line.length)).slice(0, 65536));
    const count = 512;
    const scanner = new TerminatorScanner();
    scanner.reset();
    const started = performance.now();
    for (let i = 0; i < count; i++) expect(scanner.scan(chunk)).toBe(-1);
    const end = scanner.scan(latin1('\r\n.\r\n'));
    const elapsed = performance.now() - started;
    expect(end).toBe(5);
    expect(elapsed).toBeLessThan(1000);
  });
});

describe('unstuffLines', () => {
  const cases: { name: string; body: string; lines: string[] }[] = [
    { name: 'an empty body', body: '', lines: [] },
    { name: 'CRLF lines', body: 'TOP\r\nUIDL\r\n', lines: ['TOP', 'UIDL'] },
    { name: 'stuffed lines', body: '..x\r\n..\r\n...\r\n', lines: ['.x', '.', '..'] },
    { name: 'an empty line inside', body: 'a\r\n\r\nb\r\n', lines: ['a', '', 'b'] },
    { name: 'lone LF lines', body: 'a\nb\n', lines: ['a', 'b'] },
    { name: 'a last line without CRLF', body: 'a\r\nb', lines: ['a', 'b'] },
    { name: '8-bit bytes', body: 'IMPLEMENTATION caf\u00e9\r\n', lines: ['IMPLEMENTATION caf\u00e9'] },
  ];
  for (const c of cases) {
    it(`splits and un-stuffs ${c.name}`, () => {
      expect(unstuffLines(latin1(c.body))).toEqual(c.lines);
    });
  }

  it('undoes dotStuff for any line', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[.a\u00e9 ]*$/), { maxLength: 10 }), (lines) => {
        const body = lines.map((l) => `${dotStuff(l)}\r\n`).join('');
        expect(unstuffLines(latin1(body))).toEqual(lines);
      }),
    );
  });
});

describe('dotStuff', () => {
  it('doubles a leading dot and leaves other lines alone', () => {
    expect(dotStuff('.')).toBe('..');
    expect(dotStuff('.x')).toBe('..x');
    expect(dotStuff('x.')).toBe('x.');
    expect(dotStuff('')).toBe('');
  });
});
