/**
 * `node --import tsx bench/perf-sessions.ts [--seconds N] [--level info|warn] [--audit] [--who gateway,pipe]`:
 * where a proxy's CPU goes per full session, kernel and OpenSSL included (a V8 profile sees the
 * JS thread only). `perf record` attached to the compiled gateway and to the Node TLS pipe, each
 * started with --perf-basic-prof so JIT frames have names; prints the top symbols and the split by
 * DSO (kernel, libcrypto/libssl in node, V8 JIT, ...). Each proxy is warmed first (WARM=S seconds
 * of unmeasured sessions, default 15). The perf.data files are kept in .bench/ for `perf report`.
 * Needs perf (linux-perf). Unlike a V8 profile, perf samples only while the process is on a CPU,
 * so a thread preempted inside a write() is not charged for the time it waited.
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openRunScope } from './lib/run-scope.ts';
import { startBulkBackend, startProxy } from './lib/bulk-backend.ts';
import { sessionRate } from './lib/measure.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string' }, level: { type: 'string' }, audit: { type: 'boolean' }, who: { type: 'string' }, top: { type: 'string' } } });
const seconds = Number(values.seconds ?? 6);
const level = values.level === 'info' ? 'info' : 'warn';
const audit = values.audit === true;
const who = (values.who ?? 'pipe,gateway').split(',');
const top = Number(values.top ?? 40);
const log = (l: string) => process.stderr.write(`[perf ${new Date().toISOString().slice(11, 19)}] ${l}\n`);
const BOB = { user: 'bob', password: 'bob-secret' };

const { dir, live, cleanup } = openRunScope('perf', log);
try {
  const backend = await startBulkBackend(1, (d) => (live.dovecot = d));
  for (const w of who) {
    // --perf-basic-prof also starts V8's log: keep it out of the working tree.
    const nodeArgs = ['--perf-basic-prof', `--logfile=${path.join(dir, `${w}-v8.log`)}`, '--no-logfile-per-isolate'];
    const { target: t, stop } = await startProxy(w === 'pipe' ? 'pipe' : 'gateway', backend, { dir, nodeArgs, level, audit, live, logToFile: true });
    await sessionRate(t, BOB, 8, Number(process.env.WARM ?? 15) * 1000); // warm up the JIT
    const data = path.join(dir, `${w}.perf.data`);
    const rec = spawn('perf', ['record', '-F', '1999', '-g', '-o', data, '-p', String(t.gatewayPid)], { stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise((r) => setTimeout(r, 300));
    const r = await sessionRate(t, BOB, 8, seconds * 1000);
    rec.kill('SIGINT');
    await new Promise((r) => rec.once('exit', r));
    log(`${w}: ${r.perSecond}/s, ${r.gatewayCpuMsPerSession} CPU ms per session`);
    const report = (args: string[]) => execFileSync('perf', ['report', '-i', data, '--stdio', '--no-children', ...args], { maxBuffer: 64 << 20 }).toString();
    const lines = (s: string) => s.split('\n').filter((l) => /^\s+\d/.test(l));
    process.stdout.write(`== ${w}: ${r.perSecond} sessions/s, ${r.gatewayCpuMsPerSession} CPU ms/session\n-- by DSO\n`);
    process.stdout.write(lines(report(['--sort', 'dso', '-g', 'none'])).slice(0, 12).join('\n') + '\n-- by symbol\n');
    process.stdout.write(lines(report(['--sort', 'dso,sym', '-g', 'none'])).slice(0, top).join('\n') + '\n');
    fs.mkdirSync('.bench', { recursive: true });
    fs.copyFileSync(data, path.join('.bench', `${w}${w === 'pipe' ? '' : `-${level}${audit ? '-audit' : ''}`}.perf.data`));
    await stop();
  }
} finally {
  await cleanup();
}
