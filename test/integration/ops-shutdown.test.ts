/**
 * SIGTERM and SIGINT on the real CLI process with a live session in front of a real
 * Dovecot: the port closes at once, a session that ends within shutdownGrace ends
 * normally and the process exits 0 right after; a session that does not is closed after
 * shutdownGrace without its backend entering UPDATE (its DELE does not happen), exit 0.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeCert } from '../harness/certs.ts';
import { makeTempDir } from '../harness/child-processes.ts';
import { startCliGateway, type CliGateway } from '../harness/cli-gateway.ts';
import { startDovecot, type DovecotInstance } from '../harness/dovecot.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { http } from '../harness/prometheus.ts';

type Rec = Record<string, unknown>;

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

function auditRecords(dir: string): Rec[] {
  return fs.readFileSync(path.join(dir, 'audit.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Rec);
}

describe('stopping the real gateway process with live sessions', () => {
  let dovecot: DovecotInstance;
  let certFile: string;
  let keyFile: string;
  let gw: CliGateway | null = null;
  let client: Pop3TestClient | null = null;

  const start = async (grace: string): Promise<{ gw: CliGateway; dir: string }> => {
    const dir = makeTempDir('opsstop');
    gw = await startCliGateway(dir, {
      listeners: [{ name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' }],
      tls: { cert: certFile, key: keyFile },
      backend: { host: '127.0.0.1', port: dovecot.port },
      policy: { auth: { failureDelay: '50ms' } },
      logging: { level: 'info', audit: 'audit.log' },
      admin: { host: '127.0.0.1', port: 0 },
      shutdownGrace: grace,
    });
    return { gw, dir };
  };

  beforeAll(async () => {
    dovecot = await startDovecot();
    dovecot.addMessage('alice', 'From: x@example.org\r\nSubject: keep\r\n\r\nkeep me\r\n');
    const cert = await makeCert({ commonName: 'localhost' });
    certFile = cert.certFile;
    keyFile = cert.keyFile;
  });

  afterEach(async () => {
    await client?.close();
    client = null;
    await gw?.stop();
    gw = null;
  });

  afterAll(async () => {
    await dovecot?.stop();
  });

  it('SIGTERM: stops accepting at once, lets the session finish, and exits 0 as soon as it quits', async () => {
    const { gw, dir } = await start('10s');
    const port = gw.port.pop3s!;
    client = await Pop3TestClient.connect({ port, tls: true, timeoutMs: 8000 });
    await client.login('alice', 'alice-secret');
    const stopping = gw.logs.waitFor((l) => l.event === 'stopping', 10_000);
    gw.signal('SIGTERM');
    await stopping;
    expect(await refused(port)).toBe(true);
    const health = await http(gw.port.admin!, 'GET', '/healthz');
    expect(health.status).toBe(503);

    // The live session goes on during the grace period.
    const retr = await client.multiline('RETR 1');
    expect(retr.body!.toString()).toContain('keep me');
    expect(await client.command('DELE 1')).toMatch(/^\+OK/);
    expect(await client.command('RSET')).toMatch(/^\+OK/);
    const quitAt = Date.now();
    expect(await client.quit()).toMatch(/^\+OK/);
    expect(await gw.exit).toBe(0);
    expect(Date.now() - quitAt).toBeLessThan(5000);
    expect(gw.logs.find({ event: 'stopped' })).toHaveLength(1);
    const recs = auditRecords(dir);
    expect(recs.find((r) => r.event === 'disconnect')).toMatchObject({ user: 'alice', reason: 'quit' });
    expect(dovecot.messageFiles('alice')).toHaveLength(1);
  });

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig}: closes a session that does not finish after shutdownGrace, its DELE not applied, and exits 0`, async () => {
      const { gw, dir } = await start('1s');
      client = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true, timeoutMs: 8000 });
      await client.login('alice', 'alice-secret');
      expect(await client.command('DELE 1')).toMatch(/^\+OK/);
      const signalled = Date.now();
      gw.signal(sig);
      expect(await client.readLine(8000)).toBe('-ERR [SYS/TEMP] Server shutting down, try again later.');
      const closedAfter = Date.now() - signalled;
      await client.waitClosed(5000);
      expect(await gw.exit).toBe(0);
      const exitedAfter = Date.now() - signalled;
      expect(closedAfter).toBeGreaterThanOrEqual(900);
      expect(exitedAfter).toBeLessThan(8000);
      await new Promise((r) => setTimeout(r, 300));
      expect(dovecot.messageFiles('alice')).toHaveLength(1);
      const recs = auditRecords(dir);
      const out = recs.find((r) => r.event === 'logout')!;
      expect(out).toMatchObject({ user: 'alice', deleted: [], notDeleted: [expect.objectContaining({ msg: 1 })] });
      expect(recs.find((r) => r.event === 'disconnect')).toMatchObject({ reason: 'shutdown' });
      expect(gw.logs.find({ event: 'signal', signal: sig })).toHaveLength(1);
    });
  }
});
