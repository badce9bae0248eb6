/** `backend:` and `routes:` — where sessions are relayed, and per-user exceptions. */
import { DEFAULTS, type BackendConfig, type BackendServer, type BackendTls, type RouteConfig } from './schema.ts';
import { mapping, type Section } from './section.ts';
import {
  bool, duration, filePath, host, INVALID, listOf, nullable, oneOf, port, spec, text, userPattern, type Spec,
} from './specs.ts';

const BACKEND_KEYS = [
  'host', 'port', 'servers', 'tls', 'rejectUnauthorized', 'ca', 'servername', 'connectTimeout', 'connect',
  'proxyProtocol', 'allowPlaintextCredentials', 'probeInterval', 'downFor',
];
// A route is chosen from the user name, so its backend is always reached at login: no `connect`.
const ROUTE_BACKEND_KEYS = BACKEND_KEYS.filter((k) => k !== 'connect');
const ROUTE_KEYS = ['match', 'backend', 'loginAs'];
const BACKEND_EXPECTED = 'a mapping with host and port (or servers: a list of {host, port})';
const SERVERS_EXPECTED = 'a list (at least 1) of mappings with host and port';

const backendTls = oneOf<BackendTls>(['none', 'implicit', 'starttls']);
const connectMode = oneOf<'on-login' | 'on-accept'>(['on-login', 'on-accept']);
const proxyVersion = spec<false | 'v1' | 'v2'>('false, v1 or v2', (v) =>
  v === false || v === 'v1' || v === 'v2' ? v : INVALID, { enum: [false, 'v1', 'v2'] });
const loginAs = oneOf<'as-is' | 'local-part'>(['as-is', 'local-part']);

const server = mapping<BackendServer>('a mapping with host and port', ['host', 'port'], (s) => {
  const h = s.req('host', host);
  const p = s.req('port', port);
  return h === undefined || p === undefined ? INVALID : { host: h, port: p };
});
const serverPool = listOf(server, { min: 1, expected: SERVERS_EXPECTED });

/** What a route backend inherits when the top-level backend itself is invalid (its problems are reported). */
const FALLBACK: BackendConfig = {
  ...DEFAULTS.backend,
  servers: [],
  ca: null,
  servername: null,
};

/**
 * The top-level backend (`inherit` null) or a route's backend, whose unset keys come from
 * the top-level one. Either form names the servers: `host` + `port`, or `servers`.
 */
export function backendSpec(baseDir: string, inherit: BackendConfig | null): Spec<BackendConfig> {
  const keys = inherit === null ? BACKEND_KEYS : ROUTE_BACKEND_KEYS;
  return mapping(BACKEND_EXPECTED, keys, (s) => readBackend(s, baseDir, inherit) ?? INVALID);
}

function readBackend(s: Section, baseDir: string, inherit: BackendConfig | null): BackendConfig | null {
  const base = inherit ?? FALLBACK;
  const servers = readServers(s);
  const config: BackendConfig = {
    servers: servers ?? [],
    tls: s.opt('tls', backendTls, base.tls),
    rejectUnauthorized: s.opt('rejectUnauthorized', bool, base.rejectUnauthorized),
    ca: s.opt('ca', nullable(filePath(baseDir)), base.ca),
    // The top-level servername names the top-level host's certificate; a route's host is another one.
    servername: s.opt('servername', nullable(text), null),
    connectTimeout: s.opt('connectTimeout', duration(1), base.connectTimeout),
    connect: inherit === null ? s.opt('connect', connectMode, base.connect) : 'on-login',
    proxyProtocol: s.opt('proxyProtocol', proxyVersion, base.proxyProtocol),
    allowPlaintextCredentials: s.opt('allowPlaintextCredentials', bool, base.allowPlaintextCredentials),
    probeInterval: s.opt('probeInterval', duration(1), base.probeInterval),
    downFor: s.opt('downFor', duration(1), base.downFor),
  };
  return servers === null ? null : config;
}

function readServers(s: Section): BackendServer[] | null {
  s.oneOfGroups([['host', 'port'], ['servers']]);
  if (s.has('servers') && (s.has('host') || s.has('port'))) {
    s.problems.add(s.at('servers'), 'both "servers" and "host"/"port" are set', 'either host and port, or servers');
    return null;
  }
  // Every key is read on every path, so the schema learns all three whichever form is used.
  const pool = s.opt('servers', serverPool, null);
  const h = s.opt('host', host, null);
  const p = s.opt('port', port, null);
  if (s.has('servers')) return pool;
  if (!s.has('host')) s.problems.add(s.at('host'), 'missing', host.expected);
  if (!s.has('port')) s.problems.add(s.at('port'), 'missing', port.expected);
  return h === null || p === null ? null : [{ host: h, port: p }];
}

export function readRoutes(root: Section, baseDir: string, backend: BackendConfig | null): RouteConfig[] {
  const routeBackend = backendSpec(baseDir, backend ?? FALLBACK);
  const route = mapping<RouteConfig>('a route with match and backend', ROUTE_KEYS, (s) => {
    const match = s.req('match', userPattern);
    const to = s.req('backend', routeBackend);
    const as = s.opt('loginAs', loginAs, 'as-is');
    return match === undefined || to === undefined ? INVALID : { match, backend: to, loginAs: as };
  });
  return root.list('routes', route, 'a list of routes, each with match and backend').filter((r) => r !== null);
}
