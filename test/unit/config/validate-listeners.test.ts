import { describe, expect, it } from 'vitest';
import { configOf, onlyProblem, problemsOf } from './helpers.ts';

describe('validateConfig: listeners', () => {
  it('reports missing listeners as one problem that says at least one is needed', () => {
    const p = onlyProblem((raw) => delete raw.listeners);
    expect(p).toMatchObject({ path: 'listeners', message: 'missing' });
    expect(p.expected).toContain('at least one listener');
  });

  it('rejects an empty listeners list', () => {
    expect(onlyProblem((raw) => (raw.listeners = []))).toMatchObject({ path: 'listeners', message: 'found a list' });
  });

  it('rejects a listener that is not a mapping', () => {
    expect(onlyProblem((raw) => raw.listeners.push('pop3'))).toMatchObject({
      path: 'listeners[1]',
      message: 'found "pop3"',
    });
  });

  it('reports each missing required listener key', () => {
    const problems = problemsOf((raw) => raw.listeners.push({ host: '::' }));
    expect(problems.map((p) => p.path)).toEqual(['listeners[1].name', 'listeners[1].port', 'listeners[1].tls']);
    expect(problems.every((p) => p.message === 'missing')).toBe(true);
  });

  it('rejects a listener name with characters unfit for logs and metrics', () => {
    expect(onlyProblem((raw) => (raw.listeners[0].name = 'pop 3'))).toMatchObject({
      path: 'listeners[0].name',
      message: 'found "pop 3"',
    });
  });

  it.each([[70000], [-1], ['995'], [99.5]])('rejects the listener port %j', (port) => {
    const p = onlyProblem((raw) => (raw.listeners[0].port = port));
    expect(p.path).toBe('listeners[0].port');
    expect(p.expected).toContain('1 to 65535');
  });

  it('accepts port 0 so the OS picks a free port', () => {
    expect(configOf((raw) => (raw.listeners[0].port = 0)).listeners[0]?.port).toBe(0);
  });

  it('rejects an empty host', () => {
    expect(onlyProblem((raw) => (raw.listeners[0].host = ''))).toMatchObject({ path: 'listeners[0].host' });
  });

  it('rejects a tls mode that is not implicit, starttls or none', () => {
    expect(onlyProblem((raw) => (raw.listeners[0].tls = 'STARTTLS'))).toMatchObject({
      path: 'listeners[0].tls',
      message: 'found "STARTTLS"',
      expected: 'one of: implicit, starttls, none',
    });
  });

  it('rejects a requireTls that is not a boolean or report', () => {
    expect(onlyProblem((raw) => (raw.listeners[0].requireTls = 'yes'))).toMatchObject({
      path: 'listeners[0].requireTls',
      expected: 'true, false or report',
    });
  });

  it('rejects a proxyProtocol flag that is not a boolean', () => {
    expect(onlyProblem((raw) => (raw.listeners[0].proxyProtocol = 'v2'))).toMatchObject({
      path: 'listeners[0].proxyProtocol',
    });
  });

  it('rejects a trustedProxies entry that is not a CIDR', () => {
    expect(onlyProblem((raw) => (raw.listeners[0].trustedProxies = ['10.0.0.0/8', '10.0.0.0/33']))).toMatchObject({
      path: 'listeners[0].trustedProxies[1]',
      message: 'found "10.0.0.0/33"',
    });
  });

  it('rejects an unknown verb in a listener allowlist', () => {
    expect(onlyProblem((raw) => (raw.listeners[0].commands = { allow: ['RETR', 'XTND'] }))).toMatchObject({
      path: 'listeners[0].commands.allow[1]',
      message: 'found "XTND"',
    });
  });

  it('upper-cases and de-duplicates verbs in a listener allowlist', () => {
    const l = configOf((raw) => (raw.listeners[0].commands = { allow: ['retr', 'Quit', 'RETR'] })).listeners[0];
    expect(l?.allow).toEqual(['RETR', 'QUIT']);
  });

  it('defaults: requireTls on, no PROXY header, loopback proxies, the policy allowlist', () => {
    expect(configOf().listeners[0]).toEqual({
      name: 'pop3s',
      host: '0.0.0.0',
      port: 995,
      tls: 'implicit',
      requireTls: true,
      requireTlsExplicit: false,
      requireTlsReport: false,
      proxyProtocol: false,
      trustedProxies: ['127.0.0.0/8', '::1/128'],
      allow: null,
    });
  });

  it('rejects two listeners with the same name', () => {
    const p = onlyProblem((raw) => raw.listeners.push({ name: 'pop3s', host: '0.0.0.0', port: 1995, tls: 'implicit' }));
    expect(p).toMatchObject({ path: 'listeners[1].name', message: '"pop3s" is also the name of listeners[0]' });
  });

  it('rejects two listeners on the same host and port', () => {
    const p = onlyProblem((raw) => raw.listeners.push({ name: 'other', host: '0.0.0.0', port: 995, tls: 'starttls' }));
    expect(p).toMatchObject({ path: 'listeners[1].port', message: '0.0.0.0:995 is also used by listeners[0]' });
  });

  it('rejects a specific address on a port a wildcard listener already takes', () => {
    const p = onlyProblem((raw) => raw.listeners.push({ name: 'lo', host: '127.0.0.1', port: 995, tls: 'implicit' }));
    expect(p.path).toBe('listeners[1].port');
  });

  it('rejects a listener on the admin endpoint host and port', () => {
    const p = onlyProblem((raw) => {
      raw.listeners[0].port = 9110;
      raw.admin = { host: '127.0.0.1', port: 9110 };
    });
    expect(p).toMatchObject({ path: 'admin.port', message: '127.0.0.1:9110 is also used by listeners[0]' });
  });

  it('lets two listeners share a port on different addresses, or both use port 0', () => {
    const config = configOf((raw) => {
      raw.listeners = [
        { name: 'a', host: '127.0.0.1', port: 995, tls: 'implicit' },
        { name: 'b', host: '127.0.0.2', port: 995, tls: 'implicit' },
        { name: 'c', host: '127.0.0.1', port: 0, tls: 'implicit' },
        { name: 'd', host: '127.0.0.1', port: 0, tls: 'implicit' },
      ];
    });
    expect(config.listeners).toHaveLength(4);
  });

  it('keeps requireTls on a tls:none listener where it is not written, and records that it was implicit', () => {
    const l = configOf((raw) => (raw.listeners[0].tls = 'none')).listeners[0];
    expect(l).toMatchObject({ tls: 'none', requireTls: true, requireTlsExplicit: false });
  });

  it('accepts an explicit requireTls: false on a tls:none listener', () => {
    const l = configOf((raw) => Object.assign(raw.listeners[0], { tls: 'none', requireTls: false })).listeners[0];
    expect(l).toMatchObject({ requireTls: false, requireTlsExplicit: true });
  });

  it('rejects an explicit requireTls: true on a tls:none listener, which could never authenticate', () => {
    const p = onlyProblem((raw) => Object.assign(raw.listeners[0], { tls: 'none', requireTls: true }));
    expect(p).toEqual({
      path: 'listeners[0].requireTls',
      message: 'a tls:none listener with requireTls:true can never authenticate',
      expected: 'requireTls: false (explicitly) or tls: starttls',
    });
  });

  it('rejects a starttls listener that requires TLS while its allowlist leaves out STLS', () => {
    const p = onlyProblem((raw) => {
      raw.listeners[0].tls = 'starttls';
      raw.listeners[0].commands = { allow: ['USER', 'PASS', 'QUIT'] };
    });
    expect(p.path).toBe('listeners[0].commands.allow');
    expect(p.message).toContain('can never authenticate');
  });

  it('points at policy.commands.allow when the inherited allowlist leaves out STLS', () => {
    const p = onlyProblem((raw) => {
      raw.listeners[0].tls = 'starttls';
      raw.policy = { commands: { allow: ['USER', 'PASS', 'QUIT'] } };
    });
    expect(p.path).toBe('policy.commands.allow');
  });
});

describe('validateConfig: requireTls: report', () => {
  it('reads report as "require TLS, but only audit": explicit, and not enforced', () => {
    const l = configOf((raw) => {
      raw.listeners[0].tls = 'starttls';
      raw.listeners[0].requireTls = 'report';
    }).listeners[0]!;
    expect(l).toMatchObject({ requireTls: true, requireTlsExplicit: true, requireTlsReport: true });
  });

  it('leaves report off for true and false', () => {
    const l = configOf((raw) => (raw.listeners[0].requireTls = false)).listeners[0]!;
    expect(l.requireTlsReport).toBe(false);
  });

  it('rejects any other word, naming the three values', () => {
    const p = onlyProblem((raw) => (raw.listeners[0].requireTls = 'audit'));
    expect(p.path).toBe('listeners[0].requireTls');
    expect(p.expected).toBe('true, false or report');
  });
});
