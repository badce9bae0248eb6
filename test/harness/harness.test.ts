import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoBackend, type DemoBackend } from '../../demo/backend.ts';
import { makeCert } from './certs.ts';
import { curlPop3, opensslClient, poplib } from './clients.ts';
import { startDovecot, type DovecotInstance } from './dovecot.ts';
import { captureLogs } from './log-capture.ts';
import { Pop3TestClient } from './pop3-client.ts';
import { startPopa3d, type Popa3dInstance } from './popa3d.ts';
import { freePort, freePorts } from './ports.ts';
import { startRedis } from './redis.ts';
import { startScriptBackend } from './script-backend.ts';

const MESSAGE = [
  'From: Alice <alice@example.org>',
  'To: Bob <bob@example.org>',
  'Subject: harness check',
  '',
  'first line',
  '.a line that starts with a dot',
  '.',
  'last line',
  '',
].join('\r\n');

describe('the Dovecot harness', () => {
  let dovecot: DovecotInstance;

  beforeAll(async () => {
    dovecot = await startDovecot({ ssl: true, apop: true });
    dovecot.addMessage('alice', MESSAGE);
  }, 15_000);
  afterAll(async () => {
    await dovecot?.stop();
  });

  it('starts Dovecot on loopback with a greeting that carries an APOP timestamp', async () => {
    const client = await Pop3TestClient.connect({ port: dovecot.port });
    expect(client.greeting).toMatch(/^\+OK .*<[^>]+@[^>]+>$/);
    await client.quit();
    expect(dovecot.pid).toBeGreaterThan(0);
    expect(dovecot.tlsPort).not.toBeNull();
  });

  it('lets python poplib log in directly and RETR the message added with addMessage', async () => {
    const result = await poplib(
      ['p = connect()', 'p.user(USER)', 'p.pass_(PASSWORD)', 'out({"stat": p.stat(), "body": body(p.retr(1)), "uidl": p.uidl()})', 'p.quit()'].join('\n'),
      { port: dovecot.port, user: 'alice', password: 'alice-secret' },
    );
    expect(result.stderr).toBe('');
    const out = JSON.parse(result.stdout) as { stat: [number, number]; body: string; uidl: [string, string[], number] };
    expect(out.stat[0]).toBe(1);
    expect(`${out.body}\r\n`).toBe(MESSAGE);
    expect(out.uidl[1][0]).toMatch(/^1 [0-9A-Fa-f]{16}$/);
  });

  it('accepts APOP from poplib with the plaintext password', async () => {
    const result = await poplib(['p = connect()', 'p.apop(USER, PASSWORD)', 'out(p.stat())', 'p.quit()'].join('\n'), {
      port: dovecot.port,
      user: 'alice',
      password: 'alice-secret',
    });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual([1, expect.any(Number)]);
  });

  it('speaks implicit TLS with a certificate that verifies against caFile', async () => {
    const result = await poplib(['p = connect_ssl()', 'p.user(USER)', 'p.pass_(PASSWORD)', 'out(p.stat())', 'p.quit()'].join('\n'), {
      port: dovecot.tlsPort!,
      host: 'localhost',
      caFile: dovecot.caFile,
      user: 'alice',
      password: 'alice-secret',
    });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)[0]).toBe(1);
  });

  it('upgrades with openssl s_client -starttls pop3', async () => {
    const result = await opensslClient({
      host: '127.0.0.1',
      port: dovecot.port,
      starttls: true,
      caFile: dovecot.caFile!,
      input: 'USER alice\nPASS alice-secret\nSTAT\nQUIT\n',
      timeoutMs: 10_000,
    });
    expect(result.timedOut).toBe(false);
    expect(result.stdout).toContain('+OK Logged in.');
    expect(result.stdout).toMatch(/\+OK 1 \d+/);
  });

  it('retrieves message 1 with curl pop3://', async () => {
    const result = await curlPop3(`pop3://127.0.0.1:${dovecot.port}/1`, { user: 'alice', password: 'alice-secret' });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout.toString('latin1')).toBe(MESSAGE);
  });

  it('retrieves message 1 with curl over implicit TLS and over STLS, verifying the CA', async () => {
    const implicit = await curlPop3(`pop3s://localhost:${dovecot.tlsPort}/1`, { user: 'alice', password: 'alice-secret', caFile: dovecot.caFile! });
    expect(implicit.stderr).toBe('');
    expect(implicit.stdout.toString('latin1')).toBe(MESSAGE);
    const stls = await curlPop3(`pop3://localhost:${dovecot.port}/1`, {
      user: 'alice',
      password: 'alice-secret',
      caFile: dovecot.caFile!,
      extra: ['--ssl-reqd'],
    });
    expect(stls.stderr).toBe('');
    expect(stls.stdout.toString('latin1')).toBe(MESSAGE);
  });

  it('talks to the implicit TLS port with openssl s_client', async () => {
    const result = await opensslClient({
      host: '127.0.0.1',
      port: dovecot.tlsPort!,
      servername: 'localhost',
      caFile: dovecot.caFile!,
      input: 'CAPA\nQUIT\n',
      pauseMs: 50,
      timeoutMs: 10_000,
    });
    expect(result.timedOut).toBe(false);
    expect(result.stdout).toMatch(/^\+OK Dovecot/);
    expect(result.stdout).toContain('\r\nUIDL\r\n');
    expect(result.stdout).toContain('+OK Logging out');
  });

  it('lists the maildir files and logs logins', () => {
    expect(dovecot.messageFiles('alice')).toHaveLength(1);
    expect(dovecot.readLog()).toMatch(/Login: user=<alice>/);
  });

  it('stops Dovecot and removes its folder', async () => {
    const other = await startDovecot();
    await other.stop();
    expect(fs.existsSync(other.dir)).toBe(false);
    expect(() => process.kill(other.pid, 0)).toThrow();
  }, 10_000);
});

