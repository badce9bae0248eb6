/** `listeners:` — where clients connect, and how each listener treats TLS. */
import { DEFAULTS, type ListenerConfig, type ListenerTls } from './schema.ts';
import { mapping, type Section } from './section.ts';
import { bindPort, bool, cidr, host, listOf, nullable, oneOf, spec, INVALID, verbList } from './specs.ts';

const LISTENER_KEYS = ['name', 'host', 'port', 'tls', 'requireTls', 'proxyProtocol', 'trustedProxies', 'commands'];
const LISTENER_EXPECTED = 'a list of at least one listener, each with name, host, port and tls';

// Names appear in logs, metrics labels and the audit; keep them to a safe alphabet.
const LISTENER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const listenerName = spec<string>('a name of letters, digits, ".", "_" and "-"', (v) =>
  typeof v === 'string' && LISTENER_NAME.test(v) ? v : INVALID, { type: 'string', pattern: LISTENER_NAME.source });

const listenerTls = oneOf<ListenerTls>(['implicit', 'starttls', 'none']);

// `report`: enforce nothing, audit every plaintext login as "would refuse" (a rollout step).
const requireTlsValue = spec<boolean | 'report'>('true, false or report', (v) =>
  typeof v === 'boolean' || v === 'report' ? v : INVALID, { enum: [true, false, 'report'] });

/** A listener as read: a required key that was missing or invalid (and reported) is undefined. */
export type ListenerDraft = {
  readonly [K in keyof ListenerConfig]: ListenerConfig[K] | (K extends 'name' | 'host' | 'port' | 'tls' ? undefined : never);
};

/**
 * One draft per YAML item, aligned with `listeners[i]` (null where the item is not a mapping).
 * Drafts rather than configs, so a listener with a bad `tls` still takes part in name and port checks.
 */
export function readListeners(root: Section): (ListenerDraft | null)[] {
  return root.list('listeners', listener, LISTENER_EXPECTED, { required: true, min: 1 });
}

const listener = mapping<ListenerDraft>('a listener with name, host, port and tls', LISTENER_KEYS, (s) => {
  const name = s.req('name', listenerName);
  const hostName = s.req('host', host);
  const port = s.req('port', bindPort);
  const tls = s.req('tls', listenerTls);
  const requireTlsExplicit = s.has('requireTls');
  const requireTlsRaw = s.opt('requireTls', requireTlsValue, DEFAULTS.listenerRequireTls);
  const requireTlsReport = requireTlsRaw === 'report';
  const requireTls = requireTlsRaw !== false;
  const proxyProtocol = s.opt('proxyProtocol', bool, false);
  const trustedProxies = s.opt('trustedProxies', listOf(cidr), [...DEFAULTS.trustedProxies]);
  const allow = s.sub('commands', ['allow']).opt('allow', nullable(verbList), null);

  // Without TLS there is no STLS to satisfy requireTls, so no login could ever succeed.
  // Left implicit, requireTls stays true and the app refuses plaintext auth: safe by default.
  if (tls === 'none' && requireTlsExplicit && requireTls && !requireTlsReport) {
    s.problems.add(
      s.at('requireTls'),
      'a tls:none listener with requireTls:true can never authenticate',
      'requireTls: false (explicitly) or tls: starttls',
    );
  }
  return { name, host: hostName, port, tls, requireTls, requireTlsExplicit, requireTlsReport, proxyProtocol, trustedProxies, allow };
});

/** The finished listener, or null when a required key is missing. */
export function completeListener(d: ListenerDraft | null): ListenerConfig | null {
  if (d === null) return null;
  const { name, host: hostName, port, tls } = d;
  if (name === undefined || hostName === undefined || port === undefined || tls === undefined) return null;
  return { ...d, name, host: hostName, port, tls };
}
