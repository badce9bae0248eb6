/**
 * `node --import tsx bench/idle-start.ts [--idle S] [--rounds N] [--b-node-args '...'] [--feedback]`:
 * what a quiet spell right after start does to a gateway, as when systemd starts it and the first
 * client comes seconds later. Two gateways from this build: A with the bin's node flags except
 * `--no-memory-reducer`, B with all of them (or with `--b-node-args` added), both left idle S
 * seconds (default 10) after start while the Node TLS pipe is warmed at once, as `npm run bench`
 * does. Then each is warmed and all three are measured in N alternating rounds of random order
 * (full sessions, 8 concurrent, 4 s; 2 000 sequential NOOPs): CPU per session and per NOOP and
 * NOOP p50, medians of per-round ratios and differences to the pipe.
 *
 * `--feedback` also prints the state of the inline caches that build `process.nextTick`'s tick
 * object in each gateway (`%DebugPrint` from a preload, on SIGUSR2): the object Node makes for
 * every deferred stream callback, a few per command and ~24 per session.
 *
 * Measured on the thirteenth pass (2 vCPU, Node 20.20): V8's memory reducer runs full collections
 * once a process turns idle. One that ran before the first client left those caches megamorphic
 * for the process's life (they stay monomorphic in the pipe, and in a gateway whose first client
 * came within ~3 s of its start). In three runs B spent 0.86, 0.90 and 0.98x A's CPU per
 * session, and its CPU per NOOP was 8-14 µs over the pipe's against A's 24-45; with `--feedback`,
 * A's caches read MONOMORPHIC, MEGAMORPHIC, MEGAMORPHIC, MEGAMORPHIC and B's all MONOMORPHIC.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openRunScope } from './lib/run-scope.ts';
import { startBulkBackend, startProxy, type StartedProxy } from './lib/bulk-backend.ts';
import { noopLatency, sessionRate, warmUp, type Target } from './lib/measure.ts';
import { CpuWindow } from './lib/proc-stats.ts';
import { median } from './lib/stats.ts';

const { values } = parseArgs({ options: {
  idle: { type: 'string' }, rounds: { type: 'string' }, 'b-node-args': { type: 'string' }, feedback: { type: 'boolean' },
} });
const idleS = Number(values.idle ?? 10);
const rounds = Number(values.rounds ?? 7);
const feedback = values.feedback === true;
const log = (l: string) => process.stderr.write(`[idle-start ${new Date().toISOString().slice(11, 19)}] ${l}\n`);
const BOB = { user: 'bob', password: 'bob-secret' };
const NOOPS = 2000;

const { dir, live, cleanup } = openRunScope('idle-start', log);
const stops: Array<() => Promise<void>> = [];
try {
  const preload = path.join(dir, 'feedback-preload.cjs');
  fs.writeFileSync(preload, "process.on('SIGUSR2', () => { %DebugPrint(process.nextTick); });\n");
  const probe = feedback ? ['--allow-natives-syntax', '--require', preload] : [];
  const b = await startBulkBackend(20, (d) => (live.dovecot = d));
  const pipe = await startProxy('pipe', b, { dir, nodeArgs: [], level: 'warn', audit: false, live, logToFile: true });
  stops.push(pipe.stop);
  // A: the bin's flags with the memory reducer left on (a caller's flag replaces the bin's of that name).
  const a = await startProxy('gateway', b, { dir, nodeArgs: ['--memory-reducer', ...probe], level: 'warn', audit: false, live, logToFile: true });
  stops.push(a.stop);
  const bArgs = (values['b-node-args'] ?? '').split(/\s+/).filter((f) => f !== '');
  const gb = await startProxy('gateway', b, { dir, nodeArgs: [...bArgs, ...probe], level: 'warn', audit: false, live: { ...live }, logToFile: true });
  stops.push(gb.stop);
  const T: Record<'pipe' | 'A' | 'B', Target> = { pipe: pipe.target, A: a.target, B: gb.target };
  log(`pipe warmed at once; A and B idle ${idleS} s after start`);
  await warmUp(T.pipe, { credentials: BOB, concurrency: 8, seconds: 6, noops: 1000, bulk: null });
  await new Promise((r) => setTimeout(r, idleS * 1000));
  for (const k of ['A', 'B'] as const) await warmUp(T[k], { credentials: BOB, concurrency: 8, seconds: 6, noops: 1000, bulk: null });
  const keys = ['pipe', 'A', 'B'] as const;
  const cpu = { pipe: [] as number[], A: [] as number[], B: [] as number[] };
  const noopCpu = { pipe: [] as number[], A: [] as number[], B: [] as number[] };
  const p50 = { pipe: [] as number[], A: [] as number[], B: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    for (const k of [...keys].sort(() => Math.random() - 0.5)) {
      const s = await sessionRate(T[k], BOB, 8, 4000);
      if (s.errors > 0) throw new Error(`${k}: ${s.errors} session errors (${s.errorSamples.join('; ')})`);
      cpu[k].push(s.gatewayCpuMsPerSession!);
      const w = new CpuWindow(T[k].gatewayPid, T[k].dovecotPid);
      const n = await noopLatency(T[k], BOB, NOOPS, 200);
      noopCpu[k].push((w.end().gatewayS! * 1e6) / (NOOPS + 200));
      p50[k].push(n.p50Us);
    }
    log(`round ${i + 1}/${rounds}: ${keys.map((k) => `${k} ${cpu[k].at(-1)} ms/session ${noopCpu[k].at(-1)!.toFixed(0)} µs/NOOP p50 ${p50[k].at(-1)} µs`).join(' | ')}`);
  }
  const ratio = (x: number[], y: number[]) => median(x.map((v, i) => v / y[i]!)).toFixed(3);
  const over = (x: number[], y: number[]) => median(x.map((v, i) => v - y[i]!)).toFixed(1);
  process.stdout.write(`A = gateway, memory reducer on; B = gateway${bArgs.length > 0 ? ` + ${bArgs.join(' ')}` : ''} (the bin's flags); both idle ${idleS} s after start; ${rounds} rounds\n`);
  process.stdout.write('| median of rounds | A | B |\n|---|---|---|\n');
  process.stdout.write(`| CPU per session ÷ pipe | ${ratio(cpu.A, cpu.pipe)}× | ${ratio(cpu.B, cpu.pipe)}× |\n`);
  process.stdout.write(`| CPU per NOOP − pipe's, µs | ${over(noopCpu.A, noopCpu.pipe)} | ${over(noopCpu.B, noopCpu.pipe)} |\n`);
  process.stdout.write(`| NOOP p50 − pipe's, µs | ${over(p50.A, p50.pipe)} | ${over(p50.B, p50.pipe)} |\n`);
  process.stdout.write(`B ÷ A, CPU per session: ${ratio(cpu.B, cpu.A)}×\n`);
  if (feedback) for (const [k, g] of [['A', a], ['B', gb]] as Array<[string, StartedProxy]>) process.stdout.write(`${k}: ${await nextTickFeedback(g)}\n`);
} finally {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  await cleanup();
}

/** The tick object's literal: one inline cache per property, from the gateway's %DebugPrint on SIGUSR2. */
async function nextTickFeedback(g: StartedProxy): Promise<string> {
  const out = fs.readdirSync(dir).filter((d) => d.startsWith('gw-')).map((d) => path.join(dir, d, 'stdout.log'))
    .find((f) => fs.existsSync(f) && fs.readFileSync(f, 'utf8').includes(`"pid":${g.target.gatewayPid}`));
  if (out === undefined) return 'no log file found';
  const before = fs.statSync(out).size;
  process.kill(g.target.gatewayPid!, 'SIGUSR2');
  await new Promise((r) => setTimeout(r, 500));
  const text = fs.readFileSync(out, 'utf8').slice(before);
  const states = [...text.matchAll(/DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((m) => m[1]);
  return states.length === 0 ? 'no feedback printed' : `nextTick's tick-object caches ${states.join(', ')}`;
}
