import { describe, expect, it } from 'vitest';
import { compileUserPattern, normalizeUserName, UserPatternError } from '../../../src/policy/user-pattern.ts';

describe('compileUserPattern', () => {
  it('matches an exact name case-insensitively and ignoring surrounding space', () => {
    const m = compileUserPattern('Alice@Example.org');
    expect(m('alice@example.org')).toBe(true);
    expect(m(' ALICE@EXAMPLE.ORG ')).toBe(true);
    expect(m('alice@example.org.evil')).toBe(false);
    expect(m('xalice@example.org')).toBe(false);
  });

  it('matches *@domain for every user of the domain and no other domain', () => {
    const m = compileUserPattern('*@legacy.example.org');
    expect(m('bob@legacy.example.org')).toBe(true);
    expect(m('Bob@LEGACY.example.org')).toBe(true);
    expect(m('bob@example.org')).toBe(false);
    expect(m('bob@legacy.example.org.evil')).toBe(false);
  });

  it('treats * and ? as glob wildcards and every other character literally', () => {
    expect(compileUserPattern('archive@*')('archive@x.org')).toBe(true);
    expect(compileUserPattern('archive@*')('archive2@x.org')).toBe(false);
    const q = compileUserPattern('user?@x.org');
    expect(q('user1@x.org')).toBe(true);
    expect(q('user12@x.org')).toBe(false);
    const dots = compileUserPattern('a.b+(c)@x.org');
    expect(dots('a.b+(c)@x.org')).toBe(true);
    expect(dots('aXb+(c)@x.org')).toBe(false);
  });

  it('lets ? stand for one character even outside the BMP', () => {
    expect(compileUserPattern('u?@x')('u😀@x')).toBe(true);
  });

  it('compiles /regex/flags and matches either the name as given or its lower case', () => {
    const m = compileUserPattern('/^(ops|noc)-[0-9]+@example\\.org$/');
    expect(m('ops-1@example.org')).toBe(true);
    expect(m('OPS-1@example.org')).toBe(true);
    expect(m('dev-1@example.org')).toBe(false);
    expect(compileUserPattern('/^Bob$/')('Bob')).toBe(true);
    expect(compileUserPattern('/^b/i')('BOB')).toBe(true);
  });

  it('gives the same answer every time for a regex with the g flag', () => {
    const m = compileUserPattern('/bob/g');
    expect([m('bob'), m('bob'), m('bob')]).toEqual([true, true, true]);
  });

  it('throws UserPatternError for a regex that does not compile', () => {
    expect(() => compileUserPattern('/(unclosed/')).toThrow(UserPatternError);
  });

  it('normalises names with NFKC, trimming and lower case', () => {
    expect(normalizeUserName('  ＡＬＩＣＥ\t')).toBe('alice');
    expect(normalizeUserName('ﬁle@x')).toBe('file@x');
  });
});
