/**
 * User name patterns shared by policy rules and routes:
 *   exact name (case-insensitive)   alice@example.org
 *   glob with * and ?               *@example.org, archive@*, user?@x
 *   regular expression              /^(ops|noc)-.*@example\.org$/i
 * Names are compared after normalizeUserName, so "Alice ", "ALICE" and a full-width
 * "ａｌｉｃｅ" all match "alice": a variant spelling must not slip past a rule that
 * narrows what the session may do. Globs are matched in at most (name × pattern) steps, without
 * regular expressions (glob.ts): the names come from unauthenticated clients.
 */
import { compileGlob, hasWildcard } from './glob.ts';

/**
 * The longest login name the gateway accepts, in UTF-8 octets (RFC 5321's path limit is
 * 256; no mailbox name is longer). Checked before any pattern matching or counter key.
 */
export const MAX_USER_NAME_OCTETS = 255;

export class UserPatternError extends Error {
  readonly code = 'BAD_USER_PATTERN';
}

/** Unicode NFKC, surrounding whitespace removed, lower case. */
export function normalizeUserName(user: string): string {
  return user.normalize('NFKC').trim().toLowerCase();
}

export function isRegexPattern(p: string): boolean {
  return /^\/.*\/[a-z]*$/s.test(p);
}

/** True when the name is longer than any login name the gateway accepts (UTF-8 octets). */
export function isOverlongUserName(user: string): boolean {
  // A UTF-16 unit is at most 3 octets: short names need no count.
  return user.length * 3 > MAX_USER_NAME_OCTETS && Buffer.byteLength(user, 'utf8') > MAX_USER_NAME_OCTETS;
}

/**
 * Throws UserPatternError for a regex that doesn't compile. A name over
 * MAX_USER_NAME_OCTETS matches nothing and costs nothing: the check comes before
 * normalisation and before any matcher runs (a regex is the admin's, the name is not).
 */
export function compileUserPattern(pattern: string): (user: string) => boolean {
  if (isRegexPattern(pattern)) {
    const end = pattern.lastIndexOf('/');
    let re: RegExp;
    try {
      // g/y would make test() stateful between calls.
      re = new RegExp(pattern.slice(1, end), pattern.slice(end + 1).replace(/[gy]/g, ''));
    } catch (err) {
      throw new UserPatternError(`invalid regular expression ${pattern}: ${(err as Error).message}`);
    }
    // Either spelling may match: rules narrow, so matching too much is the safe side.
    return (user) => {
      if (isOverlongUserName(user)) return false;
      const n = user.normalize('NFKC').trim();
      return re.test(n) || re.test(n.toLowerCase());
    };
  }
  const want = normalizeUserName(pattern);
  if (!hasWildcard(want)) return (user) => !isOverlongUserName(user) && normalizeUserName(user) === want;
  const glob = compileGlob(want);
  return (user) => !isOverlongUserName(user) && glob(Array.from(normalizeUserName(user)));
}
