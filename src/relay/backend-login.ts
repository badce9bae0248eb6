/**
 * Logging in to the backend with credentials the gateway collected: USER/PASS, AUTH PLAIN
 * when the backend has no USER, APOP as given, or a relayed SASL exchange.
 *
 * PASS goes out only after USER's reply, also to a backend whose CAPA lists PIPELINING (as
 * nginx and Dovecot's own proxy do). Dovecot 2.3's pop3-login answers a USER and PASS that
 * arrive in one segment ~40 ms late (`bench/micro/dovecot-login-pipelining.ts`: 41–44 ms
 * against 5 ms one at a time, alone or 8 at once); the round trip saved was worth far less.
 */
import { encodePlain, type Secret } from '../protocol/sasl.ts';
import { serializeCommand, utf8AsLatin1 } from '../protocol/command.ts';
import type { Credentials } from '../session/sasl-exchange.ts';
import type { ReplyInfo } from '../session/pending.ts';
import type { Pop3Session } from './session.ts';

export type LoginAttempt =
  | { readonly kind: 'password'; readonly credentials: Credentials }
  | { readonly kind: 'apop'; readonly user: string; readonly digest: Secret }
  | { readonly kind: 'sasl-relay'; readonly mechanism: string; readonly initial: string | null };

/** Resolves with the backend's final reply, or null when it offers no usable way in. */
export async function backendLogin(s: Pop3Session, attempt: LoginAttempt): Promise<ReplyInfo | null> {
  const lease = s.backend!;
  const capa = lease.conn.capa ?? s.deps.backends.capabilities();
  switch (attempt.kind) {
    case 'apop':
      return s.send('internal', 'APOP', [], { wire: serializeCommand('APOP', [utf8AsLatin1(lease.loginName(attempt.user)), attempt.digest.reveal()]) });
    case 'sasl-relay': {
      const args = attempt.initial === null ? [attempt.mechanism] : [attempt.mechanism, attempt.initial];
      return s.send('internal', 'AUTH', [attempt.mechanism], { wire: serializeCommand('AUTH', args), sasl: true });
    }
    case 'password': {
      const { user, password, wireUser, wirePassword } = attempt.credentials;
      const name = lease.loginName(user);
      const wireName = name === user ? wireUser : utf8AsLatin1(name);
      // A legacy backend without CAPA still speaks RFC 1939 USER/PASS.
      if (capa === null || capa.has('USER')) {
        const u = await s.send('internal', 'USER', [], { wire: serializeCommand('USER', [wireName]) });
        if (!u.ok || s.closing) return u;
        return s.send('internal', 'PASS', [], { wire: serializeCommand('PASS', [wirePassword.reveal()]) });
      }
      if (capa.sasl.includes('PLAIN')) {
        return s.send('internal', 'AUTH', [], { wire: serializeCommand('AUTH', ['PLAIN', encodePlain(name, password)]) });
      }
      return null;
    }
  }
}
