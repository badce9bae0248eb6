import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileGlob } from '../../../src/policy/glob.ts';
import { compileUserPattern } from '../../../src/policy/user-pattern.ts';

const glob = (pattern: string, name: string): boolean => compileGlob(pattern)(Array.from(name));

/** The glob semantics as a regex (what the gateway used to run): fine for tiny inputs only. */
function reference(pattern: string, name: string): boolean {
  const source = Array.from(pattern)
    .map((ch) => (ch === '*' ? '.*' : ch === '?' ? '.' : ch.replace(/[\\^$.|+()[\]{}/]/g, '\\$&')))
    .join('');
  return new RegExp(`^${source}$`, 'su').test(name);
}

describe('glob matching', () => {
  it.each([
    // pattern, name, expected
    ['alice@x.org', 'alice@x.org', true],
    ['alice@x.org', 'alice@x.or', false],
    ['alice@x.org', 'alice@x.orgg', false],
    ['', '', true],
    ['', 'a', false],
    ['*', '', true],
    ['*', 'anything at all', true],
    ['archive@*', 'archive@x.org', true],
    ['archive@*', 'archive@', true],
    ['archive@*', 'archive2@x.org', false],
    ['*@legacy.example.org', 'bob@legacy.example.org', true],
    ['*@legacy.example.org', '@legacy.example.org', true],
    ['*@legacy.example.org', 'bob@legacy.example.org.evil', false],
    ['*@legacy.example.org', 'legacy.example.org', false],
    ['ops-*@example.org', 'ops-1@example.org', true],
    ['ops-*@example.org', 'ops-@example.org', true],
    ['ops-*@example.org', 'ops@example.org', false],
    ['*.*.*@legacy.example.org', 'a.b.c@legacy.example.org', true],
    ['*.*.*@legacy.example.org', '..@legacy.example.org', true],
    ['*.*.*@legacy.example.org', 'a.b@legacy.example.org', false],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['a*a', 'a', false], // the two literal a's may not overlap
    ['a*a', 'aa', true],
    ['ab*ba', 'aba', false],
    ['a**b', 'ab', true], // an empty segment is just one more *
    ['**', '', true],
    ['user?@x.org', 'user1@x.org', true],
    ['user?@x.org', 'user@x.org', false],
    ['user?@x.org', 'user12@x.org', false],
    ['?*', '', false],
    ['*?', 'x', true],
    ['*?b?*', 'aab', false],
    ['*?b?*', 'abc', true],
    ['u?@x', 'u😀@x', true], // ? is one code point, not one UTF-16 unit
    ['u??@x', 'u😀@x', false],
    ['*😀', 'x😀', true],
    ['ü*@straße.de', 'über@straße.de', true],
    ['a.b+(c)@x.org', 'a.b+(c)@x.org', true],
    ['a.b+(c)@x.org', 'aXb+(c)@x.org', false],
  ])('matches %j against %j: %s', (pattern, name, expected) => {
    expect(glob(pattern, name)).toBe(expected);
    expect(reference(pattern, name)).toBe(expected); // the table itself is right
  });

  it('agrees with the regex reference on random small patterns and names', () => {
    const patternChar = fc.constantFrom('a', 'b', '.', '@', '*', '?', '😀', 'é');
    const nameChar = fc.constantFrom('a', 'b', '.', '@', '😀', 'é', '*', '?');
    fc.assert(
      fc.property(fc.array(patternChar, { maxLength: 8 }), fc.array(nameChar, { maxLength: 12 }), (p, n) => {
        const pattern = p.join('');
        const name = n.join('');
        expect(glob(pattern, name)).toBe(reference(pattern, name));
      }),
      { numRuns: 5000 },
    );
  });

  it('agrees with the reference for names built from the pattern itself (mostly matches)', () => {
    const piece = fc.constantFrom('a', 'b', '.', '😀');
    fc.assert(
      fc.property(fc.array(fc.oneof(piece, fc.constant('*'), fc.constant('?')), { maxLength: 8 }), fc.array(fc.array(piece, { maxLength: 3 }), { maxLength: 8 }), (p, fills) => {
        const pattern = p.join('');
        // Replace each wildcard by some characters (one for ?), so many names do match.
        const name = p.map((ch, i) => (ch === '*' ? (fills[i] ?? []).join('') : ch === '?' ? ((fills[i] ?? [])[0] ?? 'a') : ch)).join('');
        expect(glob(pattern, name)).toBe(reference(pattern, name));
        expect(glob(pattern, name)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('matches adversarial names in time proportional to name times pattern, not cubic', () => {
    const cases: Array<[string, string]> = [
      ['*.*.*@legacy.example.org', '.'.repeat(100_000)],
      ['*.*.*@legacy.example.org', 'a.'.repeat(50_000)],
      ['*a*a*a*a*a*b', 'a'.repeat(20_000)],
      ['*aaaaaaaaab*', 'a'.repeat(20_000)],
    ];
    for (const [pattern, name] of cases) {
      const m = compileGlob(pattern);
      const chars = Array.from(name);
      const started = performance.now();
      expect(m(chars)).toBe(false);
      expect(performance.now() - started).toBeLessThan(50);
    }
  });
});

describe('user patterns and the name length cap', () => {
  const long = (octets: number): string => 'a'.repeat(octets - '@legacy.example.org'.length) + '@legacy.example.org';

  it('matches a name of exactly 255 octets and no longer one, for globs, exact names and regexes', () => {
    const at255 = long(255);
    const at256 = long(256);
    for (const pattern of ['*@legacy.example.org', at255, '/@legacy\\.example\\.org$/']) {
      const m = compileUserPattern(pattern);
      expect(m(at255)).toBe(true);
    }
    for (const pattern of ['*@legacy.example.org', '*', '/@legacy\\.example\\.org$/', '/.*/']) {
      expect(compileUserPattern(pattern)(at256)).toBe(false);
    }
  });

  it('counts the cap in UTF-8 octets, not characters', () => {
    const m = compileUserPattern('*');
    expect(m('é'.repeat(127))).toBe(true); // 254 octets
    expect(m('é'.repeat(128))).toBe(false); // 256 octets, 128 characters
    expect(m('😀'.repeat(63))).toBe(true); // 252 octets
    expect(m('😀'.repeat(64))).toBe(false); // 256 octets
  });

  it('never hands an over-long name to an admin regex, however slow that regex is', () => {
    const m = compileUserPattern('/^(a+)+$/');
    const started = performance.now();
    expect(m(`${'a'.repeat(5000)}!`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(50);
  });

  it('matches a 5,000-character and a 255-character hostile name against *.*.*@domain in milliseconds', () => {
    const m = compileUserPattern('*.*.*@legacy.example.org');
    for (const name of ['.'.repeat(5000), 'a.'.repeat(2500), '.'.repeat(255), 'a.'.repeat(127), `${'.'.repeat(235)}@legacy.example.org`]) {
      const started = performance.now();
      m(name);
      expect(performance.now() - started).toBeLessThan(50);
    }
    expect(m(`${'.'.repeat(235)}@legacy.example.org`)).toBe(true);
  });
});