describe('the Dovecot harness behind a PROXY header', () => {
  it('requires the header and logs the forwarded client address', async () => {
    const dovecot = await startDovecot({ haproxyTrustedNetworks: ['127.0.0.0/8'] });
    try {
      const client = await Pop3TestClient.connect({ port: dovecot.port, preamble: `PROXY TCP4 192.0.2.7 127.0.0.1 40000 ${dovecot.port}\r\n` });
      expect(client.greeting).toMatch(/^\+OK/);
      await client.login('alice', 'alice-secret');
      await client.quit();
      expect(dovecot.readLog()).toMatch(/user=<alice>.*rip=192\.0\.2\.7/);
    } finally {
      await dovecot.stop();
    }
  }, 15_000);
});

describe('the Redis harness', () => {
  it('starts redis-server and answers PING through ioredis', async () => {
    const redis = await startRedis();
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      expect(await client.ping()).toBe('PONG');
      expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    } finally {
      client.disconnect();
      await redis.stop();
    }
    expect(() => process.kill(redis.pid, 0)).toThrow();
  }, 10_000);
});

describe('the popa3d harness', () => {
  let legacy: Popa3dInstance;
  beforeAll(async () => {
    legacy = await startPopa3d();
    legacy.addMessage(MESSAGE);
  }, 120_000);
  afterAll(async () => {
    await legacy?.stop();
  });

  it('answers USER, PASS, STAT and RETR, and -ERR to CAPA', async () => {
    const client = await Pop3TestClient.connect({ port: legacy.port });
    expect(client.greeting).toBe('+OK');
    expect(await client.command('CAPA')).toMatch(/^-ERR/);
    await client.login(legacy.user, legacy.password);
    expect(await client.command('STAT')).toMatch(/^\+OK 1 \d+$/);
    const retr = await client.multiline('RETR 1');
    expect(retr.status).toMatch(/^\+OK/);
    expect(retr.body!.toString('latin1')).toBe(MESSAGE);
    await client.quit();
  });

  it('removes its system user on stop', async () => {
    const other = await startPopa3d();
    await other.stop();
    expect(fs.readFileSync('/etc/passwd', 'utf8')).not.toContain(`${other.user}:`);
    expect(fs.existsSync(other.mboxFile)).toBe(false);
  });
});

describe('the demo backend', () => {
  let demo: DemoBackend;
  beforeAll(async () => {
    demo = await startDemoBackend({ port: 0 });
  });
  afterAll(async () => {
    await demo?.close();
  });

  it('serves message 1 to poplib', async () => {
    const result = await poplib(['p = connect()', 'p.user("demo")', 'p.pass_("demo")', 'out(body(p.retr(1)))', 'p.quit()'].join('\n'), {
      port: demo.port,
    });
    expect(result.stderr).toBe('');
    const expected = fs.readFileSync(new URL('../../demo/messages/1-welcome.eml', import.meta.url), 'latin1').replace(/\r?\n$/, '').split(/\r?\n/).join('\r\n');
    expect(JSON.parse(result.stdout)).toBe(expected);
  });

  it('accepts a correct APOP digest and refuses a wrong one', async () => {
    const client = await Pop3TestClient.connect({ port: demo.port });
    const timestamp = /<[^>]+>/.exec(client.greeting)![0];
    expect(await client.command('APOP demo 0123456789abcdef0123456789abcdef')).toMatch(/^-ERR \[AUTH\]/);
    const digest = crypto.createHash('md5').update(`${timestamp}demo`).digest('hex');
    expect(await client.command(`APOP demo ${digest}`)).toMatch(/^\+OK/);
    await client.quit();
    const viaPoplib = await poplib(['p = connect()', 'p.apop("demo", "demo")', 'out(p.stat())', 'p.quit()'].join('\n'), { port: demo.port });
    expect(JSON.parse(viaPoplib.stdout)[0]).toBe(4);
  });

  it('dot-stuffs lines that start with a dot and answers pipelined commands in order', async () => {
    const client = await Pop3TestClient.connect({ port: demo.port });
    client.sendRaw('USER demo\r\nPASS demo\r\nLIST 2\r\nRETR 2\r\nNOOP\r\n');
    expect(await client.readLine()).toMatch(/^\+OK/);
    expect(await client.readLine()).toMatch(/^\+OK/);
    const size = Number((await client.readLine()).split(' ')[2]);
    expect(await client.readLine()).toMatch(/^\+OK/);
    const body = await client.readMultiline();
    expect(body.length).toBe(size);
    expect(body.toString('latin1')).toContain('\r\n.\r\n..\r\n...\r\n.hidden\r\n');
    expect(await client.readLine()).toBe('+OK');
    await client.quit();
  });

  it('applies DELE only at QUIT and keeps the files on disk', async () => {
    const own = await startDemoBackend({ port: 0 });
    try {
      const a = await Pop3TestClient.connect({ port: own.port });
      await a.login('demo', 'demo');
      await a.ok('DELE 1');
      expect(await a.command('RETR 1')).toMatch(/^-ERR/);
      await a.close(); // no QUIT: nothing is deleted
      const b = await Pop3TestClient.connect({ port: own.port });
      await b.login('demo', 'demo');
      expect(await b.command('STAT')).toMatch(/^\+OK 4 /);
      await b.ok('DELE 1');
      expect(await b.quit()).toMatch(/^\+OK/);
      const c = await Pop3TestClient.connect({ port: own.port });
      await c.login('demo', 'demo');
      expect(await c.command('STAT')).toMatch(/^\+OK 3 /);
      await c.quit();
      expect(fs.readdirSync(new URL('../../demo/messages/', import.meta.url))).toHaveLength(4);
    } finally {
      await own.close();
    }
  });
});

