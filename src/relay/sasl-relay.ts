/**
 * A relayed SASL exchange (CRAM-MD5, SCRAM, XOAUTH2/OAUTHBEARER without an initial response)
 * whose user arrives in the client's first line: that line is held, parsed for the user,
 * charged to that user and the source, and only then forwarded. A line without a readable
 * user, or a charge that is refused, is never forwarded: the backend gets "*" (cancel) instead
 * and the session answers like any failed login. Later lines go through re-serialised.
 */
import { hasForbiddenChars, isCancel, userFromClientFirst } from '../protocol/sasl.ts';
import type { AuthTicket } from '../policy/auth-limits.ts';
import { isOverlongUserName } from '../policy/user-pattern.ts';
import type { Pop3Session } from './session.ts';

export interface RelayState {
  readonly mechanism: string;
  /** The first client line has been seen. */
  identified: boolean;
  /** The user read from it (null: none yet, or unreadable). */
  user: string | null;
  /** Set once the identifying line was charged and forwarded. */
  ticket: AuthTicket | null;
  /** Why the identifying line was not forwarded: unreadable, refused by the limits, or cancelled by the client. */
  refused: 'unreadable' | 'ip-locked' | 'user-locked' | 'cancelled' | null;
}

const relays = new WeakMap<Pop3Session, RelayState>();

export function beginRelay(s: Pop3Session, mechanism: string): RelayState {
  const state: RelayState = { mechanism, identified: false, user: null, ticket: null, refused: null };
  relays.set(s, state);
  return state;
}

export function endRelay(s: Pop3Session): void {
  relays.delete(s);
}

/** A readable user fit to key on, or null. */
export function readUser(mechanism: string, b64: string): string | null {
  // The line is already bounded by limits.saslLine (an OAuth token may be long); parsing is linear.
  const user = userFromClientFirst(mechanism, b64);
  if (user === null || hasForbiddenChars(user) || isOverlongUserName(user)) return null;
  return user;
}

/** One client line while a relayed exchange waits for it. */
export function relayClientLine(s: Pop3Session, text: string): void {
  s.phase = 'login-pending';
  s.busy = true;
  const state = relays.get(s);
  if (state === undefined || state.identified) {
    forward(s, text);
    return;
  }
  state.identified = true;
  void identify(s, state, text).catch((err) => s.internalError(err));
}

async function identify(s: Pop3Session, state: RelayState, text: string): Promise<void> {
  if (isCancel(text)) {
    state.refused = 'cancelled';
    forward(s, '*');
    return;
  }
  const user = readUser(state.mechanism, text);
  if (user === null) {
    state.refused = 'unreadable';
    forward(s, '*');
    return;
  }
  state.user = user;
  const charged = await s.deps.auth.charge(s.address.ip, s.deps.backends.loginNameFor(user), null);
  if (!charged.allowed) {
    state.refused = charged.reason;
    forward(s, '*');
    return;
  }
  if (s.closing) {
    await s.deps.auth.abandoned(charged.ticket);
    return;
  }
  state.ticket = charged.ticket;
  forward(s, text);
}

function forward(s: Pop3Session, text: string): void {
  // Re-serialised, never the raw bytes: a NUL or CR cannot reach the backend.
  const safe = hasForbiddenChars(text) || /[\x00-\x1f\x7f]/.test(text) ? '*' : text;
  s.writeBackendLine(`${safe}\r\n`);
}
