import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { formatProblems, loadConfigFile, parseConfigText } from '../../../src/config/load.ts';
import type { Problem } from '../../../src/config/schema.ts';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../..');
const fixtures = join(repo, 'test/fixtures/config');
const scratch = mkdtempSync(join(tmpdir(), 'pop3gw-load-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function problemsOf(result: Awaited<ReturnType<typeof loadConfigFile>>): Problem[] {
  if (result.ok) throw new Error('expected problems, the config was accepted');
  return result.problems;
}

const VALID = `listeners:
  - name: pop3s
    host: 0.0.0.0
    port: 995
    tls: implicit
backend:
  host: 127.0.0.1
  port: 1110
`;

describe('loadConfigFile', () => {
  it('accepts the shipped gateway.yaml', async () => {
    const result = await loadConfigFile(join(repo, 'gateway.yaml'), {});
    if (!result.ok) throw new Error(formatProblems('gateway.yaml', result.problems));
    const { config } = result;
    expect(config.listeners.map((l) => [l.name, l.port, l.tls, l.requireTls])).toEqual([
      ['pop3s', 995, 'implicit', true],
      ['pop3', 110, 'starttls', true],
    ]);
    expect(config.backend.servers).toEqual([{ host: '127.0.0.1', port: 1110 }]);
    expect(config.backend.connect).toBe('on-login');
    // Examples only: the shipped file must not restrict or reroute anyone.
    expect(config.routes).toEqual([]);
    expect(config.policy.rules).toEqual([]);
    expect(config.tls.sni).toEqual({});
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9110, token: null, allowedHosts: [] });
    expect(config.logging.audit).toBe(join(repo, 'audit.log'));
    expect(config.logging.auditMode).toBe(0o640);
    expect(config.tls.cert).toBe(join(repo, 'certs/server.crt'));
  });

  it('accepts the fixture that sets every key, converting units and resolving paths', async () => {
    const result = await loadConfigFile(join(fixtures, 'full.yaml'), { POP3GW_AUDIT_KEY: 'test-key' });
    if (!result.ok) throw new Error(formatProblems('full.yaml', result.problems));
    const { config } = result;
    expect(config.listeners).toHaveLength(3);
    expect(config.listeners[1]?.allow).toEqual(['CAPA', 'STLS', 'USER', 'PASS', 'STAT', 'RETR', 'QUIT']);
    expect(config.listeners[2]).toMatchObject({ tls: 'none', requireTls: true, requireTlsExplicit: false });
    expect(config.tls.sni['mail.example.org']?.cert).toBe(join(fixtures, 'certs/example.org.crt'));
    expect(config.tls.sni['*.example.net']?.key).toBe('/etc/pop3gw/net.key');
    expect(config.backend).toMatchObject({ proxyProtocol: 'v2', connect: 'on-accept', ca: join(fixtures, 'ca/backend-ca.pem') });
    expect(config.routes.map((r) => r.backend.servers[0]?.host)).toEqual(['10.0.0.5', '10.0.0.6', '10.0.0.7']);
    expect(config.routes[1]?.backend).toMatchObject({ tls: 'implicit', servername: 'archive.internal', connect: 'on-login' });
    expect(config.policy.auth).toMatchObject({ window: 3_600_000, lockout: 0, failureDelay: 250 });
    expect(config.policy.rules[0]?.deny).toEqual(['DELE']);
    expect(config.limits).toEqual({
      commandLine: 512, saslLine: 32768, responseLine: 1024, pipelineDepth: 16, maxInvalidCommands: 3, maxMultiline: 64 * 1024 * 1024,
    });
    expect(config.admin).toEqual({ host: '127.0.0.1', port: null, token: '0123456789abcdef0123', allowedHosts: ['admin.example.org'] });
    expect(config.logging.auditMode).toBe(0o600);
    expect(config.workers).toBe('auto');
  });

  it('reports a missing file at (file)', async () => {
    const [p, ...rest] = problemsOf(await loadConfigFile(join(scratch, 'nope.yaml'), {}));
    expect(rest).toEqual([]);
    expect(p).toMatchObject({ path: '(file)', expected: 'a readable YAML file' });
    expect(p?.message).toContain('ENOENT');
  });

  it('reports every mistake in a file at once, each with its path and line', async () => {
    const problems = problemsOf(await loadConfigFile(join(fixtures, 'many-mistakes.yaml'), {}));
    expect(problems.map((p) => [p.line, p.path])).toEqual([
      [5, 'listeners[0].port'],
      [7, 'listeners[1].name'],
      [10, 'listeners[1].tls'],
      [14, 'backend.conectTimeout'],
      [17, 'policy.auth.window'],
      [19, 'policy.commands.allow[2]'],
      [20, 'policy.rateLimitStore'],
      [22, 'limits.maxMultiline'],
      [23, 'workers'],
    ]);
  });

  it('resolves relative paths against the YAML file\'s folder, not the working directory', async () => {
    const dir = join(scratch, 'etc', 'gw');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'gw.yaml');
    writeFileSync(file, `${VALID}tls: { cert: tls/a.crt, key: ../b.key }\nlogging: { audit: audit.log }\n`);
    const result = await loadConfigFile(file, {});
    if (!result.ok) throw new Error(formatProblems(file, result.problems));
    expect(process.cwd()).not.toBe(dir);
    expect(result.config.tls.cert).toBe(join(dir, 'tls/a.crt'));
    expect(result.config.tls.key).toBe(join(scratch, 'etc', 'b.key'));
    expect(result.config.logging.audit).toBe(join(dir, 'audit.log'));
    expect(result.config.file).toBe(file);
  });
});

