/**
 * A reconnecting client resumes its TLS session with the gateway instead of a full handshake,
 * checked from outside with `openssl s_client -sess_out` then `-sess_in` ("Reused"): TLS 1.3
 * tickets, TLS 1.2 tickets, and TLS 1.2 session IDs (-no_ticket), on implicit TLS and after STLS.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../harness/child-processes.ts';
import { startTestGateway, type TestGateway } from '../harness/gateway.ts';
import { freePort } from '../harness/ports.ts';

/** One s_client run that waits for the greeting (and a TLS 1.3 ticket) before QUIT; "New" or "Reused". */
async function handshake(port: number, args: string[], session: string, dir: 'out' | 'in'): Promise<string> {
  const r = await runProcess('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args, dir === 'out' ? '-sess_out' : '-sess_in', session], {
    timeoutMs: 10_000,
    feed: async (child) => {
      await new Promise((res) => setTimeout(res, 400));
      child.stdin!.end('QUIT\r\n');
    },
  });
  const out = r.stdout.toString('latin1');
  const m = /^(New|Reused), (TLSv[\d.]+)/m.exec(out);
  expect(m, `no handshake summary in:\n${out}\n${r.stderr.toString('latin1')}`).not.toBeNull();
  // Implicit TLS: the greeting arrives inside the session (with STLS, s_client reads it itself).
  if (!args.includes('-starttls')) expect(out).toContain('+OK');
  return `${m![1]} ${m![2]}`;
}

describe('TLS session resumption', () => {
  let gw: TestGateway;
  let tmp: string;

  beforeAll(async () => {
    // No backend needed: the gateway greets by itself (connect: on-login) and QUIT before login is local.
    gw = await startTestGateway(await freePort(), { logging: { level: 'warn' } });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3gw-resume-'));
  });

  afterAll(async () => {
    await gw?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it.each([
    ['TLS 1.3 tickets', ['-tls1_3'], 'TLSv1.3'],
    ['TLS 1.2 tickets', ['-tls1_2'], 'TLSv1.2'],
    ['TLS 1.2 session IDs', ['-tls1_2', '-no_ticket'], 'TLSv1.2'],
  ])('resumes with %s on implicit TLS', async (name, args, version) => {
    const file = path.join(tmp, `${name.replace(/\W+/g, '-')}.pem`);
    expect(await handshake(gw.port.pop3s!, args, file, 'out')).toBe(`New ${version}`);
    expect(await handshake(gw.port.pop3s!, args, file, 'in')).toBe(`Reused ${version}`);
  });

  it('resumes a session ID after STLS too', async () => {
    const file = path.join(tmp, 'stls.pem');
    const args = ['-starttls', 'pop3', '-tls1_2', '-no_ticket'];
    expect(await handshake(gw.port.pop3!, args, file, 'out')).toBe('New TLSv1.2');
    expect(await handshake(gw.port.pop3!, args, file, 'in')).toBe('Reused TLSv1.2');
  });
});
