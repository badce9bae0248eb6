import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Child-process plumbing shared by the harness: every server we start is
 * registered here so it is stopped by its own stop() and, failing that, when
 * the test process exits. Only PIDs we spawned are ever signalled.
 */

const exitHooks = new Set<() => void>();
let exitHandlerInstalled = false;

/** Runs fn synchronously when the test process exits (normal exit or process.exit). */
export function onProcessExit(fn: () => void): () => void {
  if (!exitHandlerInstalled) {
    exitHandlerInstalled = true;
    process.once('exit', () => {
      for (const hook of [...exitHooks]) {
        try {
          hook();
        } catch (err) {
          // The process is exiting; stderr is the only place left to report to.
          process.stderr.write(`harness exit cleanup failed: ${String(err)}\n`);
        }
      }
    });
  }
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

const SETPRIV = '/usr/bin/setpriv';
const hasSetpriv = fs.existsSync(SETPRIV);

/**
 * Spawns a long-running server. Where util-linux `setpriv` exists the child gets
 * SIGTERM when its parent dies (PR_SET_PDEATHSIG), so a test worker killed by a
 * signal leaves nothing behind; setpriv execs, so child.pid is the server's PID.
 */
export function spawnServer(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = hasSetpriv
    ? spawn(SETPRIV, ['--pdeathsig', 'TERM', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...options })
    : spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  child.once('error', () => undefined); // reported through exit/wait below
  const pid = child.pid;
  if (pid !== undefined) {
    const unregister = onProcessExit(() => {
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          // already gone: nothing to clean up
        }
      }
    });
    child.once('exit', () => unregister());
  }
  return child;
}

/** Resolves when the child has exited (immediately if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM (or `signal`), then SIGKILL after killAfterMs; resolves once the PID is gone. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const done = exited(child);
  child.kill(signal);
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }, killAfterMs);
  await done;
  clearTimeout(timer);
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called with the child's stdin after spawn, instead of writing `input` at once. */
  feed?: (child: ChildProcess) => Promise<void>;
}

/** Runs a command to completion, killing it (SIGKILL, by PID) after timeoutMs. */
export function runProcess(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    const pid = child.pid;
    const unregister =
      pid === undefined
        ? () => undefined
        : onProcessExit(() => {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    child.stdin.on('error', () => undefined); // the child may exit before reading all input
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      unregister();
      reject(new Error(`could not run ${command}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      unregister();
      resolve({ code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr), timedOut });
    });
    if (options.feed) {
      options.feed(child).catch((err: unknown) => {
        stderr.push(Buffer.from(`\n[harness] feeding stdin failed: ${String(err)}\n`));
        child.stdin.end();
      });
    } else {
      child.stdin.end(options.input ?? '');
    }
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A temp folder /tmp/pop3gw-<kind>-<pid>-XXXXXX, removed on process exit.
 * Test workers killed by a signal never run exit hooks, so each call also
 * removes pop3gw-* folders whose owner PID is gone.
 */
export function makeTempDir(kind: string): string {
  const tmp = os.tmpdir();
  for (const name of fs.readdirSync(tmp)) {
    const m = /^pop3gw-[a-z0-9]+-(\d+)-[A-Za-z0-9]{6}$/.exec(name);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) {
      fs.rmSync(path.join(tmp, name), { recursive: true, force: true });
    }
  }
  const dir = fs.mkdtempSync(path.join(tmp, `pop3gw-${kind}-${process.pid}-`));
  onProcessExit(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
