import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { exited, makeTempDir, spawnServer, stopChild } from '../harness/child-processes.ts';
import { Pop3TestClient } from '../harness/pop3-client.ts';

/**
 * `logging.format` through the real CLI: under a real pseudo-terminal (python3's pty module:
 * the gateway's stdout is a tty) and through a pipe, as scripts and service managers run it.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');

// Runs argv on a new pty, copies what it prints to our stdout, and passes SIGTERM on to it.
const PTY_RUNNER = [
  'import os, pty, signal, sys',
  'pid, fd = pty.fork()',
  'if pid == 0:',
  '    os.execvp(sys.argv[1], sys.argv[1:])',
  'signal.signal(signal.SIGTERM, lambda *a: os.kill(pid, signal.SIGTERM))',
  'while True:',
  '    try:',
  '        data = os.read(fd, 65536)',
  '    except OSError:',
  '        break',
  '    if not data:',
  '        break',
  '    os.write(1, data)',
  'os.waitpid(pid, 0)',
].join('\n');

const ANSI = /\x1b\[[0-9;]*m/g;
const SECRET = 'hunter2-Very-Secret';

interface Run {
  child: ChildProcess;
  text(): string;
  /** The lines printed so far, colour codes removed. */
  lines(): string[];
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

const running: ChildProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => stopChild(c, 'SIGTERM', 5000)));
});

function startGateway(opts: { tty: boolean; format?: string }): Run {
  const dir = makeTempDir('logfmt');
  const format = opts.format === undefined ? '' : `, format: ${opts.format}`;
  fs.writeFileSync(path.join(dir, 'gateway.yaml'), [
    'listeners:',
    '  - { name: plain, host: 127.0.0.1, port: 0, tls: none, requireTls: false }',
    // Nothing listens on port 1: a login fails at the backend, after the client sent its password.
    'backend: { host: 127.0.0.1, port: 1 }',
    `logging: { level: debug, audit: null${format} }`,
    'admin: { port: null }',
    '',
  ].join('\n'));
  const cli = [process.execPath, '--import', 'tsx', 'src/cli.ts', '--config', path.join(dir, 'gateway.yaml')];
  const child = opts.tty
    ? spawnServer('python3', ['-c', PTY_RUNNER, ...cli], { cwd: ROOT })
    : spawnServer(cli[0]!, cli.slice(1), { cwd: ROOT });
  running.push(child);
  let out = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (c: string) => (out += c));
  child.stderr!.resume();
  const clean = () => out.replace(ANSI, '').replace(/\r/g, '');
  return {
    child,
    text: clean,
    lines: () => clean().split('\n'),
    async waitFor(re, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const m = re.exec(clean());
        if (m) return m;
        if (child.exitCode !== null || child.signalCode !== null) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no ${re} in the gateway's output:\n${clean()}`);
    },
  };
}

/** The port from a readable "listening" record: its fields follow on indented lines. */
async function prettyPort(run: Run): Promise<number> {
  const m = await run.waitFor(/INFO \(\d+\): listening\n(?: {4}.*\n)*? {4}port: (\d+)\n/);
  return Number(m[1]);
}

async function jsonListening(run: Run): Promise<Record<string, unknown>> {
  await run.waitFor(/"msg":"listening"/);
  const line = run.lines().find((l) => l.includes('"msg":"listening"'))!;
  return JSON.parse(line) as Record<string, unknown>;
}

describe('logging.format through the CLI', () => {
  it('prints readable lines on a terminal by default, with no JSON on the listening line', async () => {
    const run = startGateway({ tty: true });
    expect(await prettyPort(run)).toBeGreaterThan(0);
    const listening = run.lines().find((l) => / INFO \(\d+\): listening$/.test(l))!;
    expect(listening).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): listening$/);
    expect(listening).not.toContain('{');
    expect(run.text()).toContain('    event: "listening"');
    expect(run.text()).not.toContain('"msg":');
  });

  it('prints the contract\'s JSON "listening" line by default when stdout is a pipe', async () => {
    const run = startGateway({ tty: false });
    const line = await jsonListening(run);
    expect(line).toMatchObject({ level: 'info', event: 'listening', listener: 'plain', host: '127.0.0.1', msg: 'listening' });
    for (const l of run.lines().filter((x) => x !== '')) expect(() => JSON.parse(l), l).not.toThrow();
  });

  it('prints JSON lines on a terminal when format is json', async () => {
    const run = startGateway({ tty: true, format: 'json' });
    expect((await jsonListening(run)).port).toBeGreaterThan(0);
    expect(run.text()).not.toMatch(/ INFO \(\d+\): /);
  });

  it('prints readable lines into a pipe when format is pretty, without colour codes', async () => {
    const run = startGateway({ tty: false, format: 'pretty' });
    expect(await prettyPort(run)).toBeGreaterThan(0);
    expect(run.text()).not.toContain('"msg":"listening"');
    expect(run.text()).not.toContain('\x1b[');
  });

  it('never prints a password in readable lines, even at debug with a failed login', async () => {
    const run = startGateway({ tty: true, format: 'pretty' });
    const port = await prettyPort(run);
    const client = await Pop3TestClient.connect({ port });
    try {
      expect(await client.command('USER alice@example.org')).toMatch(/^\+OK/);
      expect(await client.command(`PASS ${SECRET}`)).toMatch(/^-ERR/);
      await client.quit();
    } finally {
      await client.close();
    }
    // The session's end is logged after the failed login and its reply.
    await run.waitFor(/INFO \(\d+\): session end\n/, 10_000);
    expect(run.text()).toMatch(/ {4}verb: "PASS"\n {4}result: "err"/);
    expect(run.text()).not.toContain(SECRET);
    await stopChild(run.child, 'SIGTERM', 5000);
    await exited(run.child);
    expect(run.text()).not.toContain(SECRET);
  });
});
