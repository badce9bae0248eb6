import { describe, expect, it } from 'vitest';
import { isMultiline } from '../../../src/protocol/expectation.ts';

describe('isMultiline', () => {
  const cases: [verb: string, argCount: number, multiline: boolean][] = [
    ['CAPA', 0, true],
    ['RETR', 1, true],
    ['TOP', 2, true],
    ['LIST', 0, true],
    ['LIST', 1, false],
    ['UIDL', 0, true],
    ['UIDL', 1, false],
    ['uidl', 0, true],
    ['STAT', 0, false],
    ['DELE', 1, false],
    ['NOOP', 0, false],
    ['RSET', 0, false],
    ['QUIT', 0, false],
    ['USER', 1, false],
    ['PASS', 1, false],
    ['APOP', 2, false],
    ['AUTH', 1, false],
    ['STLS', 0, false],
    ['XTND', 0, false],
  ];
  for (const [verb, argCount, multiline] of cases) {
    it(`says a +OK to ${verb} with ${argCount} argument(s) is ${multiline ? 'multi-line' : 'single-line'}`, () => {
      expect(isMultiline(verb, argCount)).toBe(multiline);
    });
  }
});
