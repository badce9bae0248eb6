/**
 * `node --import tsx bench/perf-sessions.ts [--seconds N] [--level info|warn] [--audit] [--who gateway,pipe]`:
 * where a proxy's CPU goes per full session, kernel and OpenSSL included (a V8 profile sees the
 * JS thread only). `perf record` attached to the compiled gateway and to the Node TLS pipe, each
 * started with --perf-basic-prof so JIT frames have names; prints the top symbols and the split by
 * DSO (kernel, libcrypto/libssl in node, V8 JIT, ...). Each proxy is warmed first (WARM=S seconds
 * of unmeasured sessions, default 15). The perf.data files are kept in .bench/ for `perf report`.
 * Needs perf (linux-perf). Unlike a V8 profile, perf samples only while the process is on a CPU,
 * so a thread preempted inside a write() is not charged for the time it waited.
 *
 * `--owners`: each proxy writes a jitdump instead (`--perf-prof`), `perf inject --jit` names every
 * JIT frame where the code was when it ran, and the samples are split by leaf kind (JavaScript,
 * V8, Node, OpenSSL and other native code, kernel, libc) and by owner (the innermost frame of
 * ours, see lib/perf-owners.ts), in µs per session (one sample per 250 µs of CPU). The
 * basic-prof maps of the default mode keep a function's name after V8 moves its code, so their
 * per-function figures for JIT code can be wrong by hundreds of µs per session. It also lists
 * the V8 and Node leaves (which builtin, IC miss, GC phase) per proxy. `--keep-script DIR` writes
 * each proxy's `perf script` text there (`# sessions N` first) for questions the tables don't answer.
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openRunScope } from './lib/run-scope.ts';
import { REPO_ROOT } from './lib/gateway-process.ts';
import { startBulkBackend, startProxy } from './lib/bulk-backend.ts';
import { sessionRate } from './lib/measure.ts';
import { LEAF_KINDS, rollUp, type Rollup } from './lib/perf-owners.ts';

const { values } = parseArgs({ options: {
  seconds: { type: 'string' }, level: { type: 'string' }, audit: { type: 'boolean' }, who: { type: 'string' }, top: { type: 'string' }, owners: { type: 'boolean' }, 'keep-script': { type: 'string' },
} });
const owners = values.owners === true;
/** --owners: one cpu-clock sample per 250 µs of CPU, so samples convert to time. */
const SAMPLE_US = 250;
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
  const rollups = new Map<string, { r: Rollup; sessions: number }>();
  // perf's build-id cache (jitted code objects too) goes into the run's folder, not ~/.debug
  // (a global option: perf 6.1 does not read PERF_BUILDID_DIR).
  const perf = ['--buildid-dir', path.join(dir, 'buildid')];
  for (const w of who) {
    // --perf-basic-prof also starts V8's log: keep it out of the working tree.
    const nodeArgs = owners
      ? ['--perf-prof', '--perf-prof-unwinding-info', '--interpreted-frames-native-stack', `--logfile=${path.join(dir, `${w}-v8.log`)}`, '--no-logfile-per-isolate']
      : ['--perf-basic-prof', `--logfile=${path.join(dir, `${w}-v8.log`)}`, '--no-logfile-per-isolate'];
    const { target: t, stop } = await startProxy(w === 'pipe' ? 'pipe' : 'gateway', backend, { dir, nodeArgs, level, audit, live, logToFile: true });
    await sessionRate(t, BOB, 8, Number(process.env.WARM ?? 15) * 1000); // warm up the JIT
    const data = path.join(dir, `${w}.perf.data`);
    const sampling = owners ? ['-k', '1', '-e', 'cpu-clock', '-c', String(SAMPLE_US * 1000)] : ['-F', '1999'];
    const rec = spawn('perf', [...perf, 'record', ...sampling, '-g', '-o', data, '-p', String(t.gatewayPid)], { stdio: ['ignore', 'ignore', 'pipe'] });
    await new Promise((r) => setTimeout(r, 300));
    const r = await sessionRate(t, BOB, 8, seconds * 1000);
    rec.kill('SIGINT');
    await new Promise((r) => rec.once('exit', r));
    log(`${w}: ${r.perSecond}/s, ${r.gatewayCpuMsPerSession} CPU ms per session`);
    if (owners) {
      // The jitdump (jit-PID.dump, written to the proxy's working directory) must outlive the
      // process for `perf inject`; it and the code objects made from it are removed after.
      await stop();
      const dump = path.join(REPO_ROOT, `jit-${t.gatewayPid}.dump`);
      const injected = `${data}.jit`;
      try {
        execFileSync('perf', [...perf, 'inject', '--jit', '-i', data, '-o', injected], { stdio: 'ignore' });
        const script = execFileSync('perf', [...perf, 'script', '-i', injected, '-F', 'ip,sym'], { maxBuffer: 1 << 30 }).toString();
        rollups.set(w, { r: rollUp(script), sessions: r.sessions });
        if (values['keep-script'] !== undefined) fs.writeFileSync(path.join(values['keep-script'], `${w}.perf-script.txt`), `# sessions ${r.sessions}\n${script}`);
      } finally {
        fs.rmSync(dump, { force: true });
        for (const f of fs.readdirSync(REPO_ROOT)) if (f.startsWith(`jitted-${t.gatewayPid}-`)) fs.rmSync(path.join(REPO_ROOT, f), { force: true });
      }
      continue;
    }
    const report = (args: string[]) => execFileSync('perf', [...perf, 'report', '-i', data, '--stdio', '--no-children', ...args], { maxBuffer: 64 << 20 }).toString();
    const lines = (s: string) => s.split('\n').filter((l) => /^\s+\d/.test(l));
    process.stdout.write(`== ${w}: ${r.perSecond} sessions/s, ${r.gatewayCpuMsPerSession} CPU ms/session\n-- by DSO\n`);
    process.stdout.write(lines(report(['--sort', 'dso', '-g', 'none'])).slice(0, 12).join('\n') + '\n-- by symbol\n');
    process.stdout.write(lines(report(['--sort', 'dso,sym', '-g', 'none'])).slice(0, top).join('\n') + '\n');
    fs.mkdirSync('.bench', { recursive: true });
    fs.copyFileSync(data, path.join('.bench', `${w}${w === 'pipe' ? '' : `-${level}${audit ? '-audit' : ''}`}.perf.data`));
    await stop();
  }
  if (owners) printOwners(rollups);
} finally {
  await cleanup();
}

