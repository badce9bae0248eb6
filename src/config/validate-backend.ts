/** `backend:` and `routes:` — where sessions are relayed, and per-user exceptions. */
import { DEFAULTS, type BackendConfig, type BackendServer, type BackendTls, type RouteConfig } from './schema.ts';
import type { Path, Problems } from './problems.ts';
import { Section } from './section.ts';
import {
  bool, duration, filePath, host, INVALID, nullable, oneOf, port, spec, text, userPattern, type Checked, type Spec,
} from './specs.ts';

const BACKEND_KEYS = [
  'host', 'port', 'servers', 'tls', 'rejectUnauthorized', 'ca', 'servername', 'connectTimeout', 'connect',
  'proxyProtocol', 'allowPlaintextCredentials', 'probeInterval', 'downFor',
];
// A route is chosen from the user name, so its backend is always reached at login: no `connect`.
const ROUTE_BACKEND_KEYS = BACKEND_KEYS.filter((k) => k !== 'connect');
const ROUTE_KEYS = ['match', 'backend', 'loginAs'];
const BACKEND_EXPECTED = 'a mapping with host and port (or servers: a list of {host, port})';

const backendTls = oneOf<BackendTls>(['none', 'implicit', 'starttls']);
const connectMode = oneOf<'on-login' | 'on-accept'>(['on-login', 'on-accept']);
const proxyVersion = spec<false | 'v1' | 'v2'>('false, v1 or v2', (v) =>
  v === false || v === 'v1' || v === 'v2' ? v : INVALID);
const loginAs = oneOf<'as-is' | 'local-part'>(['as-is', 'local-part']);

const server: Spec<BackendServer> = {
  expected: 'a mapping with host and port',
  check(v: unknown, path: Path, problems: Problems): Checked<BackendServer> {
    const s = Section.item(problems, v, path, ['host', 'port']);
    if (s === null) return INVALID;
    const h = s.req('host', host);
    const p = s.req('port', port);
    return h === undefined || p === undefined ? INVALID : { host: h, port: p };
  },
};

/** What a route backend inherits when the top-level backend itself is invalid (its problems are reported). */
const FALLBACK: BackendConfig = {
  ...DEFAULTS.backend,
  servers: [],
  ca: null,
  servername: null,
};

/**
 * Reads the top-level backend (`inherit` null) or a route's backend, whose unset keys come from
 * the top-level one. Either form names the servers: `host` + `port`, or `servers`.
 */
export function readBackend(
  problems: Problems,
  value: unknown,
  path: Path,
  baseDir: string,
  inherit: BackendConfig | null,
): BackendConfig | null {
  if (value === undefined || value === null) {
    problems.add(path, 'missing', BACKEND_EXPECTED);
    return null;
  }
  const s = Section.item(problems, value, path, inherit === null ? BACKEND_KEYS : ROUTE_BACKEND_KEYS);
  if (s === null) return null;
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
  if (s.has('servers')) {
    if (s.has('host') || s.has('port')) {
      s.problems.add(s.at('servers'), 'both "servers" and "host"/"port" are set', 'either host and port, or servers');
      return null;
    }
    const items = s.value('servers');
    const expected = 'a list (at least 1) of mappings with host and port';
    if (!Array.isArray(items) || items.length === 0) {
      s.problems.found(s.at('servers'), items, expected);
      return null;
    }
    const out: BackendServer[] = [];
    let bad = false;
    items.forEach((item, i) => {
      const one = server.check(item, s.at('servers').concat(i), s.problems);
      if (one === INVALID) bad = true;
      else out.push(one);
    });
    return bad ? null : out;
  }
  const h = s.req('host', host);
  const p = s.req('port', port);
  return h === undefined || p === undefined ? null : [{ host: h, port: p }];
}

export function readRoutes(root: Section, baseDir: string, backend: BackendConfig | null): RouteConfig[] {
  const out: RouteConfig[] = [];
  root.items('routes', 'a list of routes, each with match and backend').forEach((item, i) => {
    const path = ['routes', i];
    const s = Section.item(root.problems, item, path, ROUTE_KEYS);
    if (s === null) return;
    const match = s.req('match', userPattern);
    const routeBackend = readBackend(root.problems, s.value('backend'), s.at('backend'), baseDir, backend ?? FALLBACK);
    const as = s.opt('loginAs', loginAs, 'as-is');
    if (match !== undefined && routeBackend !== null) out.push({ match, backend: routeBackend, loginAs: as });
  });
  return out;
}
