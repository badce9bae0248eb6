/**
 * TLS before passwords. Pure predicates over booleans: the session enforces them and
 * CAPA is built from the same functions, so what we advertise is what we enforce
 * (stalwart's `plain_auth_allowed`).
 */
import type { ListenerConfig, ListenerTls } from '../config/schema.ts';
import { isLoopbackHost, isUnspecifiedHost, type NetworkSet } from './networks.ts';

/** May USER/PASS/APOP/AUTH be used now? (and so: may CAPA list USER and SASL?) */
export function plaintextAuthAllowed(f: {
  listenerTls: ListenerTls;
  requireTls: boolean;
  tlsActive: boolean;
}): boolean {
  if (f.tlsActive || f.listenerTls === 'implicit') return true;
  return !f.requireTls;
}

/** Is STLS offered in CAPA and accepted? Only on a starttls listener, once, before TLS. */
export function stlsOffered(f: { listenerTls: ListenerTls; tlsActive: boolean; stlsAllowed: boolean }): boolean {
  return f.listenerTls === 'starttls' && !f.tlsActive && f.stlsAllowed;
}

/** A `none` listener bound to loopback or inside trustedNetworks carries no password over an open network. */
/**
 * A listener behind a PROXY-speaking balancer carries remote clients even when it
 * binds loopback, so its address says nothing about where passwords travel.
 */
function listenerLocal(l: ListenerConfig, trusted: NetworkSet): boolean {
  return !l.proxyProtocol && hostTrusted(l.host, trusted);
}

function hostTrusted(host: string, trusted: NetworkSet): boolean {
  if (isUnspecifiedHost(host)) return false;
  return isLoopbackHost(host) || trusted.contains(host);
}

/**
 * The requireTls the session must pass to plaintextAuthAllowed for this listener.
 * A `none` listener can never start TLS, so its default `requireTls: true` would refuse
 * every login; on a loopback/trusted host that default is relaxed (startupProblems
 * refuses the other cases, so they never run).
 */
export function effectiveRequireTls(l: ListenerConfig, trusted: NetworkSet): boolean {
  if (l.tls === 'implicit') return false;
  // Report mode enforces nothing (CAPA then offers USER/SASL too); the session audits instead.
  if (l.requireTlsReport === true) return false;
  if (l.tls === 'none' && !l.requireTlsExplicit && listenerLocal(l, trusted)) return false;
  return l.requireTls;
}

/** Reasons the gateway must refuse to start; empty when fine. */
export function startupProblems(listeners: readonly ListenerConfig[], trusted: NetworkSet): string[] {
  const problems: string[] = [];
  listeners.forEach((l, i) => {
    if (l.tls !== 'none' || l.requireTlsExplicit || listenerLocal(l, trusted)) return;
    const where = l.proxyProtocol
      ? `behind a PROXY-protocol balancer (its clients are remote even though it binds ${l.host})`
      : `on ${l.host}, which is neither loopback nor in policy.trustedNetworks,`;
    problems.push(
      `listeners[${i}] (${l.name}): tls: none ${where} would take passwords in plaintext; ` +
        'use tls: starttls or implicit, or write requireTls: false on this listener to accept that explicitly',
    );
  });
  return problems;
}

/** Things worth a warning at start (and on reload); the gateway still runs. */
export function startupWarnings(listeners: readonly ListenerConfig[], trusted: NetworkSet): string[] {
  const warnings: string[] = [];
  listeners.forEach((l, i) => {
    const where = `listeners[${i}] (${l.name})`;
    if (!l.requireTlsExplicit || l.tls === 'implicit') return;
    if (l.requireTlsReport === true) {
      warnings.push(`${where}: requireTls: report, plaintext logins are allowed and audited as "would refuse" (reason tls-required)`);
    } else if (!l.requireTls) {
      const onTrusted = l.tls === 'none' && listenerLocal(l, trusted) ? ' (host is trusted)' : '';
      warnings.push(`${where}: requireTls: false, passwords may be sent in plaintext on ${l.tls === 'none' ? 'this tls: none' : 'this starttls'} listener${onTrusted}`);
    } else if (l.tls === 'none') {
      warnings.push(`${where}: requireTls: true on a tls: none listener refuses every login, since TLS cannot start there`);
    }
  });
  return warnings;
}
