/**
 * SIGHUP through the real CLI process in front of a real Dovecot: certificates replaced
 * under the same paths reach new handshakes while an open session carries on, a policy
 * change applies to new sessions only, and a broken config or certificate is rejected
 * (logged as --check prints it) while the gateway keeps serving with what it had.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert, type CertFiles } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { peerFingerprint, startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { http, metric, scrape } from '../harness/prometheus.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const TOKEN = 'reload-admin-token-0123456789';
const ALL_VERBS = ['CAPA', 'USER', 'PASS', 'APOP', 'AUTH', 'STLS', 'STAT', 'LIST', 'UIDL', 'TOP', 'RETR', 'DELE', 'NOOP', 'RSET', 'QUIT'];
type Rec = Record<string, unknown>;

function checkConfig(file: string): Promise<{ code: number; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', '--config', file, '--check'], { cwd: ROOT, timeout: 30_000 },
      (err, _stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }));
  });
}

describe('SIGHUP reload of the real gateway process', () => {
  let dovecot: DovecotInstance;
  let dir: string;
  let gw: CliGateway;
  let a: CertFiles;
  let b: CertFiles;
  const clients: Pop3TestClient[] = [];
  const config = (allow: string[]): Rec => ({
    listeners: [
      { name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' },
      { name: 'pop3', host: '127.0.0.1', port: 0, tls: 'starttls' },
    ],
    // Relative paths: resolved against the YAML file's folder.
    tls: { cert: 'server.crt', key: 'server.key' },
    backend: { host: '127.0.0.1', port: dovecot.port },
    policy: { commands: { allow }, auth: { failureDelay: '50ms' } },
    logging: { level: 'info', audit: 'audit.log' },
    admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    shutdownGrace: '1s',
  });
  const installCert = (c: CertFiles): void => {
    fs.writeFileSync(path.join(dir, 'server.crt'), c.certPem);
    fs.writeFileSync(path.join(dir, 'server.key'), c.keyPem);
  };
  const connect = async (): Promise<Pop3TestClient> => {
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 8000 });
    clients.push(c);
    return c;
  };
  /** The next log line, written after this call, that matches. */
  const nextLog = (pred: (l: Rec) => boolean, timeoutMs = 15_000): Promise<Rec> => {
    const seen = new Set(gw.logs.lines());
    return gw.logs.waitFor((l) => !seen.has(l) && pred(l), timeoutMs);
  };

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'From: x@example.org\r\nSubject: reload\r\n\r\nstill here\r\n');
    dir = makeTempDir('opsreload');
    a = await makeCert({ commonName: 'localhost' });
    b = await makeCert({ commonName: 'localhost' });
    installCert(a);
    gw = await startCliGateway(dir, config(ALL_VERBS));
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await gw?.stop();
    await dovecot?.stop();
  });

  it('enforces admin.token from the config file on the admin endpoint', async () => {
    expect((await http(gw.port.admin!, 'GET', '/metrics')).status).toBe(401);
    expect((await http(gw.port.admin!, 'GET', '/sessions', 'not-the-token-0123456789')).status).toBe(401);
    const m = await scrape(gw.port.admin!, TOKEN);
    expect(metric(m, 'pop3gw_sessions_active')).toBe(0);
    expect(gw.logs.text()).not.toContain(TOKEN);
  });

  it('serves new handshakes with the replaced certificate while a logged-in session carries on', async () => {
    const old = await connect();
    expect(old.tlsSocket!.getPeerX509Certificate()!.fingerprint256).toBe(a.fingerprint256);
    await old.login('alice', 'alice-secret');

    installCert(b);
    const reloaded = nextLog((l) => l.event === 'reload' && l.msg === 'configuration reloaded');
    gw.signal('SIGHUP');
    expect((await reloaded).fingerprint256).toBe(b.fingerprint256);

    expect(await peerFingerprint(gw.port.pop3s!)).toBe(b.fingerprint256);
    const stls = await Pop3TestClient.connect({ port: gw.port.pop3!, timeoutMs: 8000 });
    clients.push(stls);
    await stls.startTls({ rejectUnauthorized: false });
    expect(stls.tlsSocket!.getPeerX509Certificate()!.fingerprint256).toBe(b.fingerprint256);
    await stls.quit();

    // The session opened before the reload goes on over its old TLS session.
    const retr = await old.multiline('RETR 1');
    expect(retr.status).toMatch(/^\+OK/);
    expect(retr.body!.toString()).toContain('still here');
    expect(await old.quit()).toMatch(/^\+OK/);
  });

  it('applies a policy change to new sessions; a session opened before keeps its policy', async () => {
    const before = await connect();
    await before.login('alice', 'alice-secret');
    gw.writeConfig(config(ALL_VERBS.filter((v) => v !== 'TOP')));
    const reloaded = nextLog((l) => l.event === 'reload' && l.msg === 'configuration reloaded');
    gw.signal('SIGHUP');
    await reloaded;

    const after = await connect();
    await after.login('alice', 'alice-secret');
    expect(await after.command('TOP 1 0')).toBe('-ERR Command not permitted by policy.');
    expect(await after.quit()).toMatch(/^\+OK/);
    expect((await before.multiline('TOP 1 0')).status).toMatch(/^\+OK/);
    expect(await before.quit()).toMatch(/^\+OK/);
  });

  it('rejects a broken config on SIGHUP with the problems --check prints, and keeps serving the old one', async () => {
    const live = await connect();
    await live.login('alice', 'alice-secret');
    const broken = [
      'listeners:',
      '  - { name: pop3s, host: 127.0.0.1, port: 0, tls: implicit }',
      'tls: { cert: server.crt, key: server.key }',
      `backend: { host: 127.0.0.1, port: ${dovecot.port} }`,
      'policy:',
      '  auth:',
      '    window: fortnight',
      '  bogus: 1',
      'logging: { level: info, audit: audit.log }',
      'admin: { host: 127.0.0.1, port: 0 }',
      '',
    ].join('\n');
    gw.writeConfig(broken);
    const rejected = nextLog((l) => l.event === 'reload-rejected');
    gw.signal('SIGHUP');
    const [log, check] = await Promise.all([rejected, checkConfig(gw.configFile)]);
    expect(log.level).toBe('error');
    expect(check.code).toBe(2);
    const problems = check.stderr.trim().split('\n').filter((l) => l !== '');
    expect(problems.length).toBeGreaterThanOrEqual(2);
    expect(problems.some((p) => p.includes('policy.auth.window'))).toBe(true);
    expect(problems.some((p) => p.includes('policy.bogus'))).toBe(true);
    for (const p of problems) expect(String(log.msg)).toContain(p);
    expect(String(log.msg)).toMatch(/gateway\.yaml:7 policy\.auth\.window/);

    // Still the previous config: TOP refused for new sessions, certificate B, the live session untouched.
    expect(await live.command('STAT')).toMatch(/^\+OK 1 /);
    const fresh = await connect();
    await fresh.login('alice', 'alice-secret');
    expect(await fresh.command('TOP 1 0')).toBe('-ERR Command not permitted by policy.');
    expect(await fresh.quit()).toMatch(/^\+OK/);
    expect(await peerFingerprint(gw.port.pop3s!)).toBe(b.fingerprint256);
    expect(await live.quit()).toMatch(/^\+OK/);
  });

  it('rejects a reload whose key file is broken and keeps the current certificate', async () => {
    gw.writeConfig(config(ALL_VERBS));
    fs.writeFileSync(path.join(dir, 'server.key'), '-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n');
    const rejected = nextLog((l) => l.event === 'reload-rejected');
    gw.signal('SIGHUP');
    expect(String((await rejected).err)).toMatch(/tls\.key/);
    expect(await peerFingerprint(gw.port.pop3s!)).toBe(b.fingerprint256);
    // Still the previous policy too: the reload was all or nothing.
    const c = await connect();
    await c.login('alice', 'alice-secret');
    expect(await c.command('TOP 1 0')).toBe('-ERR Command not permitted by policy.');
    expect(await c.quit()).toMatch(/^\+OK/);
    const stopped = gw.exit;
    gw.signal('SIGTERM');
    expect(await stopped).toBe(0);
  });
});
