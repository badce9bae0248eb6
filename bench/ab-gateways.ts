/**
 * `node --import tsx bench/ab-gateways.ts --a DIR [--rounds N] [--seconds S] [--mib M] [--noops K] [--level info|warn] [--no-audit] [--bulk-first] [--warm S] [--idle S] [--a-node-args '...'] [--b-node-args '...'] [--a-level L] [--a-audit on|off] [--b-level L] [--b-audit on|off]`:
 * this checkout's gateway (B) against another built checkout's (A, e.g. `git archive` of an older
 * commit with `npm run build`), and the Node TLS pipe, all three running at once in front of one
 * Dovecot. Each round measures every target in a fresh random order (full sessions for S seconds,
 * 8 concurrent; RETR of an M MiB message twice; K sequential NOOPs), so load from other work on a
 * shared machine falls on all three alike; prints the median per target and each gateway's
 * median ratio to the pipe of the same round. On a busy machine this is steadier than comparing
 * whole `npm run bench` runs made minutes apart.
 *
 * `--b DIR` runs B from another built checkout too; `--a-env K=V` / `--b-env K=V` (repeatable) set
 * environment variables for one side only. The gateways' stdout goes to a file (`--log-pipe`: to a pipe read by this process, as before).
 * `--a .` with `--a-level warn --a-audit off` (and B at info with the audit) measures what
 * logging and the audit cost, both sides warmed alike. `--warm S` (default 15): S seconds of full
 * sessions, with NOOPs and a RETR, twice over (measure.ts warmUp), against each target before the
 * first round, so the JIT has compiled what a round runs (a cold gateway costs half again per
 * session in its first seconds; the pipe has less to compile). `--idle S`: S seconds with nothing
 * to do before each session burst, as when mail clients poll every few minutes (V8 shrinks an
 * idle process's young generation; the burst after pays for that).
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openRunScope } from './lib/run-scope.ts';
import { startGatewayProcess } from './lib/gateway-process.ts';
import { startPipeProxy } from './lib/pipe-proxy.ts';
import { startBulkBackend } from './lib/bulk-backend.ts';
import { bulkRetr, noopLatency, sessionRate, warmUp, type Target } from './lib/measure.ts';
import { loadAverage } from './lib/proc-stats.ts';
import { median } from './lib/stats.ts';

const { values } = parseArgs({ options: {
  a: { type: 'string' }, rounds: { type: 'string' }, seconds: { type: 'string' }, mib: { type: 'string' },
  noops: { type: 'string' }, level: { type: 'string' }, 'no-audit': { type: 'boolean' }, 'bulk-first': { type: 'boolean' },
  'a-node-args': { type: 'string' }, 'b-node-args': { type: 'string' }, warm: { type: 'string' },
  'log-pipe': { type: 'boolean' }, 'a-level': { type: 'string' }, b: { type: 'string' },
  'a-env': { type: 'string', multiple: true }, 'b-env': { type: 'string', multiple: true }, 'a-audit': { type: 'string' }, 'b-level': { type: 'string' }, 'b-audit': { type: 'string' },
  idle: { type: 'string' },
} });
if (values.a === undefined) throw new Error('--a DIR (a built checkout to compare against) is required');
const rootA = path.resolve(values.a);
if (!fs.existsSync(path.join(rootA, 'dist', 'src', 'cli.js'))) throw new Error(`${rootA}/dist/src/cli.js is missing: build it first`);
const rounds = Number(values.rounds ?? 5);
const seconds = Number(values.seconds ?? 2);
const mib = Number(values.mib ?? 20);
const noops = Number(values.noops ?? 500);
const level = values.level === 'warn' ? 'warn' : 'info';
const audit = values['no-audit'] !== true;
const warmS = Number(values.warm ?? 15);
/** Seconds of nothing before each target's session burst: logins after a quiet spell, as mail clients poll. */
const idleS = Number(values.idle ?? 0);
const sideLevel = (v: string | undefined): 'warn' | 'info' => (v === undefined ? level : v === 'warn' ? 'warn' : 'info');
const sideAudit = (v: string | undefined): boolean => (v === undefined ? audit : v === 'on');
const envOf = (pairs: string[] | undefined): Record<string, string> | undefined =>
  pairs === undefined ? undefined : Object.fromEntries(pairs.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)]));
const sides = [
  { root: rootA, args: values['a-node-args'], level: sideLevel(values['a-level']), audit: sideAudit(values['a-audit']), env: envOf(values['a-env']) },
  { root: values.b === undefined ? undefined : path.resolve(values.b), args: values['b-node-args'], level: sideLevel(values['b-level']),
    audit: sideAudit(values['b-audit']), env: envOf(values['b-env']) },
];
/** RETR before the session burst in each turn, so the burst's leftovers (GC, batched writes) fall outside the bulk window. */
const bulkFirst = values['bulk-first'] === true;
const log = (l: string) => process.stderr.write(`[ab ${new Date().toISOString().slice(11, 19)}] ${l}\n`);
const ALICE = { user: 'alice', password: 'alice-secret' };
const BOB = { user: 'bob', password: 'bob-secret' };

type Key = 'pipe' | 'A' | 'B';
interface Sample { sessionMs: number; perSec: number; gibS: number; noopUs: number }

