/**
 * The gateway as an operator runs it: the compiled `node dist/src/cli.js --config
 * FILE` (built first when src/ is newer than dist/, scripts/build.mjs --if-stale)
 * in a child process, so its CPU time and RSS can be read from /proc.
 * Ready when every listener has logged `"msg":"listening"` (or, when the log
 * level hides info lines, when every port accepts a connection).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { spawnServer, stopChild } from '../../test/harness/child-processes.ts';
import { freePorts, waitForPort } from '../../test/harness/ports.ts';
import { flagName, gatewayNodeFlags } from '../../test/harness/node-flags.ts';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface GatewayProcessOptions {
  /** Folder for gateway.yaml and the audit log (the caller creates and removes it). */
  dir: string;
  backendPort: number;
  certFile: string;
  keyFile: string;
  level: 'warn' | 'info';
  /** Another checkout whose built dist/src/cli.js to run (A/B against an older commit); default this one. */
  root?: string;
  audit: boolean;
  /** Merged into `policy` (e.g. auth failure limits for the soak). */
  policy?: Record<string, unknown>;
  startTimeoutMs?: number;
  /** Extra node options before the script, e.g. ['--cpu-prof', '--cpu-prof-dir=DIR']. */
  nodeArgs?: string[];
  /** Run the TypeScript source through tsx instead of the compiled dist/ (for comparisons). */
  source?: boolean;
  /** Start with `--inspect=127.0.0.1:0` (for a forced GC and memoryUsage(); see inspector.ts). */
  inspect?: boolean;
  /**
   * Send the gateway's stdout (its JSON log) to a file in `dir` instead of a pipe read here. The
   * bench's clients run in this process: reading a pipe fed by an info-level gateway while they
   * measure puts the log's consumer (journald's part, in production) on the client's cores and
   * in the gateway's figures. Counts and the tail read the file when asked. Readiness is by port.
   */
  logToFile?: boolean;
  /** Extra environment variables for the gateway process (A/B experiments on one build). */
  env?: Record<string, string>;
}

export interface GatewayProcess {
  pid: number;
  /** Ports by listener name: pop3s (implicit TLS), pop3 (STLS). */
  ports: { pop3s: number; pop3: number };
  configFile: string;
  auditFile: string | null;
  /** The inspector's ws:// URL when started with `inspect`. */
  inspectorUrl: string | null;
  /** JSON log lines seen on stdout, by level name. */
  logCounts(): Record<string, number>;
  /** Lines at warn and above, counted by "level event" (event from the line's `event` field). */
  eventCounts(): Record<string, number>;
  /** Last lines of stderr and of non-JSON stdout, for error reports. */
  outputTail(): string;
  exited(): boolean;
  stop(): Promise<void>;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

export async function startGatewayProcess(opts: GatewayProcessOptions): Promise<GatewayProcess> {
  // A port from freePort() can be taken by another process before the gateway binds it: retry on that.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
    }
  }
}

let built = false;

/** Compiles src/ to dist/ when dist/ is missing or older than the source (once per process). */
export function ensureBuilt(): void {
  if (built) return;
  execFileSync(process.execPath, [path.join(REPO_ROOT, 'scripts', 'build.mjs'), '--if-stale'], { cwd: REPO_ROOT, stdio: 'inherit' });
  built = true;
}

