/**
 * Sessions per second with `workers: 1` and `workers: 2`: the real CLI in front of a real
 * Dovecot, loaded by a separate process (cluster-load.ts) with full POP3S sessions
 * (handshake, USER, PASS, STAT, QUIT) for a fixed time. Also reads the gateway's CPU seconds
 * (primary + workers, summed by the primary's /metrics) over the run.
 *
 * The gateway runs compiled (dist/, built first when stale). The load process is pinned with
 * `taskset` to the last CPU so its TLS work stays off the gateway's other core(s); the gateway
 * and Dovecot float (on a 2-core machine they share CPU 0 with nothing else of ours, and CPU 1
 * with the client).
 *
 *   node --import tsx bench/cluster-scaling.ts [SECONDS=5] [CONCURRENCY=16]
 */
import os from 'node:os';
import path from 'node:path';
import { makeCert } from '../test/harness/certs.ts';
import { makeTempDir, runProcess } from '../test/harness/child-processes.ts';
import { metricValue, startCliGateway } from '../test/harness/cli-gateway.ts';
import { startDovecot } from '../test/harness/dovecot.ts';
import { freePorts } from '../test/harness/ports.ts';
import { ensureBuilt } from './lib/gateway-process.ts';

const seconds = Number(process.argv[2] ?? 5);
const concurrency = Number(process.argv[3] ?? 16);
const root = path.resolve(import.meta.dirname, '..');
const clientCpu = String(os.availableParallelism() - 1);
ensureBuilt();

const dovecot = await startDovecot();
dovecot.addMessage('alice', 'Subject: bench\r\n\r\nhello\r\n');
const cert = await makeCert({ commonName: 'localhost' });

async function cpuSeconds(adminPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  return metricValue(text, 'process_cpu_seconds_total');
}

async function measure(workers: number): Promise<Record<string, unknown>> {
  const dir = makeTempDir('scaling');
  const [pop3s, admin] = await freePorts(2);
  const gw = await startCliGateway(dir, {
    listeners: [{ name: 'pop3s', host: '127.0.0.1', port: pop3s, tls: 'implicit' }],
    tls: { cert: cert.certFile, key: cert.keyFile },
    backend: { host: '127.0.0.1', port: dovecot.port },
    workers,
    policy: { connections: { maxPerIp: 100_000, maxTotal: 100_000 } },
    logging: { level: 'info', audit: path.join(dir, 'audit.log') },
    admin: { host: '127.0.0.1', port: admin },
    shutdownGrace: '2s',
  }, { entry: [path.join(root, 'dist', 'src', 'cli.js')] });
  try {
    const load = (s: number) => runProcess('taskset', ['-c', clientCpu, process.execPath, '--import', 'tsx', 'bench/cluster-load.ts', String(pop3s), 'alice', 'alice-secret', String(concurrency), String(s)], { cwd: root, timeoutMs: (s + 30) * 1000 });
    await load(1); // warm-up: JIT, TLS contexts, Dovecot's auth and pop3 processes
    const cpu0 = await cpuSeconds(admin);
    const r = await load(seconds);
    const cpu1 = await cpuSeconds(admin);
    if (r.code !== 0) throw new Error(`load failed: ${r.stderr.toString()}`);
    const result = JSON.parse(r.stdout.toString().trim()) as { sessions: number; errors: number; perSecond: number; elapsedMs: number; samples: string[] };
    return { workers, ...result, perSecond: Math.round(result.perSecond), gatewayCpuSeconds: Number((cpu1 - cpu0).toFixed(2)) };
  } finally {
    await gw.stop();
  }
}

try {
  const results = [await measure(1), await measure(2)];
  const machine = { clientPinnedToCpu: Number(clientCpu), cpus: os.cpus().length, model: os.cpus()[0]?.model, loadavg: os.loadavg().map((l) => Number(l.toFixed(2))), node: process.version };
  process.stdout.write(`${JSON.stringify({ seconds, concurrency, machine, results }, null, 2)}\n`);
} finally {
  await dovecot.stop();
}
