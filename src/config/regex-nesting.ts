/**
 * Finds a repeated group that itself contains a repetition, like `(a+)+`, `(.*)*`
 * or `(\w+\s?){2,}`: the shape that makes a backtracking engine take exponential
 * time on a name that almost matches. User-pattern regexes are the admin's, but the
 * names they run on come from unauthenticated clients, so --check refuses the shape.
 * It is the star-height test (as safe-regex does): simple and conservative, so a
 * harmless `(a+b)+` is refused too; a glob or a flatter regex says the same thing.
 */

interface Quantifier {
  /** Characters the quantifier takes, a trailing lazy `?` included. */
  readonly length: number;
  /** Allows more than one repetition (`*`, `+`, `{n,}`, `{n,m}` with m > 1). */
  readonly repeats: boolean;
  /** Has no upper bound (`*`, `+`, `{n,}`). */
  readonly unbounded: boolean;
}

function quantifierAt(src: string, i: number): Quantifier | null {
  const ch = src[i];
  let q: Quantifier | null = null;
  if (ch === '*' || ch === '+') q = { length: 1, repeats: true, unbounded: true };
  else if (ch === '?') q = { length: 1, repeats: false, unbounded: false };
  else if (ch === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i));
    if (m) {
      const unbounded = m[2] !== undefined && m[3] === '';
      const max = m[2] === undefined ? Number(m[1]) : unbounded ? Infinity : Number(m[3]);
      q = { length: m[0].length, repeats: max > 1, unbounded };
    }
  }
  if (q !== null && src[i + q.length] === '?') q = { ...q, length: q.length + 1 };
  return q;
}

/** Length of a group's opening: `(`, `(?:`, `(?=`, `(?!`, `(?<=`, `(?<!`, `(?<name>`. */
function groupOpening(src: string, i: number): number {
  if (src[i + 1] !== '?') return 1;
  if (src[i + 2] === '<' && src[i + 3] !== '=' && src[i + 3] !== '!') {
    const close = src.indexOf('>', i);
    return close < 0 ? 1 : close - i + 1;
  }
  return src[i + 2] === '<' ? 4 : 3;
}

/** End (exclusive) of the character class starting at `i` (`[`). */
function classEnd(src: string, i: number): number {
  let j = i + 1;
  if (src[j] === '^') j++;
  for (; j < src.length; j++) {
    if (src[j] === '\\') j++;
    else if (src[j] === ']') return j + 1;
  }
  return src.length;
}

/** True when `source` (a regex body, no slashes or flags) repeats a group that repeats inside. */
export function hasNestedQuantifier(source: string): boolean {
  // One entry per open group: does it contain a repeating quantifier?
  const groups: boolean[] = [false];
  let i = 0;
  while (i < source.length) {
    const ch = source[i];
    let atomEnd: number;
    let closed: boolean | null = null; // for `)`: whether the closed group repeats inside
    if (ch === '(') {
      groups.push(false);
      i += groupOpening(source, i);
      continue;
    } else if (ch === ')') {
      closed = groups.length > 1 ? groups.pop()! : false;
      atomEnd = i + 1;
    } else if (ch === '[') {
      atomEnd = classEnd(source, i);
    } else if (ch === '\\') {
      atomEnd = i + 2;
    } else {
      atomEnd = i + 1;
    }
    const q = quantifierAt(source, atomEnd);
    if (closed === true && q?.unbounded === true) return true;
    const top = groups.length - 1;
    groups[top] = groups[top]! || closed === true || q?.repeats === true;
    i = atomEnd + (q?.length ?? 0);
  }
  return false;
}
