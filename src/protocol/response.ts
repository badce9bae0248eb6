/**
 * Backend status lines: "+OK", "-ERR" (RFC 1939 section 3), optionally with an extended response
 * code "[CODE/SUB]" (RFC 2449 section 8, RFC 3206), and SASL continuations "+ data" (RFC 5034).
 *
 * RFC 1939 says status indicators are upper case; we match them case-insensitively because a
 * lower-case "+ok" is unambiguous and refusing it would only break sessions with odd backends.
 */

export interface StatusLine {
  readonly kind: 'ok' | 'err' | 'continuation';
  /** Upper-cased response code without brackets, e.g. "SYS/TEMP"; null when absent or malformed. */
  readonly code: string | null;
  /** The rest of the line after the status (and the code), latin1. */
  readonly text: string;
}

// resp-code = "[" resp-level *("/" resp-level) "]"; resp-level = 1*rchar;
// rchar = %x21-2E / %x30-5C / %x5E-7F (RFC 2449 section 8: printable ASCII except "/" and "]").
const RESP_CODE = /^\[([\x21-\x2e\x30-\x5c\x5e-\x7f]+(?:\/[\x21-\x2e\x30-\x5c\x5e-\x7f]+)*)\](?: |$)/;

/** The byte at `i` case-folded (| 0x20 folds A-Z onto a-z and no other byte onto them); -1 past the end. */
function foldedAt(line: Buffer, i: number): number {
  return i < line.length ? line[i]! | 0x20 : -1;
}

export function parseStatus(line: Buffer): StatusLine | null {
  const s = line.toString('latin1');
  if (s === '+' || s.startsWith('+ ')) {
    return { kind: 'continuation', code: null, text: s.slice(2) };
  }
  let kind: 'ok' | 'err';
  let afterStatus: number;
  if (line[0] === 0x2b && foldedAt(line, 1) === 0x6f && foldedAt(line, 2) === 0x6b) {
    kind = 'ok';
    afterStatus = 3;
  } else if (line[0] === 0x2d && foldedAt(line, 1) === 0x65 && foldedAt(line, 2) === 0x72 && foldedAt(line, 3) === 0x72) {
    kind = 'err';
    afterStatus = 4;
  } else {
    return null;
  }
  if (s.length === afterStatus) return { kind, code: null, text: '' };
  if (s[afterStatus] !== ' ') return null; // "+OKAY", "-ERROR": not a status indicator
  const text = s.slice(afterStatus + 1);
  // Most replies carry no response code: no regex run for them.
  const match = text.charCodeAt(0) === 0x5b ? RESP_CODE.exec(text) : null;
  if (match === null) return { kind, code: null, text };
  return { kind, code: match[1]!.toUpperCase(), text: text.slice(match[0].length) };
}

/** Remove C0 controls and DEL, e.g. before relaying a backend greeting to the client. */
export function sanitizeLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, '');
}
