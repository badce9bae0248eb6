import { describe, expect, it } from 'vitest';
import { BASE_DIR, configOf, onlyProblem, problemsOf } from './helpers.ts';

describe('validateConfig: backend', () => {
  it('reports a missing backend as one problem at backend', () => {
    const p = onlyProblem((raw) => delete raw.backend);
    expect(p).toMatchObject({ path: 'backend', message: 'missing' });
    expect(p.expected).toContain('host and port');
  });

  it('turns host and port into a one-server pool with safe defaults', () => {
    expect(configOf().backend).toEqual({
      servers: [{ host: '127.0.0.1', port: 1110 }],
      tls: 'none',
      rejectUnauthorized: true,
      ca: null,
      servername: null,
      connectTimeout: 5000,
      connect: 'on-login',
      proxyProtocol: false,
      allowPlaintextCredentials: false,
      probeInterval: 30000,
      downFor: 30000,
    });
  });

  it('accepts a servers list instead of host and port', () => {
    const b = configOf((raw) => (raw.backend = { servers: [{ host: 'a', port: 110 }, { host: 'b', port: 995 }] })).backend;
    expect(b.servers).toEqual([{ host: 'a', port: 110 }, { host: 'b', port: 995 }]);
  });

  it('rejects servers together with host and port', () => {
    const p = onlyProblem((raw) => (raw.backend.servers = [{ host: 'b', port: 110 }]));
    expect(p).toMatchObject({ path: 'backend.servers', expected: 'either host and port, or servers' });
  });

  it('rejects an empty servers list', () => {
    expect(onlyProblem((raw) => (raw.backend = { servers: [] }))).toMatchObject({ path: 'backend.servers' });
  });

  it('rejects a pool server without a port', () => {
    expect(onlyProblem((raw) => (raw.backend = { servers: [{ host: 'a', port: 1 }, { host: 'b' }] }))).toMatchObject({
      path: 'backend.servers[1].port',
      message: 'missing',
    });
  });

  it('rejects a backend with a host but no port', () => {
    expect(onlyProblem((raw) => delete raw.backend.port)).toMatchObject({ path: 'backend.port', message: 'missing' });
  });

  it('rejects backend port 0, which cannot be connected to', () => {
    expect(onlyProblem((raw) => (raw.backend.port = 0))).toMatchObject({ path: 'backend.port', message: 'found 0' });
  });

  it('rejects a backend tls mode outside none, implicit, starttls', () => {
    expect(onlyProblem((raw) => (raw.backend.tls = 'ssl'))).toMatchObject({ path: 'backend.tls', message: 'found "ssl"' });
  });

  it('rejects proxyProtocol: true, which does not say which version', () => {
    expect(onlyProblem((raw) => (raw.backend.proxyProtocol = true))).toMatchObject({
      path: 'backend.proxyProtocol',
      expected: 'false, v1 or v2',
    });
  });

  it('rejects a connect mode outside on-login and on-accept', () => {
    expect(onlyProblem((raw) => (raw.backend.connect = 'lazy'))).toMatchObject({ path: 'backend.connect' });
  });

  it('rejects a zero connectTimeout', () => {
    const p = onlyProblem((raw) => (raw.backend.connectTimeout = '0s'));
    expect(p).toMatchObject({ path: 'backend.connectTimeout', message: 'found "0s"' });
    expect(p.expected).toContain('above 0');
  });

  it('allows rejectUnauthorized: false (warning about it is the app\'s business)', () => {
    const b = configOf((raw) => Object.assign(raw.backend, { tls: 'implicit', rejectUnauthorized: false })).backend;
    expect(b.rejectUnauthorized).toBe(false);
  });

  it('resolves backend.ca against the config folder', () => {
    expect(configOf((raw) => (raw.backend.ca = 'ca.pem')).backend.ca).toBe(`${BASE_DIR}/ca.pem`);
  });
});

describe('validateConfig: routes', () => {
  const route = (over: Record<string, unknown> = {}) => ({
    match: '*@legacy.example.org',
    backend: { host: '10.0.0.5', port: 110 },
    ...over,
  });

  it('merges a route backend over the top-level backend, always connecting at login', () => {
    const [r] = configOf((raw) => {
      Object.assign(raw.backend, { tls: 'implicit', connectTimeout: '2s', connect: 'on-accept', servername: 'top' });
      raw.routes = [route({ loginAs: 'local-part' })];
    }).routes;
    expect(r?.loginAs).toBe('local-part');
    expect(r?.backend).toMatchObject({
      servers: [{ host: '10.0.0.5', port: 110 }],
      tls: 'implicit',
      connectTimeout: 2000,
      connect: 'on-login',
      servername: null,
    });
  });

  it('defaults loginAs to as-is', () => {
    expect(configOf((raw) => (raw.routes = [route()])).routes[0]?.loginAs).toBe('as-is');
  });

  it('rejects a route with an empty match', () => {
    expect(onlyProblem((raw) => (raw.routes = [route({ match: '' })]))).toMatchObject({ path: 'routes[0].match' });
  });

  it('rejects a route whose /regex/ does not compile', () => {
    expect(onlyProblem((raw) => (raw.routes = [route({ match: '/(unclosed/i' })]))).toMatchObject({
      path: 'routes[0].match',
      message: 'found "/(unclosed/i"',
    });
  });

  it('rejects a route /regex/ with unknown flags', () => {
    expect(onlyProblem((raw) => (raw.routes = [route({ match: '/^a/q' })]))).toMatchObject({ path: 'routes[0].match' });
  });

  it('rejects a route /regex/ with a nested quantifier like (.*)*', () => {
    expect(onlyProblem((raw) => (raw.routes = [route({ match: '/^(.*)*@x.org$/' })]))).toMatchObject({
      path: 'routes[0].match',
      message: 'found "/^(.*)*@x.org$/"',
      expected: expect.stringContaining('exponential time'),
    });
  });

  it('accepts a route /regex/ that compiles', () => {
    expect(configOf((raw) => (raw.routes = [route({ match: '/^a.*@x\\.org$/i' })])).routes).toHaveLength(1);
  });

  it('rejects a route without a backend', () => {
    expect(onlyProblem((raw) => (raw.routes = [{ match: 'alice' }]))).toMatchObject({
      path: 'routes[0].backend',
      message: 'missing',
    });
  });

  it('rejects a route backend that names no server', () => {
    const problems = problemsOf((raw) => (raw.routes = [route({ backend: { tls: 'none' } })]));
    expect(problems.map((p) => p.path)).toEqual(['routes[0].backend.host', 'routes[0].backend.port']);
  });

  it('rejects connect in a route backend, which is always reached at login', () => {
    const p = onlyProblem((raw) => (raw.routes = [route({ backend: { host: 'a', port: 1, connect: 'on-accept' } })]));
    expect(p.path).toBe('routes[0].backend.connect');
    expect(p.message).toMatch(/^unknown key "connect"/);
  });

  it('rejects a loginAs outside as-is and local-part', () => {
    expect(onlyProblem((raw) => (raw.routes = [route({ loginAs: 'domain' })]))).toMatchObject({
      path: 'routes[0].loginAs',
      expected: 'one of: as-is, local-part',
    });
  });

  it('rejects routes that are not a list', () => {
    expect(onlyProblem((raw) => (raw.routes = route()))).toMatchObject({ path: 'routes', message: 'found a mapping' });
  });
});
