import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { exited, makeTempDir, spawnServer, stopChild } from './child-processes.ts';
import { freePort } from './ports.ts';

/**
 * A real HAProxy (Debian package `haproxy`) in TCP mode for PROXY protocol tests: its own
 * config file in a temp folder, run in the foreground (`-db`), no stats socket, bound to
 * 127.0.0.1 only, stopped by its PID.
 *
 * HAProxy writes no pidfile in foreground mode (only with -D or -W), so the PID is the
 * spawned child's own (spawnServer's setpriv execs HAProxy, so they are the same process).
 * Readiness is read from /proc/net/tcp (the frontend socket in LISTEN state), not by
 * connecting: a probe connection would travel on to the backend and show up in its logs.
 * HAProxy's own log (connections, server UP/DOWN) goes to its stderr: `readLog()`.
 */

export interface HaproxyServer {
  host: string;
  port: number;
}

export interface HaproxyOptions {
  /** Frontend port on 127.0.0.1; default a free one. */
  frontendPort?: number;
  backends: HaproxyServer[];
  /** PROXY header sent to every backend server; false sends none. */
  sendProxy: 'v1' | 'v2' | false;
  /** TCP only: the harness never configures HTTP mode. */
  mode?: 'tcp';
  balance?: 'roundrobin' | 'leastconn' | 'first';
  /**
   * POP3 health checks: connect (with the PROXY header when sendProxy is set, as
   * HAProxy does by default), expect the `+OK` greeting, QUIT, expect `+OK`.
   */
  healthCheck?: { interMs: number; fall?: number; rise?: number };
  /** Client/server inactivity timeout; default 60 s. */
  timeoutMs?: number;
}

export interface HaproxyInstance {
  host: '127.0.0.1';
  /** The (first) frontend port. */
  port: number;
  /** Every frontend port by frontend name (startHaproxyConfig). */
  ports: Record<string, number>;
  pid: number;
  dir: string;
  configFile: string;
  config: string;
  /** HAProxy's stderr: startup notices and one log line per connection and server state change. */
  readLog(): string;
  /** Resolves with the log once it contains `pattern`. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  stop(): Promise<void>;
}

const HAPROXY = process.env.POP3GW_HAPROXY_BIN ?? '/usr/sbin/haproxy';
const START_TIMEOUT_MS = 8000;

const GLOBAL = [
  'global',
  '  nbthread 1',
  '  log stderr format raw local0 info',
  '',
].join('\n');

function sendProxyKeyword(v: 'v1' | 'v2' | false): string {
  return v === 'v1' ? ' send-proxy' : v === 'v2' ? ' send-proxy-v2' : '';
}

export function buildHaproxyConfig(frontendPort: number, opts: HaproxyOptions): string {
  if (opts.backends.length === 0) throw new Error('haproxy harness: at least one backend server is needed');
  const timeout = opts.timeoutMs ?? 60_000;
  const check = opts.healthCheck;
  const lines = [
    GLOBAL,
    'defaults',
    `  mode ${opts.mode ?? 'tcp'}`,
    '  log global',
    '  option tcplog',
    '  timeout connect 5s',
    // Without it a check times out after `inter`: too short on a loaded test machine.
    '  timeout check 2s',
    `  timeout client ${timeout}ms`,
    `  timeout server ${timeout}ms`,
    '',
    'frontend fe',
    `  bind 127.0.0.1:${frontendPort}`,
    '  default_backend be',
    '',
    'backend be',
    `  balance ${opts.balance ?? 'roundrobin'}`,
  ];
  if (check) {
    // No explicit `tcp-check connect`: the implicit one inherits the server's send-proxy(-v2)
    // (v2 checks send a LOCAL header, v1 checks the check connection's own addresses). A bare
    // `tcp-check connect` rule would send no header, and the gateway drops such connections.
    lines.push(
      '  option tcp-check',
      '  tcp-check expect string +OK',
      '  tcp-check send QUIT\\r\\n',
      '  tcp-check expect string +OK',
    );
  }
  opts.backends.forEach((b, i) => {
    const checkWords = check ? ` check inter ${check.interMs}ms fall ${check.fall ?? 2} rise ${check.rise ?? 2}` : '';
    lines.push(`  server s${i} ${b.host}:${b.port}${sendProxyKeyword(opts.sendProxy)}${checkWords}`);
  });
  return lines.join('\n') + '\n';
}

/** Ports in LISTEN state on 127.0.0.1 (from /proc/net/tcp; 0100007F is 127.0.0.1 little-endian). */
function listeningPorts(): Set<number> {
  const out = new Set<number>();
  const text = fs.readFileSync('/proc/net/tcp', 'utf8');
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (local === undefined || fields[3] !== '0A') continue;
    const [addr, port] = local.split(':');
    if (addr === '0100007F' && port !== undefined) out.add(parseInt(port, 16));
  }
  return out;
}

/** Starts HAProxy in front of `backends`, retrying when the free port was taken meanwhile. */
export async function startHaproxy(opts: HaproxyOptions): Promise<HaproxyInstance> {
  let lastError: unknown = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = opts.frontendPort ?? (await freePort());
    try {
      return await startHaproxyConfig(buildHaproxyConfig(port, opts), { fe: port });
    } catch (err) {
      lastError = err;
      if (opts.frontendPort !== undefined || !/cannot bind|Address already in use/i.test(String(err))) break;
    }
  }
  throw lastError;
}

/**
 * Runs HAProxy with a given config text. `frontends` names the ports the config binds on
 * 127.0.0.1; the call resolves once all of them listen.
 */
export async function startHaproxyConfig(config: string, frontends: Record<string, number>): Promise<HaproxyInstance> {
  const dir = makeTempDir('haproxy');
  const configFile = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(configFile, config);
  const child: ChildProcess = spawnServer(HAPROXY, ['-db', '-f', configFile]);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  let dead = false;
  child.once('exit', () => (dead = true));

  const wanted = Object.values(frontends);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!dead && !(wanted.every((p) => listeningPorts().has(p)))) {
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  if (dead || !wanted.every((p) => listeningPorts().has(p))) {
    await stopChild(child, 'SIGTERM', 1000);
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`startHaproxy failed (${dead ? `exited ${String(child.exitCode ?? child.signalCode)}` : 'not listening in time'}):\n${output}\n--- config ---\n${config}`);
  }

  let stopped: Promise<void> | null = null;
  const readLog = (): string => output;
  return {
    host: '127.0.0.1',
    port: wanted[0]!,
    ports: { ...frontends },
    pid: child.pid!,
    dir,
    configFile,
    config,
    readLog,
    async waitForLog(pattern, timeoutMs = 5000) {
      const end = Date.now() + timeoutMs;
      while (!pattern.test(output)) {
        if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${String(pattern)} in the HAProxy log:\n${output}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      return output;
    },
    stop() {
      // SIGUSR1 would be a soft stop that waits for live connections; SIGTERM ends them now.
      stopped ??= (async () => {
        await stopChild(child, 'SIGTERM', 3000);
        await exited(child);
        fs.rmSync(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