/** µs per session by leaf kind for each proxy, and the gateway's owners by JavaScript + V8 time. */
function printOwners(rollups: Map<string, { r: Rollup; sessions: number }>): void {
  const us = (samples: number, sessions: number) => ((samples * SAMPLE_US) / sessions).toFixed(1);
  process.stdout.write(`-- µs of CPU per session by leaf kind (${SAMPLE_US} µs per sample)\n| | ${LEAF_KINDS.join(' | ')} | all |\n|---|${LEAF_KINDS.map(() => '---|').join('')}---|\n`);
  for (const [w, { r, sessions }] of rollups) {
    process.stdout.write(`| ${w} | ${LEAF_KINDS.map((k) => us(r.byLeaf[k], sessions)).join(' | ')} | ${us(r.samples, sessions)} |\n`);
  }
  for (const [w, { r, sessions }] of rollups) {
    process.stdout.write(`-- ${w}: owners by JavaScript + V8 µs per session (then native, kernel)\n`);
    for (const o of r.owners.slice(0, top)) {
      process.stdout.write(`${us(o.by.js + o.by.v8, sessions).padStart(6)} ${us(o.by.native + o.by.node + o.by.libc, sessions).padStart(6)} ${us(o.by.kernel, sessions).padStart(6)}  ${o.owner}\n`);
    }
  }
  for (const [w, { r, sessions }] of rollups) {
    process.stdout.write(`-- ${w}: V8 and Node leaves, µs per session\n`);
    for (const l of r.leaves.slice(0, top)) process.stdout.write(`${us(l.samples, sessions).padStart(6)}  ${l.kind}  ${l.sym}\n`);
  }
}
