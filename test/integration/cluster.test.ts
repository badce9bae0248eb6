/**
 * `workers: 2` end to end: the real CLI (primary + two worker processes) in front of a
 * real Dovecot. Connections land on both workers, limits and lockouts hold across them,
 * the primary's admin endpoint speaks for the whole gateway, a killed worker is replaced,
 * SIGHUP reaches every worker, SIGTERM stops everything with exit 0, and the audit from
 * both workers is one hash chain.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { verifyLines } from '../../src/audit/chain.ts';
import { makeCert } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { metricValue, startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { freePorts } from '../harness/ports.ts';

interface SessionEntry {
  id: string;
  client: string;
  user: string | null;
  worker: number;
}

/** Dovecot's anvil delays every login from an address after failures (all ours come from 127.0.0.1). */
const DOVECOT_NO_AUTH_PENALTY = 'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}';
const ALL_VERBS = ['CAPA', 'USER', 'PASS', 'APOP', 'AUTH', 'STLS', 'STAT', 'LIST', 'UIDL', 'TOP', 'RETR', 'DELE', 'NOOP', 'RSET', 'QUIT'];

describe('gateway with workers: 2 (real CLI, real Dovecot)', () => {
  let dovecot: DovecotInstance;
  let gw: CliGateway;
  let dir: string;
  let config: Record<string, unknown>;
  let port: { pop3s: number; pop3: number; admin: number };
  /** Worker pids currently serving (updated when one is replaced). */
  let workerPids: number[] = [];
  /** session id → worker pid, as /sessions showed them (for the audit check at the end). */
  const sessionWorker = new Map<string, number>();
  const open: Pop3TestClient[] = [];

  const admin = async <T>(p: string, init?: RequestInit): Promise<{ status: number; body: T }> => {
    const res = await fetch(`http://127.0.0.1:${port.admin}${p}`, init);
    const text = await res.text();
    return { status: res.status, body: (p === '/metrics' ? text : JSON.parse(text)) as T };
  };

  const tlsClient = async (): Promise<Pop3TestClient> => {
    const c = await Pop3TestClient.connect({ port: port.pop3s, tls: true, timeoutMs: 8000 });
    open.push(c);
    expect(c.greeting).toMatch(/^\+OK/);
    return c;
  };

  /** Our clients' sessions as the primary's /sessions lists them, by client port. */
  const sessionsOf = async (clients: Pop3TestClient[]): Promise<SessionEntry[]> => {
    const ports = new Set(clients.map((c) => `127.0.0.1:${c.tlsSocket!.localPort}`));
    const deadline = Date.now() + 5000;
    for (;;) {
      const { body } = await admin<SessionEntry[]>('/sessions');
      for (const s of body) sessionWorker.set(s.id, s.worker);
      const mine = body.filter((s) => ports.has(s.client));
      if (mine.length === clients.length || Date.now() > deadline) return mine;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  const closeAll = async (): Promise<void> => {
    await Promise.all(open.splice(0).map((c) => c.close()));
  };

  /** The next log line (after this call) matching `pred`. */
  const nextLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<Record<string, unknown>> => {
    const before = new Set(gw.logs.lines());
    return gw.logs.waitFor((l) => !before.has(l) && pred(l), timeoutMs);
  };

  /** Waits until the primary has seen every released slot: a 3rd held connection is possible again. */
  const waitSlotsFree = async (held: number): Promise<void> => {
    const deadline = Date.now() + 5000;
    for (;;) {
      const { body } = await admin<string>('/metrics');
      if (metricValue(body, 'pop3gw_sessions_active{listener="pop3s"}') <= held) {
        await new Promise((r) => setTimeout(r, 100)); // the release note follows the session's close
        return;
      }
      if (Date.now() > deadline) throw new Error('sessions did not end');
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  beforeAll(async () => {
    dovecot = await startDovecot({ extraConfig: DOVECOT_NO_AUTH_PENALTY });
    dovecot.addMessage('alice', 'From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n');
    dir = makeTempDir('cluster');
    const cert = await makeCert({ commonName: 'localhost' });
    const [pop3s, pop3, admin] = await freePorts(3);
    port = { pop3s, pop3, admin };
    config = {
      listeners: [
        { name: 'pop3s', host: '127.0.0.1', port: port.pop3s, tls: 'implicit' },
        { name: 'pop3', host: '127.0.0.1', port: port.pop3, tls: 'starttls' },
      ],
      tls: { cert: cert.certFile, key: cert.keyFile },
      backend: { host: '127.0.0.1', port: dovecot.port },
      workers: 2,
      policy: {
        commands: { allow: ALL_VERBS },
        auth: { failureDelay: '50ms', maxFailuresPerUser: 3, maxFailuresPerIp: 1000, lockout: '5m', maxAttemptsPerSession: 3 },
        connections: { maxPerIp: 3 },
      },
      logging: { level: 'info', audit: path.join(dir, 'audit.log') },
      admin: { host: '127.0.0.1', port: port.admin },
      shutdownGrace: '5s',
    };
    gw = await startCliGateway(dir, config);
    workerPids = gw.logs.find({ event: 'worker-ready' }).map((l) => l.pid as number);
  });

  afterEach(async () => {
    await closeAll(); // a failed test must not leave connections that count against the next one's limit
  });

  afterAll(async () => {
    if (process.env.DUMP_LOGS) fs.writeFileSync(process.env.DUMP_LOGS, gw.logs.text() + gw.stderr());
    await closeAll();
    await gw?.stop();
    await dovecot?.stop();
  });

  it('prints one listening line per listener from the primary once both workers are ready', async () => {
    expect(workerPids).toHaveLength(2);
    expect(new Set(workerPids).size).toBe(2);
    expect(workerPids).not.toContain(gw.pid);
    const primary = gw.logs.find({ msg: 'listening', role: 'primary' }).filter((l) => l.listener !== 'admin');
    expect(primary.map((l) => [l.listener, l.port])).toEqual([['pop3s', port.pop3s], ['pop3', port.pop3]]);
    // each worker logged its own lines too, with its own pid (log lines are written in batches of
    // up to 20 ms, so a worker's own line may reach stdout after the primary's)
    for (const pid of workerPids) {
      await gw.logs.waitFor((l) => l.msg === 'listening' && l.pid === pid && l.listener === 'pop3s');
      expect(gw.logs.find({ msg: 'listening', pid, listener: 'pop3s' })).toHaveLength(1);
    }
  });

  it('spreads connections over both workers and sums their metrics on the primary', async () => {
    const before = (await admin<string>('/metrics')).body;
    const clients = [await tlsClient(), await tlsClient(), await tlsClient()];
    const sessions = await sessionsOf(clients);
    expect(sessions).toHaveLength(3);
    expect(new Set(sessions.map((s) => s.worker))).toEqual(new Set(workerPids));
    const after = (await admin<string>('/metrics')).body;
    const accepted = 'pop3gw_connections_total{listener="pop3s",result="accepted"}';
    // no single worker saw three connections: only the sum over both is 3
    expect(metricValue(after, accepted) - metricValue(before, accepted)).toBe(3);
    expect(metricValue(after, 'pop3gw_sessions_active{listener="pop3s"}')).toBe(3);
    expect(metricValue(after, 'pop3gw_workers')).toBe(2);
    const health = await admin<{ status: string; workers: Array<{ pid: number }> }>('/healthz');
    expect(health.status).toBe(200);
    expect(health.body.workers.map((w) => w.pid).sort()).toEqual([...workerPids].sort());
    // a kick reaches whichever worker holds the session
    const byClient = new Map(clients.map((c) => [`127.0.0.1:${c.tlsSocket!.localPort}`, c]));
    for (const pid of workerPids) {
      const target = sessions.find((s) => s.worker === pid)!;
      expect(byClient.get(target.client)!.isClosed).toBe(false);
      const kicked = await admin<{ kicked: boolean }>(`/sessions/${encodeURIComponent(target.id)}/kick`, { method: 'POST', headers: { 'content-type': 'application/json' } });
      expect(kicked).toEqual({ status: 200, body: { kicked: true } });
      await byClient.get(target.client)!.waitClosed(5000);
    }
    expect((await admin('/sessions/no-such-session/kick', { method: 'POST', headers: { 'content-type': 'application/json' } })).status).toBe(404);
    await closeAll();
  });

  it('holds a per-IP limit of 3 connections across both workers', async () => {
    await waitSlotsFree(0);
    const clients = [await tlsClient(), await tlsClient(), await tlsClient()];
    const sessions = await sessionsOf(clients);
    expect(new Set(sessions.map((s) => s.worker)).size).toBe(2);
    // Four more attempts, handed out round-robin: both workers must refuse.
    const refusals: string[] = [];
    for (let i = 0; i < 4; i++) {
      const c = await Pop3TestClient.connect({ port: port.pop3, timeoutMs: 8000 });
      refusals.push(c.greeting);
      await c.waitClosed();
    }
    expect(refusals).toEqual(Array(4).fill('-ERR [SYS/TEMP] Too many connections from your address, try again later.'));
    // (log lines from two processes arrive in their own time)
    for (const pid of workerPids) await gw.logs.waitFor((l) => l.event === 'connection-refused' && l.reason === 'max-per-ip' && l.pid === pid, 5000);
    // One ends: exactly one new connection fits again.
    await open.shift()!.quit();
    await waitSlotsFree(2);
    await tlsClient();
    const c = await Pop3TestClient.connect({ port: port.pop3, timeoutMs: 8000 });
    expect(c.greeting).toMatch(/^-ERR \[SYS\/TEMP\]/);
    await c.close();
    await closeAll();
  });

  it('locks a user out when the failed logins were spread over both workers', async () => {
    await waitSlotsFree(0);
    const clients = [await tlsClient(), await tlsClient(), await tlsClient()];
    const sessions = await sessionsOf(clients);
    expect(new Set(sessions.map((s) => s.worker)).size).toBe(2);
    // 3 failures in all (maxFailuresPerUser: 3), at most 2 on either worker; each password differs.
    for (const [i, c] of clients.entries()) {
      await c.ok('USER bob');
      expect(await c.command(`PASS wrong-${i}`)).toBe('-ERR [AUTH] Authentication failed.');
    }
    await closeAll();
    await waitSlotsFree(0);
    const again = [await tlsClient(), await tlsClient()];
    expect(new Set((await sessionsOf(again)).map((s) => s.worker)).size).toBe(2);
    for (const c of again) {
      await c.ok('USER bob');
      // the right password, refused like a wrong one: the lockout holds on both workers
      expect(await c.command('PASS bob-secret')).toBe('-ERR [AUTH] Authentication failed.');
    }
    await closeAll();
    expect(gw.logs.find({ event: 'auth-lockout', scope: 'user' }).length).toBeGreaterThan(0);
  });

  it('replaces a killed worker, frees its connection slots and keeps serving', async () => {
    await waitSlotsFree(0);
    const clients = [await tlsClient(), await tlsClient(), await tlsClient()];
    const sessions = await sessionsOf(clients);
    const perWorker = new Map<number, number>();
    for (const s of sessions) perWorker.set(s.worker, (perWorker.get(s.worker) ?? 0) + 1);
    const victim = [...perWorker.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    const survivor = workerPids.find((p) => p !== victim)!;
    const workerOf = new Map(sessions.map((s) => [s.client, s.worker]));
    const onVictim = clients.filter((c) => workerOf.get(`127.0.0.1:${c.tlsSocket!.localPort}`) === victim);
    expect(onVictim.length).toBeGreaterThan(0);
    const exited = nextLog((l) => l.event === 'worker-exit' && l.pid === victim);
    const replaced = nextLog((l) => l.event === 'worker-ready' && !workerPids.includes(l.pid as number));
    process.kill(victim, 'SIGKILL');
    const exit = await exited;
    expect(exit.signal).toBe('SIGKILL');
    expect(exit.freedConnections).toBe(perWorker.get(victim));
    const fresh = (await replaced).pid as number;
    workerPids = [survivor, fresh];

    // The victim's clients are gone; its slots are free again: the per-IP limit counts only the survivors.
    await Promise.all(onVictim.map((c) => c.waitClosed(5000)));
    const survivors = 3 - onVictim.length;
    for (let i = survivors; i < 3; i++) await tlsClient();
    const refused = await Pop3TestClient.connect({ port: port.pop3, timeoutMs: 8000 });
    expect(refused.greeting).toMatch(/^-ERR \[SYS\/TEMP\]/);
    await refused.close();
    await closeAll();

    // Both the survivor and the new worker serve full sessions.
    await waitSlotsFree(0);
    const two = [await tlsClient(), await tlsClient()];
    expect(new Set((await sessionsOf(two)).map((s) => s.worker))).toEqual(new Set(workerPids));
    for (const c of two) {
      await c.login('alice', 'alice-secret');
      expect(await c.command('STAT')).toMatch(/^\+OK 1 \d+$/);
      expect(await c.quit()).toMatch(/^\+OK/);
    }
    open.splice(0);
    const health = await admin<{ workers: Array<{ pid: number }> }>('/healthz');
    expect(health.status).toBe(200);
    expect(health.body.workers.map((w) => w.pid).sort()).toEqual([...workerPids].sort());
    expect(metricValue((await admin<string>('/metrics')).body, 'pop3gw_worker_restarts_total')).toBe(1);
  });

  it('applies a SIGHUP reload on every worker', async () => {
    await waitSlotsFree(0);
    const probe = await tlsClient();
    await probe.login('alice', 'alice-secret');
    expect(await probe.command('NOOP')).toMatch(/^\+OK/);
    await probe.quit();
    open.splice(0);

    // A broken file is refused once, by the primary, and no worker is touched.
    const rejected = nextLog((l) => l.event === 'reload-rejected' && l.role === 'primary');
    gw.writeConfig({ ...config, policy: { ...(config.policy as object), commands: { allow: ['NOPE'] } } });
    process.kill(gw.pid, 'SIGHUP');
    expect(String((await rejected).msg)).toMatch(/policy\.commands\.allow/);
    expect(gw.logs.find({ event: 'reload' })).toHaveLength(0);

    const policy = config.policy as Record<string, unknown>;
    gw.writeConfig({ ...config, policy: { ...policy, commands: { allow: ALL_VERBS.filter((v) => v !== 'NOOP') } } });
    const reloaded = nextLog((l) => l.event === 'reload' && l.role === 'primary' && Array.isArray(l.workers));
    process.kill(gw.pid, 'SIGHUP');
    expect(((await reloaded).workers as number[]).sort()).toEqual([...workerPids].sort());

    await waitSlotsFree(0);
    const two = [await tlsClient(), await tlsClient()];
    expect(new Set((await sessionsOf(two)).map((s) => s.worker))).toEqual(new Set(workerPids));
    for (const c of two) {
      await c.login('alice', 'alice-secret');
      expect(await c.command('NOOP')).toMatch(/^-ERR/);
      expect(await c.command('STAT')).toMatch(/^\+OK/);
      await c.quit();
    }
    open.splice(0);
    // SIGHUP was not fatal to anyone
    expect(gw.logs.find({ event: 'worker-exit' })).toHaveLength(1);
  });

  it('stops every worker on SIGTERM after live sessions finish, exits 0, and leaves one audit chain', async () => {
    await waitSlotsFree(0);
    const live = await tlsClient();
    await live.login('alice', 'alice-secret');
    const stopping = nextLog((l) => l.event === 'stopping' && l.role === 'primary');
    process.kill(gw.pid, 'SIGTERM');
    await stopping;
    // the live session goes on during shutdownGrace
    expect(await live.command('STAT')).toMatch(/^\+OK/);
    expect(await live.quit()).toMatch(/^\+OK/);
    open.splice(0);
    expect(await gw.exit).toBe(0);
    for (const pid of workerPids) expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    expect(gw.logs.find({ event: 'worker-stopped' }).map((l) => l.code)).toEqual([0, 0]);

    const lines = fs.readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').filter((l) => l !== '');
    const verified = verifyLines(lines);
    expect(verified).toMatchObject({ ok: true, count: lines.length });
    const records = lines.map((l) => JSON.parse(l) as { session: string; event: string });
    // records from sessions on different workers, all in the one chain
    const pids = new Set(records.map((r) => sessionWorker.get(r.session)).filter((p) => p !== undefined));
    expect(pids.size).toBeGreaterThanOrEqual(3); // two first workers plus the replacement
    expect(records.filter((r) => r.event === 'login').length).toBeGreaterThan(5);
  });
});

describe('gateway with workers: 2 whose workers cannot start', () => {
  it('gives up with exit 1 after three workers in a row failed to start, instead of forking in a loop', async () => {
    const dir = makeTempDir('cluster-fail');
    const cert = await makeCert({ commonName: 'localhost' });
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => r()));
    const busy = (taken.address() as net.AddressInfo).port;
    try {
      const config = {
        listeners: [{ name: 'pop3s', host: '127.0.0.1', port: busy, tls: 'implicit' }],
        tls: { cert: cert.certFile, key: cert.keyFile },
        backend: { host: '127.0.0.1', port: 1 },
        workers: 2,
        admin: { port: null },
      };
      const failure = await startCliGateway(dir, config, { timeoutMs: 25_000 }).then(
        () => null,
        (err: unknown) => (err as Error).message,
      );
      // exited by itself, with 1, saying why
      expect(failure).toMatch(/gateway exited with 1 before listener pop3s/);
      expect(failure).toContain('workers fail to start (3 in a row): giving up');
    } finally {
      taken.close();
    }
  });
});