describe('the script backend and the scripted client', () => {
  it('runs the handler per connection and upgrades both sides with STLS', async () => {
    const cert = await makeCert({ commonName: 'localhost' });
    const backend = await startScriptBackend(async (conn) => {
      await conn.write('+OK scripted\r\n');
      expect(await conn.readLine()).toBe('STLS');
      await conn.write('+OK begin TLS\r\n');
      await conn.startTls({ key: cert.keyPem, cert: cert.certPem });
      expect(await conn.readLine()).toBe('NOOP');
      await conn.write('+OK over TLS\r\n');
      expect(await conn.readLine()).toBe('QUIT');
      conn.end('+OK bye\r\n');
    });
    try {
      const client = await Pop3TestClient.connect({ port: backend.port });
      expect(client.greeting).toBe('+OK scripted');
      await client.startTls({ ca: cert.caPem, servername: 'localhost', rejectUnauthorized: true });
      expect(client.tlsSocket?.getPeerX509Certificate()?.fingerprint256).toBe(cert.fingerprint256);
      expect(await client.command('NOOP')).toBe('+OK over TLS');
      expect(await client.quit()).toBe('+OK bye');
      expect(backend.connections).toBe(1);
      expect(backend.errors).toEqual([]);
    } finally {
      await backend.close();
    }
  });

  it('reports what a timed-out wait was waiting for', async () => {
    const backend = await startScriptBackend(async (conn) => {
      await conn.write('+OK then silence\r\n');
      await conn.waitClosed(5000);
    });
    try {
      const client = await Pop3TestClient.connect({ port: backend.port });
      await expect(client.readLine(100)).rejects.toThrow(/timed out after 100 ms waiting for a line/);
      await client.close();
    } finally {
      await backend.close();
    }
  });
});

describe('the log capture', () => {
  it('collects pino lines as objects', () => {
    const logs = captureLogs();
    const logger = pino({ base: null }, logs.stream);
    logger.info({ event: 'connect', session: 's1' }, 'hello');
    expect(logs.find({ event: 'connect' })).toHaveLength(1);
    expect(logs.lines()[0]).toMatchObject({ msg: 'hello', session: 's1' });
    expect(logs.text()).toContain('"msg":"hello"');
  });
});

describe('the port and certificate helpers', () => {
  it('hands out distinct free ports and writes PEM files', async () => {
    const [a, b] = await Promise.all([freePort(), freePort()]);
    expect(a).not.toBe(b);
    const cert = await makeCert({ commonName: 'mail.example.test', altNames: ['mail.example.test'] });
    expect(fs.readFileSync(cert.certFile, 'utf8')).toBe(cert.certPem);
    expect(new crypto.X509Certificate(cert.certPem).checkIssued(new crypto.X509Certificate(cert.caPem))).toBe(true);
    expect(path.dirname(cert.keyFile).startsWith(os.tmpdir())).toBe(true);
  });

  it('freePorts gives distinct ports, each free to bind once it returns', async () => {
    for (let round = 0; round < 20; round++) {
      const ports = await freePorts(3);
      expect(new Set(ports).size).toBe(3);
      for (const port of ports) {
        const server = net.createServer();
        await new Promise<void>((resolve, reject) => server.once('error', reject).listen({ host: '127.0.0.1', port }, () => resolve()));
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    }
  });
});
