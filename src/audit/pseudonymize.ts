/**
 * Keyed pseudonyms for user names (logging.auditPseudonymize). HMAC-SHA256 with a secret key
 * (env POP3GW_AUDIT_KEY): the same name always maps to the same pseudonym, so records still
 * correlate, but without the key nobody can test a guessed name against the audit.
 * 16 hex chars (64 bits) keep collisions negligible for any realistic number of users.
 */
import { createHmac } from 'node:crypto';

export const PSEUDONYM_PREFIX = 'u:';
const PSEUDONYM = /^u:[0-9a-f]{16}$/;

export type Pseudonymizer = (user: string) => string;

/** Identity when `key` is null (pseudonymization off). */
export function pseudonymizer(key: string | null): Pseudonymizer {
  if (key === null) return (user) => user;
  return (user) => PSEUDONYM_PREFIX + createHmac('sha256', key).update(user, 'utf8').digest('hex').slice(0, 16);
}

/** True for strings that look like a pseudonym (`u:` + 16 hex). */
export function isPseudonym(s: string): boolean {
  return PSEUDONYM.test(s);
}
