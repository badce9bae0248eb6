/**
 * `node --import tsx bench/syscalls.ts [--sessions-s N]`: system calls per full session, gateway
 * (compiled, warn, no audit) against the Node TLS pipe: `strace -c -f` attached to each proxy
 * while 8 clients run full sessions for N s. Fewer writes and reads per session is fewer
 * JS↔native crossings and TLS records. `--bulk MIB`: instead, system calls per MiB of one RETR
 * of a MIB-MiB message (read and write sizes show how each proxy chunks a body). Needs strace (ptrace allowed).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { makeCert } from '../test/harness/certs.ts';
import { startDovecot } from '../test/harness/dovecot.ts';
import { openRunScope } from './lib/run-scope.ts';
import { startGatewayProcess } from './lib/gateway-process.ts';
import { startPipeProxy } from './lib/pipe-proxy.ts';
import { bulkRetr, sessionRate } from './lib/measure.ts';
import { bulkMessage } from './lib/mailbox.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string' }, level: { type: 'string' }, audit: { type: 'boolean' }, bulk: { type: 'string' } } });
const bulkMiB = values.bulk === undefined ? null : Number(values.bulk);
const seconds = Number(values.seconds ?? 4);
const log = (l: string) => process.stderr.write(`[syscalls] ${l}\n`);
const { dir, live, cleanup } = openRunScope('syscalls', log);
try {
  const dc = await startDovecot();
  live.dovecot = dc;
  dc.addMessage('bob', 'Subject: hi\r\n\r\nHello.\r\n');
  if (bulkMiB !== null) dc.addMessage('alice', bulkMessage(bulkMiB * 1024 * 1024, 'big'));
  const cert = await makeCert({ commonName: 'localhost' });
  for (const who of ['pipe', 'gateway'] as const) {
    let pid: number;
    let port: number;
    let stop: () => Promise<void>;
    if (who === 'pipe') {
      const p = await startPipeProxy(cert.certFile, cert.keyFile, dc.port);
      ({ pid, port, stop } = p);
    } else {
      const gw = await startGatewayProcess({ dir: fs.mkdtempSync(path.join(dir, 'gw-')), backendPort: dc.port, certFile: cert.certFile,
        keyFile: cert.keyFile, level: values.level === 'info' ? 'info' : 'warn', audit: values.audit === true });
      live.gateway = gw;
      pid = gw.pid;
      port = gw.ports.pop3s;
      stop = async () => { await gw.stop(); live.gateway = null; };
    }
    const out = path.join(dir, `${who}.strace`);
    const st = spawn('strace', ['-c', '-f', '-o', out, '-p', String(pid)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 500));
    const target = { name: who, endpoint: { host: '127.0.0.1', port, tls: 'implicit' as const, ca: cert.caPem, servername: 'localhost' },
      gatewayPid: pid, dovecotPid: dc.pid };
    // Per session, or per MiB relayed (one RETR after a warm-up one, all inside the trace).
    const r = bulkMiB === null
      ? await sessionRate(target, { user: 'bob', password: 'bob-secret' }, 8, seconds * 1000)
      : { sessions: (await bulkRetr(target, { user: 'alice', password: 'alice-secret' }, bulkMiB, 1)).octets / 1024 / 1024 * 2 };
    st.kill('SIGINT');
    await new Promise((res) => st.once('exit', res));
    await stop();
    const rows = fs.readFileSync(out, 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).filter((c) => c.length >= 5 && /^\d/.test(c[0]!));
    const per = rows.map((c) => [c[c.length - 1]!, Number(c[3]) / r.sessions] as const).filter(([, n]) => n >= 0.5).sort((a, b) => b[1] - a[1]);
    const unit = bulkMiB === null ? 'session' : 'MiB relayed';
    process.stdout.write(`${who}: ${r.sessions.toFixed(0)} ${unit}s; syscalls per ${unit}: ${per.map(([n, k]) => `${n} ${k.toFixed(1)}`).join(', ')}\n`);
  }
} finally {
  await cleanup();
}
