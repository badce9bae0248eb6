/**
 * Logging in to the backend with credentials the gateway collected: USER/PASS
 * (pipelined when the backend allows), AUTH PLAIN when the backend has no USER,
 * APOP as given, or a relayed SASL exchange.
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
        const pass = serializeCommand('PASS', [wirePassword.reveal()]);
        if (capa?.pipelining === true) {
          const [u, p] = await Promise.all([
            s.send('internal', 'USER', [], { wire: serializeCommand('USER', [wireName]) }),
            s.send('internal', 'PASS', [], { wire: pass }),
          ]);
          return u.ok ? p : u;
        }
        const u = await s.send('internal', 'USER', [], { wire: serializeCommand('USER', [wireName]) });
        if (!u.ok || s.closing) return u;
        return s.send('internal', 'PASS', [], { wire: pass });
      }
      if (capa.sasl.includes('PLAIN')) {
        return s.send('internal', 'AUTH', [], { wire: serializeCommand('AUTH', ['PLAIN', encodePlain(name, password)]) });
      }
      return null;
    }
  }
}
