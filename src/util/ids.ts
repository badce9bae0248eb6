import { randomBytes } from 'node:crypto';

/** A 16-character session id: unique enough to grep for, short enough to read. */
export function newSessionId(): string {
  return randomBytes(12).toString('base64url');
}
