/**
 * POP3 session phases (RFC 1939 section 3) plus the gateway's own in-between
 * phases, and the one gate that decides every (phase, verb) pair.
 */
import type { ReplyKey } from '../protocol/replies.ts';

export type Phase =
  /** Before login. `userGiven` says whether USER was accepted. */
  | 'authorization'
  /** The gateway is logging in to the backend; client lines wait. */
  | 'login-pending'
  /** An AUTH exchange is running; client lines are SASL data. */
  | 'sasl'
  /** STLS answered, TLS handshake in progress; client bytes are not commands. */
  | 'stls-pending'
  | 'transaction'
  /** QUIT sent in TRANSACTION; the backend applies deletions. */
  | 'update'
  | 'closed';

export type GateResult = { readonly ok: true } | { readonly ok: false; readonly reply: ReplyKey };

const AUTHORIZATION_VERBS = new Set(['CAPA', 'USER', 'PASS', 'APOP', 'AUTH', 'STLS', 'QUIT']);
/** LAST: RFC 1460's verb, dropped by RFC 1939 but still answered by popa3d and solid-pop3d. */
const TRANSACTION_VERBS = new Set(['CAPA', 'STAT', 'LIST', 'UIDL', 'TOP', 'RETR', 'DELE', 'NOOP', 'RSET', 'LAST', 'QUIT']);
const LOGIN_VERBS = new Set(['USER', 'PASS', 'APOP', 'AUTH']);
const KNOWN = new Set([...AUTHORIZATION_VERBS, ...TRANSACTION_VERBS]);

const OK: GateResult = { ok: true };
const deny = (reply: ReplyKey): GateResult => ({ ok: false, reply });

/** Argument counts RFC 1939/2449/2595/5034 allow per verb: [min, max]. */
const ARITY: Readonly<Record<string, readonly [number, number]>> = {
  CAPA: [0, 0], USER: [1, 1], PASS: [1, Infinity], APOP: [2, 2], AUTH: [0, 2], STLS: [0, 0],
  STAT: [0, 0], LIST: [0, 1], UIDL: [0, 1], TOP: [2, 2], RETR: [1, 1], DELE: [1, 1],
  NOOP: [0, 0], RSET: [0, 0], LAST: [0, 0], QUIT: [0, 0],
};

export function isKnownVerb(verb: string): boolean {
  return KNOWN.has(verb);
}

/** Message-number arguments must be positive decimal integers (TOP's line count may be 0). */
function argsWellFormed(verb: string, args: readonly string[]): boolean {
  const arity = ARITY[verb];
  if (arity === undefined) return false;
  if (verb === 'PASS') return args.length >= 1;
  if (args.length < arity[0] || args.length > arity[1]) return false;
  if (verb === 'LIST' || verb === 'UIDL' || verb === 'RETR' || verb === 'DELE' || verb === 'TOP') {
    if (!args.every((a) => /^\d{1,9}$/.test(a))) return false;
    if (Number(args[0]) === 0) return false;
  }
  return true;
}

/**
 * The (phase × verb) gate: RFC 1939's state machine enforced by the gateway itself,
 * so out-of-state commands never reach the backend.
 */
export function gate(phase: Phase, verb: string, args: readonly string[], userGiven: boolean): GateResult {
  if (!KNOWN.has(verb)) return deny('unknownCommand');
  if (!argsWellFormed(verb, args)) return deny('badSyntax');
  switch (phase) {
    case 'authorization':
      if (!AUTHORIZATION_VERBS.has(verb)) return deny('badState');
      if (verb === 'PASS' && !userGiven) return deny('passWithoutUser');
      if (verb === 'USER' && userGiven) return deny('badState');
      return OK;
    case 'transaction':
      if (LOGIN_VERBS.has(verb)) return deny('alreadyLoggedIn');
      if (verb === 'STLS') return deny('badState');
      return OK;
    default:
      return deny('badState');
  }
}
