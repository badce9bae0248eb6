import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startAdminServer, type AdminDeps, type AdminServer, type SessionView } from '../../src/admin/server.ts';
import { GatewayMetrics } from '../../src/metrics/metrics.ts';
import { silentLogger } from '../../src/util/logger.ts';

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function call(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const session: SessionView = {
  id: 'abc123', user: 'alice', client: '127.0.0.1:50000', listener: 'pop3s', tls: 'TLSv1.3',
  since: '2024-05-01T00:00:00.000Z', bytesIn: 10, bytesOut: 20, lastCommand: 'RETR', state: 'transaction',
};

function deps(over: Partial<AdminDeps> = {}): AdminDeps & { kicked: string[]; healthy: { ok: boolean } } {
  const metrics = new GatewayMetrics();
  metrics.login('ok');
  const kicked: string[] = [];
  const healthy = { ok: true };
  return {
    kicked,
    healthy,
    metricsText: async () => ({ contentType: metrics.contentType, body: await metrics.text() }),
    sessions: {
      list: () => [session],
      kick: (id) => {
        if (id !== session.id) return false;
        kicked.push(id);
        return true;
      },
    },
    health: async () => ({ ok: healthy.ok, details: { listeners: healthy.ok, backend: healthy.ok ? 'ok' : 'unreachable' } }),
    log: silentLogger,
    ...over,
  };
}

/** What a script sends with a kick; a cross-site HTML form can send neither this nor a custom header. */
const JSON_BODY = { 'Content-Type': 'application/json' };

let server: AdminServer | null = null;
const savedEnv = process.env.POP3GW_ADMIN_TOKEN;
afterEach(async () => {
  await server?.close();
  server = null;
  if (savedEnv === undefined) delete process.env.POP3GW_ADMIN_TOKEN;
  else process.env.POP3GW_ADMIN_TOKEN = savedEnv;
});

async function start(d: AdminDeps, token: string | null = null): Promise<number> {
  server = await startAdminServer({ host: '127.0.0.1', port: 0, token, allowedHosts: [] }, d);
  return server.port;
}

describe('admin server', () => {
  it('serves Prometheus metrics from the gateway registry', async () => {
    delete process.env.POP3GW_ADMIN_TOKEN;
    const port = await start(deps());
    const r = await call(port, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.body).toContain('pop3gw_logins_total{result="ok"} 1');
  });

  it('healthz is 200 with details while healthy and 503 when not', async () => {
    delete process.env.POP3GW_ADMIN_TOKEN;
    const d = deps();
    const port = await start(d);
    const ok = await call(port, 'GET', '/healthz');
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toMatch(/application\/json/);
    expect(JSON.parse(ok.body)).toEqual({ status: 'ok', listeners: true, backend: 'ok' });
    d.healthy.ok = false;
    const bad = await call(port, 'GET', '/healthz');
    expect(bad.status).toBe(503);
    expect(JSON.parse(bad.body)).toMatchObject({ status: 'unavailable', backend: 'unreachable' });
  });

  it('healthz is 503 when the health check itself throws', async () => {
    delete process.env.POP3GW_ADMIN_TOKEN;
    const port = await start(deps({ health: async () => { throw new Error('probe crashed'); } }));
    const r = await call(port, 'GET', '/healthz');
    expect(r.status).toBe(503);
    expect(JSON.parse(r.body).status).toBe('unavailable');
  });

  it('lists sessions as a JSON array', async () => {
    delete process.env.POP3GW_ADMIN_TOKEN;
    const port = await start(deps());
    const r = await call(port, 'GET', '/sessions');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual([session]);
  });

  it('kicks a live session with 200 and answers 404 for an unknown one', async () => {
    delete process.env.POP3GW_ADMIN_TOKEN;
    const d = deps();
    const port = await start(d);
    const yes = await call(port, 'POST', '/sessions/abc123/kick', JSON_BODY);
    expect(yes.status).toBe(200);
    expect(JSON.parse(yes.body)).toEqual({ kicked: true });
    expect(d.kicked).toEqual(['abc123']);
    const no = await call(port, 'POST', '/sessions/nope/kick', JSON_BODY);
    expect(no.status).toBe(404);
    expect(JSON.parse(no.body)).toEqual({ kicked: false });
    expect((await call(port, 'POST', '/sessions/%E0%A4%A/kick', JSON_BODY)).status).toBe(404);
  });

  it('answers 404 for unknown paths and 405 with Allow for a wrong method', async () => {
    delete process.env.POP3GW_ADMIN_TOKEN;
    const port = await start(deps());
    expect((await call(port, 'GET', '/nope')).status).toBe(404);
    expect((await call(port, 'GET', '/sessions/abc123')).status).toBe(404);
    const post = await call(port, 'POST', '/metrics', JSON_BODY);
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    const get = await call(port, 'GET', '/sessions/abc123/kick');
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
  });

  it('answers 500 without details when a dependency fails', async () => {
    delete process.env.POP3GW_ADMIN_TOKEN;
    const port = await start(deps({ metricsText: async () => { throw new Error('registry broke'); } }));
    const r = await call(port, 'GET', '/metrics');
    expect(r.status).toBe(500);
    expect(r.body).not.toContain('registry broke');
  });

  describe('with a bearer token', () => {
    const TOKEN = 'correct-horse-battery-staple';

    it('refuses every route but healthz without the token, or with a wrong one', async () => {
      const d = deps();
      const port = await start(d, TOKEN);
      for (const [method, path] of [['GET', '/metrics'], ['GET', '/sessions'], ['POST', '/sessions/abc123/kick']] as const) {
        const none = await call(port, method, path, JSON_BODY);
        expect(none.status).toBe(401);
        expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
        expect((await call(port, method, path, { ...JSON_BODY, Authorization: 'Bearer wrong' })).status).toBe(401);
        expect((await call(port, method, path, { ...JSON_BODY, Authorization: `Bearer ${TOKEN}x` })).status).toBe(401);
        expect((await call(port, method, path, { ...JSON_BODY, Authorization: `Basic ${TOKEN}` })).status).toBe(401);
      }
      expect(d.kicked).toEqual([]);
    });

    it('serves every route with the right token', async () => {
      const d = deps();
      const port = await start(d, TOKEN);
      const auth = { Authorization: `Bearer ${TOKEN}` };
      expect((await call(port, 'GET', '/metrics', auth)).status).toBe(200);
      expect((await call(port, 'GET', '/sessions', auth)).status).toBe(200);
      expect((await call(port, 'POST', '/sessions/abc123/kick', { ...auth, ...JSON_BODY })).status).toBe(200);
      expect(d.kicked).toEqual(['abc123']);
    });

    it('healthz answers anyone, but only a caller with the token sees details', async () => {
      const port = await start(deps(), TOKEN);
      const anon = await call(port, 'GET', '/healthz');
      expect(anon.status).toBe(200);
      expect(JSON.parse(anon.body)).toEqual({ status: 'ok' });
      const authed = await call(port, 'GET', '/healthz', { Authorization: `Bearer ${TOKEN}` });
      expect(JSON.parse(authed.body)).toMatchObject({ status: 'ok', backend: 'ok' });
    });

    it('takes the token from POP3GW_ADMIN_TOKEN when the config has none', async () => {
      process.env.POP3GW_ADMIN_TOKEN = 'from-env';
      const port = await start(deps(), null);
      expect((await call(port, 'GET', '/sessions')).status).toBe(401);
      expect((await call(port, 'GET', '/sessions', { Authorization: 'Bearer from-env' })).status).toBe(200);
    });
  });

  it('close() resolves even with an idle keep-alive connection open', async () => {
    delete process.env.POP3GW_ADMIN_TOKEN;
    const port = await start(deps());
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      request({ host: '127.0.0.1', port, path: '/sessions', agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject).end();
    });
    const started = Date.now();
    await server!.close();
    server = null;
    expect(Date.now() - started).toBeLessThan(900);
    agent.destroy();
  });

  it('refuses to start when admin.port is null', async () => {
    await expect(startAdminServer({ host: '127.0.0.1', port: null, token: null, allowedHosts: [] }, deps())).rejects.toThrow(/disabled/);
  });
});
