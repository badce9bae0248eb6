/**
 * `node --import tsx bench/thread-cpu.ts [NODE_FLAG...]`: CPU per GiB relayed, split into the main
 * thread and all other threads (V8's GC helpers, libuv's pool) from /proc/PID/task, for the Node
 * TLS pipe and the compiled gateway (warn, no audit; NODE_FLAG... are passed to the gateway's node,
 * e.g. --no-single-threaded-gc), RETR of a 60 MiB message 4 times, two passes each. This is how
 * the GC helper threads' share of the per-GiB cost was found (README "Benchmark").
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeCert } from '../test/harness/certs.ts';
import { startDovecot } from '../test/harness/dovecot.ts';
import { openRunScope } from './lib/run-scope.ts';
import { startGatewayProcess } from './lib/gateway-process.ts';
import { startPipeProxy } from './lib/pipe-proxy.ts';
import { bulkMessage } from './lib/mailbox.ts';
import { bulkRetr, type Target } from './lib/measure.ts';
const { dir, live, cleanup } = openRunScope('thread-cpu', () => undefined);
const stops: (() => Promise<void>)[] = [];
function threads(pid: number): Map<string, [number, number]> {
  const m = new Map<string, [number, number]>();
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const name = st.slice(st.indexOf('(') + 1, st.lastIndexOf(')'));
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      const key = `${name}#${t === String(pid) ? "main" : "other"}`;
      const prev = m.get(key) ?? [0, 0];
      m.set(key, [prev[0] + Number(f[11]), prev[1] + Number(f[12])]);
    } catch { /* gone */ }
  }
  return m;
}
try {
  const dc = await startDovecot(); live.dovecot = dc;
  dc.addMessage('alice', bulkMessage(60 * 1024 * 1024, 'big'));
  const cert = await makeCert({ commonName: 'localhost' });
  const ep = (port: number) => ({ host: '127.0.0.1', port, tls: 'implicit' as const, ca: cert.caPem, servername: 'localhost' });
  const p = await startPipeProxy(cert.certFile, cert.keyFile, dc.port); stops.push(() => p.stop());
  const nodeArgs = process.argv.slice(2);
  const g = await startGatewayProcess({ dir: fs.mkdtempSync(path.join(dir, 'gw-')), backendPort: dc.port, certFile: cert.certFile, keyFile: cert.keyFile, level: 'warn', audit: false, nodeArgs });
  console.log('gateway node args:', nodeArgs.join(' '));
  stops.push(() => g.stop());
  const A = { user: 'alice', password: 'alice-secret' };
  for (const [k, pid, port] of [['pipe', p.pid, p.port], ['gateway', g.pid, g.ports.pop3s], ['pipe', p.pid, p.port], ['gateway', g.pid, g.ports.pop3s]] as const) {
    const t: Target = { name: k, endpoint: ep(port), gatewayPid: pid, dovecotPid: dc.pid };
    await bulkRetr(t, A, 60, 1);
    const before = threads(pid);
    const r = await bulkRetr(t, A, 60, 4);
    const after = threads(pid);
    const gib = r.octets / 2 ** 30;
    const rows = [...after].map(([n, [u, s]]) => [n, ((u - (before.get(n)?.[0] ?? 0)) / 100) / gib, ((s - (before.get(n)?.[1] ?? 0)) / 100) / gib] as const).filter(([, u, s]) => u + s > 0);
    console.log(k, `${r.gatewayCpuSPerGiB} s/GiB:`, rows.map(([n, u, s]) => `${n} user ${u.toFixed(2)} sys ${s.toFixed(2)}`).join(' | '));
  }
} finally { for (const s of stops) await s().catch(() => undefined); await cleanup(); }
