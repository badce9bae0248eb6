import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/validate.ts';
import { DEFAULTS, MOZILLA_INTERMEDIATE_CIPHERS } from '../../../src/config/schema.ts';
import { BASE_DIR, configOf, minimal, onlyProblem, problemsOf } from './helpers.ts';

describe('validateConfig: the document as a whole', () => {
  it.each([[null], [undefined], ['listeners'], [[1, 2]]])('reports a document that is not a mapping (%j) at (root)', (raw) => {
    const result = validateConfig(raw, { baseDir: BASE_DIR, file: null });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.problems).toHaveLength(1);
      expect(result.problems[0]?.path).toBe('(root)');
    }
  });

  it('reports an unknown top-level key with a did-you-mean hint', () => {
    const p = onlyProblem((raw) => (raw.shutdownGrase = '5s'));
    expect(p).toMatchObject({ path: 'shutdownGrase', message: 'unknown key "shutdownGrase" (did you mean "shutdownGrace"?)' });
    expect(p.expected).toContain('shutdownGrace');
  });

  it('hints at a known key two edits away, but not three', () => {
    expect(onlyProblem((raw) => (raw.backend.conectTimout = '5s')).message).toContain('did you mean "connectTimeout"?');
    expect(onlyProblem((raw) => (raw.backend.connectTimeoutXYZ = '5s')).message).toBe('unknown key "connectTimeoutXYZ"');
  });

  it('reports an unknown key far from every known one without a hint', () => {
    expect(onlyProblem((raw) => (raw.tls = { colour: 'blue' })).message).toBe('unknown key "colour"');
  });

  it('reports every problem at once, each at its own path', () => {
    const problems = problemsOf((raw) => {
      raw.listeners[0].port = 99500;
      raw.listeners.push({ name: 'pop3s', host: '::', port: 110, tls: 'startls' });
      raw.backend.conectTimeout = '5s';
      raw.policy = { auth: { window: '15 minutes' }, commands: { allow: ['USER', 'XYZZY'] }, rateLimitStore: 'redis' };
      raw.limits = { maxMultiline: 'lots' };
      raw.workers = 0;
    });
    expect(problems.map((p) => p.path).sort()).toEqual([
      'backend.conectTimeout',
      'limits.maxMultiline',
      'listeners[0].port',
      'listeners[1].name',
      'listeners[1].tls',
      'policy.auth.window',
      'policy.commands.allow[1]',
      'policy.rateLimitStore',
      'workers',
    ]);
  });

  it('asks lineOf for each problem\'s path, falling back to the nearest enclosing node', () => {
    const lines: Record<string, number> = { 'listeners,0': 3, 'listeners,0,port': 5, policy: 9 };
    const result = validateConfig(
      { ...minimal(), listeners: [{ name: 'a', host: 'h', port: -5 }], policy: { auth: { window: 'x' } } },
      { baseDir: BASE_DIR, file: null, lineOf: (path) => lines[path.join(',')] },
    );
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.problems).toEqual([
        expect.objectContaining({ path: 'listeners[0].tls', message: 'missing', line: 3 }),
        expect.objectContaining({ path: 'listeners[0].port', line: 5 }),
        expect.objectContaining({ path: 'policy.auth.window', line: 9 }),
      ]);
    }
  });

  it('returns a deeply frozen config', () => {
    const config = configOf((raw) => (raw.policy = { rules: [{ match: { user: 'a' }, deny: ['DELE'] }] }));
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.listeners[0])).toBe(true);
    expect(Object.isFrozen(config.listeners[0]?.trustedProxies)).toBe(true);
    expect(Object.isFrozen(config.backend.servers[0])).toBe(true);
    expect(Object.isFrozen(config.policy.rules[0]?.match)).toBe(true);
    expect(Object.isFrozen(config.policy.commands.allow)).toBe(true);
    expect(() => {
      (config.policy.auth as { window: number }).window = 1;
    }).toThrow(TypeError);
  });

  it('does not freeze or change the caller\'s input', () => {
    const raw = minimal();
    validateConfig(raw, { baseDir: BASE_DIR, file: null });
    expect(Object.isFrozen(raw.listeners)).toBe(false);
    expect(raw).toEqual(minimal());
  });

  it('keeps the file it was given, for reloads', () => {
    expect(configOf().file).toBe(`${BASE_DIR}/gateway.yaml`);
  });

  it('resolves every relative path against baseDir and keeps absolute ones', () => {
    const config = configOf((raw) => {
      raw.tls = { cert: 'certs/a.crt', key: '/abs/a.key', sni: { 'mail.example.org': { cert: '../x.crt', key: 'x.key' } } };
      raw.backend.ca = './ca/b.pem';
      raw.logging = { audit: 'logs/audit.log' };
    });
    expect(config.tls.cert).toBe('/etc/pop3gw/certs/a.crt');
    expect(config.tls.key).toBe('/abs/a.key');
    expect(config.tls.sni['mail.example.org']).toEqual({ cert: '/etc/x.crt', key: '/etc/pop3gw/x.key' });
    expect(config.backend.ca).toBe('/etc/pop3gw/ca/b.pem');
    expect(config.logging.audit).toBe('/etc/pop3gw/logs/audit.log');
  });
});

