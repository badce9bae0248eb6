/**
 * The admin endpoint of a running gateway in front of a real Dovecot: /metrics parsed by
 * the Prometheus text format rules while sessions run, /sessions and kick on a live
 * session, the bearer token, and /healthz following the backend's health.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { http, metric, scrape, type Exposition } from '../harness/prometheus.ts';

const TOKEN = 'ops-admin-token-0123456789';
type Rec = Record<string, unknown>;

const MESSAGE = 'From: x@example.org\r\nSubject: metrics\r\n\r\nbody line\r\n';

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 6000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('admin endpoint of a live gateway', () => {
  let dovecot: DovecotInstance;
  let gw: TestGateway;
  let admin: number;

  beforeAll(async () => {
    dovecot = await startDovecot();
    for (let i = 0; i < 3; i++) dovecot.addMessage('alice', MESSAGE);
    dovecot.addMessage('bob', MESSAGE);
    gw = await startTestGateway(dovecot.port, {
      backend: { probeInterval: '500ms' },
      policy: {
        auth: { maxFailuresPerUser: 1, failureDelay: '50ms' },
        rules: [{ match: { user: 'bob' }, deny: ['TOP'] }],
      },
    }, { POP3GW_ADMIN_TOKEN: TOKEN });
    admin = gw.port.admin!;
  }, 30_000);

  afterAll(async () => {
    await gw?.stop();
    await dovecot?.stop();
  });

  it('requires the bearer token on /metrics, /sessions and kick, and shows /healthz details only with it', async () => {
    for (const [method, path] of [['GET', '/metrics'], ['GET', '/sessions'], ['POST', '/sessions/x/kick']] as const) {
      const none = await http(admin, method, path);
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
      expect((await http(admin, method, path, 'wrong-token-0123456789')).status).toBe(401);
    }
    expect((await http(admin, 'GET', '/metrics', TOKEN)).status).toBe(200);
    const anon = await http(admin, 'GET', '/healthz');
    expect(anon.status).toBe(200);
    expect(JSON.parse(anon.body)).toEqual({ status: 'ok' });
    const full = await http(admin, 'GET', '/healthz', TOKEN);
    expect(JSON.parse(full.body)).toMatchObject({ status: 'ok', listening: true, backend: true, stopping: false });
  });

  it('lists a live session and kicks it at once: the client gets -ERR and its DELE does not take effect', async () => {
    const files = dovecot.messageFiles('alice').length;
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('alice', 'alice-secret');
    expect(await c.command('DELE 1')).toMatch(/^\+OK/);
    const list = JSON.parse((await http(admin, 'GET', '/sessions', TOKEN)).body) as Rec[];
    const mine = list.find((s) => s.user === 'alice');
    expect(mine).toBeDefined();
    const localPort = c.tlsSocket!.localPort;
    expect(mine).toMatchObject({
      user: 'alice', client: `127.0.0.1:${localPort}`, listener: 'pop3s', lastCommand: 'DELE', state: 'transaction',
    });
    expect(mine!.tls).toMatch(/^TLSv1\.[23]$/);
    expect(typeof mine!.id).toBe('string');
    expect(Date.now() - Date.parse(mine!.since as string)).toBeLessThan(30_000);
    expect(mine!.bytesIn as number).toBeGreaterThan(0);
    expect(mine!.bytesOut as number).toBeGreaterThan(0);

    expect((await http(admin, 'POST', '/sessions/no-such-session/kick', TOKEN)).status).toBe(404);
    const kicked = Date.now();
    const k = await http(admin, 'POST', `/sessions/${encodeURIComponent(mine!.id as string)}/kick`, TOKEN);
    expect(k.status).toBe(200);
    expect(JSON.parse(k.body)).toEqual({ kicked: true });
    expect(await c.readLine()).toMatch(/^-ERR /);
    await c.waitClosed(3000);
    expect(Date.now() - kicked).toBeLessThan(3000);
    await new Promise((r) => setTimeout(r, 300));
    expect(dovecot.messageFiles('alice')).toHaveLength(files);
    const after = JSON.parse((await http(admin, 'GET', '/sessions', TOKEN)).body) as Rec[];
    expect(after.find((s) => s.id === mine!.id)).toBeUndefined();
    const out = await until('the logout record', () => gw.auditLines().find((r) => r.session === mine!.id && r.event === 'logout'));
    expect(out).toMatchObject({ deleted: [], notDeleted: [expect.objectContaining({ msg: 1 })] });
    const disc = await until('the disconnect record', () => gw.auditLines().find((r) => r.session === mine!.id && r.event === 'disconnect'));
    expect(disc.reason).toBe('kicked');
  });

  it('counts connections, sessions, logins, commands, refusals, bytes, backend connects, TLS failures and lockouts as sessions run', async () => {
    const before = await scrape(admin, TOKEN);
    const delta = (after: Exposition, name: string, labels: Record<string, string> = {}) =>
      metric(after, name, labels) - metric(before, name, labels);

    // A session that reads a message and is refused a command by a rule.
    const c = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    await c.login('bob', 'bob-secret');
    const live = await scrape(admin, TOKEN);
    expect(metric(live, 'pop3gw_sessions_active', { listener: 'pop3s' })).toBe(1);
    const retr = await c.multiline('RETR 1');
    expect(retr.status).toMatch(/^\+OK/);
    expect(await c.command('TOP 1 0')).toMatch(/^-ERR/);
    expect(await c.command('STAT')).toMatch(/^\+OK 1 /);
    await c.quit();

    // Plaintext auth before STLS: a policy refusal on the starttls listener.
    const p = await Pop3TestClient.connect({ port: gw.port.pop3! });
    expect(await p.command('USER alice')).toMatch(/^-ERR \[AUTH\]/);
    await p.quit();

    // A wrong password locks the user out (maxFailuresPerUser: 1); the next attempt is refused
    // by the gateway alone. Done last: Dovecot slows every later login from the gateway's address.
    const f = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    for (const pw of ['wrong-1', 'wrong-2']) {
      await f.ok('USER carol');
      expect(await f.command(`PASS ${pw}`)).toBe('-ERR [AUTH] Authentication failed.');
    }
    await f.quit();

    // A plaintext client on the implicit TLS port: the handshake fails.
    await new Promise<void>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: gw.port.pop3s! }, () => s.write('USER alice\r\n'));
      s.on('error', () => undefined);
      s.on('close', () => resolve());
      s.setTimeout(5000, () => s.destroy());
    });

    const after = await until('the sessions to be counted as closed', async () => {
      const e = await scrape(admin, TOKEN);
      return metric(e, 'pop3gw_sessions_active') === 0 && delta(e, 'pop3gw_connections_total', { listener: 'pop3s', result: 'tls-failed' }) === 1 ? e : undefined;
    });
    expect(delta(after, 'pop3gw_connections_total', { listener: 'pop3s', result: 'accepted' })).toBe(2);
    expect(delta(after, 'pop3gw_connections_total', { listener: 'pop3', result: 'accepted' })).toBe(1);
    expect(delta(after, 'pop3gw_tls_handshake_failures_total', { listener: 'pop3s' })).toBe(1);
    expect(metric(after, 'pop3gw_sessions_active', { listener: 'pop3s' })).toBe(0);
    expect(delta(after, 'pop3gw_logins_total', { result: 'ok' })).toBe(1);
    expect(delta(after, 'pop3gw_logins_total', { result: 'failed' })).toBe(1);
    expect(delta(after, 'pop3gw_logins_total', { result: 'locked' })).toBe(1);
    expect(delta(after, 'pop3gw_command_duration_seconds_count', { verb: 'RETR', result: 'ok' })).toBe(1);
    expect(delta(after, 'pop3gw_command_duration_seconds_count', { verb: 'TOP', result: 'denied' })).toBe(1);
    expect(delta(after, 'pop3gw_command_duration_seconds_count', { verb: 'STAT', result: 'ok' })).toBe(1);
    expect(delta(after, 'pop3gw_command_duration_seconds_count', { verb: 'QUIT', result: 'ok' })).toBe(1);
    expect(delta(after, 'pop3gw_policy_refusals_total', { reason: 'rule-deny' })).toBe(1);
    expect(delta(after, 'pop3gw_policy_refusals_total', { reason: 'tls-required' })).toBe(1);
    expect(delta(after, 'pop3gw_bytes_total', { direction: 'backend_to_client' })).toBeGreaterThan(MESSAGE.length);
    expect(delta(after, 'pop3gw_bytes_total', { direction: 'client_to_backend' })).toBeGreaterThan('USER bob\r\nPASS bob-secret\r\nRETR 1\r\n'.length);
    // bob's login connected to the backend, and carol's first attempt (the backend refused her).
    expect(delta(after, 'pop3gw_backend_connect_seconds_count', { result: 'ok' })).toBe(2);
    expect(delta(after, 'pop3gw_backend_connect_seconds_sum', { result: 'ok' })).toBeGreaterThan(0);
    expect(metric(after, 'pop3gw_lockouts_active')).toBeGreaterThanOrEqual(1);
    expect(metric(before, 'pop3gw_lockouts_active')).toBe(0);
  });

  it('/healthz answers 503 once the backend is down, and the probe notices within a few intervals', async () => {
    expect((await http(admin, 'GET', '/healthz')).status).toBe(200);
    expect(metric(await scrape(admin, TOKEN), 'pop3gw_backend_up')).toBe(1);
    await dovecot.stop();
    const down = await until('/healthz to turn 503', async () => {
      const r = await http(admin, 'GET', '/healthz', TOKEN);
      return r.status === 503 ? r : undefined;
    }, 8000);
    expect(JSON.parse(down.body)).toMatchObject({ status: 'unavailable', backend: false, listening: true });
    expect(JSON.parse((await http(admin, 'GET', '/healthz')).body)).toEqual({ status: 'unavailable' });
    // The same probe answer, for the Pop3GatewayBackendDown alert (docs/prometheus/alerts.yml).
    expect(metric(await scrape(admin, TOKEN), 'pop3gw_backend_up')).toBe(0);
  });
});