describe('parseConfigText', () => {
  const parse = (text: string, env: Record<string, string> = {}) => parseConfigText(text, { file: '/srv/gw/gateway.yaml', env });
  const problems = (text: string) => {
    const result = parse(text);
    if (result.ok) throw new Error('expected problems');
    return result.problems;
  };

  it('reports a YAML syntax error with its line', () => {
    const [p] = problems(`${VALID}policy:\n  auth: [unclosed\n`);
    expect(p).toMatchObject({ path: '(yaml)', expected: 'valid YAML' });
    expect(p?.line).toBeGreaterThanOrEqual(10);
  });

  it('reports a key written twice as a YAML problem on its line', () => {
    const [p] = problems(`${VALID}workers: 1\nworkers: 2\n`);
    expect(p).toMatchObject({ path: '(yaml)', message: 'Map keys must be unique', line: 10 });
  });

  it('reports an empty file at (root)', () => {
    expect(problems('# nothing here\n')).toEqual([expect.objectContaining({ path: '(root)' })]);
  });

  it('gives an unknown key the line of the key itself', () => {
    const [p] = problems(`${VALID}policy:\n  auth:\n    window: 15m\n    windw: 15m\n`);
    expect(p).toMatchObject({ path: 'policy.auth.windw', line: 12 });
  });

  it('gives an unknown section the line of its key, not of its first child', () => {
    const [p] = problems(`${VALID}polcy:\n\n  auth:\n    window: 15m\n`);
    expect(p).toMatchObject({ path: 'polcy', line: 9 });
  });

  it('gives an item of a flow list its own line', () => {
    const [p] = problems(`${VALID}policy:\n  commands:\n    allow: [USER,\n      PASS,\n      NOPE]\n`);
    expect(p).toMatchObject({ path: 'policy.commands.allow[2]', line: 13 });
  });

  it('gives a missing key the line of the mapping it belongs in', () => {
    const [p] = problems(VALID.replace('    port: 995\n', ''));
    expect(p).toMatchObject({ path: 'listeners[0].port', message: 'missing', line: 2 });
  });

  it('follows a YAML alias to the line where the aliased value is written', () => {
    const text = `listeners:\n  - &l { name: a, host: h, port: 1, tls: implicit }\n  - *l\nbackend: { host: b, port: 1 }\n`;
    const found = problems(text);
    expect(found.map((p) => [p.path, p.line])).toEqual([['listeners[1].name', 2], ['listeners[1].port', 2]]);
  });

  it('passes the environment on to validation', () => {
    expect(parse(`${VALID}logging: { auditPseudonymize: true }\n`, { POP3GW_AUDIT_KEY: 'k' }).ok).toBe(true);
    expect(parse(`${VALID}logging: { auditPseudonymize: true }\n`).ok).toBe(false);
  });
});

describe('formatProblems', () => {
  it('writes one line per problem: file:line path: message; expected ...', () => {
    const text = formatProblems('gateway.yaml', [
      { path: 'policy.auth.window', message: 'found "15 minutes"', expected: 'a duration like "15m"', line: 12 },
      { path: '(file)', message: 'cannot read x', expected: 'a readable YAML file' },
    ]);
    expect(text.split('\n')).toEqual([
      'gateway.yaml:12 policy.auth.window: found "15 minutes"; expected a duration like "15m"',
      'gateway.yaml (file): cannot read x; expected a readable YAML file',
    ]);
  });
});