describe('validateConfig: tls', () => {
  it('defaults to certs/server.crt and .key next to the config, TLS 1.2, Mozilla intermediate ciphers', () => {
    expect(configOf().tls).toEqual({
      cert: '/etc/pop3gw/certs/server.crt',
      key: '/etc/pop3gw/certs/server.key',
      minVersion: 'TLSv1.2',
      ciphers: MOZILLA_INTERMEDIATE_CIPHERS,
      handshakeTimeout: DEFAULTS.tls.handshakeTimeout,
      sni: {},
    });
  });

  it('rejects a minVersion below TLS 1.2', () => {
    expect(onlyProblem((raw) => (raw.tls = { minVersion: 'TLSv1' }))).toMatchObject({
      path: 'tls.minVersion',
      expected: 'one of: TLSv1.2, TLSv1.3',
    });
  });

  it('rejects a handshake timeout that is not a duration', () => {
    expect(onlyProblem((raw) => (raw.tls = { handshakeTimeout: '10' })).path).toBe('tls.handshakeTimeout');
  });

  it('rejects an empty cipher string', () => {
    expect(onlyProblem((raw) => (raw.tls = { ciphers: ' ' })).path).toBe('tls.ciphers');
  });

  it('lower-cases SNI names', () => {
    const sni = configOf((raw) => (raw.tls = { sni: { 'Mail.Example.ORG': { cert: 'a', key: 'b' } } })).tls.sni;
    expect(Object.keys(sni)).toEqual(['mail.example.org']);
  });

  it('rejects an SNI entry that is not a server name', () => {
    expect(onlyProblem((raw) => (raw.tls = { sni: { 'mail example': { cert: 'a', key: 'b' } } }))).toMatchObject({
      path: 'tls.sni["mail example"]',
    });
  });

  it('rejects an SNI entry without a key', () => {
    expect(onlyProblem((raw) => (raw.tls = { sni: { 'a.example': { cert: 'a' } } }))).toMatchObject({
      path: 'tls.sni["a.example"].key',
      message: 'missing',
    });
  });
});

