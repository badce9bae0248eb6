/**
 * What the client is told in CAPA, built from the same predicates that enforce
 * policy, so what is advertised is what is allowed.
 */
import { buildCapaReply } from '../protocol/capa.ts';
import { plaintextAuthAllowed, stlsOffered, effectiveRequireTls } from '../policy/tls-gate.ts';
import { offeredMechanisms } from '../session/sasl-exchange.ts';
import type { Pop3Session } from './session.ts';

export function requireTlsFor(s: Pop3Session): boolean {
  return effectiveRequireTls(s.deps.listener, s.deps.trusted);
}

/** The whole CAPA reply without its final CRLF (respond() adds it). */
export function capaReply(s: Pop3Session): string {
  const d = s.deps;
  const base = d.commands.allowedVerbs(d.listener.name);
  const allowed = s.phase === 'transaction' && s.rules !== null ? s.rules.allowedVerbs(base) : base;
  const authorization = s.phase !== 'transaction';
  const plain = plaintextAuthAllowed({ listenerTls: d.listener.tls, requireTls: requireTlsFor(s), tlsActive: s.tlsActive });
  const backend = s.backend?.conn.capa ?? d.backends.capabilities();
  const impl = d.config.capa.implementation;
  const text = buildCapaReply({
    backend,
    stls: authorization && stlsOffered({ listenerTls: d.listener.tls, tlsActive: s.tlsActive, stlsAllowed: allowed.has('STLS') }),
    user: authorization && plain && allowed.has('USER'),
    sasl: authorization && plain && allowed.has('AUTH') ? offeredMechanisms(backend?.sasl ?? null, d.backends.routing) : [],
    allowedVerbs: allowed,
    implementation: impl === 'hide' ? null : impl === 'relay' ? (backend?.implementation ?? null) : impl,
    phase: authorization ? 'authorization' : 'transaction',
  });
  return text.endsWith('\r\n') ? text.slice(0, -2) : text;
}
