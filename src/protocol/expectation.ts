/**
 * Which replies carry a body (RFC 1939 section 3, RFC 2449 section 5). Only a +OK status opens a
 * body: a -ERR to any of these is a single line, and the session must not wait for a terminator.
 */

const ALWAYS_MULTILINE: ReadonlySet<string> = new Set(['CAPA', 'RETR', 'TOP']);
/** With a message number these answer for one message on the status line itself. */
const MULTILINE_WITHOUT_ARGUMENT: ReadonlySet<string> = new Set(['LIST', 'UIDL']);

/** True if a +OK reply to this command is followed by a dot-terminated body. */
export function isMultiline(verb: string, argCount: number): boolean {
  const upper = verb.toUpperCase();
  if (ALWAYS_MULTILINE.has(upper)) return true;
  return argCount === 0 && MULTILINE_WITHOUT_ARGUMENT.has(upper);
}