describe('validateConfig: workers, limits, capa, shutdownGrace', () => {
  it.each([[0], [-2], [1.5], ['many'], ['2']])('rejects workers: %j', (workers) => {
    expect(onlyProblem((raw) => (raw.workers = workers))).toMatchObject({
      path: 'workers',
      expected: 'auto, or a positive integer',
    });
  });

  it('accepts workers: auto and a positive integer', () => {
    expect(configOf((raw) => (raw.workers = 'auto')).workers).toBe('auto');
    expect(configOf((raw) => (raw.workers = 4)).workers).toBe(4);
  });

  it('fills limits from DEFAULTS and reads sizes in any unit', () => {
    expect(configOf().limits).toEqual(DEFAULTS.limits);
    expect(configOf((raw) => (raw.limits = { saslLine: '32KiB', maxMultiline: '10MB' })).limits).toMatchObject({
      saslLine: 32 * 1024,
      maxMultiline: 10_000_000,
    });
  });

  it('rejects a size with an unknown unit', () => {
    expect(onlyProblem((raw) => (raw.limits = { maxMultiline: '10Mb' }))).toMatchObject({
      path: 'limits.maxMultiline',
      message: 'found "10Mb"',
    });
  });

  it('rejects a commandLine below 64 bytes', () => {
    expect(onlyProblem((raw) => (raw.limits = { commandLine: 63 })).path).toBe('limits.commandLine');
  });

  it('rejects a responseLine below 512 bytes', () => {
    expect(onlyProblem((raw) => (raw.limits = { responseLine: '511B' })).path).toBe('limits.responseLine');
  });

  it('rejects a saslLine shorter than commandLine', () => {
    expect(onlyProblem((raw) => (raw.limits = { commandLine: '1KiB', saslLine: 512 }))).toMatchObject({
      path: 'limits.saslLine',
      message: 'saslLine (512 bytes) is smaller than commandLine (1024 bytes)',
    });
  });

  it('rejects a zero pipelineDepth', () => {
    expect(onlyProblem((raw) => (raw.limits = { pipelineDepth: 0 })).path).toBe('limits.pipelineDepth');
  });

  it('accepts hide, relay or a text for the CAPA implementation line', () => {
    expect(configOf().capa.implementation).toBe('hide');
    expect(configOf((raw) => (raw.capa = { implementation: 'Acme POP3' })).capa.implementation).toBe('Acme POP3');
  });

  it('rejects an implementation text that could break the CAPA reply', () => {
    expect(onlyProblem((raw) => (raw.capa = { implementation: 'x\r\nSTLS' })).path).toBe('capa.implementation');
  });

  it('rejects a shutdownGrace that is not a duration', () => {
    expect(onlyProblem((raw) => (raw.shutdownGrace = '30 s')).path).toBe('shutdownGrace');
  });
});

