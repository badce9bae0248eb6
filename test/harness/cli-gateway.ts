import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { stringify } from 'yaml';
import { exited, spawnServer, stopChild } from './child-processes.ts';
import { captureLogs, type LogCapture } from './log-capture.ts';

/**
 * The real gateway process (`node --import tsx src/cli.ts --config FILE`, what `npm start`
 * runs), for tests of workers, signals, reloads and exit codes. The config is written as
 * YAML to DIR/gateway.yaml; stdout JSON log lines (primary and workers) are parsed as they
 * arrive. Start resolves once every listener (and the admin endpoint, when configured) logged
 * "listening" — with `workers` above 1, the primary's lines, which come once all workers are ready.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
type Raw = Record<string, unknown>;

export interface CliGateway {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly configFile: string;
  /** Everything the process printed on stdout, parsed. */
  readonly logs: LogCapture;
  /** Bound ports by listener name (plus `admin`), from the "listening" lines. */
  readonly port: Record<string, number>;
  /** Resolves with the exit code once the process has exited (null when a signal ended it). */
  readonly exit: Promise<number | null>;
  /** Replaces the config file (send SIGHUP to apply it). */
  writeConfig(config: Raw | string): void;
  signal(sig: NodeJS.Signals): void;
  stderr(): string;
  /** SIGTERM, then SIGKILL after 5 s if it hangs; a no-op once it has exited. */
  stop(): Promise<void>;
}

export interface CliGatewayOptions {
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the "listening" lines (default 60 s: workers start one by one). */
  timeoutMs?: number;
  /** What node runs instead of `--import tsx src/cli.ts` (e.g. an installed, compiled cli.js), and its folder. */
  entry?: string[];
  cwd?: string;
}

/**
 * The config most audit tests run the real CLI with: one implicit-TLS listener, the given
 * certificate and backend, an audit file `audit.log` in the gateway's folder; `over` replaces
 * top-level keys (e.g. `admin`, `shutdownGrace`).
 */
export function auditedPop3sConfig(cert: { certFile: string; keyFile: string }, backendPort: number, over: Raw = {}): Raw {
  return {
    listeners: [{ name: 'pop3s', host: '127.0.0.1', port: 0, tls: 'implicit' }],
    tls: { cert: cert.certFile, key: cert.keyFile },
    backend: { host: '127.0.0.1', port: backendPort },
    logging: { level: 'info', audit: 'audit.log' },
    admin: null,
    shutdownGrace: '2s',
    ...over,
  };
}

export async function startCliGateway(dir: string, config: Raw | string, opts: CliGatewayOptions = {}): Promise<CliGateway> {
  const configFile = path.join(dir, 'gateway.yaml');
  const write = (c: Raw | string): void => fs.writeFileSync(configFile, typeof c === 'string' ? c : stringify(c));
  write(config);
  const child = spawnServer(process.execPath, [...(opts.entry ?? ['--import', 'tsx', 'src/cli.ts']), '--config', configFile], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
  });
  const logs = captureLogs();
  let err = '';
  child.stdout!.pipe(logs.stream);
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => (err += c));
  const exit = exited(child).then(() => child.exitCode);

  const raw = typeof config === 'string' ? null : config;
  const names = Array.isArray(raw?.listeners) ? (raw.listeners as Raw[]).map((l) => String(l.name)) : [];
  const workers = raw?.workers;
  const clustered = workers === 'auto' || (typeof workers === 'number' && workers > 1);
  const admin = raw?.admin as Raw | null | undefined;
  // `admin: null` or `admin: { port: null }`: no admin endpoint, no line to wait for.
  const wantAdmin = admin !== null && admin?.port !== null;
  const port: Record<string, number> = {};
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const waitListening = async (name: string, primaryOnly: boolean): Promise<void> => {
    const died = exit.then((code) => {
      throw new Error(`gateway exited with ${code} before listener ${name} was listening\nstderr: ${err}\nstdout: ${logs.text()}`);
    });
    const line = await Promise.race([
      logs.waitFor((l) => l.msg !== undefined && l.event === 'listening' && l.listener === name && (!primaryOnly || l.role === 'primary'),
        Math.max(1, deadline - Date.now())),
      died,
    ]);
    port[name] = line.port as number;
  };
  try {
    for (const name of names) await waitListening(name, clustered);
    if (wantAdmin) await waitListening('admin', false);
  } catch (e) {
    await stopChild(child, 'SIGKILL');
    throw new Error(`${(e as Error).message}\nstderr: ${err}\nstdout: ${logs.text().slice(-4000)}`);
  }
  return {
    pid: child.pid!,
    child,
    configFile,
    logs,
    port,
    exit,
    writeConfig: write,
    signal: (sig) => {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, sig);
    },
    stderr: () => err,
    stop: () => stopChild(child, 'SIGTERM', 5000),
  };
}

/**
 * The value of one series in a Prometheus text page, written as in the page
 * (`name` or `name{a="x",b="y"}`; label order does not matter); 0 when absent.
 */
export function metricValue(text: string, series: string): number {
  const want = splitSeries(series);
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)/.exec(line);
    if (!m) continue;
    const got = splitSeries(m[1]!);
    if (got.name === want.name && got.labels === want.labels) return Number(m[2]);
  }
  return 0;
}

function splitSeries(s: string): { name: string; labels: string } {
  const brace = s.indexOf('{');
  if (brace < 0) return { name: s, labels: '' };
  const body = s.slice(brace + 1, s.lastIndexOf('}'));
  const pairs = body.match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? [];
  return { name: s.slice(0, brace), labels: [...pairs].sort().join(',') };
}

/** SHA-256 fingerprint ("AB:CD:...") of the certificate a fresh TLS handshake shows. */
export function peerFingerprint(port: number, servername?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const fp = s.getPeerX509Certificate()?.fingerprint256;
      s.destroy();
      if (fp === undefined) reject(new Error('no peer certificate'));
      else resolve(fp);
    });
    s.setTimeout(10_000, () => s.destroy(new Error('TLS handshake timed out')));
    s.on('error', reject);
  });
}