async function startOnce(opts: GatewayProcessOptions): Promise<GatewayProcess> {
  if (opts.source !== true && opts.root === undefined) ensureBuilt();
  const [pop3s, pop3] = await freePorts(2);
  const auditFile = opts.audit ? path.join(opts.dir, 'audit.log') : null;
  const config = {
    listeners: [
      { name: 'pop3s', host: '127.0.0.1', port: pop3s, tls: 'implicit' },
      { name: 'pop3', host: '127.0.0.1', port: pop3, tls: 'starttls' },
    ],
    tls: { cert: opts.certFile, key: opts.keyFile },
    backend: { host: '127.0.0.1', port: opts.backendPort },
    policy: {
      connections: { maxPerIp: 100000, maxTotal: 100000 },
      ...opts.policy,
      // Logins in flight are charged against the account's budget (issue 9): the idle-memory
      // phase logs 50 sessions in at once as one user, so the budget must not be what is measured.
      auth: { failureDelay: '0s', maxFailuresPerUser: 100000, maxFailuresPerIp: 100000, ...(opts.policy?.auth as Record<string, unknown> | undefined) },
    },
    logging: { level: opts.level, audit: auditFile },
    admin: { port: null },
    shutdownGrace: '2s',
  };
  const configFile = path.join(opts.dir, 'gateway.yaml');
  fs.writeFileSync(configFile, YAML.stringify(config));

  // The flags the systemd unit and `npm start` run it with, except those the caller sets itself.
  const own = new Set((opts.nodeArgs ?? []).map(flagName));
  const flagArgs = opts.source === true ? [] : gatewayNodeFlags().filter((f) => !own.has(flagName(f)));
  const logFile = opts.logToFile === true ? path.join(opts.dir, 'stdout.log') : null;
  const logFd = logFile === null ? null : fs.openSync(logFile, 'a');
  const child = spawnServer(process.execPath, [...flagArgs, ...(opts.nodeArgs ?? []), ...(opts.inspect === true ? ['--inspect=127.0.0.1:0'] : []),
    ...(opts.source === true ? ['--import', 'tsx', 'src/cli.ts'] : ['dist/src/cli.js']), '--config', configFile],
  { cwd: opts.root ?? REPO_ROOT, ...(logFd === null ? {} : { stdio: ['ignore', logFd, 'pipe'] }),
    ...(opts.env === undefined ? {} : { env: { ...process.env, ...opts.env } }) });
  if (logFd !== null) fs.closeSync(logFd);
  let logFileOffset = 0;
  const counts: Record<string, number> = {};
  const events: Record<string, number> = {};
  const tail: string[] = [];
  const keepTail = (line: string): void => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
  };
  const listening = new Set<string>();
  let onListening: () => void = () => undefined;
  let stdoutRest = '';
  const parseLine = (line: string): void => {
    if (line === '') return;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      keepTail(`stdout: ${line}`);
      return;
    }
    const level = typeof rec.level === 'number' ? (LEVEL_NAMES[rec.level] ?? String(rec.level)) : String(rec.level);
    counts[level] = (counts[level] ?? 0) + 1;
    if (level !== 'info' && level !== 'debug' && level !== 'trace') {
      keepTail(`log: ${line.slice(0, 500)}`);
      const key = `${level} ${typeof rec.event === 'string' ? rec.event : String(rec.msg)}`;
      events[key] = (events[key] ?? 0) + 1;
    }
    if (rec.msg === 'listening' && typeof rec.listener === 'string') {
      listening.add(rec.listener);
      onListening();
    }
  };
  // Once the gateway is up, its log is only kept, and parsed when a count or the tail is asked
  // for: the bench's clients run on this thread, and parsing ~100 JSON lines every 20 ms (a log
  // batch at info) here would show up in their NOOP round trips as the gateway's latency.
  let ready = false;
  const unparsed: string[] = [];
  const parsePending = (): void => {
    if (logFile !== null) {
      const buf = fs.readFileSync(logFile);
      unparsed.push(buf.subarray(logFileOffset).toString('utf8'));
      logFileOffset = buf.length;
    }
    const text = unparsed.join('');
    unparsed.length = 0;
    const lines = (stdoutRest + text).split('\n');
    stdoutRest = lines.pop() ?? '';
    for (const line of lines) parseLine(line);
  };
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    unparsed.push(chunk);
    if (!ready) parsePending();
  });
  child.stderr?.setEncoding('utf8');
  let inspectorUrl: string | null = null;
  child.stderr?.on('data', (chunk: string) => {
    for (const l of chunk.split('\n').filter((x) => x !== '')) {
      const m = /^Debugger listening on (ws:\/\/\S+)/.exec(l);
      if (m !== null) inspectorUrl = m[1]!;
      else if (!/^(For help, see: https:\/\/nodejs\.org|Debugger attached\.|Debugger ending on |Waiting for the debugger)/.test(l)) keepTail(`stderr: ${l}`);
    }
  });
  let exitInfo: string | null = null;
  child.once('exit', (code, signal) => (exitInfo = `exited with ${code ?? signal}`));
  const outputTail = () => {
    parsePending();
    return tail.join('\n');
  };

  const timeoutMs = opts.startTimeoutMs ?? 20_000;
  try {
    await waitReady(child, () => exitInfo, timeoutMs, opts.level === 'info' && logFile === null
      ? new Promise<void>((resolve) => {
        onListening = () => {
          if (listening.has('pop3s') && listening.has('pop3')) resolve();
        };
        onListening();
      })
      : Promise.all([waitForPort('127.0.0.1', pop3s, timeoutMs), waitForPort('127.0.0.1', pop3, timeoutMs)]).then(() => undefined));
    if (opts.inspect === true && inspectorUrl === null) throw new Error('started with --inspect but printed no inspector URL');
    ready = true;
  } catch (err) {
    await stopChild(child, 'SIGTERM', 5000);
    throw new Error(`gateway did not start: ${(err as Error).message}\n${outputTail()}`);
  }

  return {
    pid: child.pid!,
    ports: { pop3s, pop3 },
    configFile,
    auditFile,
    inspectorUrl,
    logCounts: () => {
      parsePending();
      return { ...counts };
    },
    eventCounts: () => {
      parsePending();
      return { ...events };
    },
    outputTail,
    exited: () => exitInfo !== null,
    stop: () => stopChild(child, 'SIGTERM', 5000),
  };
}

function waitReady(child: ChildProcess, exitInfo: () => string | null, timeoutMs: number, ready: Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within ${timeoutMs} ms`)), timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      reject(new Error(`gateway ${exitInfo() ?? 'exited'} during startup`));
    };
    child.once('exit', onExit);
    ready.then(
      () => {
        clearTimeout(timer);
        child.removeListener('exit', onExit);
        resolve();
      },
      (err: unknown) => {
        clearTimeout(timer);
        child.removeListener('exit', onExit);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
