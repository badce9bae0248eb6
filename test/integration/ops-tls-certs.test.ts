/**
 * Client-facing certificates in a running gateway: SNI picks a certificate by server name
 * (node tls, STLS and openssl s_client), and certificate files rewritten on disk (a
 * certbot-style renewal) are picked up by themselves for new handshakes, a broken rewrite
 * keeps the current ones, and a stopped gateway watches nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCert, type CertFiles } from '../harness/certs.ts';
import { makeTempDir, runProcess } from '../harness/child-processes.ts';
import { peerFingerprint } from '../harness/cli-gateway.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';
import { freePort } from '../harness/ports.ts';

const SNI_NAME = 'mail.example.org';

async function eventually<T>(what: string, fn: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${String(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function opensslSubject(port: number, servername?: string): Promise<string> {
  const args = ['s_client', '-connect', `127.0.0.1:${port}`, ...(servername ? ['-servername', servername] : [])];
  const r = await runProcess('openssl', args, { input: 'QUIT\r\n', timeoutMs: 10_000 });
  const m = /^subject=(.*)$/m.exec(r.stdout.toString());
  if (!m) throw new Error(`no subject in s_client output: ${r.stdout.toString()}${r.stderr.toString()}`);
  return m[1]!;
}

describe('client certificates: SNI and renewals on disk', () => {
  let dir: string;
  let gw: TestGateway;
  let a: CertFiles;
  let b: CertFiles;
  let mailA: CertFiles;
  let mailB: CertFiles;
  const files = (): { cert: string; key: string; mailCert: string; mailKey: string } => ({
    cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'),
    mailCert: path.join(dir, 'mail.crt'), mailKey: path.join(dir, 'mail.key'),
  });
  const install = (main: CertFiles, mail: CertFiles): void => {
    const f = files();
    fs.writeFileSync(f.cert, main.certPem);
    fs.writeFileSync(f.key, main.keyPem);
    fs.writeFileSync(f.mailCert, mail.certPem);
    fs.writeFileSync(f.mailKey, mail.keyPem);
  };

  beforeAll(async () => {
    dir = makeTempDir('opstls');
    a = await makeCert({ commonName: 'localhost' });
    b = await makeCert({ commonName: 'localhost' });
    mailA = await makeCert({ commonName: SNI_NAME, altNames: [SNI_NAME] });
    mailB = await makeCert({ commonName: SNI_NAME, altNames: [SNI_NAME] });
    expect(new Set([a, b, mailA, mailB].map((c) => c.fingerprint256)).size).toBe(4);
    install(a, mailA);
    const f = files();
    // Nothing listens on the backend port: handshakes need no backend.
    gw = await startTestGateway(await freePort(), {
      tls: { cert: f.cert, key: f.key, sni: { [SNI_NAME]: { cert: f.mailCert, key: f.mailKey } } },
    });
  });

  afterAll(async () => {
    await gw?.stop();
  });

  it('chooses the certificate by server name on implicit TLS and after STLS', async () => {
    expect(await peerFingerprint(gw.port.pop3s!)).toBe(a.fingerprint256);
    expect(await peerFingerprint(gw.port.pop3s!, SNI_NAME)).toBe(mailA.fingerprint256);
    expect(await peerFingerprint(gw.port.pop3s!, 'MAIL.Example.ORG')).toBe(mailA.fingerprint256);
    expect(await peerFingerprint(gw.port.pop3s!, 'other.example.org')).toBe(a.fingerprint256);
    const c = await Pop3TestClient.connect({ port: gw.port.pop3! });
    await c.startTls({ servername: SNI_NAME, rejectUnauthorized: false });
    expect(c.tlsSocket!.getPeerX509Certificate()!.fingerprint256).toBe(mailA.fingerprint256);
    await c.quit();
  });

  it('shows the SNI certificate to openssl s_client -servername', async () => {
    const [named, plain] = await Promise.all([opensslSubject(gw.port.pop3s!, SNI_NAME), opensslSubject(gw.port.pop3s!)]);
    expect(named).toMatch(/CN ?= ?mail\.example\.org/);
    expect(plain).toMatch(/CN ?= ?localhost/);
  });

  it('picks up rewritten certificate files by itself, keeps the current ones when a rewrite is broken', async () => {
    const live = await Pop3TestClient.connect({ port: gw.port.pop3s!, tls: true });
    expect(live.tlsSocket!.getPeerX509Certificate()!.fingerprint256).toBe(a.fingerprint256);
    install(b, mailB);
    await eventually('the renewed default certificate', () => peerFingerprint(gw.port.pop3s!), (fp) => fp === b.fingerprint256);
    expect(await peerFingerprint(gw.port.pop3s!, SNI_NAME)).toBe(mailB.fingerprint256);
    const reloaded = await gw.logs.waitFor((l) => l.event === 'tls-reload' && l.fingerprint256 === b.fingerprint256, 5000);
    expect(reloaded.level).toBe(30);
    // A connection made before the renewal is untouched.
    expect((await live.multiline('CAPA')).status).toMatch(/^\+OK/);
    await live.close();

    // A half-written renewal: the certificate file holds garbage.
    fs.writeFileSync(files().cert, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n');
    const failed = await gw.logs.waitFor((l) => l.event === 'tls-reload-failed', 15_000);
    expect(String(failed.err)).toMatch(/tls\.cert/);
    expect(await peerFingerprint(gw.port.pop3s!)).toBe(b.fingerprint256);
    expect(await peerFingerprint(gw.port.pop3s!, SNI_NAME)).toBe(mailB.fingerprint256);
    // The renewal completes: the new files are used.
    install(a, mailA);
    await eventually('the restored certificate', () => peerFingerprint(gw.port.pop3s!), (fp) => fp === a.fingerprint256);
    expect(await peerFingerprint(gw.port.pop3s!, SNI_NAME)).toBe(mailA.fingerprint256);
  }, 45_000);

  it('stops watching the files when the gateway stops', async () => {
    await gw.gw.stop(200);
    const before = gw.logs.find({ event: 'tls-reload' }).length + gw.logs.find({ event: 'tls-reload-failed' }).length;
    install(b, mailB);
    await new Promise((r) => setTimeout(r, 4000));
    const after = gw.logs.find({ event: 'tls-reload' }).length + gw.logs.find({ event: 'tls-reload-failed' }).length;
    expect(after).toBe(before);
  });
});

describe('SNI added and removed by a reload (SIGHUP), in a running gateway', () => {
  // Without `tls.sni` entries the handshake servers run without an SNI callback (it costs every
  // handshake a call into JavaScript); a reload that adds the first entry builds them again.
  let gw: TestGateway;
  let mail: CertFiles;

  beforeAll(async () => {
    mail = await makeCert({ commonName: SNI_NAME, altNames: [SNI_NAME] });
    gw = await startTestGateway(await freePort());
  });

  afterAll(async () => {
    await gw?.stop();
  });

  it('serves the new name on implicit TLS and after STLS once added, and stops once removed', async () => {
    expect(await peerFingerprint(gw.port.pop3s!, SNI_NAME)).toBe(gw.fingerprint256);
    const withSni = { ...gw.config, tls: { ...gw.config.tls, sni: { [SNI_NAME]: { cert: mail.certFile, key: mail.keyFile } } } };
    await gw.gw.reload(withSni);
    expect(await peerFingerprint(gw.port.pop3s!, SNI_NAME)).toBe(mail.fingerprint256);
    expect(await peerFingerprint(gw.port.pop3s!)).toBe(gw.fingerprint256);
    const c = await Pop3TestClient.connect({ port: gw.port.pop3! });
    await c.startTls({ servername: SNI_NAME, rejectUnauthorized: false });
    expect(c.tlsSocket!.getPeerX509Certificate()!.fingerprint256).toBe(mail.fingerprint256);
    await c.quit();
    await gw.gw.reload({ ...gw.config, tls: { ...gw.config.tls, sni: {} } });
    expect(await peerFingerprint(gw.port.pop3s!, SNI_NAME)).toBe(gw.fingerprint256);
  });
});
