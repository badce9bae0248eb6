/**
 * The admin endpoint of a live gateway (real Dovecot behind it, curl in front) against a
 * browser turned into a weapon: DNS rebinding (a foreign Host), cross-site reads (a foreign
 * Origin) and cross-site form posts that would kick a session. Without a token, as shipped.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../harness/certs.ts';
import { makeTempDir, runProcess } from '../harness/child-processes.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

interface CurlReply { status: number; body: string }

/** curl against the admin endpoint; `args` are extra curl arguments (headers, -d, -X). */
async function curl(port: number, path: string, args: string[] = []): Promise<CurlReply> {
  const r = await runProcess('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', ...args, `http://127.0.0.1:${port}${path}`],
    { timeoutMs: 15_000 });
  const out = r.stdout.toString('utf8');
  const cut = out.lastIndexOf('\n');
  expect(r.code, r.stderr.toString('utf8')).toBe(0);
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

describe('admin endpoint request guard (no token)', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  let admin: number;

  beforeAll(async () => {
    dovecot = await startDovecot();
    gw = await startTestGateway(dovecot.port, { admin: { allowedHosts: ['admin.example.org'] } });
    admin = gw.port.admin!;
  }, 30_000);

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  async function liveSession(): Promise<{ client: Pop3TestClient; id: string }> {
    const client = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await client.login('alice', 'alice-secret');
    const list = JSON.parse((await curl(admin, '/sessions')).body) as Array<{ id: string; user: string | null }>;
    const mine = list.find((s) => s.user === 'alice');
    expect(mine).toBeDefined();
    return { client, id: mine!.id };
  }

  it('refuses a request whose Host names another site (DNS rebinding) with 421 and no data', async () => {
    const { client } = await liveSession();
    for (const path of ['/sessions', '/metrics', '/healthz', '/nope']) {
      const r = await curl(admin, path, ['-H', `Host: attacker.example:${admin}`]);
      expect(r.status).toBe(421);
      expect(r.body).not.toContain('alice');
      expect(r.body).not.toContain('pop3gw_');
      expect(JSON.parse(r.body)).toEqual({ error: expect.stringMatching(/^misdirected request/) });
    }
    expect((await curl(admin, '/sessions', ['-H', 'Host: attacker.example'])).status).toBe(421);
    expect((await curl(admin, '/sessions', ['-H', 'Host: 127.0.0.1.attacker.example'])).status).toBe(421);
    await client.command('QUIT');
  });

  it('answers a Host naming its own address, a loopback name or one of admin.allowedHosts', async () => {
    for (const host of [`127.0.0.1:${admin}`, `localhost:${admin}`, `LOCALHOST:${admin}`, `[::1]:${admin}`, 'admin.example.org',
      `admin.example.org:${admin}`]) {
      const r = await curl(admin, '/sessions', ['-H', `Host: ${host}`]);
      expect(r.status, host).toBe(200);
      expect(Array.isArray(JSON.parse(r.body))).toBe(true);
    }
  });

  it('refuses a request carrying a foreign Origin with 403, and accepts its own', async () => {
    for (const origin of ['http://attacker.example', `http://localhost:${admin + 1}`, 'null', `https://evil.example:${admin}`]) {
      const r = await curl(admin, '/sessions', ['-H', `Origin: ${origin}`]);
      expect(r.status, origin).toBe(403);
      expect(r.body).not.toContain('[');
    }
    expect((await curl(admin, '/sessions', ['-H', `Origin: http://127.0.0.1:${admin}`])).status).toBe(200);
  });

  it('refuses a kick sent as a cross-site HTML form would (form-encoded or text/plain) and the session lives on', async () => {
    const { client, id } = await liveSession();
    const path = `/sessions/${encodeURIComponent(id)}/kick`;
    const form = await curl(admin, path, ['-d', 'x=1']);
    expect(form.status).toBe(415);
    expect(form.body).not.toContain('kicked');
    expect((await curl(admin, path, ['-H', 'Content-Type: text/plain', '-d', '{}'])).status).toBe(415);
    expect((await curl(admin, path, ['-X', 'POST'])).status).toBe(415);
    // A form from another site, even with a JSON type it cannot send, is refused by its Origin.
    expect((await curl(admin, path, ['-H', 'Content-Type: application/json', '-H', 'Origin: http://attacker.example', '-d', '{}'])).status)
      .toBe(403);
    expect(await client.command('NOOP')).toMatch(/^\+OK/);
    await client.command('QUIT');
  });

  it('kicks a session on a POST with Content-Type: application/json', async () => {
    const { client, id } = await liveSession();
    const r = await curl(admin, `/sessions/${encodeURIComponent(id)}/kick`, ['-H', 'Content-Type: application/json; charset=utf-8', '-d', '{}']);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ kicked: true });
    expect(await client.readLine()).toMatch(/^-ERR /);
    await client.waitClosed(3000);
  });

  it('kicks a session on a POST with the X-Pop3gw-Admin header', async () => {
    const { client, id } = await liveSession();
    const r = await curl(admin, `/sessions/${encodeURIComponent(id)}/kick`, ['-X', 'POST', '-H', 'X-Pop3gw-Admin: 1']);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ kicked: true });
    await client.waitClosed(3000);
  });
});

describe('admin: null', () => {
  it('opens no admin port at all', async () => {
    const dovecot = await startDovecot();
    const gw = await startTestGateway(dovecot.port, { admin: null });
    try {
      expect(gw.config.admin.port).toBeNull();
      expect(gw.gw.adminPort).toBeNull();
      expect(gw.port.admin).toBeUndefined();
      expect(gw.logs.lines().some((l) => l.event === 'listening' && l.listener === 'admin')).toBe(false);
    } finally {
      await gw.stop();
      await dovecot.stop();
    }
  }, 30_000);
});

describe('an admin endpoint off loopback', () => {
  const ROOT = path.resolve(import.meta.dirname, '../..');
  const run = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stderr: string }> => new Promise((done) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], { cwd: ROOT, timeout: 30_000, env: { ...process.env, POP3GW_ADMIN_TOKEN: '', ...env } },
      (err, _stdout, stderr) => done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }));
  });

  it('is refused by --check and at start-up without a token, and accepted with one', async () => {
    const dir = makeTempDir('adminoff');
    try {
      const cert = await makeCert({ commonName: 'localhost' });
      const file = path.join(dir, 'gateway.yaml');
      fs.writeFileSync(file, stringify({
        listeners: [{ name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' }],
        tls: { cert: cert.certFile, key: cert.keyFile },
        backend: { host: '127.0.0.1', port: 1 },
        logging: { audit: null },
        admin: { host: '0.0.0.0', port: 0 },
      }));
      for (const args of [['--config', file, '--check'], ['--config', file]]) {
        const r = await run(args);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr).toMatch(/admin\.host: the admin endpoint on 0\.0\.0\.0 is reachable from other machines but has no token/);
      }
      expect((await run(['--config', file, '--check'], { POP3GW_ADMIN_TOKEN: 'an-admin-token-long-enough' })).code).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