describe('validateConfig: logging and admin', () => {
  it('reads logging.format, auto by default', () => {
    expect(configOf().logging.format).toBe('auto');
    expect(configOf((raw) => (raw.logging = { format: 'pretty' })).logging.format).toBe('pretty');
    expect(configOf((raw) => (raw.logging = { format: 'json' })).logging.format).toBe('json');
  });

  it('rejects a log format other than auto, pretty or json', () => {
    expect(onlyProblem((raw) => (raw.logging = { format: 'text' }))).toMatchObject({
      path: 'logging.format',
      message: 'found "text"',
      expected: 'one of: auto, pretty, json',
    });
  });

  it('rejects a log level pino does not have', () => {
    expect(onlyProblem((raw) => (raw.logging = { level: 'verbose' }))).toMatchObject({
      path: 'logging.level',
      message: 'found "verbose"',
    });
  });

  it('accepts audit: null to turn the audit file off', () => {
    expect(configOf((raw) => (raw.logging = { audit: null })).logging.audit).toBeNull();
  });

  it('rejects an audit header name with a colon', () => {
    expect(onlyProblem((raw) => (raw.logging = { auditHeaders: ['Subject:'] })).path).toBe('logging.auditHeaders[0]');
  });

  it('rejects auditPseudonymize without POP3GW_AUDIT_KEY in the environment', () => {
    const p = onlyProblem((raw) => (raw.logging = { auditPseudonymize: true }), { POP3GW_AUDIT_KEY: '' });
    expect(p.path).toBe('logging.auditPseudonymize');
    expect(p.message).toContain('POP3GW_AUDIT_KEY');
  });

  it('accepts auditPseudonymize when POP3GW_AUDIT_KEY is set', () => {
    const config = configOf((raw) => (raw.logging = { auditPseudonymize: true }), { POP3GW_AUDIT_KEY: 'k3y' });
    expect(config.logging.auditPseudonymize).toBe(true);
  });

  it('defaults the audit file mode to 0640 and reads auditMode as a quoted octal string', () => {
    expect(configOf().logging.auditMode).toBe(0o640);
    expect(configOf((raw) => (raw.logging = { auditMode: '0600' })).logging.auditMode).toBe(0o600);
    expect(configOf((raw) => (raw.logging = { auditMode: '660' })).logging.auditMode).toBe(0o660);
  });

  it.each([[640], ['0644x'], ['0755'], ['0666'], ['0440'], ['01640'], ['rw-r-----']])('rejects auditMode %j', (mode) => {
    const p = onlyProblem((raw) => (raw.logging = { auditMode: mode }));
    expect(p.path).toBe('logging.auditMode');
    expect(p.expected).toContain('"0640"');
  });

  it('defaults the admin endpoint to 127.0.0.1:9110 without a token', () => {
    expect(configOf().admin).toEqual({ host: '127.0.0.1', port: 9110, token: null, allowedHosts: [] });
  });

  it('turns the admin endpoint off for admin: null', () => {
    expect(configOf((raw) => (raw.admin = null)).admin.port).toBeNull();
  });

  it('reads admin.allowedHosts as names or addresses without a port', () => {
    expect(configOf((raw) => (raw.admin = { allowedHosts: ['admin.example.org', '10.0.0.5', '[2001:db8::1]', '2001:db8::2'] }))
      .admin.allowedHosts).toEqual(['admin.example.org', '10.0.0.5', '[2001:db8::1]', '2001:db8::2']);
    expect(onlyProblem((raw) => (raw.admin = { allowedHosts: ['admin.example.org:9110'] })).path).toBe('admin.allowedHosts[0]');
    expect(onlyProblem((raw) => (raw.admin = { allowedHosts: ['http://admin.example.org'] })).path).toBe('admin.allowedHosts[0]');
    expect(onlyProblem((raw) => (raw.admin = { allowedHosts: 'admin.example.org' })).path).toBe('admin.allowedHosts');
    expect(onlyProblem((raw) => (raw.admin = { allowedHosts: ['[::1'] })).path).toBe('admin.allowedHosts[0]');
    expect(onlyProblem((raw) => (raw.admin = { allowedHosts: ['cafe.bad:9110'] })).path).toBe('admin.allowedHosts[0]');
  });

  it.each(['0.0.0.0', '::', '10.0.0.5', 'admin.example.org'])('refuses an admin endpoint on %s without a token', (host) => {
    const p = onlyProblem((raw) => (raw.admin = { host }));
    expect(p.path).toBe('admin.host');
    expect(p.message).toContain('no token');
    expect(p.expected).toContain('admin: null');
  });

  it.each(['127.0.0.1', '127.0.0.2', '::1', 'localhost'])('accepts an admin endpoint on loopback %s without a token', (host) => {
    expect(configOf((raw) => (raw.admin = { host })).admin.host).toBe(host);
  });

  it('accepts an admin endpoint off loopback with a token from the YAML or POP3GW_ADMIN_TOKEN, or with port: null', () => {
    expect(configOf((raw) => (raw.admin = { host: '0.0.0.0', token: 'a-long-enough-token-0001' })).admin.token).not.toBeNull();
    expect(configOf((raw) => (raw.admin = { host: '0.0.0.0' }), { POP3GW_ADMIN_TOKEN: 'a-long-enough-token-0002' }).admin.token)
      .toBe('a-long-enough-token-0002');
    expect(configOf((raw) => (raw.admin = { host: '0.0.0.0', port: null })).admin.port).toBeNull();
  });

  it('reports a short token off loopback once, at the token', () => {
    expect(onlyProblem((raw) => (raw.admin = { host: '0.0.0.0', token: 'short' })).path).toBe('admin.token');
  });

  it('accepts admin.port: null to turn the endpoint off', () => {
    expect(configOf((raw) => (raw.admin = { port: null })).admin.port).toBeNull();
  });

  it('rejects an admin port that is not a number', () => {
    expect(onlyProblem((raw) => (raw.admin = { port: 'off' })).path).toBe('admin.port');
  });

  it('rejects an admin token shorter than 16 characters without echoing it', () => {
    expect(onlyProblem((raw) => (raw.admin = { token: 'secret' }))).toMatchObject({
      path: 'admin.token',
      message: 'found <redacted, 6 characters>',
    });
  });

  it('takes the admin token from POP3GW_ADMIN_TOKEN when the YAML has none', () => {
    const token = 'abcdefghijklmnopqrstuvwxyz';
    expect(configOf(undefined, { POP3GW_ADMIN_TOKEN: token }).admin.token).toBe(token);
    expect(configOf((raw) => (raw.admin = { token: 'from-the-yaml-file-0001' }), { POP3GW_ADMIN_TOKEN: token }).admin.token)
      .toBe('from-the-yaml-file-0001');
  });

  it('rejects a POP3GW_ADMIN_TOKEN shorter than 16 characters', () => {
    const p = onlyProblem(() => undefined, { POP3GW_ADMIN_TOKEN: 'short' });
    expect(p.path).toBe('admin.token');
    expect(p.message).toContain('POP3GW_ADMIN_TOKEN');
    expect(p.message).not.toContain('short');
  });
});