const { dir, live, cleanup } = openRunScope('ab', log);
/** Everything started here beyond Dovecot, stopped however the run ends. */
const stops: (() => Promise<void>)[] = [];
try {
  const { dovecot: dc, cert, endpoint } = await startBulkBackend(mib, (d) => (live.dovecot = d));
  const pipe = await startPipeProxy(cert.certFile, cert.keyFile, dc.port);
  stops.push(() => pipe.stop());
  const gws = [];
  for (const { root, args, level, audit, env } of sides) {
    const g = await startGatewayProcess({
      dir: fs.mkdtempSync(path.join(dir, 'gw-')), backendPort: dc.port, certFile: cert.certFile, keyFile: cert.keyFile, level, audit, root,
      logToFile: values['log-pipe'] !== true, env,
      nodeArgs: args === undefined ? [] : args.split(/\s+/).filter((a) => a !== ''),
    });
    stops.push(() => g.stop());
    gws.push(g);
  }
  const targets: Record<Key, Target> = {
    pipe: { name: 'pipe', endpoint: endpoint(pipe.port), gatewayPid: pipe.pid, dovecotPid: dc.pid },
    A: { name: 'A', endpoint: endpoint(gws[0]!.ports.pop3s), gatewayPid: gws[0]!.pid, dovecotPid: dc.pid },
    B: { name: 'B', endpoint: endpoint(gws[1]!.ports.pop3s), gatewayPid: gws[1]!.pid, dovecotPid: dc.pid },
  };
  const samples: Record<Key, Sample[]> = { pipe: [], A: [], B: [] };
  const loads: number[] = [];
  // Unmeasured work first, the same mix as the rounds: JIT, Dovecot's index, page cache.
  for (const k of ['pipe', 'A', 'B'] as const) {
    await warmUp(targets[k], { credentials: BOB, concurrency: 8, seconds: warmS, noops: Math.min(noops, 300), bulk: { credentials: ALICE, mib } });
  }
  for (let r = 0; r < rounds; r++) {
    const order = (['pipe', 'A', 'B'] as Key[]).sort(() => Math.random() - 0.5);
    loads.push(loadAverage());
    for (const k of order) {
      const b0 = bulkFirst ? await bulkRetr(targets[k], ALICE, mib, 2) : null;
      if (idleS > 0) await new Promise((r) => setTimeout(r, idleS * 1000));
      const s = await sessionRate(targets[k], BOB, 8, seconds * 1000);
      const b = b0 ?? await bulkRetr(targets[k], ALICE, mib, 2);
      const n = await noopLatency(targets[k], BOB, noops, 100);
      samples[k].push({ sessionMs: s.gatewayCpuMsPerSession ?? NaN, perSec: s.perSecond, gibS: b.gatewayCpuSPerGiB ?? NaN, noopUs: n.p50Us });
    }
    log(`round ${r + 1}/${rounds}: ${(['pipe', 'A', 'B'] as Key[]).map((k) => {
      const x = samples[k].at(-1)!;
      return `${k} ${x.sessionMs} ms/session ${x.gibS} s/GiB NOOP ${x.noopUs} µs`;
    }).join(' | ')}`);
  }
  const field = (k: Key, f: keyof Sample) => median(samples[k].map((x) => x[f]));
  const ratio = (k: Key, f: keyof Sample) => median(samples[k].map((x, i) => x[f] / samples.pipe[i]![f]));
  const diff = (k: Key, f: keyof Sample) => median(samples[k].map((x, i) => x[f] - samples.pipe[i]![f]));
  const out = [
    `A = ${rootA} ${values['a-node-args'] ?? ''} (${sides[0]!.level}, audit ${sides[0]!.audit ? 'on' : 'off'}), B = this checkout ${values['b-node-args'] ?? ''} (${sides[1]!.level}, audit ${sides[1]!.audit ? 'on' : 'off'}); warmed ${warmS} s each; ${rounds} rounds${bulkFirst ? ', RETR before sessions' : ''}${idleS > 0 ? `, ${idleS} s idle before each session burst` : ''}; load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`,
    '| median of rounds | pipe | A | B | A ÷ pipe | B ÷ pipe |',
    '|---|---|---|---|---|---|',
    `| CPU ms per session | ${field('pipe', 'sessionMs').toFixed(2)} | ${field('A', 'sessionMs').toFixed(2)} | ${field('B', 'sessionMs').toFixed(2)} | ${ratio('A', 'sessionMs').toFixed(2)}× | ${ratio('B', 'sessionMs').toFixed(2)}× |`,
    `| CPU s per GiB | ${field('pipe', 'gibS').toFixed(2)} | ${field('A', 'gibS').toFixed(2)} | ${field('B', 'gibS').toFixed(2)} | ${ratio('A', 'gibS').toFixed(2)}× | ${ratio('B', 'gibS').toFixed(2)}× |`,
    `| sessions/s | ${field('pipe', 'perSec').toFixed(0)} | ${field('A', 'perSec').toFixed(0)} | ${field('B', 'perSec').toFixed(0)} | ${ratio('A', 'perSec').toFixed(2)}× | ${ratio('B', 'perSec').toFixed(2)}× |`,
    `| NOOP p50 µs (− pipe's) | ${field('pipe', 'noopUs').toFixed(0)} | ${field('A', 'noopUs').toFixed(0)} | ${field('B', 'noopUs').toFixed(0)} | +${diff('A', 'noopUs').toFixed(0)} | +${diff('B', 'noopUs').toFixed(0)} |`,
  ];
  const overA = (f: keyof Sample) => median(samples.B.map((x, i) => x[f] / samples.A[i]![f]));
  out.push(`B ÷ A (median of rounds): CPU per session ${overA('sessionMs').toFixed(3)}×, CPU per GiB ${overA('gibS').toFixed(3)}×`);
  process.stdout.write(`${out.join('\n')}\n`);
} finally {
  for (const stop of stops) await stop().catch(() => undefined);
  await cleanup();
}
