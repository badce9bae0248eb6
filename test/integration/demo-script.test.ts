/**
 * `npm run demo` (node --import tsx scripts/demo.ts): the sample backend plus the gateway,
 * here with a temporary config that binds loopback only on free ports. A real curl fetches
 * message 1; SIGTERM stops everything and leaves no process behind.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curlPop3 } from '../harness/clients.ts';
import { freePort } from '../harness/ports.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Every live descendant of `pid`, from /proc. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    // "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ")".
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is dead but still listed until its parent reaps it.
  try {
    return !/^\S+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

describe('npm run demo', () => {
  let dir: string;
  let demo: ChildProcess;
  let stdout = '';
  let stderr = '';
  let backendPort: number;
  const ports: Record<string, number> = {};
  let exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  let family: number[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pop3gw-demo-test-'));
    backendPort = await freePort();
    // Same shape as the shipped gateway.yaml, but loopback only and free ports (0); no cert
    // files, so the gateway generates a self-signed pair as on a fresh clone.
    fs.writeFileSync(path.join(dir, 'gateway.yaml'), [
      'listeners:',
      '  - { name: pop3s, host: 127.0.0.1, port: 0, tls: implicit }',
      '  - { name: pop3, host: 127.0.0.1, port: 0, tls: starttls }',
      'tls: { cert: certs/server.crt, key: certs/server.key }',
      `backend: { host: 127.0.0.1, port: ${backendPort}, tls: none, connect: on-login }`,
      'logging: { level: info, audit: audit.log }',
      'admin: { host: 127.0.0.1, port: 0 }',
      'shutdownGrace: 2s',
      '',
    ].join('\n'));
    demo = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'scripts', 'demo.ts'),
      '--config', path.join(dir, 'gateway.yaml'), '--backend-port', String(backendPort)], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'],
    });
    exit = new Promise((resolve) => demo.once('exit', (code, signal) => resolve({ code, signal })));
    demo.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`demo did not start in 20 s\nstdout:\n${stdout}\nstderr:\n${stderr}`)), 20_000);
      demo.stdout!.on('data', (c: Buffer) => {
        stdout += c.toString();
        for (const line of stdout.split('\n')) {
          if (!line.startsWith('{')) continue;
          const entry = JSON.parse(line) as { msg?: string; listener?: string; port?: number };
          if (entry.msg === 'listening' && entry.listener !== undefined && entry.port !== undefined) ports[entry.listener] = entry.port;
        }
        if (ports.pop3s !== undefined && ports.pop3 !== undefined && stdout.includes('pop3-gateway demo')) {
          clearTimeout(timer);
          resolve();
        }
      });
      demo.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`demo exited early (${code})\nstdout:\n${stdout}\nstderr:\n${stderr}`));
      });
    });
    family = descendants(demo.pid!);
  }, 30_000);

  afterAll(() => {
    // Only if a test failed before SIGTERM: end what this test started, by PID.
    for (const pid of [demo?.pid, ...family]) if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('starts the sample backend and a gateway on the configured loopback ports', () => {
    expect(stdout).toContain(`demo: sample POP3 backend on 127.0.0.1:${backendPort}`);
    expect(family.length).toBeGreaterThanOrEqual(1);
    expect(ports.pop3s).toBeGreaterThan(0);
    const listening = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg?: string; host?: string })
      .filter((e) => e.msg === 'listening');
    expect(listening.length).toBeGreaterThanOrEqual(2);
    expect(listening.every((e) => e.host === '127.0.0.1')).toBe(true);
    // No certificate was configured: a self-signed pair was generated next to the config.
    expect(fs.existsSync(path.join(dir, 'certs', 'server.crt'))).toBe(true);
  });

  it('serves message 1 to curl -k pop3s://127.0.0.1:PORT/1 -u demo:demo', async () => {
    const r = await curlPop3(`pop3s://127.0.0.1:${ports.pop3s}/1`, { user: 'demo', password: 'demo', insecure: true });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const expected = fs.readFileSync(path.join(ROOT, 'demo', 'messages', '1-welcome.eml'), 'latin1')
      .replace(/\r?\n$/, '').split(/\r?\n/).join('\r\n');
    expect(r.stdout.toString('latin1')).toBe(`${expected}\r\n`);
  });

  it('serves message 2 over STLS too, and refuses a wrong password', async () => {
    const r = await curlPop3(`pop3://127.0.0.1:${ports.pop3}/2`, { user: 'demo', password: 'demo', insecure: true, extra: ['--ssl-reqd'] });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(0);
    const bad = await curlPop3(`pop3s://127.0.0.1:${ports.pop3s}/1`, { user: 'demo', password: 'wrong', insecure: true });
    expect(bad.code).not.toBe(0);
  });

  it('stops on SIGTERM with exit code 0 and leaves no process or port behind', async () => {
    expect(family.every(alive)).toBe(true);
    demo.kill('SIGTERM');
    const result = await Promise.race([exit, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
    expect(result).toEqual({ code: 0, signal: null });
    expect(stdout).toContain('demo: SIGTERM, stopping the gateway');
    expect(stdout).toMatch(/demo: gateway exited \(code 0\)/);
    for (const until = Date.now() + 2000; family.some(alive) && Date.now() < until;) await new Promise((r) => setTimeout(r, 50));
    expect(family.filter(alive)).toEqual([]);
    expect(await refused(ports.pop3s!)).toBe(true);
    expect(await refused(backendPort)).toBe(true);
  }, 20_000);
});
