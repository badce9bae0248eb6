/**
 * AUTH PLAIN and LOGIN (RFC 5034, RFC 4616, draft-murchison-sasl-login) run by the
 * gateway itself: it collects the credentials so policy sees the user before the
 * backend does, and a lockout costs the backend nothing. The backend's mechanisms whose user
 * the gateway can read (RELAYED_MECHANISMS) are relayed; no other is offered.
 */
import { latin1AsUtf8, utf8AsLatin1 } from '../protocol/command.ts';
import type { ReplyKey } from '../protocol/replies.ts';
import {
  LOGIN_PASS_PROMPT, LOGIN_USER_PROMPT, Secret, decodeLoginField, decodePlain, isCancel, isRelayedMechanism,
} from '../protocol/sasl.ts';

export const LOCAL_MECHANISMS = ['PLAIN', 'LOGIN'] as const;
export type LocalMechanism = (typeof LOCAL_MECHANISMS)[number];

export interface Credentials {
  /** The login name as text (for policy, routing and audit). */
  readonly user: string;
  readonly password: Secret;
  /** The same two as the bytes to put on the wire (latin1 strings, one char per byte). */
  readonly wireUser: string;
  readonly wirePassword: Secret;
  readonly authzid: string;
  readonly mechanism: 'USER' | LocalMechanism;
}

/** USER/PASS arguments arrive as bytes: they go to the backend unchanged and are read as UTF-8 when they are. */
export function credentialsFromUserPass(userBytes: string, passBytes: string): Credentials {
  return {
    user: latin1AsUtf8(userBytes) ?? userBytes,
    password: new Secret(latin1AsUtf8(passBytes) ?? passBytes),
    wireUser: userBytes,
    wirePassword: new Secret(passBytes),
    authzid: '',
    mechanism: 'USER',
  };
}

/** SASL fields are UTF-8 text (RFC 4616): encode them for a USER/PASS backend login. */
function credentialsFromSasl(user: string, password: Secret, authzid: string, mechanism: LocalMechanism): Credentials {
  return { user, password, wireUser: utf8AsLatin1(user), wirePassword: new Secret(utf8AsLatin1(password.reveal())), authzid, mechanism };
}

export type SaslStep =
  | { readonly type: 'challenge'; readonly text: string }
  | { readonly type: 'done'; readonly credentials: Credentials }
  | { readonly type: 'fail'; readonly reply: ReplyKey; readonly reason: string };

export function isLocalMechanism(m: string): m is LocalMechanism {
  return m === 'PLAIN' || m === 'LOGIN';
}

/**
 * What CAPA and a bare AUTH list: PLAIN and LOGIN (run here), then the backend's mechanisms
 * the gateway can relay with a known user; none relayed while routes pick the backend by user.
 */
export function offeredMechanisms(backendSasl: readonly string[] | null, routing: boolean): string[] {
  const relayed = routing ? [] : (backendSasl ?? []).filter((m) => !isLocalMechanism(m) && isRelayedMechanism(m));
  return ['PLAIN', 'LOGIN', ...relayed];
}

const fail = (reply: ReplyKey, reason: string): SaslStep => ({ type: 'fail', reply, reason });

export class LocalSaslExchange {
  private user: string | null = null;

  constructor(readonly mechanism: LocalMechanism) {}

  start(initial: string | null): SaslStep {
    if (initial === null) {
      return { type: 'challenge', text: this.mechanism === 'PLAIN' ? '' : LOGIN_USER_PROMPT };
    }
    return this.respond(initial);
  }

  respond(line: string): SaslStep {
    if (isCancel(line)) return fail('authCancelled', 'sasl-cancelled');
    if (this.mechanism === 'PLAIN') {
      const r = decodePlain(line);
      if (!r.ok) return r.error === 'bad-char' ? fail('authFailed', 'sasl-forbidden-chars') : fail('badBase64', 'sasl-bad-data');
      return { type: 'done', credentials: credentialsFromSasl(r.value.authcid, r.value.password, r.value.authzid, 'PLAIN') };
    }
    const field = decodeLoginField(line);
    if (!field.ok) return field.error === 'bad-char' ? fail('authFailed', 'sasl-forbidden-chars') : fail('badBase64', 'sasl-bad-data');
    if (this.user === null) {
      this.user = field.value;
      return { type: 'challenge', text: LOGIN_PASS_PROMPT };
    }
    return { type: 'done', credentials: credentialsFromSasl(this.user, new Secret(field.value), '', 'LOGIN') };
  }
}
