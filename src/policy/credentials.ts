/**
 * Decoded SASL credentials (RFC 4616 PLAIN, LOGIN) with CR, LF or NUL are refused
 * before they reach the backend: there they could end a command line early or split
 * an authzid/authcid/password triple differently than we parsed it.
 */
import { allow, deny, type Verdict } from './verdict.ts';

const FORBIDDEN = /[\r\n\0]/;

export function hasForbiddenCredentialChars(...parts: ReadonlyArray<string | null | undefined>): boolean {
  return parts.some((p) => p != null && FORBIDDEN.test(p));
}

/** A refused credential is a failed login to the client ('authFailed', same delay); the reason is for the audit. */
export function credentialsVerdict(...parts: ReadonlyArray<string | null | undefined>): Verdict {
  return hasForbiddenCredentialChars(...parts) ? deny('bad-credential-chars', 'authFailed') : allow;
}
