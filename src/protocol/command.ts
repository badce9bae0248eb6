/**
 * POP3 command lines (RFC 1939 section 3): a keyword of letters, then arguments separated by spaces.
 *
 * Strings are latin1 so that every byte survives parse → serialize (user names may be UTF-8).
 * Control bytes are refused outright: a CR, LF or NUL inside a line is how a client would try to
 * smuggle a second command past the gateway to the backend.
 */

import { KNOWN_VERBS } from '../config/schema.ts';

export interface Command {
  /** Upper-cased keyword. */
  readonly verb: string;
  /** Arguments split on runs of spaces. */
  readonly args: readonly string[];
  /** Everything after the verb and the one space that follows it (PASS: passwords may hold spaces). */
  readonly rest: string;
}

export type CommandParse =
  | { ok: true; command: Command }
  | { ok: false; error: 'empty' | 'bad-char' | 'bad-verb' };

const SP = 0x20;
const HTAB = 0x09;
const DEL = 0x7f;
const MAX_VERB = 16;

function isForbiddenByte(b: number): boolean {
  return (b < 0x20 && b !== HTAB) || b === DEL;
}

function isLetter(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

export function parseCommand(line: Buffer): CommandParse {
  let blank = true;
  for (let i = 0; i < line.length; i++) {
    const b = line[i]!;
    if (isForbiddenByte(b)) return { ok: false, error: 'bad-char' };
    if (b !== SP && b !== HTAB) blank = false;
  }
  if (blank) return { ok: false, error: 'empty' };

  let verbEnd = 0;
  while (verbEnd < line.length && line[verbEnd] !== SP) verbEnd++;
  if (verbEnd === 0 || verbEnd > MAX_VERB) return { ok: false, error: 'bad-verb' };
  let lower = false;
  let code = 0;
  for (let i = 0; i < verbEnd; i++) {
    const b = line[i]!;
    if (!isLetter(b)) return { ok: false, error: 'bad-verb' };
    if (b >= 0x61) lower = true;
    code = code * 256 + (b & 0xdf);
  }

  const verb = (verbEnd <= 4 ? KEYWORDS.get(code) : undefined) ?? upperVerb(line, verbEnd, lower);
  const rest = verbEnd < line.length ? line.toString('latin1', verbEnd + 1) : '';
  const args = rest === '' ? NO_ARGS : rest.split(' ').filter(nonEmpty);
  return { ok: true, command: { verb, args, rest } };
}

function upperVerb(line: Buffer, end: number, lower: boolean): string {
  const asSent = line.toString('latin1', 0, end);
  return lower ? asSent.toUpperCase() : asSent;
}

const nonEmpty = (arg: string): boolean => arg.length > 0;

/** A keyword's letters, upper-cased, as one number (base 256): "TOP" and "STAT" alike. */
function keywordCode(verb: string): number {
  let code = 0;
  for (let i = 0; i < verb.length; i++) code = code * 256 + verb.charCodeAt(i);
  return code;
}

/**
 * The keywords the gateway knows (KNOWN_VERBS: RFC 1939, 2449, 1734/5034, 2595; four letters
 * at most, the longest a lookup looks for) by their code, so a command line that
 * carries one gets the constant string (no new string per command, nothing to upper-case):
 * every later look-up by verb (the gate, the allowlist, metrics) then finds an internalized
 * key instead of hashing a fresh string against V8's string table. Other verbs are read from
 * the line as before.
 */
const KEYWORDS = new Map<number, string>(KNOWN_VERBS.filter((v) => v.length <= 4).map((v) => [keywordCode(v), v]));

const NO_ARGS: readonly string[] = Object.freeze([]);

/** Wire bytes of argument-less commands (NOOP, STAT, QUIT...), made once: socket writes never change them. */
const BARE = new Map<string, Buffer>();

/**
 * "VERB a b\r\n". Strings are written as latin1 (one byte per char), matching parseCommand.
 * Throws on CR/LF/NUL or a char above U+00FF: either would be a bug upstream, and sending it
 * would corrupt or inject into the backend conversation. Use `utf8AsLatin1` for Unicode text.
 */
export function serializeCommand(verb: string, args: readonly string[]): Buffer {
  if (args.length === 0) {
    const bare = BARE.get(verb);
    if (bare !== undefined) return bare;
  }
  const text = args.length > 0 ? `${verb} ${args.join(' ')}` : verb;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`command text has a char above U+00FF at ${i}`);
    if (c === 0x0d || c === 0x0a || c === 0x00) throw new RangeError(`command text has CR, LF or NUL at ${i}`);
  }
  const wire = Buffer.from(`${text}\r\n`, 'latin1');
  // Only verbs past the gate come here (known ones); the cap keeps the table a handful anyway.
  // A copy of its own, so a kept buffer does not pin a slab of Node's shared pool.
  if (args.length === 0 && BARE.size < 32 && /^[A-Z]{1,16}$/.test(verb)) {
    const kept = Buffer.allocUnsafeSlow(wire.length);
    wire.copy(kept);
    BARE.set(verb, kept);
  }
  return wire;
}

/*
 * Two kinds of string meet in a session: command arguments are latin1 "byte strings" (one char per
 * byte, as parsed), SASL fields are Unicode (decoded from UTF-8). These convert between the two, so
 * a name typed in USER can go into AUTH PLAIN and a SASL name into USER without being mangled.
 */

/** A Unicode string (e.g. a SASL user name) as the latin1 string of its UTF-8 bytes, for serializeCommand. */
export function utf8AsLatin1(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A latin1 byte string (e.g. a USER argument) read as UTF-8; null when the bytes are not valid UTF-8. */
export function latin1AsUtf8(bytes: string): string | null {
  try {
    return utf8.decode(Buffer.from(bytes, 'latin1'));
  } catch (err) {
    if (err instanceof TypeError) return null;
    throw err;
  }
}
