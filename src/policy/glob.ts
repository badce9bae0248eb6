/**
 * Glob matching for user patterns (`*` any run of characters, `?` exactly one,
 * everything else literal) without regular expressions: patterns are matched
 * against names nobody has authenticated yet, so a backtracking engine would let
 * one login name freeze the event loop (`*.*.*@x` against '.'.repeat(5000) is cubic).
 *
 * The pattern is split on `*` into fixed-length segments. The first is anchored at
 * the start, the last at the end, and each one between is placed at its leftmost
 * fit after the previous one. Leftmost is always safe because every segment has a
 * fixed length: a later fit only leaves less room for the segments after it. Work is
 * at most (name length × pattern length) character comparisons, with no recursion
 * and no backtracking across segments.
 *
 * Both sides are compared per code point (not UTF-16 unit), so `?` stands for one
 * character even outside the BMP. The caller normalises both sides.
 */

const ANY_ONE = '?';

/** A compiled glob: call with the name as an array of code points. */
export type GlobMatcher = (name: readonly string[]) => boolean;

/** True when the pattern has a wildcard (`*` or `?`), i.e. is not just a literal name. */
export function hasWildcard(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes(ANY_ONE);
}

export function compileGlob(pattern: string): GlobMatcher {
  const segments = pattern.split('*').map((s) => Array.from(s));
  if (segments.length === 1) {
    const only = segments[0]!;
    return (name) => name.length === only.length && fitsAt(only, name, 0);
  }
  const first = segments[0]!;
  const last = segments[segments.length - 1]!;
  const middle = segments.slice(1, -1).filter((s) => s.length > 0); // `**` is one `*`
  const minLength = first.length + last.length + middle.reduce((n, s) => n + s.length, 0);
  return (name) => {
    if (name.length < minLength || !fitsAt(first, name, 0)) return false;
    let pos = first.length;
    const lastStart = name.length - last.length;
    for (const seg of middle) {
      const at = leftmostFit(seg, name, pos, lastStart);
      if (at < 0) return false;
      pos = at + seg.length;
    }
    return pos <= lastStart && fitsAt(last, name, lastStart);
  };
}

/** Does `seg` match `name` starting at `at` (`?` matching any one code point)? */
function fitsAt(seg: readonly string[], name: readonly string[], at: number): boolean {
  for (let i = 0; i < seg.length; i++) {
    const want = seg[i];
    if (want !== ANY_ONE && want !== name[at + i]) return false;
  }
  return true;
}

/** The first index >= from where `seg` fits and ends by `end`, or -1. */
function leftmostFit(seg: readonly string[], name: readonly string[], from: number, end: number): number {
  for (let at = from; at + seg.length <= end; at++) {
    if (fitsAt(seg, name, at)) return at;
  }
  return -1;
}
